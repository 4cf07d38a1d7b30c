"""The truncated stabilized sparse kernel and its compiled Sinkhorn loop."""

import warnings

import mne
import numpy as np
import pytest
from scipy import sparse

import mne_wasserstein.ot.sinkhorn as sinkhorn
from mne_wasserstein import compute_ground_metric
from mne_wasserstein._warnings import ConvergenceWarning
from mne_wasserstein.ot import (
    BlockDiagonalKernel,
    SparseKernel,
    make_kernel,
    unbalanced_barycenter,
    unbalanced_sinkhorn,
)


def _rel(x, ref):
    return np.abs(np.asarray(x) - ref).max() / np.abs(ref).max()


def _two_lines(p, seed):
    """Two blocks of p random points on a line of length 100 (no transport
    between blocks)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 100, p))
    line = np.abs(x[:, None] - x[None])
    M = np.full((2 * p, 2 * p), np.inf)
    M[:p, :p] = M[p:, p:] = line
    return rng, M


def _array_code(backend):
    """``compiled`` values to test: the compiled loop runs on numpy only."""
    return (True, False) if backend.name == "numpy" else (False,)


def _focal(rng, p, S, floor=1e-3):
    """MWE-like inputs: a mass floor and a few sharp peaks per subject."""
    A = rng.uniform(0, 1, (p, S, 2)) ** 12 + floor
    return A


@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_compiled_loop_equals_array_code(eps, backend):
    """The compiled loop (numpy) and the array code on every backend."""
    rng, M = _two_lines(150, 0)
    A = _focal(rng, 300, 4)
    A2 = A * np.exp(0.05 * np.random.default_rng(1).standard_normal(A.shape))
    kw = dict(epsilon=eps, gamma=30.0, tol=1e-12)
    res = {}
    runs = {True: ("numpy", np.asarray), False: (backend.name, backend.asarray)}
    for compiled, (name, to_xp) in runs.items():
        kernel = make_kernel(M, eps, kind="sparse", compiled=compiled, backend=name)
        cold = unbalanced_barycenter(to_xp(A), kernel, **kw)
        warm = unbalanced_barycenter(to_xp(A2), kernel, init=cold, **kw)
        dist = unbalanced_sinkhorn(to_xp(A[:, 0, 0]), to_xp(A[:, 1:, 0]), kernel, **kw)
        res[compiled] = (cold, warm, dist)
    to_np = backend.to_numpy  # the array code's outputs live on the backend
    for a, b in zip(res[True][:2], res[False][:2], strict=True):
        assert a.state.n_iter == b.state.n_iter
        # 1e-10: the same iterations, rounding apart (the products sum in the
        # same order; exp and log may differ in the last bit)
        assert _rel(a.barycenter, to_np(b.barycenter)) < 1e-10
        assert _rel(a.marginals, to_np(b.marginals)) < 1e-10
        assert np.abs(a.state.f - to_np(b.state.f)).max() < 1e-10 * eps
        assert np.abs(a.state.g - to_np(b.state.g)).max() < 1e-10 * eps
    a, b = res[True][2], res[False][2]
    assert a.state.n_iter == b.state.n_iter
    assert _rel(a.left_marginal, to_np(b.left_marginal)) < 1e-10
    value = to_np(b.value)
    assert np.abs(a.value - value).max() < 1e-10 * np.abs(value).max()


@pytest.fixture(scope="module")
def cortex(subjects_dir):
    """The geodesic metric of the template's left hemisphere (ico4, mm)."""
    src = mne.setup_source_space(
        "fsaverage5", "ico4", subjects_dir=subjects_dir, add_dist=False, verbose=False
    )
    gm = compute_ground_metric(src, subjects_dir=subjects_dir, verbose=False)
    return np.asarray(gm.blocks[0], dtype=np.float64)


def _cortex_inputs(M, seed, S=3):
    """Four focal sources per subject near four common centres, both signs,
    on a mass floor (MWE's transport inputs)."""
    rng = np.random.default_rng(seed)
    p = len(M)
    A = np.full((p, S, 2), 1e-3)
    for centre in rng.choice(p, 4, replace=False):
        near = np.argsort(M[centre])[:20]
        for s in range(S):
            A[rng.choice(near), s, rng.integers(2)] += rng.uniform(0.5, 1.0)
    return A


