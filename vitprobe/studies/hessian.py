"""Hessian max-eigenvalue spectra (Park & Kim 2022, Figs. 1c, 4, 6): top-k eigenvalues by
magnitude on many mini-batches of augmented training data, loss = NLL + l2.

vitprobe hessian --model vit-ti[,resnet-18] [--pool gap] [--num-batches N]
       [--at-epochs 0,1] [--per-block]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from vitprobe import hessian, plots
from vitprobe import spectra as vspectra
from vitprobe.board import Board
from vitprobe.features import block_parameter_groups
from vitprobe.solvers import DEFAULT_TOL

from . import cli
from .arguments import epoch_list, parse_epochs
from .cache import load_checkpoint, trained_model
from .config import StudyConfig, StudyResult, option
from .labels import slug, with_pooling
from .protocols import early_epoch, spectrum_loader
from .runspec import RunSpec


@dataclass(frozen=True)
class HessianConfig(StudyConfig):
    STUDY: ClassVar[str] = "hessian"

    num_batches: int | None = option(None, "mini-batches per spectrum (default: the preset's)",
                                     check=cli.positive_int)
    batch_size: int = option(16, "mini-batch size (the paper's)", check=cli.at_least_two)
    k: int = option(5, "top-k eigenvalues per mini-batch", check=cli.positive_int)
    tol: float = option(DEFAULT_TOL, "relative residual to certify, in (0, 1)",
                       check=cli.tolerance)
    weight_decay: float | None = option(None, "l2 coefficient added to the loss (default: the "
                                              "preset's weight decay)", check=cli.non_negative)
    mode: str = option("eval", "BatchNorm/dropout mode of the model during the products",
                       choices=("eval", "train"))
    clean: bool = option(False, "clean training images instead of augmented ones (labelled)")
    at_epochs: str | None = option(None, "comma-separated epochs of the training cache (0 = "
                                         "initialisation; default: the final model)",
                                   check=epoch_list)
    per_block: bool = option(False, "also the top eigenvalues of each block's own Hessian")
    early: bool = option(False, "also the spectra at each model's early checkpoint (the first "
                                "epoch at or after 10 % of its training)")


@dataclass(kw_only=True)
class HessianResult(StudyResult):
    """Per model label: its run, its spectra (``"final"`` or ``"epoch N"``: the
    ``Spectrum.to_dict`` of each) and, with ``per_block``, each block's top eigenvalues."""

    FILE: ClassVar[str] = "hessian.json"

    @property
    def labels(self) -> list[str]:
        return list(self.data["models"])

    def spectrum(self, label: str, at: str = "final") -> vspectra.Spectrum:
        """The spectrum of model ``label`` (``at``: "final" or "epoch N")."""
        return vspectra.Spectrum.from_dict(self.data["models"][label]["spectra"][at])

    @property
    def eigenvalues(self) -> dict[str, np.ndarray]:
        """Per model label, the final model's top-k eigenvalues, one row per mini-batch."""
        return {label: self.spectrum(label).eigenvalues for label in self.labels}

    def early_eigenvalues(self) -> dict[str, np.ndarray]:
        """Per model label measured at its early checkpoint (``--early``), those eigenvalues."""
        out = {}
        for label in self.labels:
            early = self.data["models"][label].get("early_epoch")
            if early is not None:
                out[label] = self.spectrum(label, f"epoch {early}").eigenvalues
        return out


