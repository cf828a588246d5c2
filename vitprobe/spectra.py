"""Park & Kim 2022's Hessian max-eigenvalue spectra (App. A, Figs. 1c, 4, 6, 12c): the
top-k eigenvalues by magnitude on each of many mini-batches of augmented training data, loss
+ l2 (weight decay as the l2 coefficient), and their summaries — NEP, the share of the
spectrum below zero, and APE, the mean positive eigenvalue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Unpack

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from .curvature import LossFn, OperatorSpec, SpecOptions
from .serial import Serialised
from .solvers import DEFAULT_TOL, Workspace, eigsh

__all__ = ["Spectrum", "ape", "nep", "spectrum"]


@dataclass(frozen=True)
class Spectrum(Serialised):
    """Top-k eigenvalues by magnitude on each of many mini-batches (Park & Kim 2022, Fig. 4)."""

    DERIVED = ("nep", "ape")

    eigenvalues: np.ndarray  # (num_batches, k)
    residuals: np.ndarray
    converged: np.ndarray
    num_hvps: int
    seconds: float
    batch_size: int
    weight_decay: float

    def nep(self) -> float:
        return nep(self.eigenvalues)

    def ape(self) -> float:
        return ape(self.eigenvalues)



def nep(eigenvalues: np.ndarray) -> float:
    """Negative eigenvalue proportion: the share of the (collected) spectrum below zero."""
    e = np.asarray(eigenvalues, dtype=float)
    e = e[np.isfinite(e)]
    return float((e < 0).mean()) if e.size else float("nan")


def ape(eigenvalues: np.ndarray) -> float:
    """Average positive eigenvalue: the mean of the positive part of the spectrum."""
    e = np.asarray(eigenvalues, dtype=float)
    e = e[np.isfinite(e) & (e > 0)]
    return float(e.mean()) if e.size else 0.0


def spectrum(model: nn.Module, loss_fn: LossFn, batches, num_batches: int = 10, k: int = 5, *,
             tol: float = DEFAULT_TOL, seed: int = 0, progress: bool = True,
             workspace: Workspace | None = None, **options: Unpack[SpecOptions]) -> Spectrum:
    """Park & Kim 2022's max-eigenvalue spectrum: the top-k eigenvalues by magnitude
    (``solvers.eigsh``, which="LM") on each of ``num_batches`` mini-batches drawn from
    ``batches``, a loader (their protocol: batch 16 of augmented training data, loss + l2
    with ``weight_decay`` as the l2 coefficient); mini-batch i's solve starts from seed
    ``seed + i``. ``options``: the operator's (``curvature.SpecOptions``)."""
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1; got {num_batches}")
    spec = OperatorSpec(model, loss_fn, batches, **options)
    vals, res, conv, hvps, bs = [], [], [], 0, 0
    # one solver workspace for every mini-batch: its basis is paged in once, not per batch
    workspace = workspace or Workspace()
    t0 = time.perf_counter()
    it = iter(batches)
    for i in tqdm(range(num_batches), desc="Hessian spectra", disable=not progress):
        try:
            batch = next(it)
        except StopIteration:
            if i == 0:
                raise ValueError("the loader is empty") from None
            break
        bs = len(batch[0])
        with spec.with_data(tuple(batch)).open() as H:
            r = eigsh(H, k, which="LM", tol=tol, seed=seed + i, workspace=workspace)
        vals.append(r.eigenvalues)
        res.append(r.residuals)
        conv.append(r.converged)
        hvps += r.num_hvps
    return Spectrum(np.array(vals), np.array(res), np.array(conv), hvps,
                    time.perf_counter() - t0, bs, spec.weight_decay)
