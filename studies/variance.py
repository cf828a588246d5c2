"""``python -m studies.variance`` in a checkout: the same command as ``vitprobe variance``."""

from vitprobe.studies.cli import run
from vitprobe.studies.variance import main

if __name__ == "__main__":
    run(main)
