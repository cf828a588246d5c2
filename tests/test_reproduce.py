"""The reproduction pipeline: the AlterNet build rule on a stubbed evaluator, and
``studies.reproduce --preset smoke`` end to end (figures, ten findings with numbers, cache
reuse on a rerun)."""

import json
from pathlib import Path

import pytest
import torch

from vitprobe import results
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


def test_reproduce_smoke_end_to_end_then_from_records_alone(tmp_path, monkeypatch):
    """The smoke pipeline writes its records; a rerun trains nothing and reruns only what
    lacks a record; a report from the records alone (no runs/, no results) equals the first
    one; records of other probe code are refused until --reprobe recomputes them on the
    recorded weights; a model of other training code is refused."""
    import shutil

    import numpy as np

    from vitprobe import identity

    out, figs, runs = tmp_path / "out", tmp_path / "figures", tmp_path / "runs"
    argv = ["--preset", "smoke", "--out", str(out), "--figures-dir", str(figs),
            "--runs-dir", str(runs), "--quiet"]
    assert reproduce.main(argv) == 0  # minutes on the 2-core CPU; not timed here
    records = out / "records" / "smoke" / "seed-0"
    expected = [png for step in reproduce.plan("smoke") for png, _ in step.figures]
    assert len(expected) >= 10
    # one smoke epoch leaves two checkpoints: no trajectory to draw, and no empty panel
    expected.remove("trajectory.png")
    assert not (figs / "trajectory.png").exists()
    seed_figures = [f"{stem}.png" for stem in seedplots.FIGURES]
    for png in [*expected, "findings_seeds.png", *seed_figures]:
        assert (figs / png).stat().st_size > 1000, png
    saved = json.loads((figs / "findings.json").read_text())
    assert saved["provenance"]["git_commit"] and saved["provenance"]["identities"]
    rows = saved["results"]["findings"]
    assert saved["results"]["preset"] == "smoke" and saved["results"]["seeds"] == [0]
    assert saved["results"]["missing"] == [] and saved["results"]["identities"] == \
        identity.identities()
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
            assert part["interval"] == [None, None]  # one seed: no interval
    readme = (figs / "README.md").read_text()
    assert all(png in readme for png in expected) and "| F10 |" in readme
    assert readme.count("pipeline check — no verdicts") == 10
    ran_on = json.loads((records / "hessian" / "done.json").read_text())["ran_on"]
    assert ran_on["torch"] == torch.__version__
    assert ran_on["identities"] == identity.identities()
    now = identity.identities()
    assert f"training code {now['training']}, probe code {now['probe']}" in readme
    assert findings.RULE in readme
    # every model of the seed has its record: curve, final and early weights, checksums
    for spec in reproduce.training_specs("smoke", 0, runs_dir=str(runs)):
        rec = json.loads((records / spec.run_name / "record.json").read_text())
        assert set(rec["sha256"]) == {"config.json", "metrics.jsonl", "model.safetensors",
                                      "early.safetensors"}
        assert rec["provenance"]["identities"]["training"] == now["training"]
    # the spectra were read at the early checkpoint as well as at the end
    hess = json.loads((records / "hessian" / "hessian.json").read_text())["results"]
    assert set(hess["models"]["vit-ti [smoke]"]["spectra"]) == {"epoch 1", "final"}
    # the landscape grids for other tools: ParaView's VTK and an NPZ of coordinates and loss
    assert (out / "landscape" / "landscape_resnet-18.vtk").read_text().startswith("# vtk")
    grids = np.load(records / "landscape" / "landscape.npz")
    assert grids["vit-ti/loss"].shape == (3, 3) and grids["vit-ti/alpha"].shape == (3,)

    # a rerun trains nothing: the study whose record is gone is redone, the others skipped
    import vitprobe.studies.cache

    def no_training(*a, **k):
        raise AssertionError("a rerun must not train")

    monkeypatch.setattr(vitprobe.studies.cache, "fit", no_training)
    (records / "fourier" / "done.json").unlink()
    before = (out / "hessian-s0" / "hessian.json").stat().st_mtime_ns
    assert reproduce.main(argv) == 0
    assert (records / "fourier" / "done.json").is_file()
    assert (out / "hessian-s0" / "hessian.json").stat().st_mtime_ns == before
    first = json.loads((figs / "findings.json").read_text())["results"]["findings"]

    # the report from the records alone: another machine, no runs/, no results
    fresh = tmp_path / "fresh"
    shutil.copytree(out / "records", fresh / "records")
    alone = ["--preset", "smoke", "--records", str(fresh / "records"), "--out",
             str(fresh / "out"), "--runs-dir", str(fresh / "runs"), "--report-only", "--quiet"]
    assert reproduce.main(alone) == 0
    assert not (fresh / "runs").exists()
    again = json.loads((fresh / "out" / "figures" / "findings.json").read_text())
    assert again["results"]["findings"] == first
    # the illustrations too, attribution overlays included: every figure of the first
    # gallery, drawn from the records alone, byte for byte
    for png in expected:
        assert (fresh / "out" / "figures" / png).read_bytes() == (figs / png).read_bytes(), png
    alone_readme = (fresh / "out" / "figures" / "README.md").read_text()
    assert "attention_vit-ti.png` (`vitprobe attention" not in alone_readme

    # records of other probe code are refused, rendered with --allow-mixed, re-probed
    marker = fresh / "records" / "smoke" / "seed-0" / "variance" / "done.json"
    m = json.loads(marker.read_text())
    m["ran_on"]["identities"]["probe"] = "0123456789abcdef"
    marker.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="other code .*seed-0/variance.*--reprobe"):
        reproduce.main(alone)
    assert reproduce.main([*alone, "--allow-mixed"]) == 0
    assert "MIXED CODE" in (fresh / "out" / "figures" / "README.md").read_text()
    reprobe = [a for a in alone if a != "--report-only"] + ["--reprobe"]
    assert reproduce.main(reprobe) == 0  # restores the recorded weights, trains nothing
    assert json.loads(marker.read_text())["ran_on"]["identities"]["probe"] == now["probe"]
    assert (fresh / "runs").is_dir()
    assert reproduce.main(alone) == 0
    assert json.loads((fresh / "out" / "figures" / "findings.json").read_text())[
        "results"]["findings"] == first
    # a model trained by other training code cannot be re-probed into agreement
    spec = reproduce.training_specs("smoke", 0)[0]
    path = fresh / "records" / "smoke" / "seed-0" / spec.run_name / "record.json"
    rec = json.loads(path.read_text())
    rec["provenance"]["identities"]["training"] = "fedcba9876543210"
    path.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=f"seed-0/{spec.run_name} .training code fedcba"):
        reproduce.main(alone)


