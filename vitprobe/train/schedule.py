"""The optimiser's parameter groups, the learning-rate schedule and progressive resizing."""

from __future__ import annotations

import torch
from torch import nn

from .recipe import Recipe

# how ``fit`` schedules the learning rate; runs cached under another schedule are not reused
# (``studies.runspec.run_config`` records it, with ``data.CROP_FLIP``)
SCHEDULE = "timm CosineLRScheduler per step, warmup_prefix, warmup_lr_init=Recipe.warmup_lr"


def lr_scheduler(optimizer: torch.optim.Optimizer, r: Recipe, total: int, warmup: int):
    """timm's ``CosineLRScheduler`` stepped per optimiser update: a linear warm-up over
    ``warmup`` steps from ``r.warmup_lr`` (update ``t`` < ``warmup`` trains at
    ``warmup_lr + t·(lr − warmup_lr)/warmup``), then half a cosine from ``r.lr`` to
    ``r.min_lr`` over the remaining ``total − warmup`` steps."""
    from timm.scheduler import CosineLRScheduler

    return CosineLRScheduler(optimizer, t_initial=max(1, total - warmup), lr_min=r.min_lr,
                             warmup_t=warmup, warmup_lr_init=r.warmup_lr, warmup_prefix=True,
                             t_in_epochs=False)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on 1-D tensors (biases, norms) and on the model's ``no_weight_decay()``."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train_size(step: int, steps_per_epoch: int,
               stages: tuple[tuple[float, int], ...]) -> int | None:
    """The image size training step ``step`` (0-based) runs at under ``Recipe.progressive``;
    None: the data's own size."""
    for until, size in stages:
        if step < round(until * steps_per_epoch):
            return int(size)
    return None
