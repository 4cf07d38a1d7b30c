"""Minimum Wasserstein Estimates (MWE) and multi-task Wasserstein (MTW).

The functional core on absolute hyperparameters; estimators with relative
ones (``alpha``, ``beta``) build on it.
"""

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .._docs import fill_doc
from .._estimator import Estimator
from .._logging import logger, use_log_level
from ..ot import (
    GroundMetric,
    KernelOperator,
    make_kernel,
    to_numpy,
    unbalanced_barycenter,
)
from ._base import (
    _check_alpha,
    _check_xy,
    _fit_over_time,
    _l05_weights,
    _previous_coef,
    _SampleFit,
)
from ._cd import _cd_epoch

__all__ = ["MTW", "MWE", "MWEResult", "mwe_solver", "reweighted_mwe_solver"]

# outer iterations between two Anderson extrapolations (0: none)
_ANDERSON_DEPTH = 5
# the convergence rate assumed until two ratios of decreases are known (about
# the slowest of the simulation benchmark, see CHANGELOG)
_SLOW_RATE = 0.95


@dataclass
class MWEResult:
    """The output of :func:`mwe_solver`.

    Attributes
    ----------
    coef : ndarray, shape (n_subjects, n_sources)
        The sources of each subject (``x+ - x-``).
    coef_parts : ndarray, shape (n_subjects, 2, n_sources)
        ``x+`` and ``x-``. Both can be positive at the same source: each
        sign has its own transport term.
    barycenter : ndarray, shape (n_sources,)
        The signed barycenter ``xbar+ - xbar-`` of the transport term's
        inputs ``x+/- + tau`` (see :func:`mwe_solver`): the floors of the two
        signs cancel in the difference up to the entropic blur, so it is
        nowhere exactly zero.
    sigma : ndarray, shape (n_subjects,)
        The noise levels (ones without concomitant estimation).
    marginals : ndarray, shape (2, n_subjects, n_sources)
        The left marginals of the final transport plans (``+`` then ``-``).
    objective : list of float
        The objective after each OT step (non-increasing up to the Sinkhorn
        tolerance).
    n_iter : int
        The number of outer iterations.
    converged : bool
        Whether the stopping criterion fell below ``tol`` (see ``tol``).
    ot_state : object
        The final Sinkhorn state (a warm start for a next fit).
    n_transport : int
        The number of transport (Sinkhorn barycenter) solves: ``n_iter`` plus
        one per rejected extrapolation.
    """

    coef: np.ndarray
    coef_parts: np.ndarray
    barycenter: np.ndarray
    sigma: np.ndarray
    marginals: np.ndarray
    objective: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    ot_state: object = None
    n_transport: int = 0


@dataclass(frozen=True)
class _MWEProblem:
    """The data and weights of one MWE problem (fixed during a solve).

    ``X`` holds one design per subject (n_s, p), ``Y`` the measurements
    padded with zeros to a common length (``n`` per subject); ``col_norms``
    are ``||X_sj||^2 / n_s``;
    ``lam_w`` the l1 thresholds of every source; ``c = mu gamma / S`` the
    weight of the transport term in the coordinate update.
    """

    X: list  # (n_s, p) each
    Y: np.ndarray  # (S, n_max)
    n: np.ndarray  # (S,)
    col_norms: np.ndarray  # (S, p)
    lam_w: np.ndarray  # (S, p)
    mu: float
    c: float
    kernel: KernelOperator
    gamma: float
    tau: float
    concomitant: bool
    sigma0: float

    def residual(self, coef):
        """Return ``Y - X (x+ - x-)`` for sources ``coef`` (S, 2, p)."""
        R = np.zeros_like(self.Y)
        for s, (x, n) in enumerate(zip(self.X, self.n, strict=True)):
            R[s, :n] = self.Y[s, :n] - x @ (coef[s, 0] - coef[s, 1])
        return R

    def sigma(self, residual):
        """Return the exact minimiser over the noise levels (ones for MTW)."""
        if not self.concomitant:
            return np.ones(len(self.n))
        return np.maximum(
            np.linalg.norm(residual, axis=1) / np.sqrt(self.n), self.sigma0
        )


