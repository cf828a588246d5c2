"""The gallery's one-seed illustrations drawn from the committed records alone: the numbers
each figure draws against independent readings of the same records (raw JSON, the NPZ grids,
the recorded weights) and against definitions (a trajectory starts at radius 1 and ends at 0;
a cosine similarity is 1 on its diagonal)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from vitprobe import spectra
from vitprobe.studies import illustrations, pipeline, presets
from vitprobe.studies.findings import Context

RECORDS = Path(__file__).resolve().parent.parent / "figures" / "records" / "small"
SEED0 = RECORDS / "seed-0"
pytestmark = pytest.mark.skipif(not (SEED0 / "landscape" / "done.json").is_file(),
                                reason="the committed small-preset records are not here")


def raw(study: str, file: str | None = None) -> dict:
    return json.loads((SEED0 / study / (file or f"{study}.json")).read_text())


def context() -> Context:
    return Context(RECORDS, (0,), "small")


def test_hessian_illustration_draws_the_recorded_eigenvalues_final_and_early():
    data = illustrations.hessian_data(SEED0 / "hessian")
    models = raw("hessian")["results"]["models"]
    assert len(data) == sum(len(m["spectra"]) for m in models.values())
    for label, rec in models.items():
        batches = presets.recipe("small", label.split(" ")[0]).hessian_batches
        shown = "vit-mini (cls)" if label == "vit-mini" else label
        for at, s in rec["spectra"].items():
            e = data[f"{shown}, {at}"]
            assert e.shape == (batches, 5)  # top-5 per mini-batch
            assert np.array_equal(e, np.asarray(s["eigenvalues"], dtype=float))
            assert spectra.nep(e) == pytest.approx(s["nep"], abs=0)


def test_landscape_illustration_equals_the_npz_grids_and_the_trajectory_its_definition():
    data = illustrations.landscape_data(SEED0 / "landscape")
    grids = np.load(SEED0 / "landscape" / "landscape.npz")
    assert list(data) == ["vit-mini (cls)", "resnet-18-mini"]
    for shown, name in zip(data, ("vit-mini", "resnet-18-mini")):
        surface = data[shown]["surface"]
        assert np.array_equal(surface.loss, grids[f"{name}/loss"])
        assert np.array_equal(surface.coords[0], grids[f"{name}/alpha"])
        assert np.array_equal(surface.coords[1], grids[f"{name}/beta"])
        assert data[shown]["slice"].loss.ndim == 1
    for t in illustrations.trajectory_data(SEED0 / "landscape").values():
        # r_t = |θ_t − θ*| / |θ_0 − θ*|: 1 at initialisation, 0 at the final model
        assert t.radius[0] == pytest.approx(1.0, abs=1e-12) and t.radius[-1] == 0.0
        assert t.angle[0] == pytest.approx(0.0, abs=1e-6) and t.pca_coords.shape[1] == 2


def test_position_illustration_is_the_cosine_similarity_of_the_recorded_embedding():
    sim = illustrations.position_data(SEED0 / "attention", context())
    pe = load_file(SEED0 / "vit-mini-small-s0" / "model.safetensors")["pos_embed"][0]
    h = w = 7  # 28-px images in 4-px patches
    p = pe[-h * w:].astype(np.float64)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    assert sim.shape == (h, w, h, w)
    assert np.allclose(sim.reshape(h * w, h * w), p @ p.T, atol=1e-12)
    assert np.allclose(np.diagonal(sim.reshape(h * w, h * w)), 1.0, atol=1e-12)


def test_the_overlay_illustration_draws_the_recorded_images_and_patch_maps():
    rec = raw("attention")["results"]["vit-mini"]["overlay"]
    images = np.asarray(rec["images"])
    assert images.shape == (4, 1, 28, 28) and len(rec["rows"]) == 4
    assert set(rec["maps"]) == {"rollout", "integrated gradients", "occlusion"}
    for m in rec["maps"].values():
        assert np.asarray(m).shape == (4, 7, 7)  # one value per 4-px patch
    # rollout: the class token's row of a product of row-stochastic matrices, read on the
    # patches: non-negative, summing to at most 1 per image (the rest is on the class token)
    r = np.asarray(rec["maps"]["rollout"])
    assert (r >= 0).all() and (r.sum((1, 2)) <= 1 + 1e-6).all()


def test_fourier_pooling_and_subsets_illustrations_read_their_records():
    taps = illustrations.fourier_data(SEED0 / "fourier")["vit-mini (cls)"]
    for t in taps:  # the highest frequency's ΔlogAmp is the profile's last point
        assert t.highest == t.delta_log_amplitude[-1]
        assert t.highest_frequency == t.frequencies[-1]
    surfaces, spec = illustrations.pooling_data(SEED0 / "pooling")
    rows = {f"vit-mini ({r['pool']})": r for r in raw("pooling")["results"]}
    assert list(spec) == list(surfaces) == ["vit-mini (cls)", "vit-mini (gap)"]
    for label, e in spec.items():
        assert spectra.nep(e) == pytest.approx(rows[label]["nep"], abs=0)
        assert float(np.nanmax(surfaces[label]["surface"].loss)) == \
            pytest.approx(rows[label]["landscape_max"], rel=1e-12)
    fractions = illustrations.subsets_data(SEED0 / "subsets")
    assert list(fractions) == ["vit-mini, 0.06", "vit-mini, 1"]  # resnet's spectra not taken


def test_every_illustration_of_the_pipeline_draws_from_seed_0_or_says_why_not(tmp_path):
    c = context()
    drawn, undrawn = [], []
    for st in pipeline.PIPELINE:
        if "small" in st.not_at:
            continue
        for template, _ in st.figures:
            png = template.format(**c.roster)
            path = illustrations.draw(png, SEED0 / st.name, tmp_path, c)
            (drawn if path else undrawn).append(png)
            if path:
                assert path.stat().st_size > 10_000 and path.with_suffix(".pdf").is_file()
    assert undrawn == [] and len(drawn) == 10
    assert illustrations.draw("hessian.png", tmp_path / "none", tmp_path, c) is None
