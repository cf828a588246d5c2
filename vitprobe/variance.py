"""Feature-map variance (Park & Kim 2022, §3.2, Fig. 9): for each tap, the unbiased
variance over spatial positions per sample and channel, averaged over samples and channels.
MSAs reduce it, convs and MLPs increase it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .features import capture


def feature_map_variance(fmap: torch.Tensor) -> float:
    """mean over (B, C) of Var_{H,W}(x[b, c]) with Bessel's correction."""
    if fmap.ndim != 4:
        raise ValueError(f"expected a B x C x H x W feature map; got shape {tuple(fmap.shape)}")
    return fmap.double().flatten(2).var(dim=-1, unbiased=True).mean().item()


@dataclass(frozen=True)
class VarianceTap:
    name: str
    kind: str
    depth: float
    variance: float


@torch.no_grad()
def profile(model: nn.Module, images: torch.Tensor) -> list[VarianceTap]:
    return [VarianceTap(t.name, t.kind, t.depth, feature_map_variance(t.tensor))
            for t in capture(model, images)]
