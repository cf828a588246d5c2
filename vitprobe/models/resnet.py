"""ResNets for small images as in Park & Kim 2022's code (xxxnell/how-do-vits-work): a 3x3
stem, no max-pool, stages of widths 64/128/256/512 with strides 1/2/2/2.

Two families, both matching the paper code's parameter counts (``tests/test_models.py``):

- ``resnet-18`` / ``resnet-50``: the post-activation ResNet (He et al. 2016a) of its
  ``models/resnet.py`` + ``models/resnet_dnn_block.py`` — ReLU after the residual sum, BN on
  the projection shortcut, a conv-BN-ReLU stem and a plain GAP + linear classifier
  (``classifier_block.GAPBlock``). This is the "ResNet" baseline of the paper's figures.
- ``preresnet-18`` / ``preresnet-50``: the pre-activation ResNet (He et al. 2016b,
  "Identity Mappings") of its ``models/preresnet.py`` + ``models/preresnet_dnn_block.py`` —
  a bare conv stem and a BN-ReLU-GAP-linear classifier (``BNGAPBlock``). AlterNet is built
  on these blocks (see ``alternet.py``).

One builder makes all of them and AlterNet: a stage is a list of blocks, each a conv block
or an MSA block. The first block of stages 2-4 halves the map (stride 2): its probe tap has
the kind ``"subsample"`` so that analyses report it apart from ordinary conv blocks, as the
paper shades the subsampling layers in Figs. 8 and 9.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from .layers import probe_tap


class Basic(nn.Module):
    """Post-activation basic block: conv3x3-BN-ReLU-conv3x3-BN, + shortcut (conv1x1-BN when
    the shape changes), then ReLU."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, drop_path: float = 0.0) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride, norm=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x) if self.shortcut is not None else x
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(skip + self.drop_path(out))


class Bottleneck(nn.Module):
    """Post-activation bottleneck: conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1(x4)-BN,
    + shortcut (conv1x1-BN when the shape changes), then ReLU."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, drop_path: float = 0.0) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride, norm=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x) if self.shortcut is not None else x
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act(skip + self.drop_path(out))


def _projection(cin: int, cout: int, stride: int, norm: bool) -> nn.Module | None:
    """The shortcut where the shape changes: a strided 1x1 conv, followed by BN in the
    post-activation blocks; ``None`` (identity) otherwise."""
    if stride == 1 and cin == cout:
        return None
    conv = nn.Conv2d(cin, cout, 1, stride, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout)) if norm else conv


class PreActBasic(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 + shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, drop_path: float = 0.0) -> None:
        super().__init__()
        cout = width * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride, norm=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act(self.bn2(out)))
        return skip + self.drop_path(out)


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1 (x4) + shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, drop_path: float = 0.0) -> None:
        super().__init__()
        cout = width * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride, norm=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act(self.bn2(out)))
        out = self.conv3(self.act(self.bn3(out)))
        return skip + self.drop_path(out)


class ResNet(nn.Module):
    """(B, C, H, W) -> (B, num_classes). ``stages`` is a list of lists of block factories
    ``f(cin, stride) -> (module, cout, kind)`` so that conv and MSA blocks mix.

    ``preact=True``: bare conv stem, BN-ReLU before the pooled head (pre-activation blocks);
    ``False``: conv-BN-ReLU stem and a plain pooled head (post-activation blocks)."""

    def __init__(self, stages: list[list], in_chans: int = 3, num_classes: int = 10,
                 stem_width: int = 64, preact: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.preact = preact
        conv = nn.Conv2d(in_chans, stem_width, 3, 1, 1, bias=False)
        self.stem = conv if preact else nn.Sequential(conv, nn.BatchNorm2d(stem_width),
                                                      nn.ReLU(inplace=True))
        self.block_kinds: list[str] = []
        cin = stem_width
        layers = []
        for i, stage in enumerate(stages):
            blocks = []
            for j, factory in enumerate(stage):
                stride = 1 if i == 0 or j > 0 else 2
                block, cin, kind = factory(cin, stride)
                blocks.append(block)
                self.block_kinds.append("subsample" if stride == 2 and kind == "conv" else kind)
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(cin) if preact else nn.Identity()
        self.act = nn.ReLU(inplace=True) if preact else nn.Identity()
        self.head = nn.Linear(cin, num_classes)
        self.num_features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.layers(self.stem(x))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def probe_taps(self) -> list[tuple]:
        taps = [probe_tap("stem", "embed", self.stem)]
        k = 0
        for i, stage in enumerate(self.layers):
            for j, block in enumerate(stage):
                taps.append(probe_tap(f"layers.{i}.{j}", self.block_kinds[k], block))
                k += 1
        return taps


def conv_stage(block: type, width: int, n: int, drop_path: list[float]) -> list:
    def factory(i):
        def make(cin, stride):
            m = block(cin, width, stride, drop_path[i])
            return m, width * block.expansion, "conv"
        return make
    return [factory(i) for i in range(n)]


def drop_path_schedule(total: int, rate: float) -> list[float]:
    return torch.linspace(0, rate, total).tolist() if total > 1 else [rate] * total


def resnet(layers: tuple[int, ...], block: type, in_chans: int, num_classes: int,
           drop_path_rate: float = 0.0, widths=(64, 128, 256, 512)) -> ResNet:
    """A ResNet of ``block`` (post- or pre-activation; the stem and head follow it)."""
    dpr = drop_path_schedule(sum(layers), drop_path_rate)
    stages, k = [], 0
    for n, w in zip(layers, widths):
        stages.append(conv_stage(block, w, n, dpr[k:k + n]))
        k += n
    return ResNet(stages, in_chans, num_classes, stem_width=widths[0],
                  preact=block in (PreActBasic, PreActBottleneck))


# the blocks a registry entry names (``vitprobe.models.registry``)
BLOCKS = {"Basic": Basic, "Bottleneck": Bottleneck, "PreActBasic": PreActBasic,
          "PreActBottleneck": PreActBottleneck}


def build(num_classes: int, in_chans: int, img_size: int, block: str, **kw) -> ResNet:
    """The registry's builder: ``block`` by its name in ``BLOCKS``; ``img_size`` is not
    needed (the head pools globally)."""
    return resnet(block=BLOCKS[block], in_chans=in_chans, num_classes=num_classes, **kw)
