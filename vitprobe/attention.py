"""Attention probes (Dosovitskiy et al. 2021 §4.5, App. D.7; Abnar & Zuidema 2020) and
attribution baselines through captum, compared by a faithfulness score.

* ``capture``: attention probabilities per attention layer, read on the explicit softmax
  path (fused attention is switched off for the capture only — hooks on fused kernels
  never fire, the bug of popular rollout code).
* ``rollout``: A' = 0.5·A + 0.5·I per layer (heads fused by mean/max/min), rows normalised,
  multiplied from input to output.
* ``mean_distance``: per layer and head, Σ_j a_ij ‖pos_i − pos_j‖ in pixels.
* ``position_similarity``, ``patch_filter_components``: ViT Fig. 7 centre and left.
* ``integrated_gradients``, ``occlusion``: captum attributions pooled onto the patch grid.
* ``deletion_auc``: remove patches in an explanation's order, track the class probability;
  the area under that curve (lower is more faithful).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .features import attention_modules, grid_of, untouched
from .modes import eval_mode, explicit_attention


@torch.no_grad()
def capture(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Attention probabilities ``(B', heads, N, N)`` for every attention layer, in order
    (B' = B, or B x windows for windowed attention). The model runs in eval mode; its mode
    and attention flags are restored afterwards."""
    mods = attention_modules(model)
    # torch's nn.MultiheadAttention (torchvision's ViT): asked for its per-head weights
    mhas = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    if not mods and not mhas:
        raise ValueError(f"{type(model).__name__} has no attention layers to capture (timm-style "
                         f"modules with attn_drop, or nn.MultiheadAttention)")
    maps: list[torch.Tensor] = []
    handles = []

    def with_weights(mod, args, kwargs):
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    try:
        with untouched(model), eval_mode(model), explicit_attention(model):
            for _, m in mods:
                handles.append(m.attn_drop.register_forward_hook(
                    lambda mod, args, out: maps.append(out.detach())))
            for m in mhas:
                handles.append(m.register_forward_pre_hook(with_weights, with_kwargs=True))
                handles.append(m.register_forward_hook(
                    lambda mod, args, out: maps.append(out[1].detach())))
            model(images)
    finally:
        for h in handles:
            h.remove()
    return maps


def logit_range(probs: torch.Tensor) -> float:
    """How peaked attention is, in logit units: the mean over queries (rows) of
    max - min of the pre-softmax logits, recovered from the probabilities as
    log(max p) - log(min p) over the keys a row attends to (p > 0: masked keys excluded).
    A few units is a soft attention; tens to hundreds means the logits have blown up and the
    softmax is saturated (one key per query). ``probs``: (..., N, N) rows summing to 1."""
    p = probs.double()
    pos = torch.where(p > 0, p, torch.ones_like(p))
    hi = torch.log(p.amax(dim=-1))
    lo = torch.log(torch.where(p > 0, pos, torch.full_like(p, torch.inf)).amin(dim=-1))
    return float((hi - lo).mean())


def _fuse(a: torch.Tensor, head_fusion: str) -> torch.Tensor:
    if head_fusion == "mean":
        return a.mean(1)
    if head_fusion == "max":
        return a.amax(1)
    if head_fusion == "min":
        return a.amin(1)
    raise ValueError(f"head_fusion must be 'mean', 'max' or 'min'; got {head_fusion!r}")


