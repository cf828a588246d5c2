"""vitprobe: train vision transformers and CNNs, then probe them (Park & Kim 2022).

The library (``vitprobe.*``) is model-agnostic; the model families live in
``vitprobe.models`` and the paper's experiments in ``vitprobe.studies``. A checkout's
top-level ``models/`` and ``studies/`` only forward to those (``python -m studies.hessian``);
docs/LAYOUT.md says why.
"""

__version__ = "0.1.0"
