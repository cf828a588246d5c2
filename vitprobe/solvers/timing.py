"""The solvers' timing hook: seconds by section of a solve, recorded in
``EigenResult.timings`` when the solve runs with a ``Workspace(timed=True)``.

Sections are exclusive: ``products`` (every product with the operator, wherever the solver
makes it), ``gram_schmidt``, ``restarts`` and ``certify`` (Lanczos), and ``rest`` (all else:
the small eigenproblems, bookkeeping, ARPACK's own work). On CUDA a timed solve synchronises
the device at every section boundary, so its sections are device time; an untimed solve
(the default) adds no synchronisation and no timer calls."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

SECTIONS = ("products", "gram_schmidt", "restarts", "certify", "rest")


class Sections:
    """Exclusive seconds per section: entering a nested section pauses the one around it."""

    def __init__(self, device: torch.device | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.cuda = device is not None and torch.device(device).type == "cuda"
        self.seconds = dict.fromkeys(SECTIONS, 0.0)
        self._stack: list[str] = []
        self._mark = 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        now = self._now()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._mark
        self._stack.append(name)
        self._mark = now
        try:
            yield
        finally:
            now = self._now()
            self.seconds[self._stack.pop()] += now - self._mark
            self._mark = now


class TimedOperator:
    """``H`` whose products count in ``sections``' ``products``."""

    def __init__(self, H, sections: Sections) -> None:
        self.H, self.sections = H, sections
        self.n, self.device, self.dtype = H.n, H.device, H.dtype

    @property
    def num_hvps(self) -> int:
        return self.H.num_hvps

    def matvec(self, v: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        with self.sections("products"):
            return self.H.matvec(v, out=out)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        with self.sections("products"):
            return self.H.matmat(V)
