"""Input checks, convergence warnings and working sets shared by the solvers."""

import warnings
from dataclasses import dataclass

import numpy as np

from .._logging import logger
from .._warnings import ConvergenceWarning


@dataclass(frozen=True)
class _GroupData:
    """Validated multi-subject data (see :func:`_check_xy`).

    ``X`` holds float64, C-contiguous designs (n_s, p); ``Y`` float64
    targets (n_s, n_times), with ``n_times = 1`` when the user's Y had no
    time axis (``has_time`` False): :meth:`squeeze` removes that axis again
    from the outputs.
    """

    X: list
    Y: list
    has_time: bool

    @property
    def n_subjects(self):
        return len(self.X)

    @property
    def n_sources(self):
        return self.X[0].shape[1]

    @property
    def n_times(self):
        return self.Y[0].shape[1]

    def targets(self, t):
        """Return the targets of time sample ``t``, one (n_s,) array each."""
        return [y[:, t] for y in self.Y]

    def squeeze(self, a):
        """Drop the time axis of an output if Y had none.

        The trailing axis of an array, the list of a list over time samples.
        """
        if self.has_time:
            return a
        return a[0] if isinstance(a, list) else a[..., 0]


def _check_xy(X, Y):
    """Validate multi-subject data.

    Returns
    -------
    data : _GroupData
        The designs and targets as float64 arrays, targets with a time axis.
    """
    if isinstance(X, np.ndarray) and X.ndim == 3:
        Xs = list(X)
    elif isinstance(X, (list, tuple)):
        Xs = list(X)
    else:
        raise ValueError(
            "X must be an array of shape (n_subjects, n_sensors, n_sources) or a "
            f"list of arrays (n_sensors_s, n_sources), got {type(X).__name__}"
            + (f" with shape {X.shape}" if hasattr(X, "shape") else "")
        )
    Ys = list(Y) if isinstance(Y, (np.ndarray, list, tuple)) else None
    if Ys is None or len(Ys) != len(Xs):
        raise ValueError(
            f"Y must hold one entry per subject ({len(Xs)}), got "
            f"{None if Ys is None else len(Ys)}"
        )
    Xs = [np.ascontiguousarray(x, dtype=np.float64) for x in Xs]
    Ys = [np.asarray(y, dtype=np.float64) for y in Ys]
    ndims = {y.ndim for y in Ys}
    if len(ndims) != 1 or ndims.pop() not in (1, 2):
        raise ValueError("Y entries must all be 1D (n_s,) or all 2D (n_s, n_times)")
    has_time = Ys[0].ndim == 2
    Ys = [y if has_time else y[:, np.newaxis] for y in Ys]
    n_sources = {x.shape[1] if x.ndim == 2 else -1 for x in Xs}
    if len(n_sources) != 1 or -1 in n_sources:
        raise ValueError("All X entries must be 2D with the same number of sources")
    for s, (x, y) in enumerate(zip(Xs, Ys, strict=True)):
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"Subject {s}: X has {x.shape[0]} rows but Y has {y.shape[0]}"
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError(f"Subject {s}: X and Y must be finite (no NaN or inf)")
    zero = [s for s, y in enumerate(Ys) if not y.any()]
    if zero:
        warnings.warn(
            f"Y is all zero for subject(s) {zero}: their solution is zero.",
            UserWarning,
            stacklevel=3,
        )
    return _GroupData(Xs, Ys, has_time)


def _check_alpha(alpha):
    if not 0 < alpha <= 1:
        raise ValueError(
            f"alpha must be in (0, 1] (relative to alpha_max), got {alpha}"
        )


def _warn_convergence(name, n_iter, crit, tol):
    warnings.warn(
        f"{name} did not converge in {n_iter} iterations (stopping criterion "
        f"{crit:.3e} > tol {tol:.1e}); increase max_iter or tol.",
        ConvergenceWarning,
        stacklevel=3,
    )


def _pad(X, Y):
    """Stack designs and targets with different row counts, zero-padded.

    Parameters
    ----------
    X : list of array, shape (n_s, p)
        The designs.
    Y : list of array, shape (n_s,)
        The targets.

    Returns
    -------
    Xp : array, shape (S, n_max, p)
    Yp : array, shape (S, n_max)
    n : array, shape (S,)
        The true number of rows of each subject.
    """
    n = np.array([x.shape[0] for x in X])
    Xp = np.zeros((len(X), n.max(), X[0].shape[1]))
    Yp = np.zeros((len(X), n.max()))
    for s, (x, y) in enumerate(zip(X, Y, strict=True)):
        Xp[s, : n[s]] = x
        Yp[s, : n[s]] = y
    return Xp, Yp, n


@dataclass
class _SampleFit:
    """The fit of one time sample, as :func:`_fit_over_time` collects it.

    ``n_iter`` and ``criterion`` (the final stopping criterion) are scalars
    or one per subject; ``warm_start`` is what the next time sample starts
    from; ``outputs`` maps the names of the other per-sample outputs to
    their values (``coef`` included).
    """

    outputs: dict
    n_iter: object
    criterion: object
    converged: bool
    warm_start: object


