"""Loss landscapes (Li et al. 2018; Park & Kim 2022, Figs. 1a, 1b, 6): random directions with
filter normalisation, 1-D and 2-D slices, interpolation between checkpoints, and training
trajectories (the paper's polar view and Li et al.'s PCA projection).

Every point is evaluated at θ + α·d₁ + β·d₂ built from the *original* weights with
``functional_call`` — no accumulated drift, and the user's model is never modified.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from . import results
from .curvature import as_batches, check_non_negative
from .distributed import all_reduce, rank_and_world
from .features import check_mode, probe_mode
from .results import atomic_write_bytes
from .serial import Serialised

Direction = dict[str, torch.Tensor]
NORMS = ("filter", "layer", "paper", None)
# the paper zeroes these (absolute / relative position tables) besides 1-D tensors
DEFAULT_EXCLUDE = (r"pos_embed", r"relative_position_bias_table")


# ------------------------------------------------------------------------------- directions
def random_direction(model: nn.Module, norm: str | None = "filter", ignore: str | None = "biasbn",
                     exclude: Sequence[str] = DEFAULT_EXCLUDE, seed: int = 0) -> Direction:
    """A seeded Gaussian direction in parameter space, normalised to the weights.

    norm: ``"filter"`` (Li et al. 2018: each output filter d[i] rescaled to ‖θ[i]‖),
    ``"layer"`` (the whole tensor to ‖θ‖), ``"paper"`` (Park & Kim's code: norms taken along
    dim 0, i.e. per input position across filters), ``None`` (raw Gaussian).
    ignore="biasbn" zeroes 1-D tensors (biases, norm scales); ``exclude`` zeroes tensors
    whose name matches any of these regular expressions. A normalised tensor whose weights
    are all zero (torchvision's ViT head at initialisation) gets a zero direction: the
    landscape is flat along it, and a warning names those tensors.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of 'filter', 'layer', 'paper', None; got {norm!r}")
    if ignore not in ("biasbn", None):
        raise ValueError(f"ignore must be 'biasbn' or None; got {ignore!r}")
    g = torch.Generator().manual_seed(seed)
    out, zero = {}, []
    for name, p in model.named_parameters():
        w = p.detach()
        d = torch.randn(w.shape, generator=g, dtype=torch.float64).to(w)
        if (ignore == "biasbn" and w.ndim <= 1) or any(re.search(e, name) for e in exclude):
            out[name] = torch.zeros_like(w)
            continue
        out[name] = normalize(d, w, norm)
        if norm is not None and not bool(w.any()):
            zero.append(name)
    if zero:
        warnings.warn(f"the {norm}-normalised direction is zero in {', '.join(zero)}: their "
                      f"weights are all zero (a freshly built torchvision ViT's head is), so "
                      f"the landscape cannot move along them; probe a trained model or use "
                      f"norm=None", stacklevel=2)
    return out


def normalize(d: torch.Tensor, w: torch.Tensor, norm: str | None) -> torch.Tensor:
    if norm is None:
        return d
    if norm == "layer" or w.ndim <= 1:
        return d * (w.norm() / (d.norm() + 1e-10))
    if norm == "filter":
        dims = tuple(range(1, w.ndim))
        vn = torch.linalg.vector_norm
        return d * (vn(w, dim=dims, keepdim=True) / (vn(d, dim=dims, keepdim=True) + 1e-10))
    return d * (w.norm(dim=0, keepdim=True) / (d.norm(dim=0, keepdim=True) + 1e-7))  # "paper"


def _dot(a: Direction, b: Direction) -> float:
    return sum((a[k].double() * b[k].double()).sum().item() for k in a)


def orthogonalize(d1: Direction, d2: Direction) -> Direction:
    """d2 minus its projection on d1 (one global inner product over all tensors)."""
    c = _dot(d1, d2) / max(_dot(d1, d1), 1e-30)
    return {k: d2[k] - c * d1[k] for k in d2}


def _check_direction(model: nn.Module, d: Direction) -> None:
    params = dict(model.named_parameters())
    extra = sorted(set(d) - set(params))
    if extra:
        raise ValueError(f"direction does not belong to this model: unknown tensors {extra[:3]}")
    for k, v in d.items():
        if v.shape != params[k].shape:
            raise ValueError(f"direction does not belong to this model: {k} has shape "
                             f"{tuple(v.shape)}, the model's {tuple(params[k].shape)}")


# ---------------------------------------------------------------------------------- surface
@dataclass(frozen=True)
class Surface(Serialised):
    """Loss (and accuracy) on a grid: ``loss.shape == tuple(len(c) for c in coords)``."""

    coords: tuple[np.ndarray, ...]
    loss: np.ndarray
    accuracy: np.ndarray
    l2_coef: float = 0.0
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)


