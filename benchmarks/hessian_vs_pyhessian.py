"""vitprobe.hessian vs PyHessian on the same trained model and mini-batch (batch 16,
Fashion-MNIST): top-5 eigenvalues (wall time, HVPs, relative residuals), the cost of one
HVP over one gradient, and trace error at an equal HVP budget.

python -m benchmarks.hessian_vs_pyhessian [--models vit-ti,resnet-18] [--preset quick]
    [--tol 1e-3] [--peer-tols 1e-3,1e-5] [--rounds 3] [--trace-repeats 5] [--device cpu]
Goals: >= 10x faster top-5 at equal residual (ours asked for the relative residual
PyHessian's pairs reached); HVP / gradient <= 2.5.
Models come from the training cache (trained first if missing).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import Headline, add_device, interleaved, record, synchronizer
from vitprobe import hessian
from vitprobe.modes import explicit_attention
from vitprobe.studies.cache import trained_model
from vitprobe.studies.protocols import spectrum_loader
from vitprobe.studies.runspec import RunSpec

# ruff: noqa: B023  (closures are timed inside the loop iteration that defines them)


def _equal_residual_speedup(rows: list[dict]) -> float:
    """PyHessian's time over ours when ours is asked for the residual PyHessian reached
    (ours then certifies every pair at or below it): the smallest over models and
    PyHessian tolerances."""
    return min(r["equal-residual speed-up"] for r in rows if "equal-residual speed-up" in r)


HEADLINES = (Headline("hessian_vs_pyhessian", "top-5 eigenpairs (trained models, batch 16) at "
                      "equal residual: PyHessian's time / ours at the largest relative "
                      "residual PyHessian's pairs reached; worst model and PyHessian tol",
                      _equal_residual_speedup, goal=10, at_least=True),)


def residuals(model, batch, vals, vecs) -> np.ndarray:
    """||Hv - lambda v|| / |lambda| with our exact HVP, for any solver's output."""
    with hessian.OperatorSpec(model, F.cross_entropy, batch).open() as H:
        out = []
        for lam, v in zip(vals, vecs):
            v = v / v.norm()
            out.append(((H.matvec(v) - lam * v).norm() / abs(lam)).item())
    return np.array(out)


