"""The Kantorovich mean of non-negative vectors (Gramfort et al., IPMI 2015).

Arrays only (numpy or cupy, through the kernel's namespace); the averaging of
source estimates (:mod:`mne_wasserstein.averaging`) is built on it.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

from .._logging import logger
from .._warnings import ConvergenceWarning
from ._backend import to_numpy
from .sinkhorn import _block_mass, _LogProducts, unbalanced_sinkhorn

__all__ = ["KantorovichResult", "kantorovich_barycenter"]

# the most Sinkhorn iterations per exponentiated-gradient step (warm-started:
# the next step goes on from there; fewer at the tolerance of the mean)
SINKHORN_ITER = 10
# block masses of the mean and an input closer than this (relative) are equal
_MASS_RTOL = 1e-10


@dataclass
class KantorovichResult:
    """Result of :func:`kantorovich_barycenter` (arrays of the kernel's xp).

    Attributes
    ----------
    mean : array, shape (n_sources, n_columns)
        The means, of unit mass.
    objective : list of array, shape (n_columns,)
        The objective of each accepted iterate.
    sinkhorn_iter : list of int
        The Sinkhorn iterations of each step.
    n_halved : int
        The steps undone by the safeguard (all columns).
    n_iter : int
        The exponentiated-gradient steps.
    converged : bool
        Whether the relative change of the means fell below ``tol``.
    err : float
        The last relative change.
    """

    mean: object  # (n_sources, n_columns)
    objective: list = field(default_factory=list)  # per iteration, (n_columns,)
    sinkhorn_iter: list = field(default_factory=list)  # per iteration
    n_halved: int = 0  # steps undone by the safeguard (all columns)
    n_iter: int = 0
    converged: bool = False
    err: float = np.inf


def _block_sums(x, blocks, xp):
    """Sum over each block along the first axis: (n_blocks, *x.shape[1:])."""
    return xp.stack([x[idx].sum(axis=0) for idx in blocks])


def kantorovich_barycenter(
    B, kernel, *, step, cost_scale, max_iter, tol, callback=None
):
    """Kantorovich means of unit mass, one per column, by exponentiated gradient.

    Minimises ``F(a) = (1 / S) sum_s OT_eps(a, b_s)`` over ``a >= 0`` with
    ``sum(a) = 1`` and, in each block ``h`` of the ground metric, a mass
    ``sum(a[h])`` proportional to the mean mass of the inputs in ``h``, where
    ``OT_eps`` is the entropic Kantorovich distance with one virtual point per
    block (``kernel``, a :class:`~mne_wasserstein.ot.VirtualPointKernel`): in
    each block, the lighter of ``a`` and ``b_s`` is completed by the virtual
    point with the mass difference, and the balanced entropic transport is
    solved.

    Parameters
    ----------
    B : array, shape (n_sources, S, n_columns)
        Non-negative inputs (any masses; the mean has mass 1).
    kernel : VirtualPointKernel
        The kernel of the extended cost.
    step : float
        The step in units of ``1 / cost_scale``.
    cost_scale : float
        The largest finite cost (``M^p`` and ``delta``).
    max_iter : int
        Maximum number of exponentiated-gradient steps.
    tol : float
        Stop when the relative change of the mean (``max |da| / max a``) is
        below ``tol`` in every column. Also the tolerance of the Sinkhorn
        iterations, and of the objective values the safeguard compares.
    callback : callable | None
        Called as ``callback(n_iter, a)`` with every accepted iterate.

    Returns
    -------
    result : KantorovichResult
        The means (unit mass), the objective of the accepted iterates,
        convergence.
    """
    xp = kernel.xp
    n, S, n_col = B.shape
    blocks = kernel.base.blocks
    b_mass = _block_sums(B, blocks, xp)  # (n_blocks, S, n_col)
    # start uniform in each block, with the block's mean mass (kept by every
    # renormalisation); the iterate is log(a): entries that underflow in a
    # can grow again
    log_a = xp.full((n, n_col), -np.inf)
    start = b_mass.mean(axis=1)
    with np.errstate(divide="ignore"):
        start = xp.log(start / start.sum(axis=0))
    for h, idx in enumerate(blocks):
        size = len(range(n)[idx]) if isinstance(idx, slice) else len(idx)
        log_a[idx] = start[h] - np.log(size)
    eta = xp.full(n_col, step / cost_scale)
    slack = tol * cost_scale  # the accuracy of the objective values
    result = KantorovichResult(mean=None)
    state = previous = None
    while result.n_iter < max_iter:
        value, grad, state = _objective_gradient(log_a, B, b_mass, kernel, state, tol)
        result.n_iter += 1
        result.sinkhorn_iter.append(state.n_iter)
        accurate = state.err < tol  # values to compare (Sinkhorn converged)
        if previous is not None and accurate:
            # safeguard: a step that increased the objective is undone and
            # the step of its column halved
            worse = value > previous[1] + slack
            if bool(worse.any()):
                log_a = xp.where(worse, previous[0], log_a)
                value = xp.where(worse, previous[1], value)
                grad = xp.where(worse, previous[2], grad)
                eta = xp.where(worse, eta / 2, eta)
                result.n_halved += int(worse.sum())
        result.objective.append(to_numpy(value))
        a = xp.exp(log_a)
        if callback is not None:
            callback(result.n_iter, a)
        with np.errstate(invalid="ignore"):
            # (empty blocks: -inf stays -inf)
            log_new = xp.where(log_a > -np.inf, log_a - eta * grad, -np.inf)
        log_new = _renormalise(log_new, blocks, start, xp)
        a_new = xp.exp(log_new)
        result.err = float((xp.abs(a_new - a).max(axis=0) / a_new.max(axis=0)).max())
        previous = (log_a, value, grad) if accurate else None
        log_a = log_new
        if result.n_iter % 50 == 0:
            logger.info(
                "    iteration %d: change %.2e, Sinkhorn %.2e",
                result.n_iter,
                result.err,
                state.err,
            )
        if result.err < tol:
            result.converged = True
            break
    result.mean = xp.exp(log_a)
    return result


def _renormalise(log_a, blocks, log_mass, xp):
    """Mass renormalisation: block ``h`` of ``exp(log_a)`` gets ``exp(log_mass[h])``.

    Blocks of mass 0 (``log_mass = -inf``) stay at ``-inf``.
    """
    out = xp.full(log_a.shape, -np.inf)
    for h, idx in enumerate(blocks):
        x = log_a[idx]
        mx = x.max(axis=0)
        mx = xp.where(xp.isfinite(mx), mx, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lse = mx + xp.log(xp.exp(x - mx).sum(axis=0))
            out[idx] = xp.where(log_mass[h] > -np.inf, x - lse + log_mass[h], -np.inf)
    return out


def _objective_gradient(log_a, B, b_mass, kernel, state, tol):
    """``F(a)`` (n_col,) and its gradient (n, n_col) by warm-started Sinkhorn."""
    xp = kernel.xp
    n, S, n_col = B.shape
    blocks = kernel.base.blocks
    n_ext = n + len(blocks)
    a = xp.exp(log_a)
    a_mass = _block_sums(a, blocks, xp)[:, None]
    diff = b_mass - a_mass  # b heavier: > 0
    # masses equal up to rounding need no virtual mass
    diff = xp.where(xp.abs(diff) > _MASS_RTOL * (b_mass + a_mass), diff, 0.0)
    A_ext = xp.concatenate(
        [xp.broadcast_to(a[:, None], (n, S, n_col)), xp.maximum(diff, 0.0)]
    ).reshape(n_ext, S * n_col)
    B_ext = xp.concatenate([B, xp.maximum(-diff, 0.0)]).reshape(n_ext, S * n_col)
    with warnings.catch_warnings():
        # convergence is checked on the whole scheme
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = unbalanced_sinkhorn(
            A_ext,
            B_ext,
            kernel,
            gamma=np.inf,
            tol=tol,
            max_iter=SINKHORN_ITER,
            init=state,
        )
    state = res.state
    # OT_eps without its constant part eps * sum(K)
    value = res.value.reshape(S, n_col).mean(axis=0) - kernel.epsilon * kernel.total()
    eps = kernel.epsilon
    g = state.g.astype(np.float64)
    # the dual potential of every source, also where a underflows:
    # f = eps (log a - log K v), with v = exp(g / eps) (0 where b is 0)
    floor = np.finfo(state.g.dtype).min / 2
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_Kv = _log_kernel_product(kernel, xp.where(g > floor, g / eps, -np.inf))
        f_src = eps * (log_a[:, None] - log_Kv[:n].reshape(n, S, n_col))
        # (the block masses of a are fixed: the gradient through the virtual
        # masses is a constant per block, which the renormalisation removes)
        grad = f_src.mean(axis=1)
    return value, grad, state


def _log_kernel_product(kernel, log_v):
    """``log(K @ exp(log_v))`` on the rows of the blocks where ``v`` has mass.

    The kernel-domain products of the Sinkhorn engine (restricted to the
    support of ``v``, exact to rounding where no needed row underflows), the
    log domain otherwise.
    """
    xp = kernel.xp
    has_v = log_v > -np.inf
    support = (np.ones(kernel.n_points, dtype=bool), to_numpy(has_v.any(axis=1)))
    products = _LogProducts(kernel, exact=False, support=support)
    out, ok = products(log_v, False, _block_mass(has_v, kernel.blocks, xp))
    return out if ok else kernel.log_matvec(log_v)
