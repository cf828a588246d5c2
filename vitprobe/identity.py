"""The identities that follow the numbers: which code trained a model and which code probed
it, each a hash over a declared list of modules (by module name) read without comments and
docstrings, plus the versions of the libraries that compute with it.

- **training**: the models, the data pipeline, the training loop and the run cache's
  training part (``studies.runspec``, ``studies.cache``, ``studies.presets``: the recipes),
  with torch, torchvision and timm's versions. A trained model's weights are a function of
  this identity, its spec and the machine's arithmetic.
- **probe**: the probes, the solvers and the studies that drive them, with torch's, numpy's
  and scipy's versions. A record's raw outputs are a function of this and the weights.
- **findings**: the statistics and definitions that turn records into verdicts; recorded
  beside ``findings.json``, never a reason to refuse a record.

Every other module of the project is declared as ``NON_COMPUTING`` (plots, command line,
help, I/O), and a test fails when a study imports a module in none of the lists. The files
are located from this package's own folder, never imported, so the identities are the same in
a checkout and an installed copy, and need no torch. ``identities()`` is computed once per
process, when it is first asked for (``studies.cli.run`` asks at start-up), so editing the
checkout while a study runs cannot relabel what it computed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import os
import tokenize
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # the vitprobe package folder

TRAINING_MODULES = (
    "vitprobe.models", "vitprobe.models.registry", "vitprobe.models.layers",
    "vitprobe.models.vit", "vitprobe.models.resnet", "vitprobe.models.alternet",
    "vitprobe.models.cct", "vitprobe.models.zoo",
    "vitprobe.data", "vitprobe.data.sources", "vitprobe.data.augment", "vitprobe.data.loader",
    "vitprobe.train", "vitprobe.train.loop", "vitprobe.train.checkpoint",
    "vitprobe.train.precision", "vitprobe.train.recipe", "vitprobe.train.schedule",
    "vitprobe.train.distill", "vitprobe.modes", "vitprobe.distributed",
    "vitprobe.studies.runspec", "vitprobe.studies.cache", "vitprobe.studies.presets",
)
TRAINING_LIBRARIES = ("torch", "torchvision", "timm")

PROBE_MODULES = (
    "vitprobe.hessian", "vitprobe.curvature", "vitprobe.spectra", "vitprobe.landscape",
    "vitprobe.fourier", "vitprobe.variance", "vitprobe.attention", "vitprobe.features",
    "vitprobe.solvers", "vitprobe.solvers.arpack", "vitprobe.solvers.base",
    "vitprobe.solvers.eigen", "vitprobe.solvers.hutchpp", "vitprobe.solvers.kernels",
    "vitprobe.solvers.lanczos", "vitprobe.solvers.memory", "vitprobe.solvers.power",
    "vitprobe.solvers.slq", "vitprobe.solvers.timing",
    "vitprobe.studies.protocols", "vitprobe.studies.probes", "vitprobe.studies.hessian",
    "vitprobe.studies.fourier", "vitprobe.studies.variance", "vitprobe.studies.robustness",
    "vitprobe.studies.subsets", "vitprobe.studies.alternet", "vitprobe.studies.attention",
    "vitprobe.studies.pooling", "vitprobe.studies.landscape",
)
PROBE_LIBRARIES = ("torch", "numpy", "scipy")

FINDINGS_MODULES = ("vitprobe.stats", "vitprobe.summary", "vitprobe.studies.findings",
                    "vitprobe.studies.pipeline")

# what computes no recorded number: the package roots, I/O, plots, the command line and help
NON_COMPUTING = (
    "vitprobe", "vitprobe.identity", "vitprobe.fingerprint", "vitprobe.results", "vitprobe.serial",
    "vitprobe.plots", "vitprobe.board", "vitprobe.studies", "vitprobe.studies.cli",
    "vitprobe.studies.command", "vitprobe.studies.config", "vitprobe.studies.labels",
    "vitprobe.studies.arguments", "vitprobe.studies.illustrations",
    "vitprobe.studies.seedplots", "vitprobe.studies.reproduce", "vitprobe.studies.train",
    "vitprobe.studies.zoo", "vitprobe.studies.seeds", "vitprobe.studies.report",
)


def module_file(name: str, root: Path = ROOT) -> Path:
    """The source file of project module ``name`` under ``root`` (the vitprobe folder)."""
    parts = name.split(".")[1:]
    folder = root.joinpath(*parts)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    path = root.joinpath(*parts[:-1], parts[-1] + ".py") if parts else root / "__init__.py"
    if not path.is_file():
        raise FileNotFoundError(f"module {name} has no source file under {root}")
    return path


def _docstring_spans(tree: ast.AST) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) token positions of every module, class and function docstring."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and \
                    isinstance(first.value.value, str):
                spans.append(((first.lineno, first.col_offset),
                              (first.end_lineno, first.end_col_offset)))
    return spans


def normalized_source(text: str) -> str:
    """``text``'s tokens without comments, blank lines and docstrings, one space apart: two
    sources that differ only there give the same string."""
    spans = _docstring_spans(ast.parse(text))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in skip:
            continue
        if tok.type == tokenize.STRING and any(s <= tok.start and tok.end <= e
                                               for s, e in spans):
            continue
        out.append("<newline>" if tok.type == tokenize.NEWLINE else
                   "<indent>" if tok.type == tokenize.INDENT else
                   "<dedent>" if tok.type == tokenize.DEDENT else tok.string)
    return " ".join(out)


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Each library's release (a local build tag such as ``+cu128`` dropped: the same
    release computes the same way on the CPU whichever wheel carries it)."""
    found = {}
    for name in names:
        try:
            found[name] = version(name).split("+")[0]
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def digest(modules: tuple[str, ...], libraries: tuple[str, ...] = (),
           root: Path = ROOT) -> str:
    """SHA-256 (16 hex digits) over each module's name and normalized source, in the
    declared order, then the libraries' versions."""
    h = hashlib.sha256()
    for name in modules:
        text = module_file(name, root).read_text(encoding="utf-8")
        h.update(f"{name}\n{normalized_source(text)}\n".encode())
    for name, release in library_versions(libraries).items():
        h.update(f"{name}=={release}\n".encode())
    return h.hexdigest()[:16]


# set by a process for the workers it starts, so they carry the identities it started with
INHERITED = "VITPROBE_IDENTITIES"


@functools.lru_cache(maxsize=1)
def identities() -> dict[str, str]:
    """This process's identities, computed once: ``training``, ``probe`` and ``findings``
    (a worker started by a vitprobe process takes its parent's, ``INHERITED``)."""
    if os.environ.get(INHERITED):
        return json.loads(os.environ[INHERITED])
    return {"training": digest(TRAINING_MODULES, TRAINING_LIBRARIES),
            "probe": digest(PROBE_MODULES, PROBE_LIBRARIES),
            "findings": digest(FINDINGS_MODULES)}


def classified() -> set[str]:
    """Every module a list above declares."""
    return {*TRAINING_MODULES, *PROBE_MODULES, *FINDINGS_MODULES, *NON_COMPUTING}
