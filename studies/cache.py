"""The checkpoint cache: one function that returns a trained model, training it first when
the cache does not have it.

``runs/<data>/<model>[-<pool>]-<preset>-s<seed>[-f<fraction>]/`` (see ``vitprobe.train``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from vitprobe.models import ModelId, create_model, family, list_models
from vitprobe.models.layers import resample_position_embeddings

from vitprobe import data as vdata
from vitprobe import results
from vitprobe.distributed import rank_and_world
from vitprobe.features import grid_of
from vitprobe.train import PRECISIONS, SCHEDULE, Distillation, TrainConfig, fit

from . import presets

if TYPE_CHECKING:
    from .config import StudyConfig

log = logging.getLogger("studies.cache")

# test evaluations of a run trained on a data fraction for the full set's number of steps
EQUAL_STEPS_EVALUATIONS = 8

# what a label ends with when its model is the smoke preset's shrunk one
SMOKE_MARK = " [smoke]"


def unmarked(obj):
    """``obj`` with the smoke preset's mark taken off every label (keys and strings), so
    readers find the same names at every preset."""
    if isinstance(obj, dict):
        return {unmarked(k): unmarked(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unmarked(v) for v in obj]
    return obj.replace(SMOKE_MARK, "") if isinstance(obj, str) else obj


def read_results(path: Path) -> dict | list:
    """The ``results`` of a study's result file, labels without the smoke mark."""
    return unmarked(results.load_json(path)["results"])


def with_pooling(label: str, model: nn.Module) -> str:
    """``label`` naming a token model's pooling even where it is the default, for figure
    titles: ``vit-ti`` -> ``vit-ti (cls)``; labels that name one already, and models
    without a ``pool``, are left as they are."""
    pool = getattr(model, "pool", None)
    if not isinstance(pool, str) or f"({pool})" in label:
        return label
    base, mark = (label[:-len(SMOKE_MARK)], SMOKE_MARK) if label.endswith(SMOKE_MARK) else \
        (label, "")
    return f"{base} ({pool}){mark}"


def named_pooling(label: str) -> str:
    """``label`` naming a ViT's default pooling, from the label alone (``with_pooling`` for
    figures drawn without the model): ``vit-mini`` -> ``vit-mini (cls)``."""
    base, mark = (label[:-len(SMOKE_MARK)], SMOKE_MARK) if label.endswith(SMOKE_MARK) else \
        (label, "")
    name = base.split(" (")[0]
    if "(" in base or name not in list_models() or family(name) != "vit":
        return label
    return f"{name} (cls){mark}"


def slug(label: str) -> str:
    """A label as a file-name part: ``vit-ti (gap)`` -> ``vit-ti-gap`` (the smoke mark left
    out: file names stay the same at every preset)."""
    return label.replace(SMOKE_MARK, "").replace(" (", "-").replace(")", "").replace(" ", "_")


_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.+-]+")


def _check_path_safe(spec: RunSpec) -> None:
    """Every field that reaches the run folder's name is checked before anything is written:
    a pooling of ``POOLS``, a teacher of the model registry, override keys that are
    identifiers and values that are numbers, booleans, tuples of them or plain words (no
    ``/``, ``..``, spaces or ``;``)."""
    from vitprobe.models import list_models

    spec.model_id  # noqa: B018 -- a registered name and a pooling of POOLS, or a ValueError
    if spec.teacher is not None and spec.teacher not in list_models():
        raise ValueError(f"unknown teacher {spec.teacher!r}; allowed: a model name of "
                         f"the registry (vitprobe models), e.g. vit-ti")

    def plain(v) -> bool:
        if isinstance(v, bool | int | float) or v is None:
            return True
        if isinstance(v, tuple | list):
            return all(plain(x) for x in v)
        return isinstance(v, str) and bool(_SAFE_TEXT.fullmatch(v)) and ".." not in v

    for k, v in spec.overrides.items():
        if not (isinstance(k, str) and k.isidentifier()) or not plain(v):
            raise ValueError(f"model argument {k}={v!r} is refused: keys are identifiers and "
                             f"values numbers, booleans, tuples of them or plain words "
                             f"(letters, digits, _ . + -)")


