"""Layers shared by several model families.

Attention everywhere is timm's ``Attention``: fused ``scaled_dot_product_attention`` while
training, and an explicit ``softmax(qk^T/sqrt(d)) v`` path when its ``fused_attn`` flag is
off. The probes turn the flag off to read attention probabilities (a hook on ``attn_drop``)
and to differentiate twice; nothing else differs between the two paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Attention
from torch import nn

__all__ = ["Attention", "SeqPool", "TokenModel", "WindowAttention2d", "probe_tap",
           "resample_position_embeddings"]


def probe_tap(name: str, kind: str, module: nn.Module, port: str = "output") -> tuple:
    """One entry of a model's ``probe_taps()`` list (the protocol ``vitprobe.features`` reads).

    ``port="output"`` taps what ``module`` returns; ``"input"`` taps its first input (used to
    read the residual stream between a block's MSA and MLP halves at ``norm2``).
    """
    if kind not in {"embed", "conv", "subsample", "msa", "mlp", "pool"}:
        raise ValueError(f"unknown tap kind {kind!r}")
    return (name, kind, module, port)


def _prefix_tokens(n_old: int, n_new: int, hint: int) -> int | None:
    """How many leading tokens (class, distillation) two position tables share: the count
    that leaves a square grid in both (the model's own ``num_prefix_tokens`` first)."""
    for p in dict.fromkeys([hint, 0, 1, 2, 3, 4]):
        a, b = n_old - p, n_new - p
        if a > 0 and b > 0 and int(a ** 0.5) ** 2 == a and int(b ** 0.5) ** 2 == b:
            return p
    return None


def resample_position_embeddings(model: nn.Module, state_dict: dict) -> dict:
    """``state_dict`` with every absolute position embedding (a key holding ``pos_embed``)
    of another grid size resampled to ``model``'s by 2-D bicubic interpolation (ViT paper
    §3.2), so a checkpoint trained at 28 px loads into a 32-px model. Token tables
    ``(1, prefix + g*g, D)`` keep their prefix tokens; PiT's ``(1, C, H, W)`` maps are resized.
    Other mismatches are left for ``load_state_dict`` to report."""
    from timm.layers import resample_abs_pos_embed

    own, out = model.state_dict(), dict(state_dict)
    for key, value in state_dict.items():
        target = own.get(key)
        if "pos_embed" not in key or target is None or target.shape == value.shape:
            continue
        if value.ndim == 4 and target.ndim == 4 and value.shape[:2] == target.shape[:2]:
            out[key] = F.interpolate(value.float(), size=tuple(target.shape[-2:]),
                                     mode="bicubic", align_corners=False).to(value.dtype)
        elif value.ndim == 3 and target.ndim == 3 and value.shape[-1] == target.shape[-1]:
            p = _prefix_tokens(value.shape[1], target.shape[1],
                               int(getattr(model, "num_prefix_tokens", 0) or 0))
            if p is not None:
                g_old, g_new = int((value.shape[1] - p) ** 0.5), int((target.shape[1] - p) ** 0.5)
                out[key] = resample_abs_pos_embed(value, [g_new, g_new], [g_old, g_old],
                                                  num_prefix_tokens=p)
    return out


class TokenModel(nn.Module):
    """What our token models (ViT, CCT) share: ``forward = head(features)``, the probe taps
    (the embedding after the position embedding is added — where the paper's code reads it,
    xxxnell/how-do-vits-work ``README.md``'s ViT ``blocks`` list — then the stream after every
    MSA residual — ``norm2``'s input — and after every MLP residual), no weight decay on
    position embedding and class token, and checkpoints from another image size loaded by
    resampling the position embedding (ViT paper §3.2: 2-D interpolation)."""

    # the module whose output is the token sequence with positions added
    embed_name = "pos_drop"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def probe_taps(self) -> list[tuple]:
        taps = [probe_tap("embed", "embed", getattr(self, self.embed_name))]
        for i, blk in enumerate(self.blocks):
            taps.append(probe_tap(f"blocks.{i}.msa", "msa", blk.norm2, "input"))
            taps.append(probe_tap(f"blocks.{i}.mlp", "mlp", blk))
        return taps

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    @staticmethod
    def init_weights(m: nn.Module) -> None:
        """timm's ViT initialisation: truncated normal (std 0.02) linears, unit LayerNorms."""
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return super().load_state_dict(resample_position_embeddings(self, state_dict),
                                       strict=strict, assign=assign)

class SeqPool(nn.Module):
    """Sequence pooling (Hassani et al. 2021, CCT): softmax over tokens of Linear(d -> 1).

    x: (B, N, D) -> (B, D), pooled = softmax(x W)^T x.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention_pool = nn.Linear(dim, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention_pool(x).squeeze(-1).softmax(dim=-1)  # (B, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bn,bnd->bd", self.weights(x), x)


class WindowAttention2d(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of a feature map, with a
    learned relative-position bias: the MSA of AlterNet (Park & Kim 2022 §4; the paper code's
    ``LocalAttention`` in ``models/alternet.py``), whose one ``(2w-1) x (2w-1)`` bias table is
    shared by all heads (Swin keeps one per head), initialised N(0, 0.02²).

    Maps whose size is not a multiple of the window are zero-padded; padded keys are masked
    out, so the result does not depend on the padding. (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int, heads: int, head_dim: int = 64, window: int = 4,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.window = window
        self.heads = heads
        self.attn = Attention(dim, num_heads=heads, attn_head_dim=head_dim, qkv_bias=False,
                              attn_drop=attn_drop, proj_drop=proj_drop)
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * window - 1) ** 2, 1) * 0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                            indexing="ij")).flatten(1)  # 2, w*w
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        index = rel[..., 0] * (2 * window - 1) + rel[..., 1]
        self.register_buffer("relative_position_index", index, persistent=False)

    def relative_position_bias(self) -> torch.Tensor:
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, 1).permute(2, 0, 1).expand(self.heads, n, n)  # heads, n, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        w = self.window
        ph, pw = (-H) % w, (-W) % w
        x = F.pad(x, (0, pw, 0, ph))
        Hp, Wp = H + ph, W + pw
        nh, nw = Hp // w, Wp // w
        tokens = x.view(B, C, nh, w, nw, w).permute(0, 2, 4, 3, 5, 1).reshape(-1, w * w, C)
        bias = self.relative_position_bias().unsqueeze(0)  # 1, heads, n, n
        if ph or pw:
            valid = torch.zeros(Hp, Wp, dtype=torch.bool, device=x.device)
            valid[:H, :W] = True
            valid = valid.view(nh, w, nw, w).permute(0, 2, 1, 3).reshape(nh * nw, 1, 1, w * w)
            mask = torch.zeros(valid.shape, dtype=bias.dtype, device=x.device)
            mask = mask.masked_fill(~valid, float("-inf"))
            bias = (bias + mask).repeat(B, 1, 1, 1)  # (B*windows), heads, n, n
        out = self.attn(tokens, attn_mask=bias.to(tokens.dtype))
        out = out.view(B, nh, nw, w, w, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, Hp, Wp)
        return out[:, :, :H, :W]
