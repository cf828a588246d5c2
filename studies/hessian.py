"""``python -m studies.hessian`` in a checkout: the same command as ``vitprobe hessian``."""

from vitprobe.studies.cli import run
from vitprobe.studies.hessian import main

if __name__ == "__main__":
    run(main)
