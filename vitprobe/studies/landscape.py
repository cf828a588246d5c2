"""Loss landscapes (Park & Kim 2022, Fig. 1a; Li et al. 2018): a 2-D surface (contour and 3-D
plot) and 1-D slices along filter-normalised random directions. By default the loss is the
l2-regularised NLL on augmented training data, as the paper insists.

vitprobe landscape --model vit-ti[,resnet-18] [--steps 21] [--span 1] [--clean-test]
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from vitprobe import landscape, plots, results

from . import cli
from .cache import trained_model
from .config import StudyConfig, StudyResult, option
from .labels import slug, with_pooling
from .protocols import LandscapeOptions, landscape_data, model_landscape
from .runspec import RunSpec


@dataclass(frozen=True)
class LandscapeConfig(StudyConfig):
    STUDY: ClassVar[str] = "landscape"

    steps: int = option(21, "grid points per axis", check=cli.at_least_two)
    span: float = option(1.0, "the grid covers [-span, span]^2 in units of the normalised "
                              "directions", check=cli.positive_number)
    num_images: int = option(512, "training images the loss is averaged over",
                             check=cli.positive_int)
    norm: str = option("filter", "direction normalisation: filter (Li et al.), layer, paper "
                                 "(the paper's code) or none",
                       choices=("filter", "layer", "paper", "none"))
    l2_coef: float = option(0.05, "the paper's l2 term: coef x sum of parameter norms (0 to "
                                  "drop)", check=cli.non_negative)
    clean_test: bool = option(False, "clean test images instead of augmented training images "
                                     "(labelled)")
    recalibrate_bn: bool = option(False, "re-estimate BN statistics at every grid point")
    trajectory: bool = option(False, "also the training trajectory from the cache's epoch "
                                     "checkpoints (Fig. 1b polar view, and Li et al.'s PCA "
                                     "projection)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trajectory:
            self.refuse(checkpoint="--trajectory reads the cached run's epoch checkpoints")


@dataclass(kw_only=True)
class LandscapeResult(StudyResult):
    """What the loss is (``data``) and per model label its 2-D surface, 1-D slice, run and,
    with ``trajectory``, the training trajectory's coordinates."""

    FILE: ClassVar[str] = "landscape.json"


def trajectory_of(run_dir: str) -> landscape.Trajectory:
    """θ_0 (init.safetensors) and every epoch checkpoint of a cached run."""
    run = Path(run_dir)
    paths = [run / "init.safetensors"] + sorted((run / "epochs").glob("epoch-*.safetensors"))
    if len(paths) < 2 or not paths[0].is_file():
        raise ValueError(f"{run} keeps no epoch checkpoints for a trajectory")
    states = [results.load_weights(p) for p in paths]
    return landscape.trajectory(states)


def run(config: LandscapeConfig) -> LandscapeResult:
    """The loss surfaces (and trajectories) of every model ``config`` names, saved to
    ``config.out`` with NPZ and VTK grids and the figures."""
    device = cli.resolve_device(config.device)
    rank, _, group = cli.process_group()  # under torchrun, grid points are dealt to ranks
    out = Path(config.out)
    options = LandscapeOptions(config.steps, config.span,
                               None if config.norm == "none" else config.norm, config.l2_coef,
                               config.recalibrate_bn, progress=not config.quiet)
    record, surfaces, titles = {}, {}, {}
    for name in cli.model_names(config):
        spec = RunSpec.from_config(config, name, device)
        label = spec.label
        model, info = trained_model(spec, config.checkpoint)
        batches = landscape_data(spec, config.num_images, config.clean_test)
        res = model_landscape(model, batches, options, config.seed,
                              out / f"landscape_{slug(label)}.partial.npz", group)
        surfaces[label] = res
        titles[label] = with_pooling(label, model)
        s = res["surface"]
        if rank != 0:
            continue
        c = s.loss[config.steps // 2, config.steps // 2]
        print(f"{label}: centre loss {c:.4f}, max on grid {np.nanmax(s.loss):.4f}, "
              f"{s.seconds:.0f} s")
        record[label] = {"surface": s.to_dict(), "slice": res["slice"].to_dict(), "run": info}
        if config.trajectory:
            t = trajectory_of(info["run_dir"])
            res["trajectory"] = t
            record[label]["trajectory"] = {"radius": t.radius, "angle": t.angle,
                                           "pca_coords": t.pca_coords,
                                           "explained_variance": t.explained_variance}
    what = ("clean test data" if config.clean_test else "augmented training data") + \
        (f", NLL + {config.l2_coef}·Σ‖W‖" if config.l2_coef else ", NLL")
    result = LandscapeResult(record={"data": what, "models": record}, config=config.to_dict())
    if rank != 0:
        return result
    path = result.save(out)
    # the grids for other tools: NPZ (coordinates and loss per model) and ParaView's VTK
    grids = {}
    for k, v in surfaces.items():
        name = slug(k)
        grids.update({f"{name}/alpha": v["surface"].coords[0],
                      f"{name}/beta": v["surface"].coords[1], f"{name}/loss": v["surface"].loss})
        landscape.to_vtk(v["surface"], out / f"landscape_{name}.vtk")
    buf = io.BytesIO()
    np.savez(buf, **grids)
    results.atomic_write_bytes(out / "landscape.npz", buf.getvalue())
    fig = plots.landscape_figure({titles[k]: v for k, v in surfaces.items()}, out / "landscape",
                                 title=f"loss landscape ({what})")
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    if config.trajectory:
        tf = plots.trajectory_figure({titles[k]: v["trajectory"] for k, v in surfaces.items()},
                                     out / "trajectory")
        print(f"trajectory: {tf[0]} (+ .pdf)" if tf else "trajectory: not drawn (every model "
              "has fewer than 3 checkpoints)")
    return result


def main(argv: list[str] | None = None) -> int:
    config = LandscapeConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
