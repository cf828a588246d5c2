"""The model-free solvers on dense symmetric matrices with known spectra: clustered,
indefinite, near-degenerate pairs, k close to n; Hutch++ and SLQ against exact traces and
moments; the Hessian operator as a scipy LinearOperator."""

import numpy as np
import pytest
import torch

from vitprobe import solvers
from vitprobe.solvers import DenseOperator, kernels, lanczos


def matrix_with(eigenvalues, seed=0):
    """Q diag(λ) Qᵀ with a seeded random orthogonal Q (float64)."""
    lam = np.asarray(eigenvalues, dtype=float)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(lam), len(lam))))
    return torch.as_tensor(Q @ np.diag(lam) @ Q.T)


def top(lam, k, which):
    lam = np.asarray(lam, dtype=float)
    order = {"LM": np.argsort(-np.abs(lam)), "LA": np.argsort(-lam), "SA": np.argsort(lam)}
    return lam[order[which][:k]]


SPECTRA = {
    # 5 wanted eigenvalues well apart from a bulk of 195
    "separated": np.concatenate([[50, -40, 30, 20, -15], np.linspace(-1, 1, 195)]),
    # indefinite, negative ones the largest in magnitude (the ViT case)
    "indefinite": np.concatenate([[-9, -8, 7, -6.5, 6], np.linspace(-2, 2, 95)]),
    # a cluster of nearly equal top eigenvalues
    "clustered": np.concatenate([[10, 10 - 1e-3, 10 - 2e-3, 9.997, 9.996], np.linspace(0, 1, 95)]),
    # a near-degenerate ± pair: |λ| equal to 1e-6
    "near-degenerate": np.concatenate([[5, -5 + 1e-6, 3, 2.5, 2], np.linspace(-1, 1, 45)]),
}


@pytest.mark.parametrize("name", list(SPECTRA))
@pytest.mark.parametrize("method", ["lanczos", "arpack"])
def test_eigsh_finds_the_exact_top_k_with_certified_residuals(name, method):
    lam = SPECTRA[name]
    A = DenseOperator(matrix_with(lam))
    r = solvers.eigsh(A, 5, tol=1e-8, method=method, max_hvps=5000)
    np.testing.assert_allclose(np.sort(r.eigenvalues), np.sort(top(lam, 5, "LM")), atol=1e-6)
    assert r.converged.all() and (r.residuals <= 1e-8).all()
    assert r.num_hvps == A.num_hvps  # every product counted


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
@pytest.mark.parametrize("method", ["lanczos", "arpack", "power"])
def test_tol_means_the_relative_residual_of_every_returned_pair_for_every_method(method, tol):
    # one meaning of tol: ||A v - λ v|| <= tol·|λ| for each pair returned as converged,
    # measured here on the dense matrix from the returned vectors
    lam = SPECTRA["separated"]
    A = DenseOperator(matrix_with(lam))
    r = solvers.eigsh(
        A,
        5,
        tol=tol,
        method=method,
        max_hvps=5000,
        workspace=solvers.Workspace(eigenvectors=True),
    )
    V = torch.as_tensor(r.eigenvectors)
    np.testing.assert_allclose(V.norm(dim=0).numpy(), 1, rtol=1e-6)  # unit columns
    V = V / V.norm(dim=0)
    true = (A.A @ V - V * torch.as_tensor(r.eigenvalues)).norm(dim=0).numpy()
    assert r.converged.all(), r.residuals
    assert (true <= tol * np.abs(r.eigenvalues) * (1 + 1e-6)).all(), (true, r.eigenvalues)
    np.testing.assert_allclose(r.residuals, true / np.abs(r.eigenvalues), rtol=1e-3,
                               atol=1e-12)  # the residual reported is the true one
    np.testing.assert_allclose(np.sort(r.eigenvalues), np.sort(top(lam, 5, "LM")),
                               rtol=2 * tol)