@pytest.mark.parametrize("eps", [0.45, 1.0, 2.0])
def test_sparse_matches_dense_on_cortex(cortex, eps):
    """The acceptance of issue 19: the same barycenters to 1e-6, cold and
    warm, at MWE's epsilons (0.45 mm: the paper's; 1 mm: the benchmark's).

    numpy only: dense products at p = 2562 take about 40 s per case; the
    array code (the path of the other backends) is tested equal to the
    compiled loop on every backend above.
    """
    M = cortex
    A = _cortex_inputs(M, 0)
    A2 = A * np.exp(0.02 * np.random.default_rng(1).standard_normal(A.shape))
    kw = dict(epsilon=eps, gamma=20.0, tol=1e-9, max_iter=5000)
    out = {}
    for kind in ("dense", "sparse"):
        kernel = make_kernel(M, eps, kind=kind, dtype=np.float64)
        cold = unbalanced_barycenter(A, kernel, **kw)
        warm = unbalanced_barycenter(A2, kernel, init=cold, **kw)
        out[kind] = (cold, warm)
    # the automatic choice: sparse where it keeps less than 20 percent
    # (float64 at zero potentials: 1.7, 8.6 and 33 percent)
    kind = SparseKernel if eps < 2 else BlockDiagonalKernel
    assert isinstance(make_kernel(M, eps), kind)
    for dense, sparse_ in zip(out["dense"], out["sparse"], strict=True):
        assert dense.state.converged and sparse_.state.converged
        # 1e-6 (the acceptance); both stopped at 1e-9, truncation 1e-12
        assert _rel(sparse_.barycenter, dense.barycenter) < 1e-6
        assert _rel(sparse_.marginals, dense.marginals) < 1e-6
        assert abs(sparse_.value - dense.value).max() < 1e-6 * abs(dense.value).max()


@pytest.mark.parametrize("dtype, truncation", [(np.float64, 1e-12), (np.float32, 1e-9)])
def test_truncation_bound(cortex, dtype, truncation):
    """Every entry left out of the stabilized kernel carries less than
    t s / p of transport in every column (s: the smallest of the
    columns' largest masses, t the truncation of the dtype), as documented.

    numpy only: the truncation is computed on the host for every backend
    (``SparseKernel.stabilize``), and the cortex makes it costly.
    """
    M, eps = cortex, 1.0
    A = _cortex_inputs(M, 2).reshape(len(M), -1)
    kernel = make_kernel(M, eps, kind="sparse", dtype=dtype)
    res = unbalanced_barycenter(A, kernel, epsilon=eps, gamma=20.0, tol=1e-9)
    lu = res.state.f.astype(np.float64) / eps
    lv = res.state.g.astype(np.float64) / eps
    s = A.max(axis=0).min()
    stab = kernel.stabilize(lu, lv, mass_scale=s)
    indptr, indices = stab.kv[:2]
    kept = sparse.csr_array(
        (np.ones(len(indices)), indices, indptr), shape=M.shape
    ).toarray()
    assert 0 < kept.mean() < 0.2
    worst = 0.0
    for c in range(A.shape[1]):
        plan = np.exp(lu[:, c, None] + lv[None, :, c] - M / eps)
        worst = max(worst, plan[kept == 0].max())
    assert worst < truncation * s / len(M)
    # the plans from the potentials have the returned marginals (float32:
    # potentials f / eps of up to about 100 rounded to 6e-8 relative)
    plan0 = np.exp(lu[:, 0, None] + lv[None, :, 0] - M / eps)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    assert _rel(plan0.sum(1), res.marginals[:, 0]) < rtol


def _far_transport():
    """All the mass must travel 300 epsilon: far beyond what the kernel keeps
    at zero potentials (about 45 epsilon)."""
    x = np.arange(200.0)
    M = np.abs(x[:, None] - x[None])
    a, b = np.zeros(200), np.zeros(200)
    a[:10] = b[150:160] = 1.0
    return M, a, b, 0.5


@pytest.mark.parametrize("gamma", [np.inf, 1000.0])
def test_restabilization_keeps_truncation_safe(gamma, backend, monkeypatch):
    """As the potentials grow, the kernel is stabilized again: the result is
    the dense one. Without re-stabilization (monkeypatched) it is not, so
    this test depends on it."""
    M, a, b, eps = _far_transport()
    # 5517 iterations with gamma = 1000 (3618 before over-relaxation was
    # safeguarded, see test_safeguarded_relaxation_stays_finite)
    kw = dict(epsilon=eps, gamma=gamma, tol=1e-10, max_iter=10_000)
    dense = unbalanced_sinkhorn(a, b, make_kernel(M, eps, kind="dense"), **kw)
    a, b = backend.asarray(a), backend.asarray(b)
    for compiled in _array_code(backend):
        kernel = make_kernel(
            M, eps, kind="sparse", compiled=compiled, backend=backend.name
        )
        res = unbalanced_sinkhorn(a, b, kernel, **kw)
        assert res.state.converged
        # 1e-9: both converged to 1e-10; the truncation error is below 1e-12
        left = backend.to_numpy(res.left_marginal)
        assert _rel(left, dense.left_marginal) < 1e-9
        assert abs(res.value - dense.value) < 1e-9 * abs(dense.value)
        if gamma < np.inf:  # (balanced: a translation, exact in 2 iterations)
            kernel._last_stabilization = None  # not the converged one's
            with monkeypatch.context() as patch, warnings.catch_warnings():
                patch.setattr(sinkhorn, "_ABSORB", np.inf)
                warnings.simplefilter("ignore")
                stale = unbalanced_sinkhorn(a, b, kernel, **{**kw, "max_iter": 500})
            left = backend.to_numpy(stale.left_marginal)
            assert not _rel(left, dense.left_marginal) < 1e-2


