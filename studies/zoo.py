"""``python -m studies.zoo`` in a checkout: the same command as ``vitprobe zoo``."""

from vitprobe.studies.cli import run
from vitprobe.studies.zoo import main

if __name__ == "__main__":
    run(main)
