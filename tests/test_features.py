"""Feature-map probes against analytic signals: pure cosines, constants, known filters,
known variances, band-limited noise; taps on our models and on timm/torchvision ones."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import create_model
from vitprobe import features, fourier, variance


@pytest.mark.parametrize("H", [14, 8, 7])
def test_cosine_at_the_highest_diagonal_frequency_peaks_at_the_last_point(H):
    k = (H - H // 2) - 1
    w = 2 * math.pi * k / H
    i = torch.arange(H, dtype=torch.float64)
    fmap = (torch.cos(w * i)[:, None] * torch.cos(w * i)[None, :]).expand(2, 3, H, H)
    d = fourier.delta_log_amplitude(fmap)
    assert len(d) == H - H // 2
    assert d.argmax() == len(d) - 1
    assert d[-1] > 10
    assert fourier.frequencies(H)[-1] == pytest.approx(w)


def test_highest_frequency_is_labelled_honestly():
    assert fourier.frequencies(14)[-1] == pytest.approx(6 / 7 * math.pi)
    assert fourier.frequencies(7)[-1] == pytest.approx(6 / 7 * math.pi)
    assert fourier.frequencies(8)[-1] == pytest.approx(3 / 4 * math.pi)


def test_constant_map_has_no_energy_away_from_zero_frequency():
    d = fourier.delta_log_amplitude(torch.full((2, 4, 14, 14), 3.0))
    assert d[0] == 0
    assert (d[1:] <= -10).all()


def test_average_pool_lowers_and_laplacian_raises_high_frequency_amplitude():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 16, 16, dtype=torch.float64)
    base = fourier.delta_log_amplitude(x)[-1]
    pooled = F.avg_pool2d(F.pad(x, (0, 1, 0, 1), mode="circular"), 2, stride=1)
    lap = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64)
    lapx = F.conv2d(F.pad(x.reshape(-1, 1, 16, 16), (1, 1, 1, 1), mode="circular"),
                    lap.view(1, 1, 3, 3)).view_as(x)
    assert fourier.delta_log_amplitude(pooled)[-1] < base - 1
    assert fourier.delta_log_amplitude(lapx)[-1] > base + 1


def test_variance_of_maps_with_known_spatial_variance():
    ramp = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4)
    fmap = torch.cat([ramp, 2 * ramp], dim=1).repeat(3, 1, 1, 1)  # var 22.667 and 4x that
    expected = (16 * 17 / 12 + 4 * 16 * 17 / 12) / 2
    assert variance.feature_map_variance(fmap) == pytest.approx(expected)


@pytest.mark.parametrize("f", [0.2 * math.pi, 0.5 * math.pi, 0.9 * math.pi])
def test_band_noise_has_its_energy_inside_the_band(f):
    g = torch.Generator().manual_seed(0)
    noise = fourier.band_noise((16, 1, 32, 32), f, eps=0.1, generator=g)
    spec = torch.fft.fft2(noise).abs().pow(2).sum(dim=(0, 1))
    inside = fourier.band_mask(32, 32, f)
    assert (spec * inside).sum() / spec.sum() >= 0.9
    assert noise.pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item() == pytest.approx(0.1, rel=1e-6)


def test_taps_on_our_vit_follow_the_residual_stream():
    m = create_model("vit-ti", num_classes=3, in_chans=1, img_size=28, patch_size=4,
                     depth=3).eval()
    x = torch.randn(2, 1, 28, 28)
    taps = features.capture(m, x)
    assert [t.kind for t in taps] == ["embed"] + ["msa", "mlp"] * 3
    assert all(t.tensor.shape == (2, 192, 7, 7) for t in taps)
    assert taps[0].depth == 0 and taps[-1].depth == 1
    # the MSA tap is the stream after the attention residual, class token dropped
    blk = m.blocks[0]
    tokens = torch.cat([m.cls_token.expand(2, -1, -1), m.patch_embed(x)], 1) + m.pos_embed
    after_msa = tokens + blk.attn(blk.norm1(tokens))
    expected = after_msa[:, 1:].transpose(1, 2).reshape(2, 192, 7, 7)
    torch.testing.assert_close(taps[1].tensor, expected)


def test_taps_on_timm_vit_and_torchvision_resnet_by_inspection():
    import timm
    import torchvision

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=4,
                            depth=2, num_classes=3).eval()
    taps = features.capture(vit, torch.randn(1, 3, 32, 32))
    assert [t.kind for t in taps] == ["embed", "msa", "mlp", "msa", "mlp"]
    assert taps[-1].tensor.shape == (1, 192, 8, 8)
    rn = torchvision.models.resnet18(num_classes=3).eval()
    taps = features.capture(rn, torch.randn(1, 3, 64, 64))
    assert len(taps) == 1 + 8 and taps[-1].tensor.shape == (1, 512, 2, 2)


def test_timm_resnet_taps_and_a_model_without_blocks_is_named():
    import timm

    rn = timm.create_model("resnet18", pretrained=False, num_classes=3).eval()
    taps = features.capture(rn, torch.randn(1, 3, 32, 32))
    assert [t.kind for t in taps] == ["embed"] + ["conv"] * 8
    with pytest.raises(ValueError, match="cannot find the blocks of Sequential"):
        features.capture(torch.nn.Sequential(torch.nn.Flatten()), torch.randn(1, 3, 4, 4))


def test_hooks_are_removed_even_when_forward_raises():
    m = create_model("resnet-18", num_classes=3, in_chans=1, img_size=28)
    with pytest.raises(ValueError, match="ResNet cannot run on images of shape"):
        features.capture(m, torch.randn(1, 3, 28, 28))  # wrong channel count
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in m.modules())


def test_msa_blocks_low_pass_and_reduce_variance_on_alternet_taps():
    m = create_model("alternet-18", num_classes=3, in_chans=1, img_size=28).eval()
    prof = fourier.profile(m, torch.randn(2, 1, 28, 28))
    assert [p.kind for p in prof].count("msa") == 3
    assert all(np.isfinite(p.delta_log_amplitude).all() for p in prof)
    assert variance.profile(m, torch.randn(2, 1, 28, 28))[0].variance > 0


@pytest.mark.parametrize("name, kw, blocks", [
    ("pit-ti", dict(depth=(1, 1, 1)), 3),
    ("swin-ti", dict(depths=(1, 1, 1, 1)), 4),
    ("cct-2-3x2", {}, 2),
    ("cait-xxs12", dict(depth=2, patch_size=4), 2),
])
def test_taps_on_pit_swin_cct_cait(name, kw, blocks):
    m = create_model(name, num_classes=3, in_chans=1, img_size=32, **kw).eval()
    taps = features.capture(m, torch.randn(2, 1, 32, 32))
    kinds = [t.kind for t in taps]
    assert kinds.count("msa") == blocks and kinds.count("mlp") == blocks
    for t in taps:
        assert t.tensor.ndim == 4 and t.tensor.shape[0] == 2
        assert t.tensor.shape[-1] == t.tensor.shape[-2]  # square maps, prefix tokens dropped
    assert all(np.isfinite(p.delta_log_amplitude).all() for p in fourier.profile(m, torch.randn(
        2, 1, 32, 32)))
