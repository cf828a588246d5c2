"""The training loop, read top-down: ``fit`` resumes or starts a run, then epoch by epoch
optimises (learning rate, loss, backward, clipping, update — refusing any non-finite loss,
gradient or weight), evaluates on the test set and checkpoints; ``_Training`` holds one
run's optimiser, precision, schedule, position and records. AdamW, timm's linear warm-up then
cosine decay, label smoothing / mixup, gradient clipping, AMP and channels-last on CUDA,
DDP under torchrun."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import results
from ..board import Board
from ..data import Loader
from ..distributed import all_sum, rank_and_world
from ..modes import eval_mode, explicit_attention
from .checkpoint import resume_point, save_state, set_rng_state
from .precision import DTYPES, autocast, autocast_dtype, dtype_name, fused_adamw
from .recipe import TrainConfig
from .schedule import lr_scheduler, param_groups, train_size

log = logging.getLogger("vitprobe.train")


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


def _all_finite(tensors: list[torch.Tensor], device: torch.device, world: int) -> bool:
    """Whether every tensor is finite, agreed by all ranks (the max-abs norm: it cannot
    overflow, and it is finite exactly when every element is)."""
    bad = float(bool(tensors) and not torch.isfinite(
        torch.nn.utils.get_total_norm(tensors, norm_type=math.inf, foreach=True)).item())
    if world > 1:
        bad = all_sum([bad])[0]
    return bad == 0


def _diverged(what: str, epoch: int, step: int, run_dir: Path | None, lr: float):
    """Stop training: nothing non-finite is saved; the last finite checkpoint stays."""
    where = (f"; the last finite checkpoint stays in {run_dir} (state.pt and the epoch "
             f"checkpoints; nothing from this step was saved): delete that folder and rerun "
             f"with a lower learning rate than {lr:g}" if run_dir else
             f"; rerun with a lower learning rate than {lr:g}")
    raise TrainingDiverged(f"{what} at epoch {epoch + 1} step {step}{where}")


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
        loss_sum, correct, total = all_sum([loss_sum, correct, total])
    return {"loss": loss_sum / total, "acc": correct / total}


def fit(model: nn.Module, train_loader: Loader, test_loader: Loader | None, config: TrainConfig,
        run_dir: str | Path | None = None,
        on_step: Callable[[int], None] | None = None,
        criterion: Callable | None = None) -> list[dict]:
    """Train ``model`` in place; resume from ``run_dir/state.pt`` when it exists.

    Returns the per-epoch metrics. On CPU, an interrupted-and-resumed run ends with exactly
    the weights of an uninterrupted one (data order and augmentation are functions of
    (seed, epoch, step); the RNG state is checkpointed).
    """
    board = Board(config.tensorboard if rank_and_world()[0] == 0 else None)
    try:
        with nullcontext() if config.attention_is_fused() else explicit_attention(model):
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
        rank, self.world = rank_and_world()
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
        self.train_model: nn.Module = model  # DDP / compiled, set by resume_or_start
        # the current epoch (0-based), the step it started at, its loss sum, images seen,
        # start time and the image sizes it trained at (reset by train_epoch)
        self.epoch, self.epoch_start = 0, 0
        self.loss_sum, self.n_seen, self.t_epoch, self.sizes = 0.0, 0, self.t_start, set()

    def _agreed_precision(self) -> torch.dtype | None:
        """The autocast dtype of the recipe's precision (float32 when ``amp`` is off): the
        same on every rank and every machine."""
        return autocast_dtype(self.device, self.config.amp and self.recipe.precision)

    # -- start
    def resume_or_start(self) -> None:
        """Resume from the run folder's state (or an epoch checkpoint), else save the
        initial weights; the training model (DDP, compiled) is built after."""
        torch.manual_seed(self.config.seed)
        at = resume_point(self.run_dir, self.device) if self.run_dir else None
        if at is not None:
            self.model.load_state_dict(at.model)
            self.step, self.metrics = at.step, at.metrics
        if at is not None and at.kind == "state":
            self.optimizer.load_state_dict(at.optimizer)
            if at.scaler is not None:
                self.scaler.load_state_dict(at.scaler)
            # the precision the run started with, whatever this process would measure now
            self.amp_dtype = DTYPES.get(at.autocast or "", self.amp_dtype)
            set_rng_state({k: (v.cpu() if isinstance(v, torch.Tensor) else
                               [t.cpu() for t in v]) for k, v in at.rng.items()})
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
        save_state(self.run_dir, self.model, self.optimizer, self.scaler, self.step,
                   self.metrics, dtype_name(self.amp_dtype))

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
            loss_value = all_sum([loss_value])[0] / self.world
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
                  "autocast": dtype_name(self.amp_dtype), "train_sizes": sorted(self.sizes)}
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
