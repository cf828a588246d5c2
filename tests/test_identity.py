"""The identities that follow the numbers (vitprobe.identity): a comment or docstring changes
none, a constant of a training module changes the training identity only, one of a probe
module the probe identity only; the training identity is pinned by the committed records;
every module a study imports is declared computing or not."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vitprobe import identity

ROOT = Path(__file__).resolve().parent.parent
PIN = ROOT / "figures" / "records" / "small" / "identity.json"


def test_normalized_source_ignores_comments_blank_lines_and_docstrings_only():
    a = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    b = 'def f(x):\n    """Another doc,\n    two lines."""\n\n    # a comment\n    return x + 1\n'
    c = 'def f(x):\n    """Doc."""\n    return x + 2\n'
    d = 'def f(x):\n    y = "text"\n    return x + 1\n'  # a string that is not a docstring
    assert identity.normalized_source(a) == identity.normalized_source(b)
    assert identity.normalized_source(a) != identity.normalized_source(c)
    assert '"text"' in identity.normalized_source(d)


@pytest.fixture
def package_copy(tmp_path):
    copy = tmp_path / "vitprobe"
    shutil.copytree(identity.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _ids(root):
    return (identity.digest(identity.TRAINING_MODULES, root=root),
            identity.digest(identity.PROBE_MODULES, root=root))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_a_training_constant_changes_the_training_identity_only(package_copy):
    before = _ids(package_copy)
    _edit(package_copy / "studies" / "presets.py", "weight_decay=0.05, warmup_epochs=0.1",
          "weight_decay=0.04, warmup_epochs=0.1")
    after = _ids(package_copy)
    assert after[0] != before[0] and after[1] == before[1]


def test_a_probe_constant_changes_the_probe_identity_only(package_copy):
    before = _ids(package_copy)
    path = package_copy / "fourier.py"
    _edit(path, "f.abs() + 1e-6", "f.abs() + 1e-5")
    after = _ids(package_copy)
    assert after[0] == before[0] and after[1] != before[1]


def test_comments_and_docstrings_change_no_identity(package_copy):
    before = _ids(package_copy)
    path = package_copy / "train" / "loop.py"
    text = path.read_text()
    path.write_text(text.replace('"""The training loop', '"""A reworded training loop', 1)
                    + "\n# a closing comment\n")
    assert _ids(package_copy) == before


def test_the_training_identity_is_pinned_by_the_committed_records():
    """A training-code change is a conscious act: retrain the committed seeds (or show, in
    two clean environments, that both commits give the same numbers), then update the pin."""
    pinned = json.loads(PIN.read_text())["training"]
    now = identity.digest(identity.TRAINING_MODULES, identity.TRAINING_LIBRARIES)
    assert now == pinned, (
        f"the training code's identity is {now}, the committed records' {pinned}: the "
        f"models in figures/records/small were trained by other code. Revert the change to "
        f"{', '.join(identity.TRAINING_MODULES)}, or retrain and update {PIN}")


def test_the_declared_lists_are_disjoint_and_name_existing_modules():
    lists = [identity.TRAINING_MODULES, identity.PROBE_MODULES, identity.FINDINGS_MODULES,
             identity.NON_COMPUTING]
    names = [n for names in lists for n in names]
    assert len(names) == len(set(names))
    for name in names:
        assert identity.module_file(name).is_file(), name


def test_every_module_a_study_imports_is_declared():
    """Import every study and the command line in a fresh interpreter: each project module
    loaded is in a computing list or the non-computing one (a new module must be declared)."""
    code = ("import pkgutil, sys, importlib, vitprobe.studies as s\n"
            "for m in pkgutil.iter_modules(s.__path__):\n"
            "    importlib.import_module('vitprobe.studies.' + m.name)\n"
            "print('\\n'.join(sorted(n for n in sys.modules if n == 'vitprobe' or "
            "n.startswith('vitprobe.'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = set(r.stdout.split())
    assert "vitprobe.studies.hessian" in loaded and "vitprobe.train.loop" in loaded
    assert sorted(loaded - identity.classified()) == []


def test_identities_are_fixed_when_first_asked(monkeypatch):
    first = identity.identities()
    monkeypatch.setattr(identity, "digest", lambda *a, **k: "changed")
    assert identity.identities() == first
