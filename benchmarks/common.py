"""Shared by the benchmark scripts: interleaved timing, so both sides see the same machine."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(fns: dict[str, Callable[[], None]], rounds: int = 3, warmup: int = 1) -> dict:
    """Median seconds per call of each function, alternating A, B, A, B, ... each round."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}