def pyhessian_top5(model, batch, tol):
    from pyhessian import hessian as PyHessian

    m = copy.deepcopy(model)  # PyHessian calls model.eval() and keeps its graph alive
    dev = batch[0].device
    sync = synchronizer(dev)
    with explicit_attention(m):  # its double backward needs the explicit attention path
        sync()
        t = time.perf_counter()
        h = PyHessian(m, F.cross_entropy, data=batch, cuda=dev.type == "cuda")
        vals, vecs = h.eigenvalues(maxIter=100, tol=tol, top_n=5)
        sync()
        seconds = time.perf_counter() - t
    flat = [torch.cat([p.reshape(-1) for p in v]) for v in vecs]
    return np.array(vals), flat, seconds, h


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit-ti,resnet-18")
    p.add_argument("--preset", default="quick")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--peer-tols", default=None,
                   help="comma-separated PyHessian tolerances (default: tol and tol / 100)")
    p.add_argument("--trace-budget", type=int, default=30, help="HVPs per trace estimate")
    p.add_argument("--trace-reference", type=int, default=200,
                   help="Hutchinson probes for the reference trace")
    p.add_argument("--trace-repeats", type=int, default=5,
                   help="seeds per trace estimator (RMS error over them)")
    p.add_argument("--rounds", type=int, default=3, help="runs of our top-5 (median)")
    add_device(p)
    a = p.parse_args()
    dev = a.device
    torch.manual_seed(0)
    print(f"{dev}, {torch.get_num_threads()} CPU threads, batch 16, tol {a.tol}")
    rows = []
    for name in a.models.split(","):
        spec = RunSpec(model=name, data=a.data, preset=a.preset, progress=False)
        model, _ = trained_model(spec)
        model = model.to(dev)
        batch = tuple(t.to(dev) for t in next(spectrum_loader(spec, 16, clean=False).iterate(0)))
        n = sum(p.numel() for p in model.parameters())
        print(f"\n== {name} ({n:,} parameters)")

        # warm the process (first-call kernel set-up) before either side is timed; ours is
        # the median of --rounds runs, PyHessian's (tens of seconds, small spread) one run
        hessian.hvp(
            hessian.OperatorSpec(model, F.cross_entropy, batch),
            {k: torch.ones_like(t) for k, t in model.named_parameters()},
        )
        runs = [
            hessian.top_eigenvalues(
                hessian.OperatorSpec(model, F.cross_entropy, batch),
                k=5,
                tol=a.tol,
                workspace=hessian.Workspace(eigenvectors=True),
            )
            for _ in range(a.rounds)
        ]
        ours = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
        print(f"top-5 ours              {ours.seconds:7.1f} s  {ours.num_hvps:4d} HVPs  "
              f"eigenvalues {np.array2string(ours.eigenvalues, precision=4)}  "
              f"max residual {ours.residuals.max():.1e}")
        # PyHessian stops on the eigenvalue's relative change, not on a residual: run it at
        # the same tol, and at a 100x tighter one to see what its residuals cost (--peer-tols).
        peer_tols = ([float(t) for t in a.peer_tols.split(",")] if a.peer_tols
                     else [a.tol, a.tol / 100])
        for tol in peer_tols:
            ph_vals, ph_vecs, ph_s, ph = pyhessian_top5(model, batch, tol)
            ph_res = residuals(model, batch, ph_vals, ph_vecs)
            print(f"top-5 PyHessian tol {tol:.0e} {ph_s:7.1f} s             eigenvalues "
                  f"{np.array2string(ph_vals, precision=4)}  max residual {ph_res.max():.1e}")
            print(f"  speed-up {ph_s / ours.seconds:.1f}x   residual ratio (PyHessian / ours) "
                  f"{ph_res.max() / max(ours.residuals.max(), 1e-12):.1f}x")
            # equal residual: ours asked for the residual PyHessian reached (at most ours
            # at --tol, which already meets it when PyHessian's pairs are tighter)
            eq_tol = min(max(float(ph_res.max()), a.tol), 0.5)
            eq = sorted((hessian.top_eigenvalues(hessian.OperatorSpec(model, F.cross_entropy,
                                                                      batch), k=5, tol=eq_tol,
                                                 workspace=hessian.Workspace(eigenvectors=True))
                         for _ in range(a.rounds)), key=lambda r: r.seconds)[a.rounds // 2]
            print(f"  ours at tol {eq_tol:.1e}    {eq.seconds:7.1f} s  {eq.num_hvps:4d} HVPs  "
                  f"max residual {eq.residuals.max():.1e}   equal-residual speed-up "
                  f"{ph_s / eq.seconds:.1f}x")
            rows.append({"model": name, "what": f"top-5, PyHessian tol {tol:.0e}",
                         "ours s": ours.seconds, "ours HVPs": ours.num_hvps,
                         "ours max residual": float(ours.residuals.max()),
                         "PyHessian s": ph_s, "PyHessian max residual": float(ph_res.max()),
                         "speed-up": ph_s / ours.seconds, "ours tol at its residual": eq_tol,
                         "ours s at its residual": eq.seconds,
                         "ours HVPs at its residual": eq.num_hvps,
                         "ours max residual at its residual": float(eq.residuals.max()),
                         "equal-residual speed-up": ph_s / eq.seconds})
            del ph

        with hessian.OperatorSpec(model, F.cross_entropy, batch).open() as H:
            v = torch.randn(H.n, device=dev)
            params = {k: t.clone().requires_grad_(True) for k, t in H.params.items()}

            def grad_once():
                loss = H._loss(params, *H.batches[0])
                torch.autograd.grad(loss, list(params.values()))

            t = interleaved({"hvp": lambda: H.matvec(v), "grad": grad_once}, rounds=5,
                            device=dev)
        print(f"one HVP / one gradient: {t['hvp'] / t['grad']:.2f}x "
              f"(HVP {t['hvp'] * 1e3:.0f} ms, gradient {t['grad'] * 1e3:.0f} ms)")

        # one estimate's error is mostly luck: compare root-mean-square errors over seeds
        ref = hessian.trace(
            hessian.OperatorSpec(model, F.cross_entropy, batch),
            num_probes=a.trace_reference,
            method="hutchinson",
            seed=123,
        )
        ours_err, peer_err = [], []
        m = copy.deepcopy(model)
        with explicit_attention(m):
            from pyhessian import hessian as PyHessian

            h = PyHessian(m, F.cross_entropy, data=batch, cuda=dev.type == "cuda")
            for seed in range(a.trace_repeats):
                hpp = hessian.trace(
                    hessian.OperatorSpec(model, F.cross_entropy, batch),
                    num_probes=a.trace_budget,
                    seed=1000 + seed,
                )
                ours_err.append(hpp.estimate - ref.estimate)
                torch.manual_seed(1000 + seed)  # PyHessian draws its probes from torch's RNG
                peer_err.append(float(np.mean(h.trace(maxIter=a.trace_budget, tol=1e-3)))
                                - ref.estimate)
        rms = {k: float(np.sqrt(np.mean(np.square(e))))
               for k, e in (("ours", ours_err), ("peer", peer_err))}
        print(f"trace (reference {ref.estimate:.4g} +- {ref.stderr:.2g}, {a.trace_reference} "
              f"probes), RMS error over {a.trace_repeats} seeds at {a.trace_budget} HVPs: "
              f"Hutch++ {rms['ours']:.3g}   PyHessian {rms['peer']:.3g}   "
              f"ratio {rms['peer'] / max(rms['ours'], 1e-12):.2f}x")
        rows.append({"model": name, "what": f"trace at {a.trace_budget} HVPs, RMS error",
                     "ours RMS error": rms["ours"], "PyHessian RMS error": rms["peer"],
                     "error ratio": rms["peer"] / max(rms["ours"], 1e-12),
                     "HVP / gradient": t["hvp"] / t["grad"]})
    record("hessian_vs_pyhessian", rows, vars(a),
           "Top-5 Hessian eigenpairs (batch 16, trained quick-preset models) and trace "
           "estimates, ours and PyHessian in one run.")


if __name__ == "__main__":
    main()
