"""The reproduction pipeline: the AlterNet build rule on a stubbed evaluator, and
``studies.reproduce --preset smoke`` end to end (figures, ten findings with numbers, cache
reuse on a rerun)."""

import json

import pytest
import torch

from vitprobe.studies import alternet, findings, reproduce, seedplots


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
    assert reproduce.main(argv) == 0  # minutes on the 2-core CPU; not timed here
    expected = [png for step in reproduce.plan("smoke") for png, _ in step.figures]
    assert len(expected) >= 10
    # one smoke epoch leaves two checkpoints: no trajectory to draw, and no empty panel
    expected.remove("trajectory.png")
    assert not (figs / "trajectory.png").exists()
    seed_figures = [f"{stem}.png" for stem, _, _ in seedplots.FIGURES]
    for png in [*expected, "findings_seeds.png", "alternet_seeds.png", *seed_figures]:
        assert (figs / png).stat().st_size > 1000, png
    saved = json.loads((figs / "findings.json").read_text())
    assert saved["results"] == json.loads((out / "findings.json").read_text())["results"]
    assert saved["provenance"]["git_commit"] and saved["provenance"]["code"]
    rows = saved["results"]["findings"]
    assert saved["results"]["preset"] == "smoke" and saved["results"]["seeds"] == [0]
    assert [r["id"] for r in rows] == [f"F{i}" for i in range(1, 11)]
    assert saved["results"]["verdicts"] is False  # smoke: a pipeline check
    for r in rows:
        for key in ("id", "claim", "statistic", "boundary", "seeds", "per_seed", "interval",
                    "within_seed_se", "between_seed_sd", "converged", "verdict", "parts"):
            assert key in r, (r["id"], key)
        # one smoke epoch: no model passes the convergence check (F7 may have no part left:
        # every smoke noise level saturates)
        assert r["converged"] is False or not r["parts"], r
        assert r["verdict"] in ("not converged", "unresolved", "needs larger maps"), r
        for part in [r, *r["parts"]] if r["per_seed"] is not None else r["parts"]:
            assert part["seeds"] == [0] and len(part["per_seed"]) == 1
            assert part["interval"] == [None, None]  # one seed: no t interval
    readme = (figs / "README.md").read_text()
    assert all(png in readme for png in expected) and "| F10 |" in readme
    assert readme.count("pipeline check — no verdicts") == 10
    ran_on = json.loads((out / "hessian-s0" / "done.json").read_text())["ran_on"]
    assert ran_on["torch"] == torch.__version__ and ran_on["code"]
    assert f"Preset `smoke`, seeds 0; computed at commit {ran_on['git_commit'][:12]}" in readme
    assert findings.RULE in readme
    # the landscape grids for other tools: ParaView's VTK and an NPZ of coordinates and loss
    import numpy as np

    assert (out / "landscape" / "landscape_resnet-18.vtk").read_text().startswith("# vtk")
    grids = np.load(out / "landscape" / "landscape.npz")
    assert grids["vit-ti/loss"].shape == (3, 3) and grids["vit-ti/alpha"].shape == (3,)

    # a rerun trains nothing: one study is redone from the cache, the others are skipped
    import vitprobe.studies.cache

    def no_training(*a, **k):
        raise AssertionError("a rerun must not train")

    monkeypatch.setattr(vitprobe.studies.cache, "fit", no_training)
    (out / "fourier-s0" / "done.json").unlink()
    before = (out / "hessian-s0" / "hessian.json").stat().st_mtime_ns
    assert reproduce.main(argv) == 0
    assert (out / "fourier-s0" / "done.json").is_file()
    assert (out / "hessian-s0" / "hessian.json").stat().st_mtime_ns == before

    # results of other code are not mixed into one gallery unless asked
    marker = out / "variance-s0" / "done.json"
    m = json.loads(marker.read_text())
    m["ran_on"]["code"] = "0123456789abcdef"
    marker.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="computed by different code .*--allow-mixed"):
        reproduce.main([*argv, "--report-only"])
    assert reproduce.main([*argv, "--report-only", "--allow-mixed"]) == 0
    assert "MIXED CODE" in (figs / "README.md").read_text()


def test_reproduce_rejects_an_unknown_preset(capsys):
    with pytest.raises(SystemExit) as e:
        reproduce.main(["--preset", "huge"])
    assert e.value.code == 2


def test_plan_runs_every_study_behind_a_finding_once_per_seed():
    from vitprobe.studies.reproduce import PER_SEED, SEEDS, plan

    assert len(SEEDS["small"]) >= 3 and SEEDS["smoke"] == (0,)
    for preset in ("smoke", "quick", "small", "paper"):
        steps = plan(preset, SEEDS[preset])
        names = [st.name for st in steps]
        assert len(names) == len(set(names))
        for k in SEEDS[preset]:
            assert {st.name for st in steps if st.seed == k and st.name.endswith(f"-s{k}")} \
                == {f"{s}-s{k}" for s in PER_SEED}
        config = steps[0].config({"preset": preset}, tmp := __import__("pathlib").Path("o"))
        assert (config.seed, config.out, config.preset) == (0, str(tmp / "hessian-s0"), preset)
        assert f"--out {tmp / 'hessian-s0'} --runs-dir runs" in config.command()
    # the small preset compares its -mini members, the pre-activation ResNet among them
    hess = plan("small", (1,))[0]
    assert hess.seed == 1 and "preresnet-18-mini" in dict(hess.options)["model"] and \
        "vit-mini@gap" in dict(hess.options)["model"]
    # one seed at a time: the figure-only studies run with the first seed only
    assert [st.name for st in plan("small", (2,))] == [f"{s}-s2" for s in PER_SEED]


def test_seeds_parse_as_lists_and_ranges():
    import argparse

    from vitprobe.studies.reproduce import parse_seeds

    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("3,1,3") == (3, 1)
    for bad in ("", "a", "-1", "1-x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_seeds(bad)


def test_a_search_candidate_is_the_run_that_model_args_msa_names():
    from dataclasses import replace

    from vitprobe.studies.config import StudyConfig
    from vitprobe.studies.runspec import RunSpec

    base = RunSpec.from_config(StudyConfig.parse(["--model-args", "heads=(1,1,1,1)"]),
                             "alternet-18", "cpu")
    by_flag = RunSpec.from_config(StudyConfig.parse(["--model-args",
                                                   "heads=(1,1,1,1),msa=(0, 0, 1, 1)"]),
                                "alternet-18", "cpu")
    candidate = replace(base, overrides={**base.overrides, "msa": (0, 0, 1, 1)})
    assert candidate.run_name == by_flag.run_name
    assert candidate.model_kwargs() == by_flag.model_kwargs()
    assert "msa" not in base.overrides  # the base spec is not changed by its candidates
