"""The curvature of a model's loss, the public module: the Hessian operator and its
estimators (``vitprobe.curvature``) with the paper's spectrum protocol (``vitprobe.spectra``,
Park & Kim 2022 Figs. 1c, 4: top-k per mini-batch, NEP and APE), under one name.

From a model: ``hessian.top_eigenvalues(model, loss_fn, data, k=5)``, ``trace``, ``density``,
``hvp``, ``spectrum(model, loss_fn, loader, num_batches=30)``, each with ``mode=``,
``params=``, ``weight_decay=``, ``backend=``, ``group=``. From an operator:
``with hessian.OperatorSpec(model, loss_fn, data).open() as H: hessian.eigsh(H, k=5)``
(``hutchpp_trace``, ``slq``, ``H.hvp``).
"""

from .curvature import (
    Density,
    EigenResult,
    HessianOperator,
    OperatorSpec,
    SpecOptions,
    TraceResult,
    Workspace,
    as_batches,
    check_non_negative,
    density,
    eigsh,
    hutchpp_trace,
    hvp,
    lanczos_tridiagonal,
    slq,
    top_eigenvalues,
    trace,
)
from .spectra import Spectrum, ape, nep, spectrum

__all__ = ["Density", "EigenResult", "HessianOperator", "OperatorSpec", "SpecOptions",
           "Spectrum", "TraceResult", "Workspace", "ape", "as_batches", "check_non_negative",
           "density", "eigsh", "hutchpp_trace", "hvp", "lanczos_tridiagonal", "nep", "slq",
           "spectrum", "top_eigenvalues", "trace"]