@pytest.mark.parametrize("name", list(SPECTRA))
def test_low_memory_lanczos_finds_the_same_pairs_and_certifies_them_with_k_more_products(name):
    # a float32 basis without its kept products: the same steps, then one HVP per pair
    lam = SPECTRA[name]
    fast = solvers.eigsh(
        DenseOperator(matrix_with(lam)),
        5,
        tol=1e-6,
        max_hvps=5000,
        workspace=solvers.Workspace(eigenvectors=True),
    )
    A = DenseOperator(matrix_with(lam))
    low = solvers.eigsh(
        A,
        5,
        tol=1e-6,
        max_hvps=5000,
        workspace=solvers.Workspace(low_memory=True, eigenvectors=True),
    )
    np.testing.assert_allclose(np.sort(low.eigenvalues), np.sort(top(lam, 5, "LM")), atol=1e-5)
    assert low.converged.all() and (low.residuals <= 1e-6).all()
    M = A.A
    V = torch.as_tensor(low.eigenvectors).double()  # its float32 basis, as certified
    np.testing.assert_allclose(V.norm(dim=0).numpy(), 1, rtol=1e-6)
    true = (M @ V - V * torch.as_tensor(low.eigenvalues)).norm(dim=0) / V.norm(dim=0)
    np.testing.assert_allclose(true.numpy() / np.abs(low.eigenvalues), low.residuals,
                               rtol=1e-3, atol=1e-9)  # the residuals reported are the true ones
    assert low.num_hvps == A.num_hvps
    assert low.num_hvps == fast.num_hvps + 5  # same steps, then one product per pair


def test_restarted_lanczos_at_a_tight_tolerance_finds_no_ghost_copies():
    # many restarts and converged Ritz vectors: the selective reorthogonalisation must keep
    # the basis orthogonal enough that no eigenvalue is found twice
    lam = np.concatenate([[10, 9, 8, -7, 6], np.linspace(-1, 1, 395)])
    r = solvers.eigsh(
        DenseOperator(matrix_with(lam, seed=4)),
        5,
        tol=1e-10,
        max_hvps=5000,
        workspace=solvers.Workspace(ncv=11),
    )
    np.testing.assert_allclose(np.sort(r.eigenvalues), [-7, 6, 8, 9, 10], atol=1e-8)
    assert r.converged.all()


@pytest.mark.parametrize("low_memory", [False, True])
def test_a_reused_workspace_gives_the_same_pairs_and_keeps_its_buffers(low_memory):
    A = DenseOperator(matrix_with(SPECTRA["indefinite"], seed=5))
    ws = solvers.Workspace(low_memory=low_memory)
    alone = solvers.eigsh(A, 4, tol=1e-8, workspace=solvers.Workspace(low_memory=low_memory))
    first = solvers.eigsh(A, 4, tol=1e-8, workspace=ws)
    ptrs = {k: t.data_ptr() for k, t in ws._buffers.items()}
    second = solvers.eigsh(A, 4, tol=1e-8, workspace=ws)
    for r in (first, second):
        np.testing.assert_array_equal(r.eigenvalues, alone.eigenvalues)
        assert r.num_hvps == alone.num_hvps
    assert ptrs == {k: t.data_ptr() for k, t in ws._buffers.items()}  # nothing reallocated


def test_low_memory_is_an_option_of_the_lanczos_method_only():
    with pytest.raises(ValueError, match="low_memory is an option of method='lanczos'"):
        solvers.eigsh(DenseOperator(matrix_with(SPECTRA["separated"])), 3, method="arpack",
                      workspace=solvers.Workspace(low_memory=True))


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_eigsh_algebraic_ends_of_an_indefinite_spectrum(which):
    lam = SPECTRA["indefinite"]
    r = solvers.eigsh(DenseOperator(matrix_with(lam, seed=1)), 3, tol=1e-9, which=which)
    np.testing.assert_allclose(r.eigenvalues, top(lam, 3, which), atol=1e-7)


def test_eigsh_with_k_close_to_n_returns_the_whole_spectrum_but_one():
    lam = np.linspace(-3, 4, 12)
    r = solvers.eigsh(DenseOperator(matrix_with(lam, seed=2)), 11, tol=1e-9)
    np.testing.assert_allclose(np.sort(r.eigenvalues), np.sort(top(lam, 11, "LM")), atol=1e-8)
    with pytest.raises(ValueError, match="smaller than the number of dimensions"):
        solvers.eigsh(DenseOperator(matrix_with(lam)), 12)


def test_eigenvectors_returned_are_the_matrix_eigenvectors():
    lam = SPECTRA["separated"]
    M = matrix_with(lam, seed=3)
    r = solvers.eigsh(
        DenseOperator(M), 3, tol=1e-10, workspace=solvers.Workspace(eigenvectors=True)
    )
    V = torch.as_tensor(r.eigenvectors)
    np.testing.assert_allclose((M @ V).numpy(), (V * torch.as_tensor(r.eigenvalues)).numpy(),
                               atol=1e-8)


