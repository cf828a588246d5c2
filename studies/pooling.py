"""``python -m studies.pooling`` in a checkout: the same command as ``vitprobe pooling``."""

from vitprobe.studies.cli import run
from vitprobe.studies.pooling import main

if __name__ == "__main__":
    run(main)
