"""The Hessian probe against exact answers: dense Hessians built with torch.func.hessian,
float64 finite differences, and the algebra (weight decay shifts, batch averaging)."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import batch, fd_hvp, tiny_vit
from torch.func import functional_call

from vitprobe import hessian, spectra
from vitprobe.modes import explicit_attention
from vitprobe.solvers import kernels

loss_fn = F.cross_entropy


def dense_hessian(model, x, y, mode="eval", names=None):
    """The full Hessian by autograd's batched double backward over the flat vector.

    Not torch.func.hessian: in torch 2.14 its jacfwd(jacrev) is off by up to 5 % on LayerNorm
    weights (checked against float64 finite differences), while this path agrees to 1e-15
    with a row-by-row double-backward loop.
    """
    model = copy.deepcopy(model)
    model.train(mode == "train")
    if mode == "train":
        torch.func.replace_all_batch_norm_modules_(model)  # batch stats, no running update
    named = dict(model.named_parameters())
    names = names or list(named)
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    flat = torch.cat([named[n].detach().reshape(-1) for n in names])
    rest = {n: p.detach() for n, p in named.items() if n not in names}
    buffers = dict(model.named_buffers())

    def f(theta):
        p = {n: t.view(s) for n, t, s in zip(names, theta.split(sizes), shapes)}
        return loss_fn(functional_call(model, {**rest, **p, **buffers}, (x,)), y)

    with explicit_attention(model):
        return torch.autograd.functional.hessian(f, flat, vectorize=True)


def by_magnitude(vals, k):
    return vals[np.argsort(-np.abs(vals))][:k]


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()])


def assert_unchanged(model, snap):
    state, modes, grads = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == grads


def test_hvp_matches_dense_hessian_and_finite_differences(vit64):
    x, y = batch()
    Hd = dense_hessian(vit64, x, y)
    names = [n for n, _ in vit64.named_parameters()]
    g = torch.Generator().manual_seed(1)
    v = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in vit64.named_parameters()}
    hv = hessian.hvp(vit64, loss_fn, (x, y), v)
    flat_v = torch.cat([v[n].reshape(-1) for n in names])
    flat_hv = torch.cat([hv[n].reshape(-1) for n in names])
    torch.testing.assert_close(flat_hv, Hd @ flat_v, rtol=1e-8, atol=1e-10)
    # central finite difference of the gradient, float64
    fd = fd_hvp(vit64, loss_fn, x, y, v, eps=1e-5)
    assert (flat_hv - fd).norm() <= 1e-6 * flat_hv.norm()  # O(eps^2) truncation


@pytest.mark.parametrize("backend,method", [("reverse", "lanczos"), ("forward", "lanczos"),
                                            ("reverse", "arpack")])
def test_top_eigenvalues_match_dense_hessian_on_tiny_vit(vit64, backend, method):
    x, y = batch()
    exact = torch.linalg.eigvalsh(dense_hessian(vit64, x, y)).numpy()
    snap = snapshot(vit64)
    r = hessian.top_eigenvalues(vit64, loss_fn, (x, y), k=5, tol=1e-6, method=method,
                                backend=backend)
    np.testing.assert_allclose(r.eigenvalues, by_magnitude(exact, 5), rtol=1e-4)
    assert r.converged.all() and (r.residuals <= 1e-6).all()
    assert np.all(np.diff(np.abs(r.eigenvalues)) <= 0)
    assert r.num_hvps > 0
    assert_unchanged(vit64, snap)


@pytest.mark.parametrize("which", ["LM", "LA", "SA"])
def test_lanczos_matches_dense_hessian_and_its_residuals_are_the_true_ones(vit64, cnn64, which):
    x, y = batch()
    for model in (vit64, cnn64):
        vals = torch.linalg.eigvalsh(dense_hessian(model, x, y)).numpy()
        want = {"LM": by_magnitude(vals, 5), "LA": vals[::-1][:5], "SA": vals[:5]}[which]
        snap = snapshot(model)
        # ncv=11 with k=5 forces thick restarts before 1e-8 is reached
        tight = hessian.top_eigenvalues(model, loss_fn, (x, y), k=5, tol=1e-8, which=which,
                                        workspace=hessian.Workspace(ncv=11, eigenvectors=True))
        np.testing.assert_allclose(tight.eigenvalues, want, rtol=1e-6)
        assert tight.converged.all() and (tight.residuals <= 1e-8).all()
        assert tight.num_hvps > 11
        loose = hessian.top_eigenvalues(model, loss_fn, (x, y), k=5, tol=1e-3, which=which,
                                        workspace=hessian.Workspace(eigenvectors=True))
        assert loose.converged.all() and (loose.residuals <= 1e-3).all()
        assert loose.num_hvps < tight.num_hvps
        np.testing.assert_allclose(loose.eigenvalues, want, rtol=1e-4)
        # what a residual certifies (symmetric H): an exact eigenvalue within res * |lambda|
        gap = np.abs(loose.eigenvalues[:, None] - vals[None, :]).min(1)
        assert (gap <= loose.residuals * np.abs(loose.eigenvalues) + 1e-12).all()
        # the residuals read off the kept HVPs equal ||Hv - lambda v|| / |lambda| measured anew
        with hessian.OperatorSpec(model, loss_fn, (x, y)).open() as H:
            for r in (tight, loose):
                V = torch.as_tensor(r.eigenvectors)
                true = ((H.matmat(V) - V * torch.as_tensor(r.eigenvalues)).norm(dim=0)
                        / V.norm(dim=0)).numpy() / np.abs(r.eigenvalues)
                np.testing.assert_allclose(r.residuals, true, rtol=1e-3, atol=1e-12)
        assert_unchanged(model, snap)


def test_ritz_residuals_and_restart_rotation_in_column_blocks_equal_the_whole_form():
    g = torch.Generator().manual_seed(0)
    V = torch.randn(6, 1000, generator=g, dtype=torch.float64)
    W = torch.randn(6, 1000, generator=g)  # float32, as the kept HVPs of a float32 model
    Ys = torch.randn(3, 6, generator=g, dtype=torch.float64)
    theta = np.array([2.0, -1.5, 0.25])
    want = ((Ys @ W.double()) - (Ys @ V) * torch.as_tensor(theta)[:, None]).norm(dim=1)
    # uneven blocks and groups (a last group shorter, a tail), one exact block, one wider than n
    for block, group in ((7, 16), (7, 5), (7, 64), (1000, 16), (4096, 16)):
        got, gram = kernels._ritz_residual_norms(Ys, theta, V, W, block=block, group=group)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
        np.testing.assert_allclose(gram, (Ys @ V @ V.T @ Ys.T).numpy(), rtol=1e-10)
        A = V.clone()  # the thick restart's in-place rotation of the basis
        kernels._combine_rows_(A, Ys, block=block, group=group)
        np.testing.assert_allclose(A[:3].numpy(), (Ys @ V).numpy(), rtol=1e-12)
        np.testing.assert_array_equal(A[3:].numpy(), V[3:].numpy())
        out = torch.full((3, 1000), float("nan"), dtype=V.dtype)  # the Ritz vectors' rows
        kernels._combine_rows_(V, Ys, block=block, group=group, out=out)
        np.testing.assert_allclose(out.numpy(), (Ys @ V).numpy(), rtol=1e-12)


def test_which_la_and_sa_give_the_extreme_ends(vit64):
    x, y = batch()
    exact = np.sort(torch.linalg.eigvalsh(dense_hessian(vit64, x, y)).numpy())
    la = hessian.top_eigenvalues(vit64, loss_fn, (x, y), k=3, which="LA", tol=1e-6)
    sa = hessian.top_eigenvalues(vit64, loss_fn, (x, y), k=3, which="SA", tol=1e-6)
    np.testing.assert_allclose(la.eigenvalues, exact[::-1][:3], rtol=1e-4)
    np.testing.assert_allclose(sa.eigenvalues, exact[:3], rtol=1e-4)
    assert sa.eigenvalues[0] < 0  # a ViT's Hessian away from a minimum is indefinite


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_top_eigenvalues_of_cnn_with_batchnorm_in_both_modes(cnn64, mode):
    x, y = batch(16, seed=3)
    exact = torch.linalg.eigvalsh(dense_hessian(cnn64, x, y, mode)).numpy()
    snap = snapshot(cnn64)
    r = hessian.top_eigenvalues(cnn64, loss_fn, (x, y), k=5, tol=1e-6, mode=mode)
    np.testing.assert_allclose(r.eigenvalues, by_magnitude(exact, 5), rtol=1e-4)
    assert r.converged.all()
    assert_unchanged(cnn64, snap)  # running statistics not updated in train mode


def test_train_and_eval_mode_hessians_differ_for_batchnorm(cnn64):
    x, y = batch(16, seed=3)
    te = hessian.trace(cnn64, loss_fn, (x, y), num_probes=30, mode="eval").estimate
    tt = hessian.trace(cnn64, loss_fn, (x, y), num_probes=30, mode="train").estimate
    exact_e = torch.trace(dense_hessian(cnn64, x, y, "eval")).item()
    exact_t = torch.trace(dense_hessian(cnn64, x, y, "train")).item()
    assert abs(exact_e - exact_t) > 0.05 * abs(exact_e)
    assert abs(te - exact_e) < abs(te - exact_t)
    assert abs(tt - exact_t) < abs(tt - exact_e)


@pytest.mark.parametrize("method", ["hutch++", "hutchinson"])
def test_trace_within_three_standard_errors(vit64, method):
    x, y = batch()
    exact = torch.trace(dense_hessian(vit64, x, y)).item()
    t = hessian.trace(vit64, loss_fn, (x, y), num_probes=60, seed=2, method=method)
    assert t.stderr > 0
    assert abs(t.estimate - exact) <= 3 * t.stderr, (t, exact)
    assert t.num_hvps == 60


def test_trace_rtol_adds_probes_until_confident(vit64):
    x, y = batch()
    t = hessian.trace(vit64, loss_fn, (x, y), num_probes=6, method="hutchinson", rtol=0.05,
                      max_probes=400)
    assert t.num_probes > 6
    assert 1.96 * t.stderr <= 0.05 * abs(t.estimate) or t.num_probes == 400


def test_density_integrates_to_one_and_its_mean_is_trace_over_n(vit64):
    x, y = batch()
    Hd = dense_hessian(vit64, x, y)
    n = Hd.shape[0]
    d = hessian.density(vit64, loss_fn, (x, y), num_probes=40, lanczos_steps=30, seed=0)
    ev = torch.linalg.eigvalsh(Hd)
    lo, hi = ev.min().item(), ev.max().item()
    sigma = 0.01 * (hi - lo)
    grid = np.linspace(lo - 10 * sigma, hi + 10 * sigma, 20001)
    assert np.trapezoid(d.evaluate(grid, sigma), grid) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(d.weights.sum(1), 1.0, rtol=1e-10)
    # each probe's quadrature mean is v^T H v / |v|^2 exactly; their average estimates tr/n
    per_probe = (d.nodes * d.weights).sum(1)
    se = per_probe.std(ddof=1) / np.sqrt(len(per_probe))
    assert abs(d.mean() - torch.trace(Hd).item() / n) <= 3 * se


def test_hvp_of_a_list_of_batches_equals_hvp_of_their_concatenation(vit64):
    x, y = batch(15)
    v = {n: torch.randn_like(p) for n, p in vit64.named_parameters()}
    parts = [(x[:4], y[:4]), (x[4:11], y[4:11]), (x[11:], y[11:])]
    a = hessian.hvp(vit64, loss_fn, parts, v)
    b = hessian.hvp(vit64, loss_fn, (x, y), v)
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["reverse", "forward"])
@pytest.mark.parametrize("model_name, mode", [("vit64", "eval"), ("cnn64", "train")])
def test_matmat_equals_the_dense_hessian_times_each_column(model_name, mode, backend, request):
    model = request.getfixturevalue(model_name)
    x, y = batch(10)
    Hd = dense_hessian(model, x, y, mode=mode) + 0.3 * torch.eye(
        sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    V = torch.randn(Hd.shape[0], 7, generator=torch.Generator().manual_seed(2),
                    dtype=torch.float64)
    parts = [(x[:3], y[:3]), (x[3:], y[3:])] if mode == "eval" else (x, y)
    with hessian.OperatorSpec(
        model, loss_fn, parts, mode=mode, weight_decay=0.3, backend=backend
    ).open() as H:
        V0 = V.clone()
        HV = H.matmat(V, block=3)  # blocks of 3, 3 and 1 columns
        assert H.num_hvps == 7
        torch.testing.assert_close(HV, Hd @ V, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(H.matmat(V), Hd @ V, rtol=1e-8, atol=1e-10)  # one by one
        torch.testing.assert_close(HV[:, 4], H.matvec(V[:, 4]), rtol=1e-10, atol=1e-12)
        assert torch.equal(V, V0)  # the products never write into their input
        out = torch.full((Hd.shape[0],), float("nan"), dtype=torch.float64)
        assert H.matvec(V[:, 4], out=out) is out  # written in place, over every batch
        torch.testing.assert_close(out, Hd @ V[:, 4], rtol=1e-8, atol=1e-10)
        with pytest.raises(ValueError, match=r"V must have shape \(\d+, m\)"):
            H.matmat(V[:-1])
        with pytest.raises(ValueError, match="out must be a contiguous"):
            H.matvec(V[:, 4], out=out.float())


def test_weight_decay_shifts_every_eigenvalue_by_exactly_wd(vit64):
    x, y = batch()
    wd = 0.37
    a = hessian.top_eigenvalues(vit64, loss_fn, (x, y), k=4, which="LA", tol=1e-8)
    b = hessian.top_eigenvalues(vit64, loss_fn, (x, y), k=4, which="LA", tol=1e-8, weight_decay=wd)
    np.testing.assert_allclose(b.eigenvalues - a.eigenvalues, wd, atol=1e-6)


def test_params_subset_gives_the_block_of_the_dense_hessian(vit64):
    x, y = batch()
    names = [n for n, _ in vit64.named_parameters() if n.startswith("blocks.0.attn")]
    exact = torch.linalg.eigvalsh(dense_hessian(vit64, x, y, names=names)).numpy()
    r = hessian.top_eigenvalues(vit64, loss_fn, (x, y), k=3, tol=1e-6, params=names)
    np.testing.assert_allclose(r.eigenvalues, by_magnitude(exact, 3), rtol=1e-4)


def test_model_state_mode_and_requires_grad_unchanged_after_every_call(cnn64):
    x, y = batch(8)
    cnn64.train()
    cnn64.conv2.weight.requires_grad_(False)
    snap = snapshot(cnn64)
    v = {n: torch.ones_like(p) for n, p in cnn64.named_parameters() if p.requires_grad}
    for mode in ("eval", "train"):
        hessian.hvp(cnn64, loss_fn, (x, y), v, mode=mode)
        hessian.top_eigenvalues(cnn64, loss_fn, (x, y), k=2, mode=mode)
        hessian.trace(cnn64, loss_fn, (x, y), num_probes=6, mode=mode)
        hessian.density(cnn64, loss_fn, (x, y), num_probes=2, lanczos_steps=5, mode=mode)
        assert_unchanged(cnn64, snap)
    assert all(p.grad is None for p in cnn64.parameters())


def test_timm_vit_with_fused_attention_works_and_flag_is_restored():
    import timm

    torch.manual_seed(0)
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, in_chans=1,
                          img_size=8, patch_size=4, embed_dim=8, depth=1, num_heads=2).double()
    for mod in m.modules():
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = True
    x, y = batch()
    exact = torch.linalg.eigvalsh(dense_hessian(m, x, y)).numpy()
    r = hessian.top_eigenvalues(m, loss_fn, (x, y), k=3, tol=1e-6)
    np.testing.assert_allclose(r.eigenvalues, by_magnitude(exact, 3), rtol=1e-4)
    assert all(mod.fused_attn for mod in m.modules() if hasattr(mod, "fused_attn"))


def test_power_method_reproduces_pyhessian_and_reports_its_residuals(vit64):
    x, y = batch()
    exact = by_magnitude(torch.linalg.eigvalsh(dense_hessian(vit64, x, y)).numpy(), 1)
    r = hessian.top_eigenvalues(vit64, loss_fn, (x, y), k=1, method="power", tol=1e-6)
    assert r.eigenvalues[0] == pytest.approx(exact[0], rel=1e-3)
    assert np.isfinite(r.residuals).all()


def test_spectrum_collects_topk_per_minibatch_with_nep_and_ape(vit64):
    batches = [batch(8, seed=s) for s in range(3)]
    s = spectra.spectrum(vit64, loss_fn, batches, num_batches=3, k=4, tol=1e-6, progress=False,
                         weight_decay=0.01)
    assert s.eigenvalues.shape == (3, 4)
    for i, (x, y) in enumerate(batches):
        exact = torch.linalg.eigvalsh(dense_hessian(vit64, x, y)).numpy() + 0.01
        np.testing.assert_allclose(s.eigenvalues[i], by_magnitude(exact, 4), rtol=1e-4)
    e = s.eigenvalues.ravel()
    assert s.nep() == pytest.approx((e < 0).mean())
    assert s.ape() == pytest.approx(e[e > 0].mean())
    assert spectra.nep(np.array([-1.0, 2.0, 3.0, -4.0])) == 0.5
    assert spectra.ape(np.array([-1.0, 2.0, 4.0])) == 3.0


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda m, d: hessian.top_eigenvalues(m, loss_fn, d, k=10**6),
            "smaller than the number",
        ),
        (lambda m, d: hessian.top_eigenvalues(m, loss_fn, [], k=2), "empty"),
        (
            lambda m, d: hessian.top_eigenvalues(
                m, lambda o, t: F.cross_entropy(o, t, reduction="none"), d, k=2),
            "scalar",
        ),
        (
            lambda m, d: hessian.top_eigenvalues(m, loss_fn, d, params=["nope.weight"]),
            "unknown",
        ),
        (
            lambda m, d: hessian.top_eigenvalues(m, loss_fn, d, which="XX"),
            "which",
        ),
        (lambda m, d: hessian.trace(m, loss_fn, d, mode="test"), "mode"),
    ],
)
def test_bad_input_raises_value_error_with_a_clear_message(vit64, call, match):
    with pytest.raises(ValueError, match=match):
        call(vit64, batch())


@pytest.mark.parametrize("low_memory", [False, True])
def test_float32_model_gets_float64_sums_and_the_exact_top_eigenvalues(low_memory):
    # a float32 model gets a float32 basis whose inner products are summed in float64 (single
    # float32 ones stall residuals near 1e-3 on million-parameter models); low_memory keeps
    # no products and certifies with fresh HVPs, to the same tolerance
    torch.manual_seed(0)
    m64 = tiny_vit().double().eval()
    x, y = batch()
    want = by_magnitude(torch.linalg.eigvalsh(dense_hessian(m64, x, y)).numpy(), 5)
    m32 = copy.deepcopy(m64).float()
    r = hessian.top_eigenvalues(m32, loss_fn, (x.float(), y), k=5, tol=1e-5,
                                workspace=hessian.Workspace(low_memory=low_memory))
    assert r.converged.all() and (r.residuals <= 1e-5).all()
    assert r.eigenvalues.dtype == np.float64
    np.testing.assert_allclose(r.eigenvalues, want, rtol=1e-4)


def test_non_finite_inputs_or_weights_are_refused_with_a_clear_error():
    """NaN inputs, NaN weights or an infinite loss: a ValueError saying which, never numpy's
    'Eigenvalues did not converge' or a silent NaN trace."""
    model = tiny_vit().double()
    x, y = batch()
    bad_x = x.clone()
    bad_x[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="the inputs of batch 0 hold NaN or inf"):
        hessian.top_eigenvalues(model, F.cross_entropy, (bad_x, y), k=2)
    with pytest.raises(ValueError, match="the inputs of batch 0 hold NaN or inf"):
        hessian.trace(model, F.cross_entropy, (bad_x, y), num_probes=4)
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.head.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"weights are not finite \(1 tensors, e.g. head.weight"):
        hessian.top_eigenvalues(broken, F.cross_entropy, (x, y), k=2)
    with pytest.raises(ValueError, match="the loss on the data is inf"):
        hessian.trace(model, lambda out, t: F.cross_entropy(out, t) * float("inf"), (x, y))


def test_probes_run_in_ieee_float32_and_restore_the_tf32_settings():
    """cuDNN's TF32 default would put ~1e-3 relative noise into every HVP on a GPU; inside a
    probe both float32 settings read IEEE, and whatever the user had is back after."""
    from vitprobe.features import _fp32_flags, probe_mode

    flags = _fp32_flags()
    assert len(flags) == 2
    off = "ieee" if flags[0][1] == "fp32_precision" else False
    on = "tf32" if off == "ieee" else True
    saved = [getattr(o, n) for o, n in flags]
    try:
        for o, n in flags:
            setattr(o, n, on)
        with pytest.raises(RuntimeError, match="boom"), \
                probe_mode(torch.nn.Linear(2, 2), "eval"):
            assert [getattr(o, n) for o, n in flags] == [off, off]
            raise RuntimeError("boom")
        assert [getattr(o, n) for o, n in flags] == [on, on]
    finally:
        for (o, n), v in zip(flags, saved):
            setattr(o, n, v)


def test_the_model_level_call_is_the_solver_on_the_specs_operator(vit64):
    """One way from a model, one from an operator: the same numbers (and the exact ones)."""
    x, y = batch()
    op = hessian.OperatorSpec(vit64, loss_fn, (x, y), weight_decay=0.1)
    with op.open() as H:
        a = hessian.eigsh(H, 3, tol=1e-8, which="LA")
        t = hessian.hutchpp_trace(H, 8, seed=3)
        v = {n: torch.ones_like(p) for n, p in vit64.named_parameters()}
        hv_op = H.hvp(v)
    b = hessian.top_eigenvalues(vit64, loss_fn, (x, y), k=3, tol=1e-8, which="LA",
                                weight_decay=0.1)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    exact = np.sort(torch.linalg.eigvalsh(dense_hessian(vit64, x, y)).numpy())[::-1][:3]
    np.testing.assert_allclose(a.eigenvalues, exact + 0.1, rtol=1e-5)
    assert t.estimate == \
        hessian.trace(vit64, loss_fn, (x, y), num_probes=8, seed=3, weight_decay=0.1).estimate
    hv_model = hessian.hvp(vit64, loss_fn, (x, y), v, weight_decay=0.1)
    assert all(torch.equal(hv_op[n], hv_model[n]) for n in v)
    s = hessian.spectrum(vit64, loss_fn, [(x, y)], num_batches=1, k=2, tol=1e-6,
                         progress=False)
    assert s.eigenvalues.shape == (1, 2) and hessian.spectrum is spectra.spectrum
    with pytest.raises(TypeError, match="data"):
        hessian.top_eigenvalues(vit64, loss_fn)
    with pytest.raises(TypeError, match=r"takes a model, got OperatorSpec; for an operator "
                                        r"\(OperatorSpec.open\(\)\) call the solver on it"):
        hessian.top_eigenvalues(op, loss_fn, (x, y), k=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'wd'"):
        hessian.top_eigenvalues(vit64, loss_fn, (x, y), wd=0.1)


@pytest.mark.parametrize("make, needle", [
    (lambda m, d: hessian.OperatorSpec(m, loss_fn, d, weight_decay=-1), "weight_decay must"),
    (lambda m, d: hessian.OperatorSpec(m, loss_fn, d, backend="jvp"), "backend must"),
    (lambda m, d: hessian.top_eigenvalues(m, loss_fn, d, k=2, tol=2), r"in \(0, 1\)"),
    (lambda m, d: hessian.top_eigenvalues(m, loss_fn, d, k=2, tol=0), r"in \(0, 1\)"),
    (lambda m, d: hessian.top_eigenvalues(m, loss_fn, d, k=2, max_hvps=0), "max_hvps"),
])
def test_bad_spec_or_solver_options_are_refused_before_any_product(vit64, make, needle):
    with pytest.raises(ValueError, match=needle):
        make(vit64, batch())


def test_no_public_hessian_or_solver_function_takes_more_than_8_options():
    """Besides what a probe is of (model, loss_fn, data) and the typed options of that
    operator (``**options``: SpecOptions, landscape's LossOptions), at most 8 parameters."""
    import inspect

    from vitprobe import landscape, solvers

    operand = {"model", "loss_fn", "data", "batches"}
    for mod in (hessian, spectra, solvers, landscape):
        for name in dir(mod):
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and not name.startswith("_") and \
                    obj.__module__.startswith("vitprobe"):
                params = [p for p in inspect.signature(obj).parameters.values()
                          if p.name not in operand and p.kind is not p.VAR_KEYWORD]
                assert len(params) <= 8, (mod.__name__, name, [p.name for p in params])


def test_a_torchvision_vit_gets_its_exact_top_eigenvalues_and_is_left_as_it_was():
    """torchvision's nn.MultiheadAttention calls the fused attention kernel, whose backward
    is not differentiable: the probe runs it on the math kernel and restores the choice."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=8, patch_size=4, num_layers=1,
                                                 num_heads=2, hidden_dim=8, mlp_dim=16,
                                                 num_classes=3).double()
    torch.nn.init.normal_(model.heads.head.weight, std=0.3)  # torchvision starts it at zero
    x, y = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.randint(0, 3, (6,))
    exact = by_magnitude(torch.linalg.eigvalsh(dense_hessian(model, x, y)).numpy(), 3)
    snap = snapshot(model)
    b = torch.backends.cuda
    kernels_before = (b.flash_sdp_enabled(), b.mem_efficient_sdp_enabled(),
                      b.math_sdp_enabled())
    r = hessian.top_eigenvalues(model, loss_fn, (x, y), k=3, tol=1e-8)
    np.testing.assert_allclose(r.eigenvalues, exact, rtol=1e-6)
    assert_unchanged(model, snap)
    assert (b.flash_sdp_enabled(), b.mem_efficient_sdp_enabled(), b.math_sdp_enabled()) == \
        kernels_before == (True, True, True)  # the global kernel choice is back
