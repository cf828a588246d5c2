"""The README's Python blocks run as written, in order, in one namespace."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run_as_written(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "(5, 5)" in out
    # the density integrates to one over its grid (the README says so)
    import numpy as np

    assert np.trapezoid(namespace["phi"], namespace["grid"]) == \
        __import__("pytest").approx(1.0, abs=1e-3)
    assert 0.0 <= namespace["s"].nep() <= 1.0


def test_readme_is_a_guide_of_at_most_12_kb():
    text = README.read_text()
    assert len(text.encode()) <= 12_000
    assert not re.search(r"20\d\d-\d\d-\d\d", text)  # no dates: numbers live in results


def test_the_citation_file_and_the_glossary_are_there_and_well_formed():
    import yaml

    root = README.parent
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors", "license"} <= set(cff)
    glossary = (root / "docs" / "GLOSSARY.md").read_text()
    for term in ("NEP", "APE", "ΔlogAmplitude", "deletion AUC", "standard error",
                 "feature-map variance", "loss at centre"):
        assert f"**{term}" in glossary, term
    assert "docs/GLOSSARY.md" in README.read_text()


def test_the_api_reference_builds_from_the_docstrings(tmp_path):
    """make docs: pdoc renders every public module; a broken docstring or annotation is a
    warning here, and a failure."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pdoc", "-o", str(tmp_path), "vitprobe"],
                       capture_output=True, text=True, timeout=600,
                       cwd=README.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Warn" not in r.stderr, r.stderr[-2000:]
    for page in ("vitprobe/hessian.html", "vitprobe/solvers.html", "vitprobe/train.html",
                 "vitprobe/studies/config.html", "vitprobe/studies/hessian.html",
                 "vitprobe/models.html"):
        assert (tmp_path / page).is_file(), page
