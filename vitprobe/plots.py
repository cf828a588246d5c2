"""Figures in the papers' styles, ready for print: one style for all (``STYLE``: fonts of
7-8 pt, TrueType in the PDF), each figure made at a paper's column width (``ONE_COLUMN``
3.5 in, ``TWO_COLUMNS`` 7.16 in) so its fonts print at their size, saved as vector PDF
beside a 300-dpi PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .results import atomic_write_bytes
from .spectra import ape, nep

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
ONE_COLUMN, TWO_COLUMNS = 3.5, 7.16   # inches: a single and a double column of a paper
MIN_FONT = 7.0                         # points, at those widths
STYLE = {"font.size": 7, "axes.titlesize": 8, "axes.labelsize": 7, "xtick.labelsize": 7,
         "ytick.labelsize": 7, "legend.fontsize": 7, "figure.titlesize": 8,
         "legend.title_fontsize": 7, "pdf.fonttype": 42, "ps.fonttype": 42,
         "axes.linewidth": 0.6, "lines.linewidth": 1.0, "lines.markersize": 3,
         "savefig.dpi": 300, "legend.frameon": False, "figure.constrained_layout.use": True}
plt.rcParams.update(STYLE)
MSA_BAND = dict(color="grey", alpha=0.2, lw=0)   # how MSA taps are shaded, with its legend


def msa_legend(ax, **kwargs) -> None:
    """A legend with an entry for the grey MSA bands besides the lines already labelled."""
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles + [Patch(**MSA_BAND)], labels + ["MSA taps (shaded)"], **kwargs)


def log_axis(ax, axis: str = "y") -> None:
    """A log-scaled axis whose labels are plain numbers at readable places, whatever its
    range: nice linear steps within a decade, 1-2-5 within two, powers of ten beyond."""
    from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

    which = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    lo, hi = (ax.dataLim.y0, ax.dataLim.y1) if axis == "y" else (ax.dataLim.x0, ax.dataLim.x1)
    decades = np.log10(hi / lo) if lo > 0 and hi > 0 else 3.0
    which.set_major_locator(MaxNLocator(4) if decades < 1 else
                            LogLocator(subs=(1.0, 2.0, 5.0)) if decades < 2 else LogLocator())
    which.set_minor_formatter(NullFormatter())
    plain_ticks(ax, axis)


def plain_ticks(ax, axis: str = "y") -> None:
    """Tick labels as plain numbers (symlog's "−10⁰" reads as −1)."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def fraction_axis(ax, fractions: list[float]) -> None:
    """A log axis of training-set fractions labelled at the fractions themselves (the log
    scale's own minor labels crowd into each other there)."""
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("fraction of the training set")


def save(fig, path: str | Path) -> list[Path]:
    """Save ``fig`` as ``path``.png and .pdf, each rendered in memory and written atomically
    (a full disk leaves the previous file, never a truncated one; the same figure gives the
    same bytes); return both paths."""
    import io

    path = Path(path)
    out = []
    try:
        for ext in (".png", ".pdf"):
            buf = io.BytesIO()
            # no creation date in the PDF: the same figure gives the same bytes
            fig.savefig(buf, format=ext[1:], bbox_inches="tight",
                        metadata={"CreationDate": None} if ext == ".pdf" else None)
            out.append(atomic_write_bytes(path.with_suffix(ext), buf.getvalue()))
    finally:
        plt.close(fig)
    return out


def _kde(values: np.ndarray, grid: np.ndarray, total: int) -> np.ndarray:
    """Density of ``values`` on ``grid``, scaled so its integral is len(values)/total (the
    share of the whole spectrum on this side of zero)."""
    from scipy.stats import gaussian_kde

    if len(values) == 0:
        return np.zeros_like(grid)
    if len(values) < 2 or np.ptp(values) == 0:
        width = max(abs(values[0]) * 0.05, 1e-6)
        d = np.exp(-0.5 * ((grid - values[0]) / width) ** 2) / (width * np.sqrt(2 * np.pi))
    else:
        d = gaussian_kde(values)(grid)
    return d * len(values) / total


def _reach(samples: list[np.ndarray]) -> float:
    """Three kernel widths of ``_kde`` (Scott's rule; a lone value's 5 % width), the widest
    over ``samples``: how far past its data a density stays visible."""
    widths = [0.0]
    for v in samples:
        if len(v) >= 2 and np.ptp(v) > 0:
            widths.append(len(v) ** (-1 / 5) * float(np.std(v, ddof=1)))
        elif len(v):
            widths.append(max(abs(float(v[0])) * 0.05, 1e-6))
    return 3 * max(widths)


def spectrum_scale(spectra: dict[str, np.ndarray], ratio: float = 10.0) -> str:
    """``"log"`` when the models' largest eigenvalue magnitudes differ by more than ``ratio``
    (a decade: one model's spectrum would flatten the others' against zero on a linear
    axis, as 0-200 in a panel drawn to 2500), else ``"linear"``."""
    tops = [np.abs(v[np.isfinite(v)]).max() for v in map(np.ravel, spectra.values())
            if np.isfinite(v).any()]
    tops = [t for t in tops if t > 0]
    return "log" if tops and max(tops) > ratio * min(tops) else "linear"


def spectrum_figure(spectra: dict[str, np.ndarray], path: str | Path,
                    title: str = "Hessian max eigenvalue spectra",
                    scale: str = "auto") -> list[Path]:
    """Park & Kim 2022 Fig. 4 style: negative and positive eigenvalue densities in two
    panels, one colour per model; the legend carries NEP and APE.

    ``scale="linear"`` plots the densities over the eigenvalues as the paper does; ``"log"``
    plots them over log10 |eigenvalue| (density per decade; the negative panel runs from
    small to large magnitudes leftwards), for models whose curvatures differ by orders of
    magnitude; ``"auto"`` takes ``spectrum_scale(spectra)``. On either scale a panel's curve
    integrates to that side's share of the spectrum."""
    if scale == "auto":
        scale = spectrum_scale(spectra)
    if scale not in ("linear", "log"):
        raise ValueError(f"scale must be auto, linear or log; got {scale!r}")
    fig, (axn, axp) = plt.subplots(1, 2, figsize=(TWO_COLUMNS, 2.8), sharey=True)
    clean = {k: np.ravel(v)[np.isfinite(np.ravel(v))] for k, v in spectra.items()}
    all_vals = np.concatenate(list(clean.values()))
    # each panel's grid reaches 3 kernel widths past its outermost value, so no curve is cut
    # (the split at zero is the panels' own)
    if scale == "log":  # KDE over log10 |eigenvalue|, drawn at |eigenvalue|
        def grid(sign):
            sides = [np.log10(np.abs(v[sign * v > 0])) for v in clean.values()]
            mags = np.concatenate(sides) if any(len(x) for x in sides) else np.zeros(1)
            pad = max(0.3, _reach(sides))
            return np.linspace(mags.min() - pad, mags.max() + pad, 300)
        gn, gp = grid(-1), grid(1)
        kde_x, shown, rug = (lambda a: np.log10(np.abs(a))), (lambda g: 10 ** g), np.abs
    else:
        neg = [v[v < 0] for v in clean.values()]
        pos = [v[v > 0] for v in clean.values()]
        neg_lim = min(all_vals.min(), -1e-3) - _reach(neg) if (all_vals < 0).any() else -1.0
        pos_lim = max(all_vals.max(), 1e-3) + _reach(pos)
        gn, gp = np.linspace(neg_lim, 0, 300), np.linspace(0, pos_lim, 300)
        kde_x = shown = rug = (lambda a: a)
    for i, (label, v) in enumerate(clean.items()):
        c = PALETTE[i % len(PALETTE)]
        neg, pos = v[v < 0], v[v > 0]
        axn.plot(shown(gn), _kde(kde_x(neg), gn, len(v)), color=c)
        axp.plot(shown(gp), _kde(kde_x(pos), gp, len(v)), color=c,
                 label=f"{label} (NEP {nep(v):.2f}, APE {ape(v):.3g})")
        axn.plot(rug(neg), np.zeros(len(neg)), "|", color=c, ms=8)
        axp.plot(pos, np.zeros(len(pos)), "|", color=c, ms=8)
    if scale == "log":
        for ax in (axn, axp):
            ax.set_xscale("log")
        axn.invert_xaxis()
        axn.set_xlabel("|eigenvalue| of the negative ones (log)")
        axp.set_xlabel("eigenvalue (positive, log)")
        axn.set_ylabel("density per decade")
    else:
        axn.set_xlabel("eigenvalue (negative)")
        axp.set_xlabel("eigenvalue (positive)")
        axn.set_ylabel("density")
    # below both panels: a legend inside one would cover its densities
    fig.legend(*axp.get_legend_handles_labels(), loc="outside lower center",
               ncol=min(2, len(clean)))
    fig.suptitle(title)
    return save(fig, path)


def per_block_figure(rows: list[dict], path: str | Path) -> list[Path]:
    """Top Hessian eigenvalue of each block's own parameters against depth, MSA blocks
    shaded — the per-block view of curvature."""
    fig, ax = plt.subplots(figsize=(TWO_COLUMNS, 2.6))
    models = sorted({r["model"] for r in rows}, key=[r["model"] for r in rows].index)
    for i, m in enumerate(models):
        rs = [r for r in rows if r["model"] == m]
        depth = np.linspace(0, 1, len(rs))
        vals = [r["max_eigenvalue"] for r in rs]
        ax.plot(depth, vals, "o-", ms=3, color=PALETTE[i % len(PALETTE)], label=m)
        for d, r in zip(depth, rs):
            if r["kind"] == "msa":
                ax.axvspan(d - 0.5 / len(rs), d + 0.5 / len(rs), **MSA_BAND)
    ax.set_yscale("symlog", linthresh=1e-2)
    plain_ticks(ax)
    ax.set_xlabel("normalised depth")
    ax.set_ylabel("top eigenvalue of the block's Hessian")
    msa_legend(ax)
    return save(fig, path)


def fourier_figure(profiles: dict[str, list], path: str | Path) -> list[Path]:
    """Fig. 2a: ΔlogAmplitude against frequency, one curve per tap coloured by depth."""
    n = len(profiles)
    fig, axes = plt.subplots(1, n, figsize=(ONE_COLUMN if n == 1 else TWO_COLUMNS, 2.4),
                             squeeze=False, sharey=True)
    cmap = plt.get_cmap("plasma")
    for ax, (label, prof) in zip(axes[0], profiles.items()):
        for p in prof:
            ax.plot(np.asarray(p.frequencies) / np.pi, p.delta_log_amplitude,
                    color=cmap(0.9 * p.depth), lw=1)
        top = prof[-1].highest_frequency / np.pi
        ax.set_xticks([0, top])
        ax.set_xticklabels(["0", f"{top:.2g}π"])
        ax.set_title(label)
        ax.set_xlabel("frequency")
    axes[0][0].set_ylabel("Δ log amplitude")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 0.9))
    fig.colorbar(sm, ax=axes[0].tolist(), label="normalised depth", shrink=0.8)
    return save(fig, path)


