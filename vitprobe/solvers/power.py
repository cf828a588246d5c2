"""PyHessian's deflated power iteration (Yao et al. 2020), for parity:
``eigsh(method="power")``."""

from __future__ import annotations

import numpy as np
import torch

from .base import SymmetricOperator, residual_scale


def _power_deflated(H: SymmetricOperator, k: int, tol: float, seed: int, max_hvps: int):
    """PyHessian's method: power iteration on the complement of the vectors found so far,
    one eigenpair after another. Where PyHessian stops on the Rayleigh quotient's relative
    change, this stops on the solvers' one criterion: the pair's relative residual ||P H v -
    λ v|| / |λ| <= ``tol`` under the deflated operator (P projects out the vectors found; v
    normalised, λ = vᵀHv), read from the product the iteration computes anyway. A later
    pair's residual is floored by the earlier pairs' errors (the deflation removes their
    vectors, not their true eigenvectors), so the k vectors are then polished together by
    subspace iteration (V <- orth(HV) and a Rayleigh-Ritz step, k products each) until every
    pair passes ``tol``. Stops early, with the pairs found so far, once ``H.num_hvps``
    reaches ``max_hvps``."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    vals, vecs = [], []
    for _ in range(k):
        v = torch.randn(H.n, generator=g, dtype=H.dtype).to(H.device)
        lam = None
        while H.num_hvps < max_hvps:
            for u in vecs:
                v = v - (v @ u) * u
            v = v / v.norm()
            hv = H.matvec(v)
            for u in vecs:  # the deflated operator's product
                hv = hv - (hv @ u) * u
            lam = (hv @ v).item()
            scale = residual_scale(np.array([vals[0] if vals else lam, lam]), H.dtype)[1]
            if (hv - lam * v).norm().item() <= tol * scale:
                break
            v = hv
        if lam is None:
            break
        for u in vecs:
            v = v - (v @ u) * u
        vals.append(lam)
        vecs.append(v / v.norm())
    if not vecs:
        return np.zeros(0), np.zeros((H.n, 0))
    V = torch.stack(vecs, 1)
    while len(vecs) == k and H.num_hvps + k <= max_hvps:
        HV = H.matmat(V)
        theta, S = torch.linalg.eigh(V.T @ HV)
        V, HV = V @ S, HV @ S
        vals = theta.tolist()
        res = (HV - V * theta).norm(dim=0).cpu().numpy() / residual_scale(np.array(vals),
                                                                        H.dtype)
        if (res <= tol).all():
            break
        V = torch.linalg.qr(HV)[0]
    return np.array(vals), V.cpu().numpy()
