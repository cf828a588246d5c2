"""Feature-map probes against analytic signals: pure cosines, constants, known filters,
known variances, band-limited noise; taps on our models and on timm/torchvision ones."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitprobe import features, fourier, variance
from vitprobe.models import create_model


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


def test_band_mask_is_the_papers_square_ring():
    """28 px, f = 0.5π, s = 0.2: the outer square has side 2·int((0.5π+0.2)·28/2π) =
    2·int(7.89) = 14, the inner 2·int(6.11) = 12; centred at offsets 7 and 8 of the
    fftshift layout (zero frequency at 14): a ring of 14² - 12² = 52 frequencies."""
    m = fourier.band_mask(28, 0.5 * math.pi)
    assert m.sum() == 52
    assert m[7:21, 7:21].sum() == 52 and m[8:20, 8:20].sum() == 0
    # the ring reaches frequency -7 (index 7) but only +6 (index 20): the paper's asymmetry
    assert m[7, 14] == 1 and m[21, 14] == 0 and m[20, 14] == 1


def test_band_noise_passes_the_band_and_is_not_renormalised():
    """RMS of the noise at eps = 1 is the paper code's on 28 px: 0.127 at 0.1π and 0.43 at
    0.9π (Monte Carlo, ±3 %; no renormalisation per band). The noise is linear in eps and
    has no energy outside the ring and its mirror image (the real part of the ring)."""
    g = torch.Generator().manual_seed(0)
    rms = {f: fourier.band_noise((4000, 1, 28, 28), f * math.pi, eps=1.0, generator=g)
           .pow(2).mean().sqrt().item() for f in (0.1, 0.9)}
    assert rms[0.1] == pytest.approx(0.127, rel=0.03)
    assert rms[0.9] == pytest.approx(0.430, rel=0.03)
    # linear in eps, and zero outside the ring: a band-passed ring has no energy elsewhere
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = fourier.band_noise((2, 1, 28, 28), 0.5 * math.pi, eps=1.0, generator=g1)
    b = fourier.band_noise((2, 1, 28, 28), 0.5 * math.pi, eps=0.3, generator=g2)
    torch.testing.assert_close(b, 0.3 * a)
    spec = torch.fft.fftshift(torch.fft.fft2(a), dim=(-2, -1)).abs()
    outside = spec * (1 - fourier.band_mask(28, 0.5 * math.pi)) * \
        (1 - fourier.band_mask(28, 0.5 * math.pi).flip(-1).flip(-2).roll((1, 1), (-2, -1)))
    assert outside.max() < 1e-5 * spec.max()
    with pytest.raises(ValueError, match="square"):
        fourier.band_noise((1, 1, 28, 32), 1.0, 0.1)


def test_noise_robustness_records_each_image():
    """A model that always answers 0 is right on the images of class 0, with and without
    noise."""
    class Zero(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 3).float()

    x, y = torch.randn(10, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    r = fourier.noise_robustness(Zero(), [(x[:6], y[:6]), (x[6:], y[6:])], [1.6, 2.0], eps=1.0)
    assert r["correct_clean"] == [1, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert r["correct"] == [r["correct_clean"]] * 2
    assert r["clean_accuracy"] == 0.4 and r["accuracy_change"] == [0.0, 0.0]


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
    # the embedding tap is read after the position embedding is added, as the paper's code
    expected_embed = tokens[:, 1:].transpose(1, 2).reshape(2, 192, 7, 7)
    torch.testing.assert_close(taps[0].tensor, expected_embed)
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
    assert [t.kind for t in taps] == ["embed"] + ["conv"] * 2 + ["subsample", "conv"] * 3
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


def test_a_1x1_map_is_skipped_with_a_warning_naming_its_tap():
    """An 8-px input leaves the ResNet's last stage at 1x1: no spatial variance and no
    frequency above 0, so those taps are skipped with a warning, not reported as NaN."""
    m = create_model("resnet-18", num_classes=3, in_chans=1, img_size=8).eval()
    x = torch.randn(4, 1, 8, 8)
    with pytest.warns(UserWarning, match=r"tap layers\.3\.0: a 1x1 map has no spatial"):
        prof = variance.profile(m, x)
    assert all(np.isfinite(t.variance) for t in prof)
    assert "layers.3.1" not in [t.name for t in prof] and "layers.2.1" in [t.name for t in prof]
    with pytest.warns(UserWarning, match="tap layers.3.0"):
        fourier.profile(m, x)


def test_taps_of_torchvision_and_timm_families_read_the_residual_stream():
    """torchvision's ViT, ConvNeXt and Swin and timm's ConvNeXt and Swin without a
    probe_taps(): the last tap is the stream the final norm reads; Swin's channels-last maps
    come out B x C x H x W at the MSA taps too."""
    import timm
    import torchvision

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=4, num_layers=2,
                                               num_heads=2, hidden_dim=16, mlp_dim=32,
                                               num_classes=4).eval()
    cases = [(vit, vit.encoder.ln, ["embed"] + ["msa", "mlp"] * 2),
             (torchvision.models.convnext_tiny(num_classes=4).eval(), None,
              ["embed"] + ["conv"] * 3 + ["subsample"] + ["conv"] * 3 + ["subsample"] +
              ["conv"] * 9 + ["subsample"] + ["conv"] * 3),
             (timm.create_model("test_convnext", num_classes=4).eval(), None, None),
             (torchvision.models.swin_t(num_classes=4).eval(), None, None),
             (timm.create_model("swin_tiny_patch4_window7_224", num_classes=4, img_size=32,
                                window_size=2).eval(), None, None)]
    for model, final_norm, kinds in cases:
        taps = features.capture(model, x)
        if kinds is not None:
            assert [t.kind for t in taps] == kinds
        if final_norm is not None:
            seen = {}
            h = final_norm.register_forward_pre_hook(lambda m, a, seen=seen: seen.update(x=a[0]))
            model(x)
            h.remove()
            torch.testing.assert_close(taps[-1].tensor, features.to_map(seen["x"], (8, 8)))
        for t in taps:
            if t.kind == "msa" and "swin" in type(model).__name__.lower():
                # (B, C, H, W) with C the stage's width, not H
                assert t.tensor.shape[1] in (96, 192, 384, 768), (t.name, t.tensor.shape)
        assert features.block_parameter_groups(model)
