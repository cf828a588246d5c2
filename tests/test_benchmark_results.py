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
        assert "add_device(p)" in text, name
    assert {"eigsh_overhead", "hessian_scale", "hessian_vs_pyhessian"} <= set(heads)
    # the PyHessian headline: equal residual, the worst over models and PyHessian tols
    rows = [{"model": "a", "what": "top-5, PyHessian tol 1e-03", "speed-up": 4.0,
             "equal-residual speed-up": 30.0},
            {"model": "a", "what": "top-5, PyHessian tol 1e-05", "speed-up": 12.0,
             "equal-residual speed-up": 13.5},
            {"model": "b", "what": "top-5, PyHessian tol 1e-05", "speed-up": 9.0,
             "equal-residual speed-up": 11.0},
            {"model": "b", "what": "trace at 30 HVPs, RMS error"}]
    assert heads["hessian_vs_pyhessian"].value(rows) == 11.0


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
