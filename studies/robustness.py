"""Robustness to band-limited noise (Park & Kim 2022, Fig. 2b): accuracy change when
Gaussian noise filtered to a 0.1π band around frequency f is added to the inputs.

python -m studies.robustness --model vit-ti,resnet-18 [--eps 0.1]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitprobe import cli, fourier, plots, results

from .probes import feature_parser, models_and_images


def main(argv: list[str] | None = None) -> int:
    p = feature_parser("studies.robustness", __doc__)
    p.add_argument("--eps", type=float, default=0.5, help="noise RMS in normalised units")
    p.add_argument("--num-frequencies", type=int, default=10)
    args = p.parse_args(argv)
    cli.setup_logging(args.quiet)
    if args.eps <= 0 or args.num_frequencies < 2:
        raise ValueError("--eps must be > 0 and --num-frequencies >= 2")
    models, x, y, infos = models_and_images(args)
    freqs = np.linspace(0.1, 0.9, args.num_frequencies) * np.pi
    batches = [(x[i:i + 128], y[i:i + 128]) for i in range(0, len(x), 128)]
    curves = {}
    for label, model in models.items():
        r = fourier.noise_robustness(model, batches, freqs, eps=args.eps, seed=args.seed)
        curves[label] = {**r, "run": infos[label]}
        ch = np.array(r["accuracy_change"]) * 100
        half = len(ch) // 2
        print(f"{label}: clean {100 * r['clean_accuracy']:.1f} %; accuracy change low-freq "
              f"noise {ch[:half].mean():+.1f} pts, high-freq noise {ch[half:].mean():+.1f} pts")
    out = Path(args.out)
    path = results.save_result(out / "robustness.json", curves, vars(args), args.seed)
    fig = plots.robustness_figure(curves, out / "robustness")
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    return 0


if __name__ == "__main__":
    cli.run(main)
