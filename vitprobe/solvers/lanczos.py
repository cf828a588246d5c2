"""Thick-restart Lanczos with full reorthogonalisation (Wu & Simon 2000; the Krylov-Schur
form of Stewart 2001): ``eigsh(method="lanczos")``."""

from __future__ import annotations

import numpy as np
import torch

from .base import SymmetricOperator, _order, residual_scale, zero_level
from .kernels import (
    Workspace,
    _combine_rows_,
    _norm,
    _orthogonalise,
    _project,
    _random_fill_,
    _ritz_residual_norms,
    _subtract,
)
from .timing import Sections


class _LostOrthogonality(Exception):
    """Two of the wanted Ritz vectors came out far from orthogonal: a ghost copy of a
    converged one, which a one-pass Gram-Schmidt basis that lost its orthogonality makes."""


def _certify_by_products(H: SymmetricOperator, Ys: torch.Tensor, theta: np.ndarray,
                         Vm: torch.Tensor, vectors: bool) -> tuple[np.ndarray, torch.Tensor | None]:
    """The true residuals of the Ritz vectors u = y Vm (y a row of Ys) from one HVP each, for
    a basis whose products were not kept: ||H u - theta u|| / ||u||, the difference formed in
    the operator's dtype and both norms with float64 block sums (``_norm``). The vectors
    (rows, in the basis' dtype) are kept only when ``vectors``, otherwise one is held at a
    time; each is scaled to unit norm first."""
    U = torch.empty(len(Ys) if vectors else 1, Vm.shape[1], device=Vm.device, dtype=Vm.dtype)
    hu = torch.empty(Vm.shape[1], device=Vm.device, dtype=H.dtype)
    x = None if H.dtype == U.dtype else torch.empty_like(hu)
    res = np.empty(len(Ys))
    for i, y in enumerate(Ys):
        u = U[i if vectors else 0]
        _combine_rows_(Vm, y[None], out=u[None])
        u /= _norm(u)  # scaled before its product: the vector certified is the one returned
        H.matvec(u if x is None else x.copy_(u), out=hu)
        res[i] = _norm(hu.sub_(u, alpha=float(theta[i]))) / _norm(u)
    return res, U if vectors else None


def _certified(H: SymmetricOperator, Y: np.ndarray, theta: np.ndarray, scale: np.ndarray,
               Vm: torch.Tensor, W: torch.Tensor | None, vectors: bool):
    """The Ritz pairs (theta, Vm Y) with their true residuals ||H u - theta u|| / ||u||:
    from the kept products W, or one HVP each when there are none. Raises
    ``_LostOrthogonality`` where two of the Ritz vectors have a cosine above 0.1 (a
    semi-orthogonal basis keeps them within a few times sqrt(eps))."""
    Ys = torch.as_tensor(Y.T.copy(), device=H.device)
    if W is None:
        res, U = _certify_by_products(H, Ys, theta, Vm, vectors)
        return theta, U.T.cpu().numpy() if vectors else None, res / scale
    norms, gram = _ritz_residual_norms(Ys, theta, Vm, W[:len(Vm)])
    length = np.sqrt(np.diag(gram))
    if (np.abs(gram / np.outer(length, length) - np.eye(len(gram))) > 0.1).any():
        raise _LostOrthogonality
    U = None
    if vectors:  # unit columns in the basis' dtype: a float64 copy of a float32 basis adds
        U = torch.empty(len(Ys), Vm.shape[1], device=Vm.device, dtype=Vm.dtype)  # no digits
        _combine_rows_(Vm, Ys, out=U)
        U /= torch.as_tensor(length, device=U.device, dtype=U.dtype)[:, None]
        U = U.T.cpu().numpy()
    return theta, U, norms / length / scale


def _thick_lanczos(H: SymmetricOperator, k: int, which: str, tol: float, seed: int,
                   max_hvps: int, workspace: Workspace, low_memory: bool,
                   two_passes: bool = False, sections: Sections | None = None):
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
    ws = workspace  # its basis size, whether to return vectors, and its buffers
    ncv, vectors = min(H.n, max(ws.ncv or 20, 2 * k + 1)), ws.eigenvectors
    timed = sections or Sections(enabled=False)
    basis = torch.float64 if H.dtype == torch.float64 and not low_memory else torch.float32
    g = torch.Generator().manual_seed(seed)
    # rows are basis vectors: V[:m] stays contiguous, no copy per step
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
        with timed("gram_schmidt"):
            col, beta = _orthogonalise(r, hv, V[:m], two_passes=two_passes or low_memory)
        T = np.pad(T, ((0, 1), (0, 1)))
        T[:, -1] = T[-1, :] = col
        theta, Y = np.linalg.eigh(T)
        order = _order(theta, which)
        sel = order[:k]
        scale = residual_scale(theta, H.dtype)[sel]
        estimate = beta * np.abs(Y[-1, sel]) / scale
        # low memory certifies with one product per pair: those k are kept in the budget
        done = H.num_hvps + (k if low_memory else 0) >= max_hvps or m == H.n
        # A small residual certifies an eigenpair, not that no wanted one was missed: look
        # only once the Krylov space has 2k+1 vectors (ARPACK waits for ncv)
        if done or (m >= 2 * k + 1 and (estimate <= tol).all()):
            with timed("certify"):
                out = _certified(H, Y[:, sel], theta[sel], scale, V[:m], W, vectors)
            if done or (out[2] <= tol).all():
                return out
        # an invariant subspace (at the operator's precision: a float32 product leaves a
        # residual of ~eps32 ||H||, never 1e-12): go on from a new start orthogonal to it
        if beta <= zero_level(H.dtype) * max(np.abs(theta).max(), tiny):
            _random_fill_(r, g)
            for _ in range(2):
                _subtract(r, r, V[:m], _project(V[:m], r))
            beta = _norm(r)
        if m == ncv:  # thick restart on the wanted Ritz vectors and as many more
            keep = order[:min(ncv - 1, max(k, ncv // 2))]
            Yk = torch.as_tensor(Y[:, keep].T.copy(), device=H.device)
            m = len(keep)
            with timed("restarts"):
                _combine_rows_(V, Yk)
                if W is not None:
                    _combine_rows_(W, Yk)
            T = np.diag(theta[keep])  # V^T H V of Ritz vectors; r's couplings come next step
        torch.div(r, beta, out=V[m])
