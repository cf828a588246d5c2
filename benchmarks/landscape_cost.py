"""Cost of a loss surface against its lower bound: a steps x steps surface of vit-ti and
resnet-18 on 512 images, divided by steps² x (one no-grad forward over those images), both
measured in this run (the median of 3 forwards). The same ratio for the ``loss-landscapes``
package's random_plane at the same grid and data: its ``filter`` normalisation crashes on
both models (ZeroDivisionError on zero-initialised tensors), so it is timed with ``layer``.

python -m benchmarks.landscape_cost [--steps 21] [--images 512] [--models vit-ti,resnet-18]
    [--no-peer] [--device cpu]
Goal: <= 1.15 on CPU.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F

from benchmarks.common import Headline, add_device, record, synchronizer
from vitprobe import data as vdata
from vitprobe import landscape
from vitprobe.models import create_model, family

HEADLINES = (Headline("landscape_cost", "a loss surface's time / its lower bound (steps² "
                      "no-grad forwards over the same images), worst of the models",
                      lambda rows: max(r["ours / bound"] for r in rows), goal=1.15,
                      at_least=False),)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=21)
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--models", default="vit-ti,resnet-18")
    p.add_argument("--no-peer", action="store_true", help="skip loss-landscapes")
    add_device(p)
    a = p.parse_args()
    dev, sync = a.device, synchronizer(a.device)
    test = vdata.load("fashion-mnist", "test")
    x = test.normalize(test.images[:a.images]).to(dev)
    y = test.targets[:a.images].to(dev)
    batch = (x, y)
    print(f"{dev}, {torch.get_num_threads()} CPU threads, {a.steps}x{a.steps} grid, "
          f"{a.images} images")
    rows = []
    for name in a.models.split(","):
        kw = {"patch_size": 4} if family(name) == "vit" else {}
        torch.manual_seed(0)
        model = create_model(name, num_classes=10, in_chans=1, img_size=28, **kw).to(dev).eval()
        with torch.no_grad():
            model(x)
            times = []
            for _ in range(3):
                sync()
                t = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - t)
        fwd = sorted(times)[1]
        bound = a.steps ** 2 * fwd
        dirs = (landscape.random_direction(model, seed=0),
                landscape.random_direction(model, seed=1))
        s = landscape.surface(model, F.cross_entropy, batch, dirs, (a.steps, a.steps))
        line = (f"{name:10s} forward {fwd:.3f} s  bound {bound:7.1f} s  ours {s.seconds:7.1f} s  "
                f"ratio {s.seconds / bound:.3f}")
        print(line, flush=True)
        row = {"model": name, "bound s": bound, "ours s": s.seconds,
               "ours / bound": s.seconds / bound}
        rows.append(row)
        line = " " * 10
        if a.no_peer:
            continue
        try:
            import loss_landscapes
            import loss_landscapes.metrics as llm
        except ImportError:
            line += "   (loss-landscapes not installed)"
        else:
            for norm in ("filter", "layer"):
                m = copy.deepcopy(model)
                sync()
                t = time.perf_counter()
                try:
                    loss_landscapes.random_plane(m, llm.Loss(F.cross_entropy, x, y),
                                                 distance=1.0, steps=a.steps, normalization=norm)
                except Exception as e:  # the peer's own failure is a result too
                    line += f"   loss-landscapes[{norm}] crashed: {type(e).__name__}: {e}"
                    row[f"loss-landscapes[{norm}]"] = f"crashed ({type(e).__name__})"
                    continue
                sync()
                peer = time.perf_counter() - t
                line += f"   loss-landscapes[{norm}] {peer:7.1f} s  ratio {peer / bound:.3f}"
                row.update({f"loss-landscapes[{norm}] s": peer,
                            f"loss-landscapes[{norm}] / bound": peer / bound})
                break
        print(line, flush=True)
    record("landscape_cost", rows, vars(a),
           "A loss surface's time over its lower bound (steps² no-grad forwards), ours and "
           "loss-landscapes' in one run (goal <= 1.15 on CPU).")


if __name__ == "__main__":
    main()
