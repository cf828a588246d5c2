"""benchmarks/render.py: RESULTS.md holds the latest run of each benchmark per machine."""

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_results_md_keeps_the_latest_run_per_benchmark_and_machine(tmp_path):
    render = load("render")

    def run(bench, cpu, created, value):
        return {"benchmark": bench, "summary": "", "rows": [{"model": "vit-ti", "x": value}],
                "config": {}, "machine": {"cpu": cpu, "cores": 2, "torch_threads": 2,
                                          "gpu": None},
                "provenance": {"created": created, "command": f"python {bench}.py",
                               "torch": "2.14.1", "git_commit": "abc"}}

    for i, r in enumerate([run("hvp", "A", "2026-01-01T00:00:00", 1.0),
                           run("hvp", "A", "2026-01-02T00:00:00", 2.0),
                           run("hvp", "B", "2026-01-01T00:00:00", 3.0)]):
        (tmp_path / f"{i}.json").write_text(json.dumps(r))
    runs = render.latest_runs(tmp_path)
    assert [(r["machine"]["cpu"], r["rows"][0]["x"]) for r in runs] == [("A", 2.0), ("B", 3.0)]
    text = render.render(runs)
    assert "| vit-ti | 2 |" in text and "| vit-ti | 1 |" not in text and "| vit-ti | 3 |" in text


def test_record_writes_rows_machine_and_provenance(tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(BENCH))
    common = load("common")
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    path = common.record("demo", [{"a": 1}], {"k": 2}, "s")
    saved = json.loads(path.read_text())
    assert saved["rows"] == [{"a": 1}] and saved["config"] == {"k": 2}
    assert saved["machine"]["cores"] >= 1 and "git_commit" in saved["provenance"]
