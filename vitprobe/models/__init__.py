"""The model registry: ``create_model(name, num_classes, in_chans, img_size, **overrides)``.

Names are lower case and hyphenated (``vit-ti``, ``resnet-18``, ``alternet-18``);
``timm:<name>`` passes through to ``timm.create_model``. The table of names lives in
``registry`` (plain data: listing or checking a name imports no torch); a family's file is
imported when one of its models is built. Every model of ours lists its probe taps
(``probe_taps()``) so ``vitprobe`` can read it without importing this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .registry import CNN_FAMILIES, POOLS, ModelId, entry, family, list_models

if TYPE_CHECKING:
    from torch import nn


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                 **overrides) -> nn.Module:
    """Build a registered model. Unknown name or override -> ValueError naming the allowed."""
    if name.startswith("timm:"):
        import timm

        timm_name = name[len("timm:"):]
        if timm_name not in timm.list_models():
            raise ValueError(f"unknown timm model {timm_name!r}; see timm.list_models()")
        try:
            return timm.create_model(timm_name, pretrained=False, num_classes=num_classes,
                                     in_chans=in_chans, img_size=img_size, **overrides)
        except TypeError:  # a family without an img_size argument (CNNs)
            return timm.create_model(timm_name, pretrained=False, num_classes=num_classes,
                                     in_chans=in_chans, **overrides)
    e = entry(name)
    bad = sorted(set(overrides) - set(e.overrides))
    if bad:
        raise ValueError(f"model {name} does not take override(s) {', '.join(bad)}; "
                         f"allowed: {', '.join(e.overrides)}")
    builder = getattr(import_module(f"{__name__}.{e.module}"), e.builder)
    return builder(num_classes, in_chans, img_size, **{**e.defaults, **overrides})


__all__ = ["CNN_FAMILIES", "POOLS", "ModelId", "create_model", "family", "list_models"]
