"""Fourier analysis of feature maps (Park & Kim 2022, Figs. 2a and 8): ΔlogAmplitude of the
residual stream after every block; MSAs low-pass, convs/MLPs high-pass.

vitprobe fourier --model vit-ti,resnet-18,alternet-18
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from vitprobe import fourier, plots

from . import cli
from .config import FeatureConfig
from .probes import ProfileResult, models_and_images, profile_models


@dataclass(frozen=True)
class FourierConfig(FeatureConfig):
    STUDY: ClassVar[str] = "fourier"


@dataclass(kw_only=True)
class FourierResult(ProfileResult):
    """Per model label: each tap's ΔlogAmplitude against frequency; ``profiles()`` gives the
    highest-frequency ΔlogAmplitude per image and tap."""

    FILE: ClassVar[str] = "fourier.json"
    PER_IMAGE: ClassVar[str] = "highest_per_image"

    def tap_sides(self, label: str) -> list[int]:
        """The side of each of ``label``'s tap maps: an axis of n points gives ceil(n/2)
        diagonal frequencies 2πi/n (``vitprobe.fourier.frequencies``), so
        n = 2π·(count − 1) / highest (1 for a map with one frequency)."""
        return [round(2 * math.pi * (len(t["frequencies"]) - 1) / max(t["frequencies"]))
                if len(t["frequencies"]) > 1 else 1 for t in self.data[label]["taps"]]

    def token_grid_side(self, label: str) -> int:
        """The side of the largest map among ``label``'s MSA taps."""
        return max((s for s, t in zip(self.tap_sides(label), self.data[label]["taps"])
                    if t["kind"] == "msa"), default=0)


def run(config: FourierConfig) -> FourierResult:
    """ΔlogAmplitude profiles of every model ``config`` names, saved to ``config.out`` with
    their figures."""
    models, x, _, infos = models_and_images(config)
    profiles, record = profile_models(
        models, x, infos, fourier.profile, "highest",
        lambda p: f"high-frequency ΔlogAmp at {p[-1].highest_frequency / math.pi:.2f}π", "+.3f",
        per_image=FourierResult.PER_IMAGE, seed=config.seed)
    out = Path(config.out)
    result = FourierResult(record=record, config=config.to_dict())
    path = result.save(out)
    f1 = plots.fourier_figure(profiles, out / "fourier")
    f2 = plots.depth_figure(profiles, "highest", "Δ log amplitude (highest freq.)",
                            out / "fourier_depth")
    print(f"results: {path}\nfigures: {f1[0]}, {f2[0]} (+ .pdf)")
    return result


def main(argv: list[str] | None = None) -> int:
    config = FourierConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
