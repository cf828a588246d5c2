"""Loss landscapes (Park & Kim 2022, Fig. 1a; Li et al. 2018): a 2-D surface (contour and 3-D
plot) and 1-D slices along filter-normalised random directions. By default the loss is the
l2-regularised NLL on augmented training data, as the paper insists.

python -m studies.landscape --model vit-ti[,resnet-18] [--steps 21] [--span 1] [--clean-test]
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from vitprobe import landscape, plots, results

from . import cli
from .cache import RunSpec, slug, trained_model, with_pooling
from .protocols import LandscapeOptions, landscape_data, model_landscape


def parser() -> cli.ArgumentParser:
    p = cli.base_parser("studies.landscape", __doc__)
    p.add_argument("--steps", type=cli.positive_int, default=21,
                   help="grid points per axis (default: %(default)s)")
    p.add_argument("--span", type=float, default=1.0, help="grid covers [-span, span]^2")
    p.add_argument("--num-images", type=cli.positive_int, default=512)
    p.add_argument("--norm", choices=("filter", "layer", "paper", "none"), default="filter")
    p.add_argument("--l2-coef", type=cli.non_negative, default=0.05,
                   help="the paper's l2 term: coef x sum of parameter norms (0 to drop)")
    p.add_argument("--clean-test", action="store_true",
                   help="clean test images instead of augmented training images (labelled)")
    p.add_argument("--recalibrate-bn", action="store_true",
                   help="re-estimate BN statistics at every grid point")
    p.add_argument("--trajectory", action="store_true",
                   help="also the training trajectory from the cache's epoch checkpoints "
                        "(Fig. 1b polar view, and Li et al.'s PCA projection)")
    return p


def trajectory_of(run_dir: str) -> landscape.Trajectory:
    """θ_0 (init.safetensors) and every epoch checkpoint of a cached run."""
    run = Path(run_dir)
    paths = [run / "init.safetensors"] + sorted((run / "epochs").glob("epoch-*.safetensors"))
    if len(paths) < 2 or not paths[0].is_file():
        raise ValueError(f"{run} keeps no epoch checkpoints for a trajectory")
    states = [results.load_weights(p) for p in paths]
    return landscape.trajectory(states)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cli.setup_logging(args.quiet)
    if args.steps < 2 or args.span <= 0 or args.num_images < 1:
        raise ValueError("--steps must be >= 2, --span > 0, --num-images >= 1")
    device = cli.resolve_device(args.device)
    rank, _, group = cli.process_group()  # under torchrun, grid points are dealt to ranks
    out = Path(args.out)
    options = LandscapeOptions(args.steps, args.span, None if args.norm == "none" else args.norm,
                               args.l2_coef, args.recalibrate_bn, progress=not args.quiet)
    record, surfaces, titles = {}, {}, {}
    for name in cli.model_names(args):
        spec = RunSpec.from_args(args, name, device)
        label = spec.label
        model, info = trained_model(spec, args.checkpoint)
        batches = landscape_data(spec, args.num_images, args.clean_test)
        res = model_landscape(model, batches, options, args.seed,
                              out / f"landscape_{slug(label)}.partial.npz", group)
        surfaces[label] = res
        titles[label] = with_pooling(label, model)
        s = res["surface"]
        if rank != 0:
            continue
        c = s.loss[args.steps // 2, args.steps // 2]
        print(f"{label}: centre loss {c:.4f}, max on grid {np.nanmax(s.loss):.4f}, "
              f"{s.seconds:.0f} s")
        record[label] = {"surface": s.to_dict(), "slice": res["slice"].to_dict(), "run": info}
        if args.trajectory:
            t = trajectory_of(info["run_dir"])
            res["trajectory"] = t
            record[label]["trajectory"] = {"radius": t.radius, "angle": t.angle,
                                           "pca_coords": t.pca_coords,
                                           "explained_variance": t.explained_variance}
    if rank != 0:
        return 0
    what = ("clean test data" if args.clean_test else "augmented training data") + \
        (f", NLL + {args.l2_coef}·Σ‖W‖" if args.l2_coef else ", NLL")
    path = results.save_result(out / "landscape.json", {"data": what, "models": record},
                               vars(args), args.seed)
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
    if args.trajectory:
        tf = plots.trajectory_figure({titles[k]: v["trajectory"] for k, v in surfaces.items()},
                                     out / "trajectory")
        print(f"trajectory: {tf[0]} (+ .pdf)")
    return 0


if __name__ == "__main__":
    cli.run(main)
