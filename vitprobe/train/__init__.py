"""Training: ``fit(model, train_loader, test_loader, TrainConfig(recipe, ...), run_dir)``.

- ``loop``: the loop itself, read top-down (``fit``, ``evaluate``);
- ``recipe``: what a run trains with (``Recipe``, ``TrainConfig``);
- ``schedule``: parameter groups, the learning-rate schedule, progressive resizing;
- ``precision``: float32 or autocast, and the kernels a device trains with;
- ``checkpoint``: the resumable state (kind, version, checksum) and where a run resumes;
- ``distill``: DeiT's distillation criterion.

Run folder (``run_dir``): ``config.json``; ``state.pt`` (everything needed to resume:
weights, optimiser, step, RNG; loaded with ``weights_only=True``); ``metrics.jsonl`` (one line
per epoch); ``init.safetensors`` and ``epochs/epoch-NNN.safetensors`` (for Hessian spectra at
several epochs and training trajectories); ``model.safetensors`` once training is complete.
Every file is written atomically, so a kill at any moment leaves the last good state.
"""

from .checkpoint import STATE_KIND, STATE_VERSION, Resume, resume_point
from .distill import Distillation, distillation_loss
from .loop import TrainingDiverged, evaluate, fit
from .precision import PRECISIONS, autocast, autocast_dtype, fused_adamw
from .recipe import Recipe, TrainConfig
from .schedule import SCHEDULE, lr_scheduler, param_groups, train_size

__all__ = ["PRECISIONS", "SCHEDULE", "STATE_KIND", "STATE_VERSION", "Distillation", "Recipe",
           "Resume", "TrainConfig", "TrainingDiverged", "autocast", "autocast_dtype",
           "distillation_loss", "evaluate", "fit", "fused_adamw",
           "lr_scheduler", "param_groups", "resume_point", "train_size"]
