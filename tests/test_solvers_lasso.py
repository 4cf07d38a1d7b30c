import numpy as np
import pytest
from _synthetic import smooth_design
from sklearn.base import clone
from sklearn.linear_model import Lasso

from mne_wasserstein.solvers import (
    ConvergenceWarning,
    IndependentLasso,
    lasso_alpha_max,
    lasso_solver,
)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    n_subjects, n, p = 3, 40, 120
    X = np.array([smooth_design(rng, n, p) for _ in range(n_subjects)])
    coef = np.zeros((n_subjects, p))
    coef[:, [10, 60, 100]] = rng.uniform(1, 2, (n_subjects, 3))
    Y = np.einsum("snp,sp->sn", X, coef) + 0.1 * rng.standard_normal((n_subjects, n))
    return X, Y


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.9])
def test_independent_lasso_matches_sklearn(problem, alpha):
    X, Y = problem
    est = IndependentLasso(alpha=alpha, tol=1e-12).fit(X, Y)
    for s in range(len(X)):
        lam = alpha * lasso_alpha_max(X[s], Y[s])
        ref = Lasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=100_000)
        ref.fit(X[s], Y[s])
        # both solvers converged to a duality gap of ~1e-12 relative: the
        # (strongly convex on the support) solutions agree to 1e-6
        np.testing.assert_allclose(est.coef_[s], ref.coef_, atol=1e-6, rtol=1e-6)
        np.testing.assert_array_equal(est.coef_[s] != 0, np.abs(ref.coef_) > 1e-10)
    assert (est.dual_gap_ >= -1e-12).all()


def test_alpha_max_gives_zero(problem):
    X, Y = problem
    lam_max = lasso_alpha_max(X[0], Y[0])
    assert not lasso_solver(X[0], Y[0], lam_max).coef.any()
    assert lasso_solver(X[0], Y[0], 0.99 * lam_max).coef.any()


def test_scale_invariance(problem):
    X, Y = problem
    a = IndependentLasso(alpha=0.2, tol=1e-12).fit(X, Y).coef_
    b = IndependentLasso(alpha=0.2, tol=1e-12).fit(3.0 * X, 7.0 * Y).coef_
    np.testing.assert_allclose(b, a * 7.0 / 3.0, rtol=1e-6, atol=1e-9)


def test_time_axis_and_lists(problem):
    X, Y = problem
    Yt = np.stack([Y, 2 * Y], axis=-1)
    est = IndependentLasso(alpha=0.2, tol=1e-12).fit(list(X), list(Yt))
    assert est.coef_.shape == (len(X), X.shape[2], 2)
    np.testing.assert_allclose(
        est.coef_[..., 1], 2 * est.coef_[..., 0], rtol=1e-6, atol=1e-9
    )


def test_all_zero_subject(problem):
    X, Y = problem
    Y = Y.copy()
    Y[1] = 0
    with pytest.warns(UserWarning, match=r"all zero for subject\(s\) \[1\]"):
        est = IndependentLasso(alpha=0.2).fit(X, Y)
    assert not est.coef_[1].any() and est.coef_[0].any()


def test_sklearn_api(problem):
    X, Y = problem
    est = IndependentLasso(alpha=0.4)
    params = est.get_params()
    est.fit(X, Y)
    assert est.get_params() == params
    other = clone(est).set_params(alpha=0.1)
    assert other.alpha == 0.1 and est.alpha == 0.4
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(beta=1)


def test_convergence_warning(problem):
    X, Y = problem
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        IndependentLasso(alpha=0.05, tol=1e-14, max_iter=2).fit(X, Y)


@pytest.mark.parametrize(
    "X, Y, match",
    [
        (np.zeros((2, 3, 4)), np.zeros((3, 3)), "one entry per subject"),
        (np.zeros((2, 3, 4)), np.zeros((2, 5)), "X has 3 rows but Y has 5"),
        (np.full((1, 3, 4), np.nan), np.zeros((1, 3)), "finite"),
        (np.zeros((3, 4)), np.zeros((1, 3)), "X must be an array"),
    ],
)
def test_bad_input(X, Y, match):
    with pytest.raises(ValueError, match=match):
        IndependentLasso().fit(X, Y)
    with pytest.raises(ValueError, match="alpha must be in"):
        IndependentLasso(alpha=1.5).fit(np.ones((1, 3, 4)), np.ones((1, 3)))


