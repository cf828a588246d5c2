"""Every figure kind, drawn on tiny data, is print-ready: made at a paper's column width
(3.5 or 7.16 in), every text at least 7 pt there, no two tick labels overlapping (their
rendered bounding boxes), saved as PNG and vector PDF."""

from types import SimpleNamespace

import matplotlib.text
import numpy as np
import pytest
import torch

from vitprobe import plots

checked = []


def drawn_tick_labels(axis):
    """The tick labels ``axis`` draws: visible, not empty, at a tick inside its view."""
    lo, hi = sorted(axis.get_view_interval())
    span = hi - lo
    return [t.label1 for t in axis.get_major_ticks()
            if t.label1.get_visible() and t.label1.get_text().strip()
            and lo - 1e-9 * abs(span) <= t.get_loc() <= hi + 1e-9 * abs(span)]


@pytest.fixture(autouse=True)
def inspect_before_saving(monkeypatch):
    original = plots.save

    def save(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        width = fig.get_size_inches()[0]
        assert min(abs(width - plots.ONE_COLUMN), abs(width - plots.TWO_COLUMNS)) < 0.01, width
        texts = [t for t in fig.findobj(matplotlib.text.Text)
                 if t.get_visible() and t.get_text().strip()]
        small = [(t.get_text(), t.get_fontsize()) for t in texts
                 if t.get_fontsize() < plots.MIN_FONT]
        assert not small, small
        # tick labels of one axis must not overlap each other, nor those of another panel
        # (an x and a y label meeting at their own panel's corner are read apart)
        boxes = []
        for k, ax in enumerate(fig.axes):
            if not ax.axison:
                continue
            axes = [ax.xaxis, ax.yaxis] + ([ax.zaxis] if hasattr(ax, "zaxis") else [])
            for j, axis in enumerate(axes):
                boxes += [(k, j, t.get_text(), t.get_window_extent(renderer).shrunk(0.9, 0.9))
                          for t in drawn_tick_labels(axis)]
        clashes = [(a[2], b[2]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                   if (a[0] != b[0] or a[1] == b[1]) and a[3].overlaps(b[3])]
        assert not clashes, clashes[:5]
        # an axis that shows tick labels shows at least two (a log axis spanning less than a
        # decade once showed none)
        for ax in fig.axes:
            if not ax.axison or ax.name in ("3d", "polar"):
                continue
            for axis in (ax.xaxis, ax.yaxis):
                ticks = axis.get_major_ticks()
                if ticks and any(t.label1.get_visible() for t in ticks):
                    assert len(drawn_tick_labels(axis)) >= 2, (path, axis.axis_name)
        # no text cut: inside the canvas, never shortened with an ellipsis (tick labels
        # that matplotlib keeps beyond an axis' view are not drawn, so not checked)
        canvas = fig.bbox
        undrawn = set()
        for ax in fig.axes:
            for axis in [ax.xaxis, ax.yaxis] + ([ax.zaxis] if hasattr(ax, "zaxis") else []):
                shown = {id(x) for x in drawn_tick_labels(axis)}
                undrawn |= {id(tk.label1) for tk in axis.get_major_ticks()
                            if id(tk.label1) not in shown}
                undrawn |= {id(tk.label2) for tk in axis.get_major_ticks()
                            if not tk.label2.get_visible()}
        for t in texts:
            if id(t) in undrawn:
                continue
            box = t.get_window_extent(renderer)
            assert "…" not in t.get_text(), (path, t.get_text())
            assert box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1 and \
                box.y0 >= canvas.y0 - 1 and box.y1 <= canvas.y1 + 1, (path, t.get_text())
        # a legend covers no plotted point of its own panel (figure legends: of any panel)
        for ax in fig.axes:
            legends = [lg for lg in [ax.get_legend(), *fig.legends] if lg is not None]
            for lg in legends:
                box = lg.get_window_extent(renderer)
                panels = [ax] if lg is ax.get_legend() else fig.axes
                for a in panels:
                    for line in a.lines:
                        xy = np.column_stack(line.get_data()).astype(float)
                        xy = xy[np.isfinite(xy).all(axis=1)]
                        if not len(xy):
                            continue
                        pts = a.transData.transform(xy)
                        inside = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & \
                            (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
                        assert not inside.any(), (path, line.get_label(), int(inside.sum()))
        out = original(fig, path)
        assert [p.suffix for p in out] == [".png", ".pdf"] and all(p.stat().st_size for p in out)
        checked.append(path)
        return out

    monkeypatch.setattr(plots, "save", save)


def _taps(kind_value):
    from vitprobe import fourier, variance
    from vitprobe.models import create_model

    torch.manual_seed(0)
    model = create_model("vit-ti", num_classes=4, in_chans=1, img_size=28, patch_size=7,
                         depth=2).eval()
    x = torch.randn(4, 1, 28, 28)
    return (fourier if kind_value == "fourier" else variance).profile(model, x)


def test_spectrum_figures_at_both_scales(tmp_path):
    rng = np.random.default_rng(0)
    a = np.concatenate([-rng.uniform(1, 20, 30), rng.uniform(1, 200, 120)])
    b = np.concatenate([-rng.uniform(1e2, 1e4, 10), rng.uniform(1e2, 5e4, 140)])
    plots.spectrum_figure({"vit-ti (cls)": a, "resnet-18": a * 1.3}, tmp_path / "lin")
    plots.spectrum_figure({"vit-ti (cls)": a, "alternet-18": b}, tmp_path / "log")


def test_feature_figures(tmp_path):
    four, var = _taps("fourier"), _taps("variance")
    plots.fourier_figure({"vit-ti (cls)": four, "vit-ti (gap)": four}, tmp_path / "f")
    plots.depth_figure({"vit-ti (cls)": four, "other": four}, "highest", "Δ log amplitude",
                       tmp_path / "d")
    plots.depth_figure({"vit-ti (cls)": var}, "variance", "variance", tmp_path / "v", log=True)
    rows = [{"model": m, "kind": k, "max_eigenvalue": v} for m in ("a", "b")
            for k, v in (("embed", 3.0), ("msa", -40.0), ("mlp", 900.0), ("msa", 0.5))]
    plots.per_block_figure(rows, tmp_path / "blocks")


def test_robustness_attention_and_zoo_figures(tmp_path):
    f = np.linspace(0.1, 0.9, 9) * np.pi
    rec = lambda eps, s: {"eps": eps, "frequencies": f.tolist(),  # noqa: E731
                          "accuracy_change": (-s * f / np.pi).tolist(),
                          "accuracy": (0.9 - s * f / np.pi).tolist(),
                          "correct_clean": [1] * 100}
    curves = {m: {"by_eps": [rec(e, s * e) for e in (0.1, 0.3, 1, 3)]}
              for m, s in (("vit-ti (cls)", 0.1), ("resnet-18", 0.2))}
    plots.robustness_figure(curves, tmp_path / "rob")
    rng = np.random.default_rng(0)
    plots.attribution_grid(rng.random((3, 1, 28, 28)),
                           {k: rng.random((3, 28, 28)) for k in ("rollout",
                                                                 "integrated gradients",
                                                                 "occlusion")},
                           tmp_path / "attr", title="vit-ti (cls): explanations",
                           row_labels=["true 1 / pred 1"] * 3)
    plots.mean_distance_figure({"vit-ti (cls)": rng.random((12, 3)) * 20}, tmp_path / "dist")
    plots.position_similarity_figure(rng.uniform(-1, 1, (7, 7, 7, 7)), tmp_path / "pos")
    plots.zoo_figure([{"model": m, "params": p, "macs": p * 10, "infer_img_s": s,
                       "test_acc": a} for m, p, s, a in (("vit-ti", 5e6, 900, 0.8),
                                                          ("resnet-18", 1.1e7, 400, 0.9))],
                     tmp_path / "zoo")


def test_landscape_and_trajectory_figures(tmp_path):
    c = np.linspace(-1, 1, 9)
    A, B = np.meshgrid(c, c, indexing="ij")
    surfaces = {name: {"surface": SimpleNamespace(loss=scale * (1 + A ** 2 + B ** 2 + A * B),
                                                  coords=(c, c)),
                       "slice": SimpleNamespace(loss=scale * (1 + c ** 2), coords=(c,))}
                for name, scale in (("vit-ti (cls)", 1.0), ("resnet-18", 1e3))}
    plots.landscape_figure(surfaces, tmp_path / "land", title="loss landscape")
    plots.landscape_figure({"vit-ti (cls)": surfaces["vit-ti (cls)"]}, tmp_path / "one")
    t = SimpleNamespace(radius=np.array([1.0, 0.6, 0.3, 0.0]),
                        angle=np.array([0.0, 0.3, 0.5, 0.0]),
                        pca_coords=np.array([[3.0, 1.0], [2.0, 0.5], [1.0, 0.2], [0.0, 0.0]]))
    plots.trajectory_figure({"vit-ti (cls)": t}, tmp_path / "traj")
    short = SimpleNamespace(radius=np.array([1.0, 0.0]), angle=np.zeros(2),
                            pca_coords=np.zeros((2, 2)))
    assert plots.trajectory_figure({"vit-ti (cls)": short}, tmp_path / "empty") == []
    assert not (tmp_path / "empty.png").exists()  # no empty panel for the gallery


def test_a_3d_face_wears_the_geometric_mean_of_its_corners():
    # (1 * 4 * 4 * 16) ** (1/4) = 4; on a 3x3 bowl every face touches the minimum once and
    # the rim three times, so all four faces share one colour (a corner's colour would give
    # one face the minimum's colour and three the rim's)
    assert np.allclose(plots._face_geomean(np.array([[1.0, 4.0], [4.0, 16.0]])), [[4.0]])
    c = np.linspace(-1, 1, 3)
    A, B = np.meshgrid(c, c, indexing="ij")
    faces = plots._face_geomean(1e-3 + A ** 2 + B ** 2)
    assert faces.shape == (2, 2) and np.allclose(faces, faces[0, 0])


def test_study_figures(tmp_path):
    from vitprobe.studies import alternet, subsets

    rows = [{"model": m, "fraction": f, "train_nll": 0.3 / f ** 0.2, "test_acc": 0.9 - 0.1 / f}
            for m in ("vit-ti (cls)", "resnet-18") for f in (0.02, 0.06, 0.25, 1.0)]
    subsets.figure(rows, tmp_path / "subsets")
    alternet.search_figure([{"label": f"msa {i}{i}00", "accuracy": 0.8 + i / 50, "kept": i != 2}
                           for i in range(4)], tmp_path / "search", "AlterNet build rule")


def test_every_figure_above_was_checked():
    assert len(checked) == 16, checked  # the trajectory without checkpoints draws none
