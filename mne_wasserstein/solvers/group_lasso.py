"""Group Lasso across subjects (l21)."""

import numpy as np

from .._docs import fill_doc
from .._estimator import Estimator
from ._base import _pad
from ._multitask import (
    MultiTaskResult,
    _correlations,
    _multitask_fit,
    _multitask_solve,
)

__all__ = [
    "GroupLasso",
    "MultiTaskResult",
    "group_lasso_alpha_max",
    "group_lasso_solver",
]


def group_lasso_alpha_max(X, Y):
    """Smallest l21 threshold giving an all-zero Group Lasso solution.

    Parameters
    ----------
    X : list of array, shape (n_s, p)
        The designs.
    Y : list of array, shape (n_s,)
        The targets.

    Returns
    -------
    lam_max : float
        ``max_j sqrt(sum_s (X_sj^T y_s / n_s)^2)``.
    """
    Xp, Yp, n = _pad(X, Y)
    return float(np.linalg.norm(_correlations(Xp, Yp, n), axis=0).max())


@fill_doc
def group_lasso_solver(X, Y, lam, *, coef_init=None, tol=1e-8, max_iter=10_000):
    """Solve the Group Lasso across subjects with different designs.

    ``min_x sum_s (1/2n_s)||y_s - X_s x_s||^2 + lam sum_j ||x_{.j}||_2``, by
    block coordinate descent: each block (source ``j`` of all subjects) is
    minimised exactly (a one-dimensional Newton solve for its norm), with
    working sets and the duality gap as stopping criterion.

    Parameters
    ----------
    X : list of array, shape (n_s, p)
        The designs.
    Y : list of array, shape (n_s,)
        The targets.
    lam : float
        The l21 threshold (absolute, > 0).
    coef_init : array, shape (S, p) | None
        A warm start.
    %(solver_tol)s
    max_iter : int
        The maximum number of sweeps.

    Returns
    -------
    result : MultiTaskResult
        The solution and its convergence certificate.
    """
    return _multitask_solve(X, Y, lam, np.inf, coef_init, tol, max_iter)


@fill_doc
class GroupLasso(Estimator):
    """Group Lasso across subjects (one l2 group per source).

    Solves ``min_x sum_s (1/2n_s)||y_s - X_s x_s||^2 + alpha lam_max
    sum_j ||x_{.j}||_2``, where ``lam_max`` (:func:`group_lasso_alpha_max`)
    is the smallest value giving ``x = 0``; with one design shared by all
    subjects this is scikit-learn's ``MultiTaskLasso``.

    Parameters
    ----------
    alpha : float
        The regularisation relative to ``lam_max``, in (0, 1].
    %(solver_tol)s
    max_iter : int
        The maximum number of block coordinate-descent sweeps.
    %(warm_start)s

    Attributes
    ----------
    coef_ : ndarray, shape (n_subjects, n_sources[, n_times])
        The estimates.
    n_iter_ : int | ndarray
        The number of sweeps (per time sample).
    dual_gap_ : float | ndarray
        The duality gap at the solution (per time sample).
    """

    def __init__(self, alpha=0.3, *, tol=1e-8, max_iter=10_000, warm_start=False):
        self.alpha = alpha
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
        self : GroupLasso
            The fitted estimator.
        """
        return _multitask_fit(self, X, Y, group_lasso_alpha_max, np.inf)
