"""How long the ``vitprobe`` command takes to answer before any work: a study's ``--help``,
the model list, and a mistyped argument, each in a fresh process (as a user's first call),
against starting torch alone (``python -c "import torch"``: what each would cost if it
started torch).

python -m benchmarks.cli_latency [--rounds 5]
Goal: each answer in under 1 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from benchmarks.common import Headline, record

NO_DEVICE = True  # the command line's start-up: nothing runs on a device

COMMANDS = {
    "vitprobe hessian --help": ["hessian", "--help"],
    "vitprobe models": ["models"],
    "vitprobe hessian --tol 5 (an argument error)": ["hessian", "--tol", "5"],
}

HEADLINES = (Headline("cli_latency", "the slowest of a study's --help, the model list and an "
                      "argument error, fresh process, median seconds",
                      lambda rows: max(r["seconds"] for r in rows if r["what"] in COMMANDS),
                      goal=1.0, at_least=False, unit=" s"),)


def timed(argv: list[str], rounds: int) -> float:
    """Median wall seconds of ``argv`` in a fresh process."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="runs per command (median)")
    a = p.parse_args()
    exe = shutil.which("vitprobe")
    base = [exe] if exe else [sys.executable, "-c",
                              "from vitprobe.studies.command import main; main()"]
    rows = []
    for what, argv in COMMANDS.items():
        rows.append({"what": what, "seconds": timed(base + argv, a.rounds)})
    rows.append({"what": "python -c 'import torch' (reference)",
                 "seconds": timed([sys.executable, "-c", "import torch"], a.rounds)})
    for r in rows:
        print(f"{r['what']:48s} {r['seconds']:6.2f} s")
    record("cli_latency", rows, vars(a), "The vitprobe command's answers before any work, "
           "fresh processes, against importing torch.")


if __name__ == "__main__":
    main()
