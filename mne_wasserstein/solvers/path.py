"""Fitting a grid of hyperparameter values with warm starts."""

from dataclasses import dataclass

import numpy as np

__all__ = ["PathResult", "fit_path"]


@dataclass
class PathResult:
    """The output of :func:`fit_path`.

    Attributes
    ----------
    param : str
        The hyperparameter that was varied.
    values : ndarray, shape (n_values,)
        Its values, in the order given.
    coefs : ndarray, shape (n_values, n_subjects, n_sources[, n_times])
        The solution for each value.
    n_iter : list
        The ``n_iter_`` of each fit.
    """

    param: str
    values: np.ndarray
    coefs: np.ndarray
    n_iter: list


def fit_path(estimator, X, Y, values, *, param="alpha"):
    """Fit an estimator for a grid of one hyperparameter, with warm starts.

    The values are fitted from the sparsest to the densest solution (for
    ``param="alpha"``: decreasing ``alpha``; otherwise in the order given),
    each fit starting from the previous solution. The estimator itself is
    not modified: a copy is fitted.

    Parameters
    ----------
    estimator : estimator
        A solver of :mod:`mne_wasserstein.solvers` (it must have the
        ``warm_start`` parameter).
    X : array, shape (n_subjects, n_sensors, n_sources) | list of array
        The designs.
    Y : array, shape (n_subjects, n_sensors[, n_times]) | list of array
        The measurements.
    values : array-like, shape (n_values,)
        The values of ``param``.
    param : str
        The hyperparameter to vary.

    Returns
    -------
    path : PathResult
        The solutions, in the order of ``values``.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError("values must be a non-empty 1D array")
    params = estimator.get_params()
    if param not in params:
        raise ValueError(f"{type(estimator).__name__} has no parameter {param!r}")
    if "warm_start" not in params:
        raise ValueError(f"{type(estimator).__name__} has no warm_start parameter")
    est = type(estimator)(**{**params, "warm_start": True})
    order = (
        np.argsort(-values, kind="stable") if param == "alpha" else range(len(values))
    )
    coefs, n_iter = [None] * len(values), [None] * len(values)
    for k in order:
        est.set_params(**{param: values[k]}).fit(X, Y)
        coefs[k], n_iter[k] = est.coef_.copy(), est.n_iter_
    return PathResult(param=param, values=values, coefs=np.array(coefs), n_iter=n_iter)