def run(config: HessianConfig) -> HessianResult:
    """The spectra of every model ``config`` names; the result is saved (after each model) to
    ``config.out``, the figures beside it."""
    device = cli.resolve_device(config.device)
    rank, world, group = cli.process_group()
    names = cli.model_names(config)
    epochs_asked = parse_epochs(config.at_epochs)
    for name in names:  # every --at-epochs must exist in every model's training, checked
        spec = RunSpec.from_config(config, name, device)  # before anything is trained
        last = math.ceil(spec.recipe().epochs)
        bad = [e for e in epochs_asked or [] if e > last]
        if bad:
            raise ValueError(f"--at-epochs {','.join(map(str, bad))}: {name}'s training has "
                             f"epochs 0..{last} (0 = initialisation)")
    out = Path(config.out)
    settings = {**config.to_dict(), "device": device,
                "torch_threads": torch.get_num_threads(), "world_size": world}
    result = HessianResult(record={"models": {}}, config=settings)
    record = result.record
    board = Board(Path(config.tensorboard) / "hessian" if config.tensorboard and rank == 0
                  else None)
    spectra: dict[str, np.ndarray] = {}
    block_rows: list[dict] = []
    for name in names:
        spec = RunSpec.from_config(config, name, device)
        r = spec.recipe()
        num_batches = config.num_batches or r.hessian_batches
        wd = r.weight_decay if config.weight_decay is None else config.weight_decay
        model, info = trained_model(spec, config.checkpoint)
        label = spec.label
        epochs = [None] if epochs_asked is None else epochs_asked
        per_model = {"run": info, "spectra": {}}
        if config.early:
            per_model["early_epoch"] = early_epoch(spec)
            epochs = [e for e in epochs if e != per_model["early_epoch"]]
            epochs.insert(0, per_model["early_epoch"])
        # one loader per model: iterate(0) yields the same mini-batches at every epoch
        loader = spectrum_loader(spec, config.batch_size, config.clean)
        final = {k: v.clone() for k, v in model.state_dict().items()}
        for epoch in epochs:
            if epoch is None:
                model.load_state_dict(final)
            else:
                ckpt = (Path(info.get("run_dir", "")) / ("init.safetensors" if epoch == 0 else
                        f"epochs/epoch-{epoch:03d}.safetensors"))
                if not ckpt.is_file():
                    raise ValueError(f"the cache holds no checkpoint for epoch {epoch} of {name} "
                                     f"({ckpt}); allowed: 0..{math.ceil(spec.recipe().epochs)}")
                load_checkpoint(model, ckpt, name)
            # under torchrun every rank takes its slice of each mini-batch; HVPs all-reduce
            batches = ((x[rank::world], y[rank::world]) for x, y in loader.iterate(0))
            s = vspectra.spectrum(model, F.cross_entropy, batches, num_batches, k=config.k,
                                  tol=config.tol, seed=config.seed,
                                  progress=not config.quiet and rank == 0, mode=config.mode,
                                  weight_decay=wd, group=group)
            key = "final" if epoch is None else f"epoch {epoch}"
            per_model["spectra"][key] = s.to_dict()
            shown = with_pooling(label, model)  # the same label in every figure
            spectra[shown if len(epochs) == 1 else f"{shown}, {key}"] = s.eigenvalues
            board.scalar(f"hessian/{slug(label)}/nep", s.nep(), epoch or 0)
            board.scalar(f"hessian/{slug(label)}/ape", s.ape(), epoch or 0)
            if rank == 0:
                print(f"{label} [{key}]: NEP {s.nep():.3f}  APE {s.ape():.4g}  "
                      f"converged {int(s.converged.sum())}/{s.converged.size}  "
                      f"{s.num_hvps} HVPs  {s.seconds:.0f} s")
        model.load_state_dict(final)  # the final weights back for the per-block spectra
        if config.per_block:
            x, y = next(loader.iterate(0))
            for tap, kind, params in block_parameter_groups(model):
                t0 = time.perf_counter()
                e = hessian.top_eigenvalues(model, F.cross_entropy,
                                            (x[rank::world], y[rank::world]),
                                            k=min(config.k, 3), tol=config.tol,
                                            seed=config.seed, mode=config.mode, params=params,
                                            group=group)
                block_rows.append({"model": label, "block": tap, "kind": kind,
                                   "num_params": int(sum(dict(model.named_parameters())[p]
                                                         .numel() for p in params)),
                                   "max_eigenvalue": float(e.eigenvalues[0]),
                                   **e.to_dict(), "seconds": time.perf_counter() - t0})
            per_model["per_block"] = [r for r in block_rows if r["model"] == label]
        record["models"][label] = per_model
        if rank == 0:  # each model's spectra as soon as they are done
            result.save(out)
    if rank != 0:
        return result
    path = out / HessianResult.FILE
    figs = plots.spectrum_figure(spectra, out / "hessian",
                                 title=f"Hessian max eigenvalue spectra ({config.data}, "
                                       f"{'clean' if config.clean else 'augmented'} training data)")
    board.image("hessian/spectra", figs[0])
    board.close()
    print(f"results: {path}")
    print(f"figure:  {figs[0]} (+ .pdf)")
    if block_rows:
        bf = plots.per_block_figure(block_rows, out / "hessian_per_block")
        print(f"per-block figure: {bf[0]}")
    return result


def main(argv: list[str] | None = None) -> int:
    config = HessianConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
