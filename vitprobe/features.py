"""The adapter between probes and models: where a model's blocks are, what kind each is,
how its tokens map to a 2-D grid, and the context managers that give a model back untouched
(``full_precision``, ``probe_mode``, with ``modes.eval_mode`` and ``modes.explicit_attention``:
flags restored even on error).

Our models implement ``probe_taps()`` (a list of ``(name, kind, module, port)``); timm's
ViT/DeiT/CaiT/ResNet/PiT/Swin and torchvision's ResNet are understood by inspection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .modes import eval_mode, explicit_attention

# "subsample": a block that changes the map's resolution (a stride-2 conv block, patch
# merging), reported apart from ordinary conv blocks as the paper shades them (Figs. 8, 9)
KINDS = ("embed", "conv", "subsample", "msa", "mlp", "pool")


@dataclass(frozen=True)
class TapPoint:
    """Where to read a feature map: ``module``'s output (``port="output"``) or its first
    input (``"input"``); ``"output_nhwc"`` / ``"input_nhwc"`` for channels-last maps such as
    Swin's."""

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


def _fp32_flags() -> list[tuple[object, str]]:
    """The (backend, attribute) pairs that let CUDA run float32 products in TF32: the
    ``fp32_precision`` settings where torch has them (mixing them with the older
    ``allow_tf32`` flags is an error there), else ``allow_tf32``."""
    b = torch.backends
    if hasattr(b.cuda.matmul, "fp32_precision") and hasattr(b.cudnn, "conv"):
        return [(b.cuda.matmul, "fp32_precision"), (b.cudnn.conv, "fp32_precision")]
    return [(b.cuda.matmul, "allow_tf32"), (b.cudnn, "allow_tf32")]


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """float32 matrix products and convolutions in IEEE float32 inside, not TF32 (cuDNN's
    convolutions default to TF32 on Ampere and later GPUs, whose 10-bit mantissa would put
    ~1e-3 relative noise into every Hessian-vector product); the settings restored after."""
    flags = _fp32_flags()
    saved = [getattr(obj, name) for obj, name in flags]
    try:
        for obj, name in flags:
            setattr(obj, name, "ieee" if name == "fp32_precision" else False)
        yield
    finally:
        for (obj, name), value in zip(flags, saved):
            setattr(obj, name, value)


@contextlib.contextmanager
def untouched(model: nn.Module) -> Iterator[None]:
    """Whatever a forward pass changes, put back afterwards, even on error: every buffer
    (BatchNorm's running statistics and counter, updated by a forward in train mode), every
    module's ``training`` flag, and the global random state (dropout masks draw from it;
    forked for the model's CUDA device too). A probe that runs the model as it is — in train
    mode if the user left it there — still gives it back bit-equal."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    flags = [(m, m.training) for m in model.modules()]
    cuda = sorted({b.device.index or 0 for b in model.parameters() if b.is_cuda})
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            for m, flag in flags:
                m.training = flag


def check_mode(mode: str) -> None:
    """A probe's mode: "eval" (BN running statistics) or "train" (batch statistics)."""
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train'; got {mode!r}")


