"""``eigsh``: the k extreme eigenpairs of a symmetric operator by one of the solver modules,
each pair certified by its residual."""

from __future__ import annotations

import time

import numpy as np

from .arpack import _lanczos_arpack
from .base import DEFAULT_TOL, EigenResult, SymmetricOperator, _order, _residuals
from .kernels import Workspace
from .lanczos import _LostOrthogonality, _thick_lanczos
from .memory import low_memory_needed
from .power import _power_deflated
from .timing import Sections, TimedOperator


def eigsh(A: SymmetricOperator, k: int = 5, *, which: str = "LM", tol: float = DEFAULT_TOL,
          method: str = "lanczos", max_hvps: int = 1000, seed: int = 0,
          workspace: Workspace | None = None) -> EigenResult:
    """The k extreme eigenpairs of the symmetric operator ``A``, each certified by its
    residual.

    ``tol`` means the same for every method: a pair is converged when its relative residual
    ||A v - λ v|| / |λ| is at most ``tol``, measured with products of A (Lanczos: from the
    products it kept; ARPACK and power iteration: one more product per pair), and every method
    stops on that criterion (ARPACK, whose own tolerance bounds the Ritz values, is solved
    again ten times tighter until its pairs pass or ``max_hvps`` is spent; power iteration
    reads the residual off its own product). ``EigenResult.residuals`` holds the measured
    values, ``converged`` which pairs pass.

    which: "LM" largest magnitude (Park & Kim 2022's spectra), "LA" largest algebraic, "SA"
    smallest algebraic. method: "lanczos" (thick-restart Lanczos keeping each basis vector's
    HVP: residuals every step, stops at the first step where all k pairs reach ``tol``, no extra
    HVPs to certify; memory 8 ``ncv`` bytes per parameter of a float32 model, 16 ``ncv`` of a
    float64 one; the layout and ``ncv`` come from ``workspace``, the layout chosen is named in
    ``EigenResult.layout``; a solve whose wanted Ritz vectors come out far from orthogonal (a
    ghost copy) is redone with two Gram-Schmidt passes per step and a new budget of
    ``max_hvps``), "arpack"
    (implicitly restarted Lanczos, scipy's ARPACK, k more HVPs to certify; 8 ``ncv`` bytes per
    parameter) or "power" (PyHessian's deflated power iteration, for parity, stopping on
    the residual where PyHessian stops on the Rayleigh quotient's change; LM only). Lanczos
    needs about half of ARPACK's HVPs at tol 1e-3 (``python -m benchmarks.hessian_vs_peers``). A
    residual certifies an eigenpair, not that no wanted eigenvalue was missed: at loose
    tolerances (1e-2) an eigenvalue whose Ritz value has not emerged yet can be skipped; at 1e-3
    and below the tests find the exact top-k of dense Hessians.
    """
    ws = workspace or Workspace()
    ncv, low_memory = ws.ncv, ws.low_memory
    if not 0 < tol < 1:
        raise ValueError(f"tol is a relative residual and must be in (0, 1); got {tol!r}")
    if not isinstance(max_hvps, int) or max_hvps < 1:
        raise ValueError(f"max_hvps must be a positive integer; got {max_hvps!r}")
    if which not in ("LM", "LA", "SA"):
        raise ValueError(f"which must be 'LM', 'LA' or 'SA'; got {which!r}")
    if method not in ("lanczos", "arpack", "power"):
        raise ValueError(f"method must be 'lanczos', 'arpack' or 'power'; got {method!r}")
    if low_memory and method != "lanczos":
        raise ValueError(f"low_memory is an option of method='lanczos'; got method={method!r}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if k >= A.n:
        raise ValueError(f"k={k} must be smaller than the number of dimensions ({A.n}; for a "
                         f"Hessian, of parameters)")
    t0 = time.perf_counter()
    sections = Sections(A.device, enabled=ws.timed)
    H = TimedOperator(A, sections) if sections.enabled else A
    layout = method
    if method == "lanczos":
        if low_memory is None:
            low_memory = low_memory_needed(A.n, A.dtype, min(A.n, max(ncv or 20, 2 * k + 1)),
                                           A.device)
        layout = "lanczos, basis only (low memory)" if low_memory else \
            "lanczos, basis and kept products"
    # one budget for the whole call: power iteration and ARPACK keep k products for their
    # certifying residuals, Lanczos' retry goes on from what the first try spent
    start = H.num_hvps
    end = start + max_hvps
    if method == "power":
        vals, vecs = _power_deflated(H, k, tol, seed, end - k)
        res = _residuals(H, vals, vecs)
    elif method == "arpack":
        # ARPACK's own tol bounds a Ritz value's error, not the residual: solve, certify, and
        # solve again ten times tighter while a pair misses ``tol`` and the budget lasts
        inner = tol / 4
        while True:
            vals, vecs = _lanczos_arpack(H, k, which, inner, seed, end - k, ncv)
            res = _residuals(H, vals, vecs)
            if len(vals) < k or (res <= tol).all() or H.num_hvps + k >= end \
                    or inner < 1e-14:
                break
            inner /= 10
    else:
        def lanczos(two_passes: bool):
            return _thick_lanczos(H, k, which, tol, seed, end, ws, low_memory,
                                  two_passes=two_passes, sections=sections)

        try:
            vals, vecs, res = lanczos(two_passes=False)
        except _LostOrthogonality:  # solved again, with two Gram-Schmidt passes every step
            vals, vecs, res = lanczos(two_passes=True)
    order = _order(vals, "LM" if method == "power" else which)
    vals, res = vals[order], res[order]
    if vecs is not None and (order != np.arange(len(order))).any():  # no parameter-sized
        vecs = vecs[:, order]  # copy when the solver's order already is this one
    if len(vals) < k:  # pad what did not converge within the budget
        pad = k - len(vals)
        vals = np.concatenate([vals, np.full(pad, np.nan)])
        res = np.concatenate([res, np.full(pad, np.inf)])
    seconds = sections._now() - t0 if sections.enabled else time.perf_counter() - t0
    timings = None
    if sections.enabled:
        timings = dict(sections.seconds)
        timings["rest"] = seconds - sum(timings.values())
    return EigenResult(eigenvalues=vals, residuals=res, converged=res <= tol,
                       num_hvps=H.num_hvps - start, seconds=seconds,
                       method=method, which=which, tol=tol, seed=seed, layout=layout,
                       timings=timings, eigenvectors=vecs if ws.eigenvectors else None)
