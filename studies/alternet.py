"""``python -m studies.alternet`` in a checkout: the same command as ``vitprobe alternet``."""

from vitprobe.studies.alternet import main
from vitprobe.studies.cli import run

if __name__ == "__main__":
    run(main)
