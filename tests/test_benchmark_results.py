"""benchmarks: a package run as ``python -m benchmarks.<name>``; RESULTS.md holds one
headline row per benchmark and machine, from the latest record."""

import json
import re
from pathlib import Path

import pytest

from benchmarks import BENCHMARKS, common, render

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run(bench, cpu, created, value):
    return {"benchmark": bench, "summary": "", "rows": [{"model": "vit-ti", "ratio": value}],
            "config": {}, "machine": {"cpu": cpu, "cores": 2, "torch_threads": 2, "gpu": None},
            "provenance": {"created": created, "command": f"python -m benchmarks.{bench}",
                           "torch": "2.14.1", "git_commit": "abc"}}


def test_results_md_shows_the_latest_record_per_benchmark_and_machine(tmp_path):
    for i, r in enumerate([run("train_throughput", "A", "2026-01-01T00:00:00", 0.5),
                           run("train_throughput", "A", "2026-01-02T00:00:00", 2.0),
                           run("train_throughput", "B", "2026-01-01T00:00:00", 0.9)]):
        (tmp_path / f"{i}.json").write_text(json.dumps(r))
    runs = render.latest_runs(tmp_path)
    assert [(r["machine"]["cpu"], r["rows"][0]["ratio"]) for r in runs] == [("A", 2.0),
                                                                           ("B", 0.9)]
    assert [p.name for p in render.superseded(tmp_path)] == ["0.json"]
    rows = [line for line in render.render(runs).splitlines()
            if line.startswith("| train_throughput")]
    # one row each, the headline (the worst ratio) against the declared goal >= 0.95
    assert len(rows) == 2
    assert "| ≥ 0.95× | 2× | yes | A, 2 threads | [2026-01-02, abc](results/1.json) |" in rows[0]
    assert "| 0.9× | **no** |" in rows[1]


def test_every_benchmark_declares_a_headline_and_takes_device():
    heads = render.headlines()
    for name in BENCHMARKS:
        text = (BENCH / f"{name}.py").read_text()
        assert "sys.path" not in text and f"python -m benchmarks.{name}" in text
        assert "add_device(p)" in text or "NO_DEVICE = True" in text, name
    assert {"eigsh_overhead", "hessian_scale", "hessian_vs_peers",
            "trace_vs_pyhessian"} <= set(heads)


def test_reference_cost_is_the_product_of_its_three_factors():
    from benchmarks import hessian_vs_peers as hp

    # 3 solves of 44 HVPs in all, 30 s of which 26.4 s inside the HVPs, gradient 0.2 s:
    # reference 3 x 11 x 2 x 0.2 = 13.2 s -> 30 / 13.2
    f = hp.factors(30.0, 44, 26.4, 0.2, calls=3)
    assert hp.GUARD == 11 and hp.REFERENCE_GRADIENTS == 22
    assert f["HVP count / (2k+1)"] == pytest.approx(44 / 33)
    assert f["HVP / gradient / 2"] == pytest.approx(0.6 / 0.2 / 2)  # 26.4 s / 44 = 0.6 s
    assert f["solver overhead"] == pytest.approx(30 / 26.4)
    assert f["ours / reference cost"] == pytest.approx(30 / 13.2)
    assert f["ours / reference cost"] == pytest.approx(
        f["HVP count / (2k+1)"] * f["HVP / gradient / 2"] * f["solver overhead"])
    rows = [{"model": "a", **f}, {"model": "b", **hp.factors(11.0, 11, 10.0, 0.25)},
            {"model": "a", "what": "reference top-5"}]
    assert render.headlines()["hessian_vs_peers"].value(rows) == pytest.approx(30 / 13.2)


def test_equal_accuracy_matches_eigenvalues_by_magnitude_and_takes_the_loosest_setting():
    from benchmarks import hessian_vs_peers as hp

    ref = [100.0, -50.0, 20.0]
    # the same values in another order (signs kept) agree exactly
    assert hp.disagreement([20.0, 100.0, -50.0], ref) == 0.0
    # |20.002 - 20| / 20 = 1e-4; a missing value or a sign flip does not agree
    assert hp.disagreement([100.0, -50.0, 20.002], ref) == pytest.approx(1e-4)
    assert hp.disagreement([100.0, -50.0], ref) == float("inf")
    assert hp.disagreement([100.0, 50.0, 20.0], ref) == pytest.approx(2.0)
    answers = {0.1: [100.0, -50.0, 19.0], 1e-2: [100.0, -50.0, 20.001], 1e-3: ref}
    called = []

    def solve(setting):
        called.append(setting)
        return {"eigenvalues": answers[setting]}

    hit, tried = hp.loosest([0.1, 1e-2, 1e-3], solve, ref, 1e-4)
    assert hit["setting"] == 1e-2 and called == [0.1, 1e-2]
    assert hit["disagreement"] == pytest.approx(5e-5)
    assert [t["disagreement"] for t in tried] == pytest.approx([0.05, 5e-5])
    miss, tried = hp.loosest([0.1], solve, ref, 1e-4)
    assert miss is None and len(tried) == 1