def _fit_over_time(est, data, solve, shapes, fill=None):
    """Fit each time sample, warm-started from the previous one.

    Parameters
    ----------
    est : Estimator
        The estimator (``tol``, ``warm_start`` and its last ``coef_``).
    data : _GroupData
        The data.
    solve : callable
        ``solve(ys, init)`` fits the targets ``ys`` of one time sample from
        the warm start ``init`` (None, the last ``warm_start``, or the
        previous fit's sources at that sample, shape (S, p)); returns a
        :class:`_SampleFit`, or None for all-zero data.
    shapes : dict
        The shape of each output per time sample (None: a list, any object
        per sample); ``coef`` must be among them; ``n_iter`` is always
        collected (a scalar unless given).
    fill : dict | None
        The value of outputs where ``solve`` returned None (default 0).

    Returns
    -------
    outputs : dict
        Each output stacked over time (trailing axis, squeezed if Y had no
        time axis).
    """
    fill = fill or {}
    out = {
        name: [[] for _ in range(data.n_times)]
        if shape is None
        else np.full(
            tuple(shape) + (data.n_times,),
            fill.get(name, 0),
            dtype=int if name == "n_iter" else float,
        )
        for name, shape in {"n_iter": (), **shapes}.items()
    }
    previous = _previous_coef(est, out["coef"].shape)
    init = None
    for t in range(data.n_times):
        if previous is not None:
            init = previous[..., t]
        fit = solve(data.targets(t), init)
        if fit is None:  # all-zero data
            continue
        if not fit.converged:
            _warn_convergence(
                type(est).__name__,
                int(np.max(fit.n_iter)),
                float(np.max(fit.criterion)),
                est.tol,
            )
        out["n_iter"][..., t] = fit.n_iter
        for name, value in fit.outputs.items():
            if shapes[name] is None:
                out[name][t] = value
            else:
                out[name][..., t] = value
        logger.info(
            "%s: time sample %d/%d, %d iterations, %d active sources",
            type(est).__name__,
            t + 1,
            data.n_times,
            np.max(fit.n_iter),
            np.count_nonzero(fit.outputs["coef"].any(axis=0)),
        )
        init = fit.warm_start
    return {name: data.squeeze(value) for name, value in out.items()}


def _working_set_solve(*, n_features, gap, violation, support, epoch, tol, max_iter):
    """Run the working-set strategy shared by the solvers.

    Sweeps run on the current support plus the features that violate the
    optimality conditions the most (a set doubled at each outer round); the
    inner loop stops when the duality gap restricted to the working set is
    below ``tol / 3`` (or nothing moves), the outer loop when the duality gap
    of the full problem is below ``tol``.

    Parameters
    ----------
    n_features : int
        The number of features (blocks).
    gap : callable
        ``gap(ws)``: the duality gap restricted to ``ws`` (all if None).
    violation : callable
        ``violation()``: a score per feature, > 1 where violated.
    support : callable
        ``support()``: a boolean mask of the current support.
    epoch : callable
        ``epoch(ws)``: one sweep on ``ws``; returns the largest change.
    tol : float
        The (absolute) target duality gap.
    max_iter : int
        The maximum number of sweeps.

    Returns
    -------
    n_iter : int
        The number of sweeps.
    gap : float
        The final duality gap.
    """
    n_iter, ws_size, current = 0, 10, np.inf
    while n_iter < max_iter:
        current = gap(None)
        if current <= tol:
            break
        score = violation()
        in_support = support()
        score[in_support] = np.inf
        ws_size = min(n_features, max(ws_size, 2 * int(in_support.sum())))
        ws = np.sort(np.argsort(-score)[:ws_size]).astype(np.int64)
        while n_iter < max_iter:
            change = epoch(ws)
            n_iter += 1
            if change == 0.0 or gap(ws) <= tol / 3:
                break
        ws_size = min(n_features, 2 * ws_size)
    return n_iter, current


REWEIGHT_ETA = 1e-6  # paper 001, section 4 (relative to the amplitude scale here)


def _l05_weights(coef, scale):
    """Majorisation weights of the l0.5 penalty (paper 001, Algorithm 2).

    ``w_j = 1 / (2 sqrt(|x_j| / scale + eta))``: the weights of the paper
    with amplitudes measured relative to ``scale`` (the largest amplitude of
    the first, l1, solution), so that the weights, hence ``alpha``, do not
    depend on the units of X and Y. ``eta`` keeps the weights of zero
    coefficients finite (500: they stay zero in practice). Where ``scale``
    is zero (an all-zero solution) the weights are ones.
    """
    scale = np.asarray(scale, dtype=float)  # a scalar, or one per row of coef
    safe = np.where(scale > 0, scale, 1.0)
    return np.where(scale > 0, 0.5 / np.sqrt(np.abs(coef) / safe + REWEIGHT_ETA), 1.0)


def _previous_coef(est, shape):
    """Return the estimator's last solution as (S, p, T) for ``warm_start``."""
    if not getattr(est, "warm_start", False) or not hasattr(est, "coef_"):
        return None
    coef = est.coef_ if est.coef_.ndim == 3 else est.coef_[..., np.newaxis]
    return coef if coef.shape == shape else None