class _Evaluator:
    """Loss and accuracy of the model at θ₀ + Σ c_i d_i, over fixed batches."""

    def __init__(self, model, loss_fn, data, l2_coef: float, bn_data=None) -> None:
        self.model, self.loss_fn, self.l2_coef = model, loss_fn, l2_coef
        self.theta = {k: p.detach() for k, p in model.named_parameters()}
        self.buffers = {k: b.detach() for k, b in model.named_buffers()}
        device = next(iter(self.theta.values())).device
        self.batches = [(x.to(device), y.to(device)) for x, y in as_batches(data)]
        self.total = sum(len(y) for _, y in self.batches)
        self.bn_batches = None if bn_data is None else [
            (x.to(device), y) for x, y in as_batches(bn_data)]

    def params_at(self, dirs: Sequence[Direction], coefs: Sequence[float]) -> dict:
        out = {}
        for k, t in self.theta.items():
            v = t
            for d, c in zip(dirs, coefs):
                if k in d and c != 0.0:
                    v = v + c * d[k]
            out[k] = v
        return out

    def _recalibrated_buffers(self, params: dict) -> dict:
        """BN running statistics re-estimated at these weights (cumulative average)."""
        buffers = {k: b.clone() for k, b in self.buffers.items()}
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(m, m.momentum, m.training) for m in bns]
        try:
            for m in bns:
                m.momentum = None
                m.train()
            for k in buffers:
                if k.endswith("running_mean"):
                    buffers[k].zero_()
                elif k.endswith("running_var"):
                    buffers[k].fill_(1.0)
                elif k.endswith("num_batches_tracked"):
                    buffers[k].zero_()
            for x, _ in self.bn_batches:
                functional_call(self.model, {**params, **buffers}, (x,))
        finally:
            for m, mom, tr in saved:
                m.momentum, m.training = mom, tr
        return buffers

    @torch.no_grad()
    def __call__(self, params: dict) -> tuple[float, float]:
        buffers = self._recalibrated_buffers(params) if self.bn_batches else self.buffers
        loss, correct = 0.0, 0
        for x, y in self.batches:
            out = functional_call(self.model, {**params, **buffers}, (x,))
            loss += self.loss_fn(out, y).item() * len(y)
            if y.ndim == 1 and out.ndim == 2:  # class labels; otherwise accuracy is NaN
                correct += (out.argmax(-1) == y).sum().item()
            else:
                correct = float("nan")
        loss /= self.total
        if self.l2_coef:
            loss += self.l2_coef * sum(p.norm().item() for p in params.values())
        return loss, correct / self.total


def _fingerprint(dirs: Sequence[Direction], coords, l2_coef, batches) -> str:
    h = hashlib.sha256()
    for d in dirs:
        for k in sorted(d):
            h.update(k.encode())
            h.update(d[k].detach().double().cpu().numpy().tobytes()[:4096])
            h.update(str(d[k].double().sum().item()).encode())
    for c in coords:
        h.update(np.asarray(c, dtype=np.float64).tobytes())
    h.update(str(l2_coef).encode())
    h.update(str(sum(len(y) for _, y in batches)).encode())
    return h.hexdigest()[:16]


class LossOptions(TypedDict, total=False):
    """What a landscape's loss is, besides model, loss_fn and data (``surface``'s keyword
    options)."""

    mode: str
    l2_coef: float
    bn_data: Any
    group: Any