def test_results_md_shows_the_factors_and_the_peers_rows(tmp_path):
    from benchmarks import hessian_vs_peers as hp

    rows = [{"model": "vit-ti", "what": "reference cost", **hp.factors(11.0, 16, 10.0, 0.3)},
            {"model": "vit-ti", "what": "reference top-5", "second solver": "x",
             "two references disagree by": 1e-9,
             "operators": {"asymmetry": {"ours": 2e-16, "curvlinops": 0.1},
                           "curvlinops vs ours": 4e-3}},
            {"model": "vit-ti", "what": "equal accuracy", "solver": "ours", "setting": 1e-2,
             "seconds": 4.0, "max residual": 7e-3, "disagreement": 8e-5},
            {"model": "vit-ti", "what": "equal accuracy", "solver": "curvlinops",
             "setting": 0.1, "seconds": 10.0, "peer / ours": 2.5, "max residual": 7e-3,
             "disagreement": 4e-5},
            {"model": "vit-ti", "what": "equal accuracy", "solver": "pyhessian",
             "seconds": None, "tightest": 1e-7, "disagreement": 3e-4},
            {"model": "vit-ti", "what": "equal residual, PyHessian tol 0.001",
             "PyHessian s": 36.0, "PyHessian max residual": 0.16, "ours tol": 0.16,
             "ours s": 4.5, "ours max residual": 0.097, "equal-residual speed-up": 8.0}]
    (tmp_path / "r.json").write_text(json.dumps({**run("hessian_vs_peers", "A",
                                                       "2026-01-01T00:00:00", 0),
                                                 "rows": rows}))
    text = render.render(render.latest_runs(tmp_path))
    # 11 s / (22 x 0.3 s) = 1.667: met against <= 2
    assert "| 1.667× | yes |" in text
    assert "| vit-ti | 1.67× | 1.45 | 1.04 | 1.10 |" in text
    assert "| vit-ti | curvlinops | 0.1 | 10.0 | 2.5× | 7.0e-03 | 4.0e-05 |" in text
    assert "| vit-ti | pyhessian | not reached (tightest 1e-07) | — | — | — | 3.0e-04 |" in text
    assert "| vit-ti | x | 1.0e-09 | 2.0e-16 | 1.0e-01 | 4.0e-03 |" in text
    # PyHessian at its tol 1e-3 against ours asked for the residual PyHessian reached
    assert "| vit-ti | 0.001 | 36.0 | 1.6e-01 | 4.5 | 9.7e-02 | 8.0× |" in text


def test_every_record_in_results_md_exists_and_none_is_superseded():
    text = (BENCH / "RESULTS.md").read_text()
    links = re.findall(r"\]\((results/[^)]+\.json)\)", text)
    assert links and all((BENCH / link).is_file() for link in links)
    assert render.superseded(BENCH / "results") == []


def test_device_option_refuses_what_is_absent():
    import argparse

    assert str(common.parse_device("cpu")) == "cpu"
    with pytest.raises(argparse.ArgumentTypeError, match="allowed"):
        common.parse_device("tpu")


def test_record_writes_rows_machine_and_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    path = common.record("demo", [{"a": 1}], {"k": 2, "device": "cpu"}, "s")
    saved = json.loads(path.read_text())
    assert saved["rows"] == [{"a": 1}] and saved["config"] == {"k": 2, "device": "cpu"}
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["gpu"] is None
    assert "git_commit" in saved["provenance"]


def test_interleaved_timing_runs_short_calls_until_their_time_budget(monkeypatch):
    """On a fake clock where A takes 1/64 s and B 3/64 s (exact in binary): 3 rounds at
    least, then rounds until the faster one has 0.5 s in all (32 rounds), at most
    ``max_rounds``; exact medians; calls alternate."""
    from benchmarks import common

    clock, calls = [0.0], []

    def timed(name, seconds):
        def f():
            calls.append(name)
            clock[0] += seconds
        return f

    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])
    fns = {"a": timed("a", 1 / 64), "b": timed("b", 3 / 64)}
    assert common.interleaved(fns, rounds=3, warmup=1) == {"a": 1 / 64, "b": 3 / 64}
    assert calls == ["a", "b"] * 4  # one warm-up each, then 3 rounds
    calls.clear()
    common.interleaved(fns, rounds=3, warmup=0, min_seconds=0.5)
    assert calls.count("a") == calls.count("b") == 32 and calls[:4] == ["a", "b", "a", "b"]
    calls.clear()
    common.interleaved(fns, rounds=3, warmup=0, min_seconds=0.5, max_rounds=20)
    assert calls.count("a") == 20
