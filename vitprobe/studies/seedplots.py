"""The gallery's figures drawn over seeds where the paper draws one value per point: the
depth profiles of Figs. 8-9 (high-frequency ΔlogAmplitude, feature-map variance), the noise
robustness of Fig. 2b and the data-fraction curves of Fig. 3, one line per seed. Each
``*_series`` function returns the numbers its figure draws (so tests check them against the
result files); each ``*_figure`` draws them and returns the saved paths, or None when a
study has no finished seed."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from vitprobe import plots, stats

from .alternet import AlterNetResult
from .findings import Context, Finding
from .fourier import FourierResult
from .hessian import HessianResult
from .labels import named_pooling
from .pipeline import seed_figures
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


def spectra_series(c) -> dict[str, np.ndarray]:
    """Per model, the top-k eigenvalues of every recorded seed's mini-batches, stacked."""
    by_model: dict[str, list[np.ndarray]] = {}
    for k in c.finished("hessian"):
        for label, e in HessianResult.load(c.folder("hessian", k)).eigenvalues.items():
            by_model.setdefault(named_pooling(label), []).append(e)
    return {label: np.concatenate(es) for label, es in by_model.items()}


def spectra_figure(c, path: Path) -> list[Path] | None:
    """Figs. 1c, 4, 6, 12c over seeds: each model's spectrum from every seed's mini-batches."""
    try:
        spectra = spectra_series(c)
    except FileNotFoundError:
        return None
    n = len(c.finished("hessian"))
    seeds = f"{n} seed" + ("s" if n != 1 else "")
    return plots.spectrum_figure(spectra, path, title=f"Hessian max-eigenvalue spectra: top-5 "
                                                      f"per mini-batch, the mini-batches of "
                                                      f"{seeds} together")


# ----------------------------------------------------------------------------- figures
def accuracies_by_seed(c: Context) -> dict[str, list[float]]:
    """Per model label, its test accuracy (points) in each finished alternet step (seed)."""
    accs: dict[str, list[float]] = {}
    for k in c.finished("alternet"):
        for label, acc in AlterNetResult.load(c.folder("alternet", k)).accuracies().items():
            accs.setdefault(label, []).append(100 * acc)
    return accs


def accuracy_figure(c: Context, path: Path) -> list[Path] | None:
    """Fig. 12a over seeds: each model's test accuracy, the mean with its 95 % t interval and
    every seed as a dot, on an untruncated axis."""
    try:
        accs = accuracies_by_seed(c)
    except FileNotFoundError:
        return None
    fig, ax = plots.plt.subplots(figsize=(plots.ONE_COLUMN, 2.8))
    for i, v in enumerate(accs.values()):
        iv = stats.t_interval(v)
        err = (iv.high - iv.estimate) if math.isfinite(iv.high) else 0.0
        ax.bar(i, iv.estimate, yerr=err, capsize=4, color=plots.PALETTE[i % len(plots.PALETTE)],
               alpha=0.8)
        ax.plot([i] * len(v), v, "k.", ms=4)
        ax.text(i, 2, f"{iv.estimate:.2f}", ha="center", color="white")
    ax.set_xticks(range(len(accs)), list(accs), rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("test accuracy (%)")
    n = len(next(iter(accs.values()))) if accs else 0
    ax.set_title(f"mean of {n} seeds, 95 % t interval; dots: seeds")
    return plots.save(fig, path)


def seeds_figure(rows: list[Finding], path: Path) -> list[Path] | None:
    """Every voting part of every measured finding: one dot per seed, the mean with its 95 %
    t interval, and the boundary; the panel's title gives the verdict and its text the mean
    as the table prints it."""
    panels = [(r, p) for r in rows for p in r.parts if p.votes]
    if not panels:
        return None
    cols = 3
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plots.plt.subplots(nrows, cols, figsize=(plots.TWO_COLUMNS, 1.9 * nrows),
                                   squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (r, p) in zip(axes.flat, panels):
        iv = p.interval
        ax.axhline(p.boundary, color="0.5", lw=0.8, ls="--")
        ax.plot(range(len(p.per_seed)), p.per_seed, "o", color="k", ms=4, label="seed")
        x = len(p.per_seed) + 0.5
        if math.isfinite(iv.high):
            ax.errorbar([x], [iv.estimate], yerr=[[iv.estimate - iv.low], [iv.high - iv.estimate]],
                        fmt="s", color=plots.PALETTE[0], capsize=3, ms=4)
        ax.text(x, iv.estimate, f" {iv.estimate:{p.fmt}}", va="center")
        ax.set_xticks([*range(len(p.per_seed)), x], [f"s{k}" for k in p.seeds] + ["mean"])
        ax.set_xlim(-0.5, x + 1.5)
        side = ">" if p.paper_side == "above" else "<"
        ax.set_title(f"{r.id} ({r.verdict}): paper {side} {p.boundary:g}\n"
                     f"{_wrapped(p.statistic)}", fontsize=7)
    fig.suptitle("one dot per seed; square: mean with its 95 % t interval; dashed: the "
                 "boundary")
    return plots.save(fig, path)


def _wrapped(text: str, width: int = 44) -> str:
    """A panel title on as many lines as it needs: never cut short with an ellipsis."""
    return "\n".join(textwrap.wrap(text, width))


# stem -> (figure function, what it shows); drawn in the order of the pipeline's stages
# that feed them (``pipeline.seed_figures``)
FIGURES = {
    "spectra_seeds": (spectra_figure, "Hessian max-eigenvalue spectra of every model, top-5 "
                      "per mini-batch of 16 augmented training images, NLL + l2, every seed's "
                      "mini-batches together (Figs. 1c, 4, 6, 12c; F1, F2, F4, F10)"),
    "alternet_seeds": (accuracy_figure, "test accuracy of AlterNet, both ResNets and ViT, mean "
                       "over the seeds with its 95 % t interval, one dot per seed (Fig. 12a; "
                       "F9)"),
    "depth_seeds": (depth_figure, "high-frequency ΔlogAmplitude (top) and feature-map variance "
                    "(bottom, log scale) against depth, one line per seed, MSA taps shaded "
                    "(Figs. 2a, 8, 9; F6, F8)"),
    "robustness_seeds": (robustness_figure, "accuracy change under the paper's band-passed "
                         "random noise against its frequency, one panel per noise level, one "
                         "line per model and seed (Fig. 2b; F7)"),
    "subsets_seeds": (subsets_figure, "training NLL (augmented) and test error against the "
                      "fraction of the training set, every fraction trained for the full set's "
                      "number of steps, one line per model and seed (Fig. 3; F5)"),
}


def figures(c: Context, rows: list[Finding], folder: Path) -> list[tuple[str, str]]:
    """The gallery's figures drawn from every seed: (png name, what it shows) pairs."""
    made = []
    folder.mkdir(parents=True, exist_ok=True)
    if seeds_figure(rows, folder / "findings_seeds"):
        made.append(("findings_seeds.png", "every part of every finding: its per-seed values "
                                           "(dots), their mean and 95 % t interval, the "
                                           "boundary; the numbers of the table below"))
    for stem in seed_figures():
        draw, what = FIGURES[stem]
        if draw(c, folder / stem):
            made.append((f"{stem}.png", what))
    return made