@pytest.mark.parametrize("seed", range(20))
def test_prox_nonneg_closed_form(seed):
    """The closed-form root minimises the one-coordinate objective."""
    from scipy.optimize import minimize_scalar

    from mne_wasserstein.solvers._cd import _prox_nonneg

    rng = np.random.default_rng(seed)
    A, b = rng.uniform(0.1, 3), rng.normal(0, 2)
    lam, sigma = rng.uniform(0, 1), rng.uniform(0.5, 2)
    c, m, tau = (
        rng.choice([0.0, rng.uniform(0, 2)]),
        rng.uniform(0, 2),
        10 ** rng.uniform(-4, 0),
    )

    def f(t):
        return (
            0.5 * A * t**2 - b * t + sigma * (c * (t - m * np.log(t + tau)) + lam * t)
        )

    t = _prox_nonneg(A, b, lam, sigma, c, m, tau)
    assert t >= 0
    ref = minimize_scalar(
        f, bounds=(0, 50), method="bounded", options=dict(xatol=1e-12)
    )
    # the bounded scalar search is accurate to ~1e-9 in t; compare objectives
    assert f(t) <= min(ref.fun, f(0.0)) + 1e-9


def _l05_objective(X, y, lam, coef, scale):
    from mne_wasserstein.solvers._base import REWEIGHT_ETA

    loss = 0.5 * np.sum((y - X @ coef) ** 2) / len(y)
    return loss + lam * scale * np.sum(np.sqrt(np.abs(coef) / scale + REWEIGHT_ETA))


def test_reweighting_decreases_l05_objective(problem):
    from mne_wasserstein.solvers import reweighted_lasso_solver

    X, Y = problem
    lam = 0.2 * lasso_alpha_max(X[0], Y[0])
    scale = np.abs(lasso_solver(X[0], Y[0], lam, tol=1e-12).coef).max()
    values = [
        _l05_objective(
            X[0],
            Y[0],
            lam,
            reweighted_lasso_solver(
                X[0], Y[0], lam, reweighting_steps=k, tol=1e-12
            ).coef,
            scale,
        )
        for k in range(1, 6)
    ]
    # majorisation-minimisation: non-increasing up to the subproblem accuracy
    assert np.all(np.diff(values) <= 1e-10 * values[0])
    assert values[-1] < values[0]


def test_reweighted_lasso_sparser_less_biased(problem):
    X, Y = problem
    rng = np.random.default_rng(0)  # the amplitudes drawn by the fixture
    [smooth_design(rng, 40, 120) for _ in range(3)]
    true_amp = rng.uniform(1, 2, (3, 3)).sum(axis=1)
    l1 = IndependentLasso(alpha=0.2, tol=1e-10).fit(X, Y)
    l05 = IndependentLasso(alpha=0.2, q=0.5, tol=1e-10).fit(X, Y)
    for s in range(len(X)):
        support = np.flatnonzero(l05.coef_[s])
        assert len(support) == 3 <= np.count_nonzero(l1.coef_[s])
        # each found source is the true one or its neighbour (the columns of
        # these smooth designs are correlated > 0.95 with their neighbours)
        assert all(min(abs(j - k) for k in (10, 60, 100)) <= 1 for j in support)
        # less amplitude bias than the Lasso
        bias05 = abs(np.abs(l05.coef_[s]).sum() - true_amp[s])
        bias1 = abs(np.abs(l1.coef_[s]).sum() - true_amp[s])
        assert bias05 < bias1
    with pytest.raises(ValueError, match="q must be 1 or 0.5"):
        IndependentLasso(q=2).fit(X, Y)
