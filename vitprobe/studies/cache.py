"""The checkpoint cache: one function that returns a trained model, training it first when
the cache does not have it; one process at a time per run (a file lock), checkpoints read
with their recipe checked. What names and identifies a run: ``studies.runspec``."""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch.distributed as dist
from filelock import FileLock, Timeout
from torch import nn

from vitprobe import results
from vitprobe.distributed import rank_and_world
from vitprobe.models import family
from vitprobe.models.layers import resample_position_embeddings
from vitprobe.train import Distillation, TrainConfig, fit

from .runspec import RunSpec, build, loaders, run_config

log = logging.getLogger("studies.cache")

# test evaluations of a run trained on a data fraction for the full set's number of steps
EQUAL_STEPS_EVALUATIONS = 8


def load_checkpoint(model: nn.Module, path: str | Path, name: str) -> nn.Module:
    """Load safetensors weights into ``model``; a checkpoint of another architecture is a
    ValueError that says what did not fit."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = results.load_weights(path)
    except results.CorruptCheckpoint:
        raise
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"checkpoint {path} is not a safetensors file ({e})") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} is not a {name}: {len(missing)} missing keys "
                         f"(e.g. {missing[:2]}), {len(unexpected)} unexpected "
                         f"(e.g. {unexpected[:2]})")
    try:
        model.load_state_dict(resample_position_embeddings(model, state))
    except RuntimeError as e:
        first = str(e).split("\n")[1].strip() if "\n" in str(e) else str(e)
        raise ValueError(f"checkpoint {path} does not fit {name}: {first}") from None
    return model


def trained_model(spec: RunSpec, checkpoint: str | None = None) -> tuple[nn.Module, dict]:
    """The trained model for ``spec`` in eval mode on ``spec.device``: from ``checkpoint``,
    else the cache, else train it."""
    model = build(spec)
    if checkpoint:
        model = load_checkpoint(model, checkpoint, spec.model)
        return model.to(spec.device).eval(), {"checkpoint": checkpoint}
    run_dir = spec.run_dir
    final = run_dir / "model.safetensors"
    config = run_config(spec, model)
    with run_lock(run_dir, spec.wait):
        _check_cached_recipe(run_dir, config)
        loaded = False
        if final.is_file():
            try:
                load_checkpoint(model, final, spec.model)
                loaded = True
            except results.CorruptCheckpoint as e:
                aside = final.with_name(final.name + ".corrupt")
                os.replace(final, aside)
                log.warning("%s; moved to %s, the run resumes from its last good checkpoint",
                            e, aside.name)
        if not loaded:
            _train(spec, model, run_dir, config)
            load_checkpoint(model, final, spec.model)
    # on spec.device whether it was trained now (fit moved it) or read from the cache
    return model.to(spec.device).eval(), {"run_dir": str(run_dir),
                                          "metrics": run_metrics(run_dir)}


@contextmanager
def run_lock(run_dir: Path, wait: bool = True):
    """One process at a time trains or reads a run: a file lock beside its folder (rank 0
    only under torch.distributed: the other ranks follow it through the collectives). A
    second process waits with a message, then reads what the first one trained; with
    ``wait=False`` it stops instead (a ValueError: one line, exit 2). Temporary files that a
    killed write left in the folder are removed once the lock is held."""
    if rank_and_world()[0] != 0:
        yield
        return
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir.parent / f".{run_dir.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise ValueError(f"another process is training or reading {run_dir} (lock file "
                             f"{lock.lock_file}): rerun when it is done, or without --no-wait "
                             f"to wait for it") from None
        log.warning("another process is training or reading %s; waiting for it to finish "
                    "(lock file %s)", run_dir, lock.lock_file)
        lock.acquire()
    try:
        for tmp in run_dir.rglob(".*.*") if run_dir.is_dir() else ():  # ".<name>.<random>"
            if tmp.is_file():  # atomic_write_bytes's temp files
                tmp.unlink(missing_ok=True)
        yield
    finally:
        lock.release()


def _train(spec: RunSpec, model: nn.Module, run_dir: Path, config: dict) -> None:
    """Train ``spec``'s run into ``run_dir`` (resuming from its checkpoints); a failure
    removes the folder only when this call created it and no checkpoint is in it."""
    created = not run_dir.exists()
    if rank_and_world()[0] == 0:
        results.save_result(run_dir / "config.json", {}, config, spec.seed)
    try:
        train_loader, test_loader = loaders(spec)
        log.info("training %s on %s (%d images, preset %s) into %s", spec.model, spec.data,
                 len(train_loader.data), spec.preset, run_dir)
        if spec.preset == "smoke" and family(spec.model) == "timm":
            log.warning("%s is trained at its full size: --preset smoke shrinks only our "
                        "registry's models (%s parameters here); expect minutes, not seconds",
                        spec.model, f"{sum(p.numel() for p in model.parameters()):,}")
        criterion = None
        if spec.teacher:
            if not hasattr(model, "set_distilled_training"):
                raise ValueError(f"--teacher needs a model with a distillation token "
                                 f"(deit-ti-distilled); {spec.model} has none")

            teacher, _ = trained_model(replace(spec, model=spec.teacher, teacher=None,
                                               overrides={}, pool=None))
            model.set_distilled_training(True)
            criterion = Distillation(teacher.to(spec.device), spec.distill, spec.alpha, spec.tau)
        fit(model, train_loader, test_loader,
            TrainConfig(spec.recipe(), seed=spec.seed, device=spec.device,
                        progress=spec.progress,
                        # a small fraction at equal steps: tens of short epochs
                        evaluations=EQUAL_STEPS_EVALUATIONS if spec.equal_steps else None,
                        tensorboard=str(Path(spec.tensorboard) / spec.data / spec.run_name)
                        if spec.tensorboard else None), run_dir, criterion=criterion)
    except BaseException:
        if created:
            _remove_if_nothing_to_resume(run_dir)
        raise
    if spec.teacher:
        model.set_distilled_training(False)
    if rank_and_world()[1] > 1:
        dist.barrier()  # rank 0 writes model.safetensors; the others read it


def _remove_if_nothing_to_resume(run_dir: Path) -> None:
    """After a failed training: a run folder holding no checkpoint to resume from (only its
    config and initial weights) is removed, so no half-made entry is left in the cache."""
    if rank_and_world()[0] != 0 or not run_dir.is_dir():
        return
    keep = ("state.pt", "model.safetensors", "epochs")
    if not any((run_dir / k).exists() for k in keep):
        shutil.rmtree(run_dir, ignore_errors=True)


def _check_cached_recipe(run_dir: Path, config: dict) -> None:
    """A cached run trained with another recipe or architecture is not silently reused."""
    path = run_dir / "config.json"
    if not path.is_file():
        held = [k for k in ("state.pt", "model.safetensors", "epochs") if (run_dir / k).exists()]
        if held:
            raise ValueError(f"the cached run {run_dir} holds {', '.join(held)} but no "
                             f"config.json, so what it was trained with is unknown: delete it "
                             f"or pass another --runs-dir")
        return
    saved = results.load_json(path).get("config", {})
    want = json.loads(results.to_json(config))  # the same JSON types as the saved file
    for key, what in (("training", "LR schedule or crop/flip (by an older vitprobe?)"),
                      ("recipe", "recipe (the preset changed?)"),
                      ("model_kwargs", "architecture (the preset changed?)"),
                      ("architecture", "architecture (the model's code changed)"),
                      ("data", "training data (another data set, fraction or files)"),
                      ("init", "initialisation (not seeded by its seed)")):
        if saved.get(key) != want.get(key):
            raise ValueError(f"the cached run {run_dir} was made with another {what}: delete "
                             f"it or pass another --runs-dir")


def final_test_accuracy(info: dict) -> float | None:
    """The last epoch's test accuracy of a ``trained_model`` info dict (None when unknown:
    a ``--checkpoint`` model, or a run without a test set)."""
    return (info.get("metrics") or [{}])[-1].get("test_acc")


def run_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    raise SystemExit("studies.cache is a library module, not a command; see: vitprobe --help")