def test_hutchpp_trace_covers_the_exact_trace_and_beats_hutchinson():
    lam = np.concatenate([np.linspace(20, 10, 10), np.linspace(-0.5, 0.5, 290)])
    M = matrix_with(lam, seed=4)
    errs = {"hutch++": [], "hutchinson": []}
    for seed in range(20):
        for method in errs:
            t = solvers.hutchpp_trace(DenseOperator(M), 36, seed=seed, method=method)
            errs[method].append(t.estimate - lam.sum())
    rms = {m: float(np.sqrt(np.mean(np.square(e)))) for m, e in errs.items()}
    assert rms["hutch++"] < 0.5 * rms["hutchinson"]
    t = solvers.hutchpp_trace(DenseOperator(M), 36, seed=0)
    assert abs(t.estimate - lam.sum()) < 4 * t.stderr + 1e-9


def test_slq_density_integrates_to_one_and_has_the_matrix_mean():
    lam = np.linspace(-2, 6, 80)
    d = solvers.slq(DenseOperator(matrix_with(lam, seed=5)), 30, 40, seed=0)
    grid = np.linspace(-4, 8, 6001)
    assert np.trapezoid(d.evaluate(grid, sigma=0.1), grid) == pytest.approx(1.0, abs=1e-6)
    assert d.mean() == pytest.approx(lam.mean(), abs=0.25)  # 30 probes' standard error
    # with as many Lanczos steps as dimensions, a probe's nodes are the eigenvalues
    full = solvers.slq(DenseOperator(matrix_with(lam, seed=5)), 1, 80, seed=0)
    assert np.allclose(np.sort(full.nodes[0]), np.sort(lam), atol=1e-6)


def test_dense_operator_refuses_a_non_symmetric_matrix():
    with pytest.raises(ValueError, match="not symmetric"):
        DenseOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64))


def test_hessian_operator_as_a_scipy_linear_operator():
    """H.to_scipy() agrees with H.matvec, and scipy's own eigsh on it finds the eigenvalues
    our solver finds."""
    import scipy.sparse.linalg as sla
    import torch.nn.functional as F
    from conftest import batch, tiny_vit

    from vitprobe import hessian

    model = tiny_vit().double()
    x, y = batch()
    with hessian.OperatorSpec(model, F.cross_entropy, (x, y)).open() as H:
        L = H.to_scipy()
        v = np.random.default_rng(0).standard_normal(H.n)
        np.testing.assert_allclose(L @ v, H.matvec(torch.as_tensor(v)).numpy(), rtol=1e-12)
        assert L.shape == (H.n, H.n)
        ours = solvers.eigsh(H, 3, tol=1e-9).eigenvalues
        theirs = sla.eigsh(L, k=3, which="LM", tol=1e-10, return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(ours), np.sort(theirs), rtol=1e-6)


def test_gram_schmidt_products_in_column_blocks_equal_the_float64_ones():
    # same-sign entries, which a single float32 product over 1e5 of them gets wrong by 1.7e-6:
    # blocks of 999 (with a tail) to 1e-7; one exact block and one wider than n are single
    # products; r = x - V^T c beside, in place and into a float64 residual over a float32 basis
    g = torch.Generator().manual_seed(0)
    for dtype, tight in ((torch.float32, 1e-7), (torch.float64, 1e-13)):
        V = torch.rand(5, 100_000, generator=g, dtype=dtype)
        x = torch.rand(100_000, generator=g, dtype=dtype)
        c = torch.randn(5, generator=g, dtype=torch.float64)
        want_c = V.double() @ x.double()
        want_r = x.double() - V.double().T @ c
        atol = 1e-6 if dtype == torch.float32 else 1e-12
        for block in (999, 100_000, 1 << 17):
            rtol = tight if block < 1000 or dtype == torch.float64 else 1e-5
            got = kernels._project(V, x, block=block)
            assert got.dtype == torch.float64
            np.testing.assert_allclose(got.numpy(), want_c.numpy(), rtol=rtol)
            out = torch.empty_like(x)
            kernels._subtract(out, x, V, c, block=block)
            np.testing.assert_allclose(out.double().numpy(), want_r.numpy(), rtol=0, atol=atol)
            for y in (x.clone(), x.double().clone()):  # in place; a float64 residual
                kernels._subtract(y, y, V, c, block=block)
                np.testing.assert_allclose(y.double().numpy(), want_r.numpy(), rtol=0, atol=atol)


