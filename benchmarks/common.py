"""Shared by the benchmarks: interleaved timing, so both sides see the same machine; the
``--device`` option; each benchmark's declared headline (``Headline``); and the results files
(``record``) that ``benchmarks.render`` turns into RESULTS.md."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Headline:
    """What a benchmark's record is judged by: ``value(rows)`` read off the record's rows,
    compared with ``goal`` (``at_least``: value >= goal, else value <= goal); ``table(rows)``,
    where given, the markdown lines RESULTS.md shows under the headlines (per-model factors,
    a peer's rows)."""

    record: str
    metric: str
    value: Callable[[list[dict]], float]
    goal: float
    at_least: bool
    unit: str = "×"
    table: Callable[[list[dict]], list[str]] | None = None

    def met(self, value: float) -> bool:
        return value >= self.goal if self.at_least else value <= self.goal

    def goal_text(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.goal:g}{self.unit}"


def parse_device(text: str):
    """``--device``: cpu, cuda or cuda:N, refused (exit 2, one line) where it is absent."""
    import torch

    try:
        dev = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; allowed: cpu, cuda, "
                                         f"cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: allowed devices are cpu, cuda, cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has no CUDA device")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has "
                                         f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=parse_device, default="cpu",
                   help="where ours and the peer's run: cpu, cuda or cuda:N (default: cpu)")


def synchronizer(device) -> Callable[[], None]:
    """A no-op on the CPU; waits for the device's queued kernels on a GPU (for timing)."""
    import torch

    if torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def interleaved(fns: dict[str, Callable[[], None]], rounds: int = 3, warmup: int = 1,
                device="cpu", min_seconds: float = 0.0, max_rounds: int = 1000) -> dict:
    """Median seconds per call of each function, alternating A, B, A, B, ... each round
    (on a GPU, each call timed to the end of its kernels): at least ``rounds`` rounds, and
    more until every function has run ``min_seconds`` in all (at most ``max_rounds``), so
    that calls of milliseconds get as many samples as their median needs."""
    sync = synchronizer(device)
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    done = 0
    while done < rounds or (done < max_rounds and
                            min(sum(v) for v in times.values()) < min_seconds):
        done += 1
        for k, f in fns.items():
            sync()
            t = time.perf_counter()
            f()
            sync()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


RESULTS = Path(__file__).resolve().parent / "results"


def machine(device="cpu") -> dict:
    """What the numbers were measured on: CPU model, cores (threads torch uses), and the GPU
    where ``device`` is one."""
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
    dev = torch.device(device)
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": gpu}


def record(benchmark: str, rows: list[dict], config: dict, summary: str = "") -> Path:
    """Write one run's results to ``benchmarks/results/<benchmark>-<machine>-<time>.json``
    (rows of numbers, the config, the machine, versions and git commit) for
    ``benchmarks.render`` to turn into RESULTS.md."""
    import hashlib
    import re

    from vitprobe import results

    m = machine(config.get("device", "cpu"))
    slug = re.sub(r"[^a-z0-9]+", "-", (m["gpu"] or m["cpu"]).lower()).strip("-")[:40]
    slug += "-" + hashlib.sha256(repr(sorted(m.items())).encode()).hexdigest()[:6]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"{benchmark}-{slug}-{stamp}.json"
    config = {k: str(v) if k == "device" else v for k, v in config.items()}
    results.save_json(path, {"benchmark": benchmark, "summary": summary, "rows": rows,
                             "config": config, "machine": m,
                             "provenance": results.provenance()})
    print(f"results: {path}")
    return path
