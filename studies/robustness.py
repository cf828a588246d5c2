"""Robustness to band-limited noise (Park & Kim 2022, Fig. 2b): accuracy change when the
paper's frequency-based random noise (eps·sign(N(0, 1)) band-passed to a ring of half-width
0.2 rad around frequency f, not renormalised) is added to the inputs, at several noise
levels eps so that no single saturating level decides the comparison.

python -m studies.robustness --model vit-ti,resnet-18 [--eps 0.1,0.3,1,3]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitprobe import fourier, plots, results

from . import cli
from .cache import read_results
from .probes import feature_parser, models_and_images


def read_summary(folder: Path) -> dict[str, list[dict]]:
    """Per model label, one ``fourier.noise_robustness`` record per noise level (ascending
    eps: frequencies, per-image correctness clean and under noise, accuracies)."""
    return {label: sorted(rec["by_eps"], key=lambda r: r["eps"])
            for label, rec in read_results(Path(folder) / "robustness.json").items()}


def main(argv: list[str] | None = None) -> int:
    p = feature_parser("studies.robustness", __doc__)
    p.add_argument("--eps", default="0.1,0.3,1,3",
                   help="comma-separated noise amplitudes in normalised units (default: "
                        "%(default)s)")
    p.add_argument("--num-frequencies", type=cli.positive_int, default=9,
                   help="frequencies from 0.1π to 0.9π (default: %(default)s)")
    args = p.parse_args(argv)
    cli.setup_logging(args.quiet)
    try:
        eps = [float(e) for e in args.eps.split(",") if e]
    except ValueError:
        raise ValueError(f"--eps takes comma-separated numbers; got {args.eps!r}") from None
    if not eps or min(eps) <= 0 or args.num_frequencies < 2:
        raise ValueError("--eps takes numbers > 0 and --num-frequencies must be >= 2")
    models, x, y, infos = models_and_images(args)
    freqs = np.linspace(0.1, 0.9, args.num_frequencies) * np.pi
    batches = [(x[i:i + 128], y[i:i + 128]) for i in range(0, len(x), 128)]
    curves: dict = {}
    for label, model in models.items():
        curves[label] = {"run": infos[label], "by_eps": []}
        for e in eps:
            r = fourier.noise_robustness(model, batches, freqs, eps=e, seed=args.seed)
            curves[label]["by_eps"].append(r)
            ch = np.array(r["accuracy_change"]) * 100
            low, high = ch[freqs <= np.pi / 2].mean(), ch[freqs > np.pi / 2].mean()
            print(f"{label} eps {e:g}: clean {100 * r['clean_accuracy']:.1f} %; accuracy "
                  f"change low-freq noise {low:+.1f} pts, high-freq noise {high:+.1f} pts")
    out = Path(args.out)
    path = results.save_result(out / "robustness.json", curves, vars(args), args.seed)
    fig = plots.robustness_figure(curves, out / "robustness")
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    return 0


if __name__ == "__main__":
    cli.run(main)
