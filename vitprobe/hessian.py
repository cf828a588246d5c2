"""The Hessian of a model's loss with respect to its parameters, as a linear operator.

Everything builds on one Hessian-vector product (``hvp``): exact, functional
(``torch.func.functional_call`` on detached copies of the parameters and buffers, so the
user's model is never touched), averaged exactly over a list of batches weighted by their
sizes. On top of it:

* ``top_eigenvalues`` — thick-restart Lanczos with full reorthogonalisation in float64: each
  Ritz pair's residual ``||Hv - lambda v|| / |lambda|`` is known at every step, the solver
  stops at the first step where all k pairs reach the tolerance and certifies them with the
  HVPs it kept (no extra HVP); ``method="arpack"``: implicitly restarted Lanczos
  (``scipy.sparse.linalg.eigsh``, less memory); ``method="power"`` reproduces PyHessian's
  deflated power iteration for parity.
* ``trace`` — Hutch++ (Meyer et al. 2021) or Hutchinson, with a standard error and optional
  stopping on a confidence interval.
* ``density`` — stochastic Lanczos quadrature (Ghorbani et al. 2019; Lin et al. 2016).
* ``spectrum`` — the max-eigenvalue spectra of Park & Kim 2022 (App. A): top-k by magnitude
  on each of many mini-batches of augmented training data, loss + l2; ``nep``/``ape``.

Modes: ``mode="eval"`` (default) uses BN running statistics and no dropout; ``"train"`` uses
batch statistics in normalisation layers (running statistics are *not* updated) with dropout
and drop-path still off, so the operator is deterministic and symmetric.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from .features import eval_mode, explicit_attention

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]

__all__ = ["HessianOperator", "EigenResult", "TraceResult", "Density", "Spectrum", "hvp",
           "top_eigenvalues", "trace", "density", "spectrum", "nep", "ape", "operator"]


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


# ------------------------------------------------------------------------------ the context
@contextlib.contextmanager
def probe_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Put ``model`` in the probe's mode; restore every module's ``training`` flag after.

    ``"train"`` switches only normalisation layers to batch statistics.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train'; got {mode!r}")
    with eval_mode(model):
        if mode == "train":
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm):
                    m.train()
        with explicit_attention(model):
            yield


# ------------------------------------------------------------------------------ the operator
class HessianOperator:
    """H = (1/N) sum_b n_b * d^2 L_b / d theta^2 + weight_decay * I, over ``params``.

    ``matvec`` takes and returns flat vectors (concatenated in ``names`` order) on the
    parameters' device and dtype; ``hvp`` takes and returns dicts. Use inside
    ``probe_mode(model, mode)`` (the public functions below do this for you).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data, params: Sequence[str] | None = None,
                 weight_decay: float = 0.0, backend: str = "reverse", group=None) -> None:
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
        if backend not in ("reverse", "forward"):
            raise ValueError(f"backend must be 'reverse' or 'forward'; got {backend!r}")
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
        import torch.distributed as dist

        if self.group is None or not dist.is_available() or not dist.is_initialized():
            return t
        dev = t.device
        if dist.get_backend(self.group) == "nccl" and dev.type != "cuda":
            t = t.cuda()
        dist.all_reduce(t, group=self.group)
        return t.to(dev)

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
        through one vmapped / ``is_grads_batched`` pass (memory grows with it). Measured on CPU
        (benchmarks/hvp_backends.py --columns 8) a batched pass costs 1.4-1.6x *more* than the
        same number of single HVPs, so the default is one column at a time; on a GPU with
        small batches a larger block can pay, measure it there."""
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

    def loss(self) -> float:
        """The (batch-size weighted) loss, plus (wd/2)||theta||^2 when weight_decay is set."""
        with torch.no_grad():
            total = sum(w * self._loss(self.params, x, y).item()
                        for (x, y), w in zip(self.batches, self.weights))
        if self.weight_decay:
            total += 0.5 * self.weight_decay * sum(p.pow(2).sum().item()
                                                   for p in self.params.values())
        return total


@contextlib.contextmanager
def operator(model: nn.Module, loss_fn: LossFn, data, mode: str = "eval",
             params: Sequence[str] | None = None, weight_decay: float = 0.0,
             backend: str = "reverse", group=None) -> Iterator[HessianOperator]:
    """``with hessian.operator(model, loss_fn, data) as H: H.matvec(v)`` — the model's mode and
    attention flags are the probe's inside, and restored on exit."""
    with probe_mode(model, mode):
        H = HessianOperator(model, loss_fn, data, params, weight_decay, backend, group)
        try:
            yield H
        finally:
            H.close()


