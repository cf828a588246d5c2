"""The block kernels the Lanczos solver is built from: products of parameter-sized basis
rows over column blocks with float64 partial sums, in-place row combinations, classical
Gram-Schmidt, and a ``Workspace`` of buffers reused from one solve to the next. None of them
knows a model."""

from __future__ import annotations

import math

import numpy as np
import torch

# columns per slice when the solver combines parameter-sized rows
_COLUMN_CHUNK = 1 << 18


# entries per partial product (a block of a basis row), partial sums added in float64
_DOT_BLOCK = 1 << 14


def _as_blocks(A: torch.Tensor, block: int) -> tuple[torch.Tensor, int]:
    """Rows (m, n) as a batch (n // block, m, block) of their column blocks (a view: no
    copy), and the number of columns it covers; the rest is a tail of fewer than ``block``."""
    nb = A.shape[1] // block
    return A[:, :nb * block].view(len(A), nb, block).transpose(0, 1), nb * block


def _ritz_residual_norms(Ys: torch.Tensor, theta: np.ndarray, V: torch.Tensor, W: torch.Tensor,
                         block: int = _DOT_BLOCK, group: int = 4
                         ) -> tuple[np.ndarray, np.ndarray]:
    """For each row y of Ys, ||y^T W - theta y^T V|| (W = H V row by row), and the Gram
    matrix of the Ritz vectors y^T V (their norms and mutual cosines): batched products over
    ``group`` column blocks of ``block`` entries at a time (as ``_project``; a group's
    temporaries stay in cache and are reused from one group to the next). Per block, u = Y v,
    r = Y w - theta u in one fused product, and the Gram matrices of u and r as batched
    products, whose sums over the blocks are added in float64."""
    dt = torch.promote_types(V.dtype, W.dtype)
    Y = Ys.to(dt)
    neg_theta = -torch.as_tensor(theta, device=Ys.device, dtype=dt)[None, :, None]
    acc = torch.zeros(2, len(Ys), len(Ys), device=V.device, dtype=torch.float64)

    def add(v: torch.Tensor, w: torch.Tensor, u: torch.Tensor, r: torch.Tensor,
            grams: torch.Tensor) -> None:  # (G, m, b) blocks of V and W into u, r, grams
        y = Y.expand(len(v), -1, -1)
        torch.bmm(y, v.to(dt), out=u)
        torch.baddbmm(u * neg_theta, y, w.to(dt), out=r)
        torch.bmm(u, u.transpose(1, 2), out=grams[0])
        torch.bmm(r, r.transpose(1, 2), out=grams[1])
        acc.add_(grams.sum(1, dtype=torch.float64))

    Vb, cols = _as_blocks(V, block)
    Wb = _as_blocks(W, block)[0]
    G = max(1, min(group, len(Vb)))
    u = torch.empty(G, len(Ys), block, device=V.device, dtype=dt)
    r, grams = torch.empty_like(u), torch.empty(2, G, len(Ys), len(Ys), device=V.device, dtype=dt)
    for g in range(0, len(Vb), G):
        n = len(Vb[g:g + G])
        add(Vb[g:g + G], Wb[g:g + G], u[:n], r[:n], grams[:, :n])
    tail = V.shape[1] - cols
    add(V[None, :, cols:], W[None, :, cols:], u[:1, :, :tail], r[:1, :, :tail], grams[:, :1])
    return acc[1].diagonal().sqrt().cpu().numpy(), acc[0].cpu().numpy()


def _combine_rows_(A: torch.Tensor, Y: torch.Tensor, block: int = _DOT_BLOCK,
                   group: int = 64, out: torch.Tensor | None = None) -> None:
    """A[:len(Y)] = Y @ A in place, or ``out = Y @ A`` into rows that do not overlap A,
    ``group`` column blocks of ``block`` entries at a time (in place: a batched product into
    a buffer of len(Y) x group x block entries, then copied into place; no copy of A),
    computed in A's dtype (each entry a sum of len(A) terms: a float32 A loses nothing more
    than its storage already does). Large groups: fewer calls, and a time that does not hang
    on the buffer staying in a cache the host may share (benchmarks/MEASUREMENTS.md,
    restart_groups: group sizes in whole solves)."""
    Y = Y.to(A.dtype)
    target = A[:len(Y)] if out is None else out
    blocks, cols = _as_blocks(A, block)
    rows = _as_blocks(target, block)[0]
    buf = None if out is not None else torch.empty(min(group, len(blocks)), len(Y), block,
                                                   device=A.device, dtype=A.dtype)
    for g in range(0, len(blocks), group):
        part = blocks[g:g + group]
        y = Y.expand(len(part), -1, -1)
        if buf is None:  # straight into rows that do not overlap A
            torch.matmul(y, part, out=rows[g:g + group])
        else:
            torch.matmul(y, part, out=buf[:len(part)])
            rows[g:g + group] = buf[:len(part)]
    target[:, cols:] = Y @ A[:, cols:]


