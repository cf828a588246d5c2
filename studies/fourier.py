"""Fourier analysis of feature maps (Park & Kim 2022, Figs. 2a and 8): ΔlogAmplitude of the
residual stream after every block; MSAs low-pass, convs/MLPs high-pass.

python -m studies.fourier --model vit-ti,resnet-18,alternet-18
"""

from __future__ import annotations

import math
from pathlib import Path

from vitprobe import fourier, plots, results

from . import cli
from .probes import TapProfile, feature_parser, models_and_images, profile_models, read_profiles


def read_summary(folder: Path) -> dict[str, TapProfile]:
    """Per model label, the highest-frequency ΔlogAmplitude per image and tap."""
    return read_profiles(Path(folder) / "fourier.json", "highest_per_image")


def main(argv: list[str] | None = None) -> int:
    args = feature_parser("studies.fourier", __doc__).parse_args(argv)
    cli.setup_logging(args.quiet)
    models, x, _, infos = models_and_images(args)
    profiles, record = profile_models(
        models, x, infos, fourier.profile, "highest",
        lambda p: f"high-frequency ΔlogAmp at {p[-1].highest_frequency / math.pi:.2f}π", "+.3f",
        per_image="highest_per_image", seed=args.seed)
    out = Path(args.out)
    path = results.save_result(out / "fourier.json", record, vars(args), args.seed)
    f1 = plots.fourier_figure(profiles, out / "fourier")
    f2 = plots.depth_figure(profiles, "highest", "Δ log amplitude (highest freq.)",
                            out / "fourier_depth")
    print(f"results: {path}\nfigures: {f1[0]}, {f2[0]} (+ .pdf)")
    return 0


if __name__ == "__main__":
    cli.run(main)