def test_a_float64_residual_over_a_float32_basis_is_subtracted_across_slices():
    # wider than one _COLUMN_CHUNK slice, with a shorter last one: every column subtracted once
    g = torch.Generator().manual_seed(1)
    n = 2 * kernels._COLUMN_CHUNK + 12_345
    V = torch.randn(4, n, generator=g)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    c = torch.randn(4, generator=g, dtype=torch.float64)
    want = x - V.double().T @ c.float().double()  # the coefficients rounded to V's dtype
    out = torch.full_like(x, float("nan"))
    kernels._subtract(out, x, V, c)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=0, atol=1e-5)


def test_a_float32_operator_gets_a_float32_basis_and_the_exact_top_k():
    # the ViT case in float32: one dominant eigenvalue that converges early (the one whose
    # lost orthogonality would come back as a ghost copy), an indefinite top 5, 3000
    # dimensions; the basis and the kept products are float32 (8 ncv bytes per dimension),
    # the residuals the true ones measured in float64
    lam = np.concatenate([[800.0, 150.0, 70.0, -68.0, 40.0], np.linspace(-20, 30, 2995)])
    M = matrix_with(lam, seed=6)
    A = DenseOperator(M.float())
    ws = solvers.Workspace(ncv=20, eigenvectors=True)
    r = solvers.eigsh(A, 5, tol=1e-4, workspace=ws)
    np.testing.assert_allclose(r.eigenvalues, top(lam, 5, "LM"), rtol=1e-5)
    assert r.converged.all()
    assert {t.dtype for t in ws._buffers.values()} == {torch.float32}
    assert sum(t.numel() * t.element_size() for k, t in ws._buffers.items()
               if k[0] in ("V", "W")) == 8 * 20 * 3000
    assert r.eigenvectors.dtype == np.float32  # the basis' dtype: no float64 copy of it
    V = torch.as_tensor(r.eigenvectors).double()
    np.testing.assert_allclose(V.norm(dim=0).numpy(), 1, rtol=1e-6)
    true = (M @ V - V * torch.as_tensor(r.eigenvalues)).norm(dim=0) / V.norm(dim=0)
    np.testing.assert_allclose(r.residuals, true.numpy() / np.abs(r.eigenvalues), rtol=0.05,
                               atol=2e-6)  # float32 products: ~1e-7 of ||A|| / |lambda|


def test_a_basis_that_lost_its_orthogonality_is_caught_and_the_solve_redone(monkeypatch):
    # plain Lanczos (orthogonalising against the last two vectors only) lets the dominant
    # eigenvector come back as a ghost copy while the slow fifth pair converges: the ghost
    # pair is caught by the Ritz vectors' cosines and the solve redone with two passes
    lam = np.concatenate([[100.0, 60.0, -40.0, 20.0, 1.05], np.linspace(-1, 1, 295)])
    original, passes = lanczos._orthogonalise, []

    def without_reorthogonalisation(r, hv, Vm, two_passes):
        passes.append(two_passes)
        if two_passes:
            return original(r, hv, Vm, two_passes)
        col, beta = original(r, hv, Vm[-2:], two_passes)
        return np.concatenate([np.zeros(len(Vm) - len(col)), col]), beta

    monkeypatch.setattr(lanczos, "_orthogonalise", without_reorthogonalisation)
    A = DenseOperator(matrix_with(lam, seed=7))
    r = solvers.eigsh(A, 5, tol=1e-8, max_hvps=2000, workspace=solvers.Workspace(ncv=60))
    assert False in passes and True in passes  # the one-pass solve was redone
    np.testing.assert_allclose(np.sort(r.eigenvalues), np.sort(top(lam, 5, "LM")), atol=1e-6)
    assert r.converged.all() and r.num_hvps == A.num_hvps


