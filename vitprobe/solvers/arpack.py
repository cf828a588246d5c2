"""Implicitly restarted Lanczos through scipy's ARPACK bridge: ``eigsh(method="arpack")``."""

from __future__ import annotations

import numpy as np
import torch

from .base import SymmetricOperator


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
        vals, vecs = sla.eigsh(op, k=k, which=which, tol=tol, v0=v0, ncv=ncv,
                               maxiter=max(10, max_hvps // ncv + 1))
    except sla.ArpackNoConvergence as e:
        vals, vecs = e.eigenvalues, e.eigenvectors
    except _Budget:
        vals, vecs = np.zeros(0), np.zeros((H.n, 0))
    except sla.ArpackError:
        # ARPACK stops when its first residual vanishes (H v0 = 0: the zero operator, an
        # invariant start); then every direction is an eigenvector of 0 and any k
        # orthonormal ones are the answer, which the certifying residuals confirm
        if np.linalg.norm(mv(v0)) > 0:
            raise
        vals, vecs = np.zeros(k), np.linalg.qr(rng.standard_normal((H.n, k)))[0]
    return vals, vecs


class _Budget(Exception):
    pass
