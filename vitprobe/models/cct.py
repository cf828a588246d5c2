"""Compact Transformers (Hassani et al. 2021, "Escaping the Big Data Paradigm with Compact
Transformers"): CCT (convolutional tokenizer + SeqPool), CVT (patch tokenizer + SeqPool) and
ViT-Lite (patch tokenizer + class token).

Name ``L/PxC``: L encoder layers, tokenizer kernel P, C conv layers. Encoder layer, as the
reference: x = x + DropPath(MSA(LN(x))); x = LN(x); x = x + DropPath(MLP(x)).
"""

from __future__ import annotations

import torch
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import nn

from .layers import Attention, SeqPool, TokenModel

VARIANTS = {2: (128, 2, 1), 4: (128, 2, 1), 6: (256, 4, 2), 7: (256, 4, 2), 14: (384, 6, 3)}


class Tokenizer(nn.Module):
    """C x [conv k x k -> ReLU -> max-pool 3/2/1] (CCT), or one conv with kernel = stride =
    patch (CVT, ViT-Lite). (B, C, H, W) -> (B, N, D)."""

    def __init__(self, in_chans: int, dim: int, kernel: int, convs: int, patchify: bool,
                 mid: int = 64, conv_bias: bool = False) -> None:
        super().__init__()
        if patchify:
            self.layers = nn.Sequential(nn.Conv2d(in_chans, dim, kernel, kernel, bias=conv_bias))
        else:
            chans = [in_chans] + [mid] * (convs - 1) + [dim]
            layers = []
            for cin, cout in zip(chans, chans[1:]):
                layers += [nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=conv_bias),
                           nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
            self.layers = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten(2).transpose(1, 2)


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, attn_drop: float = 0.1,
                 drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)  # pre-norm of the attention
        self.attn = Attention(dim, num_heads=heads, qkv_bias=False, attn_drop=attn_drop,
                              proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim)  # the reference's post-attention norm
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = self.norm2(x)
        return x + self.drop_path(self.mlp(x))


class CompactTransformer(TokenModel):
    embed_name = "dropout"

    def __init__(self, img_size: int = 32, in_chans: int = 3, num_classes: int = 10,
                 layers: int = 7, kernel: int = 3, convs: int = 1, tokenizer: str = "conv",
                 pool: str = "seqpool", embed_dim: int | None = None, heads: int | None = None,
                 mlp_ratio: float | None = None, attn_drop_rate: float = 0.1,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 pos_init_std: float = 0.2) -> None:
        super().__init__()
        dim0, heads0, ratio0 = VARIANTS.get(layers, (256, 4, 2))
        dim, heads, ratio = embed_dim or dim0, heads or heads0, mlp_ratio or ratio0
        if pool not in ("seqpool", "cls"):
            raise ValueError(f"pool must be 'seqpool' or 'cls'; got {pool!r}")
        patchify = tokenizer == "patch"
        if patchify and img_size % kernel:
            raise ValueError(f"patch size {kernel} does not divide img_size {img_size}")
        self.pool, self.num_classes, self.embed_dim = pool, num_classes, dim
        self.tokenizer = Tokenizer(in_chans, dim, kernel, convs, patchify, conv_bias=patchify)
        with torch.no_grad():
            n = self.tokenizer(torch.zeros(1, in_chans, img_size, img_size)).shape[1]
        side = int(round(n ** 0.5))
        self.grid_size = (side, n // side)
        self.num_prefix_tokens = 1 if pool == "cls" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, n + self.num_prefix_tokens, dim))
        trunc_normal_(self.pos_embed, std=pos_init_std)
        self.dropout = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, layers).tolist()
        self.blocks = nn.Sequential(*[EncoderLayer(dim, heads, ratio, attn_drop_rate, drop_rate,
                                                   dpr[i]) for i in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.attn_pool = SeqPool(dim) if pool == "seqpool" else None
        self.head = nn.Linear(dim, num_classes)
        self.apply(self.init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokenizer(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.dropout(x + self.pos_embed)
        return self.norm(self.blocks(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, 0] if self.pool == "cls" else self.attn_pool(x))


def build(num_classes: int, in_chans: int, img_size: int, **kw) -> CompactTransformer:
    """The registry's builder (the variants' settings: ``vitprobe.models.registry``)."""
    return CompactTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes,
                              **kw)
