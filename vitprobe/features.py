"""The adapter between probes and models: where a model's blocks are, what kind each is,
how its tokens map to a 2-D grid, and how to switch its attention to the explicit,
twice-differentiable path.

Our models implement ``probe_taps()`` (a list of ``(name, kind, module, port)``); timm's
ViT/DeiT/CaiT/ResNet/PiT/Swin and torchvision's ResNet are understood by inspection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

KINDS = ("embed", "conv", "msa", "mlp", "pool")


@dataclass(frozen=True)
class TapPoint:
    """Where to read a feature map: ``module``'s output (``port="output"``) or first input."""

    name: str
    kind: str
    module: nn.Module
    port: str = "output"


@dataclass(frozen=True)
class Tap:
    """A captured feature map, ``tensor`` (B, C, H, W), at normalised ``depth`` in [0, 1]."""

    name: str
    kind: str
    tensor: torch.Tensor
    depth: float = 0.0


@contextlib.contextmanager
def explicit_attention(model: nn.Module) -> Iterator[list[nn.Module]]:
    """Switch every attention module (timm's ``fused_attn`` flag, ours included) to the
    explicit softmax path for the duration; restore each flag afterwards, even on error.

    The explicit path is twice differentiable and exposes attention probabilities, which
    fused ``scaled_dot_product_attention`` is not and does not (REFERENCE.md §5).
    """
    switched = []
    try:
        for m in model.modules():
            if isinstance(getattr(m, "fused_attn", None), bool):
                switched.append((m, m.fused_attn))
                m.fused_attn = False
        yield [m for m, _ in switched]
    finally:
        for m, flag in switched:
            m.fused_attn = flag


def attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that compute attention (have a ``fused_attn`` flag and an ``attn_drop``)."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(getattr(m, "fused_attn", None), bool) and hasattr(m, "attn_drop")]


def _timm_blocks(model: nn.Module) -> list[TapPoint] | None:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential | nn.ModuleList) or len(blocks) == 0:
        return None
    first = blocks[0]
    if not (hasattr(first, "attn") and hasattr(first, "norm2") and hasattr(first, "mlp")):
        return None
    taps = []
    if hasattr(model, "patch_embed"):
        taps.append(TapPoint("patch_embed", "embed", model.patch_embed))
    for i, blk in enumerate(blocks):
        taps.append(TapPoint(f"blocks.{i}.msa", "msa", blk.norm2, "input"))
        taps.append(TapPoint(f"blocks.{i}.mlp", "mlp", blk))
    return taps


def _resnet_blocks(model: nn.Module) -> list[TapPoint] | None:
    names = [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(model, n)]
    if not names:
        return None
    stem = getattr(model, "act1", None) or getattr(model, "relu", None) or model.conv1
    taps = [TapPoint("stem", "embed", stem)]
    for n in names:
        for j, blk in enumerate(getattr(model, n)):
            taps.append(TapPoint(f"{n}.{j}", "conv", blk))
    return taps


def tap_points(model: nn.Module) -> list[TapPoint]:
    """The residual-stream taps of ``model`` (ours by protocol, timm/torchvision by shape)."""
    if hasattr(model, "probe_taps"):
        return [TapPoint(*t) for t in model.probe_taps()]
    for finder in (_timm_blocks, _resnet_blocks):
        taps = finder(model)
        if taps:
            return taps
    raise ValueError(f"cannot find the blocks of {type(model).__name__}: implement "
                     "probe_taps() or use a timm/torchvision ViT, DeiT, CaiT or ResNet")


def block_parameter_groups(model: nn.Module) -> list[tuple[str, str, list[str]]]:
    """Per block, the names of its own parameters: ``(tap name, kind, [param names])``.

    A transformer block splits in two: its MSA half (norm1, attn, ls1) and its MLP half
    (norm2, mlp, ls2) — so curvature of MSAs and MLPs can be compared (``--per-block``).
    """
    owner = {id(m): n for n, m in model.named_modules()}
    all_params = [n for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for tap in tap_points(model):
        if tap.port == "input" or tap.kind in ("msa", "mlp") and hasattr(tap.module, "norm2"):
            # a transformer half: find the block that owns norm2 (or is the block)
            if tap.port == "input":
                block_name = owner[id(tap.module)].rsplit(".", 1)[0]
                parts = ("norm1", "attn", "ls1")
            else:
                block_name = owner[id(tap.module)]
                parts = ("norm2", "mlp", "ls2")
            prefixes = tuple(f"{block_name}.{p}." for p in parts)
        else:
            prefixes = (owner[id(tap.module)] + ".",)
        names = [n for n in all_params if n.startswith(prefixes)]
        if names:
            groups.append((tap.name, tap.kind, names))
    return groups


def num_prefix_tokens(model: nn.Module) -> int:
    return int(getattr(model, "num_prefix_tokens", 0))
