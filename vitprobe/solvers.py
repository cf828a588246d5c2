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

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["DenseOperator", "Density", "EigenResult", "SymmetricOperator", "TraceResult",
           "Workspace", "eigsh", "hutchpp_trace", "lanczos_tridiagonal", "slq"]


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


# ---------------------------------------------------------------------------- eigenvalues
@dataclass(frozen=True)
class EigenResult:
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
    eigenvectors: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("eigenvalues", "residuals", "converged",
                                              "num_hvps", "seconds", "method", "which", "tol",
                                              "seed")}


def _order(values: np.ndarray, which: str) -> np.ndarray:
    if which == "LM":
        return np.argsort(-np.abs(values), kind="stable")
    if which == "LA":
        return np.argsort(-values, kind="stable")
    return np.argsort(values, kind="stable")


def _residuals(H: SymmetricOperator, vals: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """||H v - lambda v|| / |lambda| per pair (v normalised), all k HVPs in one batched pass."""
    if len(vals) == 0:
        return np.zeros(0)
    V = torch.as_tensor(np.ascontiguousarray(vecs), device=H.device, dtype=H.dtype)
    V = V / V.norm(dim=0)
    lam = torch.as_tensor(vals, device=H.device, dtype=H.dtype)
    r = (H.matmat(V) - V * lam).norm(dim=0).double().cpu().numpy()
    return r / np.maximum(np.abs(vals), np.finfo(float).tiny)


def _lanczos_arpack(H: SymmetricOperator, k: int, which: str, tol: float, seed: int,
                    max_hvps: int, ncv: int | None):
    import scipy.sparse.linalg as sla

    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(H.n)

    def mv(x):
        if H.num_hvps >= max_hvps:
            raise _Budget()
        t = torch.as_tensor(np.ascontiguousarray(x).ravel(), device=H.device, dtype=H.dtype)
        return H.matvec(t).double().cpu().numpy()

    op = sla.LinearOperator((H.n, H.n), matvec=mv, dtype=np.float64)
    ncv = ncv or min(H.n, max(2 * k + 1, 20))
    try:
        vals, vecs = sla.eigsh(op, k=k, which=which, tol=tol / 4, v0=v0, ncv=ncv,
                               maxiter=max(10, max_hvps // ncv + 1))
    except sla.ArpackNoConvergence as e:
        vals, vecs = e.eigenvalues, e.eigenvectors
    except _Budget:
        vals, vecs = np.zeros(0), np.zeros((H.n, 0))
    return vals, vecs


class _Budget(Exception):
    pass


class _LostOrthogonality(Exception):
    """Two of the wanted Ritz vectors came out far from orthogonal: a ghost copy of a
    converged one, which a one-pass Gram-Schmidt basis that lost its orthogonality makes."""


# columns per slice when the solver combines parameter-sized rows
_COLUMN_CHUNK = 1 << 18

# entries per partial product (a block of a basis row), partial sums added in float64
_DOT_BLOCK = 1 << 14


def _as_blocks(A: torch.Tensor, block: int) -> tuple[torch.Tensor, int]:
    """Rows (m, n) as a batch (n // block, m, block) of their column blocks (a view: no
    copy), and the number of columns it covers; the rest is a tail of fewer than ``block``."""
    nb = A.shape[1] // block
    return A[:, :nb * block].view(len(A), nb, block).transpose(0, 1), nb * block


def _ritz_residual_norms(Ys: torch.Tensor, theta: np.ndarray, V: torch.Tensor, W: torch.Tensor,
                         block: int = _DOT_BLOCK, group: int = 4
                         ) -> tuple[np.ndarray, np.ndarray]:
    """For each row y of Ys, ||y^T W - theta y^T V|| (W = H V row by row), and the Gram
    matrix of the Ritz vectors y^T V (their norms and mutual cosines): batched products over
    ``group`` column blocks of ``block`` entries at a time (as ``_project``; a group's
    temporaries stay in cache and are reused from one group to the next). Per block, u = Y v,
    r = Y w - theta u in one fused product, and the Gram matrices of u and r as batched
    products, whose sums over the blocks are added in float64."""
    dt = torch.promote_types(V.dtype, W.dtype)
    Y = Ys.to(dt)
    neg_theta = -torch.as_tensor(theta, device=Ys.device, dtype=dt)[None, :, None]
    acc = torch.zeros(2, len(Ys), len(Ys), device=V.device, dtype=torch.float64)

    def add(v: torch.Tensor, w: torch.Tensor, u: torch.Tensor, r: torch.Tensor,
            grams: torch.Tensor) -> None:  # (G, m, b) blocks of V and W into u, r, grams
        y = Y.expand(len(v), -1, -1)
        torch.bmm(y, v.to(dt), out=u)
        torch.baddbmm(u * neg_theta, y, w.to(dt), out=r)
        torch.bmm(u, u.transpose(1, 2), out=grams[0])
        torch.bmm(r, r.transpose(1, 2), out=grams[1])
        acc.add_(grams.sum(1, dtype=torch.float64))

    Vb, cols = _as_blocks(V, block)
    Wb = _as_blocks(W, block)[0]
    G = max(1, min(group, len(Vb)))
    u = torch.empty(G, len(Ys), block, device=V.device, dtype=dt)
    r, grams = torch.empty_like(u), torch.empty(2, G, len(Ys), len(Ys), device=V.device, dtype=dt)
    for g in range(0, len(Vb), G):
        n = len(Vb[g:g + G])
        add(Vb[g:g + G], Wb[g:g + G], u[:n], r[:n], grams[:, :n])
    tail = V.shape[1] - cols
    add(V[None, :, cols:], W[None, :, cols:], u[:1, :, :tail], r[:1, :, :tail], grams[:, :1])
    return acc[1].diagonal().sqrt().cpu().numpy(), acc[0].cpu().numpy()


def _combine_rows_(A: torch.Tensor, Y: torch.Tensor, block: int = _DOT_BLOCK,
                   group: int = 64) -> None:
    """A[:len(Y)] = Y @ A in place, ``group`` column blocks of ``block`` entries at a time
    (a batched product into a buffer of len(Y) x group x block entries, then copied into
    place; no copy of A), computed in A's dtype (each entry a sum of len(A) terms: a float32
    A loses nothing more than its storage already does). Large groups: fewer calls, and a
    time that does not hang on the buffer staying in a cache the host may share
    (``benchmarks/restart_groups.py`` times group sizes in whole solves)."""
    Y = Y.to(A.dtype)
    blocks, cols = _as_blocks(A, block)
    rows = _as_blocks(A[:len(Y)], block)[0]
    buf = torch.empty(min(group, len(blocks)), len(Y), block, device=A.device, dtype=A.dtype)
    for g in range(0, len(blocks), group):
        part = blocks[g:g + group]
        torch.matmul(Y.expand(len(part), -1, -1), part, out=buf[:len(part)])
        rows[g:g + group] = buf[:len(part)]
    A[:len(Y), cols:] = Y @ A[:, cols:]


def _project(Vm: torch.Tensor, r: torch.Tensor, block: int = _DOT_BLOCK) -> torch.Tensor:
    """Vm r in float64: the products of ``block``-entry blocks (in Vm's dtype, r rounded to
    it) are one batched matrix product, and their partial sums are added in float64. A
    float32 product over millions of entries that share a sign is off by ~1e-5 of |v||r| (a
    float32 norm by ~1e-4), which stalls the residuals near 1e-3; blocks of 2^14 keep it to
    ~1e-7 (``benchmarks/basis_orthogonality.py`` shows what that leaves of the basis'
    orthogonality). On CPU one batched product also reads the basis faster than a
    matrix-vector product over whole rows (``benchmarks/gram_schmidt_budget.py`` times
    both)."""
    x = r if r.dtype == Vm.dtype else r.to(Vm.dtype)
    blocks, cols = _as_blocks(Vm, block)
    c = torch.bmm(x[:cols].view(len(blocks), 1, block), blocks.transpose(1, 2))
    c = c.sum((0, 1), dtype=torch.float64)
    if cols < len(x):
        c += (Vm[:, cols:] @ x[cols:]).double()
    return c


def _subtract(out: torch.Tensor, x: torch.Tensor, Vm: torch.Tensor, c: torch.Tensor,
              block: int = _DOT_BLOCK) -> None:
    """out = x - Vm^T c (``out`` may be ``x``), block by block as ``_project``: Vm^T c in
    Vm's dtype (each entry a sum of len(c) terms), then subtracted in out's dtype (a float64
    out over a float32 Vm: slices of ``_COLUMN_CHUNK`` columns, each a temporary of Vm's
    dtype)."""
    cn = c.to(Vm.dtype)
    if out.dtype != Vm.dtype:  # a float64 residual over a float32 basis: slices, not blocks
        step = _COLUMN_CHUNK
        for s in range(0, Vm.shape[1], step):
            torch.sub(x[s:s + step], Vm[:, s:s + step].T @ cn, out=out[s:s + step])
        return
    blocks, cols = _as_blocks(Vm, block)
    shape = (len(blocks), 1, block)
    torch.baddbmm(x[:cols].view(shape), cn.expand(len(blocks), 1, -1), blocks, alpha=-1.0,
                  out=out[:cols].view(shape))
    torch.addmv(x[cols:], Vm[:, cols:].T, cn, alpha=-1.0, out=out[cols:])


def _norm(r: torch.Tensor) -> float:
    return math.sqrt(_project(r[None], r).item())


def _combine_into(out: torch.Tensor, Vm: torch.Tensor, y: torch.Tensor,
                  block: int = _DOT_BLOCK) -> None:
    """out = y Vm (one row combined from the basis rows, in Vm's dtype: each entry a sum of
    len(y) terms), as one batched product over column blocks (``_as_blocks``) and a tail."""
    y = y.to(Vm.dtype)
    blocks, cols = _as_blocks(Vm, block)
    torch.bmm(y.expand(len(blocks), 1, -1), blocks, out=out[:cols].view(len(blocks), 1, block))
    torch.mv(Vm[:, cols:].T, y, out=out[cols:])


def _certify_by_products(H: SymmetricOperator, Ys: torch.Tensor, theta: np.ndarray,
                         Vm: torch.Tensor, vectors: bool) -> tuple[np.ndarray, torch.Tensor | None]:
    """The true residuals of the Ritz vectors u = y Vm (y a row of Ys) from one HVP each, for
    a basis whose products were not kept: ||H u - theta u|| / ||u||, the difference formed in
    the operator's dtype and both norms with float64 block sums (``_norm``). The vectors
    (rows, in the basis' dtype) are kept only when ``vectors``, otherwise one is held at a
    time."""
    U = torch.empty(len(Ys) if vectors else 1, Vm.shape[1], device=Vm.device, dtype=Vm.dtype)
    hu = torch.empty(Vm.shape[1], device=Vm.device, dtype=H.dtype)
    x = None if H.dtype == U.dtype else torch.empty_like(hu)
    res = np.empty(len(Ys))
    for i, y in enumerate(Ys):
        u = U[i if vectors else 0]
        _combine_into(u, Vm, y)
        H.matvec(u if x is None else x.copy_(u), out=hu)
        res[i] = _norm(hu.sub_(u, alpha=float(theta[i]))) / _norm(u)
    return res, U if vectors else None


class Workspace:
    """Buffers a solver may reuse from one call to the next (``eigsh(..., workspace=ws)``):
    on a CPU, the first write to fresh pages of a parameter-sized basis costs a good part of
    a call's own work, and the paper's spectrum calls the solver once per mini-batch. Holds
    memory until it is dropped."""

    def __init__(self) -> None:
        self._buffers: dict[tuple, torch.Tensor] = {}

    def empty(self, name: str, shape: tuple[int, ...], device, dtype) -> torch.Tensor:
        key = (name, tuple(shape), torch.device(device), dtype)
        if key not in self._buffers:
            self._buffers = {k: v for k, v in self._buffers.items() if k[0] != name}
            self._buffers[key] = torch.empty(shape, device=device, dtype=dtype)
        return self._buffers[key]


def _random_fill_(r: torch.Tensor, g: torch.Generator) -> None:
    """r's entries drawn from N(0, 1) by the CPU generator g, in r's dtype (a float32 draw
    costs a sixth of a float64 one)."""
    if r.device.type == "cpu":
        r.normal_(generator=g)
    else:
        r.copy_(torch.randn(r.shape, generator=g, dtype=r.dtype))


def _orthogonalise(r: torch.Tensor, hv: torch.Tensor, Vm: torch.Tensor, two_passes: bool
                   ) -> tuple[np.ndarray, float]:
    """r = hv less its components on the whole basis Vm (classical Gram-Schmidt); returns
    the components removed (T's new column) and beta = ||r||. A second pass where the first
    cancelled most of hv ("twice is enough", Kahan-Parlett; the DGKS criterion), or always
    with ``two_passes``. Where hv has r's dtype, r = hv - Vm^T c is written in one pass,
    without copying hv first."""
    x = hv if hv.dtype == r.dtype else r.copy_(hv)
    c = _project(Vm, x)
    _subtract(r, x, Vm, c)
    beta = _norm(r)
    if two_passes or beta < 1e-2 * math.hypot(c.norm().item(), beta):
        c2 = _project(Vm, r)
        _subtract(r, r, Vm, c2)
        c += c2
        beta = _norm(r)
    return c.cpu().numpy(), beta


def _certified(H: SymmetricOperator, Y: np.ndarray, theta: np.ndarray, scale: np.ndarray,
               Vm: torch.Tensor, W: torch.Tensor | None, vectors: bool):
    """The Ritz pairs (theta, Vm Y) with their true residuals ||H u - theta u|| / ||u||:
    from the kept products W, or one HVP each when there are none. Raises
    ``_LostOrthogonality`` where two of the Ritz vectors have a cosine above 0.1 (a
    semi-orthogonal basis keeps them within a few times sqrt(eps))."""
    Ys = torch.as_tensor(Y.T.copy(), device=H.device)
    if W is None:
        res, U = _certify_by_products(H, Ys, theta, Vm, vectors)
        return theta, U.T.double().cpu().numpy() if vectors else None, res / scale
    norms, gram = _ritz_residual_norms(Ys, theta, Vm, W[:len(Vm)])
    length = np.sqrt(np.diag(gram))
    if (np.abs(gram / np.outer(length, length) - np.eye(len(gram))) > 0.1).any():
        raise _LostOrthogonality
    U = None
    if vectors:
        U = (Ys.to(Vm.dtype) @ Vm).double() / torch.as_tensor(length, device=H.device)[:, None]
        U = U.T.cpu().numpy()
    return theta, U, norms / length / scale


def _thick_lanczos(H: SymmetricOperator, k: int, which: str, tol: float, seed: int,
                   max_hvps: int, ncv: int | None, vectors: bool = True,
                   low_memory: bool = False, workspace: Workspace | None = None,
                   two_passes: bool = False):
    """Thick-restart Lanczos (Wu & Simon 2000; the Krylov-Schur form of Stewart 2001) with
    full reorthogonalisation (``_orthogonalise``).

    T holds every component a step removed, so after any restart H V = V T + r e_m^T holds
    and each Ritz pair's residual is |beta y_m|: read off at every step for free, the solver
    stops at the first step where all k wanted pairs are below ``tol`` (ARPACK only looks at
    restart boundaries). The pairs are then certified with their true residuals
    ||W y - theta V y|| / ||V y||, W = H V being kept, so certifying costs no HVP (ARPACK's
    needs k more). When the basis reaches ``ncv`` vectors it restarts on the wanted Ritz
    vectors plus as many more and goes on with r.

    The basis and W are stored in the model's dtype (float32 for float32, bfloat16 and
    float16 models; ``low_memory``: float32 always), 8 ``ncv`` bytes per parameter of a
    float32 model; every inner product and norm is a batched product over column blocks
    whose partial sums are added in float64 (``_project``). A float32 basis is orthogonal to
    a few parts in 10^4 (float32's sqrt(eps) is 3.5e-4: semi-orthogonality, enough for Ritz
    values good to O(eps ||H||), Simon 1984), and the residuals are certified from the kept
    products whatever the basis. Should two wanted
    Ritz vectors still come out far from orthogonal (a ghost copy of a converged one),
    ``eigsh`` solves again with ``two_passes`` of Gram-Schmidt at every step.
    ``low_memory``: W is not kept, 4 ``ncv`` bytes per parameter; two Gram-Schmidt passes
    every step, and certifying costs one HVP per wanted pair, repeated if a pair fails it.
    Each HVP is written straight into its row of W, and Gram-Schmidt, restarts and
    certification work on column blocks (``_as_blocks``): on CPU, parameter-sized
    temporaries cost more in fresh pages than in arithmetic (a ``Workspace`` keeps the pages
    from one call to the next).
    """
    ncv = min(H.n, max(ncv or 20, 2 * k + 1))
    basis = torch.float64 if H.dtype == torch.float64 and not low_memory else torch.float32
    g = torch.Generator().manual_seed(seed)
    # rows are basis vectors: V[:m] stays contiguous, no copy per step
    ws = Workspace() if workspace is None else workspace  # a fresh one: fresh buffers
    V = ws.empty("V", (ncv, H.n), H.device, basis)
    W = None if low_memory else ws.empty("W", (ncv, H.n), H.device, H.dtype)
    w = ws.empty("w", (H.n,), H.device, H.dtype) if low_memory else None
    # the residual, reused every step: in the operator's precision when wider than the basis
    r = ws.empty("r", (H.n,), H.device, torch.promote_types(basis, H.dtype))
    x = None if H.dtype == basis else ws.empty("x", (H.n,), H.device, H.dtype)
    _random_fill_(r, g)
    torch.div(r, _norm(r), out=V[0])
    T = np.zeros((0, 0))
    m, tiny = 0, np.finfo(float).tiny
    while True:
        hv = H.matvec(x.copy_(V[m]) if x is not None else V[m], out=W[m] if W is not None else w)
        m += 1
        col, beta = _orthogonalise(r, hv, V[:m], two_passes=two_passes or low_memory)
        T = np.pad(T, ((0, 1), (0, 1)))
        T[:, -1] = T[-1, :] = col
        theta, Y = np.linalg.eigh(T)
        order = _order(theta, which)
        sel = order[:k]
        scale = np.maximum(np.abs(theta[sel]), tiny)
        estimate = beta * np.abs(Y[-1, sel]) / scale
        done = H.num_hvps >= max_hvps or m == H.n
        # A small residual certifies an eigenpair, not that no wanted one was missed: look
        # only once the Krylov space has 2k+1 vectors (ARPACK waits for ncv)
        if done or (m >= 2 * k + 1 and (estimate <= tol).all()):
            out = _certified(H, Y[:, sel], theta[sel], scale, V[:m], W, vectors)
            if done or (out[2] <= tol).all():
                return out
        if beta <= 1e-12 * max(np.abs(theta).max(), tiny):  # invariant subspace: a new start
            _random_fill_(r, g)
            for _ in range(2):
                _subtract(r, r, V[:m], _project(V[:m], r))
            beta = _norm(r)
        if m == ncv:  # thick restart on the wanted Ritz vectors and as many more
            keep = order[:min(ncv - 1, max(k, ncv // 2))]
            Yk = torch.as_tensor(Y[:, keep].T.copy(), device=H.device)
            m = len(keep)
            _combine_rows_(V, Yk)
            if W is not None:
                _combine_rows_(W, Yk)
            T = np.diag(theta[keep])  # V^T H V of Ritz vectors; r's couplings come next step
        torch.div(r, beta, out=V[m])


def _power_deflated(H: SymmetricOperator, k: int, tol: float, seed: int, max_iter: int = 100):
    """PyHessian's method (Yao et al. 2020): power iteration, deflating the found vectors,
    stopping when the Rayleigh quotient's relative change is below ``tol``."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    vals, vecs = [], []
    for _ in range(k):
        v = torch.randn(H.n, generator=g, dtype=H.dtype).to(H.device)
        lam = None
        for _ in range(max_iter):
            for u in vecs:
                v = v - (v @ u) * u
            v = v / v.norm()
            hv = H.matvec(v)
            new = (hv @ v).item()
            v = hv
            if lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < tol:
                lam = new
                break
            lam = new
        for u in vecs:
            v = v - (v @ u) * u
        v = v / v.norm()
        vals.append(lam)
        vecs.append(v)
    return np.array(vals), torch.stack(vecs, 1).double().cpu().numpy()


def eigsh(A: SymmetricOperator, k: int = 5, *, tol: float = 1e-4, seed: int = 0,
          which: str = "LM", method: str = "lanczos", max_matvecs: int = 1000,
          ncv: int | None = None, return_eigenvectors: bool = False,
          low_memory: bool = False, workspace: Workspace | None = None) -> EigenResult:
    """The k extreme eigenpairs of the symmetric operator ``A``, each certified by its
    residual.

    which: "LM" largest magnitude (Park & Kim 2022's spectra), "LA" largest algebraic, "SA"
    smallest algebraic. method: "lanczos" (thick-restart Lanczos keeping each basis vector's
    HVP: residuals every step, stops at the first step where all k pairs reach ``tol``, no extra
    HVPs to certify; memory 8 ``ncv`` bytes per parameter of a float32 model, 16 ``ncv`` of a
    float64 one, ncv=20 by default; ``low_memory=True``: a float32 basis and no kept products, 4
    ``ncv`` bytes per parameter and k HVPs more to certify, for models whose basis would not fit
    otherwise; a solve whose wanted Ritz vectors come out far from orthogonal (a ghost copy) is
    redone with two Gram-Schmidt passes per step and a new budget of ``max_matvecs``;
    ``workspace``: a ``Workspace`` whose buffers are reused by the next call), "arpack"
    (implicitly restarted Lanczos, scipy's ARPACK, k more HVPs to certify; 8 ``ncv`` bytes per
    parameter) or "power" (PyHessian's deflated power iteration, for parity; LM only). Lanczos
    needs about half of ARPACK's HVPs at tol 1e-3 (``benchmarks/hessian_vs_pyhessian.py``). A
    residual certifies an eigenpair, not that no wanted eigenvalue was missed: at loose
    tolerances (1e-2) an eigenvalue whose Ritz value has not emerged yet can be skipped; at 1e-3
    and below the tests find the exact top-k of dense Hessians.
    """
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
    H, max_hvps = A, max_matvecs
    start = H.num_hvps
    if method == "power":
        vals, vecs = _power_deflated(H, k, tol, seed)
        res = _residuals(H, vals, vecs)
    elif method == "arpack":
        vals, vecs = _lanczos_arpack(H, k, which, tol, seed, start + max_hvps, ncv)
        res = _residuals(H, vals, vecs)
    else:
        def lanczos(two_passes: bool):
            return _thick_lanczos(H, k, which, tol, seed, H.num_hvps + max_hvps, ncv,
                                  vectors=return_eigenvectors, low_memory=low_memory,
                                  workspace=workspace, two_passes=two_passes)

        try:
            vals, vecs, res = lanczos(two_passes=False)
        except _LostOrthogonality:  # solved again, with two Gram-Schmidt passes every step
            vals, vecs, res = lanczos(two_passes=True)
    order = _order(vals, "LM" if method == "power" else which)
    vals, res = vals[order], res[order]
    if vecs is not None:
        vecs = vecs[:, order]
    if len(vals) < k:  # pad what did not converge within the budget
        pad = k - len(vals)
        vals = np.concatenate([vals, np.full(pad, np.nan)])
        res = np.concatenate([res, np.full(pad, np.inf)])
    return EigenResult(eigenvalues=vals, residuals=res, converged=res <= tol,
                       num_hvps=H.num_hvps - start, seconds=time.perf_counter() - t0,
                       method=method, which=which, tol=tol, seed=seed,
                       eigenvectors=vecs if return_eigenvectors else None)


# -------------------------------------------------------------------------------- trace
@dataclass(frozen=True)
class TraceResult:
    estimate: float
    stderr: float
    num_hvps: int
    num_probes: int
    method: str
    seed: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _rademacher(n: int, m: int, g: torch.Generator, H: SymmetricOperator) -> torch.Tensor:
    return (torch.randint(0, 2, (n, m), generator=g, dtype=torch.int8) * 2 - 1).to(
        device=H.device, dtype=H.dtype)


def hutchpp_trace(A: SymmetricOperator, num_probes: int = 64, *, seed: int = 0,
                  method: str = "hutch++", rtol: float | None = None,
                  max_probes: int | None = None) -> TraceResult:
    """Stochastic estimate of tr(A) with its standard error.

    Hutch++ (Meyer, Musco, Musco & Woodruff 2021): a third of the budget sketches the top
    subspace Q = orth(H S), whose trace tr(Q^T H Q) is exact; Hutchinson estimates the rest
    on (I - QQ^T) with the remaining probes, and the standard error is that of this residual
    part. With ``rtol``, probes are added (up to ``max_probes``) until the 95 % confidence
    half-width is below ``rtol * |estimate|`` — a statistical criterion, not "the mean
    stopped moving".
    """
    if method not in ("hutch++", "hutchinson"):
        raise ValueError(f"method must be 'hutch++' or 'hutchinson'; got {method!r}")
    if num_probes < (3 if method == "hutch++" else 2):
        raise ValueError(f"num_probes must be >= {3 if method == 'hutch++' else 2}")
    max_probes = max_probes or 10 * num_probes
    g = torch.Generator().manual_seed(seed)
    H = A
    before = H.num_hvps
    exact_part, Q = 0.0, None
    m = num_probes
    if method == "hutch++":
        s = num_probes // 3
        S = _rademacher(H.n, s, g, H)
        Q, _ = torch.linalg.qr(H.matmat(S))
        exact_part = (Q * H.matmat(Q)).sum().item()
        m = num_probes - 2 * s
    samples: list[float] = []

    def draw(count: int) -> None:
        for start in range(0, count, 8):  # 8 probes at a time: memory stays 16 n floats
            G = _rademacher(H.n, min(8, count - start), g, H)
            if Q is not None:
                G = G - Q @ (Q.T @ G)
            samples.extend((G * H.matmat(G)).sum(0).tolist())

    draw(m)
    used = num_probes
    while rtol is not None and used < max_probes:
        est = exact_part + float(np.mean(samples))
        se = float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
        if 1.96 * se <= rtol * abs(est):
            break
        extra = min(max(1, len(samples) // 2), max_probes - used)
        draw(extra)
        used += extra
    est = exact_part + float(np.mean(samples))
    se = float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
    return TraceResult(estimate=est, stderr=se, num_hvps=H.num_hvps - before, num_probes=used,
                       method=method, seed=seed)


# ------------------------------------------------------------------------------- density
@dataclass(frozen=True)
class Density:
    """Stochastic Lanczos quadrature: per probe p, Ritz values ``nodes[p]`` and weights
    ``weights[p]`` (squared first components of T's eigenvectors, summing to 1)."""

    nodes: np.ndarray     # (probes, steps)
    weights: np.ndarray   # (probes, steps)
    num_hvps: int
    seed: int

    def evaluate(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """phi(t) = mean_p sum_i w_pi N(t; theta_pi, sigma^2); sigma in eigenvalue units.
        Integrates to 1 over the real line."""
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0; got {sigma}")
        grid = np.asarray(grid, dtype=float)
        z = (grid[None, None, :] - self.nodes[..., None]) / sigma
        k = np.exp(-0.5 * z ** 2) / (sigma * math.sqrt(2 * math.pi))
        return (self.weights[..., None] * k).sum(1).mean(0)

    def mean(self) -> float:
        """Estimate of tr(H) / n."""
        return float((self.nodes * self.weights).sum(1).mean())

    def to_dict(self) -> dict:
        return {"nodes": self.nodes, "weights": self.weights, "num_hvps": self.num_hvps,
                "seed": self.seed}


def lanczos_tridiagonal(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor,
                        steps: int) -> tuple[np.ndarray, np.ndarray]:
    """m steps of Lanczos from v0 with full reorthogonalisation (two passes of classical
    Gram-Schmidt); returns T's diagonal and off-diagonal. Stops early at an invariant
    subspace. Keeps the m basis vectors that reorthogonalisation needs, nothing more."""
    V = torch.empty(steps, v0.numel(), device=v0.device, dtype=v0.dtype)
    alpha, beta = [], []
    v = v0 / v0.norm()
    for j in range(steps):
        V[j] = v
        w = matvec(v)
        a = (w @ v).item()
        alpha.append(a)
        for _ in range(2):
            w = w - V[:j + 1].T @ (V[:j + 1] @ w)
        b = w.norm().item()
        if j == steps - 1 or b < 1e-10 * max(1.0, abs(a)):
            break
        beta.append(b)
        v = w / b
    return np.array(alpha), np.array(beta)


def slq(A: SymmetricOperator, num_probes: int = 8, lanczos_steps: int = 80, *,
        seed: int = 0, progress: bool = False) -> Density:
    """The spectral density of ``A`` by stochastic Lanczos quadrature: ``lanczos_steps``
    steps from each of ``num_probes`` Gaussian starts."""
    from scipy.linalg import eigh_tridiagonal

    H = A
    start = H.num_hvps
    g = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    steps = min(lanczos_steps, H.n)
    for _ in tqdm(range(num_probes), desc="SLQ probes", disable=not progress):
        v0 = torch.randn(H.n, generator=g, dtype=H.dtype).to(H.device)
        a, b = lanczos_tridiagonal(H.matvec, v0, steps)
        theta, S = eigh_tridiagonal(a, b) if len(b) else (a, np.ones((1, 1)))
        w = S[0] ** 2
        pad = steps - len(theta)  # early stop: zero-weight nodes keep the array square
        nodes.append(np.concatenate([theta, np.full(pad, theta[-1])]))
        weights.append(np.concatenate([w, np.zeros(pad)]))
    return Density(np.array(nodes), np.array(weights), H.num_hvps - start, seed)
