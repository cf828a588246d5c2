"""Feature-map variance (Park & Kim 2022, §3.2, Fig. 9): for each tap, the unbiased
variance over spatial positions per sample and channel, averaged over samples and channels.
MSAs reduce it, convs and MLPs increase it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .features import capture


def variance_per_image(fmap: torch.Tensor) -> np.ndarray:
    """(B,): for each image, the mean over channels of Var_{H,W}(x[b, c]) (Bessel's
    correction). Their mean is ``feature_map_variance``."""
    if fmap.ndim != 4:
        raise ValueError(f"expected a B x C x H x W feature map; got shape {tuple(fmap.shape)}")
    if fmap.shape[-2] * fmap.shape[-1] < 2:
        raise ValueError(f"a {tuple(fmap.shape[-2:])} map has no spatial variance")
    return fmap.double().flatten(2).var(dim=-1, unbiased=True).mean(dim=1).cpu().numpy()


def feature_map_variance(fmap: torch.Tensor) -> float:
    """mean over (B, C) of Var_{H,W}(x[b, c]) with Bessel's correction."""
    return float(variance_per_image(fmap).mean())


@dataclass(frozen=True)
class VarianceTap:
    name: str
    kind: str
    depth: float
    variance: float
    per_image: np.ndarray | None = None  # (B,): each image's variance


@torch.no_grad()
def profile(model: nn.Module, images: torch.Tensor) -> list[VarianceTap]:
    """Feature-map variance at every tap; taps with 1x1 maps (no spatial variance) are
    skipped with a warning naming them."""
    out = []
    for t in capture(model, images):
        if t.tensor.shape[-2] * t.tensor.shape[-1] < 2:
            warnings.warn(f"tap {t.name}: a 1x1 map has no spatial variance; skipped",
                          stacklevel=2)
            continue
        v = variance_per_image(t.tensor)
        out.append(VarianceTap(t.name, t.kind, t.depth, float(v.mean()), v))
    return out
