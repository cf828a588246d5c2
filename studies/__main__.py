"""``python -m studies`` in a checkout: the same command as ``vitprobe``."""

from vitprobe.studies.command import main

if __name__ == "__main__":
    raise SystemExit(main())
