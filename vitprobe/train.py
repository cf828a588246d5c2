"""The training loop: AdamW, timm's linear warm-up then cosine decay, label smoothing / mixup,
gradient clipping, AMP and channels-last on CUDA, per-epoch test evaluation, and a run folder
that survives a kill.

Run folder (``run_dir``): ``config.json``; ``state.pt`` (everything needed to resume:
weights, optimiser, step, RNG; loaded with ``weights_only=True``); ``metrics.jsonl`` (one line
per epoch); ``init.safetensors`` and ``epochs/epoch-NNN.safetensors`` (for Hessian spectra at
several epochs and training trajectories); ``model.safetensors`` once training is complete.
Every file is written atomically, so a kill at any moment leaves the last good state.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import results
from .board import Board
from .data import Augment, Loader
from .features import eval_mode, explicit_attention

log = logging.getLogger("vitprobe.train")


def _resume_point(run_dir: Path, device: torch.device) -> dict | None:
    """What a run resumes from: its ``state.pt``; when that is unreadable (truncated, empty,
    corrupt), the newest intact epoch checkpoint — weights only, so the optimizer's moments
    restart — with a warning; ``None`` for a fresh run. With neither: a ValueError naming
    the folder to delete."""
    import pickle
    import zipfile

    path = run_dir / "state.pt"
    if not path.is_file():
        return None
    try:
        return results.load_state(path, map_location=device)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as e:
        reason = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
    records = []
    if (run_dir / "metrics.jsonl").is_file():
        records = [json.loads(line) for line in
                   (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    for ckpt in sorted((run_dir / "epochs").glob("epoch-*.safetensors"), reverse=True):
        epoch = int(ckpt.stem.split("-")[1])
        done = [m for m in records if m.get("epoch", 0) <= epoch]
        if len(done) < epoch:
            continue  # its metrics were not recorded: not a complete epoch
        try:
            weights = results.load_weights(ckpt, device)
        except Exception:  # safetensors raises its own error types
            continue
        log.warning("%s is unreadable (%s); resuming from the end of epoch %d (%s): the "
                    "optimizer's moments restart, so the run will not be bit-equal to an "
                    "uninterrupted one", path, reason, epoch, ckpt.name)
        return {"model": weights, "step": int(done[-1]["step"]), "metrics": done}
    raise ValueError(f"{path} is unreadable ({reason}) and no epoch checkpoint of {run_dir} "
                     f"is intact: delete {run_dir} and rerun to train it again")


def _all_finite(tensors: list[torch.Tensor], device: torch.device, world: int) -> bool:
    """Whether every tensor is finite, agreed by all ranks (the max-abs norm: it cannot
    overflow, and it is finite exactly when every element is)."""
    bad = float(bool(tensors) and not torch.isfinite(
        torch.nn.utils.get_total_norm(tensors, norm_type=math.inf, foreach=True)).item())
    if world > 1:
        bad = _all_sum([bad], device)[0]
    return bad == 0


def _diverged(what: str, epoch: int, step: int, run_dir: Path | None, lr: float):
    """Stop training: nothing non-finite is saved; the last finite checkpoint stays."""
    where = (f"; the last finite checkpoint stays in {run_dir} (state.pt and the epoch "
             f"checkpoints; nothing from this step was saved): delete that folder and rerun "
             f"with a lower learning rate than {lr:g}" if run_dir else
             f"; rerun with a lower learning rate than {lr:g}")
    raise TrainingDiverged(f"{what} at epoch {epoch + 1} step {step}{where}")


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class Recipe:
    # passes over the training set; a fraction ends part way through the last one (1.7: one
    # pass, then the first 70 % of the second pass's shuffled order), schedule included
    epochs: float
    batch_size: int
    lr: float
    weight_decay: float = 0.05
    warmup_epochs: float = 0.0
    warmup_lr: float = 1e-6  # the warm-up's first learning rate (timm's warmup_lr_init)
    min_lr: float = 1e-6
    grad_clip: float | None = None
    drop_path_rate: float = 0.0
    augment: Augment = field(default_factory=Augment)
    # progressive resizing (fast.ai; Tan & Le 2021, EfficientNetV2): (until_epoch, img_size)
    # stages, ascending; steps before ``until_epoch`` train on batches resized (bilinear,
    # antialiased, after augmentation) to ``img_size`` square, later steps at the data's own
    # size. ((1.0, 20),): the first epoch at 20 px. Evaluation and probes always see
    # the data's size. The model must take other sizes (our ViTs resample their position
    # table; ResNets and AlterNets are size-agnostic).
    progressive: tuple[tuple[float, int], ...] = ()
    train_fraction: float = 1.0   # of the training set, class-stratified
    test_limit: int | None = None  # evaluate on the first n test images (None: all)
    eval_batch_size: int = 500
    # the paper's Hessian protocol: batch 16, top-5, loss + l2 (weight decay as l2)
    hessian_batches: int = 10
    # the training precision (``PRECISIONS``): part of the recipe, recorded with the run
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; allowed: "
                             f"{', '.join(PRECISIONS)}")
        untils = [u for u, _ in self.progressive]
        if untils != sorted(untils) or any(u <= 0 or int(sz) != sz or sz < 1
                                           for u, sz in self.progressive):
            raise ValueError(f"progressive takes (until_epoch, img_size) stages with positive, "
                             f"ascending epochs and integer sizes; got {self.progressive!r}")


@dataclass
class TrainConfig:
    recipe: Recipe
    seed: int = 0
    device: str = "cpu"
    amp: bool = True               # the recipe's precision; False: float32 whatever it says
    compile: bool = False          # torch.compile the model
    channels_last: bool = True     # CUDA only
    # attention kernel while training: fused scaled_dot_product_attention (True), the explicit
    # softmax path (False), or by device (None): fused on CUDA, explicit on CPU, where the
    # flash-attention backward is slow at ViT sequence lengths
    # (python -m benchmarks.train_throughput measures both)
    fused_attention: bool | None = None
    # TensorBoard log folder: per-step loss and learning rate, per-epoch accuracy (rank 0)
    tensorboard: str | None = None
    save_every_s: float = 120.0    # resumable state at least this often
    save_every_steps: int | None = None
    keep_epoch_checkpoints: bool = True
    progress: bool = True
    # test-set evaluations: after every epoch (None), or at most this many, evenly spaced,
    # the last epoch always; a small data fraction trained for the full set's steps runs tens
    # of short epochs, each of which would otherwise evaluate the whole test set. The weights
    # are the same either way (evaluation draws no random numbers and updates nothing).
    evaluations: int | None = None


def distillation_loss(cls_logits: torch.Tensor, dist_logits: torch.Tensor,
                      teacher_logits: torch.Tensor, targets: torch.Tensor, kind: str = "soft",
                      alpha: float = 0.5, tau: float = 1.0) -> torch.Tensor:
    """DeiT's distillation objectives (Touvron et al. 2021, §4):

    soft: (1 - α)·CE(cls, y) + α·τ²·KL(softmax(teacher/τ) ‖ softmax(dist/τ));
    hard: ½·CE(cls, y) + ½·CE(dist, argmax teacher).
    """
    if kind == "hard":
        return 0.5 * F.cross_entropy(cls_logits, targets) + \
            0.5 * F.cross_entropy(dist_logits, teacher_logits.argmax(-1))
    if kind != "soft":
        raise ValueError(f"distillation must be 'hard' or 'soft'; got {kind!r}")
    kl = F.kl_div(F.log_softmax(dist_logits / tau, -1), F.log_softmax(teacher_logits / tau, -1),
                  reduction="batchmean", log_target=True)
    return (1 - alpha) * F.cross_entropy(cls_logits, targets) + alpha * tau * tau * kl


@dataclass
class Distillation:
    """A training criterion for a student with a distillation head (timm's
    VisionTransformerDistilled in distilled-training mode returns (cls, dist) logits)."""

    teacher: nn.Module
    kind: str = "soft"
    alpha: float = 0.5
    tau: float = 1.0

    def __call__(self, outputs, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        if not isinstance(outputs, tuple | list):
            raise ValueError("the student must return (class, distillation) logits in training; "
                             "use a -distilled model")
        with torch.no_grad():
            self.teacher.eval()
            t = self.teacher(inputs).float()
        return distillation_loss(outputs[0].float(), outputs[1].float(), t, targets, self.kind,
                                 self.alpha, self.tau)


# how ``fit`` schedules the learning rate; runs cached under another schedule are not reused
# (``studies.cache.run_config`` records it, with ``data.CROP_FLIP``)
SCHEDULE = "timm CosineLRScheduler per step, warmup_prefix, warmup_lr_init=Recipe.warmup_lr"


def lr_scheduler(optimizer: torch.optim.Optimizer, r: Recipe, total: int, warmup: int):
    """timm's ``CosineLRScheduler`` stepped per optimiser update: a linear warm-up over
    ``warmup`` steps from ``r.warmup_lr`` (update ``t`` < ``warmup`` trains at
    ``warmup_lr + t·(lr − warmup_lr)/warmup``), then half a cosine from ``r.lr`` to
    ``r.min_lr`` over the remaining ``total − warmup`` steps."""
    from timm.scheduler import CosineLRScheduler

    return CosineLRScheduler(optimizer, t_initial=max(1, total - warmup), lr_min=r.min_lr,
                             warmup_t=warmup, warmup_lr_init=r.warmup_lr, warmup_prefix=True,
                             t_in_epochs=False)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on 1-D tensors (biases, norms) and on the model's ``no_weight_decay()``."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


# the precisions a recipe may train in: float32, or autocast to bf16 / fp16
PRECISIONS = ("float32", "bfloat16", "float16")


def autocast_dtype(device: torch.device, precision: str | bool | None) -> torch.dtype | None:
    """The autocast dtype ``fit`` trains under: the recipe's ``precision`` as named, on every
    device alike (a preset trains the same model on any CPU: no timing decides it); fp16 on a
    CUDA device without bf16 is refused rather than substituted. ``False``/``None``/
    ``"float32"``: none (float32)."""
    if precision in (None, False, "float32"):
        return None
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{device} has no bfloat16; train with precision float16 or float32")
    return torch.bfloat16 if precision == "bfloat16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context to ``dtype`` (``fit`` passes the one recorded in the run, so a
    resumed run keeps the precision it started with); None is float32, with TF32 off on CUDA
    (``float32_matmul``)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else \
        float32_matmul(device)


@contextmanager
def float32_matmul(device: torch.device):
    """IEEE float32 matrix products and convolutions on CUDA (TF32 off, restored after), so a
    float32 recipe means float32 on every device; nothing to do on a CPU."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def fused_attention(config: TrainConfig) -> bool:
    """Whether ``fit`` trains on fused SDPA (``config.fused_attention``; by device if None)."""
    if config.fused_attention is not None:
        return config.fused_attention
    return torch.device(config.device).type == "cuda"