def depth_figure(series: dict[str, list], value: str, ylabel: str, path: str | Path,
                 log: bool = False) -> list[Path]:
    """Figs. 8 and 9: a per-tap measure against normalised depth, MSA taps shaded."""
    n = len(series)
    fig, axes = plt.subplots(1, n, figsize=(ONE_COLUMN if n == 1 else TWO_COLUMNS, 2.4),
                             squeeze=False)
    for i, (ax, (label, taps)) in enumerate(zip(axes[0], series.items())):
        depth = np.array([t.depth for t in taps])
        vals = np.array([getattr(t, value) for t in taps])
        step = 0.5 / max(1, len(taps) - 1)
        for d, t in zip(depth, taps):
            if t.kind == "msa":
                ax.axvspan(d - step, d + step, **MSA_BAND)
        ax.plot(depth, vals, "o-", ms=3, color=PALETTE[i % len(PALETTE)])
        if log:
            log_axis(ax)
        ax.set_title(label)
        ax.set_xlabel("normalised depth")
    axes[0][0].set_ylabel(ylabel)
    msa_legend(axes[0][0], loc="best")
    return save(fig, path)


def robustness_figure(curves: dict[str, dict], path: str | Path) -> list[Path]:
    """Fig. 2b: accuracy change under band-limited noise against its frequency, one panel per
    noise level eps (``curves[label]["by_eps"]``), one line per model, 95 % bands over
    images."""
    labels = list(curves)
    levels = [r["eps"] for r in curves[labels[0]]["by_eps"]]
    fig, axes = plt.subplots(1, len(levels), figsize=(TWO_COLUMNS, 2.4), squeeze=False,
                             sharey=True)
    for ax, j in zip(axes[0], range(len(levels))):
        for i, label in enumerate(labels):
            r = curves[label]["by_eps"][j]
            f = np.asarray(r["frequencies"]) / np.pi
            change = 100 * np.asarray(r["accuracy_change"])
            n = len(r["correct_clean"])
            acc = np.asarray(r["accuracy"])
            half = 100 * 1.96 * np.sqrt(acc * (1 - acc) / max(n, 1))
            color = PALETTE[i % len(PALETTE)]
            ax.plot(f, change, "o-", ms=3, color=color, label=label)
            ax.fill_between(f, change - half, change + half, color=color, alpha=0.15, lw=0,
                            label="95 % interval over images" if i == 0 else None)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(f"eps = {levels[j]:g}")
        ax.set_xlabel("noise frequency (×π)")
    axes[0][0].set_ylabel("accuracy change (points)")
    axes[0][0].legend()
    return save(fig, path)


