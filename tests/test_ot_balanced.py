"""Balanced Sinkhorn (gamma=inf) and the virtual-point kernel of mne_wasserstein.ot."""

import numpy as np
import pytest
from scipy.special import logsumexp

from mne_wasserstein.ot import (
    VirtualPointKernel,
    unbalanced_barycenter,
    unbalanced_sinkhorn,
)

ot = pytest.importorskip("ot")


def _points(p, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((p, 2))
    return rng, np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))


@pytest.mark.parametrize("eps_rel", [0.1, 0.01])
def test_balanced_matches_pot(eps_rel, backend):
    rng, M = _points(50, 0)
    a, b = rng.random(50), rng.random(50) * (rng.random(50) < 0.5)
    a, b = a / a.sum(), b / b.sum()
    eps = eps_rel * np.median(M)
    P = ot.sinkhorn(a, b, M, eps, stopThr=1e-14, numItermax=1_000_000)
    res = unbalanced_sinkhorn(
        backend.asarray(a), backend.asarray(b), M, epsilon=eps, gamma=np.inf, tol=1e-12
    )
    assert res.state.converged
    left, right = (
        backend.to_numpy(res.left_marginal),
        backend.to_numpy(res.right_marginal),
    )
    # 1e-8: both converged to 1e-12 or better, agreement limited by rounding
    assert np.abs(left - P.sum(1)).max() < 1e-8
    assert np.abs(right - P.sum(0)).max() < 1e-8
    assert np.abs(right - b).max() < 1e-12  # exact after a v-update
    pos = P > 0
    value = eps * (P[pos] * (np.log(P[pos]) + M[pos] / eps) - P[pos]).sum()
    value += eps * np.exp(-M / eps).sum()  # eps KL(P | K), as in unbalanced W_u
    assert abs(res.value - value) < 1e-8 * abs(value)
    # the potentials give the plan
    # (the plan is exp((f_i + g_j - M_ij) / eps) where b_j > 0, zero elsewhere)
    f, g = backend.to_numpy(res.state.f).ravel(), backend.to_numpy(res.state.g).ravel()
    pos = b > 0
    Pf = np.exp((f[:, None] + g[None, pos] - M[:, pos]) / eps)
    assert np.abs(Pf - P[:, pos]).max() < 1e-8
    assert np.all(P[:, ~pos] < 1e-300)


def test_balanced_needs_equal_masses(backend):
    _, M = _points(20, 1)
    a = backend.asarray(np.ones(20))
    with pytest.raises(ValueError, match="same total mass"):
        unbalanced_sinkhorn(a, 2 * a, M, epsilon=0.1, gamma=np.inf)
    # per block: equal totals but not per hemisphere
    M2 = np.full((40, 40), np.inf)
    M2[:20, :20] = M2[20:, 20:] = M
    a, b = (
        backend.asarray(np.ones(40)),
        backend.asarray(np.r_[2 * np.ones(20), 0 * np.ones(20)]),
    )
    with pytest.raises(ValueError, match="every block"):
        unbalanced_sinkhorn(a, b, M2, epsilon=0.1, gamma=np.inf)
    with pytest.raises(ValueError, match="gamma"):
        unbalanced_barycenter(
            backend.asarray(np.ones((20, 2))), M, epsilon=0.1, gamma=np.inf
        )


def _dense_extended(M, delta, blocks):
    """M_hat with one virtual point per block, appended after the points."""
    p, nb = len(M), len(blocks)
    out = np.full((p + nb, p + nb), np.inf)
    out[:p, :p] = M
    for h, idx in enumerate(blocks):
        out[idx, p + h] = out[p + h, idx] = delta[idx]
        out[p + h, p + h] = 0.0
    return out


def test_virtual_point_kernel_equals_dense(backend):
    rng, M1 = _points(25, 2)
    _, M2 = _points(15, 3)
    M = np.full((40, 40), np.inf)
    M[:25, :25], M[25:, 25:] = M1, M2
    delta = rng.uniform(0.5, 1.0, 40)
    eps = 0.02
    kern = VirtualPointKernel(M, delta, eps, backend=backend.name)
    assert kern.n_points == 42
    assert [len(b) for b in kern.blocks] == [26, 16]
    M_hat = _dense_extended(M, delta, [slice(0, 25), slice(25, 40)])
    K = np.exp(-M_hat / eps)
    V = rng.random((42, 3))

    def product(op, X):
        return backend.to_numpy(op(backend.asarray(X)))

    # 1e-14 relative: the same sums in another order
    KV = K @ V
    assert np.abs(product(kern.matvec, V) - KV).max() < 1e-14 * np.abs(KV).max()
    assert np.abs(product(kern.rmatvec, V) - K.T @ V).max() < 1e-14 * np.abs(KV).max()
    assert abs(kern.total() - K.sum()) < 1e-12 * K.sum()
    log_V = 40 * np.log(V)  # a range that under/overflows in the kernel domain
    ref = logsumexp(-M_hat[:, :, None] / eps + log_V[None], axis=1)
    assert np.abs(product(kern.log_matvec, log_V) - ref).max() < 1e-10
    assert np.abs(product(kern.log_rmatvec, log_V) - ref).max() < 1e-10  # symmetric
    k32 = kern.astype(np.float32)
    assert product(k32.matvec, V.astype(np.float32)).dtype == np.float32
    assert kern._smallest_entry() <= K[K > 0].min()
    # restricted to a support: exact on the rows (columns) it promises
    rows, cols = rng.random(42) < 0.5, rng.random(42) < 0.5
    sub = kern._restrict(rows, cols)
    Vc, Ur = V * cols[:, None], V * rows[:, None]
    # 1e-14 relative: the same sums in another order
    err = np.abs(product(sub.matvec, Vc)[rows] - (K @ Vc)[rows]).max()
    assert err < 1e-14 * K.max()
    err = np.abs(product(sub.rmatvec, Ur)[cols] - (K.T @ Ur)[cols]).max()
    assert err < 1e-14 * K.max()
    # balanced transport on the extended space, operator vs dense matrix
    a, b = rng.random(40), rng.random(40) * (rng.random(40) < 0.5)
    diff = np.array([b[:25].sum() - a[:25].sum(), b[25:].sum() - a[25:].sum()])
    a_hat = np.r_[a, np.maximum(diff, 0)]
    b_hat = np.r_[b, np.maximum(-diff, 0)]
    kw = dict(epsilon=eps, gamma=np.inf, tol=1e-11)
    a_b, b_b = backend.asarray(a_hat), backend.asarray(b_hat)
    res = unbalanced_sinkhorn(a_b, b_b, kern, **kw)
    ref = unbalanced_sinkhorn(a_b, b_b, M_hat, **kw)
    # 1e-9: two solves converged to 1e-11
    assert abs(res.value - ref.value) < 1e-9 * abs(ref.value)
    assert np.abs(backend.to_numpy(res.left_marginal) - a_hat).max() < 1e-9
    # no mass crosses between the blocks (1e-9: the marginal accuracy)
    right = backend.to_numpy(res.right_marginal)
    into_first = right[:25].sum() + right[40]
    assert abs(into_first - a_hat[:25].sum() - a_hat[40]) < 1e-9


def test_virtual_point_kernel_bad_input():
    _, M = _points(10, 4)
    with pytest.raises(ValueError, match="delta"):
        VirtualPointKernel(M, np.ones(3), 0.1)
    with pytest.raises(ValueError, match="positive"):
        VirtualPointKernel(M, -1.0, 0.1)
    with pytest.raises(ValueError, match="epsilon"):
        VirtualPointKernel(M, 1.0, 0.0)
