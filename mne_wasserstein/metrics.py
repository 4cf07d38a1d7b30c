"""Scores of source estimates against a known truth (paper 001, section 5.1).

Array-only: every function takes the true and the estimated sources as arrays
of shape (n_sources,) for one subject, or (n_subjects, n_sources) for several
subjects scored independently on a common source space (one score per
subject is returned).
"""

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_array, vstack

from ._docs import fill_doc
from .ot import GroundMetric

__all__ = ["emd_per_source", "localization_error", "mse", "pr_auc"]

_FEAS_TOL = 1e-10  # HiGHS primal/dual feasibility tolerance of the EMD program


def _check_pair(true, est, *, need_support=True):
    """Return float 2D copies of ``true`` and ``est`` and whether to squeeze."""
    arrays = []
    for name, x in (("true", true), ("est", est)):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real array, got dtype {x.dtype}")
        if x.ndim not in (1, 2) or x.shape[-1] == 0:
            raise ValueError(
                f"{name} must have shape (n_sources,) or (n_subjects, n_sources) "
                f"with n_sources >= 1, got {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or infinite values")
        arrays.append(x.astype(np.float64))
    true, est = arrays
    if true.shape != est.shape:
        raise ValueError(
            f"true and est must have the same shape, got {true.shape} and {est.shape}"
        )
    squeeze = true.ndim == 1
    true, est = np.atleast_2d(true), np.atleast_2d(est)
    empty = ~np.any(true != 0, axis=1)
    if need_support and np.any(empty):
        raise ValueError(
            f"true has no source (all zeros) for subject(s) "
            f"{np.flatnonzero(empty).tolist()}: the score is undefined"
        )
    return true, est, squeeze


def _output(scores, squeeze):
    scores = np.asarray(scores, dtype=np.float64)
    return float(scores[0]) if squeeze else scores


class _Costs:
    """Submatrices of a ground metric, dense or a GroundMetric (by blocks)."""

    def __init__(self, ground_metric, n_sources):
        if isinstance(ground_metric, GroundMetric):
            self.metric, self.dense = ground_metric, None
            p = ground_metric.n_sources
        else:
            M = np.asarray(ground_metric)
            if M.dtype.kind not in "biuf":
                raise TypeError(
                    "ground_metric must be a real array or a GroundMetric, "
                    f"got {type(ground_metric).__name__} of dtype {M.dtype}"
                )
            if M.ndim != 2 or M.shape[0] != M.shape[1]:
                raise ValueError(
                    f"ground_metric must be a square matrix, got shape {M.shape}"
                )
            self.dense, p = M, M.shape[0]
        if p != n_sources:
            raise ValueError(
                f"ground_metric has {p} sources but the sources have {n_sources}"
            )

    def __call__(self, rows, cols):
        """Costs between sources ``rows`` and ``cols``: (len(rows), len(cols))."""
        if self.dense is not None:
            C = self.dense[np.ix_(rows, cols)].astype(np.float64)
        else:
            C = self.metric.distances(rows, cols)
        if np.any(np.isnan(C)) or np.any(C < 0):
            raise ValueError("ground_metric must be non-negative (NaN found or < 0)")
        return C


