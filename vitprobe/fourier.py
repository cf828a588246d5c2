"""Fourier analysis of feature maps (Park & Kim 2022, §2.1, Figs. 2a and 8) and robustness
to band-limited noise (Fig. 2b).

ΔlogAmplitude: log(|fft2(x)| + 1e-6), zero frequency shifted to the centre, averaged over
batch and channels, read along the diagonal from the centre outwards (frequencies 0,
2π/H, 4π/H, … up to the highest available), minus the value at frequency 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .features import capture, eval_mode


def frequencies(size: int) -> np.ndarray:
    """The diagonal frequencies (in radians, units of the sampling grid) that
    ``delta_log_amplitude`` reports for an axis of ``size``: 2πi/size, i = 0..ceil(size/2)-1.
    On a 14-point axis the last is 6/7·π; on 7 points, 6/7·π too — never π unless stated."""
    return 2 * math.pi * np.arange(size - size // 2) / size


def log_amplitude(fmap: torch.Tensor) -> torch.Tensor:
    """Centred log-amplitude spectrum, averaged over batch and channels: (H, W)."""
    if fmap.ndim != 4:
        raise ValueError(f"expected a B x C x H x W feature map; got shape {tuple(fmap.shape)}")
    f = torch.fft.fftshift(torch.fft.fft2(fmap.double()), dim=(-2, -1))
    return torch.log(f.abs() + 1e-6).mean(dim=(0, 1))


def delta_log_amplitude(fmap: torch.Tensor) -> np.ndarray:
    """ΔlogAmp along the diagonal: (ceil(H/2),) from frequency 0 (always 0) outwards.

    Non-square maps are read along the diagonal of the shorter side's length.
    """
    la = log_amplitude(fmap)
    H, W = la.shape
    n = min(H - H // 2, W - W // 2)
    idx = torch.arange(n)
    diag = la[H // 2 + idx, W // 2 + idx]
    return (diag - diag[0]).cpu().numpy()


@dataclass(frozen=True)
class FourierTap:
    name: str
    kind: str
    depth: float
    frequencies: np.ndarray       # radians
    delta_log_amplitude: np.ndarray
    highest: float                # ΔlogAmp at the highest frequency
    highest_frequency: float      # that frequency, in radians (e.g. 6/7·π on 7 or 14 points)


@torch.no_grad()
def profile(model: nn.Module, images: torch.Tensor) -> list[FourierTap]:
    """ΔlogAmp of every tap of ``model`` on ``images`` (model evaluated as it is; put it in
    eval mode first for the paper's setting)."""
    out = []
    for tap in capture(model, images):
        d = delta_log_amplitude(tap.tensor)
        fr = frequencies(min(tap.tensor.shape[-2:]))[:len(d)]
        out.append(FourierTap(tap.name, tap.kind, tap.depth, fr, d, float(d[-1]), float(fr[-1])))
    return out


def band_mask(height: int, width: int, frequency: float, bandwidth: float = 0.1 * math.pi,
              device=None) -> torch.Tensor:
    """M_f: 1 where the frequency (max-norm of (ω_y, ω_x), unshifted FFT layout) lies within
    ``bandwidth / 2`` of ``frequency``."""
    wy = torch.fft.fftfreq(height, device=device).abs() * 2 * math.pi
    wx = torch.fft.fftfreq(width, device=device).abs() * 2 * math.pi
    radius = torch.maximum(wy[:, None], wx[None, :])
    return ((radius - frequency).abs() <= bandwidth / 2).float()


def band_noise(shape: tuple[int, ...], frequency: float, eps: float,
               bandwidth: float = 0.1 * math.pi, generator: torch.Generator | None = None,
               device=None) -> torch.Tensor:
    """Gaussian noise filtered to the band M_f, F⁻¹(F(δ) ⊙ M_f), scaled to RMS ``eps`` per
    image. The mask is symmetric in ±ω, so the filtered noise is real."""
    delta = torch.randn(shape, generator=generator).to(device)
    mask = band_mask(shape[-2], shape[-1], frequency, bandwidth, device)
    if mask.sum() == 0:
        raise ValueError(f"no frequency of a {shape[-2]}x{shape[-1]} grid lies within "
                         f"{bandwidth / 2:.3f} rad of {frequency:.3f}")
    noise = torch.fft.ifft2(torch.fft.fft2(delta) * mask).real
    rms = noise.pow(2).mean(dim=tuple(range(1, noise.ndim)), keepdim=True).sqrt()
    return noise * (eps / rms.clamp_min(1e-12))


@torch.no_grad()
def noise_robustness(model: nn.Module, data, frequencies: list[float] | np.ndarray,
                     eps: float = 0.1, bandwidth: float = 0.1 * math.pi,
                     seed: int = 0) -> dict:
    """Accuracy with band-limited noise at each frequency minus clean accuracy (Fig. 2b).

    ``data``: an iterable of (inputs, targets) batches (inputs already normalised).
    """
    with eval_mode(model):
        batches = [data] if isinstance(data, tuple) else list(data)
        correct = {"clean": 0, **{float(f): 0 for f in frequencies}}
        total = 0
        g = torch.Generator().manual_seed(seed)
        for x, y in batches:
            correct["clean"] += (model(x).argmax(-1) == y).sum().item()
            for f in frequencies:
                noisy = x + band_noise(tuple(x.shape), float(f), eps, bandwidth, g, x.device)
                correct[float(f)] += (model(noisy).argmax(-1) == y).sum().item()
            total += len(y)
    clean = correct["clean"] / total
    return {"clean_accuracy": clean, "frequencies": [float(f) for f in frequencies],
            "accuracy": [correct[float(f)] / total for f in frequencies],
            "accuracy_change": [correct[float(f)] / total - clean for f in frequencies],
            "eps": eps, "bandwidth": bandwidth}
