"""Attention probes against hand computations and analytic cases."""

import numpy as np
import pytest
import torch
from torch import nn

from vitprobe import attention
from vitprobe.models import create_model


def test_rollout_equals_a_hand_computation_on_a_two_layer_two_head_toy():
    a1 = torch.tensor([[[0.5, 0.5, 0.0], [0.2, 0.6, 0.2], [0.0, 0.0, 1.0]],
                       [[0.1, 0.1, 0.8], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]])
    a2 = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]],
                       [[0.0, 1.0, 0.0], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]]])
    I = torch.eye(3)
    # by hand: mean heads, 0.5A + 0.5I (rows already sum to 1), product from input to output
    m1 = 0.5 * (a1[0] + a1[1]) / 1 * 0.5 + 0.5 * I
    m2 = 0.5 * (a2[0] + a2[1]) * 0.5 + 0.5 * I
    expected = (m2 @ m1)[0, 1:]
    r = attention.rollout([a1[None], a2[None]], num_prefix_tokens=1)
    torch.testing.assert_close(r[0].float(), expected)
    # the full rollout matrix is row-stochastic, so the class row plus its own entry sums to 1
    assert (m2 @ m1).sum(-1).allclose(torch.ones(3))
    # max fusion by hand
    mx1 = a1.amax(0) * 0.5 + 0.5 * I
    mx1 = mx1 / mx1.sum(-1, keepdim=True)
    mx2 = a2.amax(0) * 0.5 + 0.5 * I
    mx2 = mx2 / mx2.sum(-1, keepdim=True)
    torch.testing.assert_close(attention.rollout([a1[None], a2[None]], 1, "max")[0].float(),
                               (mx2 @ mx1)[0, 1:])


def test_rollout_without_class_token_uses_the_mean_row_or_pool_weights():
    a = torch.softmax(torch.randn(2, 3, 4, 4), -1)
    R = 0.5 * a.mean(1).double() + 0.5 * torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(attention.rollout([a], 0), R.mean(1))
    w = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]])
    torch.testing.assert_close(attention.rollout([a], 0, pool_weights=w),
                               torch.stack([R[0, 0], R[1, 3]]))


def test_uniform_attention_gives_the_analytic_mean_distance_and_identity_gives_zero():
    h = w = 2
    p = 4  # pixels per patch
    uniform = torch.full((1, 2, 5, 5), 1 / 5)
    d = attention.mean_distance([uniform], (h, w), p, num_prefix_tokens=1)
    # 2x2 grid: from each patch, distances 0, 4, 4, 4*sqrt(2), uniform over the 4 patches
    assert d.shape == (1, 2)
    np.testing.assert_allclose(d, (8 + 4 * np.sqrt(2)) / 4)
    eye = torch.eye(5).expand(1, 3, 5, 5)
    assert np.allclose(attention.mean_distance([eye], (h, w), p), 0)


def test_capture_on_timm_vit_with_fused_attention_restores_the_flag():
    import timm

    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                          depth=2, num_classes=3)
    for mod in m.modules():
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = True
    m.train()
    maps = attention.capture(m, torch.randn(2, 3, 32, 32))
    assert len(maps) == 2 and maps[0].shape == (2, 3, 17, 17)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 3, 17))
    assert all(mod.fused_attn for mod in m.modules() if hasattr(mod, "fused_attn"))
    assert m.training


def test_capture_on_our_vit_and_alternet_windows():
    vit = create_model("vit-ti", num_classes=3, in_chans=1, img_size=28, patch_size=4, depth=2)
    maps = attention.capture(vit, torch.randn(2, 1, 28, 28))
    assert [a.shape for a in maps] == [(2, 3, 50, 50)] * 2
    alt = create_model("alternet-18", num_classes=3, in_chans=1, img_size=28)
    maps = attention.capture(alt, torch.randn(2, 1, 28, 28))
    assert len(maps) == 3 and maps[0].shape[-1] == 16  # 4x4 windows


def test_capture_on_cait_deit_and_cct():
    kw = dict(num_classes=3, in_chans=1, img_size=28, patch_size=7)
    cait = create_model("cait-xxs12", depth=2, **kw)
    maps = attention.capture(cait, torch.randn(2, 1, 28, 28))
    # two talking-heads self-attention layers on the 16 patches, then two class-attention
    # layers where only the class token queries (class token + 16 patches)
    assert [tuple(a.shape) for a in maps] == [(2, 4, 16, 16)] * 2 + [(2, 4, 1, 17)] * 2
    deit = create_model("deit-ti-distilled", depth=2, **kw)
    maps = attention.capture(deit, torch.randn(2, 1, 28, 28))
    assert maps[0].shape == (2, 3, 18, 18)  # class + distillation tokens + 16 patches
    cct = create_model("cct-2-3x2", num_classes=3, in_chans=1, img_size=28)
    maps = attention.capture(cct, torch.randn(2, 1, 28, 28))
    assert len(maps) == 2 and maps[0].shape == (2, 2, 49, 49)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(2, 2, 49))


