"""``python -m studies.train`` in a checkout: the same command as ``vitprobe train``."""

from vitprobe.studies.cli import run
from vitprobe.studies.train import main

if __name__ == "__main__":
    run(main)
