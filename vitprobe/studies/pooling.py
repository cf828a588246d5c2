"""Class token vs GAP vs SeqPool (vs MAP) on the same data and seed (Park & Kim 2022, Fig. 6):
test accuracy, training NLL, 1-D/2-D loss landscapes on the same directions' normalisation
and scale, and Hessian spectra (NEP, APE).

vitprobe pooling [--pools cls,gap,seqpool,map] [--model vit-ti]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from vitprobe import plots, results
from vitprobe.models import family, list_models
from vitprobe.models.registry import POOLS

from . import cli
from .cache import final_test_accuracy, trained_model
from .config import StudyConfig, StudyResult, option
from .labels import with_pooling
from .protocols import (
    LandscapeOptions,
    landscape_data,
    mean_loss,
    model_landscape,
    preset_spectrum,
)
from .runspec import RunSpec


@dataclass(frozen=True)
class PoolingConfig(StudyConfig):
    STUDY: ClassVar[str] = "pooling"

    pools: str = option(",".join(POOLS), "the poolings compared, comma-separated",
                        check=cli.pools)
    steps: int = option(11, "landscape grid points per axis", check=cli.at_least_two)
    span: float = option(1.0, "the landscape grid spans [-span, span] per axis",
                         check=cli.positive_number)
    num_images: int = option(512, "training images of the landscape's loss",
                             check=cli.positive_int)
    num_batches: int | None = option(None, "Hessian mini-batches (default: the preset's)",
                                     check=cli.positive_int)
    l2_coef: float = option(0.05, "the landscape's l2 term coefficient, l2_coef * sum_p "
                                  "||theta_p||", check=cli.non_negative)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pool is not None:
            raise ValueError("--pool names one pooling of a trained model; this study "
                             "compares several: use --pools, e.g. --pools cls,gap")
        if "," in self.model or "@" in self.model:
            raise ValueError(f"--model takes one token model here; got {self.model!r}")
        self.refuse(checkpoint="each pooling is its own trained model (from the cache)")


@dataclass(kw_only=True)
class PoolingResult(StudyResult):
    """One row per pooling: test accuracy, training NLL, NEP, APE, the landscape's centre
    and maximum (NLL + l2), the spectrum, slice, surface and run."""

    FILE: ClassVar[str] = "pooling.json"


def vit_names() -> list[str]:
    return [m for m in list_models() if family(m) == "vit"]


def run(config: PoolingConfig) -> PoolingResult:
    """Every pooling of ``config.model`` trained (or taken from the cache) and probed on the same
    data, seed and directions' normalisation; saved to ``config.out`` with a table and figures."""
    pools = [q for q in config.pools.split(",") if q]
    if family(config.model) != "vit":
        raise ValueError(f"--pools needs a model of the vit family ({', '.join(vit_names())}); "
                         f"got {config.model!r}")
    device = cli.resolve_device(config.device)
    out = Path(config.out)
    rows, surfaces, spectra = [], {}, {}
    # the same directions' normalisation and grid for every pooling
    options = LandscapeOptions(config.steps, config.span, "filter", config.l2_coef,
                               progress=not config.quiet)
    for pool in pools:
        spec = replace(RunSpec.from_config(config, config.model, device), pool=pool)
        model, info = trained_model(spec, config.checkpoint)
        batches = landscape_data(spec, config.num_images, clean_test=False)
        nll = mean_loss(model, batches)
        land = model_landscape(model, batches, options, config.seed,
                               out / f"pooling_{pool}.partial.npz")
        s = preset_spectrum(spec, model, config.num_batches, config.seed, not config.quiet)
        acc = final_test_accuracy(info)
        label = with_pooling(spec.label, model)
        surfaces[label], spectra[label] = land, s.eigenvalues
        rows.append({"pool": pool, "test_acc": acc, "train_nll": nll, "nep": s.nep(),
                     "ape": s.ape(), "landscape_centre": float(
                         land["surface"].loss[config.steps // 2, config.steps // 2]),
                     "landscape_max": float(np.nanmax(land["surface"].loss)),
                     "spectrum": s.to_dict(), "slice": land["slice"].to_dict(),
                     "surface": land["surface"].to_dict(), "run": info})
    text = results.markdown_table(
        ["pool", "test acc", "train NLL (aug.)", "NEP", "APE", "loss at centre", "max on grid"],
        ([r["pool"], f"{100 * r['test_acc']:.2f} %" if r["test_acc"] is not None else "n/a",
          f"{r['train_nll']:.4f}", f"{r['nep']:.3f}", f"{r['ape']:.4g}",
          f"{r['landscape_centre']:.4f}", f"{r['landscape_max']:.4f}"] for r in rows))
    caption = (f"{config.model} with each pooling: preset {config.preset}, data {config.data}, "
               f"seed {config.seed}. Train NLL: the NLL alone on {config.num_images} augmented "
               f"training images; loss at centre and max on grid: the landscape's loss, NLL + "
               f"{config.l2_coef:g}·Σ‖θ‖ (the paper's ℓ2 term), on the same images over "
               f"[-{config.span:g}, {config.span:g}]² of filter-normalised directions; NEP and "
               f"APE: docs/GLOSSARY.md.")
    text = caption + "\n\n" + text
    results.atomic_write_bytes(out / "pooling.md", (text + "\n").encode())
    result = PoolingResult(record=rows, config=config.to_dict())
    path = result.save(out)
    f1 = plots.landscape_figure(surfaces, out / "pooling_landscape",
                                title="pooling: loss landscapes (augmented training data)")
    f2 = plots.spectrum_figure(spectra, out / "pooling_hessian",
                               title="pooling: Hessian max eigenvalue spectra")
    print(text)
    print(f"results: {path}\nfigures: {f1[0]}, {f2[0]} (+ .pdf); table: {out / 'pooling.md'}")
    return result


def main(argv: list[str] | None = None) -> int:
    config = PoolingConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
