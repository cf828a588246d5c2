"""The curvature of a model's loss, the public module: the Hessian operator and its
estimators (``vitprobe.curvature``) with the paper's spectrum protocol (``vitprobe.spectra``,
Park & Kim 2022 Figs. 1c, 4: top-k per mini-batch, NEP and APE), under one name.

``from vitprobe import hessian``; ``hessian.top_eigenvalues(op, k=5)``,
``hessian.spectrum(op, num_batches=30)`` ... (see ``vitprobe.curvature`` for the operator).
"""

from .curvature import (
    Density,
    EigenResult,
    HessianOperator,
    Operator,
    OperatorSpec,
    TraceResult,
    Workspace,
    as_batches,
    check_non_negative,
    density,
    hvp,
    lanczos_tridiagonal,
    model_alias,
    opened,
    spec_alias,
    top_eigenvalues,
    trace,
)
from .spectra import Spectrum, ape, nep, spectrum

__all__ = ["Density", "EigenResult", "HessianOperator", "Operator", "OperatorSpec",
           "Spectrum", "TraceResult", "Workspace", "ape", "as_batches", "check_non_negative",
           "density", "hvp", "lanczos_tridiagonal", "model_alias", "nep", "opened",
           "spec_alias", "spectrum", "top_eigenvalues", "trace"]
