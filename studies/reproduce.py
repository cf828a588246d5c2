"""``python -m studies.reproduce`` in a checkout: the same command as ``vitprobe reproduce``."""

from vitprobe.studies.cli import run
from vitprobe.studies.reproduce import main

if __name__ == "__main__":
    run(main)
