"""Can a Lanczos solver stay within 1.10x of its own HVPs on this machine? The time one HVP
takes (the quick preset's trained model, a batch of 16, as ``hessian_scale.py`` uses) sets
the budget: 10 % of it per Krylov vector. Against it, side by side in one run, the cost per
vector of classical Gram-Schmidt (project on a basis of ``--rows`` parameter-sized rows of
``--dtype``, float32 being ``solvers.eigsh``'s basis for a float32 model, then subtract) for
blocks of 1, 2, 4 and 8 vectors at once (a block Krylov method's batched HVP gives one block
per step), as one BLAS call and split over column chunks; for one vector also as the solver
does it (``kernels._project`` and ``kernels._subtract``: one batched product over column
blocks per pass); and of one plain pass over a vector of that dtype (a norm), which every
step needs several of.

    python benchmarks/gram_schmidt_budget.py [--models vit-ti,resnet-18] [--rows 12]
                                             [--dtype float32|float64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, record  # noqa: E402
from hessian_scale import problem  # noqa: E402

# ruff: noqa: B023  (closures are timed inside the loop iteration that defines them)
from vitprobe import hessian  # noqa: E402
from vitprobe.solvers import kernels  # noqa: E402

CHUNK = 1 << 16  # columns per slice of the chunked variant


def gram_schmidt_coefficients(V: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """V R^T (rows x block), summed over column chunks."""
    C = torch.zeros(len(V), len(R), dtype=V.dtype)
    for s in range(0, V.shape[1], CHUNK):
        C.addmm_(V[:, s:s + CHUNK], R[:, s:s + CHUNK].T)
    return C


def subtract_(R: torch.Tensor, V: torch.Tensor, C: torch.Tensor) -> None:
    """R -= C^T V in place, over column chunks."""
    for s in range(0, V.shape[1], CHUNK):
        R[:, s:s + CHUNK].addmm_(C.T, V[:, s:s + CHUNK], alpha=-1.0)


def gram_schmidt(V: torch.Tensor, R: torch.Tensor, variant: str) -> None:
    """R -= (V^T (V R^T))^T: one classical Gram-Schmidt pass of the rows of R against V."""
    if variant == "solver's batched blocks":
        for r in R:
            kernels._subtract(r, r, V, kernels._project(V, r))
        return
    if variant == "one BLAS call":
        R.addmm_((V @ R.T).T, V, alpha=-1.0)
        return
    subtract_(R, V, gram_schmidt_coefficients(V, R))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit-ti,resnet-18")
    p.add_argument("--rows", type=int, default=12, help="basis rows each vector is projected on")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="the basis' dtype")
    p.add_argument("--runs-dir", default="runs", help="the training cache of the models")
    a = p.parse_args()
    dtype = getattr(torch, a.dtype)
    print(f"{torch.get_num_threads()} threads; basis of {a.rows} {a.dtype} rows")
    rows = []
    for name in a.models.split(","):
        model, batch = problem(name, trained=True, runs_dir=a.runs_dir)
        with hessian.operator(model, F.cross_entropy, batch) as H:
            v = torch.randn(H.n, dtype=H.dtype)
            hvp = interleaved({"hvp": lambda: H.matvec(v)}, rounds=5)["hvp"]
            n = H.n
        budget = 0.10 * hvp
        V = torch.randn(a.rows, n, dtype=dtype)
        x = torch.randn(n, dtype=dtype)
        norm = interleaved({"norm": lambda: x.norm()}, rounds=10)["norm"]
        print(f"{name}: {n / 1e6:.2f} M parameters, HVP {hvp * 1e3:.0f} ms, budget at 1.10x "
              f"{budget * 1e3:.0f} ms per vector; one {a.dtype} norm pass {norm * 1e3:.1f} ms")
        for block in (1, 2, 4, 8):
            R = torch.randn(block, n, dtype=dtype)
            variants = ["one BLAS call", "column chunks"]
            variants += ["solver's batched blocks"] if block == 1 else []
            for variant in variants:
                per_vector = interleaved({"gs": lambda: gram_schmidt(V, R, variant)},
                                         rounds=5)["gs"] / block
                rows.append({"model": name, "parameters": n, "hvp_seconds": hvp,
                             "basis_rows": a.rows, "basis_dtype": a.dtype, "block": block,
                             "variant": variant,
                             "gram_schmidt_ms_per_vector": per_vector * 1e3,
                             "budget_ms_per_vector": budget * 1e3,
                             "share_of_budget": per_vector / budget,
                             "norm_pass_ms": norm * 1e3})
                print(f"  block {block}, {variant:23s}: Gram-Schmidt "
                      f"{per_vector * 1e3:6.1f} ms per vector = "
                      f"{per_vector / budget:.2f} of the budget")

    def best(model):
        return min(r["share_of_budget"] for r in rows if r["model"] == model)

    record("gram_schmidt_budget", rows, vars(a),
           summary="Gram-Schmidt per Krylov vector at its best block size and variant, as a "
                   "share of 1.10x's budget: " + ", ".join(
                       f"{m} {best(m):.2f}" for m in dict.fromkeys(r["model"] for r in rows)))


if __name__ == "__main__":
    main()
