"""Feature-map variance through the network (Park & Kim 2022, Fig. 9): MSAs reduce it,
convs/MLPs increase it.

python -m studies.variance --model vit-ti,resnet-18,alternet-18
"""

from __future__ import annotations

from pathlib import Path

from vitprobe import plots, results, variance

from . import cli
from .probes import TapProfile, feature_parser, models_and_images, profile_models, read_profiles


def read_summary(folder: Path) -> dict[str, TapProfile]:
    """Per model label, the feature-map variance per image and tap."""
    return read_profiles(Path(folder) / "variance.json", "per_image")


def main(argv: list[str] | None = None) -> int:
    args = feature_parser("studies.variance", __doc__).parse_args(argv)
    cli.setup_logging(args.quiet)
    models, x, _, infos = models_and_images(args)
    profiles, record = profile_models(models, x, infos, variance.profile, "variance",
                                      lambda p: "feature-map variance", "+.3f",
                                      per_image="per_image", log_ratio=True, seed=args.seed)
    out = Path(args.out)
    path = results.save_result(out / "variance.json", record, vars(args), args.seed)
    fig = plots.depth_figure(profiles, "variance", "feature-map variance", out / "variance",
                             log=True)
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    return 0


if __name__ == "__main__":
    cli.run(main)