def _emd(a, b, C):
    """Exact optimal transport cost between histograms ``a`` and ``b``.

    ``min <P, C>`` over ``P >= 0`` with ``P 1 = a`` and ``P^T 1 = b``, solved
    as a linear program by HiGHS; entries of ``C`` that are infinite are
    forbidden routes (``P_ij = 0``). Returns ``inf`` if no plan exists.
    """
    n, m = C.shape
    allowed = np.isfinite(C)
    cost = np.where(allowed, C, 0.0).ravel()
    bounds = np.column_stack([np.zeros(n * m), np.where(allowed, np.inf, 0).ravel()])
    idx = np.arange(n * m)
    ones = np.ones(n * m)
    rows_sum = coo_array((ones, (idx // m, idx)), shape=(n, n * m))
    cols_sum = coo_array((ones, (idx % m, idx)), shape=(m, n * m))
    res = linprog(
        cost,
        A_eq=vstack([rows_sum, cols_sum]).tocsr(),
        b_eq=np.concatenate([a, b]),
        bounds=bounds,
        method="highs",
        options=dict(
            primal_feasibility_tolerance=_FEAS_TOL,
            dual_feasibility_tolerance=_FEAS_TOL,
        ),
    )
    if res.status == 2:  # infeasible: mass would have to cross a forbidden route
        return np.inf
    if res.status != 0:
        raise RuntimeError(f"the transport linear program failed: {res.message}")
    return float(res.fun)


@fill_doc
def pr_auc(true, est):
    """Area under the precision-recall curve of ``|est|`` for the true support.

    The sources where ``true`` is non-zero are the positives, ``|est|`` the
    scores. The area is the average precision: the precision at each
    distinct threshold of ``|est|`` (from the largest), weighted by the
    increase of recall (a step-wise curve, no interpolation), as
    :func:`sklearn.metrics.average_precision_score`. Sources that ``est``
    sets to zero all tie at the lowest threshold.

    Parameters
    ----------
    %(metrics_true)s
    %(metrics_est)s

    Returns
    -------
    auc : float | ndarray, shape (n_subjects,)
        The area, in [0, 1]: 1 when the largest ``|est|`` are exactly on the
        true support; an all-zero estimate scores the fraction of true
        sources (chance level).

    Notes
    -----
    Invariant to the sign of each entry of ``est`` and to multiplying ``est``
    by any non-zero constant (only the order of ``|est|`` matters); only the
    support of ``true`` matters, not its amplitudes.
    """
    true, est, squeeze = _check_pair(true, est)
    scores = []
    for t, e in zip(true, est, strict=True):
        order = np.argsort(-np.abs(e), kind="stable")
        score, positive = np.abs(e)[order], t[order] != 0
        # the last index of each group of tied scores: one threshold each
        ends = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
        tp = np.cumsum(positive)[ends]
        precision, recall = tp / (ends + 1), tp / tp[-1]
        scores.append(np.sum(np.diff(recall, prepend=0.0) * precision))
    return _output(scores, squeeze)


@fill_doc
def emd_per_source(true, est, ground_metric):
    """Earth mover's distance (mm) between ``|true|`` and ``|est|``, per source.

    Both are normalised to probability distributions (``|x| / sum |x|``); the
    exact optimal transport cost between them for the ground metric is
    divided by the number of true sources (the non-zeros of ``true``). This
    is the "EMD per source" of Janati et al. (NeuroImage 2020), section 5.1:
    with one true source, the expected geodesic distance from the estimated
    mass to it.

    The transport problem is solved exactly, as a linear program (HiGHS,
    through :func:`scipy.optimize.linprog`) restricted to the two supports,
    with ``n_true x n_est`` unknowns: fast for sparse estimates.

    Parameters
    ----------
    %(metrics_true)s
    %(metrics_est)s
    %(metrics_ground_metric)s

    Returns
    -------
    emd : float | ndarray, shape (n_subjects,)
        The distance per source (unit of the ground metric, mm). 0 when
        ``|est|`` is proportional to ``|true|``; ``nan`` when ``est`` is all
        zeros (no mass to transport); ``inf`` when mass would have to cross
        an infinite distance (e.g. between hemispheres of a
        :class:`~mne_wasserstein.GroundMetric` when the two put different
        fractions of their mass in a hemisphere). Restrict both to one
        hemisphere, as the paper does, to avoid this.

    Notes
    -----
    Invariant to the sign of each entry of ``true`` and ``est`` and to
    multiplying either by a non-zero constant (only the normalised absolute
    values matter), so it scores the spatial distribution of the estimate,
    not its amplitudes (see :func:`mse`).

    The accuracy is that of the linear program: feasibility within 1e-10,
    so the distance is exact up to about 1e-10 times the largest cost.
    """
    true, est, squeeze = _check_pair(true, est)
    costs = _Costs(ground_metric, true.shape[1])
    scores = []
    for t, e in zip(true, est, strict=True):
        rows, cols = np.flatnonzero(t), np.flatnonzero(e)
        if len(cols) == 0:
            scores.append(np.nan)
            continue
        a, b = np.abs(t[rows]), np.abs(e[cols])
        scores.append(_emd(a / a.sum(), b / b.sum(), costs(rows, cols)) / len(rows))
    return _output(scores, squeeze)


@fill_doc
def localization_error(true, est, ground_metric):
    """Mean distance (mm) from each true source to the nearest estimated one.

    For each non-zero of ``true``, the ground-metric distance to the closest
    non-zero of ``est``, averaged over the true sources. It measures how far
    the estimate misses the true sources; unlike :func:`emd_per_source` it
    does not penalise spurious estimated sources.

    Parameters
    ----------
    %(metrics_true)s
    %(metrics_est)s
    %(metrics_ground_metric)s

    Returns
    -------
    error : float | ndarray, shape (n_subjects,)
        The mean distance (unit of the ground metric, mm); ``nan`` when
        ``est`` is all zeros.

    Notes
    -----
    Depends only on the supports of ``true`` and ``est``: invariant to signs,
    scales and amplitudes.
    """
    true, est, squeeze = _check_pair(true, est)
    costs = _Costs(ground_metric, true.shape[1])
    scores = []
    for t, e in zip(true, est, strict=True):
        rows, cols = np.flatnonzero(t), np.flatnonzero(e)
        if len(cols) == 0:
            scores.append(np.nan)
            continue
        scores.append(costs(rows, cols).min(axis=1).mean())
    return _output(scores, squeeze)


@fill_doc
def mse(true, est):
    """Mean squared error between the true and the estimated amplitudes.

    ``mean_j (true_j - est_j) ** 2`` over the sources of each subject.

    Parameters
    ----------
    %(metrics_true)s
    %(metrics_est)s

    Returns
    -------
    error : float | ndarray, shape (n_subjects,)
        The mean squared error, in the squared unit of the sources.

    Notes
    -----
    The one score here that depends on amplitudes and signs: not invariant
    to the sign of ``est``, and multiplying both ``true`` and ``est`` by
    ``c`` multiplies it by ``c ** 2``. Use the sources in physical units
    (A*m, after undoing any depth weighting or scaling of the solver).
    """
    true, est, squeeze = _check_pair(true, est, need_support=False)
    return _output(np.mean((true - est) ** 2, axis=1), squeeze)