def test_a_model_without_attention_gets_a_clear_error():
    with pytest.raises(ValueError, match="has no attention layers"):
        attention.capture(create_model("resnet-18", num_classes=3), torch.randn(1, 3, 32, 32))


class Toy(nn.Module):
    """Class-0 logit = weighted sum of 4 patches' means (2x2 patches of 2x2 pixels)."""

    def __init__(self):
        super().__init__()
        self.w = torch.tensor([4.0, 0.0, 2.0, 0.5])

    def forward(self, x):
        patches = torch.nn.functional.avg_pool2d(x, 2).flatten(1)  # (B, 4)
        return torch.stack([patches @ self.w, torch.zeros(len(x))], 1)


def test_deletion_auc_of_an_oracle_explanation_beats_a_random_order():
    x = torch.ones(4, 1, 4, 4)
    target = torch.zeros(4, dtype=torch.long)
    oracle = Toy().w.view(1, 2, 2).expand(4, 2, 2)
    worst = -oracle
    auc_oracle = attention.deletion_auc(Toy(), x, target, oracle, patch_size=2)
    auc_worst = attention.deletion_auc(Toy(), x, target, worst, patch_size=2)
    g = torch.Generator().manual_seed(0)
    auc_random = np.mean([attention.deletion_auc(Toy(), x, target,
                                                 torch.rand(4, 2, 2, generator=g), 2)
                          for _ in range(10)])
    assert auc_oracle < auc_random < auc_worst


def test_position_similarity_and_patch_components_shapes():
    vit = create_model("vit-ti", num_classes=3, in_chans=1, img_size=28, patch_size=4, depth=1)
    sim = attention.position_similarity(vit)
    assert sim.shape == (7, 7, 7, 7)
    torch.testing.assert_close(sim[2, 3, 2, 3], torch.tensor(1.0, dtype=torch.float64))
    comps, share = attention.patch_filter_components(vit, k=5)
    assert comps.shape == (5, 1, 4, 4) and np.all(np.diff(share) <= 1e-12)


def test_logit_range_recovers_the_spread_of_known_logits():
    """Rows of softmax(logits) with logits spread 0..3 and 0..10 (one key masked out, p = 0):
    the recovered max - min is 3 and 10, mean 6.5."""
    from vitprobe.attention import logit_range

    logits = torch.tensor([[0.0, 1.0, 3.0, float("-inf")], [0.0, 10.0, 5.0, 2.0]],
                          dtype=torch.float64)
    assert logit_range(logits.softmax(-1)) == pytest.approx(6.5, abs=1e-9)


def test_integrated_gradients_in_small_internal_batches_equals_the_analytic_linear_answer():
    # for a linear model IG from a zero baseline is exactly x * w of the target's row; the
    # 8 images x 4 steps go through the model 5 rows at a time
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 8 * 8, 3, bias=False))
    x = torch.randn(8, 2, 8, 8)
    target = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    got = attention.integrated_gradients(model, x, target, patch_size=4, steps=4, batch_size=5)
    w = model[1].weight.detach()[target].view(8, 2, 8, 8)
    want = torch.nn.functional.avg_pool2d((x * w).abs().sum(1, keepdim=True), 4)[:, 0]
    assert got.shape == (8, 2, 2)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_torchvision_vit_attention_is_the_softmax_of_its_queries_and_keys():
    """nn.MultiheadAttention (torchvision's ViT) is asked for per-head weights; each equals
    softmax(q kᵀ / √d) computed here from its input projection by hand."""
    import torchvision

    torch.manual_seed(0)
    m = torchvision.models.VisionTransformer(image_size=16, patch_size=4, num_layers=2,
                                             num_heads=2, hidden_dim=16, mlp_dim=32,
                                             num_classes=4).eval()
    x = torch.randn(3, 3, 16, 16)
    seen = {}
    mha = m.encoder.layers[1].self_attention
    h = mha.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    maps = attention.capture(m, x)
    h.remove()
    assert len(maps) == 2 and maps[1].shape == (3, 2, 17, 17)
    t, (W, b), D = seen["x"], (mha.in_proj_weight, mha.in_proj_bias), 16
    q = (t @ W[:D].T + b[:D]).view(3, 17, 2, 8).transpose(1, 2)
    k = (t @ W[D:2 * D].T + b[D:2 * D]).view(3, 17, 2, 8).transpose(1, 2)
    ref = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)
    torch.testing.assert_close(maps[1], ref.detach(), atol=1e-6, rtol=1e-5)
    from vitprobe.features import num_prefix_tokens

    assert num_prefix_tokens(m) == 1
    assert attention.rollout(maps, num_prefix_tokens(m)).shape == (3, 16)
