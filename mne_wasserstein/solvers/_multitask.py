"""The multi-task core shared by the Group Lasso and the Dirty model.

Block coordinate descent over sources (all subjects at once) with working
sets and the duality gap, and the warm-started fit over time samples of the
two estimators.
"""

from dataclasses import dataclass

import numpy as np

from ._base import (
    _check_alpha,
    _check_xy,
    _fit_over_time,
    _pad,
    _SampleFit,
    _working_set_solve,
)
from ._cd import _group_epoch


@dataclass
class MultiTaskResult:
    """The output of :func:`group_lasso_solver` and :func:`dirty_solver`.

    Attributes
    ----------
    coef : ndarray, shape (n_subjects, n_sources)
        The solution (common plus specific parts).
    coef_common : ndarray, shape (n_subjects, n_sources)
        The part penalised by the l21 norm (shared support).
    coef_specific : ndarray, shape (n_subjects, n_sources)
        The part penalised by the l1 norm (zero for the Group Lasso).
    n_iter : int
        The number of block coordinate-descent sweeps.
    gap : float
        The duality gap at the solution (the convergence certificate).
    converged : bool
        Whether ``gap <= tol * sum_s ||y_s||^2 / (2 n_s)``.
    """

    coef: np.ndarray
    coef_common: np.ndarray
    coef_specific: np.ndarray
    n_iter: int
    gap: float
    converged: bool


def _correlations(X, R, n):
    """``X_sj^T R_s / n_s`` for all subjects and sources, shape (S, p)."""
    return np.einsum("sij,si->sj", X, R) / n[:, np.newaxis]


def _multitask_solve(X, Y, lam21, lam1, coef_init, tol, max_iter):
    """Solve the Dirty model (Group Lasso when ``lam1`` is ``inf``).

    ``min sum_s (1/2n_s)||y_s - X_s (c_s + d_s)||^2 + lam21 sum_j ||c_j||_2
    + lam1 sum_s ||d_s||_1`` by exact block coordinate descent.
    """
    Xp, Yp, n = _pad(X, Y)
    S, _, p = Xp.shape
    inv_n = 1.0 / n
    common, specific = np.zeros((S, p)), np.zeros((S, p))
    if coef_init is not None:
        common[:] = coef_init
    R = Yp - np.einsum("sij,sj->si", Xp, common + specific)
    col_norms = np.einsum("sij,sij->sj", Xp, Xp) * inv_n[:, np.newaxis]
    scale = 0.5 * np.sum(np.sum(Yp**2, axis=1) * inv_n)

    def violation(ws=slice(None)):
        corr = _correlations(Xp[:, :, ws], R, n)
        score = np.linalg.norm(corr, axis=0) / lam21
        if np.isfinite(lam1):
            score = np.maximum(score, np.abs(corr).max(axis=0) / lam1)
        return score

    def gap(ws):
        ws = slice(None) if ws is None else ws
        c, d = common[:, ws], specific[:, ws]
        loss = 0.5 * np.sum(np.sum(R**2, axis=1) * inv_n)
        primal = loss + lam21 * np.linalg.norm(c, axis=0).sum()
        if np.isfinite(lam1):
            primal += lam1 * np.abs(d).sum()
        nu = R / max(1.0, violation(ws).max())
        dual = np.sum((np.sum(nu * Yp, axis=1) - 0.5 * np.sum(nu**2, axis=1)) * inv_n)
        return primal - dual

    n_iter, final_gap = _working_set_solve(
        n_features=p,
        gap=gap,
        violation=violation,
        support=lambda: (common != 0).any(axis=0) | (specific != 0).any(axis=0),
        epoch=lambda ws: _group_epoch(
            Xp, R, inv_n, common, col_norms, ws, lam21, lam1, specific
        ),
        tol=tol * scale,
        max_iter=max_iter,
    )
    return MultiTaskResult(
        coef=common + specific,
        coef_common=common,
        coef_specific=specific,
        n_iter=n_iter,
        gap=float(final_gap),
        converged=bool(final_gap <= tol * scale),
    )


def _multitask_fit(est, X, Y, alpha_max, l1_ratio):
    """Fit a multi-task estimator over time samples (see :func:`_fit_over_time`).

    At each sample, ``lam21 = est.alpha * alpha_max(Xs, ys)`` (the l21
    threshold giving zero) and ``lam1 = l1_ratio * lam21`` (``inf``: the
    Group Lasso). Sets ``coef_``, ``n_iter_`` and ``dual_gap_``.
    """
    _check_alpha(est.alpha)
    data = _check_xy(X, Y)

    def sample(ys, init):
        lam_max = alpha_max(data.X, ys)
        if lam_max == 0:
            return None
        lam21 = est.alpha * lam_max
        res = _multitask_solve(
            data.X, ys, lam21, l1_ratio * lam21, init, est.tol, est.max_iter
        )
        return _SampleFit(
            outputs=dict(coef=res.coef, dual_gap=res.gap),
            n_iter=res.n_iter,
            criterion=res.gap,
            converged=res.converged,
            warm_start=res.coef_common,
        )

    shape = (data.n_subjects, data.n_sources)
    out = _fit_over_time(est, data, sample, dict(coef=shape, dual_gap=()))
    est.coef_, est.n_iter_, est.dual_gap_ = out["coef"], out["n_iter"], out["dual_gap"]
    return est