def surface(model: nn.Module, loss_fn: Callable, data, directions: Sequence[Direction],
            steps: int | Sequence[int] = 21, span: float | Sequence[float] = 1.0, *,
            resume_path: str | Path | None = None, save_every_s: float = 30.0,
            progress: bool = False, **options: Unpack[LossOptions]) -> Surface:
    """Loss over a 1-D or 2-D grid of θ + α·d₁ (+ β·d₂), α, β ∈ [−span, span]: the loss of
    ``model`` and ``loss_fn(outputs, targets)`` on ``data`` (one batch or an iterable of
    them, averaged by size), in the probe's ``mode`` ("eval": BN running statistics; "train":
    batch statistics; dropout off in both), plus the paper's l2 term ``l2_coef`` · Σ_p ‖θ_p‖
    (as in Park & Kim's code). ``bn_data``: batches to re-estimate BN statistics from at
    every point (default: the model's running statistics); ``group``: a torch.distributed
    process group whose ranks share the grid points (round-robin; the full grid is
    all-reduced back to every rank).

    resume_path: an .npz that holds the partial grid, saved every ``save_every_s``;
    rerunning the same call continues where it stopped (each rank keeps its own file).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"surface(model, loss_fn, data, directions, ...) takes a model, got "
                        f"{type(model).__name__}")
    unknown = sorted(set(options) - set(LossOptions.__annotations__))
    if unknown:
        raise TypeError(f"surface() got an unexpected keyword argument {unknown[0]!r}")
    mode, l2_coef = options.get("mode", "eval"), options.get("l2_coef", 0.0)
    bn_data, group = options.get("bn_data"), options.get("group")
    check_mode(mode)
    check_non_negative("l2_coef", l2_coef)
    rank, world_size = (0, 1) if group is None else rank_and_world(group)
    directions = list(directions)
    if not 1 <= len(directions) <= 2:
        raise ValueError(f"give one or two directions; got {len(directions)}")
    for d in directions:
        _check_direction(model, d)
    steps = [steps] * len(directions) if isinstance(steps, int) else list(steps)
    spans = [span] * len(directions) if isinstance(span, int | float) else list(span)
    if len(steps) != len(directions) or len(spans) != len(directions):
        raise ValueError("steps and span need one value per direction")
    if any(s < 1 for s in steps):
        raise ValueError(f"steps must be >= 1; got {steps}")
    if any(s <= 0 for s in spans):
        raise ValueError(f"span must be > 0; got {spans}")
    coords = tuple(np.linspace(-s, s, n) if n > 1 else np.zeros(1) for s, n in zip(spans, steps))
    t0 = time.perf_counter()
    with probe_mode(model, mode):
        ev = _Evaluator(model, loss_fn, data, l2_coef, bn_data)
        loss = np.full(steps, np.nan)
        acc = np.full(steps, np.nan)
        key = _fingerprint(directions, coords, l2_coef, ev.batches)
        resume_path = Path(resume_path) if resume_path else None
        if resume_path and world_size > 1:
            resume_path = resume_path.with_name(f"{resume_path.stem}.rank{rank}"
                                                f"{resume_path.suffix}")
        if resume_path and resume_path.is_file():
            saved = np.load(resume_path)
            if str(saved["fingerprint"]) == key:
                loss, acc = saved["loss"].copy(), saved["accuracy"].copy()

        def save():
            if resume_path:
                import io

                buf = io.BytesIO()
                np.savez(buf, loss=loss, accuracy=acc, fingerprint=key)
                results.atomic_write_bytes(resume_path, buf.getvalue())

        points = list(itertools.product(*[range(n) for n in steps]))[rank::world_size]
        todo = [p for p in points if np.isnan(loss[p])]
        last = time.monotonic()
        try:
            for idx in tqdm(todo, desc="landscape", disable=not progress):
                params = ev.params_at(directions, [c[i] for c, i in zip(coords, idx)])
                loss[idx], acc[idx] = ev(params)
                if time.monotonic() - last > save_every_s:
                    save()
                    last = time.monotonic()
        except Exception:  # a reported failure: no partial file left behind
            if resume_path:
                resume_path.unlink(missing_ok=True)
            raise
        # done: the grid is the caller's to save; a kill before this point leaves the
        # partial file, from which the same call resumes
        if resume_path:
            resume_path.unlink(missing_ok=True)
        if world_size > 1:
            loss, acc = _gather_grid(loss, acc, points, group)
    return Surface(coords, loss, acc, l2_coef, time.perf_counter() - t0,
                   {"mode": mode, "bn_recalibrated": bn_data is not None})


def _gather_grid(loss: np.ndarray, acc: np.ndarray, mine: list, group) -> tuple:
    """Every rank filled its own points; sum the zero-elsewhere grids across ranks."""
    mask = np.zeros(loss.shape, dtype=bool)
    for p in mine:
        mask[p] = True
    t = torch.from_numpy(np.stack([np.where(mask, loss, 0.0), np.where(mask, acc, 0.0)]))
    t = all_reduce(t, group).numpy()
    return t[0], t[1]


def interpolate(model_a: nn.Module, model_b: nn.Module, loss_fn: Callable, data,
                steps: int = 21, span: tuple[float, float] = (0.0, 1.0),
                mode: str = "eval") -> Surface:
    """Loss along θ(t) = (1 − t)·θ_a + t·θ_b (buffers interpolated the same way)."""
    pa, pb = dict(model_a.named_parameters()), dict(model_b.named_parameters())
    if pa.keys() != pb.keys() or any(pa[k].shape != pb[k].shape for k in pa):
        raise ValueError("the two models have different parameters: interpolate needs the "
                         "same architecture")
    if steps < 2:
        raise ValueError(f"steps must be >= 2; got {steps}")
    ts = np.linspace(span[0], span[1], steps)
    ba, bb = dict(model_a.named_buffers()), dict(model_b.named_buffers())
    loss, acc = np.zeros(steps), np.zeros(steps)
    t0 = time.perf_counter()
    with probe_mode(model_a, mode):
        ev = _Evaluator(model_a, loss_fn, data, 0.0)
        for i, t in enumerate(ts):
            params = {k: (1 - t) * pa[k].detach() + t * pb[k].detach() for k in pa}
            ev.buffers = {k: ((1 - t) * ba[k] + t * bb[k]) if ba[k].is_floating_point()
                          else ba[k] for k in ba}
            loss[i], acc[i] = ev(params)
    return Surface((ts,), loss, acc, 0.0, time.perf_counter() - t0, {"mode": mode})


# ------------------------------------------------------------------------------ trajectory
@dataclass(frozen=True)
class Trajectory:
    """r_t = ‖θ_t − θ*‖ / ‖θ_0 − θ*‖ and the angle (radians) between θ_t − θ* and
    θ_0 − θ* (Park & Kim 2022, Fig. 1b); and the projection of θ_t − θ* on the top-2 PCA
    directions of the trajectory (Li et al. 2018), with their explained variance."""

    radius: np.ndarray
    angle: np.ndarray
    pca_coords: np.ndarray            # (T, 2)
    pca_directions: tuple[Direction, Direction]
    explained_variance: np.ndarray    # (2,)


def trajectory(states: Sequence[dict[str, torch.Tensor]], final: dict[str, torch.Tensor] | None =
               None, names: Sequence[str] | None = None) -> Trajectory:
    """From checkpoints θ_0 … θ_T (state dicts; θ* = the last one unless ``final``)."""
    if len(states) < 2:
        raise ValueError("a trajectory needs at least two checkpoints")
    final = final or states[-1]
    names = list(names or [k for k, v in final.items() if v.is_floating_point()])
    flat = torch.stack([torch.cat([s[k].double().reshape(-1) for k in names]) for s in states])
    star = torch.cat([final[k].double().reshape(-1) for k in names])
    diff = flat - star
    r0 = diff[0].norm()
    radius = (diff.norm(dim=1) / r0).numpy()
    cos = (diff @ diff[0]) / (diff.norm(dim=1) * r0).clamp_min(1e-30)
    angle = torch.arccos(cos.clamp(-1, 1)).numpy()
    centered = diff - diff.mean(0)
    _, S, Vh = torch.linalg.svd(centered, full_matrices=False)
    k = min(2, Vh.shape[0])
    comps = Vh[:k]
    if k < 2:
        comps = torch.cat([comps, torch.zeros_like(comps)])
    coords = (diff @ comps.T).numpy()
    var = (S ** 2 / (S ** 2).sum()).numpy()
    sizes = [final[k].numel() for k in names]
    dirs = tuple({k: c.view_as(final[k]).float() for k, c in zip(names, comp.split(sizes))}
                 for comp in comps)
    return Trajectory(radius, angle, coords, dirs, np.pad(var[:2], (0, 2 - min(2, len(var)))))


def to_vtk(surface: Surface, path: str | Path, log_loss: bool = False) -> Path:
    """A 2-D surface as a legacy ASCII VTK structured grid for ParaView (as loss-landscape's
    ``h52vtp`` exports it): points (α, β, loss) — or log(loss) with ``log_loss`` — with the
    loss as point data; written atomically. NaN/inf losses (a diverged grid point) are
    written as the grid's largest finite loss."""
    if len(surface.coords) != 2:
        raise ValueError(f"to_vtk takes a 2-D surface; got {len(surface.coords)}-D")
    a, b = (np.asarray(c, dtype=float) for c in surface.coords)
    z = np.asarray(surface.loss, dtype=float)
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        raise ValueError("every loss of the surface is NaN or inf: nothing to export")
    z = np.where(np.isfinite(z), z, finite.max())
    if log_loss:
        if (z <= 0).any():
            raise ValueError("log_loss needs positive losses")
        z = np.log(z)
    lines = ["# vtk DataFile Version 3.0", "vitprobe loss landscape", "ASCII",
             "DATASET STRUCTURED_GRID", f"DIMENSIONS {len(a)} {len(b)} 1",
             f"POINTS {len(a) * len(b)} double"]
    # VTK orders points with the first index fastest: x (α) varies first
    lines += [f"{a[i]:.9g} {b[j]:.9g} {z[i, j]:.9g}" for j in range(len(b)) for i in range(len(a))]
    lines += [f"POINT_DATA {len(a) * len(b)}", "SCALARS loss double 1", "LOOKUP_TABLE default"]
    lines += [f"{z[i, j]:.9g}" for j in range(len(b)) for i in range(len(a))]
    return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
