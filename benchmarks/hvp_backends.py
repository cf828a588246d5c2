"""Which HVP to use: double backward (reverse-over-reverse) vs forward-over-reverse
(torch.func.jvp of grad), and one gradient for scale, on vit-ti and resnet-18 (batch 16,
28 px), interleaved in one run; then what one vmapped pass over m vectors (``matmat``, used
by the residual check, Hutch++ and Hutchinson) costs per vector against m single HVPs.

python -m benchmarks.hvp_backends [--columns 8] [--device cpu]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.common import Headline, add_device, interleaved, record
from vitprobe import hessian
from vitprobe.models import create_model

# ruff: noqa: B023  (closures are timed inside the loop iteration that defines them)

HEADLINES = (Headline("hvp_backends", "one HVP (double backward) / one gradient, batch 16, "
                      "worst of vit-ti and resnet-18",
                      lambda rows: max(r["HVP / gradient"] for r in rows), goal=2.5,
                      at_least=False),)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--columns", type=int, default=8, help="vectors per matmat pass")
    add_device(p)
    a = p.parse_args()
    m, dev = a.columns, a.device
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28, device=dev), torch.randint(0, 10, (16,), device=dev)
    print(f"{dev}, {torch.get_num_threads()} CPU threads, batch 16")
    rows = []
    for name, kw in (("vit-ti", {"patch_size": 4}), ("resnet-18", {})):
        model = create_model(name, num_classes=10, in_chans=1, img_size=28, **kw).to(dev).eval()
        with hessian.OperatorSpec(model, F.cross_entropy, (x, y)).open() as H:
            v = torch.randn(H.n, device=dev)
            params = {k: t.clone().requires_grad_(True) for k, t in H.params.items()}

            def grad_once():
                torch.autograd.grad(H._loss(params, x, y), list(params.values()))

            def fwd():
                H.backend = "forward"
                H.matvec(v)

            def rev():
                H.backend = "reverse"
                H.matvec(v)

            V = torch.randn(H.n, m, device=dev)

            def block():
                H.backend = "reverse"
                H.matmat(V, block=m)

            t = interleaved({"reverse": rev, "forward": fwd, "grad": grad_once,
                             "block": block}, rounds=5, device=dev)
        print(f"{name:10s} gradient {t['grad'] * 1e3:6.0f} ms   double backward "
              f"{t['reverse'] * 1e3:6.0f} ms ({t['reverse'] / t['grad']:.2f}x)   "
              f"forward-over-reverse {t['forward'] * 1e3:6.0f} ms "
              f"({t['forward'] / t['grad']:.2f}x)")
        print(f"{'':10s} matmat of {m} vectors {t['block'] * 1e3:6.0f} ms = "
              f"{t['block'] / m * 1e3:.0f} ms per vector, {t['block'] / (m * t['reverse']):.2f}x "
              f"the cost of {m} single HVPs")
        rows.append({"model": name, "gradient ms": 1e3 * t["grad"],
                     "double backward ms": 1e3 * t["reverse"],
                     "HVP / gradient": t["reverse"] / t["grad"],
                     "forward-over-reverse ms": 1e3 * t["forward"],
                     f"matmat of {m} / {m} HVPs": t["block"] / (m * t["reverse"])})
    record("hvp_backends", rows, {"columns": m, "batch": 16, "rounds": 5, "device": dev},
           "Double backward vs forward-over-reverse HVPs, and one vmapped pass over several "
           "vectors against single HVPs.")


if __name__ == "__main__":
    main()