@dataclass
class RunSpec:
    model: str
    data: str = "fashion-mnist"
    preset: str = "quick"
    seed: int = 0
    pool: str | None = None
    data_fraction: float = 1.0
    data_dir: str | None = None
    download: bool = False
    runs_dir: str = "runs"
    device: str = "cpu"
    progress: bool = True
    overrides: dict = field(default_factory=dict)
    teacher: str | None = None     # distillation: the teacher's model name (cached/trained)
    distill: str = "soft"
    alpha: float = 0.5
    tau: float = 1.0
    tensorboard: str | None = None  # TensorBoard folder for the training (not identity)
    # train a data fraction for as many optimiser steps as the full data set (more epochs),
    # so that data size is not confounded with training length (Park & Kim 2022, Fig. 3)
    equal_steps: bool = False
    precision: str | None = None    # the training precision; None: the preset's
    wait: bool = True               # wait for another process holding the run (not identity)

    def __post_init__(self) -> None:
        family(self.model)  # a registered name or timm:<name>
        if not 0 < self.data_fraction <= 1:
            raise ValueError(f"data_fraction must be in (0, 1]; got {self.data_fraction}")
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"seed must be in [0, 2**32); got {self.seed}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; allowed: "
                             f"{', '.join(PRECISIONS)}")
        if self.precision == presets.recipe(self.preset, self.model).precision:
            self.precision = None  # the preset's own: one cache entry, not two
        if self.data_fraction == 1:
            self.equal_steps = False  # the full set: one run, whatever the flag
        if self.pool == "cls" and family(self.model) == "vit":
            self.pool = None  # the ViT default: one cache entry, not two identical runs
        _check_path_safe(self)

    @classmethod
    def from_config(cls, config: StudyConfig, model: str, device: str) -> RunSpec:
        """The spec a study's config (``studies.config.StudyConfig``) asks for."""
        from .cli import parse_model_args

        overrides = {"patch_size": config.patch_size} if config.patch_size else {}
        overrides.update(parse_model_args(config.model_args))
        mid = ModelId.parse(model)  # "vit-ti@gap": a pooling per entry of a --model list
        model, pool = mid.name, mid.pool or config.pool
        return cls(model=model, data=config.data, preset=config.preset, seed=config.seed,
                   pool=pool, data_fraction=config.data_fraction, data_dir=config.data_dir,
                   download=config.download, runs_dir=config.runs_dir, device=device,
                   progress=not config.quiet, overrides=overrides,
                   tensorboard=config.tensorboard, precision=config.precision,
                   wait=not config.no_wait)

    @property
    def model_id(self) -> ModelId:
        """The model this run trains: name, pooling, overrides (validated fields)."""
        return ModelId(self.model, self.pool, tuple(sorted(self.overrides.items())))

    @property
    def label(self) -> str:
        """How results and figures name this model: ``vit-ti``, ``vit-ti (gap)``; at the smoke
        preset, whose models are shrunk (``presets.architecture_overrides``), ``vit-ti
        [smoke]``."""
        return self.model + (f" ({self.pool})" if self.pool else "") + (
            SMOKE_MARK if self.preset == "smoke" else "")

    @property
    def run_name(self) -> str:
        name = self.model + (f"-{self.pool}" if self.pool else "")
        name += "".join(f"-{k.replace('_', '')}{v}" for k, v in sorted(self.overrides.items()))
        name = name.replace(" ", "").replace("(", "").replace(")", "").replace(",", "_")
        if self.teacher:
            name += f"-{self.distill}-{self.teacher}-a{self.alpha:g}-t{self.tau:g}"
        name += f"-{self.preset}" + (f"-{self.precision}" if self.precision else "")
        name += f"-s{self.seed}"
        if self.data_fraction < 1.0:
            name += f"-f{self.data_fraction:g}" + ("-eqsteps" if self.equal_steps else "")
        return name

    @property
    def run_dir(self) -> Path:
        folder = vdata.source(self.data).cache_name(Path(self.data_dir) if self.data_dir
                                                    else None)
        return Path(self.runs_dir) / folder / self.run_name

    def recipe(self) -> presets.Recipe:
        r = presets.recipe(self.preset, self.model)
        if self.precision:
            r = replace(r, precision=self.precision)
        if self.equal_steps and self.data_fraction < 1.0:
            r = equal_steps_recipe(r, self._steps_per_epoch(1.0, r),
                                   self._steps_per_epoch(self.data_fraction, r))
        if r.progressive:  # low-resolution stages at sizes the model's patch divides
            r = presets.snap_progressive(r, vdata.dataset_info(self.data, self.data_dir).img_size,
                                         self.model_kwargs().get("patch_size"))
        return r

    def _steps_per_epoch(self, fraction: float, r: presets.Recipe) -> int:
        n = _train_count(self.data, self.data_dir, fraction * r.train_fraction, self.seed)
        return n // r.batch_size if n > r.batch_size else 1

    def model_kwargs(self) -> dict:
        info = vdata.dataset_info(self.data, self.data_dir)
        kw = presets.architecture_overrides(self.preset, self.model, info.img_size)
        if self.pool:
            kw["pool"] = self.pool
        drop_path = presets.recipe(self.preset, self.model).drop_path_rate
        if drop_path and family(self.model) != "timm":
            kw["drop_path_rate"] = drop_path
        kw.update(self.overrides)
        return kw


