"""Eigen-solvers and estimators on any symmetric linear operator — no model inside.

An operator here is anything with ``n``, ``device``, ``dtype``, ``num_hvps`` (a counter of
products) and ``matvec(v, out=None)`` / ``matmat(V)`` on ``(n,)`` / ``(n, m)`` tensors:
``hessian.HessianOperator`` for a model's loss, ``DenseOperator`` for a matrix (the tests
check every solver on matrices with known spectra). As curvlinops separates its operators
from its estimators:

* ``eigsh`` — the k extreme eigenpairs, each certified by its residual: thick-restart
  Lanczos (Wu & Simon 2000; Stewart 2001) with full reorthogonalisation in the model's dtype,
  ARPACK (``scipy.sparse.linalg.eigsh``), or PyHessian's deflated power iteration (parity).
* ``hutchpp_trace`` — Hutch++ (Meyer, Musco, Musco & Woodruff 2021) or Hutchinson, with a
  standard error and optional stopping on a confidence interval.
* ``slq`` — the spectral density by stochastic Lanczos quadrature (Lin, Saad & Yang 2016;
  Ghorbani, Krishnan & Xiao 2019).
"""

from .base import DEFAULT_TOL, DenseOperator, EigenResult, SymmetricOperator
from .eigen import eigsh
from .hutchpp import TraceResult, hutchpp_trace
from .kernels import Workspace
from .slq import Density, lanczos_tridiagonal, slq

__all__ = ["DEFAULT_TOL", "DenseOperator", "Density", "EigenResult", "SymmetricOperator",
           "TraceResult", "Workspace", "eigsh", "hutchpp_trace", "lanczos_tridiagonal", "slq"]
