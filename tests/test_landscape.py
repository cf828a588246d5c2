"""Loss landscapes against exact answers: the centre is the model's loss, filter norms match
the weights', a quadratic loss gives its parabola, resumed grids equal uninterrupted ones."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TinyCNN, batch, tiny_vit
from torch import nn

from vitprobe import landscape


def test_surface_centre_equals_the_models_loss_exactly(vit64):
    x, y = batch()
    d1 = landscape.random_direction(vit64, seed=0)
    d2 = landscape.random_direction(vit64, seed=1)
    s = landscape.surface(vit64, F.cross_entropy, (x, y), (d1, d2), steps=(5, 3), span=0.5)
    assert s.loss.shape == (5, 3) and s.coords[0][2] == 0 and s.coords[1][1] == 0
    with torch.no_grad():
        out = vit64(x)
    assert s.loss[2, 1] == F.cross_entropy(out, y).item()
    assert s.accuracy[2, 1] == (out.argmax(-1) == y).double().mean().item()


def test_filter_normalised_direction_matches_the_weights_filter_norms(cnn64):
    d = landscape.random_direction(cnn64, norm="filter", seed=3)
    for name, p in cnn64.named_parameters():
        if p.ndim <= 1:
            assert torch.count_nonzero(d[name]) == 0, name
        else:
            dims = tuple(range(1, p.ndim))
            vn = torch.linalg.vector_norm
            torch.testing.assert_close(vn(d[name], dim=dims), vn(p.detach(), dim=dims))
    dp = landscape.random_direction(cnn64, norm="paper", seed=3)
    w = cnn64.conv2.weight.detach()
    torch.testing.assert_close(dp["conv2.weight"].norm(dim=0), w.norm(dim=0), rtol=1e-5,
                               atol=1e-6)
    dl = landscape.random_direction(cnn64, norm="layer", seed=3)
    torch.testing.assert_close(dl["conv2.weight"].norm(), w.norm())


def test_position_embeddings_are_excluded_by_default(vit64):
    d = landscape.random_direction(vit64)
    assert torch.count_nonzero(d["pos_embed"]) == 0
    assert torch.count_nonzero(d["blocks.0.attn.qkv.weight"]) > 0


def test_orthogonalized_direction_has_zero_global_inner_product(vit64):
    d1 = landscape.random_direction(vit64, seed=0)
    d2 = landscape.random_direction(vit64, seed=1)
    o = landscape.orthogonalize(d1, d2)

    def dot(a, b):
        return sum(float((a[k] * b[k]).sum()) for k in a)

    assert abs(dot(d1, d2)) > 1e-3  # two random directions of a small model are not orthogonal
    assert abs(dot(d1, o)) <= 1e-12 * dot(d1, d1)
    # d2 = o + c d1 with c = <d1, d2> / <d1, d1>, by hand
    c = dot(d1, d2) / dot(d1, d1)
    for k in d2:
        torch.testing.assert_close(o[k] + c * d1[k], d2[k])
    assert set(o) == set(d2) and all(torch.count_nonzero(o[k]) == 0 for k in o
                                     if torch.count_nonzero(d1[k]) == 0 and
                                     torch.count_nonzero(d2[k]) == 0)


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 5, dtype=torch.float64))

    def forward(self, x):
        return x @ self.w.T


def test_one_dimensional_slice_of_a_quadratic_loss_is_its_parabola():
    torch.manual_seed(0)
    m = Linear()
    x = torch.randn(20, 5, dtype=torch.float64)
    y = torch.randn(20, 3, dtype=torch.float64)
    mse = lambda out, t: ((out - t) ** 2).mean()  # noqa: E731
    d = {"w": torch.randn(3, 5, dtype=torch.float64)}
    s = landscape.surface(m, mse, (x, y), (d,), steps=11, span=2.0)
    r = (x @ m.w.detach().T - y)
    xd = x @ d["w"].T
    a, b, c = (xd ** 2).mean().item(), 2 * (r * xd).mean().item(), (r ** 2).mean().item()
    alpha = s.coords[0]
    np.testing.assert_allclose(s.loss, a * alpha ** 2 + b * alpha + c, rtol=1e-12)


def test_l2_term_is_the_papers_sum_of_norms():
    m = Linear()
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    mse = lambda out, t: ((out - t) ** 2).mean()  # noqa: E731
    d = {"w": torch.zeros(3, 5, dtype=torch.float64)}
    s0 = landscape.surface(m, mse, (x, y), (d,), steps=1)
    s1 = landscape.surface(m, mse, (x, y), (d,), steps=1, l2_coef=0.05)
    assert s1.loss[0] - s0.loss[0] == pytest.approx(0.05 * m.w.detach().norm().item())
    with pytest.raises(TypeError, match="directions"):
        landscape.surface(m, mse, (x, y))
    with pytest.raises(ValueError, match="l2_coef must be a finite number >= 0"):
        landscape.surface(m, mse, (x, y), (d,), l2_coef=-1.0)


def test_model_is_unchanged_and_an_interrupted_grid_resumes_to_the_same_numbers(cnn64,
                                                                             tmp_path):
    x, y = batch(8)
    cnn64.train()
    state = copy.deepcopy(cnn64.state_dict())
    dirs = (landscape.random_direction(cnn64, seed=0), landscape.random_direction(cnn64, seed=1))
    full = landscape.surface(cnn64, F.cross_entropy, (x, y), dirs, steps=(4, 4))
    calls = {"n": 0}

    def flaky(out, t):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return F.cross_entropy(out, t)

    path = tmp_path / "grid.npz"
    with pytest.raises(KeyboardInterrupt):
        landscape.surface(cnn64, flaky, (x, y), dirs, steps=(4, 4), resume_path=path,
                          save_every_s=0)
    assert np.isfinite(np.load(path)["loss"]).sum() == 6
    counted = {"n": 0}

    def counting(out, t):
        counted["n"] += 1
        return F.cross_entropy(out, t)

    resumed = landscape.surface(cnn64, counting, (x, y), dirs, steps=(4, 4), resume_path=path)
    assert counted["n"] == 16 - 6
    np.testing.assert_array_equal(resumed.loss, full.loss)
    assert not path.exists()  # the finished grid leaves no partial file

    def broken(out, t):  # a reported failure: the partial file is removed too
        if counted["n"] > 20:
            raise ValueError("broken loss")
        counted["n"] += 1
        return F.cross_entropy(out, t)

    with pytest.raises(ValueError, match="broken loss"):
        landscape.surface(cnn64, broken, (x, y), dirs, steps=(4, 4), resume_path=path,
                          save_every_s=0)
    assert not path.exists()
    assert cnn64.training
    for k, v in cnn64.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_interpolation_endpoints_give_each_models_loss():
    torch.manual_seed(0)
    a, b = TinyCNN().double().eval(), TinyCNN().double().eval()
    x, y = batch(8)
    s = landscape.interpolate(a, b, F.cross_entropy, (x, y), steps=5)
    with torch.no_grad():
        la, lb = F.cross_entropy(a(x), y).item(), F.cross_entropy(b(x), y).item()
    assert s.loss[0] == pytest.approx(la, rel=1e-12)
    assert s.loss[-1] == pytest.approx(lb, rel=1e-12)


def test_trajectory_polar_view_by_hand():
    theta0 = {"w": torch.tensor([2.0, 0.0])}
    theta1 = {"w": torch.tensor([0.0, 1.0])}
    star = {"w": torch.tensor([0.0, 0.0])}
    t = landscape.trajectory([theta0, theta1, star])
    np.testing.assert_allclose(t.radius, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(t.angle[:2], [0.0, np.pi / 2], atol=1e-7)


@pytest.mark.parametrize("kw, match", [
    (dict(steps=0), "steps must be >= 1"),
    (dict(span=0.0), "span must be > 0"),
    (dict(other=True), "does not belong to this model"),
])
def test_bad_input_is_a_clear_error(vit64, kw, match):
    d = landscape.random_direction(vit64)
    if kw.pop("other", False):
        d = landscape.random_direction(tiny_vit(embed_dim=4, heads=2).double())
    with pytest.raises(ValueError, match=match):
        landscape.surface(vit64, F.cross_entropy, batch(), (d,), **kw)


def test_vtk_export_writes_the_grid_paraview_reads(tmp_path):
    """A 2 x 3 grid by hand: VTK orders points with α fastest; a NaN loss is written as the
    largest finite one; log_loss writes log(loss)."""
    import math

    import numpy as np

    from vitprobe.landscape import Surface, to_vtk

    s = Surface(coords=(np.array([-1.0, 1.0]), np.array([-1.0, 0.0, 1.0])),
                loss=np.array([[1.0, 2.0, 3.0], [4.0, float("nan"), 6.0]]),
                accuracy=np.zeros((2, 3)))
    lines = to_vtk(s, tmp_path / "s.vtk").read_text().splitlines()
    assert lines[3:6] == ["DATASET STRUCTURED_GRID", "DIMENSIONS 2 3 1", "POINTS 6 double"]
    assert lines[6:12] == ["-1 -1 1", "1 -1 4", "-1 0 2", "1 0 6", "-1 1 3", "1 1 6"]
    assert lines[12:15] == ["POINT_DATA 6", "SCALARS loss double 1", "LOOKUP_TABLE default"]
    assert [float(v) for v in lines[15:]] == [1, 4, 2, 6, 3, 6]
    logged = to_vtk(s, tmp_path / "l.vtk", log_loss=True).read_text().splitlines()
    assert float(logged[7].split()[2]) == pytest.approx(math.log(4.0))
    with pytest.raises(ValueError, match="2-D surface"):
        to_vtk(Surface((np.array([0.0]),), np.array([1.0]), np.array([0.0])), tmp_path / "x")


def test_a_direction_that_is_zero_in_a_whole_tensor_is_warned_about():
    import torchvision

    model = torchvision.models.VisionTransformer(image_size=8, patch_size=4, num_layers=1,
                                                 num_heads=2, hidden_dim=8, mlp_dim=16,
                                                 num_classes=3)  # its head starts at zero
    with pytest.warns(UserWarning, match=r"direction is zero in class_token, heads\.head\.weight: "
                                         r"their weights are all zero"):
        d = landscape.random_direction(model, norm="filter", seed=0)
    assert not d["heads.head.weight"].any() and d["conv_proj.weight"].any()
    torch.nn.init.normal_(model.heads.head.weight)
    torch.nn.init.normal_(model.class_token)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        landscape.random_direction(model, norm="filter", seed=0)  # no warning once non-zero
