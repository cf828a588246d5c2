"""The gallery's figures drawn over seeds where the paper draws one value per point: the
depth profiles of Figs. 8-9 (high-frequency ΔlogAmplitude, feature-map variance), the noise
robustness of Fig. 2b and the data-fraction curves of Fig. 3, one line per seed. Each
``*_series`` function returns the numbers its figure draws (so tests check them against the
result files); each ``*_figure`` draws them and returns the saved paths, or None when a
study has no finished seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fourier import FourierResult
from .labels import named_pooling
from .robustness import RobustnessResult
from .subsets import SubsetsResult
from .variance import VarianceResult

# seeds share their model's colour and differ in marker
MARKERS = "osD^v<>ph*"


def _marker(i: int) -> str:
    return MARKERS[i % len(MARKERS)]


def depth_series(c, study: str, model: str) -> tuple[list[str], dict[int, np.ndarray]]:
    """``model``'s tap kinds and, per finished seed, its per-tap value (the mean over the
    probe images) in the ``study`` ("fourier": ΔlogAmp at the highest frequency; "variance":
    feature-map variance)."""
    kind = {"fourier": FourierResult, "variance": VarianceResult}[study]
    profiles = {k: kind.load(c.folder(study, k)).profiles()[model] for k in c.finished(study)}
    kinds = next(iter(profiles.values())).kinds
    return kinds, {k: p.per_image.mean(axis=0) for k, p in profiles.items()}


def depth_figure(c, path: Path) -> list[Path] | None:
    """Figs. 8 and 9 over seeds: rows ΔlogAmp (fourier) and variance, one panel per model,
    one line per seed against normalised depth (tap index / (taps − 1)), MSA taps shaded."""
    from vitprobe import plots

    ro = c.roster
    models = [ro["vit"], ro["resnet"], ro["alternet"]]
    rows = []
    for study, ylabel, log in (("fourier", "Δ log amplitude (highest freq.)", False),
                               ("variance", "feature-map variance", True)):
        try:
            rows.append((study, ylabel, log, [depth_series(c, study, m) for m in models]))
        except (FileNotFoundError, KeyError):
            continue
    if not rows:
        return None
    fig, axes = plots.plt.subplots(len(rows), len(models),
                                   figsize=(plots.TWO_COLUMNS, 2.2 * len(rows)), squeeze=False)
    for r, (study, ylabel, log, per_model) in enumerate(rows):
        for i, (ax, model, (kinds, by_seed)) in enumerate(zip(axes[r], models, per_model)):
            depth = np.linspace(0.0, 1.0, len(kinds)) if len(kinds) > 1 else np.zeros(1)
            half = 0.5 / max(1, len(kinds) - 1)
            for d, kind in zip(depth, kinds):
                if kind == "msa":
                    ax.axvspan(d - half, d + half, **plots.MSA_BAND)
            for j, (k, values) in enumerate(by_seed.items()):
                ax.plot(depth, values, "-", marker=_marker(j), ms=3, lw=0.9, alpha=0.85,
                        color=plots.PALETTE[i % len(plots.PALETTE)], label=f"seed {k}")
            if log:
                plots.log_axis(ax)
            ax.set_xlim(-0.03, 1.03)
            ax.set_title(f"{named_pooling(model)} ({study})")
            if r == len(rows) - 1:
                ax.set_xlabel("normalised depth")
        axes[r][0].set_ylabel(ylabel)
    plots.msa_legend(axes[0][0])
    return plots.save(fig, path)


def robustness_series(c, model: str) -> tuple[list[float], np.ndarray, dict[int, np.ndarray]]:
    """Noise levels, frequencies (×π) and, per finished seed, ``model``'s accuracy change in
    points, (levels, frequencies)."""
    runs = {k: RobustnessResult.load(c.folder("robustness", k)).by_eps()[model]
            for k in c.finished("robustness")}
    first = next(iter(runs.values()))
    levels = [r["eps"] for r in first]
    freqs = np.asarray(first[0]["frequencies"], dtype=float) / np.pi
    return levels, freqs, {k: 100 * np.array([r["accuracy_change"] for r in recs], dtype=float)
                           for k, recs in runs.items()}


def robustness_figure(c, path: Path) -> list[Path] | None:
    """Fig. 2b over seeds: accuracy change under band-passed noise against its frequency, one
    panel per noise level, one line per model and seed."""
    from vitprobe import plots

    ro = c.roster
    try:
        series = {m: robustness_series(c, m) for m in (ro["vit"], ro["resnet"])}
    except (FileNotFoundError, KeyError):
        return None
    levels = next(iter(series.values()))[0]
    fig, axes = plots.plt.subplots(1, len(levels), figsize=(plots.TWO_COLUMNS, 2.6),
                                   squeeze=False, sharey=True)
    for col, (ax, eps) in enumerate(zip(axes[0], levels)):
        for i, (model, (_, freqs, by_seed)) in enumerate(series.items()):
            for j, (k, change) in enumerate(by_seed.items()):
                ax.plot(freqs, change[col], "-", marker=_marker(j), ms=3, lw=0.9, alpha=0.85,
                        color=plots.PALETTE[i % len(plots.PALETTE)],
                        label=f"{named_pooling(model)} s{k}")
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(f"eps = {eps:g}")
        ax.set_xlabel("noise frequency (×π)")
    axes[0][0].set_ylabel("accuracy change (points)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=4)
    return plots.save(fig, path)


def subsets_series(c, model: str) -> tuple[list[float], dict[int, np.ndarray],
                                           dict[int, np.ndarray]]:
    """Fractions and, per finished seed, ``model``'s training NLL (mean per augmented image)
    and test error (%) at each fraction."""
    runs = {k: SubsetsResult.load(c.folder("subsets", k)).runs()[model]
            for k in c.finished("subsets")}
    fractions = [r.fraction for r in next(iter(runs.values()))]
    nll = {k: np.array([r.train_nll_per_image.mean() for r in rs]) for k, rs in runs.items()}
    err = {k: np.array([100 * (1 - r.test_acc) for r in rs]) for k, rs in runs.items()}
    return fractions, nll, err


def subsets_figure(c, path: Path) -> list[Path] | None:
    """Fig. 3 over seeds: training NLL and test error against the fraction of the training
    set, one line per model and seed."""
    from vitprobe import plots

    ro = c.roster
    try:
        series = {m: subsets_series(c, m) for m in (ro["vit"], ro["resnet"])}
    except (FileNotFoundError, KeyError):
        return None
    fig, axes = plots.plt.subplots(1, 2, figsize=(plots.TWO_COLUMNS, 2.6))
    for i, (model, (fractions, nll, err)) in enumerate(series.items()):
        for j, k in enumerate(nll):
            style = dict(marker=_marker(j), ms=4, lw=0.9, alpha=0.85,
                         color=plots.PALETTE[i % len(plots.PALETTE)],
                         label=f"{named_pooling(model)} s{k}")
            axes[0].plot(fractions, nll[k], "-", **style)
            axes[1].plot(fractions, err[k], "-", **style)
    for ax, ylabel in zip(axes, ("training NLL (augmented)", "test error (%)")):
        plots.fraction_axis(ax, fractions)
        ax.set_ylabel(ylabel)
    axes[0].legend()
    return plots.save(fig, path)


# (png stem, figure function, what it shows) in gallery order
FIGURES = (
    ("depth_seeds", depth_figure,
     "high-frequency ΔlogAmplitude (top) and feature-map variance (bottom, log scale) against "
     "depth, one line per seed, MSA taps shaded (Figs. 2a, 8, 9; F6, F8)"),
    ("robustness_seeds", robustness_figure,
     "accuracy change under the paper's band-passed random noise against its frequency, one "
     "panel per noise level, one line per model and seed (Fig. 2b; F7)"),
    ("subsets_seeds", subsets_figure,
     "training NLL (augmented) and test error against the fraction of the training set, "
     "every fraction trained for the full set's number of steps, one line per model and seed "
     "(Fig. 3; F5)"),
)