def train_size(step: int, steps_per_epoch: int,
               stages: tuple[tuple[float, int], ...]) -> int | None:
    """The image size training step ``step`` (0-based) runs at under ``Recipe.progressive``;
    None: the data's own size."""
    for until, size in stages:
        if step < round(until * steps_per_epoch):
            return int(size)
    return None


def fused_adamw(model: nn.Module, device: torch.device) -> bool | None:
    """AdamW's fused kernel where torch has one (CPU, CUDA) and every parameter is a float:
    one kernel per step instead of ~10 per parameter tensor. None: torch's default."""
    ok = device.type in ("cpu", "cuda") and all(p.is_floating_point()
                                                 for p in model.parameters())
    return True if ok else None


def distributed() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(values: list[float], device: torch.device) -> list[float]:
    import torch.distributed as dist

    if distributed()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64,
                     device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def evaluate(model: nn.Module, loader: Loader, amp: torch.dtype | None = None) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on ``loader`` (eval mode, restored after),
    under ``autocast(device, amp)`` (None: float32); summed over ranks when the loader is
    sharded."""
    total, loss_sum, correct = 0, 0.0, 0
    device = loader.device
    with eval_mode(model):
        for x, y in loader.iterate(0):
            with autocast(device, amp):
                out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").item()
            correct += (out.argmax(-1) == y).sum().item()
            total += len(y)
    if loader.world_size > 1:
        loss_sum, correct, total = _all_sum([loss_sum, correct, total], device)
    return {"loss": loss_sum / total, "acc": correct / total}


_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype_name(dtype: torch.dtype | None) -> str:
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def _rng_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(model: nn.Module, train_loader: Loader, test_loader: Loader | None, config: TrainConfig,
        run_dir: str | Path | None = None,
        on_step: Callable[[int], None] | None = None,
        criterion: Callable | None = None) -> list[dict]:
    """Train ``model`` in place; resume from ``run_dir/state.pt`` when it exists.

    Returns the per-epoch metrics. On CPU, an interrupted-and-resumed run ends with exactly
    the weights of an uninterrupted one (data order and augmentation are functions of
    (seed, epoch, step); the RNG state is checkpointed).
    """
    board = Board(config.tensorboard if distributed()[0] == 0 else None)
    try:
        with nullcontext() if fused_attention(config) else explicit_attention(model):
            return _fit(model, train_loader, test_loader, config, run_dir, on_step, criterion,
                        board)
    finally:
        board.close()


def _fit(model: nn.Module, train_loader: Loader, test_loader: Loader | None, config: TrainConfig,
         run_dir: str | Path | None = None,
         on_step: Callable[[int], None] | None = None,
         criterion: Callable | None = None, board: Board | None = None) -> list[dict]:
    """The training loop as a sequence of named steps (``_Training``'s methods)."""
    t = _Training(model, train_loader, test_loader, config, run_dir, criterion,
                  board or Board(None))
    t.resume_or_start()
    while t.step < t.total:
        t.train_epoch(on_step)
        t.end_epoch()
    t.save_final()
    return t.metrics


class _Training:
    """One run of ``fit``: its optimiser, precision, schedule, position and records."""

    def __init__(self, model, train_loader, test_loader, config, run_dir, criterion,
                 board) -> None:
        r = self.recipe = config.recipe
        self.model, self.config, self.criterion, self.board = model, config, criterion, board
        self.train_loader, self.test_loader = train_loader, test_loader
        self.device = device = torch.device(config.device)
        rank, self.world = distributed()
        if self.world > 1 and train_loader.world_size != self.world:
            raise ValueError(f"under torch.distributed ({self.world} ranks) the training "
                             f"loader must be sharded: Loader(..., rank=rank, "
                             f"world_size={self.world})")
        self.writer = rank == 0
        self.run_dir = Path(run_dir) if run_dir else None
        model.to(device)
        if device.type == "cuda" and config.channels_last:
            model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(param_groups(model, r.weight_decay), lr=r.lr,
                                           betas=(0.9, 0.999),
                                           fused=fused_adamw(model, device))
        self.amp_dtype = self._agreed_precision()
        self.scaler = torch.amp.GradScaler(device.type,
                                           enabled=self.amp_dtype is torch.float16)
        self.steps_per_epoch = len(train_loader)
        # a fractional last epoch stops part way
        self.total = round(r.epochs * self.steps_per_epoch)
        self.num_epochs = math.ceil(self.total / self.steps_per_epoch)
        self.warmup = round(r.warmup_epochs * self.steps_per_epoch)
        self.scheduler = lr_scheduler(self.optimizer, r, self.total, self.warmup)
        self.step, self.metrics = 0, []
        self.last_size = None
        self.t_start = self.last_save = time.monotonic()

    def _agreed_precision(self) -> torch.dtype | None:
        """The autocast dtype of the recipe's precision (float32 when ``amp`` is off): the
        same on every rank and every machine."""
        return autocast_dtype(self.device, self.config.amp and self.recipe.precision)

    # -- start
    def resume_or_start(self) -> None:
        """Resume from the run folder's state (or an epoch checkpoint), else save the
        initial weights; the training model (DDP, compiled) is built after."""
        torch.manual_seed(self.config.seed)
        state = _resume_point(self.run_dir, self.device) if self.run_dir else None
        if state is not None and "optimizer" not in state:  # an epoch checkpoint
            self.model.load_state_dict(state["model"])
            self.step, self.metrics = state["step"], state["metrics"]
        elif state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if "scaler" in state:
                self.scaler.load_state_dict(state["scaler"])
            self.step, self.metrics = int(state["step"]), list(state["metrics"])
            # the precision the run started with, whatever this process would measure now
            self.amp_dtype = _DTYPES.get(state.get("autocast", ""), self.amp_dtype)
            _set_rng_state({k: (v.cpu() if isinstance(v, torch.Tensor) else
                                [t.cpu() for t in v]) for k, v in state["rng"].items()})
            log.info("resuming %s at step %d/%d", self.run_dir, self.step, self.total)
        elif self.run_dir and self.config.keep_epoch_checkpoints and self.writer:
            results.save_weights(self.run_dir / "init.safetensors", self.model.state_dict())
        train_model = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                else None)
        self.train_model = torch.compile(train_model) if self.config.compile else train_model

    def checkpoint(self) -> None:
        if self.run_dir is None or not self.writer:
            return
        results.save_state(self.run_dir / "state.pt", {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "step": self.step, "metrics": self.metrics,
            "rng": _rng_state(), "autocast": _dtype_name(self.amp_dtype)})

    # -- one optimisation step
    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The batch at the step's progressive-resizing size and memory format."""
        size = train_size(self.step, self.steps_per_epoch, self.recipe.progressive)
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
        if self.writer and size != self.last_size:
            log.info("step %d: training at %s px", self.step, size or x.shape[-1])
            self.last_size = size
        if self.device.type == "cuda" and self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.amp_dtype):
            out = self.train_model(x)
        if self.criterion is not None:
            return self.criterion(out, y, x)
        if self.train_loader.soft_targets:
            return torch.sum(-y * F.log_softmax(out.float(), dim=-1), dim=-1).mean()
        return F.cross_entropy(out.float(), y,
                               label_smoothing=self.recipe.augment.label_smoothing)

    def optimise(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> float:
        """One step on (x, y): learning rate, loss, backward, clipping, update — refusing
        any non-finite loss, gradient or weight (nothing non-finite is ever saved)."""
        r, model = self.recipe, self.model
        self.scheduler.step_update(self.step)
        loss = self._loss(x, y)
        loss_value = loss.item()
        if self.world > 1:  # every rank must see the same verdict, or one would hang
            loss_value = _all_sum([loss_value], self.device)[0] / self.world
        if not math.isfinite(loss_value):
            _diverged(f"loss became {loss_value}", epoch, self.step, self.run_dir, r.lr)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if r.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
        # fp16's scaler skips non-finite steps itself; otherwise a non-finite gradient
        # would be written into the weights
        if not self.scaler.is_enabled() and not _all_finite(
                [p.grad for p in model.parameters() if p.grad is not None], self.device,
                self.world):
            _diverged("a gradient became non-finite", epoch, self.step, self.run_dir, r.lr)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if not _all_finite(list(model.parameters()), self.device, self.world):
            _diverged("the weights became non-finite after the update", epoch, self.step,
                      self.run_dir, r.lr)
        self.step += 1
        if self.board.writer is not None:
            self.board.scalar("train/loss", loss_value, self.step)
            self.board.scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.step)
        return loss_value

    # -- an epoch
    def train_epoch(self, on_step: Callable[[int], None] | None) -> None:
        """The steps of the current epoch (from where a resumed run stopped), saving the
        resumable state on the configured cadence."""
        spe, config = self.steps_per_epoch, self.config
        self.epoch, self.epoch_start = divmod(self.step, spe)
        self.model.train()
        bar = tqdm(self.train_loader.iterate(self.epoch, self.epoch_start),
                   initial=self.epoch_start, total=min(spe, self.total - self.epoch * spe),
                   desc=f"epoch {self.epoch + 1}/{self.num_epochs}",
                   disable=not (config.progress and self.writer),
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=False)
        self.loss_sum, self.n_seen, self.t_epoch, self.sizes = 0.0, 0, time.monotonic(), set()
        for x, y in bar:
            x = self._inputs(x)
            self.sizes.add(x.shape[-1])
            loss_value = self.optimise(x, y, self.epoch)
            self.loss_sum += loss_value * len(y)
            self.n_seen += len(x)
            if self.step % 10 == 0:
                bar.set_postfix(loss=f"{self.loss_sum / self.n_seen:.3f}", refresh=False)
            if on_step is not None:
                on_step(self.step)
            now = time.monotonic()
            if (config.save_every_steps and self.step % config.save_every_steps == 0) or \
                    now - self.last_save > config.save_every_s:
                self.checkpoint()
                self.last_save = now
            if self.step % spe == 0 or self.step >= self.total:
                break
        bar.close()

    def _evaluates(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) ends with a test evaluation."""
        n, k = self.num_epochs, self.config.evaluations
        if k is None or k >= n or epoch + 1 == n:
            return True
        return k > 1 and (epoch + 1) % math.ceil(n / k) == 0

    def end_epoch(self) -> None:
        """The epoch's record (evaluated on the test set), its checkpoints and logs."""
        epoch = self.epoch
        self.scheduler.step_update(max(0, self.step - 1))  # the last update's rate
        record = {"epoch": epoch + 1, "step": self.step,
                  "lr": self.optimizer.param_groups[0]["lr"],
                  "train_loss": (self.loss_sum / max(1, self.n_seen)
                                 if self.epoch_start == 0 else None),
                  "epoch_seconds": time.monotonic() - self.t_epoch,
                  "autocast": _dtype_name(self.amp_dtype), "train_sizes": sorted(self.sizes)}
        if self.test_loader is not None and self._evaluates(epoch):
            ev = evaluate(self.model, self.test_loader, amp=self.amp_dtype)
            record.update(test_loss=ev["loss"], test_acc=ev["acc"])
        self.metrics.append(record)
        if not self.writer:
            return
        for key in ("test_acc", "test_loss", "train_loss"):
            self.board.scalar(f"epoch/{key}", record.get(key), epoch + 1)
        log.info("epoch %d/%d: %s", epoch + 1, self.num_epochs, "  ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in record.items() if k != "epoch" and v is not None))
        if self.run_dir:
            if self.config.keep_epoch_checkpoints:
                results.save_weights(self.run_dir / "epochs" /
                                     f"epoch-{epoch + 1:03d}.safetensors",
                                     self.model.state_dict())
            self.checkpoint()
            results.write_jsonl(self.run_dir / "metrics.jsonl", self.metrics)
            self.last_save = time.monotonic()

    def save_final(self) -> None:
        if self.run_dir and self.writer:
            results.save_weights(self.run_dir / "model.safetensors", self.model.state_dict(),
                                 {"train_seconds": time.monotonic() - self.t_start})