def test_a_partial_run_never_writes_the_committed_gallery():
    config = reproduce.ReproduceConfig(preset="small", seeds="0")
    assert config.gallery_dir() == Path("results/reproduce-small/figures")
    assert config.records_dir() == Path("figures/records/small")
    assert reproduce.ReproduceConfig(preset="small", figures_dir="figures").gallery_dir() == \
        Path("figures")
    with pytest.raises(ValueError, match="--report-only runs nothing"):
        reproduce.ReproduceConfig(preset="small", report_only=True, reprobe=True)


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


def test_the_pipeline_table_is_what_reproduce_findings_and_figures_read():
    """One table: every finding fed by exactly one stage, each stage's study runnable, each
    seed figure it names drawn by seedplots (and no other), the findings grouped by it."""
    from vitprobe.studies import findings, pipeline, reproduce, seedplots

    fed = [f for st in pipeline.PIPELINE for f in st.findings]
    assert sorted(fed, key=lambda f: int(f[1:])) == [f"F{i}" for i in range(1, 11)]
    assert all(st.runs in reproduce.STUDIES for st in pipeline.PIPELINE)
    assert set(pipeline.seed_figures()) == set(seedplots.FIGURES)
    assert set(findings.BUILDERS) == {st.name for st in pipeline.PIPELINE if st.findings}
    # a stage behind findings runs per seed; an illustration does not
    assert all(st.per_seed == bool(st.findings) for st in pipeline.PIPELINE)
    assert reproduce.PER_SEED == pipeline.PER_SEED
    # the small preset leaves out the build-rule search; its models follow the roster
    names = [st.name for st in reproduce.plan("small", (0,))]
    assert "alternet_search" not in names and "alternet_search" in \
        [st.name for st in reproduce.plan("quick", (0,))]
    pool = next(st for st in reproduce.plan("small", (0,)) if st.name == "pooling")
    assert dict(pool.options)["model"] == "vit-mini" and \
        pool.figures[0][1].startswith("vit-mini's loss landscapes")


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


def test_a_report_decides_over_every_seed_the_records_hold_in_full(tmp_path):
    """Without --seeds a report takes the seeds whose records hold every model and every
    per-seed study: seed 1 lacks a study and seed 3 a model, so 0 and 2 are read."""
    records = tmp_path / "records" / "small"
    common = {"data": "fashion-mnist", "data_dir": None, "runs_dir": str(tmp_path / "runs"),
              "device": "cpu", "precision": None}
    for k in (0, 1, 2, 3, 12):
        for step in reproduce.plan("small", (k,), first_seed=None):
            if (k, step.study) != (1, "robustness"):
                results.save_json(reproduce.record_dir(records, step) / "done.json", {})
        for i, spec in enumerate(reproduce.training_specs("small", k, **common)):
            if (k, i) != (3, 4):
                results.save_json(reproduce.seeds_mod.record_dir(records.parent, spec) /
                                  "record.json", {})
    (records / "seed-x").mkdir()
    assert reproduce.recorded_seeds("small", common, records) == (0, 2, 12)
    assert reproduce.recorded_seeds("small", common, tmp_path / "none" / "small") == ()
