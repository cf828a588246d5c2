"""Fourier analysis of feature maps (Park & Kim 2022, §2.1, Figs. 2a and 8) and robustness
to band-limited noise (Fig. 2b, the paper code's ``ops/adversarial.py``: ``Random`` noise
through ``FreqAttack``'s band mask).

ΔlogAmplitude: log(|fft2(x)| + 1e-6), zero frequency shifted to the centre, averaged over
batch and channels, read along the diagonal from the centre outwards (frequencies 0,
2π/H, 4π/H, … up to the highest available), minus the value at frequency 0.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .features import capture
from .modes import eval_mode
from .stats import bootstrap


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


def delta_log_amplitude_per_image(fmap: torch.Tensor) -> np.ndarray:
    """ΔlogAmp along the diagonal for each image (channels averaged): (B, ceil(H/2)). Their
    mean over images is ``delta_log_amplitude(fmap)`` (the log-amplitude is averaged
    linearly), so intervals can be bootstrapped over images."""
    if fmap.ndim != 4:
        raise ValueError(f"expected a B x C x H x W feature map; got shape {tuple(fmap.shape)}")
    f = torch.fft.fftshift(torch.fft.fft2(fmap.double()), dim=(-2, -1))
    la = torch.log(f.abs() + 1e-6).mean(dim=1)  # B, H, W
    H, W = la.shape[-2:]
    n = min(H - H // 2, W - W // 2)
    idx = torch.arange(n)
    diag = la[:, H // 2 + idx, W // 2 + idx]
    return (diag - diag[:, :1]).cpu().numpy()


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
    highest_per_image: np.ndarray | None = None  # (B,): ``highest`` of each image


@torch.no_grad()
def profile(model: nn.Module, images: torch.Tensor) -> list[FourierTap]:
    """ΔlogAmp of every tap of ``model`` on ``images`` (model evaluated as it is; put it in
    eval mode first for the paper's setting)."""
    out = []
    for tap in capture(model, images):
        if min(tap.tensor.shape[-2:]) < 2:
            warnings.warn(f"tap {tap.name}: a {tuple(tap.tensor.shape[-2:])} map has no "
                          f"frequency above 0; skipped", stacklevel=2)
            continue
        per_image = delta_log_amplitude_per_image(tap.tensor)
        d = per_image.mean(axis=0)
        fr = frequencies(min(tap.tensor.shape[-2:]))[:len(d)]
        out.append(FourierTap(tap.name, tap.kind, tap.depth, fr, d, float(d[-1]), float(fr[-1]),
                              per_image[:, -1]))
    return out


def _centre_square(side: int, size: int) -> torch.Tensor:
    """A ``side`` x ``side`` block of ones, centred in a ``size`` x ``size`` grid of zeros as
    the paper's ``_center_mask`` pads it ((size - side) // 2 zeros before; any odd remainder
    after)."""
    side = min(max(side, 0), size)
    before = (size - side) // 2
    m = torch.zeros(size, size)
    m[before:before + side, before:before + side] = 1
    return m


def band_mask(size: int, frequency: float, half_width: float = 0.2) -> torch.Tensor:
    """M_f of the paper code's ``FreqAttack._fourier_mask``: in the centred (``fftshift``)
    layout, the square ring between the centred squares of sides
    ``2·int((f ± s)·size / 2π)``, with ``s = half_width`` (0.2 rad, its default).
    On even sizes the ring is one frequency wider on the negative side than on the
    positive, as the paper's (its real part is taken after the inverse FFT)."""
    outer = int((frequency + half_width) * size / (2 * math.pi)) * 2
    inner = int((frequency - half_width) * size / (2 * math.pi)) * 2
    return _centre_square(outer, size) - _centre_square(inner, size)


def band_noise(shape: tuple[int, ...], frequency: float, eps: float,
               half_width: float = 0.2, generator: torch.Generator | None = None,
               device=None) -> torch.Tensor:
    """The paper's frequency-based random noise: ``Random`` noise ``eps·sign(N(0, 1))`` (one
    value per pixel and channel), band-passed by ``band_mask`` — Re F⁻¹(M_f ⊙ F(δ)), with no
    renormalisation: the noise's energy is the band's share of eps², so it grows with the
    band's area (on 28 px, RMS ≈ 0.13·eps at 0.1π and ≈ 0.43·eps at 0.9π). ``shape`` is
    (B, C, H, W) with H == W."""
    h, w = shape[-2], shape[-1]
    if h != w:
        raise ValueError(f"band_noise takes square images (the paper's mask is square); "
                         f"got {h}x{w}")
    mask = band_mask(h, frequency, half_width).to(device)
    if mask.sum() == 0:
        raise ValueError(f"no frequency of a {h}x{w} grid lies in the band around "
                         f"{frequency:.3f} rad (half width {half_width})")
    delta = eps * torch.randn(shape, generator=generator).sign().to(device)
    spectrum = torch.fft.fftshift(torch.fft.fft2(delta), dim=(-2, -1)) * mask
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real


@torch.no_grad()
def noise_robustness(model: nn.Module, data, frequencies: list[float] | np.ndarray,
                     eps: float = 0.1, half_width: float = 0.2, seed: int = 0) -> dict:
    """Accuracy with band-limited noise (``band_noise``) at each frequency minus clean
    accuracy (Fig. 2b). ``data``: an iterable of (inputs, targets) batches (inputs already
    normalised: eps is in normalised units, as the paper's).

    The noise is drawn from ``seed`` in a fixed order, so two models given the same data see
    the same noise; ``correct_clean`` (N,) and ``correct`` (F, N) record each image's result
    for intervals over images.
    """
    with eval_mode(model):
        batches = [data] if isinstance(data, tuple) else list(data)
        g = torch.Generator().manual_seed(seed)
        clean, noisy = [], []
        for x, y in batches:
            clean.append((model(x).argmax(-1) == y).cpu())
            row = []
            for f in frequencies:
                n = band_noise(tuple(x.shape), float(f), eps, half_width, g, x.device)
                row.append((model(x + n).argmax(-1) == y).cpu())
            noisy.append(torch.stack(row))
    correct_clean = torch.cat(clean).numpy()
    correct = torch.cat(noisy, dim=1).numpy()
    acc_clean = float(correct_clean.mean())
    acc = correct.mean(axis=1)
    return {"clean_accuracy": acc_clean, "frequencies": [float(f) for f in frequencies],
            "accuracy": acc.tolist(), "accuracy_change": (acc - acc_clean).tolist(),
            "eps": eps, "half_width": half_width,
            "correct_clean": correct_clean.astype(int).tolist(),
            "correct": correct.astype(int).tolist()}


def robustness_contrast(vit: dict, cnn: dict, split: float = 0.5 * math.pi, seed: int = 0,
                        num_resamples: int = 2000):
    """Fig. 2b read as a comparison of two models on the same images and noise: how much more
    high- than low-frequency noise hurts ``cnn`` than it hurts ``vit``, in accuracy points,

        [drop_cnn(high) - drop_cnn(low)] - [drop_vit(high) - drop_vit(low)],

    drop = clean accuracy - noisy accuracy, averaged over the frequencies above / at or below
    ``split``. Positive where the paper's claim holds (ViT robust to high frequencies, ResNet
    not). Returns a ``stats.Interval`` (paired bootstrap over images; the statistic is a
    mean of per-image terms)."""
    freqs = np.asarray(vit["frequencies"])
    if not np.allclose(freqs, cnn["frequencies"]) or \
            len(vit["correct_clean"]) != len(cnn["correct_clean"]):
        raise ValueError("the two results must share frequencies and images")
    high, low = freqs > split, freqs <= split
    if not high.any() or not low.any():
        raise ValueError(f"frequencies on both sides of {split:.3f} rad are needed")

    def per_image(r):
        c = np.asarray(r["correct_clean"], dtype=float)
        n = np.asarray(r["correct"], dtype=float)
        return (c - n[high].mean(axis=0)) - (c - n[low].mean(axis=0))

    d = 100 * (per_image(cnn) - per_image(vit))
    return bootstrap(np.mean, d, seed=seed, num_resamples=num_resamples)


def saturated(result: dict, num_classes: int, share: float = 0.25) -> bool:
    """Whether noise this strong leaves little to compare: the accuracy under high-frequency
    noise (above 0.5π) within ``share`` of the way from chance to the clean accuracy."""
    freqs = np.asarray(result["frequencies"])
    acc = np.asarray(result["accuracy"])[freqs > 0.5 * math.pi].mean()
    chance = 1.0 / num_classes
    return bool(acc <= chance + share * (result["clean_accuracy"] - chance))
