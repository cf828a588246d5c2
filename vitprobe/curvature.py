"""The Hessian of a model's loss with respect to its parameters, as a linear operator, and
the model-level wrappers of the solvers in ``vitprobe.solvers``.

An ``OperatorSpec`` says what the Hessian is of (model, loss, data, BN mode, parameter
group, weight decay, backend, process group); it builds the one Hessian-vector product
everything uses (``HessianOperator``): exact, functional (``torch.func.functional_call`` on
detached copies of the parameters and buffers, so the user's model is never touched),
averaged exactly over a list of batches weighted by their sizes.

Each curvature method is called one way from a model and one way from an operator:

* from a model, ``fn(model, loss_fn, data, <its options>, mode=, params=, weight_decay=,
  backend=, group=)`` (the last five: ``SpecOptions``, ``OperatorSpec``'s fields):
  ``top_eigenvalues``, ``trace``, ``density``, ``hvp`` here, ``spectrum`` in
  ``vitprobe.spectra``;
* from an operator (``with OperatorSpec(...).open() as H``, or any symmetric operator), the
  model-free solver: ``solvers.eigsh(H, k)`` (thick-restart Lanczos, every pair certified by
  its residual; ``method="arpack"``, ``"power"`` for parity with PyHessian),
  ``solvers.hutchpp_trace(H)`` (Hutch++ or Hutchinson with a standard error),
  ``solvers.slq(H)`` (stochastic Lanczos quadrature), ``H.hvp(v)``.

``vitprobe.hessian`` is the public module that gathers both with the paper's protocol.

Modes: ``mode="eval"`` (default) uses BN running statistics and no dropout; ``"train"`` uses
batch statistics in normalisation layers (running statistics are *not* updated) with dropout
and drop-path still off, so the operator is deterministic and symmetric.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from math import inf
from typing import Any, TypedDict, Unpack

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .distributed import all_reduce
from .features import check_mode, probe_mode
from .solvers import (
    DEFAULT_TOL,
    Density,
    EigenResult,
    TraceResult,
    Workspace,
    eigsh,
    hutchpp_trace,
    lanczos_tridiagonal,
    slq,
)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]

__all__ = ["OperatorSpec", "HessianOperator", "SpecOptions", "EigenResult", "TraceResult",
           "Density", "Workspace", "hvp", "top_eigenvalues", "trace", "density", "eigsh",
           "hutchpp_trace", "slq", "lanczos_tridiagonal"]


# ---------------------------------------------------------------------------------- batches
def _is_batch(data) -> bool:
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and isinstance(data[0], torch.Tensor) and isinstance(data[1], torch.Tensor))


def as_batches(data) -> list[Batch]:
    """One ``(inputs, targets)`` batch or an iterable of them -> a non-empty list."""
    batches = [tuple(data)] if _is_batch(data) else [tuple(b) for b in data]
    if not batches:
        raise ValueError("data is empty: pass an (inputs, targets) batch or an iterable of them")
    for b in batches:
        if len(b) != 2 or not all(isinstance(t, torch.Tensor) for t in b):
            raise ValueError("each batch must be an (inputs, targets) pair of tensors")
        if len(b[0]) == 0:
            raise ValueError("data holds an empty batch")
    return batches


# ------------------------------------------------------------------------------ the operator
class HessianOperator:
    """H = (1/N) sum_b n_b * d^2 L_b / d theta^2 + weight_decay * I, over ``params``.

    ``matvec`` takes and returns flat vectors (concatenated in ``names`` order) on the
    parameters' device and dtype; ``hvp`` takes and returns dicts. Built by
    ``OperatorSpec.open()``, which sets the model's probe mode around it.
    """

    def __init__(self, spec: OperatorSpec) -> None:
        model, loss_fn, data, params = spec.model, spec.loss_fn, spec.data, spec.params
        weight_decay, backend, group = spec.weight_decay, spec.backend, spec.group
        named = dict(model.named_parameters())
        if params is None:
            names = [n for n, p in named.items() if p.requires_grad]
        else:
            names = list(params)
            unknown = [n for n in names if n not in named]
            if unknown:
                raise ValueError(f"unknown parameter name(s) {unknown[:3]}; the model has e.g. "
                                 f"{list(named)[:3]}")
        if not names:
            raise ValueError("no parameters to differentiate (params is empty)")
        self.model, self.loss_fn, self.backend = model, loss_fn, backend
        self.names = names
        self.weight_decay = float(weight_decay)
        self.params = {n: named[n].detach() for n in names}
        self.frozen = {n: p.detach() for n, p in named.items() if n not in self.params}
        self.buffers = {n: b for n, b in model.named_buffers()}
        first = self.params[names[0]]
        self.device, self.dtype = first.device, first.dtype
        self.shapes = [self.params[n].shape for n in names]
        self.sizes = [self.params[n].numel() for n in names]
        self.n = sum(self.sizes)
        bad = [n for n, p in named.items() if not torch.isfinite(p.detach()).all()]
        if bad:
            raise ValueError(f"the model's weights are not finite ({len(bad)} tensors, e.g. "
                             f"{bad[0]}): a diverged or corrupt checkpoint has no Hessian")
        self.batches = [(x.to(self.device), y.to(self.device)) for x, y in as_batches(data)]
        for i, (x, _) in enumerate(self.batches):
            if x.is_floating_point() and not torch.isfinite(x).all():
                raise ValueError(f"the inputs of batch {i} hold NaN or inf values")
        # Under torch.distributed each rank holds its shard of the data; H is the average
        # over all ranks' samples, so weights use the global count and HVPs are summed.
        self.group = group
        local = sum(len(x) for x, _ in self.batches)
        total = self._all_reduce(torch.tensor([float(local)], dtype=torch.float64)).item()
        self.weights = [len(x) / total for x, _ in self.batches]
        self.num_hvps = 0
        # With one batch, the gradient's graph is kept between HVPs (each HVP is then one
        # double-backward pass, no forward) and freed when the operator closes.
        self.reuse_graph = backend == "reverse" and len(self.batches) == 1
        self._graph: tuple | None = None
        self._check_loss()

    # -- helpers
    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.group is None else all_reduce(t, self.group)

    def _loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
        # fresh buffer copies: BN in train mode updates running stats in place, on the copy
        buffers = {n: b.clone() for n, b in self.buffers.items()}
        out = functional_call(self.model, {**self.frozen, **params, **buffers}, (x,))
        return self.loss_fn(out, y)

    def _check_loss(self) -> None:
        x, y = self.batches[0]
        with torch.no_grad():
            loss = self._loss(self.params, x[:2], y[:2])
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a scalar (mean reduction); got shape {shape}")
        if not torch.isfinite(loss):
            raise ValueError(f"the loss on the data is {loss.item()}: no Hessian of a non-finite "
                             f"loss")

    def flatten(self, d: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([d[n].reshape(-1) for n in self.names])

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, v.split(self.sizes), self.shapes)}

    # -- the one HVP
    def _gradient_graph(self, x, y) -> tuple[list, tuple]:
        """Leaves and the gradient with its graph (double backward differentiates it)."""
        if self.reuse_graph and self._graph is not None:
            return self._graph
        p = {n: t.clone().requires_grad_(True) for n, t in self.params.items()}
        leaves = [p[n] for n in self.names]
        with torch.enable_grad():
            loss = self._loss(p, x, y)
            grads = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
        if self.reuse_graph:
            self._graph = (leaves, grads)
        return leaves, grads

    def _hvp_batch(self, vs: list[torch.Tensor], x, y, batched: bool = False
                   ) -> list[torch.Tensor]:
        """H v on one batch, ``vs`` in ``names`` order; ``batched``: each vs[i] is
        (m, *shape_i) and the m products come from one vmapped pass."""
        if self.backend == "forward":  # forward-over-reverse
            def grad_fn(p):
                return torch.func.grad(lambda q: self._loss(q, x, y))(p)

            def one(*v):
                _, hv = torch.func.jvp(grad_fn, (self.params,), (dict(zip(self.names, v)),))
                return tuple(hv[n] for n in self.names)
            return list(torch.func.vmap(one)(*vs) if batched else one(*vs))
        leaves, grads = self._gradient_graph(x, y)
        # gradients that are unused or constant in the parameters contribute nothing
        live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        hv: list = [None] * len(leaves)
        if live:
            with torch.enable_grad():
                hv = list(torch.autograd.grad([grads[i] for i in live], leaves,
                                              grad_outputs=[vs[i] for i in live],
                                              retain_graph=self.reuse_graph, allow_unused=True,
                                              is_grads_batched=batched))
        return [torch.zeros_like(v) if h is None else h for h, v in zip(hv, vs)]

    def matmat(self, V: torch.Tensor, block: int = 1, _out: torch.Tensor | None = None
               ) -> torch.Tensor:
        """H V for the columns of a flat (n, m) matrix. ``block`` > 1 pushes that many columns
        through one vmapped / ``is_grads_batched`` pass (memory grows with it). On CPU a
        batched pass costs *more* than the same number of single HVPs
        (``python -m benchmarks.hvp_backends --columns 8``), so the default is one column at a time;
        on a GPU with small batches a larger block can pay, measure it there."""
        if V.ndim != 2 or V.shape[0] != self.n:
            raise ValueError(f"V must have shape ({self.n}, m); got {tuple(V.shape)}")
        if block < 1:
            raise ValueError(f"block must be >= 1; got {block}")
        V = V.to(self.device, self.dtype)
        m = V.shape[1]
        cols = []
        for start in range(0, m, block):
            chunk = V[:, start:start + block].T  # (b, n)
            parts = [t.reshape(-1, *s) for t, s in zip(chunk.split(self.sizes, dim=1),
                                                        self.shapes)]
            if block == 1:
                parts = [t[0] for t in parts]
            acc = None
            for (x, y), w in zip(self.batches, self.weights):
                hv = [h.detach().reshape(chunk.shape[0], -1)
                      for h in self._hvp_batch(parts, x, y, batched=block > 1)]
                if acc is None:  # the first batch's HVP is laid out flat where it belongs
                    acc = torch.cat(hv, 1) if _out is None else torch.cat(hv, 1, out=_out)
                    if w != 1.0:
                        acc.mul_(w)
                else:  # later batches add into it part by part: no flat temporary
                    for a, h in zip(acc.split(self.sizes, 1), hv):
                        a.add_(h, alpha=w)
            if self.group is not None:
                acc = self._all_reduce(acc)
            if self.weight_decay:
                acc.add_(chunk, alpha=self.weight_decay)
            cols.append(acc.T)
            self.num_hvps += chunk.shape[0]
        return cols[0] if len(cols) == 1 else torch.cat(cols, 1)

    def close(self) -> None:
        """Free the kept gradient graph."""
        self._graph = None

    def hvp(self, v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """H v for a dict of parameter-shaped tensors (one flat product through ``matmat``)."""
        missing = [n for n in self.names if n not in v]
        if missing:
            raise ValueError(f"v lacks parameter(s) {missing[:3]}")
        return self.unflatten(self.matvec(self.flatten(
            {n: v[n].to(self.device, self.dtype) for n in self.names})))

    def matvec(self, v: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """H v for a flat vector; ``out``: a contiguous flat tensor of the parameters' dtype
        to write it into (saves a parameter-sized allocation and copy per product)."""
        if out is not None and (out.shape != (self.n,) or out.dtype != self.dtype
                                or not out.is_contiguous()):
            raise ValueError(f"out must be a contiguous ({self.n},) {self.dtype} tensor")
        hv = self.matmat(v.reshape(-1, 1), _out=None if out is None else out.view(1, -1))[:, 0]
        if out is not None and hv.data_ptr() != out.data_ptr():  # e.g. an NCCL round trip
            out.copy_(hv)
        return hv if out is None else out

    def to_scipy(self):
        """H as a ``scipy.sparse.linalg.LinearOperator`` (float64 in and out), e.g. for
        ``scipy.sparse.linalg.eigsh`` or ``lobpcg``."""
        import scipy.sparse.linalg as sla

        def mv(x):
            t = torch.as_tensor(np.ascontiguousarray(x).ravel(), device=self.device,
                                dtype=self.dtype)
            return self.matvec(t).double().cpu().numpy()

        def mm(X):
            t = torch.as_tensor(np.ascontiguousarray(X), device=self.device, dtype=self.dtype)
            return self.matmat(t).double().cpu().numpy()

        return sla.LinearOperator((self.n, self.n), matvec=mv, matmat=mm, rmatvec=mv,
                                  dtype=np.float64)


# ------------------------------------------------------------------------------ the spec
def check_non_negative(name: str, value) -> None:
    """A weight decay or l2 coefficient: a finite number >= 0."""
    if not (isinstance(value, int | float) and 0 <= value < inf):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")


@dataclass(frozen=True)
class OperatorSpec:
    """What a loss Hessian is of: ``model`` and ``loss_fn(outputs, targets)`` on ``data``
    (one ``(inputs, targets)`` batch or an iterable of them, averaged by size), in the
    probe's ``mode`` ("eval": BN running statistics; "train": batch statistics, running ones
    not updated; dropout and drop-path off in both), over ``params`` (parameter names; None:
    every trainable one), plus ``weight_decay`` * I (the l2 term of Park & Kim's loss), by
    double backward (``backend="reverse"``) or forward-over-reverse (``"forward"``), and
    summed over the ranks of a torch.distributed ``group`` (each holding its shard of the
    data; None: this process's data only).

    ``with spec.open() as H:`` builds the ``HessianOperator`` with the model's mode and
    attention flags set for the probe, restored on exit: the operator every solver takes
    (``solvers.eigsh(H, k)``, ``hutchpp_trace(H)``, ``slq(H)``)."""

    model: nn.Module
    loss_fn: LossFn
    data: Any
    mode: str = "eval"
    params: Sequence[str] | None = None
    weight_decay: float = 0.0
    backend: str = "reverse"
    group: Any = None

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.backend not in ("reverse", "forward"):
            raise ValueError(f"backend must be 'reverse' or 'forward'; got {self.backend!r}")
        check_non_negative("weight_decay", self.weight_decay)

    def with_data(self, data) -> OperatorSpec:
        """The same operator on other data (e.g. one mini-batch of a loader)."""
        return replace(self, data=data)

    @contextlib.contextmanager
    def open(self) -> Iterator[HessianOperator]:
        with probe_mode(self.model, self.mode):
            H = HessianOperator(self)
            try:
                yield H
            finally:
                H.close()


class SpecOptions(TypedDict, total=False):
    """The keyword options of every model-level call, ``OperatorSpec``'s fields after
    ``model, loss_fn, data``."""

    mode: str
    params: Sequence[str] | None
    weight_decay: float
    backend: str
    group: Any


def _spec(fn: str, model, loss_fn, data, options: SpecOptions) -> OperatorSpec:
    """The spec of a model-level call, or one line saying how ``fn`` is called."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}(model, loss_fn, data, ...) takes a model, got "
                        f"{type(model).__name__}; for an operator (OperatorSpec.open()) call "
                        f"the solver on it: eigsh(H, k), hutchpp_trace(H), slq(H), H.hvp(v)")
    return OperatorSpec(model, loss_fn, data, **options)


# --------------------------------------------------------- the model-level calls
# One way from a model: fn(model, loss_fn, data, <the method's options>, <SpecOptions>).
# One way from an operator: with OperatorSpec(...).open() as H, the solver on H
# (solvers.eigsh, hutchpp_trace, slq; H.hvp).
def hvp(model: nn.Module, loss_fn: LossFn, data, v: dict[str, torch.Tensor],
        **options: Unpack[SpecOptions]) -> dict[str, torch.Tensor]:
    """H v, with v and the result dicts of parameter name -> tensor (without ``params``,
    the Hessian is over the names in ``v``)."""
    options.setdefault("params", list(v))
    with _spec("hvp", model, loss_fn, data, options).open() as H:
        return H.hvp(v)


def top_eigenvalues(model: nn.Module, loss_fn: LossFn, data, k: int = 5, *, which: str = "LM",
                    tol: float = DEFAULT_TOL, method: str = "lanczos", max_hvps: int = 1000,
                    seed: int = 0, workspace: Workspace | None = None,
                    **options: Unpack[SpecOptions]) -> EigenResult:
    """The k extreme eigenvalues of the loss Hessian, each certified by its residual
    (``solvers.eigsh`` on the operator; its docstring has the methods and the meaning of
    ``tol``; ``Workspace`` holds the basis options, eigenvector return and timing)."""
    with _spec("top_eigenvalues", model, loss_fn, data, options).open() as H:
        return eigsh(H, k, which=which, tol=tol, method=method, max_hvps=max_hvps,
                     seed=seed, workspace=workspace)


def trace(model: nn.Module, loss_fn: LossFn, data, num_probes: int = 64, *,
          method: str = "hutch++", seed: int = 0, rtol: float | None = None,
          max_probes: int | None = None, **options: Unpack[SpecOptions]) -> TraceResult:
    """tr(H) with its standard error (``solvers.hutchpp_trace``)."""
    with _spec("trace", model, loss_fn, data, options).open() as H:
        return hutchpp_trace(H, num_probes, seed=seed, method=method, rtol=rtol,
                             max_probes=max_probes)


def density(model: nn.Module, loss_fn: LossFn, data, num_probes: int = 8,
            lanczos_steps: int = 80, *, seed: int = 0, progress: bool = False,
            **options: Unpack[SpecOptions]) -> Density:
    """The spectral density of H by stochastic Lanczos quadrature (``solvers.slq``)."""
    with _spec("density", model, loss_fn, data, options).open() as H:
        return slq(H, num_probes, lanczos_steps, seed=seed, progress=progress)
