"""Per-sample random crop + horizontal flip: ``vitprobe.data.random_crop_flip`` (one
vectorised gather for the whole batch) against torchvision ``transforms.v2`` (which draws one
crop per call, so per-sample crops need one call per image), side by side on the same batches,
and each as a share of one training step of the model it feeds.

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
from vitprobe.data import random_crop_flip  # noqa: E402


def main() -> None:
    from torchvision.transforms import v2

    torch.manual_seed(0)
    rows = []
    cases = [("fashion-mnist", "vit-ti", 64, 1, 28, 10), ("cifar-10", "resnet-18", 128, 3, 32, 10)]
    for data, name, batch, channels, size, classes in cases:
        images = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8)
        g = torch.Generator().manual_seed(0)
        tv = v2.Compose([v2.RandomCrop(size, padding=1), v2.RandomHorizontalFlip()])
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
            "ours": lambda: random_crop_flip(images, 1, True, g),
            "torchvision": lambda: torch.stack([tv(im) for im in images]),
            "step": step}, rounds=20, warmup=2)
        ratio = t["torchvision"] / t["ours"]
        print(f"{data:14s} batch {batch:3d}: ours {t['ours'] * 1e3:6.2f} ms, torchvision v2 "
              f"{t['torchvision'] * 1e3:6.2f} ms ({ratio:.1f}x slower); one {name} training "
              f"step {t['step'] * 1e3:6.0f} ms (ours {100 * t['ours'] / t['step']:.1f} %, "
              f"torchvision {100 * t['torchvision'] / t['step']:.1f} % of it)")
        rows.append({"data": data, "batch": batch, "ours ms": 1e3 * t["ours"],
                     "torchvision v2 ms": 1e3 * t["torchvision"],
                     "torchvision / ours": ratio,
                     f"training step ms ({name})": 1e3 * t["step"],
                     "torchvision share of a step %": 100 * t["torchvision"] / t["step"]})
    record("augment_cost", rows, {"padding": 1, "flip": True, "rounds": 20},
           "Per-sample crop + flip of a uint8 batch: one vectorised gather against one "
           "torchvision v2 call per image, and each as a share of a training step.")


if __name__ == "__main__":
    main()
