"""Small-data study (Park & Kim 2022, Figs. 3 and 4): train each model on class-stratified
fractions of the training set — each fraction for as many optimiser steps as the full data
set, so that less data does not also mean less training — then training NLL (augmented
training data) against test error (F5: ViT does not overfit small data), and the Hessian
spectra per fraction (F3: less data, more negative eigenvalues).

vitprobe subsets --model vit-ti,resnet-18 --fractions 0.02,0.06,0.25,1.0
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from vitprobe import plots, results
from vitprobe.spectra import Spectrum

from . import cli
from .arguments import fraction_list, parse_fractions
from .cache import final_test_accuracy, load_checkpoint, trained_model
from .config import StudyConfig, StudyResult, option
from .protocols import (
    early_checkpoint,
    early_epoch,
    landscape_data,
    nll_per_image,
    preset_spectrum,
)
from .runspec import RunSpec


@dataclass(frozen=True)
class FractionRun:
    """One model trained on one fraction of the training set (for the full set's number of
    steps): its training NLL per augmented training image, test accuracy (a fraction),
    optimiser steps, and its Hessian spectrum where the study took one."""

    model: str
    fraction: float
    train_nll_per_image: np.ndarray
    test_acc: float
    steps: int | None
    eigenvalues: np.ndarray | None = None
    early_eigenvalues: np.ndarray | None = None  # at the early checkpoint, where taken

    @property
    def train_nll(self) -> float:
        return float(self.train_nll_per_image.mean())


@dataclass(frozen=True)
class SubsetsConfig(StudyConfig):
    STUDY: ClassVar[str] = "subsets"

    model: str = option("vit-ti,resnet-18", "model name(s), comma-separated (vitprobe models "
                                            "lists them)")
    fractions: str = option("0.02,0.06,0.25,1.0", "training-set fractions in (0, 1], "
                                                  "comma-separated",
                            check=fraction_list)
    num_images: int = option(512, "augmented training images for the training NLL",
                             check=cli.positive_int)
    num_batches: int | None = option(None, "Hessian mini-batches (default: the preset's)",
                                     check=cli.positive_int)
    hessian_models: str | None = option(None, "models whose spectra to compute, among --model "
                                              "('none': no spectra; default: every --model)")
    early: bool = option(False, "also the spectra at each probed model's early checkpoint (the "
                                "first epoch at or after 10 % of its training)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.refuse(data_fraction="the fractions are --fractions",
                    checkpoint="each fraction is its own trained model (from the cache)")
        if self.early and self.hessian_models is not None and not [
                m for m in self.hessian_models.split(",") if m and m != "none"]:
            raise ValueError(f"--early adds spectra at the early checkpoint; --hessian-models "
                             f"{self.hessian_models} takes none: name models, or drop --early")


@dataclass(kw_only=True)
class SubsetsResult(StudyResult):
    """One row per model and fraction: training NLL (per image and mean), test accuracy,
    optimiser steps, run and, where taken, the Hessian spectrum with its NEP and APE."""

    FILE: ClassVar[str] = "subsets.json"

    def runs(self) -> dict[str, list[FractionRun]]:
        """Per model label, its runs by ascending data fraction."""
        out: dict[str, list[FractionRun]] = {}
        for r in self.data:
            spectra = [None if r.get(key) is None else Spectrum.from_dict(r[key]).eigenvalues
                       for key in ("spectrum", "early_spectrum")]
            out.setdefault(r["model"], []).append(FractionRun(
                r["model"], float(r["fraction"]),
                np.asarray(r["train_nll_per_image"], dtype=float), float(r["test_acc"]),
                r.get("steps"), *spectra))
        return {k: sorted(v, key=lambda run: run.fraction) for k, v in out.items()}


def figure(rows: list[dict], path: Path) -> list[Path]:
    """Fig. 3's view: training NLL and test error against the data fraction, per model."""
    fig, axes = plots.plt.subplots(1, 2, figsize=(plots.TWO_COLUMNS, 2.6))
    for i, model in enumerate(dict.fromkeys(r["model"] for r in rows)):
        mine = [r for r in rows if r["model"] == model]
        f = [r["fraction"] for r in mine]
        kw = dict(color=plots.PALETTE[i % len(plots.PALETTE)], marker="o", label=model)
        axes[0].plot(f, [r["train_nll"] for r in mine], **kw)
        axes[1].plot(f, [100 * (1 - r["test_acc"]) for r in mine], **kw)
    for ax, what in zip(axes, ("training NLL (augmented)", "test error (%)")):
        plots.fraction_axis(ax, sorted({r["fraction"] for r in rows}))
        ax.set_ylabel(what)
    axes[0].legend()
    return plots.save(fig, path)


