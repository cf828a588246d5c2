"""Vision Transformer (Dosovitskiy et al. 2021) with every pooling the papers compare.

Pooling: ``cls`` (a class token, the original ViT), ``gap`` (global average pooling of the
patch tokens; Park & Kim 2022 §3.3 find it flattens the loss), ``seqpool`` (CCT's sequence
pooling) and ``map`` (multi-head attention pooling with a learned latent, as timm).
Defaults follow the paper's CIFAR configurations (Park & Kim 2022, App. A): no qkv bias,
class token.
"""

from __future__ import annotations

import torch
from timm.layers import (
    AttentionPoolLatent,
    PatchDropout,
    PatchEmbed,
    resample_abs_pos_embed,
    trunc_normal_,
)
from timm.models.vision_transformer import Block
from torch import nn

from .layers import SeqPool, TokenModel
from .registry import POOLS


class VisionTransformer(TokenModel):
    """(B, C, H, W) -> (B, num_classes).

    Exposes ``num_prefix_tokens`` and ``grid_size`` (timm's names) so probes can map tokens to
    the 2-D patch grid, and ``probe_taps()`` listing the residual stream after every MSA and
    MLP sub-block.

    Inputs of another size (a multiple of the patch) take the position table resampled to
    their grid (bicubic, as a checkpoint loaded at another size; ViT §3.2): what training at
    a lower resolution first (``Recipe.progressive``) feeds the model. ``grid_size`` stays
    the native grid.
    """

    def __init__(self, img_size: int = 32, patch_size: int = 2, in_chans: int = 3,
                 num_classes: int = 10, embed_dim: int = 192, depth: int = 12, heads: int = 3,
                 mlp_ratio: float = 4.0, qkv_bias: bool = False, pool: str = "cls",
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, patch_drop_rate: float = 0.0) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}")
        for name, value in (("depth", depth), ("embed_dim", embed_dim), ("heads", heads),
                            ("patch_size", patch_size), ("img_size", img_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if img_size % patch_size:
            raise ValueError(f"patch_size {patch_size} does not divide img_size {img_size}; "
                             f"allowed: a divisor of {img_size}")
        if embed_dim % heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by heads {heads}")
        self.pool = pool
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim,
                                      strict_img_size=False)
        self.grid_size = self.patch_embed.grid_size
        self.num_prefix_tokens = 1 if pool == "cls" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if pool == "cls" else None
        num_tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        # PatchDropout (Liu et al. 2022): in training only, keep a random (1 - rate) share of
        # the patch tokens (prefix tokens always kept); eval and every probe see all tokens
        if not 0.0 <= patch_drop_rate < 1.0:
            raise ValueError(f"patch_drop_rate must be in [0, 1); got {patch_drop_rate}")
        self.patch_drop = (PatchDropout(patch_drop_rate, self.num_prefix_tokens)
                           if patch_drop_rate > 0 else nn.Identity())
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(*[
            Block(embed_dim, heads, mlp_ratio, qkv_bias=qkv_bias, attn_drop=attn_drop_rate,
                  proj_drop=drop_rate, drop_path=dpr[i])
            for i in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim)
        if pool == "seqpool":
            self.attn_pool = SeqPool(embed_dim)
        elif pool == "map":
            self.attn_pool = AttentionPoolLatent(embed_dim, num_heads=heads, mlp_ratio=mlp_ratio)
        else:
            self.attn_pool = None
        self.head = nn.Linear(embed_dim, num_classes)
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        self.apply(self.init_weights)

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position table for a ``grid`` of patches: the learned one on the native grid,
        resampled to any other."""
        if tuple(grid) == tuple(self.grid_size):
            return self.pos_embed
        return resample_abs_pos_embed(self.pos_embed, list(grid), list(self.grid_size),
                                      num_prefix_tokens=self.num_prefix_tokens)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embed.patch_size
        grid = (x.shape[-2] // p[0], x.shape[-1] // p[1])
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.patch_drop(self.pos_drop(x + self.position_embedding(grid)))
        x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool == "cls":
            x = x[:, 0]
        elif self.pool == "gap":
            x = x.mean(dim=1)
        else:
            x = self.attn_pool(x)
        return self.head(x)


def build(num_classes: int, in_chans: int, img_size: int, **kw) -> VisionTransformer:
    """The registry's builder: patch 2 on CIFAR-sized images (the paper's), 16 above."""
    kw.setdefault("patch_size", 2 if img_size <= 32 else 16)
    return VisionTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes,
                             **kw)
