"""The checkpoint cache: one function that returns a trained model, training it first when
the cache does not have it.

``runs/<data>/<model>[-<pool>]-<preset>-s<seed>[-f<fraction>]/`` (see ``vitprobe.train``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from models import create_model
from vitprobe import data as vdata
from vitprobe import presets, results
from vitprobe.train import TrainConfig, fit

log = logging.getLogger("studies.cache")


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

    @property
    def run_name(self) -> str:
        name = self.model + (f"-{self.pool}" if self.pool else "") + f"-{self.preset}-s{self.seed}"
        if self.data_fraction < 1.0:
            name += f"-f{self.data_fraction:g}"
        return name

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.data / self.run_name

    def recipe(self) -> presets.Recipe:
        return presets.recipe(self.preset, self.model)

    def model_kwargs(self) -> dict:
        info = vdata.dataset_info(self.data)
        kw = presets.model_overrides(self.preset, self.model, info.img_size)
        if self.pool:
            kw["pool"] = self.pool
        r = self.recipe()
        if r.drop_path_rate and not self.model.startswith("timm:"):
            kw["drop_path_rate"] = r.drop_path_rate
        kw.update(self.overrides)
        return kw


def build(spec: RunSpec) -> nn.Module:
    info = vdata.dataset_info(spec.data)
    return create_model(spec.model, num_classes=info.num_classes, in_chans=info.in_chans,
                        img_size=info.img_size, **spec.model_kwargs())


def loaders(spec: RunSpec) -> tuple[vdata.Loader, vdata.Loader]:
    r = spec.recipe()
    fraction = spec.data_fraction * r.train_fraction
    train = vdata.load(spec.data, "train", spec.data_dir, spec.download, fraction, spec.seed)
    test = vdata.load(spec.data, "test", spec.data_dir, spec.download)
    if r.test_limit:
        test = test.subset(slice(0, r.test_limit))
    train_loader = vdata.Loader(train, r.batch_size, shuffle=True, augment=r.augment,
                                seed=spec.seed, drop_last=len(train) > r.batch_size,
                                device=spec.device)
    test_loader = vdata.Loader(test, r.eval_batch_size, device=spec.device)
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
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).split("\n")[1].strip() if "\n" in str(e) else str(e)
        raise ValueError(f"checkpoint {path} does not fit {name}: {first}") from None
    return model


def trained_model(spec: RunSpec, checkpoint: str | None = None) -> tuple[nn.Module, dict]:
    """The trained model for ``spec``: from ``checkpoint``, else the cache, else train it."""
    model = build(spec)
    if checkpoint:
        return load_checkpoint(model, checkpoint, spec.model).eval(), {"checkpoint": checkpoint}
    run_dir = spec.run_dir
    final = run_dir / "model.safetensors"
    if not final.is_file():
        config = {"spec": spec, "recipe": spec.recipe(), "model_kwargs": spec.model_kwargs()}
        results.save_result(run_dir / "config.json", {}, config, spec.seed)
        train_loader, test_loader = loaders(spec)
        log.info("training %s on %s (%d images, preset %s) into %s", spec.model, spec.data,
                 len(train_loader.data), spec.preset, run_dir)
        fit(model, train_loader, test_loader,
            TrainConfig(spec.recipe(), seed=spec.seed, device=spec.device,
                        progress=spec.progress), run_dir)
    load_checkpoint(model, final, spec.model)
    return model.eval(), {"run_dir": str(run_dir), "metrics": run_metrics(run_dir)}


def run_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
