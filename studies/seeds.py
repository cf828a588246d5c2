"""``python -m studies.seeds`` in a checkout: the same command as ``vitprobe seeds``."""

from vitprobe.studies.cli import run
from vitprobe.studies.seeds import main

if __name__ == "__main__":
    run(main)
