"""Stochastic trace estimation: Hutch++ (Meyer, Musco, Musco & Woodruff 2021) or
Hutchinson, with a standard error and optional stopping on a confidence interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..serial import Serialised
from .base import SymmetricOperator


@dataclass(frozen=True)
class TraceResult(Serialised):
    estimate: float
    stderr: float
    num_hvps: int
    num_probes: int
    method: str
    seed: int


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