@functools.lru_cache(maxsize=64)
def _train_count(data: str, data_dir: str | None, fraction: float, seed: int) -> int:
    """How many training images a (class-stratified) fraction holds."""
    return len(vdata.load(data, "train", data_dir, False, fraction, seed))


def equal_steps_recipe(r: presets.Recipe, full_steps_per_epoch: int,
                       steps_per_epoch: int) -> presets.Recipe:
    """``r`` stretched to as many optimiser steps on an epoch of ``steps_per_epoch`` as it
    takes on the full data's ``full_steps_per_epoch``: epochs, warm-up and progressive-
    resizing stages scaled by the same factor (``fit`` trains round(epochs·steps_per_epoch)
    steps, so the totals are equal)."""
    total = round(r.epochs * full_steps_per_epoch)
    factor = total / (r.epochs * steps_per_epoch)
    return replace(r, epochs=total / steps_per_epoch, warmup_epochs=r.warmup_epochs * factor,
                   progressive=tuple((u * factor, sz) for u, sz in r.progressive))


# how build() initialises a model; runs cached before it was seeded are not reused
INIT = "torch.manual_seed(seed)"


def build(spec: RunSpec) -> nn.Module:
    """The spec's model, initialised from ``spec.seed`` alone: the same spec gives the same
    initial weights in any process, whatever it drew from the global RNG before (which this
    leaves untouched)."""
    info = vdata.dataset_info(spec.data, spec.data_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = create_model(spec.model, num_classes=info.num_classes, in_chans=info.in_chans,
                             img_size=info.img_size, **spec.model_kwargs())
    grid = grid_of(model)
    if grid is not None and min(grid) < 1:
        raise ValueError(f"{spec.model}'s patch is larger than {spec.data}'s "
                         f"{info.img_size}-px images (a {grid[0]}x{grid[1]} token grid): "
                         f"pick a smaller patch (--patch-size N)")
    return model


def check_token_grid(spec: RunSpec, model: nn.Module, need: int = 2) -> None:
    """A token model whose patch grid is under ``need`` x ``need`` on the spec's images is
    refused before it is trained: the feature-map probes read maps of at least 2 x 2."""
    grid = grid_of(model)
    if grid is not None and min(grid) < need:
        size = vdata.dataset_info(spec.data, spec.data_dir).img_size
        raise ValueError(f"{spec.model} has a {grid[0]}x{grid[1]} token grid on {spec.data}'s "
                         f"{size}-px images: the feature-map probes need at least "
                         f"{need}x{need}; pick a smaller patch (--patch-size N, e.g. "
                         f"{max(1, size // 7)})")


def architecture(model: nn.Module) -> str:
    """A fingerprint of ``model``'s code-level architecture: the module types in order and
    every state-dict entry's name and shape. Two builds differ exactly when a checkpoint of
    one would not be the other model (post- vs pre-activation ResNet, an MSA block that
    gained a norm), even when the registry name and its arguments are the same."""
    import hashlib

    h = hashlib.sha256()
    for name, m in model.named_modules():
        # our models' classes by their repo module (models.vit), however the package was
        # imported (installed, they are vitprobe.models.vit): one fingerprint for both
        module = type(m).__module__
        module = module.removeprefix("vitprobe.") if module.startswith("vitprobe.models") \
            else module
        h.update(f"{name}:{module}.{type(m).__qualname__}\n".encode())
    for key, value in model.state_dict().items():
        h.update(f"{key}:{tuple(value.shape)}\n".encode())
    return h.hexdigest()[:16]


def run_config(spec: RunSpec, model: nn.Module | None = None) -> dict:
    """What a cached run records and must match to be reused: recipe, architecture (its
    arguments and its fingerprint), training data (set, fraction, the files' content), init,
    and how the schedule and crops/flips are computed.
    The spec itself (seed, preset, pool, overrides) is recorded too, and names the folder."""
    return {"spec": spec, "recipe": spec.recipe(), "model_kwargs": spec.model_kwargs(),
            "architecture": architecture(model if model is not None else build(spec)),
            "data": {**vdata.content_identity(spec.data, spec.data_dir),
                     "fraction": spec.data_fraction, "equal_steps": spec.equal_steps},
            "init": INIT, "training": {"schedule": SCHEDULE, "crop_flip": vdata.CROP_FLIP}}


def loaders(spec: RunSpec) -> tuple[vdata.Loader, vdata.Loader]:
    r = spec.recipe()
    fraction = spec.data_fraction * r.train_fraction
    train = vdata.load(spec.data, "train", spec.data_dir, spec.download, fraction, spec.seed)
    test = vdata.load(spec.data, "test", spec.data_dir, spec.download)
    if r.test_limit:
        test = test.subset(slice(0, r.test_limit))
    rank, world = rank_and_world()
    if r.batch_size % world:
        raise ValueError(f"batch size {r.batch_size} is not divisible by {world} ranks")
    # on a GPU, worker processes prepare the batches ahead (RandAugment is per-image PIL
    # work); on a CPU they would only take cores from the training step
    workers = 0 if torch.device(spec.device).type == "cpu" else \
        min(8, max(1, (os.cpu_count() or 2) // world - 1))
    train_loader = vdata.Loader(train, r.batch_size, shuffle=True, augment=r.augment,
                                seed=spec.seed, drop_last=len(train) > r.batch_size,
                                device=spec.device, rank=rank, world_size=world,
                                workers=workers)
    test_loader = vdata.Loader(test, r.eval_batch_size, device=spec.device, rank=rank,
                               world_size=world)
    return train_loader, test_loader


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
    from filelock import FileLock, Timeout

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
        import torch.distributed as dist

        dist.barrier()  # rank 0 writes model.safetensors; the others read it


def _remove_if_nothing_to_resume(run_dir: Path) -> None:
    """After a failed training: a run folder holding no checkpoint to resume from (only its
    config and initial weights) is removed, so no half-made entry is left in the cache."""
    import shutil

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