def attribution_grid(images: np.ndarray, maps: dict[str, np.ndarray], path: str | Path,
                     title: str = "", row_labels: list[str] | None = None) -> list[Path]:
    """Rows: images (``row_labels``, e.g. true and predicted class, beside each); columns:
    the image, then each explanation over it, with one colour bar per explanation (each
    map scaled to its own range, [0, 1])."""
    n = len(images)
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(TWO_COLUMNS, 1.45 * n + 0.6), squeeze=False)
    for i in range(n):
        img = images[i]
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        img = (img - img.min()) / (np.ptp(img) + 1e-12)
        axes[i][0].imshow(img, cmap="gray")
        if row_labels:
            axes[i][0].text(-0.1, 0.5, row_labels[i], transform=axes[i][0].transAxes,
                            rotation=90, ha="right", va="center")
        for j, (name, m) in enumerate(maps.items(), start=1):
            mi = np.asarray(m[i], dtype=float)
            mi = (mi - mi.min()) / (np.ptp(mi) + 1e-12)
            axes[i][j].imshow(img, cmap="gray")
            im = axes[i][j].imshow(mi, cmap="jet", alpha=0.5, vmin=0, vmax=1,
                                   extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
            if i == 0:
                axes[i][j].set_title(name)
            if i == n - 1:
                bar = fig.colorbar(im, ax=axes[:, j].tolist(), orientation="horizontal",
                                   fraction=0.04, pad=0.02)
                bar.set_ticks([0, 0.5, 1])
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return save(fig, path)


def mean_distance_figure(distances: dict[str, np.ndarray], path: str | Path) -> list[Path]:
    """ViT Fig. 7 right: mean attention distance of every head against layer."""
    fig, ax = plt.subplots(figsize=(ONE_COLUMN, 2.6))
    for i, (label, d) in enumerate(distances.items()):
        layers = np.arange(1, d.shape[0] + 1)
        for h in range(d.shape[1]):
            ax.scatter(layers + 0.08 * i, d[:, h], s=8, color=PALETTE[i % len(PALETTE)],
                       label=label if h == 0 else None)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean attention distance (pixels)")
    ax.legend()
    return save(fig, path)


def position_similarity_figure(sim: np.ndarray, path: str | Path) -> list[Path]:
    """ViT Fig. 7 centre: for each patch, the cosine similarity of its position embedding
    with every other patch's."""
    h, w = sim.shape[:2]
    side = ONE_COLUMN if w <= 8 else TWO_COLUMNS
    fig, axes = plt.subplots(h, w, figsize=(side, side * h / w + 0.3), squeeze=False)
    for i in range(h):
        for j in range(w):
            axes[i][j].imshow(sim[i, j], vmin=-1, vmax=1, cmap="viridis")
            axes[i][j].axis("off")
    fig.suptitle("position embedding similarity")
    return save(fig, path)


def _face_geomean(v: np.ndarray) -> np.ndarray:
    """Per grid face (cell between four grid points), the geometric mean of its corners."""
    return np.exp((np.log(v[:-1, :-1]) + np.log(v[1:, :-1]) + np.log(v[:-1, 1:])
                   + np.log(v[1:, 1:])) / 4)


def landscape_figure(surfaces: dict[str, dict], path: str | Path, title: str = "") -> list[Path]:
    """Fig. 1a: per model a filled contour of the 2-D slice coloured on a log scale of
    loss − min (as the paper's notebook plots it: a model's basin and its 10³-times-higher rim
    both stay visible), its own colour bar, above a 3-D view of the same; plus the 1-D slices
    overlaid. Axes: the steps along the two random directions (δ, η)."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator

    n = len(surfaces)
    fig = plt.figure(figsize=(TWO_COLUMNS, 5.2))
    rows = fig.add_gridspec(2, 1, height_ratios=(1, 1.25))
    upper, lower = rows[0].subgridspec(1, n + 1), rows[1].subgridspec(1, n)  # 3-D views wider
    for i, (label, s) in enumerate(surfaces.items()):
        surf = s["surface"]
        loss = np.asarray(surf.loss, dtype=float)
        A, B = np.meshgrid(surf.coords[0], surf.coords[1], indexing="ij")
        above = loss - np.nanmin(loss)
        floor = max(np.nanmax(above) * 1e-4, 1e-8)  # the minimum itself: 1e-4 of the range
        shown = np.clip(above, floor, None)
        top = max(np.nanmax(shown), floor * 10)
        levels = np.geomspace(floor, top, 13)
        ax2 = fig.add_subplot(upper[0, i])
        cf = ax2.contourf(A, B, shown, levels=levels, norm=LogNorm(floor, top), cmap="viridis")
        ax2.contour(A, B, shown, levels=levels, colors="white", linewidths=0.3)
        bar = fig.colorbar(cf, ax=ax2, shrink=0.85, label="loss − min")
        bar.ax.yaxis.set_major_locator(LogLocator(numticks=5))
        bar.ax.yaxis.set_major_formatter(LogFormatterSciNotation())
        bar.ax.yaxis.set_minor_formatter(plt.NullFormatter())
        ax2.set_aspect("equal")
        ax2.set_xlabel("δ")
        ax2.set_ylabel("η")
        ax2.set_title(label)
        ax3 = fig.add_subplot(lower[0, i], projection="3d")
        # one colour per face, from the geometric mean of its four corners (matplotlib would
        # take one corner's: on a coarse grid a rim face then wears the minimum's colour)
        faces = _face_geomean(shown)
        colours = np.zeros((*shown.shape, 4))
        colours[:-1, :-1] = plt.get_cmap("viridis")(LogNorm(floor, top)(faces))
        ax3.plot_surface(A, B, loss, facecolors=colours, rstride=1, cstride=1, linewidth=0,
                         shade=False)
        ax3.set_box_aspect(None, zoom=0.95)
        ax3.set_xlabel("δ", labelpad=-6)
        ax3.set_ylabel("η", labelpad=-6)
        ax3.set_zlabel("loss", labelpad=-2)
        for axis in (ax3.xaxis, ax3.yaxis, ax3.zaxis):
            axis.set_major_locator(plt.MaxNLocator(3))
        ax3.tick_params(pad=-2, labelsize=STYLE["xtick.labelsize"])
    ax1 = fig.add_subplot(upper[0, n])
    for i, (label, s) in enumerate(surfaces.items()):
        sl = s["slice"]
        ax1.plot(sl.coords[0], sl.loss, color=PALETTE[i % len(PALETTE)], label=label)
    log_axis(ax1)
    ax1.set_xlabel("α (1-D slice along δ)")
    ax1.set_ylabel("loss (log)")
    ax1.legend()
    if title:
        fig.suptitle(title)
    return save(fig, path)


def zoo_figure(rows: list[dict], path: str | Path) -> list[Path]:
    """Throughput against accuracy (or against MACs where no accuracy is cached)."""
    fig, ax = plt.subplots(figsize=(ONE_COLUMN, 2.8))
    with_acc = [r for r in rows if r.get("test_acc") is not None]
    use_acc = len(with_acc) >= 1
    for i, r in enumerate(with_acc if use_acc else rows):
        yv = 100 * r["test_acc"] if use_acc else r["macs"] / 1e6
        ax.scatter(r["infer_img_s"], yv, s=20 + r["params"] / 2e5, color=PALETTE[i % 7])
        ax.annotate(r["model"], (r["infer_img_s"], yv))
    log_axis(ax, "x")
    ax.set_xlabel("inference images/s")
    ax.set_ylabel("test accuracy (%)" if use_acc else "MMACs")
    return save(fig, path)


def trajectory_figure(trajectories: dict, path: str | Path) -> list[Path]:
    """Fig. 1b: the training trajectory in polar coordinates (r = ‖θ_t − θ*‖ / ‖θ_0 − θ*‖,
    angle between θ_t − θ* and θ_0 − θ*), and Li et al.'s top-2 PCA projection. A model
    with fewer than 3 checkpoints has no trajectory to draw: it is named, not plotted."""
    drawable = {k: t for k, t in trajectories.items() if len(t.radius) >= 3}
    if not drawable:  # nothing to draw: no empty figure to copy into a gallery
        return []
    fig = plt.figure(figsize=(TWO_COLUMNS, 3.2))
    axp = fig.add_subplot(1, 2, 1, projection="polar")
    axc = fig.add_subplot(1, 2, 2)
    skipped = []
    for i, (label, t) in enumerate(trajectories.items()):
        if len(t.radius) < 3:
            skipped.append(f"{label} ({len(t.radius)} checkpoints)")
            continue
        c = PALETTE[i % len(PALETTE)]
        axp.plot(t.angle, t.radius, "o-", ms=3, color=c, label=label)
        axc.plot(t.pca_coords[:, 0], t.pca_coords[:, 1], "o-", ms=3, color=c, label=label)
    axp.set_thetamax(180)
    axp.set_title("polar view (Park & Kim)")
    axc.set_title("top-2 PCA projection (Li et al.)")
    axc.set_xlabel("PC 1")
    axc.set_ylabel("PC 2")
    axc.legend()
    if skipped:
        fig.supxlabel("not drawn (a trajectory needs ≥ 3 checkpoints): " + ", ".join(skipped))
    return save(fig, path)
