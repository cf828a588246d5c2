"""AlterNet (Park & Kim 2022, §4): a pre-activation ResNet whose stages end with MSA blocks
alternating with conv blocks, ``[Conv] * (n - 2m) + [Conv, MSA] * m`` for a stage of n blocks
with m MSAs.

The MSA block is the paper code's ``AttentionBlockB`` (xxxnell/how-do-vits-work,
``models/alternet.py``): BN -> GELU -> 1x1 conv -> **BN** -> windowed multi-head attention
(head dim 64, heads 3/6/12/24 by stage, one learned relative-position bias table shared by
the heads, as its ``LocalAttention``) -> drop-path -> residual. No MLP inside: the conv blocks
play that role. The BN after the 1x1 conv keeps the attention logits' scale independent of
the conv weights' scale.

Window 4 is the default because it is the window of the paper's CIFAR runs: its CIFAR maps
are 32/16/8/4 px, and its ``LocalAttention`` splits a map into whole windows (an einops
``(n p)`` split), so its default window 7 cannot run on them; 4 divides every one. At window 4
``alternet-18`` with 10 classes and 3 input channels has the paper code's 9,452,893
parameters (``alternet.dnn_18(num_classes=10, stem=False, window_size=4)``); our windows also
take maps that the window does not divide (zero padding, masked keys: 28-px inputs give
28/14/7/4 px maps).
"""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from .layers import WindowAttention2d
from .resnet import BLOCKS, PreActBottleneck, ResNet, drop_path_schedule

HEADS = (3, 6, 12, 24)


class MSABlock(nn.Module):
    """x + drop_path(attn(BN(conv1x1(GELU(BN(x)))))) — the paper's ``AttentionBlockB`` at
    stride 1 with equal in/out widths (where AlterNet places it)."""

    def __init__(self, dim: int, heads: int, window: int = 4, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.act = nn.GELU()
        self.conv = nn.Conv2d(dim, dim, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(dim)
        self.attn = WindowAttention2d(dim, heads, head_dim=64, window=window)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.attn(self.norm2(self.conv(self.act(self.norm1(x))))))


def alternet(layers: tuple[int, ...], msa: tuple[int, ...], block: type, in_chans: int,
             num_classes: int, window: int = 4, drop_path_rate: float = 0.0,
             widths=(64, 128, 256, 512), heads=HEADS) -> ResNet:
    """Build the stage layout of the paper: per stage n blocks of which the last 2m alternate
    Conv, MSA. ``msa=(0, 0, 0, 0)`` is exactly the ResNet."""
    layers, msa = tuple(layers), tuple(msa)
    if len(msa) != len(layers):
        raise ValueError(f"msa needs one count per stage ({len(layers)}); got {msa}")
    for n, m in zip(layers, msa):
        if m < 0 or 2 * m > n:
            raise ValueError(f"msa count {m} does not fit a stage of {n} blocks: allowed "
                             f"0..{n // 2} (the stage is [Conv]*(n-2m) + [Conv, MSA]*m); "
                             f"pass layers= with more blocks")
    dpr = drop_path_schedule(sum(layers), drop_path_rate)
    stages, k = [], 0
    for n, m, w, h in zip(layers, msa, widths, heads):
        kinds = ["conv"] * (n - 2 * m) + ["conv", "msa"] * m
        stage = []
        for kind in kinds:
            rate = dpr[k]
            k += 1
            if kind == "conv":
                stage.append(lambda cin, stride, w=w, rate=rate: (
                    block(cin, w, stride, rate), w * block.expansion, "conv"))
            else:
                stage.append(lambda cin, stride, h=h, rate=rate: (
                    MSABlock(cin, h, window, rate), cin, "msa"))
        stages.append(stage)
    return ResNet(stages, in_chans, num_classes, stem_width=widths[0], preact=True)


def build(num_classes: int, in_chans: int, img_size: int, block: str, **kw) -> ResNet:
    """The registry's builder: ``block`` by its name in ``resnet.BLOCKS``."""
    return alternet(block=BLOCKS[block], in_chans=in_chans, num_classes=num_classes, **kw)


__all__ = ["MSABlock", "alternet", "build", "PreActBottleneck"]