def run(config: SubsetsConfig) -> SubsetsResult:
    """Every model trained on every fraction (for the full set's number of steps) and probed;
    saved to ``config.out`` with a table and figures."""
    fractions = parse_fractions(config.fractions)
    device = cli.resolve_device(config.device)
    out = Path(config.out)
    models = cli.model_names(config)
    probed = models if config.hessian_models is None else [
        m for m in config.hessian_models.split(",") if m and m != "none"]
    if set(probed) - set(models):
        raise ValueError(f"--hessian-models must be among --model ({', '.join(models)}); "
                         f"got {config.hessian_models!r}")
    rows, spectra = [], {}
    for name in models:
        for fraction in fractions:
            spec = replace(RunSpec.from_config(config, name, device), data_fraction=fraction,
                           equal_steps=True)
            model, info = trained_model(spec, config.checkpoint)
            per_image = nll_per_image(model.eval(),
                                      landscape_data(spec, config.num_images, clean_test=False))
            nll = float(per_image.mean())
            steps = (info.get("metrics") or [{}])[-1].get("step")
            row = {"model": spec.label, "fraction": fraction, "train_nll": nll,
                   "train_nll_per_image": per_image, "steps": steps,
                   "test_acc": float(final_test_accuracy(info)), "run": info}
            if name in probed:
                s = preset_spectrum(spec, model, config.num_batches, config.seed, not config.quiet)
                row.update(nep=s.nep(), ape=s.ape(), spectrum=s.to_dict())
                spectra[f"{spec.label}, {fraction:g}"] = s.eigenvalues
                if config.early:  # the same mini-batches at the early checkpoint
                    load_checkpoint(model, early_checkpoint(spec), spec.run_name)
                    s = preset_spectrum(spec, model, config.num_batches, config.seed,
                                        not config.quiet)
                    row.update(early_epoch=early_epoch(spec), early_spectrum=s.to_dict())
            rows.append(row)
            print(f"{spec.label} on {fraction:g} of the data: train NLL {nll:.4f}, test error "
                  f"{100 * (1 - row['test_acc']):.2f} %" + (
                      f", NEP {row['nep']:.3f}, APE {row['ape']:.4g}" if "nep" in row else ""),
                  flush=True)
    header = ["model", "fraction", "steps", "train NLL (aug.)", "test error"] + \
        (["NEP", "APE"] if probed else [])
    text = results.markdown_table(header, (
        [r["model"], f"{r['fraction']:g}", r["steps"], f"{r['train_nll']:.4f}",
         f"{100 * (1 - r['test_acc']):.2f} %"] +
        ([f"{r['nep']:.3f}", f"{r['ape']:.4g}"] if "nep" in r else ["", ""] if probed else [])
        for r in rows))
    caption = (f"Each model trained on class-stratified fractions of {config.data}'s training "
               f"set for the full set's number of steps (preset {config.preset}, seed "
               f"{config.seed}). Train NLL: the NLL alone, mean over {config.num_images} "
               f"augmented training images; test error on the whole test set; NEP and APE of "
               f"the Hessian spectra (NLL + weight decay as l2): docs/GLOSSARY.md.")
    results.atomic_write_bytes(out / "subsets.md", (caption + "\n\n" + text + "\n").encode())
    result = SubsetsResult(record=rows, config=config.to_dict())
    path = result.save(out)
    figs = [figure(rows, out / "subsets")[0]]
    if spectra:
        figs.append(plots.spectrum_figure(spectra, out / "subsets_hessian",
                                          title="Hessian spectra per training-set fraction")[0])
    print(text)
    print(f"results: {path}\nfigures: {', '.join(map(str, figs))} (+ .pdf)")
    # the correlation F5 reads: does training NLL rise with test error as data shrinks?
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        if len(mine) > 2:
            c = np.corrcoef([r["train_nll"] for r in mine], [1 - r["test_acc"] for r in mine])
            print(f"{model}: correlation of training NLL and test error over fractions "
                  f"{c[0, 1]:+.2f}")
    return result


def main(argv: list[str] | None = None) -> int:
    config = SubsetsConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