def _counting(method, calls):
    """``method``, recording each call's instance in ``calls``."""

    def counted(self, *args, **kwargs):
        calls.append(self)
        return method(self, *args, **kwargs)

    return counted


def test_warm_start_reuses_stabilization(backend, monkeypatch):
    """A warm start reuses the last stabilization where it is valid (the
    same masks, no smaller mass scale, the start within _ABSORB of it) and
    gives the result of a freshly stabilized kernel; otherwise (a smaller
    mass scale) it stabilizes again."""
    rng, M = _two_lines(60, 3)
    A = _focal(rng, 120, 3)
    A2 = A * np.exp(0.01 * rng.standard_normal(A.shape))
    kw = dict(gamma=20.0, tol=1e-10)
    for compiled in _array_code(backend):
        kernel = make_kernel(
            M, 0.5, kind="sparse", compiled=compiled, backend=backend.name
        )
        cold = unbalanced_barycenter(backend.asarray(A), kernel, **kw)
        calls = []
        counted = _counting(type(kernel).stabilize, calls)
        with monkeypatch.context() as patch:
            patch.setattr(type(kernel), "stabilize", counted)
            warm = unbalanced_barycenter(backend.asarray(A2), kernel, init=cold, **kw)
            n_reused = len(calls)
            kernel._last_stabilization = None
            fresh = unbalanced_barycenter(backend.asarray(A2), kernel, init=cold, **kw)
            assert len(calls) == n_reused + 1  # only the first stabilization
            # half the mass scale: the truncation bound needs a new kernel
            calls.clear()
            unbalanced_barycenter(backend.asarray(A2 / 2), kernel, init=fresh, **kw)
            assert len(calls) >= 1
        # 1e-8: both converged to 1e-10 from different stabilizations
        bary = backend.to_numpy(warm.barycenter)
        assert _rel(bary, backend.to_numpy(fresh.barycenter)) < 1e-8


def _separated_columns():
    """The barycenter of a floor and one spike per problem at epsilon = 1e-5
    of the median distance (reference MTW code's small-epsilon case): the
    columns' potentials drift thousands of epsilon apart."""
    grid = np.arange(100.0)
    M = np.abs(grid[:, None] - grid[None])
    A = np.full((100, 2, 2), 1e-3)
    A[0, 0, 0] += 1.0
    A[50, 1, 1] += 1.0
    return M / np.median(M), A, 1e-5


