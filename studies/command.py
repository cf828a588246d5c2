"""The ``vitprobe`` console command: ``vitprobe <study> [arguments]`` runs
``python -m studies.<study> [arguments]`` (the same arguments, the same exit codes).

vitprobe --help            lists the studies
vitprobe hessian --help    one study's arguments and defaults
"""

from __future__ import annotations

import sys
from importlib import import_module

# the runnable studies, in the order a newcomer meets them
STUDIES = ("train", "hessian", "pooling", "landscape", "fourier", "variance", "robustness",
           "attention", "alternet", "subsets", "zoo", "reproduce")


def usage() -> str:
    lines = ["usage: vitprobe <study> [arguments]   (= python -m studies.<study> [arguments])",
             "", "studies:"]
    for name in STUDIES:
        doc = (import_module(f"studies.{name}").__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<11} {doc[0] if doc else ''}")
    lines += ["", "vitprobe <study> --help shows a study's arguments and their defaults."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from . import cli

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in STUDIES:
        print(f"vitprobe: error: unknown study {name!r}; allowed: {', '.join(STUDIES)}",
              file=sys.stderr)
        sys.exit(2)
    cli.run(import_module(f"studies.{name}").main, rest)


if __name__ == "__main__":
    main()
