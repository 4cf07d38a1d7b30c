"""Independent Lasso per subject (minimum current estimates, MCE)."""

from dataclasses import dataclass
from functools import partial

import numpy as np

from .._docs import fill_doc
from .._estimator import Estimator
from ._base import (
    _check_alpha,
    _check_xy,
    _fit_over_time,
    _l05_weights,
    _SampleFit,
    _working_set_solve,
)
from ._cd import _lasso_epoch

__all__ = [
    "IndependentLasso",
    "LassoResult",
    "lasso_alpha_max",
    "lasso_solver",
    "reweighted_lasso_solver",
]


@dataclass
class LassoResult:
    """The output of :func:`lasso_solver`.

    Attributes
    ----------
    coef : ndarray, shape (n_sources,)
        The solution.
    n_iter : int
        The number of coordinate-descent sweeps.
    gap : float
        The duality gap at the solution (the convergence certificate).
    converged : bool
        Whether ``gap <= tol * ||y||^2 / (2 n)``.
    """

    coef: np.ndarray
    n_iter: int
    gap: float
    converged: bool


def lasso_alpha_max(X, y, weights=None):
    """Smallest ``lam`` for which the weighted Lasso solution is zero.

    Parameters
    ----------
    X : array, shape (n, p)
        The design.
    y : array, shape (n,)
        The target.
    weights : array, shape (p,) | None
        Positive penalty weights (ones if None).

    Returns
    -------
    lam_max : float
        ``max_j |X_j^T y| / (n w_j)``.
    """
    corr = np.abs(X.T @ y) / X.shape[0]
    if weights is not None:
        corr = corr / weights
    return float(corr.max())


def _duality_gap(X, y, R, coef, lam_w):
    """Duality gap of ``(1/2n)||y - X x||^2 + sum_j lam_w[j] |x_j|``."""
    n = X.shape[0]
    primal = 0.5 * (R @ R) / n + np.sum(lam_w * np.abs(coef))
    # rescaled residual: a feasible dual point
    corr = np.abs(X.T @ R) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lam_w > 0, corr / lam_w, np.where(corr > 0, np.inf, 0.0))
    nu = R / max(1.0, ratio.max())
    dual = (nu @ y) / n - 0.5 * (nu @ nu) / n
    return primal - dual