@pytest.mark.parametrize("relaxation, max_iter", [(1.0, 1200), (None, 1000)])
def test_separated_columns(relaxation, max_iter, backend):
    """Two failures of the sparse engine at epsilon << gamma, fixed.

    1. The stabilized kernel absorbs the largest potentials of the columns
       at each point; an entry negligible for them underflows to 0 in the
       kernel domain but may carry a column whose potentials are thousands
       below. The products of that column fall back to log-sum-exps over the
       row, which must use the entry's log, not log(0): before the fix the
       plain iterates (``relaxation=1``) left the dense ones after about 990
       iterations (relative 1e-2 at 1000).
    2. Far from the fixed point the over-relaxed step can overshoot: with
       the default relaxation (1.99 here) the potentials went to 1e10 and
       the marginals to 0 and inf within 100 iterations. Steps that would
       lose the dual's increase fall back to the plain step.

    The iterates stay finite, every marginal positive, and the sparse
    kernels agree with the dense one.
    """
    M, A, eps = _separated_columns()
    kw = dict(
        epsilon=eps, gamma=1.0, tol=1e-300, max_iter=max_iter, relaxation=relaxation
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = unbalanced_barycenter(A, make_kernel(M, eps, kind="dense"), **kw)
        for compiled in _array_code(backend):
            kernel = make_kernel(
                M, eps, kind="sparse", compiled=compiled, backend=backend.name
            )
            res = unbalanced_barycenter(backend.asarray(A), kernel, **kw)
            m = backend.to_numpy(res.marginals)
            assert np.isfinite(m).all() and (m > 0).all()
            assert np.isfinite(res.state.err)
            # 1e-9: the products agree to float64 rounding of potentials of
            # about 3000 (1e-13 relative), amplified along the iterations
            q = backend.to_numpy(res.barycenter)
            assert _rel(q, dense.barycenter) < 1e-9


def test_every_row_keeps_an_entry(backend):
    """Balanced transport to a target with empty points: a truncation at the
    current potentials could leave a row with no entry towards the target;
    the potentials are raised so that it keeps its best one (else the
    iterations stall at a 6e-4 marginal error)."""
    rng = np.random.default_rng(0)
    X = rng.random((50, 2))
    M = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    a, b = rng.random(50), rng.random(50) * (rng.random(50) < 0.5)
    a, b = a / a.sum(), b / b.sum()
    eps = 0.01 * np.median(M)
    kw = dict(epsilon=eps, gamma=np.inf, tol=1e-12)
    dense = unbalanced_sinkhorn(a, b, make_kernel(M, eps, kind="dense"), **kw)
    a, b = backend.asarray(a), backend.asarray(b)
    for compiled in _array_code(backend):
        kernel = make_kernel(
            M, eps, kind="sparse", compiled=compiled, backend=backend.name
        )
        assert kernel.kept_fraction() < 0.2
        res = unbalanced_sinkhorn(a, b, kernel, **kw)
        assert res.state.converged
        # 1e-10: converged to 1e-12, rounding apart
        left = backend.to_numpy(res.left_marginal)
        assert np.abs(left - dense.left_marginal).max() < 1e-10


def test_sparse_ground_metric_blocks(backend):
    """A ground metric stored sparse (distances up to a radius, the diagonal
    stored as 0, missing entries: no transport) gives a sparse kernel; with a
    radius beyond what the plans use, the dense result."""
    rng, M = _two_lines(100, 3)
    A = _focal(rng, 200, 3)
    eps = 0.5
    blocks = []
    for b in (slice(0, 100), slice(100, 200)):
        block = M[b, b]
        rows, cols = np.nonzero(block <= 60.0)
        blocks.append(
            sparse.csr_array((block[rows, cols], (rows, cols)), shape=(100, 100))
        )
    assert blocks[0][0, 0] == 0 and blocks[0].nnz > 100  # zeros are stored
    kernel = make_kernel(blocks, eps, backend=backend.name)
    assert isinstance(kernel, SparseKernel)
    kw = dict(epsilon=eps, gamma=10.0, tol=1e-10)
    res = unbalanced_barycenter(backend.asarray(A), kernel, **kw)
    dense = unbalanced_barycenter(A, make_kernel(M, eps, kind="dense"), **kw)
    # 1e-8: both converged to 1e-10, the radius (60) is 120 epsilon
    assert _rel(backend.to_numpy(res.barycenter), dense.barycenter) < 1e-8
    # eps * sum(K) of the metric as given: no entry beyond the radius
    inside = [np.exp(-b.data / eps).sum() for b in blocks]
    assert np.isclose(kernel.total(), sum(inside), rtol=1e-12)
    with pytest.raises(ValueError, match="kind='sparse'"):
        make_kernel(blocks, eps, kind="dense")


def test_kind_choice(backend):
    _, large = _two_lines(300, 4)
    assert isinstance(make_kernel(large, 0.02), SparseKernel)  # few points per row
    assert isinstance(make_kernel(large, 20.0), BlockDiagonalKernel)  # dense
    # blocks of at most 256 points: sparse on numpy (the compiled loop), at
    # any density; the array code on other backends stays dense
    rng, M = _two_lines(100, 4)
    assert isinstance(make_kernel(M, 20.0), SparseKernel)
    dense_elsewhere = make_kernel(backend.asarray(M), 20.0)
    kind = SparseKernel if backend.name == "numpy" else BlockDiagonalKernel
    assert isinstance(dense_elsewhere, kind)
    assert isinstance(make_kernel(M, 0.2, kind="dense"), BlockDiagonalKernel)
    with pytest.raises(ValueError, match="kind"):
        make_kernel(M, 0.2, kind="csr")
    # the solvers use the dense kernel where an input has exact zeros
    A = _focal(rng, 200, 2).reshape(200, -1)
    A0 = A.copy()
    A0[:50, 0] = 0
    A, A0 = backend.asarray(A), backend.asarray(A0)
    # the kernel is on the backend of the masses (M is numpy)
    chosen = sinkhorn._solver_kernel(M, 0.02, None, None, A0)
    assert isinstance(chosen, BlockDiagonalKernel) and chosen.xp is backend.xp
    chosen = sinkhorn._solver_kernel(M, 0.02, None, None, A)
    assert isinstance(chosen, SparseKernel) and chosen.xp is backend.xp
