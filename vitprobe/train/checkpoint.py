"""The run folder's resumable state: what ``state.pt`` holds (an explicit kind and version,
weights, optimiser, scaler, step, metrics, RNG, precision) and where a run resumes from —
the state, or, when that is unreadable, the newest intact epoch checkpoint (weights only).
Every file is written atomically with a SHA-256 (``results.save_state`` /
``save_weights``), so a kill at any moment leaves the last good state and flipped bits are
refused when read."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import results

log = logging.getLogger("vitprobe.train")

# ``state.pt``'s kind and format version; a state without them was written before they were
# recorded (same layout, version 1)
STATE_KIND = "vitprobe-train-state"
STATE_VERSION = 1


@dataclass
class Resume:
    """Where a run resumes: ``kind`` "state" (``state.pt``: everything, bit-equal to an
    uninterrupted run on CPU) or "epoch" (an epoch checkpoint: weights, step and metrics
    only; the optimiser's moments restart)."""

    kind: str
    model: dict
    step: int
    metrics: list
    optimizer: dict | None = None
    scaler: dict | None = None
    rng: dict = field(default_factory=dict)
    autocast: str | None = None


def rng_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(run_dir: Path, model: torch.nn.Module, optimizer, scaler, step: int,
               metrics: list, autocast: str) -> None:
    """``run_dir/state.pt``: everything a resumed run needs, with its kind and version."""
    results.save_state(run_dir / "state.pt", {
        "kind": STATE_KIND, "version": STATE_VERSION, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "step": step,
        "metrics": metrics, "rng": rng_state(), "autocast": autocast})


def _from_state(state: dict, path: Path) -> Resume:
    kind, version = state.get("kind", STATE_KIND), state.get("version", 1)
    if kind != STATE_KIND or version > STATE_VERSION:
        raise ValueError(f"{path} is a {kind} version {version} file, not a {STATE_KIND} of "
                         f"version <= {STATE_VERSION}: delete its run folder or use a newer "
                         f"vitprobe")
    return Resume("state", state["model"], int(state["step"]), list(state["metrics"]),
                  state["optimizer"], state.get("scaler"), state["rng"], state.get("autocast"))


def resume_point(run_dir: Path, device: torch.device) -> Resume | None:
    """What a run resumes from: its ``state.pt``; when that is unreadable (truncated, empty,
    corrupt), the newest intact epoch checkpoint — weights only, so the optimizer's moments
    restart — with a warning; ``None`` for a fresh run. With neither: a ValueError naming
    the folder to delete."""
    import pickle
    import zipfile

    path = run_dir / "state.pt"
    if not path.is_file():
        return None
    try:
        state = results.load_state(path, map_location=device)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as e:
        reason = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
    else:
        return _from_state(state, path)
    records = []
    if (run_dir / "metrics.jsonl").is_file():
        records = [json.loads(line) for line in
                   (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    for ckpt in sorted((run_dir / "epochs").glob("epoch-*.safetensors"), reverse=True):
        epoch = int(ckpt.stem.split("-")[1])
        done = [m for m in records if m.get("epoch", 0) <= epoch]
        if len(done) < epoch:
            continue  # its metrics were not recorded: not a complete epoch
        try:
            weights = results.load_weights(ckpt, device)
        except Exception:  # safetensors raises its own error types
            continue
        log.warning("%s is unreadable (%s); resuming from the end of epoch %d (%s): the "
                    "optimizer's moments restart, so the run will not be bit-equal to an "
                    "uninterrupted one", path, reason, epoch, ckpt.name)
        return Resume("epoch", weights, int(done[-1]["step"]), done)
    raise ValueError(f"{path} is unreadable ({reason}) and no epoch checkpoint of {run_dir} "
                     f"is intact: delete {run_dir} and rerun to train it again")