@dataclass
class _MWEIterate:
    """The point of the block coordinate descent.

    ``coef`` holds ``x+`` and ``x-`` (S, 2, p), ``residual`` the padded
    residuals, ``sigma`` the noise levels and ``marginals`` the left marginals
    (2, S, p) of the plans of the last transport step (``None`` before it).
    """

    coef: np.ndarray
    residual: np.ndarray
    sigma: np.ndarray
    marginals: np.ndarray = None

    def copy(self):
        """Return a deep copy (an extrapolation may have to be undone)."""
        return _MWEIterate(
            self.coef.copy(), self.residual.copy(), self.sigma.copy(), self.marginals
        )


@fill_doc
def mwe_solver(
    X,
    Y,
    ground_metric,
    lam,
    mu,
    *,
    epsilon=None,
    gamma,
    tau,
    concomitant=True,
    sigma0=None,
    weights=None,
    coef_init=None,
    ot_init=None,
    tol=1e-6,
    max_iter=200,
    cd_tol=1e-8,
    cd_max_iter=100,
    n_jobs=None,
):
    """Solve MWE_1 (or MTW_1) by exact block coordinate descent.

    The objective (paper 001, Eq. 13, with a mass floor ``tau``) is::

        sum_s [ ||y_s - X_s x_s||^2 / (2 n_s sigma_s) + sigma_s / 2 ]
        + (mu / S) sum_s [ W_u(x_s+ + tau, xbar+) + W_u(x_s- + tau, xbar-) ]
        + lam sum_s sum_j w_sj |x_sj|

    over ``x_s = x_s+ - x_s-`` (``x_s+/- >= 0``), ``sigma_s >= sigma0`` and the
    barycenters ``xbar+/-``, where ``W_u`` is the unbalanced entropic OT
    distance (Eq. 9). The floor ``tau`` (a uniform mass added to both signs
    in the transport term only) is what makes solutions exactly sparse: with
    ``tau = 0`` the term ``-m log x`` keeps every coordinate with ``m > 0``
    away from zero (the reference code's dense outputs). Without
    concomitant estimation (MTW) ``sigma_s = 1`` and the ``sigma_s / 2``
    terms are dropped.

    Each outer iteration minimises exactly over three blocks, so the
    objective never increases: (1) the plans and the barycenters (one batched
    generalised Sinkhorn call for both signs, warm-started); (2) for fixed
    plans, each subject's ``x_s``: coordinate descent with the closed-form
    update of :mod:`mne_wasserstein.solvers._cd`, with ``c = mu gamma / S``,
    the left marginals ``m`` of the plans, and both the transport and the l1
    term multiplied by ``sigma_s`` (the exact block minimisation, not the
    paper's Eq. 15, which scales only the l1 term); (3) ``sigma_s =
    max(||y_s - X_s x_s|| / sqrt(n_s), sigma0)``. These alternating steps
    converge slowly where the objective is flat; so (4) every
    sixth iteration the sources jump to the Anderson extrapolation of the
    last six iterates (projected on ``x+/- >= 0``), which
    the next iteration keeps only if its objective (after step 1) is lower
    than the last one; else it goes back to the plain iterate and redoes
    step 1 there. The steps are :func:`_transport_step`,
    :func:`_source_step`, :meth:`_MWEProblem.sigma` and
    :class:`_AndersonAcceleration`, over an :class:`_MWEIterate`.

    Parameters
    ----------
    X : list of array, shape (n_s, p)
        The designs.
    Y : list of array, shape (n_s,)
        The measurements.
    ground_metric : array | list of array | GroundMetric | KernelOperator
        The ground metric (see :func:`mne_wasserstein.ot.make_kernel`).
    lam : float
        The l1 threshold (absolute, > 0).
    mu : float
        The weight of the transport term (absolute, >= 0).
    %(epsilon)s
    %(gamma)s
    tau : float
        The mass floor of the transport term (> 0), in the unit of ``x``.
    concomitant : bool
        Estimate a noise level per subject (MWE) or not (MTW).
    sigma0 : float | None
        The lower bound of the noise levels; ``None``:
        ``0.01 min_s ||y_s|| / sqrt(n_s)``.
    weights : array, shape (S, p) | None
        Weights of the l1 penalty (reweighting); ones if None.
    coef_init : array, shape (S, p) | None
        A warm start of the sources.
    ot_init : object | None
        A warm start of the Sinkhorn potentials (``MWEResult.ot_state``).
    tol : float
        Stop when the objective is estimated to be within ``tol`` (relative)
        of its limit: the decrease of the last iteration times
        ``rho / (1 - rho)``, ``rho`` the rate of linear convergence estimated
        from the last three plain (not extrapolated) iterations (at least
        0.95 until three are known).
    max_iter : int
        The maximum number of outer iterations.
    cd_tol : float
        Coordinate descent on a subject (sweeps over its support, then a
        sweep over all sources to check, as often as needed) stops when a
        sweep over all sources moves no coefficient by more than ``cd_tol``
        times the largest one.
    cd_max_iter : int
        The maximum number of coordinate-descent sweeps per subject and
        outer iteration.
    n_jobs : int | None
        The number of threads of the coordinate descent over subjects
        (``None``: 1).

    Returns
    -------
    result : MWEResult
        The solution, the noise levels, the barycenter and the history.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    problem = _build_problem(
        X, Y, ground_metric, lam, mu, epsilon, gamma, tau, concomitant, sigma0, weights
    )
    it = _initial_iterate(problem, coef_init)
    anderson = _AndersonAcceleration(_ANDERSON_DEPTH)
    objective, decreases, ot_state, plain = [], [], ot_init, None
    n_ot, converged = 0, False
    with ThreadPoolExecutor(max_workers=max(1, n_jobs or 1)) as pool:
        for n_iter in range(1, max_iter + 1):
            # (1) plans and barycenters
            bary, value = _transport_step(problem, it, ot_state)
            n_ot += 1
            if plain is not None and value > objective[-1]:
                # the extrapolated point (4) is worse: back to the plain one
                it = plain
                bary, value = _transport_step(problem, it, bary.state)
                n_ot += 1
            ot_state = bary.state
            objective.append(value)
            # per iteration at DEBUG, per reweighting round and fit at INFO (as
            # MNE's irMxNE solvers)
            logger.debug(
                "  MWE outer iteration %3d: objective %.8e, %d active sources, "
                "%d Sinkhorn iterations",
                n_iter,
                value,
                np.count_nonzero(it.coef.any(axis=(0, 1))),
                ot_state.n_iter,
            )
            # the decreases of plain steps since the last extrapolation; stop
            # after plain steps only (x is then optimal for the plans)
            if plain is not None:
                decreases = []
            elif n_iter > 1:
                decreases.append(objective[-2] - objective[-1])
                if _converged(decreases, tol * abs(objective[-1])):
                    converged = True
                    break
            # (2) sources of each subject, (3) noise levels
            _source_step(problem, it, pool.map, cd_tol, cd_max_iter)
            it.sigma = problem.sigma(it.residual)
            # (4) Anderson extrapolation, kept only if step (1) confirms it
            plain = None
            if n_iter < max_iter:
                extrapolated = anderson.push(it.coef)
                if extrapolated is not None:
                    plain = it.copy()
                    it.coef[:] = extrapolated
                    it.residual[:] = problem.residual(it.coef)
                    it.sigma = problem.sigma(it.residual)
    q = to_numpy(bary.barycenter)
    return MWEResult(
        coef=it.coef[:, 0] - it.coef[:, 1],
        coef_parts=it.coef,
        barycenter=q[:, 0] - q[:, 1],
        sigma=it.sigma,
        marginals=it.marginals,
        objective=objective,
        n_iter=n_iter,
        converged=converged,
        ot_state=ot_state,
        n_transport=n_ot,
    )


def _build_problem(
    X, Y, ground_metric, lam, mu, epsilon, gamma, tau, concomitant, sigma0, weights
):
    """Fix the data and the weights of :func:`mwe_solver`.

    The designs are not copied (one float64, C-contiguous array per subject:
    at ico5 and S = 32 a copy would be a gigabyte); the measurements are
    padded with zeros to a common length.
    """
    X = [np.ascontiguousarray(x, dtype=np.float64) for x in X]
    n = np.array([len(x) for x in X])
    S, p = len(X), X[0].shape[1]
    Yp = np.zeros((S, n.max()))
    for s, y in enumerate(Y):
        Yp[s, : n[s]] = y
    if sigma0 is None:
        sigma0 = 0.01 * min(np.linalg.norm(y) / np.sqrt(len(y)) for y in Y)
    lam_w = lam * (np.ones((S, p)) if weights is None else np.asarray(weights, float))
    return _MWEProblem(
        X=X,
        Y=Yp,
        n=n,
        col_norms=np.stack([np.einsum("ij,ij->j", x, x) / len(x) for x in X]),
        lam_w=lam_w,
        mu=mu,
        c=mu * gamma / S,
        kernel=make_kernel(ground_metric, epsilon),
        gamma=gamma,
        tau=tau,
        concomitant=concomitant,
        sigma0=sigma0,
    )


def _initial_iterate(problem, coef_init):
    """Split a warm start (or zeros) into ``x+`` and ``x-``."""
    S, p = len(problem.X), problem.X[0].shape[1]
    coef = np.zeros((S, 2, p))
    if coef_init is not None:
        coef[:, 0] = np.maximum(coef_init, 0)
        coef[:, 1] = np.maximum(-np.asarray(coef_init), 0)
    residual = problem.residual(coef)
    return _MWEIterate(coef, residual, problem.sigma(residual))


def _transport_step(problem, it, ot_state):
    """Step (1): plans and barycenters of both signs, then the objective.

    One batched Sinkhorn call, warm-started from ``ot_state``. Sets
    ``it.marginals`` and returns the barycenter result and the objective.
    """
    A = it.coef.transpose(2, 0, 1) + problem.tau  # (p, S, 2)
    with warnings.catch_warnings():
        # an unconverged warm-started Sinkhorn is refined at the next step
        warnings.simplefilter("ignore")
        bary = unbalanced_barycenter(
            A, problem.kernel, gamma=problem.gamma, init=ot_state
        )
    it.marginals = to_numpy(bary.marginals).transpose(2, 1, 0)  # (2, S, p)
    return bary, _objective(problem, it, bary.value)


def _source_step(problem, it, map_, tol, max_iter):
    """Step (2): each subject's sources for the fixed plans and noise levels.

    The subjects are independent; ``map_`` maps over them (threads).
    """
    S = len(problem.n)
    list(
        map_(
            _solve_subject, [problem] * S, [it] * S, range(S), [tol] * S, [max_iter] * S
        )
    )


def reweighted_mwe_solver(
    X, Y, ground_metric, lam, mu, *, reweighting_steps=10, weights=None, **kwargs
):
    """Solve MWE_0.5 (or MTW_0.5) by reweighted MWE_1 (paper 001, Algorithm 2).

    The l0.5 penalty ``lam sum_sj sqrt(|x_sj|)`` is majorised at the current
    solution by a weighted l1 penalty (weights from
    :func:`mne_wasserstein.solvers._base._l05_weights`, amplitudes relative to
    each subject's largest amplitude of the first, MWE_1, solution): MWE_1,
    then weighted MWE_1 problems, each warm-started (sources and Sinkhorn
    potentials) from the previous one, until the sources stop changing
    (relative change below ``tol``) or ``reweighting_steps`` rounds.

    Parameters
    ----------
    X : list of array, shape (n_s, p)
        The designs.
    Y : list of array, shape (n_s,)
        The measurements.
    ground_metric : array | list of array | GroundMetric | KernelOperator
        The ground metric (see :func:`mne_wasserstein.ot.make_kernel`).
    lam : float
        The l1 threshold of the first round (absolute, > 0).
    mu : float
        The weight of the transport term (absolute, >= 0).
    reweighting_steps : int
        The maximum number of weighted problems after the first one.
    weights : array, shape (S, p) | None
        Weights of the first round (ones if None).
    **kwargs : dict
        The other parameters of :func:`mwe_solver`.

    Returns
    -------
    result : MWEResult
        The last weighted problem; ``n_iter`` counts the outer iterations of
        all rounds and ``objective`` concatenates their histories.
    """
    res = mwe_solver(X, Y, ground_metric, lam, mu, weights=weights, **kwargs)
    scale = np.abs(res.coef).max(axis=1, keepdims=True)
    tol = kwargs.get("tol", 1e-6)
    n_iter, objective = res.n_iter, list(res.objective)
    n_transport = res.n_transport
    for round_ in range(1, reweighting_steps + 1):
        previous = res.coef
        new_weights = _l05_weights(previous, scale)
        kwargs.update(coef_init=previous, ot_init=res.ot_state)
        res = mwe_solver(X, Y, ground_metric, lam, mu, weights=new_weights, **kwargs)
        n_iter += res.n_iter
        n_transport += res.n_transport
        objective += res.objective
        logger.info(
            "  MWE reweighting round %d: %d outer iterations, %d active sources",
            round_,
            res.n_iter,
            np.count_nonzero(res.coef.any(axis=0)),
        )
        change = np.abs(res.coef - previous).max()
        if change <= tol * max(np.abs(res.coef).max(), 1e-300):
            break
    res.n_iter, res.n_transport, res.objective = n_iter, n_transport, objective
    return res


def _solve_subject(problem, it, s, tol, max_iter):
    """Minimise subject ``s``'s block by coordinate descent with working sets.

    A sweep over all coordinates, then sweeps over the support only until
    it is stationary, repeated until a full sweep moves no coefficient by
    more than ``tol`` times the largest one: once the support has settled,
    sweeps cost O(support). Updates ``it.coef[s]`` and ``it.residual[s]`` in
    place and returns the number of sweeps.
    """
    n = problem.n[s]
    args = (
        problem.X[s],
        it.residual[s, :n],
        it.coef[s],
        problem.col_norms[s],
    )
    weights = (
        problem.lam_w[s],
        it.sigma[s],
        problem.c,
        it.marginals[:, s],
        problem.tau,
    )
    coef = it.coef[s]
    all_coords = np.arange(coef.shape[1], dtype=np.int64)
    n_sweeps = 0
    while n_sweeps < max_iter:
        change = _cd_epoch(*args, all_coords, *weights)
        n_sweeps += 1
        if change <= tol * max(coef.max(), 1e-300):
            break
        ws = np.flatnonzero(coef.any(axis=0)).astype(np.int64)
        while n_sweeps < max_iter:
            change = _cd_epoch(*args, ws, *weights)
            n_sweeps += 1
            if change <= tol * max(coef.max(), 1e-300):
                break
    return n_sweeps


def _converged(decreases, threshold):
    """Whether the objective is within ``threshold`` of its limit.

    ``decreases`` are the objective decreases of the last consecutive plain
    outer iterations. Block coordinate descent converges linearly: with a
    rate ``rho``, the decreases still to come sum to ``d rho / (1 - rho)``
    after a decrease ``d``. ``rho`` is the larger of the last two ratios of
    successive decreases; while fewer are known, the rate is taken as at
    least ``_SLOW_RATE``. Stops at once when the objective no longer
    decreases (within the Sinkhorn tolerance).
    """
    if decreases and decreases[-1] <= 0:
        return True
    if not decreases:
        return False
    last = decreases[-3:]
    ratios = [new / old for old, new in zip(last[:-1], last[1:], strict=True)]
    rate = max(ratios + [_SLOW_RATE] * (2 - len(ratios)))
    return rate < 1 and last[-1] * rate / (1 - rate) <= threshold


def _anderson(iterates):
    """Anderson extrapolation of a sequence of non-negative arrays.

    With ``f_k = x_(k+1) - x_k``, the combination of the iterates after the
    first whose weights (summing to 1) minimise the norm of the same
    combination of the ``f_k`` (Anderson 1965; for coordinate descent,
    Bertrand and Massias, AISTATS 2021), projected on ``x >= 0``. Solved in
    the unconstrained form ``x_last - sum_j g_j (x_(j+1) - x_j)`` with ``g``
    the least-squares (minimum-norm) fit of ``f_last`` by the differences of
    the ``f_k``: exact when the errors are a sum of at most ``len(iterates)
    - 2`` geometric sequences.
    """
    X = np.array(iterates)
    G = X[1:].reshape(len(iterates) - 1, -1)
    F = np.diff(X.reshape(len(iterates), -1), axis=0)
    g = np.linalg.lstsq(np.diff(F, axis=0).T, F[-1], rcond=None)[0]
    new = G[-1] - g @ np.diff(G, axis=0)
    return np.maximum(new, 0.0).reshape(X.shape[1:])


class _AndersonAcceleration:
    """Anderson extrapolation every ``depth + 1`` iterates (0: never).

    :meth:`push` stores an iterate and, once ``depth + 1`` are stored,
    returns their extrapolation (:func:`_anderson`) and starts a new
    sequence; else it returns ``None``.
    """

    def __init__(self, depth):
        self.depth = depth
        self._iterates = []

    def push(self, x):
        """Store a copy of ``x``; return the extrapolation or ``None``."""
        if not self.depth:
            return None
        self._iterates.append(x.copy())
        if len(self._iterates) < self.depth + 1:
            return None
        extrapolated = _anderson(self._iterates)
        self._iterates = []
        return extrapolated


def _objective(problem, it, ot_values):
    """Eq. 13 (with the mass floor) at the current point."""
    R, n, sigma = it.residual, problem.n, it.sigma
    data = np.sum(np.sum(R**2, axis=1) / (2 * n * sigma))
    if problem.concomitant:
        data += np.sum(sigma) / 2
    transport = problem.mu * float(np.sum(ot_values))  # (1/S) sum_s W_u
    l1 = float(np.sum(problem.lam_w * (it.coef[:, 0] + it.coef[:, 1])))
    return float(data + transport + l1)


def mwe_alpha_max(X, Y, *, concomitant=True, sigma0=None):
    """Smallest l1 threshold giving all-zero sources without transport.

    Parameters
    ----------
    X : list of array, shape (n_s, p)
        The designs.
    Y : list of array, shape (n_s,)
        The measurements.
    concomitant : bool
        Whether noise levels are estimated (MWE) or not (MTW).
    sigma0 : float | None
        The lower bound of the noise levels (see :func:`mwe_solver`).

    Returns
    -------
    lam_max : float
        ``max_s ||X_s^T y_s||_inf / (n_s sigma_s)`` with ``sigma_s =
        max(||y_s|| / sqrt(n_s), sigma0)`` (MWE) or ``sigma_s = 1`` (MTW):
        the smallest ``lam`` at which zero solves every subject's
        (concomitant) Lasso. At zero sources every subject's transport input
        is the uniform floor ``tau``, whose barycenter is that floor up to the
        entropic blur, so the transport term hardly moves this threshold.
    """
    rms = np.array([np.linalg.norm(y) / np.sqrt(len(y)) for y in Y])
    if sigma0 is None:
        sigma0 = 0.01 * rms.min()
    sigma = np.maximum(rms, sigma0) if concomitant else np.ones(len(Y))
    corr = [
        np.abs(x.T @ y).max() / (len(y) * sd) if sd > 0 else 0.0
        for x, y, sd in zip(X, Y, sigma, strict=True)
    ]
    return float(max(corr))


def _metric_scales(ground_metric):
    """Return the median distance and the median nearest-neighbour distance.

    Both over the finite off-diagonal entries; ``(None, None)`` for a kernel
    operator (no metric to measure).
    """
    if isinstance(ground_metric, KernelOperator):
        return None, None
    if isinstance(ground_metric, GroundMetric):
        return ground_metric.median(), ground_metric.spacing()
    if isinstance(ground_metric, (list, tuple)):
        blocks = ground_metric
    else:
        blocks = [ground_metric]
    values, nearest = [], []
    for block in blocks:
        block = np.array(block, dtype=float)
        np.fill_diagonal(block, np.inf)
        block[~np.isfinite(block)] = np.inf
        values.append(block[np.isfinite(block)])
        nearest.append(block.min(axis=1))
    values, nearest = np.concatenate(values), np.concatenate(nearest)
    nearest = nearest[np.isfinite(nearest)]
    if values.size == 0:
        raise ValueError("The ground metric has no finite off-diagonal entry")
    return float(np.median(values)), float(np.median(nearest))


class _WassersteinEstimator(Estimator):
    """The fit shared by :class:`MWE` and :class:`MTW`."""

    def _ot_parameters(self):
        median, spacing = _metric_scales(self.ground_metric)
        if median is None:  # a kernel operator: its epsilon, gamma is needed
            if self.gamma is None:
                raise ValueError(
                    "gamma must be given when ground_metric is a kernel operator"
                )
            epsilon = self.ground_metric.epsilon
            if self.epsilon is not None:
                epsilon = self.epsilon
            return float(epsilon), float(self.gamma)
        epsilon = spacing if self.epsilon is None else self.epsilon
        gamma = median if self.gamma is None else self.gamma
        return float(epsilon), float(gamma)

    @fill_doc
    def fit(self, X, Y):
        """Fit the model.

        Parameters
        ----------
        %(solver_X)s
        %(solver_Y)s

        Returns
        -------
        self : object
            The fitted estimator.
        """
        concomitant = getattr(self, "concomitant", False)
        _check_alpha(self.alpha)
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.q not in (1, 0.5):
            raise ValueError(f"q must be 1 or 0.5, got {self.q!r}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        data = _check_xy(X, Y)
        S, p = data.n_subjects, data.n_sources
        epsilon, gamma = self._ot_parameters()
        with use_log_level(self.verbose):
            kernel = make_kernel(self.ground_metric, epsilon, backend=self.backend)
            if kernel.n_points != p:
                raise ValueError(
                    f"The ground metric has {kernel.n_points} points but X has "
                    f"{p} sources"
                )
            units = _InternalUnits.of(data)
            if _previous_coef(self, (S, p, data.n_times)) is None:
                self._ot_state = None  # else: continue from the last fit
            solve = partial(self._fit_sample, units, kernel, gamma, concomitant)
            shapes = dict(coef=(S, p), barycenter=(p,), sigma=(S,), alpha_max=())
            shapes["objective"] = None  # a list per time sample
            out = _fit_over_time(self, data, solve, shapes, fill=dict(sigma=1.0))
        self.coef_ = out["coef"]
        self.barycenter_ = out["barycenter"]
        self.sigma_ = out["sigma"]
        self.n_iter_ = out["n_iter"]
        self.objective_ = out["objective"]
        self.alpha_max_ = out["alpha_max"]
        self.epsilon_, self.gamma_ = epsilon, gamma
        return self

    def _fit_sample(self, units, kernel, gamma, concomitant, ys, init):
        """Fit one time sample in internal units (see ``_fit_over_time``)."""
        Xn, ys = units.X, [y / units.y_scale for y in ys]
        sigma0 = getattr(self, "sigma0", None)  # MTW has no noise levels
        if sigma0 is not None:
            sigma0 = sigma0 / units.y_scale
        lam_max = mwe_alpha_max(Xn, ys, concomitant=concomitant, sigma0=sigma0)
        if lam_max == 0:
            return None
        # the transport term weighs beta lam_max / gamma sum_s W_u: in the
        # coordinate update its weight c = mu gamma / S is beta lam_max
        mu = self.beta * len(Xn) * lam_max / gamma
        kwargs = dict(
            gamma=gamma,
            tau=self.tau,
            concomitant=concomitant,
            sigma0=sigma0,
            coef_init=None if init is None else init / units.amplitude,
            ot_init=self._ot_state,
            tol=self.tol,
            max_iter=self.max_iter,
            n_jobs=self.n_jobs,
        )
        lam = self.alpha * lam_max
        if self.q == 1:
            res = mwe_solver(Xn, ys, kernel, lam, mu, **kwargs)
        else:
            kwargs["reweighting_steps"] = self.reweighting_steps
            res = reweighted_mwe_solver(Xn, ys, kernel, lam, mu, **kwargs)
        self._ot_state = res.ot_state
        obj = res.objective
        coef = res.coef * units.amplitude
        return _SampleFit(
            outputs=dict(
                coef=coef,
                barycenter=res.barycenter * units.amplitude,
                sigma=res.sigma * (units.y_scale if concomitant else 1.0),
                alpha_max=lam_max,
                objective=obj,
            ),
            n_iter=res.n_iter,
            criterion=abs(obj[-2] - obj[-1]) / abs(obj[-1]) if len(obj) > 1 else np.inf,
            converged=res.converged,
            warm_start=coef,
        )


@dataclass(frozen=True)
class _InternalUnits:
    """Unit mean column norm and unit largest rms measurement.

    MWE works on ``X / x_scale`` and ``Y / y_scale``; sources and barycenters
    come back multiplied by ``amplitude = y_scale / x_scale`` and noise
    levels by ``y_scale``: exact invariance to the scales of X and Y.
    """

    X: list
    y_scale: float
    amplitude: float

    @classmethod
    def of(cls, data):
        x_scale = np.sqrt(np.mean([np.mean(x**2) for x in data.X]) + 1e-300)
        y_scale = max(np.linalg.norm(y, axis=0).max() / np.sqrt(len(y)) for y in data.Y)
        if y_scale == 0:  # all-zero data: nothing is fitted
            return cls([x / x_scale for x in data.X], 1.0, 1.0)
        return cls([x / x_scale for x in data.X], y_scale, y_scale / x_scale)


@fill_doc
class MWE(_WassersteinEstimator):
    """Minimum Wasserstein Estimates (MWE_q; Janati et al., NeuroImage 2020).

    Multi-subject sparse regression in which an unbalanced optimal-transport
    penalty pulls each subject's sources towards a common barycenter, with a
    noise level estimated per subject (concomitant estimation).

    Parameters
    ----------
    %(mwe_params)s
    concomitant : bool
        Estimate a noise level per subject, which scales that subject's
        penalties (MWE), or not (then ``sigma = 1``, which is :class:`MTW`).
    sigma0 : float | None
        The lower bound of the noise levels, in the unit of ``Y``. ``None``:
        1 %% of the smallest rms measurement.
    %(mwe_solver_params)s

    Attributes
    ----------
    %(mwe_attributes)s

    Notes
    -----
    %(mwe_notes)s
    """

    def __init__(
        self,
        ground_metric,
        alpha=0.3,
        beta=0.1,
        *,
        epsilon=None,
        gamma=None,
        q=0.5,
        concomitant=True,
        sigma0=None,
        tau=1e-3,
        reweighting_steps=10,
        tol=1e-5,
        max_iter=200,
        warm_start=False,
        backend=None,
        n_jobs=None,
        verbose=None,
    ):
        self.ground_metric = ground_metric
        self.alpha = alpha
        self.beta = beta
        self.epsilon = epsilon
        self.gamma = gamma
        self.q = q
        self.concomitant = concomitant
        self.sigma0 = sigma0
        self.tau = tau
        self.reweighting_steps = reweighting_steps
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.backend = backend
        self.n_jobs = n_jobs
        self.verbose = verbose


@fill_doc
class MTW(_WassersteinEstimator):
    """Multi-task Wasserstein (MTW_q; Janati et al., AISTATS 2019).

    :class:`MWE` without noise levels: one l1 threshold for all subjects
    (``sigma = 1``). It has no ``concomitant`` parameter.

    Parameters
    ----------
    %(mwe_params)s
    %(mwe_solver_params)s

    Attributes
    ----------
    %(mwe_attributes)s

    Notes
    -----
    %(mwe_notes)s
    """

    def __init__(
        self,
        ground_metric,
        alpha=0.3,
        beta=0.1,
        *,
        epsilon=None,
        gamma=None,
        q=0.5,
        tau=1e-3,
        reweighting_steps=10,
        tol=1e-5,
        max_iter=200,
        warm_start=False,
        backend=None,
        n_jobs=None,
        verbose=None,
    ):
        self.ground_metric = ground_metric
        self.alpha = alpha
        self.beta = beta
        self.epsilon = epsilon
        self.gamma = gamma
        self.q = q
        self.tau = tau
        self.reweighting_steps = reweighting_steps
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.backend = backend
        self.n_jobs = n_jobs
        self.verbose = verbose