def hvp(model: nn.Module, loss_fn: LossFn, data, v: dict[str, torch.Tensor], mode: str = "eval",
        params: Sequence[str] | None = None, weight_decay: float = 0.0,
        backend: str = "reverse", group=None) -> dict[str, torch.Tensor]:
    """H v, with v and the result dicts of parameter name -> tensor.

    ``params`` defaults to the names in ``v``.
    """
    with operator(model, loss_fn, data, mode, params or list(v), weight_decay, backend,
                  group) as H:
        return H.hvp(v)


# ---------------------------------------------------------------------------- eigenvalues
@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs ordered by the ``which`` criterion (|lambda| descending for "LM").

    ``residuals[i] = ||H v_i - lambda_i v_i|| / |lambda_i|``: from the kept HVPs of the basis
    (``method="lanczos"``, H V y = W y) or one extra HVP per pair after the solver stopped
    ("arpack", "power"); ``converged[i] = residuals[i] <= tol``.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    num_hvps: int
    seconds: float
    method: str
    which: str
    tol: float
    seed: int
    eigenvectors: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("eigenvalues", "residuals", "converged",
                                              "num_hvps", "seconds", "method", "which", "tol",
                                              "seed")}


def _order(values: np.ndarray, which: str) -> np.ndarray:
    if which == "LM":
        return np.argsort(-np.abs(values), kind="stable")
    if which == "LA":
        return np.argsort(-values, kind="stable")
    return np.argsort(values, kind="stable")


