"""``python -m studies.landscape`` in a checkout: the same command as ``vitprobe landscape``."""

from vitprobe.studies.cli import run
from vitprobe.studies.landscape import main

if __name__ == "__main__":
    run(main)
