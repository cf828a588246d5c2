"""Every zoo model (DeiT, CaiT, PiT, Swin, the CCT family) under every probe: its HVP equals
float64 finite differences of its gradient, its attention maps are probability rows, and a
28-px checkpoint loads into a 32-px model with resampled position embeddings."""


import pytest
import torch
import torch.nn.functional as F
from conftest import fd_hvp

from vitprobe import attention, features, hessian, results
from vitprobe.models import create_model
from vitprobe.studies.cache import load_checkpoint

SMALL = {
    "deit-ti-distilled": dict(depth=1, embed_dim=24, heads=2, patch_size=7),
    "cait-xxs12": dict(depth=1, embed_dim=24, heads=2, patch_size=7),
    "pit-ti": dict(depth=(1, 1, 1), base_dims=(8, 8, 8), heads=(1, 1, 1), patch_size=4,
                   stride=2),
    "swin-ti": dict(depths=(1, 1, 1, 1), embed_dim=12, heads=(1, 1, 1, 1), patch_size=2),
    "cct-2-3x2": dict(embed_dim=16, heads=2),
    "cvt-7-4": dict(embed_dim=16, heads=2),
    "vit-lite-7-4": dict(embed_dim=16, heads=2),
}


def batch(chans=1, size=28, n=6):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n, chans, size, size, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (n,), generator=g))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_hvp_of_every_zoo_model_equals_finite_differences(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_chans=1, img_size=28, **SMALL[name])
    model = model.double().eval()
    x, y = batch()
    g = torch.Generator().manual_seed(1)
    named = dict(model.named_parameters())
    v = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in named.items()}
    hv = hessian.hvp(model, F.cross_entropy, (x, y), v)
    flat_hv = torch.cat([hv[n].reshape(-1) for n in named])

    # a small step: ReLU/max-pool kinks (CCT's conv tokenizer) must not fall inside it
    fd = fd_hvp(model, F.cross_entropy, x, y, v, eps=1e-7)
    assert flat_hv.norm() > 0
    assert (flat_hv - fd).norm() <= 1e-6 * flat_hv.norm()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_attention_maps_and_taps_of_every_zoo_model(name):
    model = create_model(name, num_classes=3, in_chans=1, img_size=28, **SMALL[name]).eval()
    x = torch.randn(2, 1, 28, 28)
    maps = attention.capture(model, x)
    blocks = {"pit-ti": 3, "swin-ti": 4, "cct-2-3x2": 2, "cvt-7-4": 7, "vit-lite-7-4": 7,
              "deit-ti-distilled": 1, "cait-xxs12": 1 + 2}[name]  # CaiT: + 2 class-attention
    assert len(maps) == blocks
    for a in maps:  # (B, heads, queries, keys): every query's row is a distribution
        assert a.ndim == 4 and a.shape[0] * a.shape[1] >= 2 and a.shape[-2] in (1, a.shape[-1])
        if name == "cait-xxs12" and a.shape[-2] > 1:
            continue  # talking heads mix the heads after the softmax: rows are not normalised
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    if name == "swin-ti":  # window 4: 4x4 = 16 tokens attend to each other
        assert maps[0].shape[-1] == 16
    taps = features.capture(model, x)
    kinds = [t.kind for t in taps]
    assert kinds.count("msa") >= 1 and kinds.count("mlp") >= 1
    assert all(t.tensor.ndim == 4 and t.tensor.shape[-1] == t.tensor.shape[-2] for t in taps)


@pytest.mark.parametrize("name", sorted(set(SMALL) - {"swin-ti"}) + ["vit-ti"])
def test_a_28px_checkpoint_loads_into_a_32px_model(name, tmp_path):
    kw = dict(SMALL.get(name, dict(depth=1, patch_size=4)))
    if "patch_size" in kw and name != "pit-ti":
        kw["patch_size"] = 4  # divides 28 and 32
    torch.manual_seed(0)
    small = create_model(name, num_classes=3, in_chans=1, img_size=28, **kw)
    big = create_model(name, num_classes=3, in_chans=1, img_size=32, **kw)
    key = next(k for k in small.state_dict() if "pos_embed" in k)
    old, new_shape = small.state_dict()[key], big.state_dict()[key].shape
    assert old.shape != new_shape
    prefix = old.shape[1] - int(old.shape[1] ** 0.5) ** 2 if old.ndim == 3 else 0
    with torch.no_grad():  # a per-channel constant grid: any interpolation keeps it exactly
        if old.ndim == 3:
            old[:, prefix:] = torch.arange(old.shape[-1], dtype=old.dtype)
        else:
            old[:] = torch.arange(old.shape[1], dtype=old.dtype).view(1, -1, 1, 1)
    state = dict(small.state_dict())
    results.save_weights(tmp_path / "model.safetensors", state)
    load_checkpoint(big, tmp_path, name)
    got = big.state_dict()[key]
    assert got.shape == new_shape
    if old.ndim == 3:
        torch.testing.assert_close(got[:, :prefix], old[:, :prefix])  # class/distill tokens
        torch.testing.assert_close(got[:, prefix:],
                                   torch.arange(old.shape[-1], dtype=old.dtype).expand_as(
                                       got[:, prefix:]))
    else:
        torch.testing.assert_close(got, torch.arange(old.shape[1], dtype=old.dtype).view(
            1, -1, 1, 1).expand_as(got))
    for k, v in state.items():  # everything else loads unchanged
        if k != key:
            torch.testing.assert_close(big.state_dict()[k], v)
    assert big(torch.randn(2, 1, 32, 32)).shape == (2, 3)
