import numpy as np
import pytest
from _synthetic import smooth_design
from sklearn.linear_model import MultiTaskLasso

from mne_wasserstein.solvers import (
    DirtyModel,
    GroupLasso,
    dirty_alpha_max,
    dirty_solver,
    group_lasso_alpha_max,
    group_lasso_solver,
    lasso_solver,
)


def _problem(seed=0, n_subjects=4, p=100, ns=(30, 35, 40, 45)):
    rng = np.random.default_rng(seed)
    X = [smooth_design(rng, ns[s], p) for s in range(n_subjects)]
    coef = np.zeros((n_subjects, p))
    coef[:, [10, 50]] = rng.uniform(1, 2, (n_subjects, 2))
    for s in range(n_subjects):  # one specific source per subject
        coef[s, 70 + 5 * s] = 1.5
    Y = [
        x @ c + 0.1 * rng.standard_normal(len(x)) for x, c in zip(X, coef, strict=True)
    ]
    return X, Y


def _corr(X, R):
    return np.array([x.T @ r / len(x) for x, r in zip(X, R, strict=True)])


def _residuals(X, Y, coef):
    return [y - x @ c for x, y, c in zip(X, Y, coef, strict=True)]


@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_group_lasso_matches_multitask_lasso(alpha):
    rng = np.random.default_rng(1)
    n, p, S = 40, 80, 3
    x = smooth_design(rng, n, p)
    W = np.zeros((p, S))
    W[[5, 40], :] = rng.uniform(1, 2, (2, S))
    Y = x @ W + 0.1 * rng.standard_normal((n, S))
    est = GroupLasso(alpha=alpha, tol=1e-14).fit(np.array([x] * S), Y.T)
    lam = alpha * group_lasso_alpha_max([x] * S, list(Y.T))
    ref = MultiTaskLasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=100_000)
    ref.fit(x, Y)
    # both converged to a relative duality gap ~1e-14: the solutions agree to
    # 1e-6 (the problem is strongly convex on the support)
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-6, rtol=1e-6)


def test_group_lasso_kkt_different_designs():
    X, Y = _problem()
    lam = 0.2 * group_lasso_alpha_max(X, Y)
    res = group_lasso_solver(X, Y, lam, tol=1e-14)
    assert res.converged
    grad = _corr(X, _residuals(X, Y, res.coef))  # minus the loss gradient
    norms = np.linalg.norm(res.coef, axis=0)
    active = norms > 0
    assert active.any() and not active.all()
    # 1e-5: the KKT residual of a solution with relative gap 1e-14
    np.testing.assert_allclose(
        grad[:, active], lam * res.coef[:, active] / norms[active], atol=1e-5 * lam
    )
    assert np.linalg.norm(grad[:, ~active], axis=0).max() <= lam * (1 + 1e-5)


def test_dirty_kkt():
    X, Y = _problem(2)
    beta = 0.7
    mu = 0.2 * dirty_alpha_max(X, Y, beta)
    lam = beta * mu
    res = dirty_solver(X, Y, mu, lam, tol=1e-14)
    assert res.converged
    grad = _corr(X, _residuals(X, Y, res.coef))
    c, d = res.coef_common, res.coef_specific
    assert np.abs(d).sum() > 0 and np.abs(c).sum() > 0
    norms = np.linalg.norm(c, axis=0)
    act = norms > 0
    # stationarity of both parts, 1e-5 relative to the thresholds
    np.testing.assert_allclose(
        grad[:, act], mu * c[:, act] / norms[act], atol=1e-5 * mu
    )
    assert np.linalg.norm(grad[:, ~act], axis=0).max() <= mu * (1 + 1e-5)
    np.testing.assert_allclose(grad[d != 0], lam * np.sign(d[d != 0]), atol=1e-5 * lam)
    assert np.abs(grad).max() <= lam * (1 + 1e-5)


def test_dirty_extremes():
    X, Y = _problem(3)
    S = len(X)
    # beta >= 1: the specific part is never cheaper -> Group Lasso
    mu = 0.2 * group_lasso_alpha_max(X, Y)
    res = dirty_solver(X, Y, mu, 1.5 * mu, tol=1e-14)
    ref = group_lasso_solver(X, Y, mu, tol=1e-14)
    assert not res.coef_specific.any()
    np.testing.assert_allclose(res.coef, ref.coef, atol=1e-7)
    # beta <= 1/sqrt(S): the common part is never cheaper -> independent Lasso
    lam = 0.1 * max(np.abs(x.T @ y / len(x)).max() for x, y in zip(X, Y, strict=True))
    res = dirty_solver(X, Y, lam * np.sqrt(S) * 1.5, lam, tol=1e-14)
    assert not res.coef_common.any()
    for s in range(S):
        ref = lasso_solver(X[s], Y[s], lam, tol=1e-14)
        np.testing.assert_allclose(res.coef[s], ref.coef, atol=1e-7)


def test_estimators_time_and_warm_start():
    X, Y = _problem(4)
    Yt = [np.stack([y, 0.5 * y], axis=1) for y in Y]
    for est in (GroupLasso(alpha=0.2, tol=1e-12), DirtyModel(0.2, 0.6, tol=1e-12)):
        est.fit(X, Yt)
        assert est.coef_.shape == (len(X), X[0].shape[1], 2)
        # the model is positively homogeneous in Y (alpha relative to max)
        np.testing.assert_allclose(
            est.coef_[..., 1], 0.5 * est.coef_[..., 0], rtol=1e-5, atol=1e-8
        )


def test_all_zero_data_and_bad_beta():
    X, Y = _problem(5)
    zeros = [np.zeros_like(y) for y in Y]
    with pytest.warns(UserWarning, match="all zero"):
        assert not GroupLasso().fit(X, zeros).coef_.any()
    with pytest.raises(ValueError, match="beta must be > 0"):
        DirtyModel(beta=0).fit(X, Y)
