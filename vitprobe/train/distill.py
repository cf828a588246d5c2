"""DeiT's distillation: the objectives and a training criterion that runs the teacher."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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
