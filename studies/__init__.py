"""A checkout's entry points: ``python -m studies.<study>`` runs ``vitprobe <study>``.

The studies themselves are ``vitprobe.studies``; each module here only forwards to one of
them, so the commands work in a checkout without an install (docs/LAYOUT.md).
"""
