"""Tests of the entropic unbalanced OT engine (mne_wasserstein.ot)."""

import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

from mne_wasserstein.ot import (
    BarycenterResult,
    BlockDiagonalKernel,
    KernelOperator,
    SinkhornState,
    make_kernel,
    signed_wasserstein,
    unbalanced_barycenter,
    unbalanced_sinkhorn,
)

ot = pytest.importorskip("ot")


def _points(p, seed, dim=2):
    rng = np.random.default_rng(seed)
    X = rng.random((p, dim))
    M = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    return rng, M


def _kl(x, y):
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 log 0 = 0
        t = np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / y), 0.0)
    return float((t - x + y).sum())


def _objective(P, a, b, M, eps, gamma):
    """Eq. 9 evaluated on an explicit plan (KL(P | K) with log K = -M / eps)."""
    pos = P > 0
    ent = np.where(pos, P * (np.log(np.where(pos, P, 1)) + M / eps), 0.0)
    kl_pk = (ent - P + np.exp(-M / eps)).sum()
    return eps * kl_pk + gamma * _kl(P.sum(1), a) + gamma * _kl(P.sum(0), b)


def _rel(x, ref):
    return np.abs(np.asarray(x) - ref).max() / np.abs(ref).max()


# Array-level tests take the ``backend`` fixture (conftest.py): inputs are
# moved to the backend, outputs checked to be backend arrays and compared with
# numpy references through ``backend.to_numpy``.


# (epsilon / median(M), gamma / median(M)) where POT's solvers are reliable
POT_RELIABLE = [(0.1, 1.0), (0.05, 0.3), (0.5, 5.0)]


