"""Attention probes (ViT Figs. 6–7): rollout vs Integrated Gradients vs occlusion, compared by
a faithfulness score (deletion AUC, lower is better); mean attention distance per head;
position-embedding similarity.

vitprobe attention --model vit-ti[,vit-ti@gap]   (name@pool: a pooling per model)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from vitprobe import attention, plots, results
from vitprobe.features import grid_of, num_prefix_tokens

from . import cli
from .config import FeatureConfig, StudyResult, option
from .labels import slug, with_pooling
from .probes import models_and_images
from .runspec import RunSpec, build


@dataclass(frozen=True)
class AttentionConfig(FeatureConfig):
    STUDY: ClassVar[str] = "attention"

    num_images: int = option(16, "test images to probe with", check=cli.at_least_two)
    show: int = option(4, "images in the overlay figure", check=cli.positive_int)


@dataclass(kw_only=True)
class AttentionResult(StudyResult):
    """Per model label: deletion AUC per explanation method (lower is more faithful), mean
    attention distance per block and head, its run and its figures."""

    FILE: ClassVar[str] = "attention.json"

    def deletion_auc(self) -> dict[str, dict[str, float]]:
        """Per model label, the deletion AUC of each method (and of a random map)."""
        return {label: rec["deletion_auc"] for label, rec in self.data.items()}


def overlay_figure(overlay: dict, path: Path) -> list[Path]:
    """The explanations over their images (ViT Fig. 6's view): ``overlay`` as the study
    records it — images (n, C, H, W), each method's patch-grid maps (n, h, w), a label per
    row and a title — each map brought to the image size by nearest-neighbour upsampling."""
    images = np.asarray(overlay["images"], dtype=np.float32)
    maps = {k: F.interpolate(torch.as_tensor(np.asarray(v, dtype=np.float32))[:, None],
                             size=images.shape[-2:], mode="nearest")[:, 0].numpy()
            for k, v in overlay["maps"].items()}
    return plots.attribution_grid(images, maps, path, title=overlay["title"],
                                  row_labels=list(overlay["rows"]))


def run(config: AttentionConfig) -> AttentionResult:
    """Explanations, their faithfulness, attention distances and position-embedding
    similarity of every model ``config`` names, saved to ``config.out`` with the figures."""
    device = cli.resolve_device(config.device)
    for name in cli.model_names(config):  # before anything is trained
        untrained = build(RunSpec.from_config(config, name, device))
        if grid_of(untrained) is None or not hasattr(untrained, "patch_embed"):
            raise ValueError(f"{name}: the attention study needs a patch-token model (ViT); "
                             f"got {type(untrained).__name__}")
    models, x, y, infos = models_and_images(config)
    out = Path(config.out)
    record, distances = {}, {}
    result = AttentionResult(record=record, config=config.to_dict())
    for label, model in models.items():
        model.eval()
        grid = grid_of(model)
        patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
        if grid is None or patch is None:
            raise ValueError(f"{label}: the attention study needs a patch-token model (ViT)")
        patch = int(patch[0] if isinstance(patch, tuple | list) else patch)
        with torch.no_grad():
            target = model(x).argmax(-1)
        maps = attention.capture(model, x)
        prefix = num_prefix_tokens(model)
        pool_w = None
        if getattr(model, "pool", None) == "seqpool":
            with torch.no_grad():
                pool_w = model.attn_pool.weights(model.forward_features(x))
        expl = {
            "rollout": attention.rollout(maps, prefix, pool_weights=pool_w).float()
            .view(-1, *grid),
            "integrated gradients": attention.integrated_gradients(model, x, target, patch),
            "occlusion": attention.occlusion(model, x, target, patch),
        }
        g = torch.Generator().manual_seed(config.seed)
        expl_random = torch.rand(len(x), *grid, generator=g)
        faith = {k: attention.deletion_auc(model, x, target, v.to(x.device), patch)
                 for k, v in {**expl, "random": expl_random}.items()}
        distances[with_pooling(label, model)] = attention.mean_distance(maps, grid, patch,
                                                                         prefix)
        sim = attention.position_similarity(model).cpu().numpy()
        # what the overlay figure draws, recorded so a report draws it from the record alone
        overlay = {"images": x[:config.show].cpu().numpy(),
                   "maps": {k: v[:config.show].float().cpu().numpy() for k, v in expl.items()},
                   "rows": [f"true {int(t)} / pred {int(p)}" for t, p in
                            zip(y[:config.show], target[:config.show])],
                   "title": f"{with_pooling(label, model)}: explanations"}
        fig = overlay_figure(overlay, out / f"attention_{slug(label)}")
        pfig = plots.position_similarity_figure(sim, out / f"position_{slug(label)}")
        record[label] = {"deletion_auc": faith,
                         "mean_distance": distances[with_pooling(label, model)],
                         "overlay": overlay, "run": infos[label],
                         "figures": [str(fig[0]), str(pfig[0])]}
        print(f"{label}: deletion AUC (lower = more faithful) " +
              "  ".join(f"{k} {v:.3f}" for k, v in faith.items()))
        # each model's results as soon as it is done: a later failure keeps them
        result.save(out)
    dfig = plots.mean_distance_figure(distances, out / "attention_distance")
    methods = list(next(iter(record.values()))["deletion_auc"])
    table = results.markdown_table(["model", *methods], (
        [label, *(f"{r['deletion_auc'][m]:.3f}" for m in methods)]
        for label, r in record.items()))
    results.atomic_write_bytes(out / "attention_faithfulness.md", (
        f"Deletion AUC (the class probability's area as patches are removed in each "
        f"explanation's order; lower is more faithful; random: a random order) on "
        f"{config.num_images} test images of {config.data}, preset {config.preset}, seed "
        f"{config.seed}\n\n" + table + "\n").encode())
    path = result.save(out)
    print(table)
    print(f"results: {path}\nfigures: {dfig[0]} and per-model overlays in {out}")
    return result


def main(argv: list[str] | None = None) -> int:
    config = AttentionConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
