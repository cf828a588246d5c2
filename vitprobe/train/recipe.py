"""What a run trains with: the ``Recipe`` (epochs, batch, optimiser settings, schedule,
augmentation, progressive resizing, precision) and the ``TrainConfig`` of one run (seed,
device, kernels, checkpoint cadence)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..data import Augment
from .precision import PRECISIONS


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

    def attention_is_fused(self) -> bool:
        """Whether ``fit`` trains on fused SDPA (``fused_attention``; by device if None)."""
        if self.fused_attention is not None:
            return self.fused_attention
        return torch.device(self.device).type == "cuda"