@pytest.mark.parametrize("eps_rel, gamma_rel", POT_RELIABLE)
def test_sinkhorn_matches_pot(eps_rel, gamma_rel, backend):
    rng, M = _points(50, 0)
    med = np.median(M)
    eps, gamma = eps_rel * med, gamma_rel * med
    a, b = rng.random(50), 2 * rng.random(50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT: "c is overwritten by ones"
        P = ot.unbalanced.sinkhorn_unbalanced(
            a, b, M, eps, gamma, reg_type="entropy", stopThr=1e-14, numItermax=100_000
        )
    # M stays numpy: the namespace is that of the masses
    res = unbalanced_sinkhorn(
        backend.asarray(a), backend.asarray(b), M, epsilon=eps, gamma=gamma, tol=1e-12
    )
    assert res.state.converged
    # 1e-6 relative: the acceptance tolerance; both solvers are converged to
    # ~1e-12, so the agreement is limited by rounding only
    assert abs(res.value - _objective(P, a, b, M, eps, gamma)) < 1e-6 * abs(res.value)
    assert _rel(backend.to_numpy(res.left_marginal), P.sum(1)) < 1e-6
    assert _rel(backend.to_numpy(res.right_marginal), P.sum(0)) < 1e-6


@pytest.mark.parametrize("eps_rel, gamma_rel", POT_RELIABLE)
def test_barycenter_matches_pot(eps_rel, gamma_rel, backend):
    rng, M = _points(60, 1)
    med = np.median(M)
    eps, gamma = eps_rel * med, gamma_rel * med
    A = rng.random((60, 5)) * rng.random(5)  # different total masses
    w = rng.random(5)
    w /= w.sum()
    q_pot = ot.unbalanced.barycenter_unbalanced(
        A, M, eps, gamma, weights=w, stopThr=1e-14, numItermax=100_000
    )
    A, w = backend.asarray(A), backend.asarray(w)
    res = unbalanced_barycenter(A, M, epsilon=eps, gamma=gamma, weights=w, tol=1e-12)
    assert isinstance(res, BarycenterResult) and res.state.converged
    assert res.barycenter.shape == (60,) and res.marginals.shape == (60, 5)
    # 1e-6 relative, the acceptance tolerance (both converged to ~1e-12)
    assert _rel(backend.to_numpy(res.barycenter), q_pot) < 1e-6
    # plain Sinkhorn (no over-relaxation) reaches the same point
    res1 = unbalanced_barycenter(
        A, M, epsilon=eps, gamma=gamma, weights=w, tol=1e-12, relaxation=1.0
    )
    assert _rel(backend.to_numpy(res1.barycenter), q_pot) < 1e-6
    assert res.state.n_iter < res1.state.n_iter


def _ref_log_barycenter(A, M, eps, gamma, n_iter):
    """Direct log-domain generalised Sinkhorn (weights 1 / S)."""
    psi = gamma / (gamma + eps)
    logK = -M / eps
    with np.errstate(divide="ignore"):
        la = np.log(A)  # -inf where no mass
    lv = np.zeros_like(A)
    S = A.shape[1]
    for _ in range(n_iter):
        lu = psi * (la - logsumexp(logK[:, :, None] + lv[None], axis=1))
        lKtu = logsumexp(logK.T[:, :, None] + lu[None], axis=1)
        lq = logsumexp((1 - psi) * lKtu - np.log(S), axis=1) / (1 - psi)
        lv = psi * (lq[:, None] - lKtu)
    return np.exp(lq)


def _ref_log_sinkhorn(a, b, M, eps, gamma, n_iter):
    psi = gamma / (gamma + eps)
    logK = -M / eps
    lv = np.zeros_like(b)
    with np.errstate(divide="ignore"):
        la, lb = np.log(a), np.log(b)
    for _ in range(n_iter):
        lu = psi * (la - logsumexp(logK + lv[None], axis=1))
        lv = psi * (lb - logsumexp(logK.T + lu[None], axis=1))
    logP = lu[:, None] + logK + lv[None]
    return np.exp(logP)


@pytest.mark.parametrize("eps_rel", [1e-2, 1e-3])
def test_small_epsilon_log_domain(eps_rel, backend):
    # POT returns zero mass, NaN or overflowed mass here; we must not
    rng, M = _points(30, 2)
    med = np.median(M)
    eps, gamma = eps_rel * med, 0.01 * med
    # sparse inputs: K^T u underflows far from their supports
    A = rng.random((30, 4)) * (rng.random((30, 4)) < 0.3)
    A[0] = 1.0
    dense = make_kernel(M, eps, kind="dense", backend=backend.name)
    ref = _ref_log_barycenter(A, M, eps, gamma, 400)
    A_b = backend.asarray(A)
    # the dense kernel (switching to the log domain) and the sparse one (on
    # numpy, the compiled loop; elsewhere, the array code)
    sparse_kernel = make_kernel(M, eps, kind="sparse", backend=backend.name)
    for kernel in (dense, sparse_kernel):
        res = unbalanced_barycenter(A_b, kernel, epsilon=eps, gamma=gamma, tol=1e-12)
        assert res.state.converged
        for x in (res.barycenter, res.marginals, res.state.f, res.state.g):
            assert np.isfinite(backend.to_numpy(x)).all()
        assert np.isfinite(res.value)
        # 1e-8: both iterations converged far below that (contraction ~ psi^2)
        assert _rel(backend.to_numpy(res.barycenter), ref) < 1e-8
    # max(M) / eps ~ 2500 > 745: the dense kernel-domain iterations break down
    res = unbalanced_barycenter(A_b, dense, epsilon=eps, gamma=gamma, tol=1e-12)
    assert res.state.log_domain == (eps_rel == 1e-3)
    if eps_rel == 1e-3:
        with pytest.raises(FloatingPointError, match="log_domain"):
            unbalanced_barycenter(
                A_b, dense, epsilon=eps, gamma=gamma, log_domain=False
            )

    # float32 kernel-domain iterations underflow earlier (max(M) / eps > 87)
    r32 = unbalanced_barycenter(
        backend.asarray(A.astype(np.float32)),
        dense.astype(np.float32),
        epsilon=eps,
        gamma=gamma,
        tol=1e-6,
    )
    q32 = backend.to_numpy(r32.barycenter)
    assert r32.state.log_domain and np.isfinite(q32).all()
    # 1e-5: float32 output of float64 log-domain iterations stopped at 1e-6
    assert _rel(q32, ref) < 1e-5

    a, b = A[:, 0], A[:, 1]
    sk = unbalanced_sinkhorn(
        A_b[:, 0], A_b[:, 1], M, epsilon=eps, gamma=gamma, tol=1e-12
    )
    P = _ref_log_sinkhorn(a, b, M, eps, gamma, 400)
    assert np.isfinite(sk.value)
    # 1e-8: converged reference, rounding-limited agreement
    assert _rel(backend.to_numpy(sk.left_marginal), P.sum(1)) < 1e-8
    assert _rel(backend.to_numpy(sk.right_marginal), P.sum(0)) < 1e-8
    assert abs(sk.value - _objective(P, a, b, M, eps, gamma)) < 1e-8 * abs(sk.value)


def test_barycenter_optimality_certificate(backend):
    # the barycenter equals the weighted mean of the right marginals
    rng, M = _points(40, 3)
    eps, gamma = 0.05 * np.median(M), np.median(M)
    A = backend.asarray(rng.random((40, 3)))
    res = unbalanced_barycenter(A, M, epsilon=eps, gamma=gamma, tol=1e-10)
    right = [
        backend.to_numpy(
            unbalanced_sinkhorn(
                A[:, s], res.barycenter, M, epsilon=eps, gamma=gamma, tol=1e-12
            ).right_marginal
        )
        for s in range(3)
    ]
    # 1e-6: two independent solves at tol 1e-10 / 1e-12
    assert _rel(np.mean(right, axis=0), backend.to_numpy(res.barycenter)) < 1e-6


def test_identical_inputs(backend):
    x = np.linspace(0, 1, 80)
    M = (x[:, None] - x[None]) ** 2
    a = np.exp(-((x - 0.4) ** 2) / 0.01) + 0.05
    A = np.repeat(a[:, None], 4, axis=1)
    eps, gamma = 1e-4, 1.0
    kw = dict(epsilon=eps, gamma=gamma, tol=1e-10)
    res = unbalanced_barycenter(backend.asarray(A), M, **kw)
    one = unbalanced_barycenter(backend.asarray(a[:, None]), M, **kw)
    q, q_one = backend.to_numpy(res.barycenter), backend.to_numpy(one.barycenter)
    # exact identity up to the solver tolerance
    assert _rel(q, q_one) < 1e-8
    # 2 %: the entropic blur (sqrt(eps) = 0.01 vs a bump of width 0.07)
    assert _rel(q, a) < 0.02


def test_two_diracs_middle(backend):
    x = np.linspace(0, 1, 101)
    M = (x[:, None] - x[None]) ** 2
    A = np.zeros((101, 2))
    A[20, 0] = A[80, 1] = 1.0
    A = backend.asarray(A)
    res = unbalanced_barycenter(A, M, epsilon=1e-3, gamma=1.0, tol=1e-10)
    q = backend.to_numpy(res.barycenter)
    assert np.isfinite(q).all()
    assert np.argmax(q) == 50
    # 1e-6: symmetric problem, the centre of mass is 0.5 up to the tolerance
    assert abs((q * x).sum() / q.sum() - 0.5) < 1e-6
    assert q[:35].sum() < 1e-3 * q.sum()  # no mass left at the inputs


def _two_hemis(seed, p1=30, p2=25):
    rng, M1 = _points(p1, seed)
    _, M2 = _points(p2, seed + 1)
    M = np.full((p1 + p2, p1 + p2), np.inf)
    M[:p1, :p1], M[p1:, p1:] = M1, M2
    return rng, M, M1, M2


def test_block_diagonal_equals_dense(backend):
    rng, M, M1, M2 = _two_hemis(4)
    p = M.shape[0]
    eps, gamma, tol = 0.05, 0.5, 1e-12
    A = rng.random((p, 3))
    A[:30, 2] = 0  # one input without mass in the first hemisphere
    A_b = backend.asarray(A)
    kern = make_kernel(M, eps, backend=backend.name)
    assert [(b.start, b.stop) for b in kern.blocks] == [(0, 30), (30, p)]
    dense = BlockDiagonalKernel([slice(0, p)], [M], eps, np.float64, backend.xp)
    res_b = unbalanced_barycenter(A_b, kern, epsilon=eps, gamma=gamma, tol=tol)
    res_d = unbalanced_barycenter(A_b, dense, epsilon=eps, gamma=gamma, tol=tol)
    res_l = unbalanced_barycenter(A_b, [M1, M2], epsilon=eps, gamma=gamma, tol=tol)
    q_b, q_d = backend.to_numpy(res_b.barycenter), backend.to_numpy(res_d.barycenter)
    m_b = backend.to_numpy(res_b.marginals)
    # 1e-10: same iterations, products summed in another order
    assert _rel(q_b, q_d) < 1e-10
    assert _rel(backend.to_numpy(res_l.barycenter), q_d) < 1e-10
    assert _rel(m_b, backend.to_numpy(res_d.marginals)) < 1e-10
    assert np.all(m_b[:30, 2] == 0)
    # non-contiguous blocks (a permutation) give the permuted result
    perm = rng.permutation(p)
    res_p = unbalanced_barycenter(
        backend.asarray(A[perm]), M[perm][:, perm], epsilon=eps, gamma=gamma, tol=tol
    )
    assert _rel(backend.to_numpy(res_p.barycenter), q_b[perm]) < 1e-10
    # distance too
    a, b = A_b[:, 0], A_b[:, 1]
    sk_b = unbalanced_sinkhorn(a, b, M, epsilon=eps, gamma=gamma)
    sk_d = unbalanced_sinkhorn(a, b, dense, epsilon=eps, gamma=gamma)
    assert abs(sk_b.value - sk_d.value) < 1e-10 * abs(sk_d.value)


def test_warm_start(backend):
    rng, M = _points(80, 5)
    eps, gamma = 0.02 * np.median(M), np.median(M)
    A = rng.random((80, 4))
    A2 = A * (1 + 0.05 * rng.standard_normal(A.shape)).clip(0.5)
    A, A2 = backend.asarray(A), backend.asarray(A2)
    first = unbalanced_barycenter(A, M, epsilon=eps, gamma=gamma, tol=1e-9)
    cold = unbalanced_barycenter(A2, M, epsilon=eps, gamma=gamma, tol=1e-9)
    warm = unbalanced_barycenter(A2, M, epsilon=eps, gamma=gamma, tol=1e-9, init=first)
    # 1e-7: two solves stopped at tol 1e-9 reach the same fixed point
    q_warm, q_cold = (
        backend.to_numpy(warm.barycenter),
        backend.to_numpy(cold.barycenter),
    )
    assert _rel(q_warm, q_cold) < 1e-7
    assert warm.state.n_iter < cold.state.n_iter
    # restarting at the solution stops at once
    again = unbalanced_barycenter(
        A2, M, epsilon=eps, gamma=gamma, tol=1e-8, init=warm.state
    )
    assert again.state.n_iter <= 2
    with pytest.raises(ValueError, match="incompatible"):
        unbalanced_barycenter(A2[:, :3], M, epsilon=eps, gamma=gamma, init=first)


def test_batched_problems_and_signed(backend):
    rng, M = _points(40, 6)
    kw = dict(epsilon=0.05, gamma=0.5, tol=1e-12)
    X = rng.standard_normal((40, 3))
    A = backend.asarray(np.stack([np.maximum(X, 0), np.maximum(-X, 0)], axis=2))
    res = unbalanced_barycenter(A, M, **kw)
    assert res.barycenter.shape == (40, 2) and res.marginals.shape == (40, 3, 2)
    q, value = backend.to_numpy(res.barycenter), backend.to_numpy(res.value)
    for k in range(2):
        one = unbalanced_barycenter(A[:, :, k], M, **kw)
        # 1e-9: batched and single solves stop at different iterations
        assert _rel(q[:, k], backend.to_numpy(one.barycenter)) < 1e-9
        assert abs(value[k] - one.value) < 1e-9 * abs(one.value)
    a, b = X[:, 0], X[:, 1]
    sw = signed_wasserstein(backend.asarray(a), backend.asarray(b), M, **kw)
    parts = [np.maximum(a, 0), np.maximum(b, 0), np.maximum(-a, 0), np.maximum(-b, 0)]
    a_pos, b_pos, a_neg, b_neg = map(backend.asarray, parts)
    pos = unbalanced_sinkhorn(a_pos, b_pos, M, **kw)
    neg = unbalanced_sinkhorn(a_neg, b_neg, M, **kw)
    assert abs(sw.value - pos.value - neg.value) < 1e-9 * abs(sw.value)
    assert sw.left_marginal.shape == (40, 2)


def test_float32(backend):
    rng, M = _points(100, 7)
    kw = dict(epsilon=0.05 * np.median(M), gamma=np.median(M), tol=1e-6)
    A = rng.random((100, 4))
    r64 = unbalanced_barycenter(backend.asarray(A), M, **kw)
    r32 = unbalanced_barycenter(backend.asarray(A.astype(np.float32)), M, **kw)
    assert r32.barycenter.dtype == np.float32
    assert r32.state.converged and not r32.state.log_domain
    # 1e-5: float32 rounding (6e-8) amplified by sums over p and the fixed point
    q32, q64 = backend.to_numpy(r32.barycenter), backend.to_numpy(r64.barycenter)
    assert _rel(q32, q64) < 1e-5


def test_float32_products_float64_scalings(caplog, backend):
    rng, M = _points(150, 10)
    eps, gamma = 0.05 * np.median(M), np.median(M)
    A = rng.random((150, 6))
    A32 = backend.asarray(A.astype(np.float32))
    r64 = unbalanced_barycenter(
        backend.asarray(A), M, epsilon=eps, gamma=gamma, tol=1e-12
    )
    q64 = backend.to_numpy(r64.barycenter)
    # the dense kernel's float32 products (make_kernel would choose the
    # compiled sparse kernel for blocks this small on numpy)
    K32 = make_kernel(M, eps, kind="dense", dtype=np.float32, backend=backend.name)
    # float32 products, float64 log-scalings: tol=1e-6 is reached in float32
    with caplog.at_level(logging.INFO, logger="mne"):
        r32 = unbalanced_barycenter(A32, K32, gamma=gamma, tol=1e-6)
    assert r32.state.converged and "stalls" not in caplog.text
    # 1e-6: float32 rounding of the products (6e-8 relative) moves the fixed
    # point by a few 1e-7
    assert _rel(backend.to_numpy(r32.barycenter), q64) < 1e-6
    # below the float32 rounding floor (~1e-7), the products switch to float64
    with caplog.at_level(logging.INFO, logger="mne"):
        r32 = unbalanced_barycenter(A32, K32, gamma=gamma, tol=1e-11)
    assert r32.state.converged and "rounding stalls" in caplog.text
    # 1e-8: float64 iterations stopped at 1e-11, float32 output (6e-8 / 10)
    assert _rel(backend.to_numpy(r32.barycenter), q64) < 1e-8 + 1e-7


def test_float32_products_no_early_handover(caplog):
    # epsilon / gamma = 1 / 586 on a 1-D grid: the criterion stays near 1e3
    # for several iterations at first, which is not float32 rounding; the
    # products hand over to float64 only at the rounding floor
    p = 2000
    grid = np.arange(p, dtype=np.float32)
    M = np.abs(grid[:, None] - grid[None])
    A = np.full((p, 4, 2), 1e-3, dtype=np.float32)
    with caplog.at_level(logging.INFO, logger="mne"):
        res = unbalanced_barycenter(
            A, M, epsilon=1.0, gamma=float(np.median(M)), tol=1e-6
        )
    assert res.state.converged and not res.state.log_domain
    levels = [
        float(line.split("criterion at ")[1].split(";")[0])
        for line in caplog.text.splitlines()
        if "rounding stalls" in line
    ]
    assert all(level < 1e-4 for level in levels), levels


class _Unrestricted(KernelOperator):
    """A kernel operator that only implements the abstract interface."""

    def __init__(self, kernel):
        self._kernel = kernel
        self.n_points, self.epsilon = kernel.n_points, kernel.epsilon
        self.dtype, self.xp, self.blocks = kernel.dtype, kernel.xp, kernel.blocks

    def matvec(self, V):
        return self._kernel.matvec(V)

    def rmatvec(self, U):
        return self._kernel.rmatvec(U)

    def log_matvec(self, log_V):
        return self._kernel.log_matvec(log_V)

    def log_rmatvec(self, log_U):
        return self._kernel.log_rmatvec(log_U)

    def total(self):
        return self._kernel.total()

    def astype(self, dtype):
        return _Unrestricted(self._kernel.astype(dtype))


def test_support_restriction_is_exact(backend):
    rng, M, M1, M2 = _two_hemis(11)
    p = M.shape[0]
    M[:30, :30] += 0.3 * rng.random((30, 30))  # a non-symmetric block
    kw = dict(epsilon=0.05, gamma=0.5, tol=1e-12)
    # sparse inputs: rows 10-29 and 40-54 have no mass in any column
    A = rng.random((p, 4)) * (rng.random((p, 4)) < 0.5)
    A[10:30] = A[40:] = 0
    A = backend.asarray(A)
    kern = make_kernel(M, 0.05, backend=backend.name, kind="dense")
    res = unbalanced_barycenter(A, kern, **kw)
    assert kern._restricted is not None  # the products skipped those rows
    plain = _Unrestricted(make_kernel(M, 0.05, backend=backend.name, kind="dense"))
    ref = unbalanced_barycenter(A, plain, **kw)
    # 1e-12: the skipped entries only meet exact zeros; summation order only
    for x, x_ref in [(res.barycenter, ref.barycenter), (res.marginals, ref.marginals)]:
        assert _rel(backend.to_numpy(x), backend.to_numpy(x_ref)) < 1e-12
    assert abs(res.value - ref.value) < 1e-12 * abs(ref.value)
    assert res.state.n_iter == ref.state.n_iter
    # the distance: rows without source mass, columns without target mass
    a, b = A[:, 0], A[:, 1]
    sk = unbalanced_sinkhorn(a, b, kern, **kw).right_marginal
    sk_ref = unbalanced_sinkhorn(a, b, plain, **kw).right_marginal
    assert _rel(backend.to_numpy(sk), backend.to_numpy(sk_ref)) < 1e-12
    # the restricted operator itself: K @ V on the rows, K.T @ U on the columns
    # (rows and cols: numpy masks, see KernelOperator._restrict)
    rows, cols = rng.random(p) < 0.4, rng.random(p) < 0.6
    sub = kern._restrict(rows, cols)
    K = np.exp(-M / 0.05)
    V = rng.random((p, 3)) * cols[:, None]
    U = rng.random((p, 3)) * rows[:, None]
    KV = backend.to_numpy(sub.matvec(backend.asarray(V)))
    KtU = backend.to_numpy(sub.rmatvec(backend.asarray(U)))
    # 1e-14: dense float64 products of the same entries
    assert _rel(KV[rows], (K @ V)[rows]) < 1e-14
    assert _rel(KtU[cols], (K.T @ U)[cols]) < 1e-14
    assert kern._restrict(rows, cols) is sub  # cached
    assert kern._restrict(np.ones(p, bool), np.ones(p, bool)) is kern


def test_kernel_domain_range(backend):
    # columns of very different scales stay in the kernel domain (one shift
    # per column), float32 included, and match the log domain
    rng, M = _points(60, 12)
    eps, gamma = 0.05 * np.median(M), np.median(M)
    A = rng.random((60, 3)) * np.array([1e-30, 1.0, 1e25])
    ref = unbalanced_barycenter(
        backend.asarray(A), M, epsilon=eps, gamma=gamma, log_domain=True
    )
    m_ref = backend.to_numpy(ref.marginals)
    for dtype, rtol in [(np.float64, 1e-9), (np.float32, 1e-5)]:
        # rtol: solver tolerance 1e-6 on both sides (and float32 rounding)
        A_b = backend.asarray(A.astype(dtype))
        res = unbalanced_barycenter(A_b, M, epsilon=eps, gamma=gamma)
        assert not res.state.log_domain
        m = backend.to_numpy(res.marginals)
        for s in range(3):
            assert _rel(m[:, s], m_ref[:, s]) < rtol
    # kernel entries below float32's smallest normal number (max(M) / eps =
    # 100 > 87) where the plan transports mass: never silently dropped
    x = np.linspace(0, 1, 40)
    M = np.abs(x[:, None] - x[None])
    A = np.zeros((40, 2))
    A[:3, 0] = A[-3:, 1] = 1.0
    kw = dict(epsilon=0.01, gamma=10.0, tol=1e-8)
    ref = unbalanced_barycenter(backend.asarray(A), M, log_domain=True, **kw)
    res = unbalanced_barycenter(backend.asarray(A.astype(np.float32)), M, **kw)
    # 1e-5: float32 outputs of float64 log-domain iterations, tol 1e-8
    q, q_ref = backend.to_numpy(res.barycenter), backend.to_numpy(ref.barycenter)
    assert _rel(q, q_ref) < 1e-5


def test_kernel_domain_products_are_exact_or_flagged(backend):
    # the far entry (95 eps away) is a float32 subnormal: where it carries
    # half of a product, the product must be flagged (log domain) or exact
    from mne_wasserstein.ot.sinkhorn import _LogProducts

    x = np.array([0.0, 0.001, 0.95])
    M = np.abs(x[:, None] - x[None])
    eps = 0.01
    rng = np.random.default_rng(14)
    cases = [np.array([[-np.inf], [0.0], [95.0]])]
    cases += [rng.uniform(-120, 120, (3, 1)) for _ in range(200)]
    need = backend.asarray(np.ones((3, 1), bool))
    n_ok = 0
    for dtype in (np.float32, np.float64):
        kernel = make_kernel(M, eps, dtype=dtype, backend=backend.name, kind="dense")
        prods = _LogProducts(kernel, exact=False)
        for lx in cases:
            out, ok = prods(backend.asarray(lx), False, need)
            out = backend.to_numpy(out)
            exact = logsumexp(-M / eps + lx[:, 0][None], axis=1)
            n_ok += ok
            # 1e-6: float32 rounding of 3-term products (6e-8 each)
            assert not ok or np.abs(out[:, 0] - exact).max() < 1e-6
    assert 0 < n_ok < 2 * len(cases)  # both outcomes occur


def test_few_low_products_are_repaired_exactly(backend):
    # one isolated point (0.7 = 70 eps from the others): its float32 product
    # (about exp(-68)) is below tau = tiny^(2/3), one entry of 200, so it is
    # recomputed exactly instead of switching the whole call to the log domain
    from mne_wasserstein.ot.sinkhorn import _LogProducts

    x = np.append(np.linspace(0, 0.3, 199), 1.0)
    M = np.abs(x[:, None] - x[None])
    eps = 0.01
    lx = np.zeros((200, 1))
    lx[-1] = -100.0
    kernel = make_kernel(M, eps, dtype=np.float32, backend=backend.name, kind="dense")
    prods = _LogProducts(kernel, exact=False)
    need = backend.asarray(np.ones((200, 1), bool))
    out, ok = prods(backend.asarray(lx), False, need)
    out = backend.to_numpy(out)
    exact = logsumexp(-M / eps + lx[:, 0][None], axis=1)
    assert ok
    # 1e-12: the repaired entry is a float64 log-sum-exp
    assert abs(out[-1, 0] - exact[-1]) < 1e-12
    # 1e-6: float32 rounding of the other products (6e-8 per term)
    assert np.abs(out[:, 0] - exact).max() < 1e-6
    # the transpose, on a support that skips the first point (no mass there)
    cols = np.ones(200, bool)
    cols[0] = False
    prods = _LogProducts(kernel, exact=False, support=(cols, cols))
    lx[0] = -np.inf
    exact = logsumexp(-M / eps + lx[:, 0][None], axis=1)
    out, ok = prods(backend.asarray(lx), True, backend.asarray(cols[:, None]))
    out = backend.to_numpy(out)
    assert ok
    assert np.abs(out[1:, 0] - exact[1:]).max() < 1e-6


def test_kernels_have_no_subnormal_entries(backend):
    # subnormal entries slow products down ~10x on x86: they are flushed
    x = np.linspace(0, 1, 50)
    M = np.abs(x[:, None] - x[None])
    for dtype, eps in [(np.float32, 0.011), (np.float64, 0.0014)]:
        kernel = make_kernel(M, eps, dtype=dtype, backend=backend.name, kind="dense")
        K = backend.to_numpy(kernel.matvec(backend.asarray(np.eye(50, dtype=dtype))))
        tiny = np.finfo(dtype).tiny
        assert ((K == 0) | (K >= tiny)).all()
        assert (K == 0).any()  # the range reaches below tiny
    # a float64 kernel converted to float32
    k32 = make_kernel(M, 0.011, backend=backend.name).astype(np.float32)
    K32 = backend.to_numpy(k32.matvec(backend.asarray(np.eye(50, dtype="f4"))))
    assert ((K32 == 0) | (K32 >= np.finfo(np.float32).tiny)).all()


def test_warm_start_new_support(backend):
    # mass appears where the previous solution had none ("no mass" markers)
    rng, M = _points(50, 13)
    eps, gamma = 0.05 * np.median(M), np.median(M)
    A1 = backend.asarray(rng.random((50, 3)) * (rng.random((50, 3)) < 0.5))
    A2 = backend.asarray(rng.random((50, 3)))
    first = unbalanced_barycenter(A1, M, epsilon=eps, gamma=gamma, tol=1e-9)
    cold = unbalanced_barycenter(A2, M, epsilon=eps, gamma=gamma, tol=1e-9)
    warm = unbalanced_barycenter(A2, M, epsilon=eps, gamma=gamma, tol=1e-9, init=first)
    assert not warm.state.log_domain
    # 1e-7: two solves stopped at tol 1e-9
    q_warm, q_cold = (
        backend.to_numpy(warm.barycenter),
        backend.to_numpy(cold.barycenter),
    )
    assert _rel(q_warm, q_cold) < 1e-7


def test_bad_input(backend):
    rng, M = _points(10, 8)
    a_np = rng.random(10)
    a, ones2 = backend.asarray(a_np), backend.asarray(np.ones((10, 2)))
    kw = dict(epsilon=0.1, gamma=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        unbalanced_sinkhorn(-a, a, M, **kw)
    with pytest.raises(ValueError, match="non-negative"):
        unbalanced_barycenter(-a[:, None], M, **kw)
    with pytest.raises(ValueError, match="rows"):
        unbalanced_sinkhorn(a[:5], a[:5], M, **kw)
    with pytest.raises(ValueError, match="columns"):
        unbalanced_sinkhorn(ones2, backend.asarray(np.ones((10, 3))), M, **kw)
    with pytest.raises(ValueError, match="epsilon"):
        unbalanced_sinkhorn(a, a, M, epsilon=0, gamma=1.0)
    with pytest.raises(ValueError, match="gamma"):
        unbalanced_barycenter(ones2, M, epsilon=0.1, gamma=-1.0)
    with pytest.raises(ValueError, match="square"):
        unbalanced_sinkhorn(a, a, M[:, :5], **kw)
    with pytest.raises(ValueError, match="non-negative"):
        unbalanced_sinkhorn(a, a, -M, **kw)
    with pytest.raises(ValueError, match="NaN"):
        unbalanced_sinkhorn(backend.asarray(a_np * np.nan), a, M, **kw)
    with pytest.raises(ValueError, match="weights"):
        unbalanced_barycenter(ones2, M, weights=[1, 1], **kw)
    with pytest.raises(ValueError, match="dimensions"):
        unbalanced_barycenter(a, M, **kw)
    with pytest.raises(ValueError, match="epsilon"):
        unbalanced_barycenter(ones2, make_kernel(M, 0.2, backend=backend.name), **kw)
    with pytest.raises(TypeError, match="init"):
        unbalanced_barycenter(ones2, M, init=np.ones(3), **kw)
    assert isinstance(unbalanced_barycenter(ones2, M, **kw).state, SinkhornState)


def test_ot_does_not_import_mne():
    code = "import sys, mne_wasserstein.ot; assert 'mne' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_non_convergence_warns(backend):
    from mne_wasserstein.solvers import ConvergenceWarning

    rng = np.random.default_rng(0)
    x = np.linspace(0, 10, 30)
    M = np.abs(x[:, None] - x[None])
    A = backend.asarray(rng.uniform(0, 1, (30, 3)))
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        res = unbalanced_barycenter(A, M, epsilon=0.5, gamma=5.0, max_iter=2)
    assert not res.state.converged


def test_strict_stand_in_fails_where_cupy_fails():
    """The CPU stand-in for cupy (``_strict_backend``) refuses implicit
    conversion to numpy and mixing with numpy arrays, as cupy does, and
    goes through the transfers of ``ot._backend``."""
    from _strict_backend import ArrayBackend

    from mne_wasserstein.ot._backend import asarray, get_namespace, to_numpy

    strict = ArrayBackend("strict")
    x = strict.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.zeros(3)[:] = x
    with pytest.raises(TypeError, match="Unsupported type"):
        x + np.ones(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        np.ones(3) * x
    # numpy functions on device arrays run on the device (cupy's dispatch)
    assert isinstance(np.exp(x), type(x)) and float(np.sum(x)) == 3.0
    assert get_namespace(np.ones(2), x) is strict.xp
    assert get_namespace(backend="strict") is strict.xp
    np.testing.assert_array_equal(to_numpy(x), [0.0, 1.0, 2.0])
    assert isinstance(asarray(x, np), np.ndarray)


def test_kernel_carries_epsilon():
    """A kernel operator carries its epsilon: the solvers take it without
    one, refuse another, and a ground metric needs one."""
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, 30))
    M = np.abs(x[:, None] - x[None])
    A = rng.uniform(0.1, 1, (30, 3))
    kernel = make_kernel(M, 0.5)
    ref = unbalanced_barycenter(A, M, epsilon=0.5, gamma=5.0)
    res = unbalanced_barycenter(A, kernel, gamma=5.0)
    np.testing.assert_array_equal(res.barycenter, ref.barycenter)
    dist = unbalanced_sinkhorn(A[:, 0], A[:, 1], kernel, gamma=5.0)
    assert dist.value == unbalanced_sinkhorn(A[:, 0], A[:, 1], M, epsilon=0.5,
                                             gamma=5.0).value  # fmt: skip
    with pytest.raises(ValueError, match="built with epsilon=0.5"):
        unbalanced_barycenter(A, kernel, epsilon=0.4, gamma=5.0)
    with pytest.raises(ValueError, match="epsilon is needed"):
        unbalanced_barycenter(A, M, gamma=5.0)
    with pytest.raises(ValueError, match="epsilon"):
        unbalanced_barycenter(A, M, epsilon=-1.0, gamma=5.0)
