"""Shared by the benchmark scripts: interleaved timing, so both sides see the same machine,
and the results files (``record``) that ``render.py`` turns into RESULTS.md."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path


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


RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the numbers were measured on: CPU model, cores (threads torch uses), GPU."""
    import os
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": gpu}


def record(benchmark: str, rows: list[dict], config: dict, summary: str = "") -> Path:
    """Write one run's results to ``benchmarks/results/<benchmark>-<machine>-<time>.json``
    (rows of numbers, the config, the machine, versions and git commit) for
    ``benchmarks/render.py`` to turn into RESULTS.md."""
    import hashlib
    import re

    from vitprobe import results

    m = machine()
    slug = re.sub(r"[^a-z0-9]+", "-", (m["gpu"] or m["cpu"]).lower()).strip("-")[:40]
    slug += "-" + hashlib.sha256(repr(sorted(m.items())).encode()).hexdigest()[:6]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"{benchmark}-{slug}-{stamp}.json"
    results.save_json(path, {"benchmark": benchmark, "summary": summary, "rows": rows,
                             "config": config, "machine": m,
                             "provenance": results.provenance()})
    print(f"results: {path}")
    return path