class Diagonal:
    """diag(d) as an operator: products exact in float64 for a test of any length."""

    def __init__(self, d: torch.Tensor) -> None:
        self.d, self.n, self.device, self.dtype = d, len(d), d.device, d.dtype
        self.num_hvps = 0

    def matvec(self, v, out=None):
        self.num_hvps += 1
        hv = self.d * v.to(self.dtype)
        return hv if out is None else out.copy_(hv)

    def matmat(self, V):
        self.num_hvps += V.shape[1]
        return self.d[:, None] * V.to(self.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_certifying_by_products_gives_the_true_residuals_across_column_blocks(dtype):
    # low_memory's certificate: u = y Vm over 2 column blocks and a tail, one HVP each, then
    # ||H u - theta u|| / ||u||, against the same computed in float64 from the rows
    g = torch.Generator().manual_seed(0)
    n = 2 * kernels._DOT_BLOCK + 1234
    H = Diagonal(torch.linspace(-3.0, 5.0, n, dtype=torch.float64).to(dtype))
    Vm = torch.randn(7, n, generator=g)  # a float32 basis, as low_memory keeps
    Ys = torch.randn(3, 7, generator=g, dtype=torch.float64)
    theta = np.array([4.9, -2.5, 0.7])
    res, U = lanczos._certify_by_products(H, Ys, theta, Vm, vectors=True)
    u = Ys @ Vm.double()
    want = ((H.d.double() * u - torch.as_tensor(theta)[:, None] * u).norm(dim=1)
            / u.norm(dim=1))
    np.testing.assert_allclose(res, want.numpy(), rtol=1e-5)
    np.testing.assert_allclose(U.double().numpy(), (u / u.norm(dim=1, keepdim=True)).numpy(),
                               rtol=1e-4, atol=1e-5)  # unit rows
    assert H.num_hvps == 3
    one, none = lanczos._certify_by_products(H, Ys, theta, Vm, vectors=False)
    # the same sums; BLAS may block a differently aligned row differently (float32 rounding)
    np.testing.assert_allclose(one, res, rtol=1e-6)
    assert none is None


def test_the_lanczos_basis_layout_follows_the_memory_available(monkeypatch):
    # the basis with its kept products where it fits in half the free memory, else the
    # float32 basis alone; the same pairs either way, and the result names the layout
    from vitprobe.solvers import memory

    n, ncv = 300, 20
    assert memory.lanczos_bytes(n, torch.float32, ncv, False) == n * (4 * ncv + 4 * ncv + 8)
    assert memory.lanczos_bytes(n, torch.float32, ncv, True) == n * (4 * ncv + 12)
    assert memory.lanczos_bytes(n, torch.float64, ncv, False) == n * (16 * ncv + 16)
    full = memory.lanczos_bytes(200, torch.float64, 20, False)
    lam = SPECTRA["separated"]  # 200 dimensions, float64
    found = {}
    for free, layout in ((2 * full, "kept products"), (2 * full - 1, "low memory")):
        monkeypatch.setattr(memory, "available_bytes", lambda device, free=free: free)
        A = DenseOperator(matrix_with(lam))
        r = solvers.eigsh(A, 5, tol=1e-6, max_hvps=5000)  # a float32 basis: 1e-6
        assert layout in r.layout and r.to_dict()["layout"] == r.layout
        assert r.converged.all() and r.num_hvps == A.num_hvps
        found[layout] = r
    np.testing.assert_allclose(found["low memory"].eigenvalues,
                               found["kept products"].eigenvalues, rtol=1e-6)
    # an explicit choice is kept whatever the memory; unknown memory keeps the products
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1)
    assert (
        "kept products"
        in solvers.eigsh(
            DenseOperator(matrix_with(lam)), 5, workspace=solvers.Workspace(low_memory=False)
        ).layout
    )
    monkeypatch.setattr(memory, "available_bytes", lambda device: None)
    assert not memory.low_memory_needed(10 ** 12, torch.float32, 20, "cpu")
    assert memory.available_bytes("cpu") is None