@fill_doc
def lasso_solver(X, y, lam, *, weights=None, coef_init=None, tol=1e-8, max_iter=10_000):
    """Solve ``min_x (1/2n)||y - X x||^2 + lam sum_j w_j |x_j|``.

    Coordinate descent (numba) on ``x = x+ - x-`` with residual updates and
    a working set: sweeps run on the current support plus the coordinates
    that violate the optimality conditions the most, and the full problem is
    checked with the duality gap.

    Parameters
    ----------
    X : array, shape (n, p)
        The design.
    y : array, shape (n,)
        The target.
    lam : float
        The regularisation (absolute, > 0).
    weights : array, shape (p,) | None
        Positive penalty weights (ones if None).
    coef_init : array, shape (p,) | None
        A warm start.
    %(solver_tol)s
    max_iter : int
        The maximum number of sweeps.

    Returns
    -------
    result : LassoResult
        The solution and its convergence certificate.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, p = X.shape
    weights = np.ones(p) if weights is None else np.asarray(weights, float)
    lam_w = lam * weights
    coef = np.zeros((2, p))
    if coef_init is not None:
        coef[0] = np.maximum(coef_init, 0)
        coef[1] = np.maximum(-np.asarray(coef_init), 0)
    R = y - X @ (coef[0] - coef[1])
    col_norms = np.einsum("ij,ij->j", X, X) / n
    scale = 0.5 * (y @ y) / n

    def gap(ws):
        x = coef[0] - coef[1]
        if ws is None:
            return _duality_gap(X, y, R, x, lam_w)
        return _duality_gap(X[:, ws], y, R, x[ws], lam_w[ws])

    n_iter, final_gap = _working_set_solve(
        n_features=p,
        gap=gap,
        violation=lambda: np.abs(X.T @ R) / n / np.maximum(lam_w, 1e-300),
        support=lambda: (coef[0] != 0) | (coef[1] != 0),
        epoch=lambda ws: _lasso_epoch(X, R, coef, col_norms, ws, lam_w),
        tol=tol * scale,
        max_iter=max_iter,
    )
    return LassoResult(
        coef=coef[0] - coef[1],
        n_iter=n_iter,
        gap=float(final_gap),
        converged=bool(final_gap <= tol * scale),
    )


def reweighted_lasso_solver(
    X, y, lam, *, reweighting_steps=10, coef_init=None, tol=1e-8, max_iter=10_000
):
    """Solve the l0.5-penalised least squares by reweighted l1 (irMxNE).

    Majorisation-minimisation (paper 001, Algorithm 2): a Lasso, then
    weighted Lassos with the weights of :func:`_l05_weights`, each
    warm-started from the previous solution, until the coefficients stop
    changing (relative change below ``tol``) or ``reweighting_steps`` rounds.

    Parameters
    ----------
    X : array, shape (n, p)
        The design.
    y : array, shape (n,)
        The target.
    lam : float
        The regularisation (absolute, > 0).
    reweighting_steps : int
        The maximum number of weighted Lassos after the first one.
    coef_init : array, shape (p,) | None
        A warm start of the first Lasso.
    tol : float
        The tolerance of each Lasso (relative duality gap) and of the
        reweighting loop (relative change of the coefficients).
    max_iter : int
        The maximum number of sweeps of each Lasso.

    Returns
    -------
    result : LassoResult
        The last weighted Lasso (its gap certifies that subproblem);
        ``n_iter`` counts the sweeps of all rounds.
    """
    res = lasso_solver(X, y, lam, coef_init=coef_init, tol=tol, max_iter=max_iter)
    scale, n_iter = np.abs(res.coef).max(), res.n_iter
    for _ in range(reweighting_steps):
        previous = res.coef
        res = lasso_solver(
            X,
            y,
            lam,
            weights=_l05_weights(previous, scale),
            coef_init=previous,
            tol=tol,
            max_iter=max_iter,
        )
        n_iter += res.n_iter
        change = np.abs(res.coef - previous).max()
        if change <= tol * max(np.abs(res.coef).max(), 1e-300):
            break
    res.n_iter = n_iter
    return res


@fill_doc
class IndependentLasso(Estimator):
    """The Lasso (MCE) or reweighted Lasso (irMxNE) of each subject.

    For each subject ``s`` (and each time sample), solves
    ``min_x (1/2n_s)||y_s - X_s x||^2 + alpha lam_max_s ||x||_q`` with
    ``q = 1`` (the Lasso; minimum current estimate) or ``q = 0.5``
    (majorisation-minimisation by reweighted Lassos,
    :func:`reweighted_lasso_solver`), where ``lam_max_s`` is the smallest
    value giving ``x = 0`` for the Lasso of that subject: ``alpha`` means the
    same relative sparsity for every subject and does not change when X or Y
    are multiplied by a positive constant.

    Parameters
    ----------
    alpha : float
        The regularisation relative to ``lam_max``, in (0, 1].
    q : 1 | 0.5
        The penalty: the l1 norm or the l0.5 quasi-norm.
    reweighting_steps : int
        With ``q = 0.5``, the maximum number of reweighted Lassos.
    %(solver_tol)s
    max_iter : int
        The maximum number of coordinate-descent sweeps per problem.
    %(warm_start)s

    Attributes
    ----------
    coef_ : ndarray, shape (n_subjects, n_sources) or (n_subjects, n_sources, n_times)
        The estimates.
    alpha_max_ : ndarray, shape (n_subjects,) or (n_subjects, n_times)
        The absolute ``lam_max`` of each problem.
    n_iter_ : ndarray of int
        The number of sweeps of each problem.
    dual_gap_ : ndarray
        The duality gap of each problem at the solution.
    """

    def __init__(
        self,
        alpha=0.3,
        *,
        q=1,
        reweighting_steps=10,
        tol=1e-8,
        max_iter=10_000,
        warm_start=False,
    ):
        self.alpha = alpha
        self.q = q
        self.reweighting_steps = reweighting_steps
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    @fill_doc
    def fit(self, X, Y):
        """Fit each subject.

        Parameters
        ----------
        %(solver_X)s
        %(solver_Y)s

        Returns
        -------
        self : IndependentLasso
            The fitted estimator.
        """
        _check_alpha(self.alpha)
        if self.q not in (1, 0.5):
            raise ValueError(f"q must be 1 or 0.5, got {self.q!r}")
        data = _check_xy(X, Y)
        S, p = data.n_subjects, data.n_sources
        shapes = dict(coef=(S, p), alpha_max=(S,), dual_gap=(S,), n_iter=(S,))
        out = _fit_over_time(self, data, partial(self._fit_sample, data.X), shapes)
        self.coef_ = out["coef"]
        self.alpha_max_ = out["alpha_max"]
        self.n_iter_ = out["n_iter"]
        self.dual_gap_ = out["dual_gap"]
        return self

    def _fit_sample(self, Xs, ys, init):
        """Fit each subject at one time sample (see ``_fit_over_time``)."""
        S, p = len(Xs), Xs[0].shape[1]
        coef, gaps = np.zeros((S, p)), np.zeros(S)
        lam_max, n_iter = np.zeros(S), np.zeros(S, int)
        converged = True
        for s, (x_s, y_s) in enumerate(zip(Xs, ys, strict=True)):
            lam_max[s] = lasso_alpha_max(x_s, y_s)
            if lam_max[s] == 0:
                continue
            kwargs = dict(
                coef_init=None if init is None else init[s],
                tol=self.tol,
                max_iter=self.max_iter,
            )
            if self.q == 0.5:
                kwargs["reweighting_steps"] = self.reweighting_steps
            solver = lasso_solver if self.q == 1 else reweighted_lasso_solver
            res = solver(x_s, y_s, self.alpha * lam_max[s], **kwargs)
            coef[s], n_iter[s], gaps[s] = res.coef, res.n_iter, res.gap
            converged &= res.converged
        return _SampleFit(
            outputs=dict(coef=coef, alpha_max=lam_max, dual_gap=gaps),
            n_iter=n_iter,
            criterion=gaps,
            converged=converged,
            warm_start=coef,
        )
