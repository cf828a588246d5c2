"""Feature-map variance through the network (Park & Kim 2022, Fig. 9): MSAs reduce it,
convs/MLPs increase it.

vitprobe variance --model vit-ti,resnet-18,alternet-18
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from vitprobe import plots, variance

from . import cli
from .config import FeatureConfig
from .probes import ProfileResult, models_and_images, profile_models


@dataclass(frozen=True)
class VarianceConfig(FeatureConfig):
    STUDY: ClassVar[str] = "variance"


@dataclass(kw_only=True)
class VarianceResult(ProfileResult):
    """Per model label: each tap's feature-map variance; ``profiles()`` gives it per image
    and tap."""

    FILE: ClassVar[str] = "variance.json"
    PER_IMAGE: ClassVar[str] = "per_image"


def run(config: VarianceConfig) -> VarianceResult:
    """Feature-map variance profiles of every model ``config`` names, saved to ``config.out``
    with their figure."""
    models, x, _, infos = models_and_images(config)
    profiles, record = profile_models(models, x, infos, variance.profile, "variance",
                                      lambda p: "feature-map variance", "+.3f",
                                      per_image=VarianceResult.PER_IMAGE, log_ratio=True,
                                      seed=config.seed)
    out = Path(config.out)
    result = VarianceResult(record=record, config=config.to_dict())
    path = result.save(out)
    fig = plots.depth_figure(profiles, "variance", "feature-map variance", out / "variance",
                             log=True)
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    return result


def main(argv: list[str] | None = None) -> int:
    config = VarianceConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
