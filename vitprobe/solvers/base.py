"""The operator the solvers work on and the result of an eigensolver.

An operator is anything with ``n``, ``device``, ``dtype``, ``num_hvps`` (a counter of
products) and ``matvec(v, out=None)`` / ``matmat(V)`` on ``(n,)`` / ``(n, m)`` tensors:
``hessian.HessianOperator`` for a model's loss, ``DenseOperator`` for a matrix (the tests
check every solver on matrices with known spectra)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ..serial import NOT_RECORDED, Serialised

# The one default tolerance of every eigensolver, the API's and the command line's alike:
# relative residual ||Hv - λv|| <= tol·|λ| per returned pair (the tolerance of the spectra,
# the benchmarks and the PyHessian comparison; pass a smaller one for more digits).
DEFAULT_TOL = 1e-3


def zero_level(dtype: torch.dtype) -> float:
    """Relative to the spectrum's scale, the size below which a quantity is zero at the
    operator's precision: 10^4 eps (2e-12 in float64, 1e-3 in float32; at most 1e-2). The
    Lanczos recurrence has broken down (its Krylov space is invariant) when its residual
    falls under it, and an eigenvalue under it is zero."""
    return min(1e-2, 1e4 * torch.finfo(dtype).eps)


def residual_scale(values: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """What each pair's residual ||Hv - λv|| is divided by: |λ|, or |λmax| for an eigenvalue
    that is zero at the operator's precision (``zero_level``): a zero eigenvalue has no
    relative residual and is judged absolutely, against the spectrum's scale."""
    a = np.abs(np.asarray(values, dtype=float))
    top = float(a.max()) if a.size else 0.0
    return np.maximum(np.where(a < zero_level(dtype) * top, top, a), np.finfo(float).tiny)


class SymmetricOperator(Protocol):
    """What the solvers use of an operator."""

    n: int
    device: torch.device
    dtype: torch.dtype
    num_hvps: int

    def matvec(self, v: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor: ...

    def matmat(self, V: torch.Tensor) -> torch.Tensor: ...


class DenseOperator:
    """A symmetric matrix as an operator (products counted in ``num_hvps``)."""

    def __init__(self, matrix: torch.Tensor | np.ndarray) -> None:
        A = torch.as_tensor(matrix)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"a square matrix is needed; got shape {tuple(A.shape)}")
        if not torch.allclose(A, A.T, rtol=1e-10, atol=1e-12 * float(A.abs().max() or 1)):
            raise ValueError("the matrix is not symmetric")
        self.A = A
        self.n, self.device, self.dtype = A.shape[0], A.device, A.dtype
        self.num_hvps = 0

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.num_hvps += V.shape[1]
        return self.A @ V.to(self.dtype)

    def matvec(self, v: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        hv = self.matmat(v.reshape(-1, 1))[:, 0]
        if out is None:
            return hv
        out.copy_(hv)
        return out


@dataclass(frozen=True)
class EigenResult(Serialised):
    """Eigenpairs ordered by the ``which`` criterion (|lambda| descending for "LM").

    ``residuals[i] = ||H v_i - lambda_i v_i|| / |lambda_i|``: from the kept HVPs of the basis
    (``method="lanczos"``, H V y = W y) or one extra HVP per pair after the solver stopped
    ("arpack", "power"); ``converged[i] = residuals[i] <= tol``.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    num_hvps: int
    seconds: float
    method: str
    which: str
    tol: float
    seed: int
    layout: str = ""  # the method and, for Lanczos, how its basis was held
    # seconds by section (``solvers.timing``), with ``Workspace(timed=True)``; else None
    timings: dict | None = None
    # (parameters, k), unit columns, with ``Workspace(eigenvectors=True)``; else None.
    # Lanczos and power iteration: in the dtype they were computed in (float32 for a float32
    # model: a float64 copy would add no digits); ARPACK: float64 (scipy's)
    eigenvectors: np.ndarray | None = field(default=None, repr=False, metadata=NOT_RECORDED)


def _order(values: np.ndarray, which: str) -> np.ndarray:
    if which == "LM":
        return np.argsort(-np.abs(values), kind="stable")
    if which == "LA":
        return np.argsort(-values, kind="stable")
    return np.argsort(values, kind="stable")


def _residuals(H: SymmetricOperator, vals: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """||H v - lambda v|| / ``residual_scale`` per pair (v normalised), all k HVPs in one
    batched pass."""
    if len(vals) == 0:
        return np.zeros(0)
    V = torch.as_tensor(np.ascontiguousarray(vecs), device=H.device, dtype=H.dtype)
    V = V / V.norm(dim=0)
    lam = torch.as_tensor(vals, device=H.device, dtype=H.dtype)
    r = (H.matmat(V) - V * lam).norm(dim=0).double().cpu().numpy()
    return r / residual_scale(vals, H.dtype)
