"""The ``vitprobe`` console command: ``vitprobe <study> [arguments]`` runs the study (in a
checkout, ``python -m studies.<study> [arguments]`` is the same command: the same arguments,
the same exit codes).

vitprobe --help            lists the studies (read from their files: nothing heavy imported)
vitprobe --version         the package's version and the torch it runs on
vitprobe models            the model registry's names
vitprobe hessian --help    one study's arguments and defaults
"""

from __future__ import annotations

import sys
import textwrap
from importlib import import_module
from pathlib import Path

from vitprobe.models import list_models  # the torch-free registry table

from .arguments import ArgumentParser, check_from_spec  # torch-free

# the runnable studies, in the order a newcomer meets them
STUDIES = ("train", "hessian", "pooling", "landscape", "fourier", "variance", "robustness",
           "attention", "alternet", "subsets", "zoo", "seeds", "reproduce")


def summary(study: str) -> str:
    """A study's first docstring paragraph as one line, read from its source file (the
    module is not imported: no torch start-up)."""
    import ast
    from importlib.util import find_spec

    origin = find_spec(f"{__package__}.{study}").origin
    with open(origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def usage() -> str:
    lines = ["usage: vitprobe <study> [arguments]",
             "       vitprobe models | --version | --help", "", "studies:"]
    for name in STUDIES:
        text = textwrap.wrap(summary(name), 78) or [""]
        lines.append(f"  {name:<11} {text[0]}")
        lines += [f"  {'':<11} {t}" for t in text[1:]]
    lines += ["", "vitprobe <study> --help shows a study's arguments and their defaults."]
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        ours = dist_version("vitprobe")
    except PackageNotFoundError:
        ours = "unknown (not installed)"
    try:
        torch = dist_version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"vitprobe {ours} (torch {torch}, Python {sys.version.split()[0]})"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        print(version())
        sys.exit(0)
    if argv[0] == "models":
        print("\n".join(list_models()))
        print("timm:<name>   any timm model, e.g. timm:vit_tiny_patch16_224")
        sys.exit(0)
    name, rest = argv[0], argv[1:]
    if name not in STUDIES:
        print(f"vitprobe: error: unknown study {name!r}; allowed: {', '.join(STUDIES)}, "
              f"models, --version, --help", file=sys.stderr)
        sys.exit(2)
    if any(a in ("-h", "--help") for a in rest):
        print(study_help(name), end="")
        sys.exit(0)
    check_arguments(name, rest)  # a mistyped option: one line before torch starts
    from . import cli  # here, not at the top: it starts torch, which help and models skip

    cli.run(import_module(f".{name}", __package__).main, rest)


# Every study's --help, written at this width and shipped with the package (package data):
# the first call after install prints it without starting torch. A test regenerates each
# from the study's own parser and fails when one differs (``write_help`` renews them).
HELP = Path(__file__).resolve().parent / "help"
HELP_COLUMNS = 100


def generated_help(name: str) -> str:
    """The study's help as its own parser prints it at ``HELP_COLUMNS`` (imports the study:
    torch, seconds)."""
    import contextlib
    import io
    import os

    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_COLUMNS)
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            import_module(f".{name}", __package__).main(["--help"])
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return out.getvalue()


def generated_options(name: str) -> list[dict]:
    """The study's option table (``Config.option_table``), from its config class (imports
    the study: torch, seconds)."""
    from .config import Config  # here: it starts torch, which help and argument checks skip

    module = import_module(f".{name}", __package__)
    kinds = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, Config) and v.STUDY == name]
    return kinds[0].option_table()


def check_arguments(name: str, argv: list[str]) -> None:
    """Check a study's command line against its shipped option table with the study's own
    argument types (``studies.arguments``: no torch), so that an unknown option, a missing
    value, a value out of range or an unknown model ends in one line and exit 2 at once;
    what only the study can check (its own checks, combinations of options) is checked
    again by its parser when it runs."""
    import json

    table = HELP / f"{name}.json"
    if not table.is_file():
        return
    p = ArgumentParser(prog=f"vitprobe {name}", add_help=False)
    for opt in json.loads(table.read_text(encoding="utf-8")):
        if opt["switch"]:
            p.add_argument(opt["flag"], action="store_true")
            continue
        kwargs = {"choices": opt["choices"]} if opt["choices"] is not None else {}
        check = check_from_spec(opt["check"])
        if check is not None:
            kwargs["type"] = check
        p.add_argument(opt["flag"], **kwargs)
    p.parse_args(argv)


def write_help() -> None:
    """Renew the shipped help and option table of every study (after an option or its text
    changed)."""
    import json

    HELP.mkdir(exist_ok=True)
    for name in STUDIES:
        (HELP / f"{name}.txt").write_text(generated_help(name), encoding="utf-8")
        (HELP / f"{name}.json").write_text(json.dumps(generated_options(name), indent=1) + "\n",
                                           encoding="utf-8")


def study_help(name: str) -> str:
    """``vitprobe <study> --help``: the shipped text (no torch: well under a second), or the
    parser's own where none is shipped."""
    path = HELP / f"{name}.txt"
    return path.read_text(encoding="utf-8") if path.is_file() else generated_help(name)


if __name__ == "__main__":
    main()
