"""The protocols studies share, as typed functions of a ``RunSpec``: the data a Hessian
spectrum or a loss landscape is measured on, the paper's spectrum with the preset's
settings, a model's landscape, its NLL. Studies import these, never each other's entry
points."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vitprobe import data as vdata
from vitprobe import landscape, spectra

from .runspec import RunSpec

# the early checkpoint: the first epoch checkpoint at or after this share of training. Park &
# Kim 2022 read spectra during training as well as at its end (Fig. 1c); the findings are
# decided on the final weights and this checkpoint's spectra are reported beside them
EARLY_FRACTION = 0.1


def early_epoch(spec: RunSpec) -> int:
    """The 1-based epoch of ``spec``'s early checkpoint: ceil(EARLY_FRACTION · epochs) of its
    recipe (2 of vit-mini's 12, 1 of a CNN's 10, 20 of a 6 % subset's 200)."""
    return max(1, math.ceil(EARLY_FRACTION * math.ceil(spec.recipe().epochs)))


def early_checkpoint(spec: RunSpec) -> Path:
    """Where the checkpoint cache keeps ``spec``'s early checkpoint (``early_epoch``)."""
    return spec.run_dir / "epochs" / f"epoch-{early_epoch(spec):03d}.safetensors"


def spectrum_loader(spec: RunSpec, batch_size: int, clean: bool) -> vdata.Loader:
    """Seeded mini-batches of the spec's training data (its own subset), augmented as its
    recipe says unless ``clean``; ``iterate(0)`` gives the same batches every time."""
    r = spec.recipe()
    train = vdata.load(spec.data, "train", spec.data_dir, spec.download, spec.data_fraction,
                       spec.seed)
    # mixup/cutmix give soft targets, which NLL does not take: crops, flips, RandAugment stay
    augment = vdata.Augment() if clean else vdata.Augment(
        crop_padding=r.augment.crop_padding, flip=r.augment.flip,
        randaugment=r.augment.randaugment)
    batch_size = min(batch_size, len(train))  # a tiny subset still gives one mini-batch
    return vdata.Loader(train, batch_size, shuffle=True, augment=augment, seed=spec.seed + 1,
                        drop_last=True, device=spec.device)


def preset_spectrum(spec: RunSpec, model, num_batches: int | None = None, seed: int = 0,
                    progress: bool = True) -> spectra.Spectrum:
    """The paper's protocol with the preset's settings: top-5 by magnitude on mini-batches of
    16 augmented training images (of the spec's own training subset), NLL + l2 with the
    recipe's weight decay."""
    r = spec.recipe()
    loader = spectrum_loader(spec, 16, clean=False).iterate(0)
    return spectra.spectrum(model, F.cross_entropy, loader, num_batches or r.hessian_batches,
                            k=5, seed=seed, progress=progress, weight_decay=r.weight_decay)


def landscape_data(spec: RunSpec, num_images: int, clean_test: bool) -> list:
    """``num_images`` augmented training images (the spectra's loader), or the first clean
    test images, in batches of 256."""
    if clean_test:
        test = vdata.load(spec.data, "test", spec.data_dir, spec.download)
        loader = vdata.Loader(test.subset(slice(0, num_images)), 256, device=spec.device)
        return list(loader.iterate(0))
    loader = spectrum_loader(spec, 256, clean=False)
    batches, n = [], 0
    for x, y in loader.iterate(0):
        take = min(len(y), num_images - n)
        batches.append((x[:take], y[:take]))
        n += take
        if n >= num_images:
            break
    return batches


def mean_loss(model, batches: list) -> float:
    """The NLL of ``model`` (as it is: call ``.eval()`` first) averaged over the images of
    ``batches``."""
    return float(nll_per_image(model, batches).mean())


def nll_per_image(model: torch.nn.Module, batches: list) -> np.ndarray:
    """Each image's NLL under ``model`` (as it is: call ``.eval()`` first)."""
    with torch.no_grad():
        return torch.cat([F.cross_entropy(model(x), y, reduction="none").cpu()
                          for x, y in batches]).double().numpy()


@dataclass(frozen=True)
class LandscapeOptions:
    """A loss-landscape grid: ``steps`` points per axis over [-span, span], directions
    normalised by ``norm`` ("filter", "layer", "paper" or None), the paper's l2 term
    ``l2_coef`` x sum of parameter norms, BN statistics re-estimated at every point when
    ``recalibrate_bn``."""

    steps: int = 21
    span: float = 1.0
    norm: str | None = "filter"
    l2_coef: float = 0.05
    recalibrate_bn: bool = False
    progress: bool = True


def model_landscape(model, batches, options: LandscapeOptions, seed: int, resume: Path,
                    group=None) -> dict:
    """A 2-D surface and a 1-D slice (twice as fine) along two seeded random directions."""
    o = options
    d1 = landscape.random_direction(model, norm=o.norm, seed=seed)
    d2 = landscape.random_direction(model, norm=o.norm, seed=seed + 1)
    loss = dict(l2_coef=o.l2_coef, bn_data=batches if o.recalibrate_bn else None, group=group)
    s2 = landscape.surface(model, F.cross_entropy, batches, (d1, d2), (o.steps, o.steps),
                           o.span, resume_path=resume, progress=o.progress, **loss)
    s1 = landscape.surface(model, F.cross_entropy, batches, (d1,), 2 * o.steps - 1, o.span,
                           **loss)
    return {"surface": s2, "slice": s1}


if __name__ == "__main__":
    raise SystemExit("studies.protocols is a library module, not a command; see: vitprobe --help")
