"""The model registry: every model builds and trains a step at both input formats; the
parameter counts of the papers; pooling variants; clear errors for bad names/overrides."""

import pytest
import torch

from vitprobe.features import capture, tap_points
from vitprobe.models import create_model, list_models
from vitprobe.modes import explicit_attention


def n_params(m):
    return sum(p.numel() for p in m.parameters())


SMALL = {"cait-xxs24": dict(depth=2), "swin-ti": dict(depths=(1, 1, 2, 1)),
         "alternet-50": dict(layers=(1, 2, 2, 2), msa=(0, 1, 1, 1)),
         "resnet-50": dict(layers=(1, 1, 1, 1)), "vit-b": dict(depth=2), "vit-s": dict(depth=2)}


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("chans, size", [(1, 28), (3, 32)])
def test_every_model_runs_forward_and_backward(name, chans, size):
    kw = dict(SMALL.get(name, {}))
    if name.startswith(("vit-t", "vit-s", "vit-b", "deit", "cait")):
        kw["patch_size"] = 4
    torch.manual_seed(0)
    m = create_model(name, num_classes=7, in_chans=chans, img_size=size, **kw)
    x = torch.randn(2, chans, size, size)
    out = m(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    kinds = {t.kind for t in tap_points(m)}
    assert kinds <= {"embed", "conv", "subsample", "msa", "mlp", "pool"}


def test_vit_ti_has_the_papers_parameter_count():
    m = create_model("vit-ti", num_classes=100, in_chans=3, img_size=32, patch_size=2)
    assert n_params(m) == 5_403_172


def test_vit_s_has_the_papers_parameter_count():
    m = create_model("vit-s", num_classes=100, in_chans=3, img_size=32, patch_size=2)
    assert n_params(m) == 21_423_076


@pytest.mark.parametrize("name, classes, count", [
    ("cct-7-3x1", 10, 3_760_139), ("cct-2-3x2", 10, 283_723), ("vit-lite-7-4", 10, 3_716_874),
    ("pit-ti", 100, 4_582_436), ("swin-ti", 100, 27_575_374)])
def test_zoo_parameter_counts_match_the_references(name, classes, count):
    assert n_params(create_model(name, num_classes=classes, in_chans=3, img_size=32)) == count


@pytest.mark.parametrize("name, classes, count", [
    # xxxnell/how-do-vits-work, models/resnet.py (post-activation, resnet_dnn_block.py)
    ("resnet-18", 10, 11_173_962), ("resnet-18", 100, 11_220_132), ("resnet-50", 100, 23_705_252),
    # models/preresnet.py (pre-activation, preresnet_dnn_block.py)
    ("preresnet-18", 10, 11_172_170), ("preresnet-18", 100, 11_218_340),
    ("preresnet-50", 100, 23_697_572),
    # models/alternet.py dnn_18(stem=False, window_size=4): the CIFAR runs' window
    ("alternet-18", 10, 9_452_893), ("alternet-18", 100, 9_499_063)])
def test_cnn_parameter_counts_match_the_paper_code(name, classes, count):
    """Counts of the paper code's CIFAR models (``stem=False``, 3 input channels)."""
    assert n_params(create_model(name, num_classes=classes, in_chans=3, img_size=32)) == count


def test_alternet_window_7_has_the_paper_codes_default_count():
    m = create_model("alternet-18", num_classes=10, in_chans=3, img_size=32, window=7)
    assert n_params(m) == 9_453_253


def test_resnet_is_post_activation_and_preresnet_pre_activation():
    """resnet-18's block ends with ReLU after the sum (outputs >= 0) and has BN on the
    projection shortcut; preresnet-18's block output is a raw sum (takes negative values)."""
    torch.manual_seed(0)
    post = create_model("resnet-18", num_classes=10, in_chans=1, img_size=28).eval()
    pre = create_model("preresnet-18", num_classes=10, in_chans=1, img_size=28).eval()
    x = torch.randn(2, 1, 28, 28)
    taps_post = {t.name: t.tensor for t in capture(post, x)}
    taps_pre = {t.name: t.tensor for t in capture(pre, x)}
    assert all(v.min() >= 0 for v in taps_post.values())
    assert taps_pre["layers.1.1"].min() < 0
    assert isinstance(post.layers[1][0].shortcut[1], torch.nn.BatchNorm2d)
    assert isinstance(pre.layers[1][0].shortcut, torch.nn.Conv2d)
    kinds = post.block_kinds
    assert kinds == ["conv", "conv", "subsample", "conv", "subsample", "conv", "subsample", "conv"]


def test_alternet_msa_block_normalises_before_attention():
    """Scaling the 1x1 conv's weights by 100 leaves the MSA block's output unchanged in eval
    mode (the BN after the conv, as the paper's AttentionBlockB): the attention logits do not
    grow with the conv weights."""
    torch.manual_seed(0)
    m = create_model("alternet-18", num_classes=10, in_chans=1, img_size=28)
    blk = m.layers[1][1]
    x = torch.randn(8, 128, 14, 14)
    blk.train()
    blk(x)  # running statistics of this input
    blk.eval()
    ref = blk(x)
    with torch.no_grad():
        blk.conv.weight.mul_(100)
        blk.norm2.running_mean.mul_(100)
        blk.norm2.running_var.mul_(100 ** 2)
    torch.testing.assert_close(blk(x), ref, rtol=1e-4, atol=1e-4)


def test_pool_variants_differ_where_they_should():
    kw = dict(num_classes=10, in_chans=1, img_size=28, patch_size=4, depth=1)
    cls, gap = create_model("vit-ti", pool="cls", **kw), create_model("vit-ti", pool="gap", **kw)
    seq, mp = create_model("vit-ti", pool="seqpool", **kw), create_model("vit-ti", pool="map", **kw)
    assert cls.cls_token is not None and cls.pos_embed.shape[1] == 50
    for m in (gap, seq, mp):
        assert m.cls_token is None and m.pos_embed.shape[1] == 49 and m.num_prefix_tokens == 0
    assert n_params(cls) - n_params(gap) == 192 + 192  # class token + its position
    assert n_params(seq) - n_params(gap) == 192 + 1     # SeqPool's Linear(d, 1)
    assert n_params(mp) > n_params(seq)


def test_gap_pooling_is_the_mean_of_patch_tokens():
    m = create_model("vit-ti", pool="gap", num_classes=5, in_chans=1, img_size=28,
                     patch_size=4, depth=1).eval()
    x = torch.randn(2, 1, 28, 28)
    feats = m.forward_features(x)
    torch.testing.assert_close(m(x), m.head(feats.mean(1)))


@pytest.mark.parametrize("pool", ["cls", "gap"])
def test_patch_dropout_keeps_prefix_tokens_in_training_and_all_tokens_in_eval(pool):
    kw = dict(num_classes=5, in_chans=1, img_size=28, patch_size=4, depth=1, pool=pool)
    torch.manual_seed(0)
    plain = create_model("vit-ti", **kw)
    torch.manual_seed(0)
    dropped = create_model("vit-ti", patch_drop_rate=0.75, **kw)
    assert plain.state_dict().keys() == dropped.state_dict().keys()  # no extra weights
    seen = []
    dropped.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
    x = torch.randn(3, 1, 28, 28)
    prefix = 1 if pool == "cls" else 0
    dropped.train()(x)
    kept = seen[-1]
    assert kept.shape[1] == prefix + 12  # 49 patches, int(49 * 0.25) kept
    if prefix:  # the class token is always the first row, with its own position added
        first = dropped.cls_token[0, 0] + dropped.pos_embed[0, 0]
        torch.testing.assert_close(kept[:, 0], first.expand(3, -1).detach())
    # eval: every token, the same function as the model without patch dropout
    torch.testing.assert_close(dropped.eval()(x), plain.eval()(x))
    assert seen[-1].shape[1] == prefix + 49


def test_attention_paths_agree_and_flag_is_restored():
    torch.manual_seed(0)
    m = create_model("alternet-18", num_classes=4, in_chans=1, img_size=28).eval()
    x = torch.randn(2, 1, 28, 28)
    fused = m(x)
    with explicit_attention(m) as mods:
        assert mods and all(not a.fused_attn for a in mods)
        explicit = m(x)
    torch.testing.assert_close(fused, explicit, rtol=1e-4, atol=1e-5)
    assert all(a.fused_attn for a in mods)


def test_window_attention_ignores_padding():
    """A 7x7 map in 4x4 windows is padded to 8x8; padded keys are masked out, so the
    output on the real pixels equals attention over each window's real pixels only."""
    from vitprobe.models.layers import WindowAttention2d

    torch.manual_seed(0)
    wa = WindowAttention2d(16, heads=2, head_dim=8, window=4).eval()
    x = torch.randn(1, 16, 7, 7)
    out = wa(x)
    # the bottom-right window holds rows 4..6, cols 4..6: compute it alone
    tokens = x[:, :, 4:7, 4:7].permute(0, 2, 3, 1).reshape(1, 9, 16)
    bias = wa.relative_position_bias().view(2, 4, 4, 4, 4)[:, :3, :3, :3, :3].reshape(2, 9, 9)
    ref = wa.attn(tokens, attn_mask=bias.unsqueeze(0))
    torch.testing.assert_close(out[:, :, 4:7, 4:7].permute(0, 2, 3, 1).reshape(1, 9, 16), ref,
                               rtol=1e-5, atol=1e-6)


def test_alternet_layout_follows_the_paper():
    m = create_model("alternet-50", num_classes=10)
    kinds = m.block_kinds
    # the first block of stages 2-4 subsamples (stride 2)
    assert kinds == ["conv"] * 3 + ["subsample", "conv", "conv", "msa"] + \
        ["subsample", "msa"] + ["conv", "msa"] * 2 + ["subsample", "msa", "conv", "msa"]
    resnet = create_model("alternet-18", msa=(0, 0, 0, 0), num_classes=10)
    assert resnet.block_kinds == ["conv", "conv"] + ["subsample", "conv"] * 3
    assert n_params(resnet) == n_params(create_model("preresnet-18", num_classes=10))


def test_position_embedding_is_resampled_for_another_image_size():
    a = create_model("vit-ti", num_classes=10, in_chans=1, img_size=28, patch_size=4, depth=1)
    b = create_model("vit-ti", num_classes=10, in_chans=1, img_size=56, patch_size=4, depth=1)
    b.load_state_dict(a.state_dict())
    assert b.pos_embed.shape == (1, 197, 192)
    torch.testing.assert_close(b.cls_token, a.cls_token)


@pytest.mark.parametrize("call, match", [
    (lambda: create_model("vit-xx"), "unknown model 'vit-xx'; allowed: alternet-18"),
    (lambda: create_model("vit-ti", pool="max"), "pool must be one of cls, gap"),
    (lambda: create_model("vit-ti", img_size=28, patch_size=3), "does not divide"),
    (lambda: create_model("resnet-18", pool="gap"), "allowed: layers"),
    (lambda: create_model("alternet-18", msa=(0, 1, 1, 2)), "does not fit a stage"),
    (lambda: create_model("timm:not_a_model"), "unknown timm model"),
    (lambda: create_model("vit-ti", patch_drop_rate=1.0), r"patch_drop_rate must be in \[0, 1\)"),
])
def test_bad_names_and_overrides_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_timm_passthrough():
    m = create_model("timm:vit_tiny_patch16_224", num_classes=3, in_chans=1, img_size=32,
                     patch_size=8)
    assert m(torch.randn(1, 1, 32, 32)).shape == (1, 3)


def test_vit_takes_other_input_sizes_through_its_resampled_position_table():
    """vit-ti built at 28 px and fed 20-px images equals vit-ti built at 20 px holding the same
    weights (its 5x5 position table resampled from the 7x7 one at load); at 28 px it is the
    model itself, and a size the patch does not divide is refused."""
    from vitprobe.models import create_model

    torch.manual_seed(0)
    for pool in ("cls", "gap"):
        kw = dict(num_classes=3, in_chans=1, patch_size=4, depth=2, pool=pool)
        big = create_model("vit-ti", img_size=28, **kw).eval()
        with torch.no_grad():
            big.pos_embed.normal_()  # a table with structure at every position
        small = create_model("vit-ti", img_size=20, **kw).eval()
        small.load_state_dict(big.state_dict())
        assert small.pos_embed.shape[1] == 25 + (pool == "cls")
        x = torch.randn(4, 1, 20, 20)
        torch.testing.assert_close(big(x), small(x), rtol=1e-5, atol=1e-5)
        assert big.grid_size == (7, 7)
        assert big.position_embedding((7, 7)) is big.pos_embed
    with pytest.raises(AssertionError, match="divisible by patch size"):
        big(torch.randn(1, 1, 22, 22))


def test_families_come_from_the_registry_not_from_name_prefixes():
    from vitprobe.models import ModelId, family

    assert [family(n) for n in ("vit-ti", "vit-mini", "resnet-18-mini", "preresnet-18-mini",
                                "alternet-18", "cct-2-3x2", "vit-lite-7-4", "deit-ti-distilled",
                                "timm:resnet18")] == \
        ["vit", "vit", "resnet", "preresnet", "alternet", "cct", "cct", "deit", "timm"]
    m = ModelId.parse("vit-mini@gap")
    assert (m.name, m.pool, m.is_vit, m.is_cnn) == ("vit-mini", "gap", True, False)
    assert ModelId.parse("preresnet-18-mini").is_cnn
    for bad, needle in (("vit-xx", "unknown model 'vit-xx'"), ("vit-ti@max", "unknown pooling")):
        with pytest.raises(ValueError, match=needle):
            ModelId.parse(bad)
