"""Class token vs GAP vs SeqPool (vs MAP) on the same data and seed (Park & Kim 2022, Fig. 6):
test accuracy, training NLL, 1-D/2-D loss landscapes on the same directions' normalisation
and scale, and Hessian spectra (NEP, APE).

python -m studies.pooling [--pools cls,gap,seqpool,map] [--model vit-ti]
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from models.vit import POOLS
from vitprobe import plots, results

from . import cli
from .cache import RunSpec, final_test_accuracy, trained_model, with_pooling
from .protocols import (
    LandscapeOptions,
    landscape_data,
    mean_loss,
    model_landscape,
    preset_spectrum,
)


def main(argv: list[str] | None = None) -> int:
    p = cli.base_parser("studies.pooling", __doc__)
    p.add_argument("--pools", default=",".join(POOLS),
                   help="the poolings compared, comma-separated (default: %(default)s)")
    p.add_argument("--steps", type=cli.positive_int, default=11,
                   help="landscape grid points per axis (default: %(default)s)")
    p.add_argument("--span", type=float, default=1.0,
                   help="the landscape grid spans [-span, span] per axis (default: "
                        "%(default)s)")
    p.add_argument("--num-images", type=cli.positive_int, default=512)
    p.add_argument("--num-batches", type=cli.positive_int, default=None,
                   help="Hessian mini-batches (default: the preset's)")
    p.add_argument("--l2-coef", type=cli.non_negative, default=0.05,
                   help="the landscape's l2 term coefficient, l2_coef * sum_p ||theta_p|| "
                        "(default: %(default)s)")
    args = p.parse_args(argv)
    if args.pool is not None:
        p.error("--pool names one pooling of a trained model; this study compares several: "
                "use --pools, e.g. --pools cls,gap")
    cli.setup_logging(args.quiet)
    pools = [q for q in args.pools.split(",") if q]
    bad = [q for q in pools if q not in POOLS]
    if bad or not args.model.startswith("vit"):
        raise ValueError(f"--pools takes {', '.join(POOLS)} (got {bad}) on a vit-* model")
    device = cli.resolve_device(args.device)
    out = Path(args.out)
    rows, surfaces, spectra = [], {}, {}
    # the same directions' normalisation and grid for every pooling
    options = LandscapeOptions(args.steps, args.span, "filter", args.l2_coef,
                               progress=not args.quiet)
    for pool in pools:
        spec = replace(RunSpec.from_args(args, args.model, device), pool=pool)
        model, info = trained_model(spec, args.checkpoint)
        batches = landscape_data(spec, args.num_images, clean_test=False)
        nll = mean_loss(model, batches)
        land = model_landscape(model, batches, options, args.seed,
                               out / f"pooling_{pool}.partial.npz")
        s = preset_spectrum(spec, model, args.num_batches, args.seed, not args.quiet)
        acc = final_test_accuracy(info)
        label = with_pooling(spec.label, model)
        surfaces[label], spectra[label] = land, s.eigenvalues
        rows.append({"pool": pool, "test_acc": acc, "train_nll": nll, "nep": s.nep(),
                     "ape": s.ape(), "landscape_centre": float(
                         land["surface"].loss[args.steps // 2, args.steps // 2]),
                     "landscape_max": float(np.nanmax(land["surface"].loss)),
                     "spectrum": s.to_dict(), "slice": land["slice"].to_dict(),
                     "surface": land["surface"].to_dict(), "run": info})
    text = results.markdown_table(
        ["pool", "test acc", "train NLL (aug.)", "NEP", "APE", "loss at centre", "max on grid"],
        ([r["pool"], f"{100 * r['test_acc']:.2f} %" if r["test_acc"] is not None else "n/a",
          f"{r['train_nll']:.4f}", f"{r['nep']:.3f}", f"{r['ape']:.4g}",
          f"{r['landscape_centre']:.4f}", f"{r['landscape_max']:.4f}"] for r in rows))
    results.atomic_write_bytes(out / "pooling.md", (text + "\n").encode())
    path = results.save_result(out / "pooling.json", rows, vars(args), args.seed)
    f1 = plots.landscape_figure(surfaces, out / "pooling_landscape",
                                title="pooling: loss landscapes (augmented training data)")
    f2 = plots.spectrum_figure(spectra, out / "pooling_hessian",
                               title="pooling: Hessian max eigenvalue spectra")
    print(text)
    print(f"results: {path}\nfigures: {f1[0]}, {f2[0]} (+ .pdf); table: {out / 'pooling.md'}")
    return 0


if __name__ == "__main__":
    cli.run(main)
