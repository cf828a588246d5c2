"""What identifies a cached training run: its spec (model, data, preset, seed, fraction ...),
the recipe and architecture it derives, the seeded initial model, the run's recorded config
and its data loaders. ``runs/<data>/<model>[-<pool>]-<preset>-s<seed>[-f<fraction>]/``."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from vitprobe import data as vdata
from vitprobe.distributed import rank_and_world
from vitprobe.features import grid_of
from vitprobe.models import ModelId, create_model, family, list_models
from vitprobe.train import PRECISIONS, SCHEDULE

from . import presets
from .cli import parse_model_args
from .labels import SMOKE_MARK

if TYPE_CHECKING:
    from .config import StudyConfig

_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.+-]+")


def _check_path_safe(spec: RunSpec) -> None:
    """Every field that reaches the run folder's name is checked before anything is written:
    a pooling of ``POOLS``, a teacher of the model registry, override keys that are
    identifiers and values that are numbers, booleans, tuples of them or plain words (no
    ``/``, ``..``, spaces or ``;``)."""
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
    h = hashlib.sha256()
    for name, m in model.named_modules():
        h.update(f"{name}:{type(m).__module__}.{type(m).__qualname__}\n".encode())
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
