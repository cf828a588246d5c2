"""``python -m studies.subsets`` in a checkout: the same command as ``vitprobe subsets``."""

from vitprobe.studies.cli import run
from vitprobe.studies.subsets import main

if __name__ == "__main__":
    run(main)
