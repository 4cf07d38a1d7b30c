import numpy as np
import pytest
from _synthetic import smooth_design

from mne_wasserstein.solvers import DirtyModel, GroupLasso, IndependentLasso, fit_path


def _problem(seed=0, n_subjects=3, n=30, p=60):
    rng = np.random.default_rng(seed)
    X = np.array([smooth_design(rng, n, p, width=1.5) for _ in range(n_subjects)])
    coef = np.zeros((n_subjects, p))
    coef[:, [5, 30, 50]] = rng.uniform(1, 2, (n_subjects, 3))
    Y = np.einsum("snp,sp->sn", X, coef) + 0.1 * rng.standard_normal((n_subjects, n))
    return X, Y


@pytest.mark.parametrize(
    "estimator",
    [
        IndependentLasso(tol=1e-12),
        GroupLasso(tol=1e-12),
        DirtyModel(beta=0.7, tol=1e-12),
    ],
)
def test_path_equals_separate_fits(estimator):
    X, Y = _problem()
    alphas = [0.05, 0.5, 0.2]
    path = fit_path(estimator, X, Y, alphas)
    assert path.coefs.shape == (3, *Y.shape[:1], X.shape[2])
    assert estimator.warm_start is False and not hasattr(estimator, "coef_")
    for k, alpha in enumerate(alphas):
        ref = type(estimator)(**{**estimator.get_params(), "alpha": alpha}).fit(X, Y)
        # both at a relative duality gap of 1e-12 of strongly convex problems
        np.testing.assert_allclose(path.coefs[k], ref.coef_, atol=1e-6)


def test_warm_start_saves_iterations():
    X, Y = _problem(1)
    alphas = np.geomspace(0.9, 0.02, 12)
    path = fit_path(GroupLasso(tol=1e-10), X, Y, alphas)
    cold = [GroupLasso(alpha=a, tol=1e-10).fit(X, Y).n_iter_ for a in alphas]
    assert np.sum(path.n_iter) < np.sum(cold)
    # refitting at the solution takes one sweep (the gap is checked first)
    est = GroupLasso(alpha=0.1, tol=1e-10, warm_start=True).fit(X, Y)
    assert est.fit(X, Y).n_iter_ <= 1


def test_path_bad_input():
    X, Y = _problem()
    with pytest.raises(ValueError, match="no parameter 'gamma'"):
        fit_path(GroupLasso(), X, Y, [0.1], param="gamma")
    with pytest.raises(ValueError, match="non-empty"):
        fit_path(GroupLasso(), X, Y, [])
