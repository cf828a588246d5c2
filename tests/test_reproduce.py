"""The reproduction pipeline: the AlterNet build rule on a stubbed evaluator, and
``studies.reproduce --preset smoke`` end to end (figures, ten findings with numbers, cache
reuse on a rerun)."""

import json
import re

import pytest
import torch

from studies import alternet, reproduce


def test_alternet_search_visits_the_papers_order_and_stops_when_accuracy_stops_improving():
    acc = {(0, 0, 0, 0): 0.70,
           (0, 0, 0, 1): 0.72,   # last stage: first MSA helps, kept
           (0, 0, 0, 2): 0.71,   # a second one does not -> move to stage 3
           (0, 0, 1, 1): 0.74,   # kept
           (0, 0, 2, 1): 0.75,   # kept
           (0, 0, 3, 1): 0.75,   # equal is not better -> move to stage 2
           (0, 1, 2, 1): 0.73,   # worse -> move to stage 1
           (1, 0, 2, 1): 0.60}   # worse -> stages exhausted
    calls = []

    def evaluate(msa):
        calls.append(msa)
        return acc[msa]

    found = alternet.search(evaluate, layers=(3, 4, 6, 4))
    assert calls == list(acc)
    assert [v["kept"] for v in found["visited"]] == [True, True, False, True, True, False,
                                                      False, False]
    assert found["chosen"] == (0, 0, 2, 1) and found["accuracy"] == 0.75


def test_alternet_search_respects_the_stage_capacity_and_first_stage():
    calls = []

    def always_better(msa):
        calls.append(msa)
        return sum(msa)

    found = alternet.search(always_better, layers=(2, 2, 2, 2), first_stage=1)
    # two blocks per stage hold one [Conv, MSA] pair; stage 0 is never touched
    assert calls == [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 1, 1, 1)]
    assert found["chosen"] == (0, 1, 1, 1)


def test_reproduce_smoke_end_to_end_and_a_rerun_reuses_the_cache(tmp_path, monkeypatch):
    out, figs, runs = tmp_path / "out", tmp_path / "figures", tmp_path / "runs"
    argv = ["--preset", "smoke", "--out", str(out), "--figures-dir", str(figs),
            "--runs-dir", str(runs), "--quiet"]
    assert reproduce.main(argv) == 0  # ~1 min on the 2-core CPU (README); not timed here
    expected = [png for step in reproduce.plan("smoke") for png, _ in step.figures]
    assert len(expected) >= 14
    for png in expected:
        assert (figs / png).stat().st_size > 1000, png
    saved = json.loads((out / "findings.json").read_text())["results"]
    rows = saved["findings"]
    assert [r["id"] for r in rows] == [f"F{i}" for i in range(1, 11)]
    assert saved["verdicts"] is False  # smoke: a pipeline check
    for r in rows:
        assert r["verdict"] in ("holds", "contradicted", "unresolved")
        assert r["parts"] or "saturated" in r["note"], r
        for part in r["parts"]:
            iv = part["interval"]
            assert iv["low"] <= iv["high"] and iv["n"] >= 1, part
            assert re.search(r"\[[-+0-9.einf]+, [-+0-9.einf]+\]", part["text"]), part
    assert len(rows[0]["parts"]) == 1 and rows[5]["parts"][0]["interval"]["method"] == "bootstrap"
    readme = (figs / "README.md").read_text()
    assert all(png in readme for png in expected) and "| F10 |" in readme
    assert readme.count("pipeline check — no verdicts") == 10
    # where the studies ran, read off their done-markers
    ran_on = json.loads((out / "hessian" / "done.json").read_text())["ran_on"]
    assert ran_on["device"].startswith("CPU (") and ran_on["torch"] == torch.__version__
    assert f"The studies ran on: {ran_on['device']}, torch {torch.__version__}" in readme
    # one entry per commit, naming the studies it ran (every study here ran at one commit)
    assert f"commit {ran_on['git_commit'][:12]} (hessian, alternet, " in readme
    # the landscape grids for other tools: ParaView's VTK and an NPZ of coordinates and loss
    import numpy as np

    assert (out / "landscape" / "landscape_resnet-18.vtk").read_text().startswith("# vtk")
    grids = np.load(out / "landscape" / "landscape.npz")
    assert grids["vit-ti/loss"].shape == (3, 3) and grids["vit-ti/alpha"].shape == (3,)

    # a rerun trains nothing: one study is redone from the cache, the others are skipped
    import studies.cache

    def no_training(*a, **k):
        raise AssertionError("a rerun must not train")

    monkeypatch.setattr(studies.cache, "fit", no_training)
    (out / "fourier" / "done.json").unlink()
    before = (out / "hessian" / "hessian.json").stat().st_mtime_ns
    assert reproduce.main(argv) == 0
    assert (out / "fourier" / "done.json").is_file()
    assert (out / "hessian" / "hessian.json").stat().st_mtime_ns == before


def test_reproduce_rejects_an_unknown_preset(capsys):
    with pytest.raises(SystemExit) as e:
        reproduce.main(["--preset", "huge"])
    assert e.value.code == 2


def test_plan_repeats_the_seeded_studies_once_per_extra_seed_after_the_findings_ones():
    from studies.reproduce import SEEDS, plan

    for preset in ("smoke", "quick", "paper"):
        names = [st.name for st in plan(preset)]
        assert len(names) == len(set(names))
        repeats = [n for n in names if n.rsplit("-s", 1)[-1].isdigit()]
        assert repeats == [f"{s}-s{k}" for k in range(1, SEEDS[preset])
                           for s in ("hessian", "alternet")]
        # the other seeds after every study a finding reads, before the figure-only ones
        assert names[len(names) - len(repeats) - 2:] == [*repeats, "pooling",
                                                          "alternet_search"]
    assert SEEDS["quick"] >= 2 and SEEDS["smoke"] == 1


def test_a_search_candidate_is_the_run_that_model_args_msa_names():
    from dataclasses import replace

    from studies import cli
    from studies.cache import RunSpec

    p = cli.base_parser("x", "")
    base = RunSpec.from_args(p.parse_args(["--model-args", "heads=(1,1,1,1)"]), "alternet-18",
                             "cpu")
    by_flag = RunSpec.from_args(
        p.parse_args(["--model-args", "heads=(1,1,1,1),msa=(0, 0, 1, 1)"]), "alternet-18", "cpu")
    candidate = replace(base, overrides={**base.overrides, "msa": (0, 0, 1, 1)})
    assert candidate.run_name == by_flag.run_name
    assert candidate.model_kwargs() == by_flag.model_kwargs()
    assert "msa" not in base.overrides  # the base spec is not changed by its candidates
