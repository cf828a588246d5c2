"""A probe gives the model back as it was: every parameter and buffer bit-equal (BatchNorm's
running statistics and counter included), every ``training`` flag, no hook left, and the
global random state unchanged (a forward in train mode draws dropout masks). The models are
left in train mode on purpose: the README's API example never calls ``.eval()``."""

import torch
import torch.nn.functional as F
from torch import nn

from vitprobe import attention, features, fourier, hessian, landscape, variance
from vitprobe.models import create_model


class BNDropoutCNN(nn.Module):
    """A small CNN with BatchNorm and dropout, probed through named taps."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Dropout(0.5))
        self.head = nn.Linear(8, 3)

    def probe_taps(self):
        return [("stem", "embed", self.stem, "output"), ("block", "conv", self.block, "output")]

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean(dim=(2, 3)))


def state(model: nn.Module):
    return ({k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
            [m.training for m in model.modules()],
            [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()],
            torch.get_rng_state())


def assert_same(model: nn.Module, before) -> None:
    tensors, flags, hooks, rng = before
    now = model.state_dict(keep_vars=True)
    assert set(now) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(now[k].detach(), v), k
    assert [m.training for m in model.modules()] == flags
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks))
            for m in model.modules()] == hooks
    assert torch.equal(torch.get_rng_state(), rng)


def test_feature_probes_leave_a_train_mode_batchnorm_cnn_untouched():
    torch.manual_seed(0)
    model = BNDropoutCNN().train()
    x = torch.randn(6, 1, 8, 8)
    before = state(model)
    taps = features.capture(model, x)
    assert [t.name for t in taps] == ["stem", "block"]
    assert_same(model, before)
    fourier.profile(model, x)
    assert_same(model, before)
    variance.profile(model, x)
    assert_same(model, before)


def test_curvature_and_landscape_probes_leave_a_train_mode_cnn_untouched():
    torch.manual_seed(0)
    model = BNDropoutCNN().train()
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))
    before = state(model)
    for mode in ("eval", "train"):
        data = (model, F.cross_entropy, (x, y))
        hessian.top_eigenvalues(*data, k=2, tol=1e-2, mode=mode)
        hessian.trace(*data, num_probes=3, mode=mode)
        hessian.density(*data, num_probes=1, lanczos_steps=4, mode=mode)
        assert_same(model, before)
    d = landscape.random_direction(model, seed=0)
    landscape.surface(model, F.cross_entropy, [(x, y)], [d], steps=(3,))
    assert_same(model, before)


def test_attention_probes_leave_a_train_mode_vit_with_dropout_untouched():
    torch.manual_seed(0)
    model = create_model("vit-ti", num_classes=3, in_chans=1, img_size=8, patch_size=2,
                         depth=2, drop_rate=0.3, attn_drop_rate=0.3).train()
    x = torch.randn(2, 1, 8, 8)
    before = state(model)
    maps = attention.capture(model, x)
    assert len(maps) == 2 and maps[0].shape == (2, 3, 17, 17)
    attention.mean_distance(maps, grid=(4, 4), patch_size=2)
    attention.rollout(maps)
    assert_same(model, before)
    features.capture(model, x)
    fourier.profile(model, x)
    assert_same(model, before)