def _residuals(H: HessianOperator, vals: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """||H v - lambda v|| / |lambda| per pair (v normalised), all k HVPs in one batched pass."""
    if len(vals) == 0:
        return np.zeros(0)
    V = torch.as_tensor(np.ascontiguousarray(vecs), device=H.device, dtype=H.dtype)
    V = V / V.norm(dim=0)
    lam = torch.as_tensor(vals, device=H.device, dtype=H.dtype)
    r = (H.matmat(V) - V * lam).norm(dim=0).double().cpu().numpy()
    return r / np.maximum(np.abs(vals), np.finfo(float).tiny)


def _lanczos_arpack(H: HessianOperator, k: int, which: str, tol: float, seed: int,
                    max_hvps: int, ncv: int | None):
    import scipy.sparse.linalg as sla

    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(H.n)

    def mv(x):
        if H.num_hvps >= max_hvps:
            raise _Budget()
        t = torch.as_tensor(np.ascontiguousarray(x).ravel(), device=H.device, dtype=H.dtype)
        return H.matvec(t).double().cpu().numpy()

    op = sla.LinearOperator((H.n, H.n), matvec=mv, dtype=np.float64)
    ncv = ncv or min(H.n, max(2 * k + 1, 20))
    try:
        vals, vecs = sla.eigsh(op, k=k, which=which, tol=tol / 4, v0=v0, ncv=ncv,
                               maxiter=max(10, max_hvps // ncv + 1))
    except sla.ArpackNoConvergence as e:
        vals, vecs = e.eigenvalues, e.eigenvectors
    except _Budget:
        vals, vecs = np.zeros(0), np.zeros((H.n, 0))
    return vals, vecs


class _Budget(Exception):
    pass


# columns per slice when the solver combines parameter-sized rows (2 MiB of float64 per row)
_COLUMN_CHUNK = 1 << 18


def _ritz_residual_norms(Ys: torch.Tensor, theta: np.ndarray, V: torch.Tensor, W: torch.Tensor,
                         chunk: int = _COLUMN_CHUNK) -> np.ndarray:
    """||y^T W - theta y^T V|| for each row y of Ys (W = H V row by row), column chunk by
    column chunk: no (k, n) temporaries. Measured on vit-ti (5.4M parameters, k 5, 14 basis
    vectors) this takes the certification from ~1 s to ~0.1 s: on this CPU the whole-vector
    form spent its time faulting in fresh pages for four (k, n) temporaries."""
    Yw = Ys.to(W.dtype)
    th = torch.as_tensor(theta, device=V.device, dtype=V.dtype)[:, None]
    sq = torch.zeros(len(Ys), device=V.device, dtype=V.dtype)
    for s in range(0, V.shape[1], chunk):
        r = (Yw @ W[:, s:s + chunk]).to(V.dtype)
        r.sub_((Ys @ V[:, s:s + chunk]).mul_(th))
        sq += r.square().sum(1)
    return sq.sqrt().cpu().numpy()


def _combine_rows_(A: torch.Tensor, Y: torch.Tensor, chunk: int = _COLUMN_CHUNK) -> None:
    """A[:len(Y)] = Y @ A in place, column chunk by column chunk (no copy of A)."""
    for s in range(0, A.shape[1], chunk):
        A[:len(Y), s:s + chunk] = Y @ A[:, s:s + chunk]


def _thick_lanczos(H: HessianOperator, k: int, which: str, tol: float, seed: int,
                   max_hvps: int, ncv: int | None, vectors: bool = True):
    """Thick-restart Lanczos (Wu & Simon 2000; the Krylov-Schur form of Stewart 2001) with full
    reorthogonalisation.

    Every step projects H on the whole basis (T = V^T H V, not only its tridiagonal), so after
    any restart H V = V T + r e_m^T holds and each Ritz pair's residual is |beta y_m|: read off at
    every step for free, the solver stops at the first step where all k wanted pairs are below
    ``tol`` (ARPACK only looks at restart boundaries). The pairs are then certified with their
    true residuals ||W y - theta V y||, W = H V being kept, so certifying costs no HVP (ARPACK's
    needs k more). When the basis reaches ``ncv`` vectors it restarts on the wanted Ritz vectors
    plus as many more and goes on with r, which is orthogonal to them.

    The basis and its inner products are float64 whatever the model's dtype (float32 inner
    products over millions of parameters stall the residuals near 1e-3); W stays in the
    model's dtype. Memory: (8 + the model dtype's size) ``ncv`` bytes per parameter, 12 ncv for
    float32, plus one float32 vector the HVP reads (method="arpack" needs 8 ncv). Each HVP is
    written straight into its row of W, and restarts and certification work column chunk by
    column chunk: on CPU, parameter-sized temporaries cost more in fresh pages than in
    arithmetic.
    """
    ncv = min(H.n, max(ncv or 20, 2 * k + 1))
    f64 = torch.float64
    g = torch.Generator().manual_seed(seed)
    # rows are basis vectors: V[:m] stays contiguous, no copy per step
    V = torch.empty(ncv, H.n, device=H.device, dtype=f64)
    W = torch.empty(ncv, H.n, device=H.device, dtype=H.dtype)
    T = np.zeros((0, 0))
    r = torch.randn(H.n, generator=g, dtype=f64).to(H.device)  # workspace, reused
    x = None if H.dtype == f64 else torch.empty(H.n, device=H.device, dtype=H.dtype)
    V[0] = r / r.norm()
    m = 0
    tiny = np.finfo(float).tiny
    while True:
        H.matvec(x.copy_(V[m]) if x is not None else V[m], out=W[m])
        m += 1
        Vm = V[:m]
        r.copy_(W[m - 1])
        norm_w = r.norm().item()
        c = Vm @ r
        r.addmv_(Vm.T, c, alpha=-1.0)
        beta = r.norm().item()
        # In float64 one classical Gram-Schmidt pass loses eps * ||w|| / beta of
        # orthogonality; a second pass ("twice is enough", Kahan-Parlett) only where that
        # ratio is large, the DGKS criterion
        if beta < 1e-2 * norm_w:
            c2 = Vm @ r
            r.addmv_(Vm.T, c2, alpha=-1.0)
            c += c2
            beta = r.norm().item()
        c = c.cpu().numpy()
        T = np.pad(T, ((0, 1), (0, 1)))
        T[:, -1] = T[-1, :] = c
        theta, Y = np.linalg.eigh(T)
        order = _order(theta, which)
        sel = order[:k]
        scale = np.maximum(np.abs(theta[sel]), tiny)
        estimate = beta * np.abs(Y[-1, sel]) / scale
        done = H.num_hvps >= max_hvps or m == H.n
        # A small residual certifies an eigenpair, not that no wanted one was missed: look
        # only once the Krylov space has 2k+1 vectors (ARPACK waits for ncv)
        if done or (m >= 2 * k + 1 and (estimate <= tol).all()):
            Ys = torch.as_tensor(Y[:, sel].T.copy(), device=H.device)
            res = _ritz_residual_norms(Ys, theta[sel], Vm, W[:m]) / scale
            if done or (res <= tol).all():
                return theta[sel], (Ys @ Vm).T.cpu().numpy() if vectors else None, res
        if beta <= 1e-12 * max(np.abs(theta).max(), tiny):  # invariant subspace: a new start
            r.copy_(torch.randn(H.n, generator=g, dtype=f64))
            for _ in range(2):
                r.addmv_(Vm.T, Vm @ r, alpha=-1.0)
            beta = r.norm().item()
        if m == ncv:  # thick restart on the wanted Ritz vectors and as many more
            keep = order[:min(ncv - 1, max(k, ncv // 2))]
            Yk = torch.as_tensor(Y[:, keep].T.copy(), device=H.device)
            m = len(keep)
            _combine_rows_(V, Yk)
            _combine_rows_(W, Yk.to(H.dtype))
            T = np.diag(theta[keep])  # V^T H V of Ritz vectors; r's couplings come next step
        torch.div(r, beta, out=V[m])


def _power_deflated(H: HessianOperator, k: int, tol: float, seed: int, max_iter: int = 100):
    """PyHessian's method (Yao et al. 2020): power iteration, deflating the found vectors,
    stopping when the Rayleigh quotient's relative change is below ``tol``."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    vals, vecs = [], []
    for _ in range(k):
        v = torch.randn(H.n, generator=g, dtype=H.dtype).to(H.device)
        lam = None
        for _ in range(max_iter):
            for u in vecs:
                v = v - (v @ u) * u
            v = v / v.norm()
            hv = H.matvec(v)
            new = (hv @ v).item()
            v = hv
            if lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < tol:
                lam = new
                break
            lam = new
        for u in vecs:
            v = v - (v @ u) * u
        v = v / v.norm()
        vals.append(lam)
        vecs.append(v)
    return np.array(vals), torch.stack(vecs, 1).double().cpu().numpy()


def top_eigenvalues(model: nn.Module, loss_fn: LossFn, data, k: int = 5, tol: float = 1e-4,
                    seed: int = 0, which: str = "LM", method: str = "lanczos",
                    mode: str = "eval", params: Sequence[str] | None = None,
                    weight_decay: float = 0.0, max_hvps: int = 1000, ncv: int | None = None,
                    return_eigenvectors: bool = False, backend: str = "reverse",
                    group=None) -> EigenResult:
    """The k extreme eigenvalues of the loss Hessian, each certified by its residual.

    which: "LM" largest magnitude (Park & Kim 2022's spectra), "LA" largest algebraic,
    "SA" smallest algebraic. method: "lanczos" (thick-restart Lanczos keeping each basis
    vector's HVP: residuals every step, stops at the first step where all k pairs reach
    ``tol``, no extra HVPs to certify; memory 12 ``ncv`` + 4 bytes per parameter of a
    float32 model, 16 ``ncv`` of a float64 one, ncv=20 by default), "arpack" (implicitly
    restarted Lanczos, scipy's ARPACK, k more HVPs to certify; 8 ``ncv`` bytes per parameter)
    or "power" (PyHessian's deflated power iteration, for parity; LM only). Lanczos needs
    about half of ARPACK's HVPs at tol 1e-3 (``benchmarks/hessian_vs_pyhessian.py``).
    A residual certifies an eigenpair, not that no wanted eigenvalue was missed: at loose
    tolerances (1e-2) an eigenvalue whose Ritz value has not emerged yet can be skipped; at
    1e-3 and below the tests find the exact top-k of dense Hessians.
    """
    if which not in ("LM", "LA", "SA"):
        raise ValueError(f"which must be 'LM', 'LA' or 'SA'; got {which!r}")
    if method not in ("lanczos", "arpack", "power"):
        raise ValueError(f"method must be 'lanczos', 'arpack' or 'power'; got {method!r}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    t0 = time.perf_counter()
    with operator(model, loss_fn, data, mode, params, weight_decay, backend, group) as H:
        if k >= H.n:
            raise ValueError(f"k={k} must be smaller than the number of parameters ({H.n})")
        if method == "power":
            vals, vecs = _power_deflated(H, k, tol, seed)
            res = _residuals(H, vals, vecs)
        elif method == "arpack":
            vals, vecs = _lanczos_arpack(H, k, which, tol, seed, max_hvps, ncv)
            res = _residuals(H, vals, vecs)
        else:
            vals, vecs, res = _thick_lanczos(H, k, which, tol, seed, max_hvps, ncv,
                                             vectors=return_eigenvectors)
        order = _order(vals, "LM" if method == "power" else which)
        vals, res = vals[order], res[order]
        if vecs is not None:
            vecs = vecs[:, order]
        if len(vals) < k:  # pad what did not converge within the budget
            pad = k - len(vals)
            vals = np.concatenate([vals, np.full(pad, np.nan)])
            res = np.concatenate([res, np.full(pad, np.inf)])
        return EigenResult(eigenvalues=vals, residuals=res, converged=res <= tol,
                           num_hvps=H.num_hvps, seconds=time.perf_counter() - t0,
                           method=method, which=which, tol=tol, seed=seed,
                           eigenvectors=vecs if return_eigenvectors else None)


# -------------------------------------------------------------------------------- trace
@dataclass(frozen=True)
class TraceResult:
    estimate: float
    stderr: float
    num_hvps: int
    num_probes: int
    method: str
    seed: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _rademacher(n: int, m: int, g: torch.Generator, H: HessianOperator) -> torch.Tensor:
    return (torch.randint(0, 2, (n, m), generator=g, dtype=torch.int8) * 2 - 1).to(
        device=H.device, dtype=H.dtype)


def trace(model: nn.Module, loss_fn: LossFn, data, num_probes: int = 64, seed: int = 0,
          method: str = "hutch++", rtol: float | None = None, max_probes: int | None = None,
          mode: str = "eval", params: Sequence[str] | None = None, weight_decay: float = 0.0,
          backend: str = "reverse", group=None) -> TraceResult:
    """Stochastic estimate of tr(H) with its standard error.

    Hutch++ (Meyer, Musco, Musco & Woodruff 2021): a third of the budget sketches the top
    subspace Q = orth(H S), whose trace tr(Q^T H Q) is exact; Hutchinson estimates the rest
    on (I - QQ^T) with the remaining probes, and the standard error is that of this residual
    part. With ``rtol``, probes are added (up to ``max_probes``) until the 95 % confidence
    half-width is below ``rtol * |estimate|`` — a statistical criterion, not "the mean
    stopped moving".
    """
    if method not in ("hutch++", "hutchinson"):
        raise ValueError(f"method must be 'hutch++' or 'hutchinson'; got {method!r}")
    if num_probes < (3 if method == "hutch++" else 2):
        raise ValueError(f"num_probes must be >= {3 if method == 'hutch++' else 2}")
    max_probes = max_probes or 10 * num_probes
    g = torch.Generator().manual_seed(seed)
    with operator(model, loss_fn, data, mode, params, weight_decay, backend, group) as H:
        exact_part, Q = 0.0, None
        m = num_probes
        if method == "hutch++":
            s = num_probes // 3
            S = _rademacher(H.n, s, g, H)
            Q, _ = torch.linalg.qr(H.matmat(S))
            exact_part = (Q * H.matmat(Q)).sum().item()
            m = num_probes - 2 * s
        samples: list[float] = []

        def draw(count: int) -> None:
            for start in range(0, count, 8):  # 8 probes at a time: memory stays 16 n floats
                G = _rademacher(H.n, min(8, count - start), g, H)
                if Q is not None:
                    G = G - Q @ (Q.T @ G)
                samples.extend((G * H.matmat(G)).sum(0).tolist())

        draw(m)
        used = num_probes
        while rtol is not None and used < max_probes:
            est = exact_part + float(np.mean(samples))
            se = float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
            if 1.96 * se <= rtol * abs(est):
                break
            extra = min(max(1, len(samples) // 2), max_probes - used)
            draw(extra)
            used += extra
        est = exact_part + float(np.mean(samples))
        se = float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
        return TraceResult(estimate=est, stderr=se, num_hvps=H.num_hvps, num_probes=used,
                           method=method, seed=seed)


# ------------------------------------------------------------------------------- density
@dataclass(frozen=True)
class Density:
    """Stochastic Lanczos quadrature: per probe p, Ritz values ``nodes[p]`` and weights
    ``weights[p]`` (squared first components of T's eigenvectors, summing to 1)."""

    nodes: np.ndarray     # (probes, steps)
    weights: np.ndarray   # (probes, steps)
    num_hvps: int
    seed: int

    def evaluate(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """phi(t) = mean_p sum_i w_pi N(t; theta_pi, sigma^2); sigma in eigenvalue units.
        Integrates to 1 over the real line."""
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0; got {sigma}")
        grid = np.asarray(grid, dtype=float)
        z = (grid[None, None, :] - self.nodes[..., None]) / sigma
        k = np.exp(-0.5 * z ** 2) / (sigma * math.sqrt(2 * math.pi))
        return (self.weights[..., None] * k).sum(1).mean(0)

    def mean(self) -> float:
        """Estimate of tr(H) / n."""
        return float((self.nodes * self.weights).sum(1).mean())

    def to_dict(self) -> dict:
        return {"nodes": self.nodes, "weights": self.weights, "num_hvps": self.num_hvps,
                "seed": self.seed}


def lanczos_tridiagonal(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor,
                        steps: int) -> tuple[np.ndarray, np.ndarray]:
    """m steps of Lanczos from v0 with full reorthogonalisation (two passes of classical
    Gram-Schmidt); returns T's diagonal and off-diagonal. Stops early at an invariant
    subspace. Keeps the m basis vectors that reorthogonalisation needs, nothing more."""
    V = torch.empty(steps, v0.numel(), device=v0.device, dtype=v0.dtype)
    alpha, beta = [], []
    v = v0 / v0.norm()
    for j in range(steps):
        V[j] = v
        w = matvec(v)
        a = (w @ v).item()
        alpha.append(a)
        for _ in range(2):
            w = w - V[:j + 1].T @ (V[:j + 1] @ w)
        b = w.norm().item()
        if j == steps - 1 or b < 1e-10 * max(1.0, abs(a)):
            break
        beta.append(b)
        v = w / b
    return np.array(alpha), np.array(beta)


def density(model: nn.Module, loss_fn: LossFn, data, num_probes: int = 8,
            lanczos_steps: int = 80, seed: int = 0, mode: str = "eval",
            params: Sequence[str] | None = None, weight_decay: float = 0.0,
            backend: str = "reverse", progress: bool = False, group=None) -> Density:
    """The spectral density of H by stochastic Lanczos quadrature."""
    from scipy.linalg import eigh_tridiagonal

    g = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    with operator(model, loss_fn, data, mode, params, weight_decay, backend, group) as H:
        steps = min(lanczos_steps, H.n)
        for _ in tqdm(range(num_probes), desc="SLQ probes", disable=not progress):
            v0 = torch.randn(H.n, generator=g, dtype=H.dtype).to(H.device)
            a, b = lanczos_tridiagonal(H.matvec, v0, steps)
            theta, S = eigh_tridiagonal(a, b) if len(b) else (a, np.ones((1, 1)))
            w = S[0] ** 2
            pad = steps - len(theta)  # early stop: zero-weight nodes keep the array square
            nodes.append(np.concatenate([theta, np.full(pad, theta[-1])]))
            weights.append(np.concatenate([w, np.zeros(pad)]))
        return Density(np.array(nodes), np.array(weights), H.num_hvps, seed)


# ---------------------------------------------------------------------- the paper's spectra
@dataclass(frozen=True)
class Spectrum:
    """Top-k eigenvalues by magnitude on each of many mini-batches (Park & Kim 2022, Fig. 4)."""

    eigenvalues: np.ndarray  # (num_batches, k)
    residuals: np.ndarray
    converged: np.ndarray
    num_hvps: int
    seconds: float
    batch_size: int
    weight_decay: float

    def nep(self) -> float:
        return nep(self.eigenvalues)

    def ape(self) -> float:
        return ape(self.eigenvalues)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("eigenvalues", "residuals", "converged", "num_hvps",
                                           "seconds", "batch_size", "weight_decay")}
        d.update(nep=self.nep(), ape=self.ape())
        return d


def nep(eigenvalues: np.ndarray) -> float:
    """Negative eigenvalue proportion: the share of the (collected) spectrum below zero."""
    e = np.asarray(eigenvalues, dtype=float)
    e = e[np.isfinite(e)]
    return float((e < 0).mean()) if e.size else float("nan")


def ape(eigenvalues: np.ndarray) -> float:
    """Average positive eigenvalue: the mean of the positive part of the spectrum."""
    e = np.asarray(eigenvalues, dtype=float)
    e = e[np.isfinite(e) & (e > 0)]
    return float(e.mean()) if e.size else 0.0


def spectrum(model: nn.Module, loss_fn: LossFn, loader: Iterable, num_batches: int = 10,
             k: int = 5, tol: float = 1e-3, seed: int = 0, weight_decay: float = 0.0,
             mode: str = "eval", params: Sequence[str] | None = None,
             progress: bool = True, **kwargs) -> Spectrum:
    """Park & Kim 2022's max-eigenvalue spectrum: ``top_eigenvalues(k, which="LM")`` on each
    of ``num_batches`` mini-batches drawn from ``loader`` (their protocol: batch 16 of
    augmented training data, loss + l2 with ``weight_decay`` as the l2 coefficient)."""
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1; got {num_batches}")
    vals, res, conv, hvps, bs = [], [], [], 0, 0
    t0 = time.perf_counter()
    it = iter(loader)
    for i in tqdm(range(num_batches), desc="Hessian spectra", disable=not progress):
        try:
            batch = next(it)
        except StopIteration:
            if i == 0:
                raise ValueError("the loader is empty") from None
            break
        bs = len(batch[0])
        r = top_eigenvalues(model, loss_fn, tuple(batch), k=k, tol=tol, seed=seed + i,
                            which="LM", mode=mode, params=params, weight_decay=weight_decay,
                            **kwargs)
        vals.append(r.eigenvalues)
        res.append(r.residuals)
        conv.append(r.converged)
        hvps += r.num_hvps
    return Spectrum(np.array(vals), np.array(res), np.array(conv), hvps,
                    time.perf_counter() - t0, bs, weight_decay)
