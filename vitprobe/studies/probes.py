"""What the feature-probe studies share: trained models for a ``--model`` list, and a batch
of clean test images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from vitprobe import data as vdata
from vitprobe.summary import GROUPS, change_by_kind, change_interval, per_image_matrix

from . import cli
from .cache import trained_model
from .config import FeatureConfig, StudyResult
from .labels import with_pooling
from .runspec import RunSpec, build, check_token_grid


@dataclass(frozen=True)
class TapProfile:
    """A feature study's measure along one model's taps: each tap's kind ("embed", "msa",
    "mlp", "conv", "subsample", ...), the per-image values (images, taps) and, for the
    Fourier study, the highest frequency each tap's map resolves (radians)."""

    kinds: list[str]
    per_image: np.ndarray
    highest_frequency: list[float] | None = None


@dataclass(kw_only=True)
class ProfileResult(StudyResult):
    """A per-tap feature study's result (fourier, variance): per model label its taps (each
    with its kind and per-image values), the summary by tap kind and the intervals."""

    PER_IMAGE: ClassVar[str] = "per_image"  # the taps' field holding per-image values

    def profiles(self) -> dict[str, TapProfile]:
        """Per model label, the ``TapProfile`` of its taps."""
        out = {}
        for label, rec in self.data.items():
            taps = rec["taps"]
            freqs = ([t["highest_frequency"] for t in taps] if "highest_frequency" in taps[0]
                     else None)
            out[label] = TapProfile([t["kind"] for t in taps],
                                    per_image_matrix(taps, self.PER_IMAGE), freqs)
        return out


def probe_indices(n: int, num_images: int, seed: int) -> torch.Tensor:
    """The ``num_images`` test images a feature study probes with: a permutation of the test
    set drawn from the run's seed (each seed probes its own images)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:num_images]


def models_and_images(config: FeatureConfig) -> tuple[dict[str, torch.nn.Module], torch.Tensor,
                                                      torch.Tensor, dict[str, dict]]:
    """The trained models ``config`` names (trained first where the cache lacks them) and its
    probe images: clean test images drawn from the seed, with their labels."""
    device = cli.resolve_device(config.device)
    models, infos = {}, {}
    specs = [RunSpec.from_config(config, name, device) for name in cli.model_names(config)]
    for spec in specs:  # shapes checked before anything is trained
        check_token_grid(spec, build(spec))
    for spec in specs:  # every name checked above, before anything is trained
        models[spec.label], infos[spec.label] = trained_model(spec, config.checkpoint)
    test = vdata.load(config.data, "test", config.data_dir, config.download)
    idx = probe_indices(len(test), config.num_images, config.seed)
    x = test.normalize(test.images[idx]).to(device)
    return models, x, test.targets[idx].to(device), infos


def profile_models(models: dict, x: torch.Tensor, infos: dict, profile, value: str,
                   what, fmt: str, per_image: str, log_ratio: bool = False,
                   seed: int = 0) -> tuple[dict, dict]:
    """Run a per-tap ``profile`` (fourier.profile, variance.profile) on every model in eval
    mode, print how ``value`` changes across MSA, conv/MLP and subsampling taps (a
    difference, or a log-ratio with ``log_ratio``), and return the profiles and the result
    record, whose ``intervals`` hold each group's 95 % bootstrap interval over images."""
    profiles, record = {}, {}
    for label, model in models.items():
        with torch.no_grad():
            prof = profile(model.eval(), x)
        profiles[with_pooling(label, model)] = prof  # the same label in every figure
        s = change_by_kind(prof, value, log_ratio)
        matrix = per_image_matrix(prof, per_image)
        kinds = [t.kind for t in prof]
        intervals = {g: change_interval(matrix, kinds, g, log_ratio, seed)
                     for g in GROUPS if s[f"n_{g}"]}
        record[label] = {"taps": prof, "summary": s, "intervals": intervals,
                         "log_ratio": log_ratio, "run": infos[label]}
        print(f"{label}: mean {'log-ratio' if log_ratio else 'change'} of {what(prof)} — " +
              ", ".join(f"{g} {intervals[g].format(fmt)} (n={s[f'n_{g}']})"
                        for g in ("msa", "conv_mlp", "subsample") if g in intervals))
    return profiles, record


if __name__ == "__main__":
    raise SystemExit("studies.probes is a library module, not a command; see: vitprobe --help")
