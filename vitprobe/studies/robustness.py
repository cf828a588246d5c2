"""Robustness to band-limited noise (Park & Kim 2022, Fig. 2b): accuracy change when the
paper's frequency-based random noise (eps·sign(N(0, 1)) band-passed to a ring of half-width
0.2 rad around frequency f, not renormalised) is added to the inputs, at several noise
levels eps so that no single saturating level decides the comparison.

vitprobe robustness --model vit-ti,resnet-18 [--eps 0.1,0.3,1,3]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from vitprobe import fourier, plots

from . import cli
from .config import FeatureConfig, StudyResult, option
from .labels import with_pooling
from .probes import models_and_images


@dataclass(frozen=True)
class RobustnessConfig(FeatureConfig):
    STUDY: ClassVar[str] = "robustness"

    eps: str = option("0.1,0.3,1,3", "comma-separated noise amplitudes > 0, in normalised "
                                     "units", check=cli.positive_numbers)
    num_frequencies: int = option(9, "frequencies from 0.1π to 0.9π", check=cli.at_least_two)


@dataclass(kw_only=True)
class RobustnessResult(StudyResult):
    """Per model label: its run and one ``fourier.noise_robustness`` record per noise level."""

    FILE: ClassVar[str] = "robustness.json"

    def by_eps(self) -> dict[str, list[dict]]:
        """Per model label, its ``fourier.noise_robustness`` records by ascending eps
        (frequencies, per-image correctness clean and under noise, accuracies)."""
        return {label: sorted(rec["by_eps"], key=lambda r: r["eps"])
                for label, rec in self.data.items()}


def run(config: RobustnessConfig) -> RobustnessResult:
    """Accuracy under band-limited noise for every model ``config`` names, saved to
    ``config.out`` with its figure."""
    eps = cli.positive_numbers(config.eps)
    models, x, y, infos = models_and_images(config)
    freqs = np.linspace(0.1, 0.9, config.num_frequencies) * np.pi
    batches = [(x[i:i + 128], y[i:i + 128]) for i in range(0, len(x), 128)]
    curves: dict = {}
    for label, model in models.items():
        curves[label] = {"run": infos[label], "by_eps": []}
        for e in eps:
            r = fourier.noise_robustness(model, batches, freqs, eps=e, seed=config.seed)
            curves[label]["by_eps"].append(r)
            ch = np.array(r["accuracy_change"]) * 100
            low, high = ch[freqs <= np.pi / 2].mean(), ch[freqs > np.pi / 2].mean()
            print(f"{label} eps {e:g}: clean {100 * r['clean_accuracy']:.1f} %; accuracy "
                  f"change low-freq noise {low:+.1f} pts, high-freq noise {high:+.1f} pts")
    out = Path(config.out)
    result = RobustnessResult(record=curves, config=config.to_dict())
    path = result.save(out)
    fig = plots.robustness_figure({with_pooling(k, models[k]): v for k, v in curves.items()},
                                  out / "robustness")
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    return result


def main(argv: list[str] | None = None) -> int:
    config = RobustnessConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
