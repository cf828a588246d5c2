"""A GPU run: the Hessian's top eigenvalues of a ViT on CUDA (on the CPU where there is none).

python examples/gpu_run.py                       # cuda if available, else cpu
python examples/gpu_run.py --device cuda --batch 128

Products run in IEEE float32 (TF32 off while the probe runs); the solver's basis layout is
chosen from the free GPU memory and named in the result.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from vitprobe import hessian
from vitprobe.models import create_model


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="vit-ti", help="a model name (vitprobe models)")
    p.add_argument("--batch", type=int, default=16, help="images per mini-batch")
    p.add_argument("--depth", type=int, default=None, help="fewer blocks (a quick check)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    kw = {"depth": args.depth} if args.depth else {}
    model = create_model(args.model, num_classes=10, in_chans=1, img_size=28, patch_size=4,
                         **kw).to(args.device)
    x = torch.randn(args.batch, 1, 28, 28, device=args.device)
    y = torch.randint(0, 10, (args.batch,), device=args.device)
    t = time.perf_counter()
    r = hessian.top_eigenvalues(model, F.cross_entropy, (x, y), k=5, seed=0)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{args.model} on {args.device} ({where}): top-5 {r.eigenvalues.round(4).tolist()}, "
          f"residuals ≤ {r.residuals.max():.1e}, {r.num_hvps} HVPs, layout {r.layout!r}, "
          f"{time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
