"""Would a block Krylov solver cut the eigensolver's overhead? A trial block thick-restart
Lanczos (b vectors per step, full projection T = V^T H V as in ``solvers.eigsh``, a second
Gram-Schmidt pass where a column lost 99 % of its norm, Householder QR of each new block,
restart on the wanted Ritz vectors when the basis is full, the same residual certificate)
against ``solvers.eigsh``, side by side on the same operator: top-5 by magnitude, tol 1e-3,
the quick preset's trained model and a batch of 16 (as ``hessian_scale.py``). Prints HVPs,
time inside them, the overhead ratio and the eigenvalues. A measurement, not a library
solver: each of its calls allocates fresh buffers (``eigsh`` reuses a workspace from its
second call on).

    python benchmarks/block_lanczos_trial.py [--models vit-ti,resnet-18] [--blocks 2,4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402
from gram_schmidt_budget import gram_schmidt_coefficients, subtract_  # noqa: E402
from hessian_scale import TimedOperator, problem  # noqa: E402

from vitprobe import hessian, solvers  # noqa: E402
from vitprobe.solvers import kernels  # noqa: E402


def block_lanczos(H, k: int, b: int, ncv: int, tol: float, seed: int = 0,
                  max_hvps: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (largest magnitude) eigenvalues and certified relative residuals."""
    n = H.n
    g = torch.Generator().manual_seed(seed)
    V = torch.empty(ncv, n, dtype=torch.float64)
    W = torch.empty(ncv, n, dtype=H.dtype)
    R = torch.empty(b, n, dtype=torch.float64)
    x = torch.empty(n, dtype=H.dtype)
    V[:b] = torch.linalg.qr(torch.randn(n, b, generator=g, dtype=torch.float64))[0].T
    T, m = np.zeros((0, 0)), 0
    while True:
        for j in range(m, m + b):
            H.matvec(x.copy_(V[j]), out=W[j])
        m += b
        R.copy_(W[m - b:m])
        before = R.norm(dim=1)
        C = gram_schmidt_coefficients(V[:m], R)
        subtract_(R, V[:m], C)
        if (R.norm(dim=1) < 1e-2 * before).any():
            C2 = gram_schmidt_coefficients(V[:m], R)
            subtract_(R, V[:m], C2)
            C += C2
        C = C.numpy()
        grown = np.zeros((m, m))
        grown[:m - b, :m - b] = T
        grown[:, m - b:], grown[m - b:, :] = C, C.T
        grown[m - b:, m - b:] = (C[m - b:] + C[m - b:].T) / 2
        T = grown
        Q, B = torch.linalg.qr(R.T)  # the residual block R = B^T Q^T
        theta, Y = np.linalg.eigh(T)
        order = np.argsort(-np.abs(theta))
        sel = order[:k]
        scale = np.maximum(np.abs(theta[sel]), np.finfo(float).tiny)
        estimate = np.linalg.norm(B.numpy() @ Y[m - b:, sel], axis=0) / scale
        done = H.num_hvps >= max_hvps
        if done or (m >= 2 * k + 1 and (estimate <= tol).all()):
            Ys = torch.as_tensor(Y[:, sel].T.copy())
            res = kernels._ritz_residual_norms(Ys, theta[sel], V[:m], W[:m])[0] / scale
            if done or (res <= tol).all():
                return theta[sel], res
        if m + b > ncv:
            keep = order[:max(k, ncv // 2)]
            Yk = torch.as_tensor(Y[:, keep].T.copy())
            kernels._combine_rows_(V, Yk)
            kernels._combine_rows_(W, Yk)
            m, T = len(keep), np.diag(theta[keep])
        V[m:m + b] = Q.T


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit-ti,resnet-18")
    p.add_argument("--blocks", default="2,4")
    p.add_argument("--ncv", type=int, default=24, help="the block solver's basis rows")
    p.add_argument("--runs-dir", default="runs", help="the training cache of the models")
    a = p.parse_args()
    rows = []
    for name in a.models.split(","):
        model, batch = problem(name, trained=True, runs_dir=a.runs_dir)
        ws = solvers.Workspace()
        with hessian.operator(model, F.cross_entropy, batch) as H:
            for solver in ["eigsh"] + [f"block {b}" for b in a.blocks.split(",")]:
                for call in ("first", "second"):
                    T, start = TimedOperator(H), H.num_hvps
                    t = time.perf_counter()
                    if solver == "eigsh":
                        r = solvers.eigsh(T, 5, tol=1e-3, workspace=ws)
                        values, res = r.eigenvalues, r.residuals
                    else:
                        values, res = block_lanczos(T, 5, int(solver.split()[1]), a.ncv, 1e-3)
                    wall = time.perf_counter() - t
                    rows.append({"model": name, "solver": solver, "call": call,
                                 "hvps": H.num_hvps - start, "seconds": wall,
                                 "hvp_seconds": T.seconds, "overhead": wall / T.seconds,
                                 "max_residual": float(np.max(res)),
                                 "eigenvalues": [round(float(e), 3)
                                                 for e in sorted(values, key=abs)[::-1]]})
                    print(f"{name} {solver} ({call} call): {wall:.1f} s, {rows[-1]['hvps']} "
                          f"HVPs, {T.seconds:.1f} s inside them, overhead "
                          f"{rows[-1]['overhead']:.3f}x, max residual {np.max(res):.1e}, "
                          f"eigenvalues {rows[-1]['eigenvalues']}", flush=True)

    def second(model, solver, key):
        return next(r[key] for r in rows if r["model"] == model and r["solver"] == solver
                    and r["call"] == "second")

    models = list(dict.fromkeys(r["model"] for r in rows))
    record("block_lanczos_trial", rows, vars(a), summary="second calls, HVPs and overhead: " +
           "; ".join(f"{m} " + ", ".join(
               f"{s} {second(m, s, 'hvps')} / {second(m, s, 'overhead'):.2f}x"
               for s in dict.fromkeys(r["solver"] for r in rows)) for m in models))


if __name__ == "__main__":
    main()
