"""Hessian max-eigenvalue spectra (Park & Kim 2022, Figs. 1c, 4, 6): top-k eigenvalues by
magnitude on many mini-batches of augmented training data, loss = NLL + l2.

python -m studies.hessian --model vit-ti[,resnet-18] [--pool gap] [--num-batches N]
       [--at-epochs 0,1] [--per-block]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vitprobe import hessian, plots, results
from vitprobe import spectra as vspectra
from vitprobe.board import Board
from vitprobe.features import block_parameter_groups

from . import cli
from .cache import RunSpec, load_checkpoint, read_results, slug, trained_model
from .protocols import spectrum_loader


@dataclass(frozen=True)
class SpectraSummary:
    """What a hessian study measured: per model label, the final model's spectrum, one row
    of top-k eigenvalues per mini-batch."""

    eigenvalues: dict[str, np.ndarray]


def read_summary(folder: Path) -> SpectraSummary:
    """The summary of the hessian study whose results are in ``folder``."""
    models = read_results(Path(folder) / "hessian.json")["models"]
    return SpectraSummary({label: np.asarray(m["spectra"]["final"]["eigenvalues"], dtype=float)
                           for label, m in models.items()})


def parser() -> cli.ArgumentParser:
    p = cli.base_parser("studies.hessian", __doc__)
    p.add_argument("--num-batches", type=cli.positive_int, default=None,
                   help="mini-batches per spectrum (default: the preset's)")
    p.add_argument("--batch-size", type=cli.positive_int, default=16,
                   help="mini-batch size (default: %(default)s, the paper's)")
    p.add_argument("--k", type=cli.positive_int, default=5,
                   help="top-k eigenvalues per mini-batch (default: %(default)s)")
    p.add_argument("--tol", type=cli.tolerance, default=1e-3,
                   help="relative residual to certify, in (0, 1) (default: %(default)s)")
    p.add_argument("--weight-decay", type=cli.non_negative, default=None,
                   help="l2 coefficient added to the loss (default: the preset's weight decay)")
    p.add_argument("--mode", choices=("eval", "train"), default="eval")
    p.add_argument("--clean", action="store_true",
                   help="clean training images instead of augmented ones (labelled)")
    p.add_argument("--at-epochs", default=None,
                   help="comma-separated epochs of the training cache (0 = initialisation)")
    p.add_argument("--per-block", action="store_true",
                   help="also the top eigenvalues of each block's own Hessian")
    return p


def parse_epochs(text: str | None) -> list[int] | None:
    """'0,1,2' -> [0, 1, 2]; None stays None (the final model)."""
    if text is None:
        return None
    try:
        epochs = [int(e) for e in text.split(",") if e.strip()]
    except ValueError:
        epochs = []
    if not epochs or min(epochs) < 0:
        raise ValueError(f"--at-epochs takes comma-separated epochs >= 0; got {text!r}")
    return epochs


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cli.setup_logging(args.quiet)
    device = cli.resolve_device(args.device)
    rank, world, group = cli.process_group()
    names = cli.model_names(args)
    epochs_asked = parse_epochs(args.at_epochs)
    for name in names:  # every --at-epochs must exist in every model's training, checked
        spec = RunSpec.from_args(args, name, device)  # before anything is trained
        last = math.ceil(spec.recipe().epochs)
        bad = [e for e in epochs_asked or [] if e > last]
        if bad:
            raise ValueError(f"--at-epochs {','.join(map(str, bad))}: {name}'s training has "
                             f"epochs 0..{last} (0 = initialisation)")
    out = Path(args.out)
    config = {**vars(args), "device": device, "torch_threads": torch.get_num_threads(),
              "world_size": world}
    record: dict = {"models": {}}
    board = Board(Path(args.tensorboard) / "hessian" if args.tensorboard and rank == 0 else None)
    spectra: dict[str, np.ndarray] = {}
    block_rows: list[dict] = []
    for name in names:
        spec = RunSpec.from_args(args, name, device)
        r = spec.recipe()
        num_batches = args.num_batches or r.hessian_batches
        wd = r.weight_decay if args.weight_decay is None else args.weight_decay
        if num_batches < 1 or args.k < 1 or args.batch_size < 2:
            raise ValueError("--num-batches, --k must be >= 1 and --batch-size >= 2")
        model, info = trained_model(spec, args.checkpoint)
        label = spec.label
        epochs = [None] if epochs_asked is None else epochs_asked
        per_model = {"run": info, "spectra": {}}
        # one loader per model: iterate(0) yields the same mini-batches at every epoch
        loader = spectrum_loader(spec, args.batch_size, args.clean)
        for epoch in epochs:
            if epoch is not None:
                ckpt = (Path(info.get("run_dir", "")) / ("init.safetensors" if epoch == 0 else
                        f"epochs/epoch-{epoch:03d}.safetensors"))
                if not ckpt.is_file():
                    raise ValueError(f"the cache holds no checkpoint for epoch {epoch} of {name} "
                                     f"({ckpt}); allowed: 0..{math.ceil(spec.recipe().epochs)}")
                load_checkpoint(model, ckpt, name)
            # under torchrun every rank takes its slice of each mini-batch; HVPs all-reduce
            batches = ((x[rank::world], y[rank::world]) for x, y in loader.iterate(0))
            op = hessian.OperatorSpec(model, F.cross_entropy, batches, mode=args.mode,
                                      weight_decay=wd, group=group)
            s = vspectra.spectrum(op, num_batches, k=args.k, tol=args.tol, seed=args.seed,
                                  progress=not args.quiet and rank == 0)
            key = "final" if epoch is None else f"epoch {epoch}"
            per_model["spectra"][key] = s.to_dict()
            spectra[label if len(epochs) == 1 else f"{label}, {key}"] = s.eigenvalues
            board.scalar(f"hessian/{slug(label)}/nep", s.nep(), epoch or 0)
            board.scalar(f"hessian/{slug(label)}/ape", s.ape(), epoch or 0)
            if rank == 0:
                print(f"{label} [{key}]: NEP {s.nep():.3f}  APE {s.ape():.4g}  "
                      f"converged {int(s.converged.sum())}/{s.converged.size}  "
                      f"{s.num_hvps} HVPs  {s.seconds:.0f} s")
        if args.per_block:
            x, y = next(loader.iterate(0))
            for tap, kind, params in block_parameter_groups(model):
                t0 = time.perf_counter()
                op = hessian.OperatorSpec(model, F.cross_entropy, (x[rank::world], y[rank::world]),
                                          mode=args.mode, params=params, group=group)
                e = hessian.top_eigenvalues(op, k=min(args.k, 3), tol=args.tol, seed=args.seed)
                block_rows.append({"model": label, "block": tap, "kind": kind,
                                   "num_params": int(sum(dict(model.named_parameters())[p]
                                                         .numel() for p in params)),
                                   "max_eigenvalue": float(e.eigenvalues[0]),
                                   **e.to_dict(), "seconds": time.perf_counter() - t0})
            per_model["per_block"] = [r for r in block_rows if r["model"] == label]
        record["models"][label] = per_model
        if rank == 0:  # each model's spectra as soon as they are done
            results.save_result(out / "hessian.json", record, config, args.seed)
    if rank != 0:
        return 0
    path = out / "hessian.json"
    figs = plots.spectrum_figure(spectra, out / "hessian",
                                 title=f"Hessian max eigenvalue spectra ({args.data}, "
                                       f"{'clean' if args.clean else 'augmented'} training data)")
    board.image("hessian/spectra", figs[0])
    board.close()
    print(f"results: {path}")
    print(f"figure:  {figs[0]} (+ .pdf)")
    if block_rows:
        bf = plots.per_block_figure(block_rows, out / "hessian_per_block")
        print(f"per-block figure: {bf[0]}")
    return 0


if __name__ == "__main__":
    cli.run(main)
