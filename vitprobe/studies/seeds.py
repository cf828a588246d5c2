"""Train one seed of a preset: every model its findings need, two at a time on one thread
each, each model's training record and weights written to the records folder as it ends.

vitprobe seeds --preset small --seed 0              # ~2.2 h on a 2-core CPU
vitprobe seeds --preset small --seed 1 --jobs 1     # one training at a time

A model's record is ``<records>/<preset>/seed-<s>/<run name>/``: the run's ``config.json``
(spec, recipe, architecture, data identity, provenance with the training identity of the
process that trained it), its training curve ``metrics.jsonl`` (training NLL, test accuracy
and NLL per epoch), the final weights ``model.safetensors``, the early checkpoint
``early.safetensors`` (``protocols.early_epoch``: the spectra are read there as well as at
the end) and ``record.json`` (the files' SHA-256, training minutes, machine). A killed run
loses only the models in flight: the checkpoint cache resumes them, and finished models are
not trained again. ``vitprobe reproduce`` then probes the recorded models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from vitprobe import identity, results
from vitprobe.data import DATASETS

from . import cli, presets
from .cache import trained_model
from .config import Config, device_option, option
from .protocols import early_checkpoint, early_epoch
from .runspec import RunSpec

log = logging.getLogger("studies.seeds")

# the subset the paper trains ViT on besides the full set (Park & Kim 2022, Fig. 4: "6 %"),
# for as many optimiser steps as the full set (Fig. 3: data size not confounded with length);
# the smoke preset's tiny training set takes half
SUBSET_FRACTION = {"smoke": 0.5}
PAPER_SUBSET = 0.06


def subset_fraction(preset: str) -> float:
    return SUBSET_FRACTION.get(preset, PAPER_SUBSET)

RECORD_FILES = ("config.json", "metrics.jsonl", "model.safetensors")


def training_specs(preset: str, seed: int, **common) -> list[RunSpec]:
    """Every model one seed of ``preset`` trains, longest first (with two at a time the seed
    ends soonest; on 2 cores the three ViTs take ~60 min each, the CNNs ~20): the ViT with a
    class token, with GAP and on the 6 % subset, AlterNet, the ResNet, the ResNet on the
    subset and the pre-activation ResNet (``presets.roster``)."""
    ro = presets.roster(preset)

    def spec(model: str, **kw) -> RunSpec:
        return RunSpec(model=model, preset=preset, seed=seed, progress=False, **common, **kw)

    subset = {"data_fraction": subset_fraction(preset), "equal_steps": True}
    return [spec(ro["vit"]), spec(ro["vit"], pool="gap"), spec(ro["vit"], **subset),
            spec(ro["alternet"]), spec(ro["resnet"]), spec(ro["resnet"], **subset),
            spec(ro["preresnet"])]


def record_dir(records: Path, spec: RunSpec) -> Path:
    return records / spec.preset / f"seed-{spec.seed}" / spec.run_name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export(spec: RunSpec, records: Path) -> Path:
    """Copy a finished run's record files into ``records`` (each atomically; record.json
    last, so a folder with record.json is complete), with the training minutes its final
    weights carry (the last training process's)."""
    run = spec.run_dir
    dest = record_dir(records, spec)
    dest.mkdir(parents=True, exist_ok=True)
    metrics = [line for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    early = early_checkpoint(spec)
    if not early.is_file():
        raise FileNotFoundError(f"{run} has no early checkpoint {early.name}")
    copies = {name: run / name for name in RECORD_FILES} | {"early.safetensors": early}
    for name, src in copies.items():
        results.atomic_write_bytes(dest / name, src.read_bytes())
    results.save_json(dest / "record.json", {
        "spec": spec.run_name, "early_epoch": early_epoch(spec),
        "epochs": len(metrics),
        "train_minutes": float(results.weights_metadata(run / "model.safetensors").get(
            "train_seconds", "nan")) / 60,
        "sha256": {name: _sha256(dest / name) for name in copies},
        "provenance": results.provenance()})
    return dest


def restore(spec: RunSpec, records: Path) -> bool:
    """Put a committed record back into the checkpoint cache as a finished run (its config,
    curve, final weights and early checkpoint), so the studies probe the committed model
    without training it; False when the record is not there."""
    src = record_dir(records, spec)
    if not (src / "record.json").is_file():
        return False
    run = spec.run_dir
    if (run / "model.safetensors").is_file():
        return True
    run.mkdir(parents=True, exist_ok=True)
    results.atomic_write_bytes(early_checkpoint(spec), (src / "early.safetensors").read_bytes())
    for name in RECORD_FILES:  # model.safetensors last: the run is whole once it is there
        results.atomic_write_bytes(run / name, (src / name).read_bytes())
    return True


def _die_with_parent(poll: float = 1.0) -> None:
    """A training worker's initializer: the worker ends itself (SIGTERM) as soon as the
    process that started it is gone, so that a killed ``vitprobe seeds`` (even by SIGKILL)
    leaves no training running; the models in flight resume from their last epoch checkpoint
    when the command is run again. A watcher thread polls the parent's pid every ``poll``
    seconds. (Not the kernel's PR_SET_PDEATHSIG: it fires when the *thread* that started a
    worker ends, and a pool starts its replacement workers from a helper thread that ends
    when the pool closes, so an idle worker died holding the pool's task-queue lock and the
    pool's exit waited on that lock for ever.)"""
    parent = os.getppid()
    if parent == 1:  # the parent died before this worker started
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def worker_pool(jobs: int) -> multiprocessing.pool.Pool:
    """The pool trainings run in: ``jobs`` spawned workers (fresh interpreters: no forked
    torch state), one training per worker process, each ending with its parent."""
    return multiprocessing.get_context("spawn").Pool(jobs, initializer=_die_with_parent,
                                                     maxtasksperchild=1)


def _train_one(spec: RunSpec, records: str, threads: int) -> tuple[str, float]:
    """One training in its own process (``threads`` intra-op threads), then its record."""
    import torch

    torch.set_num_threads(threads)
    cli.setup_logging(quiet=True)
    t = time.perf_counter()
    trained_model(spec)
    return str(export(spec, Path(records))), time.perf_counter() - t


@dataclass(frozen=True)
class SeedsConfig(Config):
    STUDY: ClassVar[str] = "seeds"

    preset: str = option("small", "the preset whose models one seed trains",
                         choices=presets.PRESETS)
    seed: int = option(0, "the training seed", check=cli.non_negative_int)
    jobs: int = option(2, "trainings at once, one thread each (1: one at a time, all "
                          "threads)", check=cli.at_least(1))
    data: str = option("fashion-mnist", "data set", choices=DATASETS)
    data_dir: str | None = option(None, "folder holding the data set's files (default: the "
                                        "system's Fashion-MNIST)", check=cli.existing_dir,
                                  path=True)
    runs_dir: str = option("runs", "the checkpoint cache", check=cli.writable_dir, path=True)
    records: str = option("figures/records", "where each model's record and weights go",
                          check=cli.writable_dir, path=True)
    device: str | None = device_option()
    hours: float | None = option(None, "the sitting's length: a model starts only when its "
                                       "measured training time (its records of other seeds) "
                                       "fits in what is left; the rest waits for the next "
                                       "sitting (default: no limit)", check=cli.non_negative)
    quiet: bool = option(False, "no progress lines")


def measured_minutes(records: Path, spec: RunSpec) -> float | None:
    """The median training minutes of ``spec``'s model in the other recorded seeds (None
    when none is recorded)."""
    found = []
    for folder in sorted((records / spec.preset).glob("seed-*")):
        seed = int(folder.name.removeprefix("seed-"))
        rec = record_dir(records, replace(spec, seed=seed)) / "record.json"
        if seed != spec.seed and rec.is_file():
            found.append(float(results.load_json(rec).get("train_minutes", "nan")))
    found = sorted(m for m in found if m == m)
    return found[len(found) // 2] if found else None


def fitting(estimates: list[float | None], jobs: int, minutes: float) -> list[bool]:
    """Which models start, in order, on ``jobs`` workers each free when its last model ends,
    within ``minutes``: a model starts on the first free worker when its estimate (None:
    unknown, started) ends in time; one that does not fit is left for the next sitting."""
    free = [0.0] * jobs
    start = []
    for est in estimates:
        w = min(range(jobs), key=free.__getitem__)
        ok = est is None or free[w] + est <= minutes
        start.append(ok)
        if ok:
            free[w] += est or 0.0
    return start


def run(config: SeedsConfig) -> list[Path]:
    """Train every model of the seed whose record is missing, ``jobs`` at a time."""
    device = cli.resolve_device(config.device)
    specs = training_specs(config.preset, config.seed, data=config.data,
                           data_dir=config.data_dir, runs_dir=config.runs_dir, device=device)
    records = Path(config.records)
    todo = [s for s in specs if not (record_dir(records, s) / "record.json").is_file()]
    done = [record_dir(records, s) for s in specs if s not in todo]
    print(f"seed {config.seed} of --preset {config.preset}: {len(done)} of {len(specs)} "
          f"models recorded; training {', '.join(s.run_name for s in todo) or 'nothing'}",
          flush=True)
    if config.hours is not None and todo:
        ok = fitting([measured_minutes(records, s) for s in todo], config.jobs,
                     60 * config.hours)
        later = [s.run_name for s, fits in zip(todo, ok) if not fits]
        todo = [s for s, fits in zip(todo, ok) if fits]
        if later:
            print(f"left for the next sitting (their measured time does not fit in "
                  f"{config.hours:g} h): {', '.join(later)}", flush=True)
    if not todo:
        return done
    os.environ[identity.INHERITED] = json.dumps(identity.identities())  # the workers' own
    jobs = min(config.jobs, len(todo))
    threads = 1 if jobs > 1 else max(1, os.cpu_count() or 1)
    # SIGTERM ends the pool (and with it every worker) as Ctrl-C does; SIGKILL, through the
    # workers' own request to die with their parent (_die_with_parent)
    before = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with worker_pool(jobs) as pool:
            pending = [pool.apply_async(_train_one, (s, str(records), threads)) for s in todo]
            for spec, job in zip(todo, pending):
                path, seconds = job.get()
                print(f"recorded {spec.run_name} in {seconds / 60:.1f} min: {path}",
                      flush=True)
                done.append(Path(path))
    finally:
        signal.signal(signal.SIGTERM, before)
    return done


def main(argv: list[str] | None = None) -> int:
    config = SeedsConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)

