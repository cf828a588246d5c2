"""``python -m studies.fourier`` in a checkout: the same command as ``vitprobe fourier``."""

from vitprobe.studies.cli import run
from vitprobe.studies.fourier import main

if __name__ == "__main__":
    run(main)
