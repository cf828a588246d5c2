"""``python -m studies.attention`` in a checkout: the same command as ``vitprobe attention``."""

from vitprobe.studies.attention import main
from vitprobe.studies.cli import run

if __name__ == "__main__":
    run(main)
