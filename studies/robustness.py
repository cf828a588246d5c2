"""``python -m studies.robustness`` in a checkout: the same command as ``vitprobe robustness``."""

from vitprobe.studies.cli import run
from vitprobe.studies.robustness import main

if __name__ == "__main__":
    run(main)
