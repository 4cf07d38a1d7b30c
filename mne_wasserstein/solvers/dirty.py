"""Dirty models: a common (l21) plus a subject-specific (l1) part."""

from functools import partial

import numpy as np

from .._docs import fill_doc
from .._estimator import Estimator
from ._base import _pad
from ._multitask import _correlations, _multitask_fit, _multitask_solve

__all__ = ["DirtyModel", "dirty_alpha_max", "dirty_solver"]


def dirty_alpha_max(X, Y, beta):
    """Smallest ``a`` such that thresholds ``(a, beta a)`` give zero.

    Parameters
    ----------
    X : list of array, shape (n_s, p)
        The designs.
    Y : list of array, shape (n_s,)
        The targets.
    beta : float
        The ratio of the l1 threshold to the l21 threshold.

    Returns
    -------
    a_max : float
        ``max(max_j ||c_j||_2, max_sj |c_sj| / beta)`` with
        ``c_sj = X_sj^T y_s / n_s``.
    """
    Xp, Yp, n = _pad(X, Y)
    corr = _correlations(Xp, Yp, n)
    return float(max(np.linalg.norm(corr, axis=0).max(), np.abs(corr).max() / beta))


@fill_doc
def dirty_solver(X, Y, lam21, lam1, *, coef_init=None, tol=1e-8, max_iter=10_000):
    """Solve the Dirty model by exact block coordinate descent.

    ``min sum_s (1/2n_s)||y_s - X_s (c_s + d_s)||^2 + lam21 sum_j ||c_j||_2
    + lam1 sum_s ||d_s||_1`` (paper 001, appendix), alternating per source
    the exact minimisation over the common block ``c_j`` and over the
    specific coefficients ``d_sj``; the duality gap (dual feasibility is the
    intersection of the l21 and l1 dual balls) is the stopping criterion.

    Parameters
    ----------
    X : list of array, shape (n_s, p)
        The designs.
    Y : list of array, shape (n_s,)
        The targets.
    lam21 : float
        The l21 threshold of the common part.
    lam1 : float
        The l1 threshold of the specific part.
    coef_init : array, shape (S, p) | None
        A warm start of the common part.
    %(solver_tol)s
    max_iter : int
        The maximum number of sweeps.

    Returns
    -------
    result : MultiTaskResult
        The solution, its two parts and its convergence certificate.
    """
    return _multitask_solve(X, Y, lam21, lam1, coef_init, tol, max_iter)


@fill_doc
class DirtyModel(Estimator):
    """Dirty multi-task model (Jalali et al. 2010; paper 001, appendix).

    Each subject's sources are ``c_s + d_s``: ``c`` has a support shared by
    all subjects (l21 threshold ``lam21``), ``d`` is specific to each
    subject (l1 threshold ``lam1 = beta lam21``), as in :func:`dirty_solver`.
    ``lam21 = alpha a_max`` with ``a_max`` from :func:`dirty_alpha_max`, the
    smallest value giving all-zero solutions.
    ``beta >= 1`` gives the Group Lasso (the specific part is never cheaper),
    ``beta <= 1 / sqrt(n_subjects)`` the independent Lasso with a common
    threshold (the common part is never cheaper).

    Parameters
    ----------
    alpha : float
        The regularisation relative to ``a_max``, in (0, 1].
    beta : float
        The ratio of the l1 to the l21 threshold (> 0).
    %(solver_tol)s
    max_iter : int
        The maximum number of block coordinate-descent sweeps.
    warm_start : bool
        If True, ``fit`` starts from the previous solution (same shapes), put
        in the common part.

    Attributes
    ----------
    coef_ : ndarray, shape (n_subjects, n_sources[, n_times])
        The estimates (common plus specific parts).
    n_iter_ : int | ndarray
        The number of sweeps (per time sample).
    dual_gap_ : float | ndarray
        The duality gap at the solution (per time sample).
    """

    def __init__(
        self, alpha=0.3, beta=0.5, *, tol=1e-8, max_iter=10_000, warm_start=False
    ):
        self.alpha = alpha
        self.beta = beta
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    @fill_doc
    def fit(self, X, Y):
        """Fit the model.

        Parameters
        ----------
        %(solver_X)s
        %(solver_Y)s

        Returns
        -------
        self : DirtyModel
            The fitted estimator.
        """
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")

        return _multitask_fit(
            self, X, Y, partial(dirty_alpha_max, beta=self.beta), self.beta
        )
