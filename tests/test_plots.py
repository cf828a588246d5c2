"""Figures whose content can be checked by number: the spectrum panels' densities."""

import numpy as np
import pytest

from vitprobe import plots


def _capture(monkeypatch):
    figs = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figs.append(fig) or [])
    return figs


def test_spectrum_scale_turns_log_when_models_differ_by_orders_of_magnitude():
    assert plots.spectrum_scale({"a": np.array([1.0, 2.0, -0.5]),
                                 "b": np.array([3e3, -5e4])}) == "log"
    assert plots.spectrum_scale({"a": np.array([1.0, 2.0, -0.5]),
                                 "b": np.array([3.0, -4.0])}) == "linear"


def _spectrum(rng, n_neg, n_pos, lo, hi):
    """Eigenvalues log-uniform in [lo, hi] in magnitude: n_neg negative, n_pos positive."""
    mags = 10 ** rng.uniform(np.log10(lo), np.log10(hi), n_neg + n_pos)
    return np.concatenate([-mags[:n_neg], mags[n_neg:]])


@pytest.mark.parametrize("scale, scales", [("log", (1.0, 1e3)), ("linear", (1.0, 1.5))])
def test_each_panel_integrates_to_its_share_of_the_spectrum(monkeypatch, scale, scales):
    rng = np.random.default_rng(0)
    # 90 of 300 eigenvalues negative for the first model, 30 of 300 for the second; enough
    # of them that the KDE's tails beyond the plotted range are negligible
    spectra = {"a": _spectrum(rng, 90, 210, 2 * scales[0], 20 * scales[0]),
               "b": _spectrum(rng, 30, 270, 2 * scales[1], 20 * scales[1])}
    figs = _capture(monkeypatch)
    plots.spectrum_figure(spectra, "unused", scale=scale)
    axn, axp = figs[0].axes
    assert axp.get_xscale() == scale
    curves = [ln for ln in axn.lines + axp.lines if ln.get_linestyle() == "-"]
    got = [np.trapezoid(ln.get_ydata(), np.log10(ln.get_xdata()) if scale == "log"
                        else ln.get_xdata()) for ln in curves]
    # negative panel: a, b; positive panel: a, b
    np.testing.assert_allclose(got, [0.3, 0.1, 0.7, 0.9], atol=0.02)


def test_auto_scale_picks_log_for_the_alternet_like_case(monkeypatch):
    figs = _capture(monkeypatch)
    plots.spectrum_figure({"vit": np.array([-1.0, 50.0, 180.0]),
                           "alternet": np.array([-3e4, 5e3, 4.7e4])}, "unused")
    assert figs[0].axes[1].get_xscale() == "log"
    assert figs[0].axes[0].xaxis_inverted()
    with pytest.raises(ValueError, match="auto, linear or log"):
        plots.spectrum_figure({"vit": np.array([1.0])}, "unused", scale="symlog")


def test_a_full_disk_leaves_no_partial_figure_or_result_and_one_line_exit_2(tmp_path,
                                                                            monkeypatch, capsys):
    """os.replace raising ENOSPC (a full disk): the previous figure and JSON stay as they
    were, no temporary file is left, and a study's error is one line with exit code 2
    naming the file."""
    import errno
    import os

    from vitprobe import results
    from vitprobe.studies import cli

    fig, _ = plots.plt.subplots()
    first = plots.save(fig, tmp_path / "f")
    before = first[0].read_bytes()
    results.save_json(tmp_path / "r.json", {"a": 1})

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    fig, ax = plots.plt.subplots()
    ax.plot([0, 1], [1, 0])
    with pytest.raises(OSError, match="No space left"):
        plots.save(fig, tmp_path / "f")
    with pytest.raises(OSError) as e:
        results.save_json(tmp_path / "r.json", {"a": 2})
    assert e.value.filename == str(tmp_path / "r.json")
    assert first[0].read_bytes() == before and results.load_json(tmp_path / "r.json") == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png", "r.json"]

    def study(argv):
        results.save_json(tmp_path / "out.json", {})

    with pytest.raises(SystemExit) as exit_:
        cli.run(study, [])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error writing {tmp_path / 'out.json'}: No space left on device"]


def test_the_same_figure_saves_the_same_bytes(tmp_path):
    """A redrawn gallery changes a file only where its numbers changed: no creation date."""
    def draw(name):
        fig, ax = plots.plt.subplots()
        ax.plot([0, 1, 2], [1, 0, 3])
        return plots.save(fig, tmp_path / name)

    (png1, pdf1), (png2, pdf2) = draw("a"), draw("b")
    assert b"/CreationDate" not in pdf1.read_bytes()
    assert pdf1.read_bytes() == pdf2.read_bytes() and png1.read_bytes() == png2.read_bytes()