def _project(Vm: torch.Tensor, r: torch.Tensor, block: int = _DOT_BLOCK) -> torch.Tensor:
    """Vm r in float64: the products of ``block``-entry blocks (in Vm's dtype, r rounded to
    it) are one batched matrix product, and their partial sums are added in float64. A
    float32 product over millions of entries that share a sign is off by ~1e-5 of |v||r| (a
    float32 norm by ~1e-4), which stalls the residuals near 1e-3; blocks of 2^14 keep it to
    ~1e-7 (benchmarks/MEASUREMENTS.md, basis_orthogonality: what that leaves of the basis
    orthogonality). On CPU one batched product also reads the basis faster than a
    matrix-vector product over whole rows (MEASUREMENTS.md, gram_schmidt_budget, times
    both)."""
    x = r if r.dtype == Vm.dtype else r.to(Vm.dtype)
    blocks, cols = _as_blocks(Vm, block)
    c = torch.bmm(x[:cols].view(len(blocks), 1, block), blocks.transpose(1, 2))
    c = c.sum((0, 1), dtype=torch.float64)
    if cols < len(x):
        c += (Vm[:, cols:] @ x[cols:]).double()
    return c


def _subtract(out: torch.Tensor, x: torch.Tensor, Vm: torch.Tensor, c: torch.Tensor,
              block: int = _DOT_BLOCK) -> None:
    """out = x - Vm^T c (``out`` may be ``x``), block by block as ``_project``: Vm^T c in
    Vm's dtype (each entry a sum of len(c) terms), then subtracted in out's dtype (a float64
    out over a float32 Vm: slices of ``_COLUMN_CHUNK`` columns, each a temporary of Vm's
    dtype)."""
    cn = c.to(Vm.dtype)
    if out.dtype != Vm.dtype:  # a float64 residual over a float32 basis: slices, not blocks
        step = _COLUMN_CHUNK
        for s in range(0, Vm.shape[1], step):
            torch.sub(x[s:s + step], Vm[:, s:s + step].T @ cn, out=out[s:s + step])
        return
    blocks, cols = _as_blocks(Vm, block)
    shape = (len(blocks), 1, block)
    torch.baddbmm(x[:cols].view(shape), cn.expand(len(blocks), 1, -1), blocks, alpha=-1.0,
                  out=out[:cols].view(shape))
    torch.addmv(x[cols:], Vm[:, cols:].T, cn, alpha=-1.0, out=out[cols:])


def _norm(r: torch.Tensor) -> float:
    return math.sqrt(_project(r[None], r).item())


class Workspace:
    """How a solve uses memory, and buffers it may reuse from one call to the next
    (``eigsh(..., workspace=ws)``).

    ``ncv``: the Lanczos basis size (default 20, at least 2k + 1); ``low_memory``: the basis
    layout (True: a float32 basis and no kept products, 4 ``ncv`` bytes per parameter and k
    more HVPs to certify; False: the basis and its kept products; None, the default: chosen
    from the memory free on the operator's device, ``solvers.memory``); ``eigenvectors``:
    return the Ritz vectors (k more parameter-sized vectors); ``timed``: record each solve's
    seconds by section in ``EigenResult.timings`` (``solvers.timing``). On a CPU the first
    write to fresh pages of a parameter-sized basis costs a good part of a call's own work,
    and the paper's spectrum calls the solver once per mini-batch: one workspace for all of
    them pages the basis in once. Holds memory until it is dropped."""

    def __init__(self, ncv: int | None = None, low_memory: bool | None = None,
                 eigenvectors: bool = False, timed: bool = False) -> None:
        if ncv is not None and (not isinstance(ncv, int) or ncv < 3):
            raise ValueError(f"ncv must be an integer >= 3; got {ncv!r}")
        self._buffers: dict[tuple, torch.Tensor] = {}
        self.ncv, self.low_memory, self.eigenvectors = ncv, low_memory, bool(eigenvectors)
        self.timed = timed

    def empty(self, name: str, shape: tuple[int, ...], device, dtype) -> torch.Tensor:
        key = (name, tuple(shape), torch.device(device), dtype)
        if key not in self._buffers:
            self._buffers = {k: v for k, v in self._buffers.items() if k[0] != name}
            self._buffers[key] = torch.empty(shape, device=device, dtype=dtype)
        return self._buffers[key]


def _random_fill_(r: torch.Tensor, g: torch.Generator) -> None:
    """r's entries drawn from N(0, 1) by the CPU generator g, in r's dtype (a float32 draw
    costs a sixth of a float64 one)."""
    if r.device.type == "cpu":
        r.normal_(generator=g)
    else:
        r.copy_(torch.randn(r.shape, generator=g, dtype=r.dtype))


def _orthogonalise(r: torch.Tensor, hv: torch.Tensor, Vm: torch.Tensor, two_passes: bool
                   ) -> tuple[np.ndarray, float]:
    """r = hv less its components on the whole basis Vm (classical Gram-Schmidt); returns
    the components removed (T's new column) and beta = ||r||. A second pass where the first
    cancelled most of hv ("twice is enough", Kahan-Parlett; the DGKS criterion), or always
    with ``two_passes``. Where hv has r's dtype, r = hv - Vm^T c is written in one pass,
    without copying hv first."""
    x = hv if hv.dtype == r.dtype else r.copy_(hv)
    c = _project(Vm, x)
    _subtract(r, x, Vm, c)
    beta = _norm(r)
    if two_passes or beta < 1e-2 * math.hypot(c.norm().item(), beta):
        c2 = _project(Vm, r)
        _subtract(r, r, Vm, c2)
        c += c2
        beta = _norm(r)
    return c.cpu().numpy(), beta
