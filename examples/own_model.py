"""Probe models that are not ours: a torchvision ViT, a timm ConvNeXt and a plain CNN.

python examples/own_model.py            # the three models at a small size, on CPU in seconds
python examples/own_model.py --device cuda

Each probe takes a plain nn.Module, a loss and data, and leaves the model as it was. The
torchvision and timm models are read by their structure; the plain CNN names its feature
taps with a ``probe_taps()`` method.
"""

from __future__ import annotations

import argparse

import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from vitprobe import fourier, hessian, landscape, variance


class PlainCNN(nn.Module):
    """Any model of your own: ``probe_taps()`` lists (name, kind, module) where the residual
    stream (or feature map) is read; kind is embed, msa, mlp, conv or subsample."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(16, num_classes)

    def probe_taps(self):
        return [("stem", "embed", self.stem), ("block", "conv", self.block),
                ("down", "subsample", self.down)]

    def forward(self, x):
        return self.head(self.down(self.block(self.stem(x))).mean(dim=(2, 3)))


def models(num_classes: int) -> dict[str, nn.Module]:
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                               num_heads=2, hidden_dim=32, mlp_dim=64,
                                               num_classes=num_classes)
    nn.init.normal_(vit.heads.head.weight, std=0.02)  # torchvision starts its head at zero
    return {"torchvision ViT": vit,
            "timm ConvNeXt": timm.create_model("test_convnext", num_classes=num_classes),
            "plain CNN": PlainCNN(num_classes)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(16, 3, 32, 32, device=args.device)
    y = torch.randint(0, 4, (16,), device=args.device)
    for name, model in models(4).items():
        model = model.to(args.device)
        top = hessian.top_eigenvalues(model, F.cross_entropy, (x, y), k=2, tol=1e-3, seed=0,
                                      weight_decay=0.05)
        d = landscape.random_direction(model, norm="filter", seed=0)
        line = landscape.surface(model, F.cross_entropy, (x, y), (d,), steps=(5,))
        high = [round(t.highest, 3) for t in fourier.profile(model.eval(), x)]
        var = [round(t.variance, 3) for t in variance.profile(model.eval(), x)]
        print(f"{name}: top-2 Hessian eigenvalues {top.eigenvalues.round(4).tolist()} "
              f"(converged {top.converged.tolist()}); 1-D landscape {line.loss.round(3).tolist()}"
              f"; ΔlogAmp at the highest frequency per tap {high}; variance per tap {var}")


if __name__ == "__main__":
    main()
