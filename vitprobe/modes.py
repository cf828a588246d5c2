"""The modes a model is run in, each set for a ``with`` block and restored afterwards even on
error: evaluation mode, and the explicit (twice-differentiable) attention path. The training
loop evaluates through them and the probes build on them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model.eval()`` for the duration; afterwards every module's own ``training`` flag is
    as it was (a model in mixed modes comes back mixed), even on error."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def explicit_attention(model: nn.Module) -> Iterator[list[nn.Module]]:
    """Switch every attention module (timm's ``fused_attn`` flag, ours included) to the
    explicit softmax path for the duration, and every other call of
    ``scaled_dot_product_attention`` (torchvision's ``nn.MultiheadAttention``, a user's own
    attention) to its math kernel; restore each flag and the kernel choice afterwards, even
    on error.

    The explicit path and the math kernel are twice differentiable (HVPs need that); the
    fused flash and memory-efficient kernels are not (forward-over-reverse AD has no rule for
    them on CPU), and expose no attention probabilities.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    switched = []
    try:
        for m in model.modules():
            if isinstance(getattr(m, "fused_attn", None), bool):
                switched.append((m, m.fused_attn))
                m.fused_attn = False
        with sdpa_kernel(SDPBackend.MATH):
            yield [m for m, _ in switched]
    finally:
        for m, flag in switched:
            m.fused_attn = flag
