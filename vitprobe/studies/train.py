"""Train a model into the checkpoint cache and print its test accuracy.

vitprobe train --model vit-ti --data fashion-mnist --preset quick
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from . import cli
from .cache import trained_model
from .config import StudyConfig, StudyResult, option
from .runspec import RunSpec


@dataclass(frozen=True)
class TrainStudyConfig(StudyConfig):
    STUDY: ClassVar[str] = "train"

    teacher: str | None = option(None, "distil from this model of the registry (DeiT)")
    distill: str = option("soft", "distillation target: the teacher's soft probabilities or "
                                  "its hard labels", choices=("hard", "soft"))
    alpha: float = option(0.5, "soft distillation weight, in (0, 1]", check=cli.fraction)
    tau: float = option(1.0, "soft distillation temperature", check=cli.positive_number)


@dataclass(kw_only=True)
class TrainResult(StudyResult):
    """Per model label: its run folder, final test accuracy (None where the recipe never
    evaluates) and the seconds it took here (0 when the cache had it)."""

    FILE: ClassVar[str] = "train.json"

    def test_accuracy(self) -> dict[str, float | None]:
        return {label: r["test_acc"] for label, r in self.data.items()}


def run(config: TrainStudyConfig) -> TrainResult:
    """Every model ``config`` names, trained into the cache (or taken from it); the summary is
    saved to ``config.out``."""
    device = cli.resolve_device(config.device)
    record = {}
    for name in cli.model_names(config):
        t0 = time.monotonic()
        spec = replace(RunSpec.from_config(config, name, device), teacher=config.teacher,
                       distill=config.distill, alpha=config.alpha, tau=config.tau)
        _, info = trained_model(spec, config.checkpoint)
        last = info.get("metrics", [{}])[-1] if info.get("metrics") else {}
        acc = last.get("test_acc")
        seconds = time.monotonic() - t0
        record[spec.label] = {"run_dir": str(spec.run_dir), "test_acc": acc, "seconds": seconds}
        print(f"{name}: test accuracy {acc:.4f}" if acc is not None else f"{name}: trained",
              f"({spec.run_dir}, {seconds:.0f} s)")
    result = TrainResult(record=record, config=config.to_dict())
    result.save(Path(config.out))
    return result


def main(argv: list[str] | None = None) -> int:
    config = TrainStudyConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