@contextlib.contextmanager
def probe_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Put ``model`` in the probe's mode, in full float32 precision (``full_precision``);
    restore every module's ``training`` flag and the precision settings after.

    ``"train"`` switches only normalisation layers to batch statistics.
    """
    check_mode(mode)
    with eval_mode(model), full_precision():
        if mode == "train":
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm):
                    m.train()
        with explicit_attention(model):
            yield


def attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that compute attention: an ``attn_drop`` applied to the probabilities, and a
    ``fused_attn`` flag or their own projections (CaiT's talking-heads attention has no
    fused path)."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(getattr(m, "attn_drop", None), nn.Dropout)
            and (isinstance(getattr(m, "fused_attn", None), bool) or hasattr(m, "qkv")
                 or hasattr(m, "q"))]


def _transformer_blocks(model: nn.Module) -> list[TapPoint] | None:
    """timm's ViT, DeiT, CaiT, PiT and Swin by inspection: every module with ``attn``,
    ``norm2`` and ``mlp`` is a transformer block; the stream after its MSA residual is
    ``norm2``'s input. CaiT's class-attention blocks (class token only) have no map."""
    blocks = [(n, m) for n, m in model.named_modules()
              if all(hasattr(m, a) for a in ("attn", "norm2", "mlp"))
              and "token_only" not in n]
    if not blocks:
        return None
    taps = []
    # the embedding after the position embedding is added (the paper's code reads it there);
    # a model without one (Swin) is read at its patch embedding
    embed = getattr(model, "pos_drop", None) or getattr(model, "patch_embed", None)
    if isinstance(embed, nn.Module):
        nhwc = "swin" in type(model).__name__.lower()  # Swin keeps maps channels-last
        taps.append(TapPoint("embed", "embed", embed, "output_nhwc" if nhwc else "output"))
    for name, blk in blocks:
        nhwc = "_nhwc" if "swin" in type(blk).__name__.lower() else ""
        taps.append(TapPoint(f"{name}.msa", "msa", blk.norm2, "input" + nhwc))
        taps.append(TapPoint(f"{name}.mlp", "mlp", blk, "output" + nhwc))
    return taps


def _torchvision_vit_blocks(model: nn.Module) -> list[TapPoint] | None:
    """torchvision's VisionTransformer: ``encoder.layers`` of blocks with ``ln_1``,
    ``self_attention``, ``ln_2``, ``mlp``; the stream after the MSA residual is ``ln_2``'s
    input, the embedding is read after the position embedding (``encoder.dropout``)."""
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layers", None)
    if not isinstance(layers, nn.Sequential) or not all(
            hasattr(b, "ln_2") and hasattr(b, "self_attention") for b in layers):
        return None
    taps = [TapPoint("embed", "embed", encoder.dropout)]
    for name, blk in layers.named_children():
        taps.append(TapPoint(f"encoder.layers.{name}.msa", "msa", blk.ln_2, "input"))
        taps.append(TapPoint(f"encoder.layers.{name}.mlp", "mlp", blk))
    return taps


def _convnext_blocks(model: nn.Module) -> list[TapPoint] | None:
    """ConvNeXt, timm's (``stem``, ``stages[i].downsample``, ``stages[i].blocks``) and
    torchvision's (``features``: stem, then stages of ``CNBlock`` between downsampling
    layers): the stem, every block (conv) and every downsampling layer (subsample)."""
    if hasattr(model, "stem") and hasattr(model, "stages") and all(
            hasattr(st, "blocks") for st in model.stages):
        taps = [TapPoint("stem", "embed", model.stem)]
        for i, st in enumerate(model.stages):
            if not isinstance(getattr(st, "downsample", nn.Identity()), nn.Identity):
                taps.append(TapPoint(f"stages.{i}.downsample", "subsample", st.downsample))
            taps += [TapPoint(f"stages.{i}.blocks.{j}", "conv", b)
                     for j, b in enumerate(st.blocks)]
        return taps
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or not any(
            type(m).__name__ == "CNBlock" for m in features.modules()):
        return None
    taps = []
    for i, part in enumerate(features):
        blocks = [b for b in part.children() if type(b).__name__ == "CNBlock"]
        if i == 0:
            taps.append(TapPoint("features.0", "embed", part))
        elif blocks:
            taps += [TapPoint(f"features.{i}.{j}", "conv", b) for j, b in enumerate(blocks)]
        else:
            taps.append(TapPoint(f"features.{i}", "subsample", part))
    return taps


def _resnet_blocks(model: nn.Module) -> list[TapPoint] | None:
    names = [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(model, n)]
    if not names:
        return None
    stem = getattr(model, "act1", None) or getattr(model, "relu", None) or model.conv1
    taps = [TapPoint("stem", "embed", stem)]
    for n in names:
        for j, blk in enumerate(getattr(model, n)):
            strided = any(isinstance(m, nn.Conv2d) and max(m.stride) > 1 for m in blk.modules())
            taps.append(TapPoint(f"{n}.{j}", "subsample" if strided else "conv", blk))
    return taps


def tap_points(model: nn.Module) -> list[TapPoint]:
    """The residual-stream taps of ``model`` (ours by protocol, timm/torchvision by shape)."""
    if hasattr(model, "probe_taps"):
        return [TapPoint(*t) for t in model.probe_taps()]
    for finder in (_transformer_blocks, _torchvision_vit_blocks, _convnext_blocks,
                   _resnet_blocks):
        taps = finder(model)
        if taps:
            return taps
    raise ValueError(f"cannot find the blocks of {type(model).__name__}: give the model a "
                     f"probe_taps() method returning (name, kind, module[, port]) tuples "
                     f"(kind: embed, msa, mlp, conv or subsample; port: output or input), or "
                     f"use a timm/torchvision ViT, DeiT, CaiT, Swin, ResNet or ConvNeXt")


# a token model's embedding parameters (ours and timm's names)
EMBED_PARAMS = ("patch_embed.", "tokenizer.", "pos_embed", "cls_token", "dist_token", "reg_token")


def block_parameter_groups(model: nn.Module) -> list[tuple[str, str, list[str]]]:
    """Per block, the names of its own parameters: ``(tap name, kind, [param names])``.

    A transformer block splits in two: its MSA half (norm1, attn, ls1) and its MLP half
    (norm2, mlp, ls2) — so curvature of MSAs and MLPs can be compared (``--per-block``).
    """
    owner = {id(m): n for n, m in model.named_modules()}
    all_params = [n for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for tap in tap_points(model):
        half = tap.kind in ("msa", "mlp") and any(hasattr(tap.module, a)
                                                  for a in ("norm2", "ln_2"))
        if tap.port.startswith("input") or half:
            # a transformer half: find the block that owns norm2 (or is the block); timm's
            # and torchvision's (ln_1, self_attention, ln_2) names
            if tap.port.startswith("input"):
                block_name = owner[id(tap.module)].rsplit(".", 1)[0]
                parts = ("norm1", "attn", "ls1", "ln_1", "self_attention")
            else:
                block_name = owner[id(tap.module)]
                parts = ("norm2", "mlp", "ls2", "ln_2")
            prefixes = tuple(f"{block_name}.{p}." for p in parts)
        elif tap.kind == "embed" and not any(True for _ in tap.module.parameters()):
            # read after the position embedding (a dropout): the embedding's own parameters
            prefixes = EMBED_PARAMS
        else:
            prefixes = (owner[id(tap.module)] + ".",)
        names = [n for n in all_params if n.startswith(prefixes)]
        if names:
            groups.append((tap.name, tap.kind, names))
    return groups


def num_prefix_tokens(model: nn.Module) -> int:
    """Tokens before the patches: timm's ``num_prefix_tokens``; torchvision's ViT has one
    (its ``class_token``)."""
    if hasattr(model, "num_prefix_tokens"):
        return int(model.num_prefix_tokens)
    return 1 if isinstance(getattr(model, "class_token", None), nn.Parameter) else 0


def grid_of(model: nn.Module) -> tuple[int, int] | None:
    """The (h, w) patch grid of a token model (timm's ``grid_size`` names; torchvision's
    ViT: ``image_size // patch_size``), if any."""
    for owner in (model, getattr(model, "patch_embed", None)):
        g = getattr(owner, "grid_size", None) if owner is not None else None
        if g is not None:
            return int(g[0]), int(g[1])
    size, patch = getattr(model, "image_size", None), getattr(model, "patch_size", None)
    if isinstance(size, int) and isinstance(patch, int) and hasattr(model, "encoder"):
        return size // patch, size // patch
    return None


def to_map(x: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
    """A tap's tensor as B x C x H x W: tokens (B, N, C) lose their prefix tokens (class,
    distillation: the N - h*w leading ones) and are reshaped ``B (h w) C -> B C h w``;
    channels-last maps (B, H, W, C) (Swin) are permuted; conv maps pass through."""
    if x.ndim == 4:
        return x
    if x.ndim != 3:
        raise ValueError(f"cannot read a feature map of shape {tuple(x.shape)}")
    B, N, C = x.shape
    if grid is None or grid[0] * grid[1] > N:
        side = int(round(N ** 0.5))
        while side * side > N:
            side -= 1
        grid = (side, side)
    h, w = grid
    tokens = x[:, N - h * w:]
    return tokens.transpose(1, 2).reshape(B, C, h, w)


def capture(model: nn.Module, images: torch.Tensor, kinds: tuple[str, ...] | None = None,
            detach: bool = True) -> list[Tap]:
    """Run ``model`` on ``images`` and return the residual stream at every tap as
    B x C x H x W maps, with their kind and normalised depth (tap index / (taps - 1)).

    The model runs in whatever mode it is in (train mode: batch statistics and dropout, as
    a user left it); hooks are removed even when forward raises, and what the forward
    updates (running statistics, the random state) is restored (``untouched``).
    """
    points = tap_points(model)
    grid = grid_of(model)
    captured: dict[int, torch.Tensor] = {}
    handles = []

    def keep(i: int, t):
        t = t[0] if isinstance(t, tuple | list) else t
        captured[i] = t.detach() if detach else t

    try:
        for i, p in enumerate(points):
            if p.port.startswith("input"):
                handles.append(p.module.register_forward_pre_hook(
                    lambda m, args, i=i: keep(i, args)))
            else:
                handles.append(p.module.register_forward_hook(
                    lambda m, args, out, i=i: keep(i, out)))
        try:
            with untouched(model):
                model(images)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{type(model).__name__} cannot run on images of shape "
                             f"{tuple(images.shape)}: {first}") from e
    finally:
        for h in handles:
            h.remove()
    n = len(points)
    taps = []
    for i, p in enumerate(points):
        if i not in captured or (kinds and p.kind not in kinds):
            continue
        t = captured[i]
        if p.port.endswith("_nhwc") and t.ndim == 4:
            t = t.permute(0, 3, 1, 2)
        taps.append(Tap(p.name, p.kind, to_map(t, grid), i / max(1, n - 1)))
    return taps
