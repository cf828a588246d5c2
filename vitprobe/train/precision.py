"""Training precision (float32, or autocast to bf16 / fp16) and the kernels a device trains
with (fused AdamW, fused or explicit attention): device tuning kept out of the loop."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

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


DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_name(dtype: torch.dtype | None) -> str:
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def fused_adamw(model: nn.Module, device: torch.device) -> bool | None:
    """AdamW's fused kernel where torch has one (CPU, CUDA) and every parameter is a float:
    one kernel per step instead of ~10 per parameter tensor. None: torch's default."""
    ok = device.type in ("cpu", "cuda") and all(p.is_floating_point()
                                                 for p in model.parameters())
    return True if ok else None
