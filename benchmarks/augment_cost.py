"""What the training loader's per-sample random crop + horizontal flip costs: torchvision
``transforms.v2`` called once per image (``vitprobe.data.crop_flip_batch``; v2 draws one crop
per call), against a vectorised gather of the same crops over the whole batch, and each as a
share of one training step of the model it feeds, side by side on the same batches.

    python benchmarks/augment_cost.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, record  # noqa: E402

# ruff: noqa: B023  (closures are timed inside the loop iteration that defines them)
from models import create_model  # noqa: E402
from vitprobe.data import crop_flip, crop_flip_batch  # noqa: E402


def gather_crop_flip(images: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """The same per-sample crop + flip as one indexed gather over the batch."""
    B, C, H, W = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4).permute(0, 2, 3, 1)
    dy = torch.randint(0, 2 * padding + 1, (B, 1, 1), generator=g)
    dx = torch.randint(0, 2 * padding + 1, (B, 1, 1), generator=g)
    rows = dy + torch.arange(H).view(1, H, 1)
    cols = dx + torch.arange(W).view(1, 1, W)
    out = padded[torch.arange(B).view(B, 1, 1), rows, cols].permute(0, 3, 1, 2)
    mask = (torch.rand(B, generator=g) < 0.5).view(B, 1, 1, 1)
    return torch.where(mask, out.flip(-1), out).contiguous()


def main() -> None:
    torch.manual_seed(0)
    rows = []
    cases = [("fashion-mnist", "vit-ti", 64, 1, 28, 10), ("cifar-10", "resnet-18", 128, 3, 32, 10)]
    for data, name, batch, channels, size, classes in cases:
        images = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8)
        g = torch.Generator().manual_seed(0)
        tv = crop_flip((size, size), 1, True)
        kwargs = {"patch_size": 4} if name.startswith("vit") else {}
        model = create_model(name, num_classes=classes, in_chans=channels, img_size=size,
                            **kwargs)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(batch, channels, size, size)
        y = torch.randint(0, classes, (batch,))

        def step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        t = interleaved({
            "gather": lambda: gather_crop_flip(images, 1, g),
            "torchvision": lambda: crop_flip_batch(images, tv, 0),
            "step": step}, rounds=20, warmup=2)
        ratio = t["torchvision"] / t["gather"]
        print(f"{data:14s} batch {batch:3d}: torchvision v2 (the loader's) "
              f"{t['torchvision'] * 1e3:6.2f} ms, one gather {t['gather'] * 1e3:6.2f} ms "
              f"({ratio:.1f}x); one {name} training step {t['step'] * 1e3:6.0f} ms "
              f"(torchvision {100 * t['torchvision'] / t['step']:.1f} % of it)")
        rows.append({"data": data, "batch": batch, "torchvision v2 ms": 1e3 * t["torchvision"],
                     "gather ms": 1e3 * t["gather"], "torchvision / gather": ratio,
                     f"training step ms ({name})": 1e3 * t["step"],
                     "torchvision share of a step %": 100 * t["torchvision"] / t["step"]})
    record("augment_cost", rows, {"padding": 1, "flip": True, "rounds": 20},
           "Per-sample crop + flip of a uint8 batch: the loader's torchvision v2 call per "
           "image against one vectorised gather, and its share of a training step.")


if __name__ == "__main__":
    main()
