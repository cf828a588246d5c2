"""The code's fingerprint, importable without torch (the CLI's cached help reads it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

# the packages whose code computes a result: models, probes, studies
CODE_PACKAGES = ("models", "vitprobe", "studies")


def code_identity() -> str:
    """A fingerprint of the code that computes results: SHA-256 over the path and bytes of
    every ``.py`` file of ``CODE_PACKAGES``. Two results with the same identity were computed
    by the same code, whatever the commit (a commit that changes only text keeps it)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in CODE_PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f"{f.relative_to(root).as_posix()}\n".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
