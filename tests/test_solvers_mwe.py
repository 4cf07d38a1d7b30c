import numpy as np
import pytest
from _synthetic import smooth_design

from mne_wasserstein.solvers import lasso_solver
from mne_wasserstein.solvers._cd import _cd_epoch
from mne_wasserstein.solvers.mwe import mwe_solver


def _problem(seed=0, n_subjects=3, n=25, p=40, noise=(0.05, 0.1, 0.2)):
    rng = np.random.default_rng(seed)
    X = [smooth_design(rng, n + 5 * s, p, width=1.5) for s in range(n_subjects)]
    coef = np.zeros((n_subjects, p))
    for s in range(n_subjects):  # supports jittered by a few positions
        coef[s, 8 + s] = 1.5
        coef[s, 28 - s] = -1.0
    Y = [
        x @ c + sd * rng.standard_normal(len(x))
        for x, c, sd in zip(X, coef, noise, strict=True)
    ]
    grid = np.arange(p, dtype=float)
    M = np.abs(grid[:, None] - grid[None])
    return X, Y, M


KW = dict(epsilon=1.0, gamma=5.0, tau=1e-3, tol=1e-10, max_iter=300)


@pytest.mark.parametrize("concomitant", [True, False])
def test_objective_decreases_and_blocks_are_optimal(concomitant):
    X, Y, M = _problem()
    res = mwe_solver(X, Y, M, lam=0.05, mu=0.5, concomitant=concomitant, **KW)
    obj = np.array(res.objective)
    assert res.converged and len(obj) > 3
    # exact block minimisation: non-increasing, up to the Sinkhorn
    # tolerance (1e-6 relative on the marginals) times the transport term
    assert np.all(np.diff(obj) <= 1e-6 * abs(obj[0]))
    assert obj[-1] < obj[0]
    # each subject's block is at its minimum for the final plans and sigma:
    # one more sweep of exact coordinate updates moves nothing
    S, p = res.coef.shape
    c = 0.5 * KW["gamma"] / S
    for s, (x, y) in enumerate(zip(X, Y, strict=True)):
        split = res.coef_parts[s].copy()
        R = y - x @ res.coef[s]
        before = split.copy()
        _cd_epoch(
            np.ascontiguousarray(x),
            R,
            split,
            np.einsum("ij,ij->j", x, x) / len(y),
            np.arange(p, dtype=np.int64),
            np.full(p, 0.05),
            res.sigma[s],
            c,
            np.ascontiguousarray(res.marginals[:, s]),
            KW["tau"],
        )
        # the outer loop stops at a 1e-10 relative decrease: coefficients
        # are then stationary to ~1e-4 of their scale
        assert np.abs(split - before).max() <= 1e-4 * np.abs(before).max()
    if not concomitant:
        np.testing.assert_array_equal(res.sigma, 1.0)


def test_exact_zeros():
    """The mass floor tau allows exact zeros (tau = 0 would not)."""
    X, Y, M = _problem()
    res = mwe_solver(X, Y, M, lam=1.0, mu=0.1, **{**KW, "tau": 1e-2})
    assert 0 < np.count_nonzero(res.coef) < res.coef.size / 2


def test_mu_zero_is_the_concomitant_lasso():
    X, Y, M = _problem(1)
    res = mwe_solver(X, Y, M, lam=0.1, mu=0.0, sigma0=1e-8, **KW)
    for s, (x, y) in enumerate(zip(X, Y, strict=True)):
        # KKT of the concomitant Lasso: a Lasso at lam * sigma with
        # sigma = ||residual|| / sqrt(n)
        sigma = np.linalg.norm(y - x @ res.coef[s]) / np.sqrt(len(y))
        assert res.sigma[s] == pytest.approx(sigma, rel=1e-4)
        ref = lasso_solver(x, y, 0.1 * res.sigma[s], tol=1e-14).coef
        np.testing.assert_allclose(res.coef[s], ref, atol=1e-4 * np.abs(ref).max())


def test_sigma_estimates_noise_levels():
    noise = (0.05, 0.1, 0.2)
    X, Y, M = _problem(2, n=300, noise=noise)
    res = mwe_solver(X, Y, M, lam=0.02, mu=0.2, **KW)
    # 300 samples: the residual norm estimates the noise level to a few
    # percent (sampling error ~4 %, minus the few degrees of freedom fitted)
    np.testing.assert_allclose(res.sigma, noise, rtol=0.1)


def test_bad_input():
    X, Y, M = _problem()
    with pytest.raises(ValueError, match="tau must be > 0"):
        mwe_solver(X, Y, M, lam=0.1, mu=1.0, epsilon=1.0, gamma=1.0, tau=0.0)
    with pytest.raises(ValueError, match="mu must be >= 0"):
        mwe_solver(X, Y, M, lam=0.1, mu=-1.0, epsilon=1.0, gamma=1.0, tau=1e-3)
