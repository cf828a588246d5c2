"""Feature-map variance through the network (Park & Kim 2022, Fig. 9): MSAs reduce it,
convs/MLPs increase it.

python -m studies.variance --model vit-ti,resnet-18,alternet-18
"""

from __future__ import annotations

from pathlib import Path

import torch

from vitprobe import cli, plots, results, variance
from vitprobe.summary import change_by_kind

from .probes import feature_parser, models_and_images


def main(argv: list[str] | None = None) -> int:
    args = feature_parser("studies.variance", __doc__).parse_args(argv)
    cli.setup_logging(args.quiet)
    models, x, _, infos = models_and_images(args)
    profiles, record = {}, {}
    for label, model in models.items():
        with torch.no_grad():
            prof = variance.profile(model.eval(), x)
        profiles[label] = prof
        summary = change_by_kind(prof, "variance")
        record[label] = {"taps": prof, "summary": summary, "run": infos[label]}
        print(f"{label}: mean change of feature-map variance — MSA taps {summary['msa']:+.4g} "
              f"(n={summary['n_msa']}), conv/MLP taps {summary['conv_mlp']:+.4g} "
              f"(n={summary['n_conv_mlp']})")
    out = Path(args.out)
    path = results.save_result(out / "variance.json", record, vars(args), args.seed)
    fig = plots.depth_figure(profiles, "variance", "feature-map variance", out / "variance",
                             log=True)
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    return 0


if __name__ == "__main__":
    cli.run(main)
