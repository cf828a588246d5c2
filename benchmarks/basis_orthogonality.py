"""How orthogonal ``solvers.eigsh``'s float32 Lanczos basis stays, step by step, on the quick
preset's trained models (top-5 by magnitude, tol 1e-3, a batch of 16, as
``hessian_scale.py``). After each step's Gram-Schmidt, the new vector's largest cosine with
the basis, max_i |v_i . r| / ||r||, is measured in float64 (column chunk by column chunk),
next to ||H v|| / beta, the cancellation that the step's rounding is amplified by. float32's
sqrt(eps) (3.5e-4) is the semi-orthogonality level below which the Ritz values are those of an
orthonormal basis to O(eps ||H||) (Simon 1984). Also measured: the relative error of one
float32 HVP against the same model's float64 HVP (a random unit vector), the rounding that
enters every step before any Gram-Schmidt, and that partial or selective reorthogonalisation
would have to keep below their thresholds.

    python benchmarks/basis_orthogonality.py [--models vit-ti,resnet-18] [--runs-dir runs]
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402
from hessian_scale import problem  # noqa: E402

from vitprobe import hessian, solvers  # noqa: E402
from vitprobe.solvers import lanczos  # noqa: E402

CHUNK = 1 << 18


def cosine(V: torch.Tensor, r: torch.Tensor) -> float:
    """max_i |V_i . r| / ||r|| in float64, without a float64 copy of V."""
    dots = torch.zeros(len(V), dtype=torch.float64)
    for s in range(0, V.shape[1], CHUNK):
        dots += V[:, s:s + CHUNK].double() @ r[s:s + CHUNK].double()
    return (dots.abs().max() / r.double().norm()).item()


def hvp_error(model, batch) -> float:
    """||Hv - H64 v|| / ||H64 v|| for a random unit v, H64 the float64 copy's Hessian."""
    x, y = batch
    with hessian.operator(model, F.cross_entropy, batch) as H, \
            hessian.operator(copy.deepcopy(model).double(), F.cross_entropy,
                             (x.double(), y)) as H64:
        v = torch.randn(H.n, generator=torch.Generator().manual_seed(0))
        v /= v.norm()
        exact = H64.matvec(v.double())
        return ((H.matvec(v).double() - exact).norm() / exact.norm()).item()


def steps(name: str, runs_dir: str) -> tuple[list[dict], solvers.EigenResult]:
    """One solve, with each step's orthogonality measured around ``_orthogonalise``."""
    model, batch = problem(name, trained=True, runs_dir=runs_dir)
    error = hvp_error(model, batch)
    original, rows = lanczos._orthogonalise, []

    def measured(r, hv, Vm, two_passes):
        col, beta = original(r, hv, Vm, two_passes)
        rows.append({"model": name, "hvp_relative_error": error, "step": len(rows) + 1,
                     "basis_rows": len(Vm),
                     "cancellation": math.hypot(float((col ** 2).sum()) ** 0.5, beta) / beta,
                     "cosine": cosine(Vm, r)})
        return col, beta

    lanczos._orthogonalise = measured
    try:
        with hessian.operator(model, F.cross_entropy, batch) as H:
            result = solvers.eigsh(H, 5, tol=1e-3)
    finally:
        lanczos._orthogonalise = original
    return rows, result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit-ti,resnet-18")
    p.add_argument("--runs-dir", default="runs", help="the training cache of the models")
    a = p.parse_args()
    rows, worst, error = [], {}, {}
    for name in a.models.split(","):
        got, result = steps(name, a.runs_dir)
        rows += got
        worst[name] = max(r["cosine"] for r in got)
        error[name] = got[0]["hvp_relative_error"]
        print(f"{name}: one float32 HVP is off the float64 one by {error[name]:.1e} (relative)")
        for r in got:
            print(f"{name:10s} step {r['step']:2d}, {r['basis_rows']:2d} rows: ||Hv||/beta "
                  f"{r['cancellation']:6.1f}, largest cosine with the basis {r['cosine']:.1e}")
        print(f"{name}: {result.num_hvps} HVPs, eigenvalues {result.eigenvalues.round(4)}, max "
              f"residual {result.residuals.max():.1e}")
    record("basis_orthogonality", rows, vars(a),
           summary="largest cosine of a new Lanczos vector with the float32 basis: " + ", ".join(
               f"{m} {c:.1e}" for m, c in worst.items()) + " (float32's sqrt(eps) 3.5e-4); "
           "a float32 HVP's relative error: " + ", ".join(f"{m} {e:.1e}"
                                                          for m, e in error.items()))


if __name__ == "__main__":
    main()