@pytest.mark.parametrize("method", ["lanczos", "arpack", "power"])
def test_a_timed_workspace_records_the_seconds_of_each_section(method):
    # every product sleeps 2 ms: the products section holds at least that much per product
    # and the sections add up to the solve's time; an untimed solve records nothing
    import time

    class Slow(DenseOperator):
        def matmat(self, V):
            time.sleep(0.002 * V.shape[1])
            return super().matmat(V)

    lam = SPECTRA["separated"]
    r = solvers.eigsh(
        Slow(matrix_with(lam)),
        5,
        tol=1e-6,
        method=method,
        max_hvps=5000,
        workspace=solvers.Workspace(timed=True),
    )
    t = r.timings
    assert set(t) == {"products", "gram_schmidt", "restarts", "certify", "rest"}
    assert t["products"] >= 0.002 * r.num_hvps
    assert sum(t.values()) == pytest.approx(r.seconds, rel=1e-9)
    assert min(t.values()) >= 0 or t["rest"] > -1e-6
    if method == "lanczos":
        assert t["gram_schmidt"] > 0 and t["certify"] > 0
    else:
        assert t["gram_schmidt"] == t["restarts"] == t["certify"] == 0
    assert solvers.eigsh(Slow(matrix_with(lam)), 5, method=method).timings is None


def test_one_default_tol_for_the_api_the_solvers_and_the_cli():
    import inspect

    from vitprobe import hessian, spectra
    from vitprobe.solvers import DEFAULT_TOL, eigsh
    from vitprobe.studies.hessian import HessianConfig

    defaults = {inspect.signature(f).parameters["tol"].default
                for f in (eigsh, hessian.top_eigenvalues, spectra.spectrum)}
    assert defaults == {DEFAULT_TOL} == {HessianConfig().tol} == {1e-3}


# --- operators whose Krylov space closes at once: every method must notice, in float32 too
EASY = {
    "zero": np.zeros(60),
    "0.05 I": np.full(60, 0.05),
    "3 I": np.full(60, 3.0),
    "rank 2": np.concatenate([[4.0, -2.5], np.zeros(58)]),
}


@pytest.mark.parametrize("name", list(EASY))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["lanczos", "arpack", "power"])
def test_invariant_subspaces_converge_in_a_bounded_number_of_products(name, dtype, method):
    """Zero eigenvalues are judged absolutely against |λmax| (a relative residual of 0 means
    nothing), breakdown is detected at the operator's precision, and the budget is one:
    these converge to the exact eigenvalues in at most 2k+1 products plus certification."""
    lam = EASY[name]
    k = 5
    op = DenseOperator(matrix_with(lam).to(dtype))
    r = solvers.eigsh(op, k=k, tol=1e-3, method=method, max_hvps=300)
    assert r.converged.all(), (r.eigenvalues, r.residuals)
    np.testing.assert_allclose(np.sort(r.eigenvalues), np.sort(top(lam, k, "LM")),
                               atol=1e-5 * max(1.0, np.abs(lam).max()))
    # power iteration converges at the rate |λ2/λ1| = 0.625 on the rank-2 one (~16 steps)
    assert r.num_hvps <= {"lanczos": 2 * k + 1, "arpack": 60, "power": 60}[method], \
        r.num_hvps


@pytest.mark.parametrize("method", ["lanczos", "arpack", "power"])
@pytest.mark.parametrize("max_hvps", [12, 30, 50])
def test_one_budget_counts_every_product_certification_and_retries_included(method,
                                                                          max_hvps):
    """A spectrum that needs more products than allowed: the solver stops at the budget,
    its certifying products counted, never past it."""
    lam = np.concatenate([[10, 10 - 1e-3, 10 - 2e-3, 9.997, 9.996], np.linspace(0, 9.99, 295)])
    op = DenseOperator(matrix_with(lam))
    r = solvers.eigsh(op, k=5, tol=1e-10, method=method, max_hvps=max_hvps)
    assert op.num_hvps <= max_hvps and r.num_hvps <= max_hvps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_one_class_mlp_with_weight_decay_has_the_hessian_wd_times_identity(dtype):
    """One class makes cross-entropy 0 and its gradient 0: the Hessian of NLL + l2 is exactly
    wd·I (the user's image folder with one class). Five eigenvalues 0.05, converged, within
    2k+1 products."""
    import torch.nn.functional as F

    from vitprobe import hessian

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 1)).to(dtype)
    x, y = torch.randn(8, 48, dtype=dtype), torch.zeros(8, dtype=torch.long)
    r = hessian.top_eigenvalues(model, F.cross_entropy, (x, y), k=5, tol=1e-3,
                                weight_decay=0.05)
    assert r.converged.all(), (r.eigenvalues, r.residuals)
    np.testing.assert_allclose(r.eigenvalues, 0.05, rtol=1e-5)
    assert r.num_hvps <= 11
