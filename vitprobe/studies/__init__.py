"""Experiments: ``python -m studies.<name>``. Thin scripts: parse, call vitprobe, save, plot."""
