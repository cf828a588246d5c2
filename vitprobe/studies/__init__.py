"""Experiments: ``vitprobe <study>``. Thin scripts: parse, call vitprobe, save, plot."""