def rollout(attentions: list[torch.Tensor], num_prefix_tokens: int = 1, head_fusion: str = "mean",
            discard_ratio: float = 0.0, pool_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): (B, patches).

    Per layer: fuse heads, optionally zero the lowest ``discard_ratio`` of entries (never
    those attending to prefix tokens), A' = 0.5·A + 0.5·I, normalise *rows* (each query's
    attention sums to 1), and multiply layers from input to output: R = A'_L ⋯ A'_1.
    Read: the class token's row when there is one; otherwise the rows averaged with
    ``pool_weights`` (B, N) — e.g. SeqPool's weights — or uniformly (GAP).
    """
    if not attentions:
        raise ValueError("no attention maps given")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1); got {discard_ratio}")
    B, _, N, _ = attentions[0].shape
    R = torch.eye(N, dtype=torch.float64, device=attentions[0].device).expand(B, N, N)
    for a in attentions:
        if a.shape[-1] != N or a.shape[0] != B:
            raise ValueError("all layers must share (B, N): rollout needs global attention")
        A = _fuse(a.double(), head_fusion)
        if discard_ratio > 0:
            flat = A[:, :, num_prefix_tokens:].reshape(B, -1)
            k = int(flat.shape[1] * discard_ratio)
            if k:
                idx = flat.topk(k, dim=-1, largest=False).indices
                flat = flat.scatter(1, idx, 0.0)
                A = torch.cat([A[:, :, :num_prefix_tokens],
                               flat.view(B, N, N - num_prefix_tokens)], dim=2)
        A = 0.5 * A + 0.5 * torch.eye(N, dtype=A.dtype, device=A.device)
        A = A / A.sum(dim=-1, keepdim=True)
        R = A @ R
    if num_prefix_tokens > 0:
        row = R[:, 0]
    elif pool_weights is not None:
        row = torch.einsum("bn,bnm->bm", pool_weights.double(), R)
    else:
        row = R.mean(1)
    return row[:, num_prefix_tokens:]


def mean_distance(attentions: list[torch.Tensor], grid: tuple[int, int], patch_size: int,
                  num_prefix_tokens: int = 1) -> np.ndarray:
    """Mean attention distance in pixels, (layers, heads): for each head,
    Σ_j a_ij ‖pos_i − pos_j‖ over patch queries i and patch keys j (attention renormalised
    over patch keys), averaged over queries and images (ViT Fig. 7 right)."""
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], 1).double() * patch_size
    dist = torch.cdist(pos, pos)  # (P, P) pixels
    out = []
    for a in attentions:
        p = a.double()[:, :, num_prefix_tokens:, num_prefix_tokens:]
        if p.shape[-1] != h * w:
            raise ValueError(f"attention over {p.shape[-1]} patches does not match grid {grid}")
        p = p / p.sum(-1, keepdim=True)
        out.append((p * dist.to(p.device)).sum(-1).mean(dim=(0, 2)).cpu().numpy())
    return np.stack(out)


def position_similarity(model: nn.Module) -> torch.Tensor:
    """Cosine similarity of each patch's position embedding with every other: (h, w, h, w)
    (ViT Fig. 7 centre)."""
    pe = getattr(model, "pos_embed", None)
    grid = grid_of(model)
    if pe is None or grid is None:
        raise ValueError(f"{type(model).__name__} has no learned position embedding")
    h, w = grid
    p = pe.detach()[0, -h * w:].double()
    p = p / p.norm(dim=-1, keepdim=True)
    return (p @ p.T).view(h, w, h, w)


def patch_filter_components(model: nn.Module, k: int = 28) -> tuple[torch.Tensor, np.ndarray]:
    """Principal components of the patch-embedding filters (ViT Fig. 7 left):
    (k, C, p, p) components and the share of variance each explains."""
    proj = getattr(getattr(model, "patch_embed", None), "proj", None)
    if not isinstance(proj, nn.Conv2d):
        raise ValueError(f"{type(model).__name__} has no convolutional patch embedding")
    W = proj.weight.detach().double()
    D = W.shape[0]
    X = W.reshape(D, -1)
    X = X - X.mean(0)
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)
    k = min(k, Vh.shape[0])
    share = (S ** 2 / (S ** 2).sum()).cpu().numpy()[:k]
    return Vh[:k].reshape(k, *W.shape[1:]), share


# ---------------------------------------------------------------------------- attributions
def _to_patches(attr: torch.Tensor, patch_size: int) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(attr.abs().sum(1, keepdim=True), patch_size)[:, 0]


def integrated_gradients(model: nn.Module, images: torch.Tensor, target: torch.Tensor,
                         patch_size: int, steps: int = 32, batch_size: int = 256
                         ) -> torch.Tensor:
    """captum Integrated Gradients from a zero (dataset-mean) baseline, |attr| summed over
    channels and averaged per patch: (B, h, w). The ``steps`` x B interpolated images go
    through the model ``batch_size`` at a time (memory grows with it, not with B)."""
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(model)
    with eval_mode(model):
        attr = torch.cat([
            ig.attribute(xs, target=ts, n_steps=steps, baselines=torch.zeros_like(xs),
                         internal_batch_size=batch_size).detach()
            for xs, ts in zip(images.split(batch_size), target.split(batch_size))])
    return _to_patches(attr, patch_size)


def occlusion(model: nn.Module, images: torch.Tensor, target: torch.Tensor,
              patch_size: int) -> torch.Tensor:
    """captum Occlusion with windows aligned to the patches: (B, h, w) drop in the target
    logit when each patch is replaced by the baseline (0 = dataset mean)."""
    from captum.attr import Occlusion

    C = images.shape[1]
    with eval_mode(model), torch.no_grad():
        attr = Occlusion(model).attribute(images, target=target,
                                          sliding_window_shapes=(C, patch_size, patch_size),
                                          strides=(C, patch_size, patch_size), baselines=0.0)
    return torch.nn.functional.avg_pool2d(attr.sum(1, keepdim=True), patch_size)[:, 0]


@torch.no_grad()
def deletion_curve(model: nn.Module, images: torch.Tensor, target: torch.Tensor,
                   explanation: torch.Tensor, patch_size: int, steps: int | None = None,
                   baseline: float = 0.0) -> np.ndarray:
    """Probability of ``target`` as patches are removed (set to ``baseline``) in decreasing
    order of ``explanation`` (B, h, w): (B, steps + 1), from 0 to all patches removed."""
    B, h, w = explanation.shape
    P = h * w
    steps = steps or P
    order = explanation.reshape(B, P).argsort(dim=1, descending=True)
    counts = np.linspace(0, P, steps + 1).round().astype(int)
    probs = np.zeros((B, steps + 1))
    with eval_mode(model):
        for s, c in enumerate(counts):
            keep = torch.ones(B, P, device=images.device)
            if c:
                keep.scatter_(1, order[:, :c], 0.0)
            mask = keep.view(B, 1, h, w).repeat_interleave(patch_size, 2).repeat_interleave(
                patch_size, 3)
            x = images * mask + baseline * (1 - mask)
            p = model(x).softmax(-1).gather(1, target.view(-1, 1))[:, 0]
            probs[:, s] = p.cpu().numpy()
    return probs


def deletion_auc(model: nn.Module, images: torch.Tensor, target: torch.Tensor,
                 explanation: torch.Tensor, patch_size: int, steps: int | None = None) -> float:
    """Mean over images of the area under the deletion curve on [0, 1] (lower = more
    faithful: the explanation's top patches matter most)."""
    probs = deletion_curve(model, images, target, explanation, patch_size, steps)
    x = np.linspace(0, 1, probs.shape[1])
    return float(np.trapezoid(probs, x, axis=1).mean())

