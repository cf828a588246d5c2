"""The spectral density by stochastic Lanczos quadrature (Lin, Saad & Yang 2016; Ghorbani,
Krishnan & Xiao 2019)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..serial import Serialised
from .base import SymmetricOperator


@dataclass(frozen=True)
class Density(Serialised):
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
