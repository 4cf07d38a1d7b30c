"""Unbalanced entropic optimal transport: distance, signed extension, barycenter.

All solvers minimise the unbalanced entropic transport cost of Chizat et al.
(2018), Eq. 9 of Janati et al. (2020)::

    W_u(a, b) = min_P  eps KL(P | K) + gamma KL(P 1 | a) + gamma KL(P^T 1 | b)

with ``K = exp(-M / eps)``, by generalised Sinkhorn scaling iterations
(``psi = gamma / (gamma + eps)``)::

    u <- (a / K v)^psi,    v <- (b / K^T u)^psi.

The transport plan ``P = diag(u) K diag(v)`` is never formed. Iterations
update the log-scalings ``log u, log v`` in float64. In the kernel domain
(the default) each half-step is one matrix product ``K @ exp(log v - c)`` in
the kernel's dtype (float32 or float64), with one shift ``c`` per column;
only the kernel entries between points that carry mass are read, since the
others only meet zero scalings. The iterations switch to the log domain
(stabilised log-sum-exp products in float64) as soon as a kernel-domain
product may have lost terms to underflow.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from .._logging import logger
from .._validation import check_positive
from .._warnings import ConvergenceWarning
from ._backend import asarray, backend_name, get_namespace, to_numpy
from .kernels import (
    _ABSORB,
    _LOG_TINY,
    KernelOperator,
    SparseKernel,
    make_kernel,
)

__all__ = [
    "SinkhornState",
    "SinkhornResult",
    "BarycenterResult",
    "unbalanced_sinkhorn",
    "signed_wasserstein",
    "unbalanced_barycenter",
]


@dataclass
class SinkhornState:
    """Dual potentials of a (batched) unbalanced Sinkhorn problem.

    Pass it (or the result that holds it) as ``init`` to warm-start a solver
    on a problem of the same shape, possibly with other masses or epsilon.

    Attributes
    ----------
    f : array, shape (p, n_columns) or the shape of the input masses
        Left potentials ``f = epsilon * log(u)``, in the unit of the ground
        metric. Where ``u = 0`` (no mass), the most negative finite number
        of the dtype.
    g : array, same shape as ``f``
        Right potentials ``g = epsilon * log(v)``.
    n_iter : int
        Number of iterations done.
    converged : bool
        Whether the stopping criterion fell below ``tol``.
    err : float
        The last value of the stopping criterion (see the solvers' Notes).
    log_domain : bool
        Whether the last iterations ran in the log domain.
    """

    f: object
    g: object
    n_iter: int = 0
    converged: bool = False
    err: float = np.inf
    log_domain: bool = False


@dataclass
class SinkhornResult:
    """Result of :func:`unbalanced_sinkhorn` and :func:`signed_wasserstein`.

    Attributes
    ----------
    value : float | array, shape (n_columns,)
        The objective ``W_u`` of Eq. 9 at the solution (unit of ``M``).
    left_marginal : array, shape of ``a``
        ``P 1``, the mass that leaves each point.
    right_marginal : array, shape of ``b``
        ``P^T 1``, the mass that reaches each point.
    state : SinkhornState
        Potentials and convergence information.
    """

    value: object
    left_marginal: object
    right_marginal: object
    state: SinkhornState


@dataclass
class BarycenterResult:
    """Result of :func:`unbalanced_barycenter`.

    Attributes
    ----------
    barycenter : array, shape (p,) or (p, n_problems)
        The barycenter(s).
    marginals : array, shape (p, S) or (p, S, n_problems)
        The left marginals ``m_s = P_s 1`` of the transport plans from each
        input to the barycenter.
    value : float | array, shape (n_problems,)
        ``sum_s w_s W_u(a_s, barycenter)``.
    state : SinkhornState
        Potentials (shape of ``A``) and convergence information; pass this
        result or its state as ``init`` for a warm start.
    """

    barycenter: object
    marginals: object
    value: object
    state: SinkhornState


# --------------------------------------------------------------------------
# input checks


def _check_masses(x, name, xp, dtype, ndim=(1, 2)):
    if isinstance(x, KernelOperator):
        raise TypeError(f"{name} must be an array")
    x = xp.asarray(x) if xp is not np else np.asarray(to_numpy(x))
    if x.ndim not in ndim:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, ndim))} "
            f"dimensions, got shape {x.shape}"
        )
    x = x.astype(dtype, copy=False)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    if bool((x < 0).any()):
        raise ValueError(
            f"{name} must be non-negative (masses); for signed "
            "vectors use signed_wasserstein"
        )
    return x


# over-relaxation of balanced Sinkhorn (gamma = inf) when none is given, and
# the relative mass difference it tolerates between a and b
_BALANCED_RELAXATION = 1.0
_BALANCED_RTOL = 1e-6

# float32 products hand over to float64 when the criterion has not halved
# for this many iterations once it is below this level: there a stall is the
# rounding floor of float32, above it it can be a slow phase of the
# iterations (see benchmarks/README.rst, "Constants of the OT engine")
_STALL = 6
_STALL_LEVEL = 1e3 * float(np.finfo(np.float32).eps)
# kernel-domain products below tau are recomputed exactly where they are
# needed (KernelOperator._log_entries, about p operations each) while they
# are at most this fraction of the entries (one product costs about p
# operations per entry too, but in BLAS); beyond it the iterations switch to
# the log domain
_REPAIR_FRACTION = 0.01
# over-relaxation is reduced when the criterion has not reached a new minimum
# for this many iterations
_OSCILLATION = 100
# ... by this factor of (omega - 1): a mild reduction, since a strong one
# loses most of the acceleration where epsilon << gamma
_REDUCTION = 0.8


# over-relaxed steps of log-scalings d are not checked (see _relaxed) where
# the dual is quadratic well within the margin of the test: its third
# derivative is at most max(1, kappa) times its second, h2, so the cubic
# term of the gain of the step omega d, max(1, kappa) h2 omega^3 |d|^3 / 6,
# is below the margin (1 - (omega - 1)^2) h2 d^2 / 4 when max(1, kappa) |d|
# < 1.5 (1 - (omega - 1)^2) / omega^3; this fraction of that bound is used
# (1e-3 at omega = 1.99, 0.03 at 1.77)
_QUADRATIC = 0.25


def _tau(dtype):
    # kernel-domain products below tau where they are needed trigger the
    # switch to the log domain: above tau, a sum of at most p lost terms each
    # below the smallest normal number (tiny) changes a product by less than
    # p * tiny^(1/3) relative (1e-9 in float32 for p = 5000)
    return float(np.finfo(dtype).tiny) ** (2.0 / 3.0)


def _block_mass(x, blocks, xp):
    """Boolean (p, n_columns): the column has mass in the block of the row."""
    out = xp.zeros(x.shape, dtype=bool)
    for idx in blocks:
        out[idx] = (x[idx].sum(axis=0) > 0)[None, :]
    return out


def _init_potentials(init, shape, xp, eps):
    if init is None:
        return None, None
    if isinstance(init, (SinkhornResult, BarycenterResult)):
        init = init.state
    if not isinstance(init, SinkhornState):
        raise TypeError(f"init must be a SinkhornState or a result, got {type(init)}")
    out = []
    for pot in (init.f, init.g):
        x = xp.asarray(pot, dtype=np.float64).reshape(shape[0], -1)
        if x.shape != shape:
            raise ValueError(
                f"init has potentials of shape {tuple(init.f.shape)}, incompatible "
                f"with this problem (shape {shape})"
            )
        # the "no mass" marker (see _potentials_out): start from 0 there
        marker = float(np.finfo(pot.dtype).min)
        out.append(xp.where(x > marker, x, 0.0) / eps)
    return tuple(out)


# --------------------------------------------------------------------------
# the engine


def _amax(x, axis, xp):
    """Return ``x.max(axis, keepdims=True)``, through argmax.

    numpy reduces slowly across the rows of a C-ordered array; argmax does not.
    """
    return xp.take_along_axis(x, xp.expand_dims(x.argmax(axis=axis), axis), axis)


def _relative_change(new, old, xp):
    """max_i |new - old| / max_i new, per column, then max over columns."""
    diff = _amax(xp.abs(new - old), 0, xp)
    scale = _amax(xp.abs(new), 0, xp)
    ok = scale > 0
    return float(xp.where(ok, diff / xp.where(ok, scale, 1.0), 0.0).max())


def _log_relative_change(lnew, lold, xp):
    """:func:`_relative_change` of ``exp(lnew)`` and ``exp(lold)``, stably."""
    shift = _amax(lnew, 0, xp)
    shift = xp.where(xp.isfinite(shift), shift, 0.0)
    return _relative_change(xp.exp(lnew - shift), xp.exp(lold - shift), xp)


class _Problem:
    """Everything the iterations need, in flat (p, n_columns) layout."""

    def __init__(self, kernel, A, target, psi, weights, n_problems):
        xp = kernel.xp
        self.kernel, self.xp, self.psi = kernel, xp, psi
        self.A, self.target = A, target
        self.weights = weights  # None for a distance
        self.n_problems = n_problems
        blocks = kernel.blocks
        mass_a = _block_mass(A, blocks, xp)
        if weights is None:
            mass_b = _block_mass(target, blocks, xp)
            self.mask_v = (target > 0) & mass_a
        else:
            # the barycenter is positive on every block where an input has mass
            p = A.shape[0]
            any_mass = mass_a.reshape(p, -1, n_problems).any(axis=1, keepdims=True)
            mass_b = xp.broadcast_to(any_mass, (p, weights.shape[0], n_problems))
            mass_b = mass_b.reshape(A.shape)
            self.mask_v = mass_a & mass_b
        self.mask_u = (A > 0) & mass_b
        # points where some column has a scaling: kernel entries between
        # other points only meet zeros (see KernelOperator._restrict)
        self.support = (
            to_numpy(self.mask_u.any(axis=1)),
            to_numpy(self.mask_v.any(axis=1)),
        )

    def log_barycenter(self, lKtu):
        """Log of the power mean of ``K^T u`` over subjects, (p, n_problems)."""
        xp, psi = self.xp, self.psi
        p = lKtu.shape[0]
        t = (1.0 - psi) * lKtu.reshape(p, -1, self.n_problems)
        shift = _amax(t, 1, xp)
        shift = xp.where(xp.isfinite(shift), shift, 0.0)
        mean = xp.tensordot(xp.exp(t - shift), self.weights, axes=([1], [0]))
        return (shift[:, 0] + xp.log(mean)) / (1.0 - psi)

    def expand(self, q):
        p = q.shape[0]
        S = self.weights.shape[0]
        full = self.xp.broadcast_to(q[:, None, :], (p, S, self.n_problems))
        return full.reshape(self.A.shape)


def _marginal_change(m, delta, xp):
    """max_i m_i |delta_i| / max_i m_i per column, max over columns.

    ``delta`` is the change of ``log u`` by one more update: to first order
    this is the relative change of the left marginal ``m = u * K v``.
    """
    num = _amax(m * xp.abs(delta), 0, xp)
    scale = _amax(m, 0, xp)
    ok = scale > 0
    return float(xp.where(ok, num / xp.where(ok, scale, 1.0), 0.0).max())


class _LogProducts:
    """``log(K @ exp(x))`` and ``log(K^T @ exp(x))`` for log-scalings ``x``.

    Kernel domain (``exact=False``): each column of ``exp(x - shift)`` is
    formed in float64 with a per-column shift that puts its largest entry at
    ``exp(headroom)``, cast to ``kernel.dtype`` (entries below the smallest
    normal number ``tiny`` of the dtype are flushed to 0), multiplied by the
    kernel in that dtype (restricted to the support, see
    :meth:`KernelOperator._restrict`), and the log is taken in float64.
    Rounding happens in the products only: the log-scalings and every update
    stay in float64. Each term lost to underflow is below ``tiny`` (below
    ``tiny exp(headroom)`` when the kernel itself has entries below ``tiny``),
    so a product row above ``tau = tiny^(2/3)`` (``tau exp(headroom)``) is
    exact to ``p tiny^(1/3)`` relative; needed rows below ``tau`` are
    recomputed exactly (:meth:`KernelOperator._log_entries`) while they are
    few, else they are reported (``ok=False``) and the caller switches to the
    log domain.

    Log domain (``exact=True``): the operator's stabilised float64
    log-sum-exps.
    """

    def __init__(self, kernel, exact, support=None):
        self.exact = self.log_domain = exact
        self.dtype = np.dtype(np.float64) if exact else kernel.dtype
        if not exact and support is not None:
            kernel = kernel._restrict(*support)
        self.kernel = kernel
        finfo = np.finfo(self.dtype)
        self.tiny = tiny = float(finfo.tiny)
        self.tau = _tau(self.dtype)
        # scalings below exp(floor) are flushed to 0 (float64 exp is slow
        # below -708: stop at -700, which loses terms < 5000 tiny instead)
        self.floor = max(np.log(tiny), _LOG_TINY)
        # the largest scaling of a column is exp(headroom): a sum of p such
        # terms cannot overflow, and few products of small kernel entries and
        # scalings underflow (subnormal results make BLAS products several
        # times slower)
        self.headroom = 0.5 * np.log(float(finfo.max) / max(kernel.n_points, 1))
        if kernel._smallest_entry() < tiny:
            # entries of K below tiny are lost, each term below tiny times the
            # largest scaling: tau relative to it (see _tau)
            self.tau *= np.exp(self.headroom)

    def grown(self, lu, lv):
        """Whether the kernel must be stabilized again (never, here)."""
        return False

    def __call__(self, lx, transpose, need):
        """Return ``(log product, ok)``; ``need`` masks the rows that matter."""
        kernel, xp = self.kernel, self.kernel.xp
        if self.exact:
            out = kernel.log_rmatvec(lx) if transpose else kernel.log_matvec(lx)
            return out, True
        shift = _amax(lx, 0, xp)
        shift = xp.where(xp.isfinite(shift), shift - self.headroom, 0.0)
        t = lx - shift
        # exp of the clamped values: exp is slow on -inf and near tiny
        x = xp.where(t > self.floor, xp.exp(xp.maximum(t, self.floor)), 0.0)
        x = x.astype(self.dtype)
        y = kernel.rmatvec(x) if transpose else kernel.matvec(x)
        low = need & ~(y >= self.tau)
        out = xp.log(xp.maximum(y.astype(np.float64), self.tiny)) + shift
        n_low = int(low.sum())
        if n_low > _REPAIR_FRACTION * low.size:
            return out, False
        if n_low:
            rows, cols = xp.nonzero(low)
            out[rows, cols] = kernel._log_entries(lx, rows, cols, transpose)
        return out, True


class _SparseProducts:
    """Exact products of a :class:`SparseKernel`, stabilized at the iterate.

    The kernel is stabilized at the largest log-scalings of the columns at
    each point (on the masks), and again whenever a log-scaling grows more
    than ``_ABSORB`` above them (:meth:`grown`). A warm start reuses the
    kernel's last stabilization where it is valid for the new problem (the
    same masks, a mass scale no smaller, the starting log-scalings less
    than ``_ABSORB`` above the absorbed ones): the truncation bound holds.
    """

    exact = True
    log_domain = False  # kernel-domain products, exact where they underflow
    dtype = np.dtype(np.float64)

    def __init__(self, prob, lu, lv):
        self.prob, self.kernel = prob, prob.kernel
        col_max = to_numpy(prob.A.max(axis=0))
        col_max = col_max[col_max > 0]
        self.mass_scale = float(col_max.min()) if col_max.size else 1.0
        last = self.kernel._last_stabilization
        if last is not None and self._reusable(last, lu, lv):
            self.stab, self.lu0, self.lv0 = last[:3]
        else:
            self.restabilize(lu, lv)

    def _reusable(self, last, lu, lv):
        stab, lu0, lv0, mask_u, mask_v, mass_scale = last
        prob = self.prob
        return (
            lu0.shape == lu.shape
            and mass_scale <= self.mass_scale
            and bool((mask_u == prob.mask_u).all() & (mask_v == prob.mask_v).all())
            and not self._grown_from(lu0, lv0, lu, lv)
        )

    def restabilize(self, lu, lv):
        """Stabilize the kernel at the log-scalings ``lu``, ``lv``."""
        prob = self.prob
        self.stab = self.kernel.stabilize(
            lu, lv, prob.mask_u, prob.mask_v, self.mass_scale
        )
        # copies: the compiled loop updates lu and lv in place
        self.lu0, self.lv0 = prob.xp.array(lu), prob.xp.array(lv)
        self.kernel._last_stabilization = (
            self.stab, self.lu0, self.lv0, prob.mask_u, prob.mask_v, self.mass_scale
        )  # fmt: skip

    def _grown_from(self, lu0, lv0, lu, lv):
        prob = self.prob
        with np.errstate(invalid="ignore"):
            up = prob.mask_u & (lu - lu0 > _ABSORB)
            vp = prob.mask_v & (lv - lv0 > _ABSORB)
        return bool(up.any() | vp.any())

    def grown(self, lu, lv):
        """Whether a log-scaling grew by ``_ABSORB`` since the stabilization."""
        return self._grown_from(self.lu0, self.lv0, lu, lv)

    def __call__(self, lx, transpose, need):
        """Return ``(log product, True)``, compiled where the iterations are."""
        if not self.kernel.compiled:
            return self.stab.log_product(lx, transpose, need), True
        from ._compiled import _log_product

        stab = self.stab
        indptr, indices, data, log_data, post, pre = stab.ktu if transpose else stab.kv
        out = np.empty(lx.shape)
        _log_product(
            indptr, indices, data, log_data, post,
            np.ascontiguousarray(lx, dtype=np.float64), pre,
            np.ascontiguousarray(need), stab.candidates[int(transpose)], out,
        )  # fmt: skip
        return out, True


def _step(prob, prods, lu, lv, lq, logA, ltarget, omega):
    """One (over-relaxed) generalised Sinkhorn iteration on log-scalings.

    Returns ``(lu, lv, lq, err)``, or ``None`` if a kernel-domain product
    under/overflowed (the iteration is then discarded).
    """
    xp, psi = prob.xp, prob.psi
    mask_u, mask_v = prob.mask_u, prob.mask_v
    lKv, ok_u = prods(lv, False, mask_u)
    lu_new, delta = _relaxed(lu, logA, lKv, mask_u, psi, omega, prods, xp)
    m = xp.exp(xp.maximum(lu + lKv, _LOG_TINY))  # clamped: no slow exp(-inf)
    err = _marginal_change(m, delta, xp)
    lKtu, ok_v = prods(lu_new, True, mask_v)
    if prob.weights is not None:
        lq_new = prob.log_barycenter(xp.where(mask_v, lKtu, -np.inf))
        if lq is not None:
            err = max(err, _log_relative_change(lq_new, lq, xp))
        lmass = prob.expand(lq_new)
    else:
        lq_new, lmass = None, ltarget
    lv_new, _ = _relaxed(lv, lmass, lKtu, mask_v, psi, omega, prods, xp)
    if not (ok_u and ok_v) or bool(xp.isnan(lu_new).any() | xp.isnan(lv_new).any()):
        return None
    return lu_new, lv_new, lq_new, err


def _relaxed(lx, lmass, lK, mask, psi, omega, prods, xp):
    """Safeguarded over-relaxed update of the log-scalings ``lx`` on ``mask``.

    The plain update ``lx_new = psi (lmass - lK)`` (``lmass`` the log of the
    masses to match, ``lK`` the log of the kernel product) maximises the
    dual objective over this half of the potentials, one entry at a time
    (see :func:`_dual_gains`). The over-relaxed step ``lx + omega (lx_new -
    lx)`` is taken where it keeps at least half the increase of the dual
    that a step of its length gives on a quadratic, ``(1 - (omega - 1)^2)
    / 2`` of the plain step's; elsewhere (far from the fixed point, where
    over-relaxation can overshoot and diverge) the plain step is taken, so
    that every half-iteration increases the dual objective. Steps below
    :func:`_unchecked_length` (divided by ``max(1, kappa)``) are always
    over-relaxed: there the dual is quadratic to well within the margin of
    the test, and the gains are too small to be told apart in float64.

    Returns the update (``-inf`` outside ``mask``) and the change
    ``lx_new - lx`` (0 where either is ``-inf``). In the kernel domain ``lK``
    is finite and ``lx`` is ``-inf`` exactly outside ``mask``; in the log
    domain ``lK = -inf`` where no kernel entry reaches a mass: the scaling
    is irrelevant there, ``-inf`` keeps the products finite.
    """
    lx_new = psi * (lmass - lK)
    if prods.exact:
        valid = mask & (lK > -np.inf)
        live = valid & (lx > -np.inf)
        rest = xp.where(valid, lx_new, -np.inf)
    else:
        live, rest = mask, -np.inf
    with np.errstate(all="ignore"):
        delta = xp.where(live, lx_new - lx, 0.0)
        step = delta
        if omega != 1.0:
            kappa = (1.0 - psi) / psi
            x0 = xp.where(live, lx, 0.0)
            gain = _dual_gains(x0, lmass, lK, kappa, omega * delta, xp)
            floor = 0.5 * (1.0 - (omega - 1.0) ** 2)
            floor = floor * _dual_gains(x0, lmass, lK, kappa, delta, xp)
            small = xp.abs(delta) * max(1.0, kappa) < _unchecked_length(omega)
            step = xp.where(small | (gain >= floor), omega * delta, delta)
    return xp.where(live, lx + step, rest), delta


def _unchecked_length(omega):
    """Return the length of the steps not checked (see _QUADRATIC)."""
    return _QUADRATIC * 1.5 * (1.0 - (omega - 1.0) ** 2) / omega**3


def _dual_gains(x0, lmass, lK, kappa, d, xp):
    """Increase of the dual objective when the log-scalings move by ``d``.

    Per entry and in units of epsilon: with the other potentials fixed, the
    dual objective of the log-scaling ``x`` of a point with mass
    ``exp(lmass)`` and kernel product ``exp(lK)`` is ``-exp(lmass - kappa
    x) / kappa - exp(x + lK)``, ``kappa = epsilon / gamma`` (``lmass x -
    exp(x + lK)`` for balanced transport, ``kappa = 0``), maximised by the
    plain Sinkhorn update ``x = (lmass - lK) / (1 + kappa)``.
    """
    if kappa > 0:
        mass = xp.exp(lmass - kappa * x0) * (-xp.expm1(-kappa * d) / kappa)
    else:
        mass = xp.exp(lmass) * d
    return mass - xp.exp(x0 + lK) * xp.expm1(d)


def _run(prob, *, tol, max_iter, init, log_domain, relaxation):
    """Generalised Sinkhorn on log-scalings.

    Returns ``(lu, lv, n_iter, converged, err, prods)``, ``prods`` the
    :class:`_LogProducts` of the last iterations.
    """
    kernel, xp = prob.kernel, prob.xp
    mask_u, mask_v, bary = prob.mask_u, prob.mask_v, prob.weights is not None
    lu, lv = init
    if lv is None:
        lu = xp.where(mask_u, 0.0, -np.inf)
        lv = xp.where(mask_v, 0.0, -np.inf)
    else:
        lu = xp.where(mask_u, lu, -np.inf)
        lv = xp.where(mask_v, lv, -np.inf)
    if isinstance(kernel, SparseKernel):
        prods = _SparseProducts(prob, lu, lv)
        if kernel.compiled:
            return _run_compiled(prob, prods, lu, lv, tol, max_iter, relaxation)
    else:
        prods = _LogProducts(kernel, exact=log_domain is True, support=prob.support)
    omega = float(relaxation)
    n_iter, err, converged, lq = 0, np.inf, False, None
    errors, best, since_best = [], np.inf, 0
    with np.errstate(all="ignore"):
        logA = xp.log(prob.A.astype(np.float64))
        ltarget = None if bary else xp.log(prob.target.astype(np.float64))
        while n_iter < max_iter:
            step = _step(prob, prods, lu, lv, lq, logA, ltarget, omega)
            if step is None:
                if prods.exact:  # pragma: no cover - masks keep NaN out
                    raise FloatingPointError("NaN in the log-domain iterations")
                if log_domain is False:
                    raise FloatingPointError(
                        "The kernel-domain Sinkhorn iterations under/overflowed "
                        f"at iteration {n_iter + 1} (epsilon too small for "
                        f"{prods.dtype}); use log_domain='auto' or True"
                    )
                logger.info(
                    "Sinkhorn: switching to the log domain at iteration %d",
                    n_iter + 1,
                )
                prods = _LogProducts(kernel, exact=True)
                continue
            lu, lv, lq, err = step
            n_iter += 1
            omega = _adapt(omega, errors, err)
            if err < tol:
                converged = True
                break
            if err < 0.5 * best:
                best, since_best = err, 0
            else:
                since_best += 1
            if (
                since_best >= _STALL
                and err < _STALL_LEVEL
                and prods.dtype != np.float64
            ):
                logger.info(
                    "Sinkhorn: %s rounding stalls the criterion at %.1e; "
                    "float64 products from iteration %d",
                    prods.dtype,
                    err,
                    n_iter + 1,
                )
                prods = _LogProducts(
                    kernel.astype(np.float64), exact=False, support=prob.support
                )
                # the noise may have reduced the over-relaxation: start afresh
                omega, since_best = float(relaxation), 0
                errors.clear()
            if prods.grown(lu, lv):
                prods.restabilize(lu, lv)
    if not converged:
        _warn_not_converged(max_iter, err, tol)
    return lu, lv, n_iter, converged, err, prods


def _warn_not_converged(max_iter, err, tol):
    warnings.warn(
        f"Sinkhorn did not converge in {max_iter} iterations "
        f"(err={err:.2e}, tol={tol:.1e}); increase max_iter or tol.",
        ConvergenceWarning,
        stacklevel=4,
    )


def _run_compiled(prob, prods, lu, lv, tol, max_iter, relaxation):
    """:func:`_run` in the compiled loop of :mod:`._compiled` (numpy only).

    The loop returns to Python only to stabilize the kernel again.
    """
    from ._compiled import _sinkhorn_loop

    lu = np.array(lu, dtype=np.float64, order="C")
    lv = np.array(lv, dtype=np.float64, order="C")
    p, n_col = lu.shape
    bary = prob.weights is not None
    # C-ordered inputs: one compiled specialisation of the loop
    with np.errstate(divide="ignore"):
        logA = np.ascontiguousarray(np.log(prob.A.astype(np.float64)))
        ltarget = (
            logA if bary else np.ascontiguousarray(np.log(prob.target.astype(float)))
        )
    weights = np.asarray(prob.weights, dtype=np.float64) if bary else np.zeros(0)
    mask_u = np.ascontiguousarray(prob.mask_u)
    mask_v = np.ascontiguousarray(prob.mask_v)
    lq = np.zeros((p, prob.n_problems))
    errors = np.empty(_OSCILLATION + 1)
    state = (float(relaxation), 0, np.inf, 0)  # omega, n_errors, best, since_best
    n_iter, has_lq, err = 0, False, np.inf
    while True:
        status, n_iter, err, omega, n_errors, best, since_best, has_lq = (
            _sinkhorn_loop(
                prods.stab.kv, prods.stab.ktu, prods.stab.candidates,
                prods.lu0, prods.lv0, logA,
                ltarget, mask_u, mask_v,
                weights, prob.n_problems, prob.psi, lu, lv, lq, has_lq,
                state[0], errors, state[1], state[2], state[3], err, n_iter,
                max_iter, tol, _ABSORB, _OSCILLATION, _REDUCTION, _QUADRATIC,
            )
        )  # fmt: skip
        state = (omega, n_errors, best, since_best)
        if status == 2:
            prods.restabilize(lu, lv)
            continue
        if status == 3:  # pragma: no cover - masks keep NaN out
            raise FloatingPointError("NaN in the Sinkhorn iterations")
        break
    if status != 0:
        _warn_not_converged(max_iter, err, tol)
    return lu, lv, n_iter, status == 0, err, prods


def _adapt(omega, errors, err):
    """Reduce the over-relaxation when the error stops decreasing.

    That is, when it increased three iterations in a row, or when it has not
    gone below its minimum for ``_OSCILLATION`` iterations (over-relaxed
    iterations can cycle without converging).
    """
    errors.append(err)
    if len(errors) > _OSCILLATION + 1:
        del errors[0]
    if omega > 1.0 and (
        (len(errors) > 6 and all(errors[-k] > errors[-k - 1] for k in range(1, 4)))
        # the oldest error of the window is still the smallest
        or (len(errors) > _OSCILLATION and min(errors) == errors[0])
    ):
        errors.clear()
        return 1.0 + _REDUCTION * (omega - 1.0)
    return omega


@dataclass
class _Solution:
    """What :func:`_solve` found, in flat (p, n_columns) layout, float64."""

    m: object  # left marginals P 1
    n: object  # right marginals P^T 1
    f: object  # potentials (0 outside the masks)
    g: object
    value: object  # per column, without the right marginal's penalty
    lKtu: object  # log K^T u (the barycenter's power mean reads it)
    n_iter: int
    converged: bool
    err: float
    log_domain: bool

    def state(self, prob, dtype, shape):
        """Return the :class:`SinkhornState` of the solution, shaped ``shape``."""
        xp = prob.xp
        return SinkhornState(
            f=_potentials_out(self.f, prob.mask_u, dtype, xp).reshape(shape),
            g=_potentials_out(self.g, prob.mask_v, dtype, xp).reshape(shape),
            n_iter=self.n_iter,
            converged=self.converged,
            err=self.err,
            log_domain=self.log_domain,
        )


def _solve(prob, gamma, *, tol, max_iter, init, log_domain, relaxation):
    """Run the iterations of ``prob`` and evaluate the solution."""
    lu, lv, n_iter, converged, err, prods = _run(
        prob,
        tol=tol,
        max_iter=max_iter,
        init=init,
        log_domain=log_domain,
        relaxation=relaxation,
    )
    m, n, f, g, value, lKtu = _finish(prob, lu, lv, gamma, prods)
    return _Solution(m, n, f, g, value, lKtu, n_iter, converged, err, prods.log_domain)


def _finish(prob, lu, lv, gamma, prods):
    """Marginals and objective from log-scalings (float64, finite).

    ``prods`` are the products of the last iterations (accurate there).
    """
    kernel, xp = prob.kernel, prob.xp
    eps = kernel.epsilon
    with np.errstate(all="ignore"):
        lKv, ok_u = prods(lv, False, prob.mask_u)
        lKtu, ok_v = prods(lu, True, prob.mask_v)
        if not (ok_u and ok_v):  # pragma: no cover - the last step passed
            exact = _LogProducts(kernel, exact=True)
            lKv, _ = exact(lv, False, prob.mask_u)
            lKtu, _ = exact(lu, True, prob.mask_v)
        m = xp.where(prob.mask_u, xp.exp(lu + lKv), 0.0)
        n = xp.where(prob.mask_v, xp.exp(lv + lKtu), 0.0)
        f = xp.where(prob.mask_u, eps * lu, 0.0)
        g = xp.where(prob.mask_v, eps * lv, 0.0)
        A = prob.A.astype(np.float64)
        value = (f * m).sum(0) + (g * n).sum(0) - eps * m.sum(0)
        value = value + eps * kernel.total() + _marginal_penalty(gamma, m, A, xp)
    return m, n, f, g, value, lKtu


def _marginal_penalty(gamma, x, y, xp):
    """``gamma KL(x | y)``; zero for balanced transport (``gamma = inf``)."""
    if gamma == np.inf:
        return 0.0
    return gamma * _kl(x, y, xp)


def _kl(x, y, xp):
    """Generalised KL(x | y) per column (0 log 0 = 0)."""
    with np.errstate(all="ignore"):
        t = xp.where(x > 0, x * xp.log(x / y), 0.0)
    return (t - x + y).sum(axis=0)


def _potentials_out(f, mask, dtype, xp):
    floor = np.finfo(dtype).min
    return xp.where(mask, f, floor).astype(dtype)


def _psi(epsilon, gamma):
    if gamma == np.inf:  # balanced transport
        return 1.0
    return gamma / (gamma + epsilon)


def _default_relaxation(psi):
    if psi == 1.0:
        # balanced transport: the rate of plain Sinkhorn depends on the
        # kernel, not on psi; BALANCED_RELAXATION is a safe fixed choice
        return _BALANCED_RELAXATION
    # over-relaxation tuned to a contraction rate psi^2 (Thibault et al. 2017)
    return 2.0 / (1.0 + np.sqrt(1.0 - psi**2))


def _check_gamma(gamma, balanced):
    """``gamma > 0``; ``np.inf`` (balanced transport) only where ``balanced``."""
    if balanced and isinstance(gamma, (int, float)) and gamma == np.inf:
        return np.inf
    return check_positive(gamma, "gamma")


def _check_common(gamma, tol, max_iter, log_domain, relaxation, balanced=False):
    """Check the solvers' parameters (epsilon is the kernel's, see make_kernel)."""
    gamma = _check_gamma(gamma, balanced)
    tol = check_positive(tol, "tol")
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}")
    if log_domain not in ("auto", True, False):
        raise ValueError(
            f"log_domain must be 'auto', True or False, got {log_domain!r}"
        )
    if relaxation is not None:
        relaxation = float(relaxation)
        if not 1.0 <= relaxation < 2.0:
            raise ValueError(f"relaxation must be in [1, 2), got {relaxation}")
    return gamma, tol, int(max_iter)


def _rates(kernel, gamma, relaxation):
    """``psi`` and the over-relaxation (default: tuned to ``psi``)."""
    psi = _psi(kernel.epsilon, gamma)
    if relaxation is None:
        relaxation = _default_relaxation(psi)
    return psi, float(relaxation)


def _solver_kernel(M, epsilon, dtype, backend, *masses):
    """Return the kernel of a solver's ground metric (sparse: positive masses).

    With exact zeros, the log-scalings of a column far from its support grow
    with the distance to it (about ``distance / epsilon``), so the
    stabilized truncation of :class:`SparseKernel` keeps re-absorbing them
    and falls back to whole rows: the dense kernel is faster there. Where
    every column has mass at every point (MWE's mass floor), the truncation
    is tight.
    """
    if isinstance(M, KernelOperator):
        return make_kernel(M, epsilon)
    # backend=None: the namespace of the masses or of M (cupy if one is)
    xp = get_namespace(M, *masses, backend=backend)
    positive = all(bool((asarray(m, xp) > 0).all()) for m in masses)
    kind = "auto" if positive else "dense"
    return make_kernel(M, epsilon, dtype=dtype, backend=backend_name(xp), kind=kind)


def _check_balanced(a, b, blocks, xp):
    """Balanced transport needs the same mass in every block and column."""
    for idx in blocks:
        ma, mb = a[idx].sum(axis=0), b[idx].sum(axis=0)
        if bool((xp.abs(ma - mb) > _BALANCED_RTOL * xp.maximum(ma, mb)).any()):
            raise ValueError(
                "gamma=inf (balanced transport) needs a and b to have the same "
                f"total mass in every block and column (relative {_BALANCED_RTOL:g})"
            )


# --------------------------------------------------------------------------
# public functions


def unbalanced_sinkhorn(
    a,
    b,
    M,
    *,
    epsilon=None,
    gamma,
    tol=1e-6,
    max_iter=10_000,
    init=None,
    log_domain="auto",
    relaxation=None,
    dtype=None,
    backend=None,
):
    """Unbalanced entropic Wasserstein distance W_u (Eq. 9 of Janati 2020).

    Parameters
    ----------
    a : array, shape (p,) or (p, n_columns)
        Source masses (non-negative), e.g. source amplitudes in A*m.
    b : array, shape (p,) or (p, n_columns)
        Target masses (non-negative). A 1-D ``a`` or ``b`` is broadcast
        against the columns of the other.
    M : array, shape (p, p) | list of array | KernelOperator
        The ground metric (see :func:`make_kernel`), e.g. in mm.
    epsilon : float | None
        Entropic regularisation (> 0), in the unit of ``M``. ``None``: that
        of ``M``, a :class:`KernelOperator` (which carries its epsilon; a
        value given with one must equal it).
    gamma : float
        Marginal relaxation (> 0), in the unit of ``M``. ``np.inf``:
        balanced transport (``P 1 = a`` and ``P^T 1 = b``; ``a`` and ``b``
        must then have the same mass in every block of the kernel).
    tol : float
        Stopping tolerance on the relative change of the left marginal
        (see Notes).
    max_iter : int
        Maximum number of iterations.
    init : None | SinkhornState | SinkhornResult
        Potentials to start from (warm start).
    log_domain : "auto" | bool
        ``"auto"``: kernel-domain iterations, switched to the log domain on
        under/overflow. ``True``: log domain from the start. ``False``: never
        (a ``FloatingPointError`` is raised on under/overflow).
    relaxation : float | None
        Over-relaxation factor in [1, 2) (``1``: plain Sinkhorn; ``None``:
        ``2 / (1 + sqrt(1 - psi^2))``, reduced when the error stalls).
    dtype : None | float64 | float32
        Dtype of the kernel-domain products (``None``: that of ``a``); see
        :func:`unbalanced_barycenter`.
    backend : None | "numpy" | "cupy"
        Array namespace (``None``: from the inputs).

    Returns
    -------
    result : SinkhornResult
        ``value`` (float, or (n_columns,)), ``left_marginal`` ``P 1``,
        ``right_marginal`` ``P^T 1`` and ``state`` (potentials).

    Notes
    -----
    The iteration stops when ``max_i m_i |log u'_i - log u_i| / max_i m_i``
    is below ``tol`` for every column, where ``m = u * K v`` is the current
    left marginal and ``u'`` the next ``u``-update: to first order, the
    relative change of the left marginal, i.e. the violation of the
    optimality condition in ``u`` (the one in ``v`` holds exactly after
    each iteration, up to over-relaxation).
    """
    gamma, tol, max_iter = _check_common(
        gamma, tol, max_iter, log_domain, relaxation, balanced=True
    )
    if dtype is None and not isinstance(M, KernelOperator):
        dtype = np.float32 if getattr(a, "dtype", None) == np.float32 else np.float64
    kernel = _solver_kernel(M, epsilon, dtype, backend, a, b)
    psi, relaxation = _rates(kernel, gamma, relaxation)
    xp = kernel.xp
    a = _check_masses(a, "a", xp, np.float64)
    b = _check_masses(b, "b", xp, np.float64)
    squeeze = a.ndim == 1 and b.ndim == 1
    a2 = a[:, None] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a2.shape[0] != kernel.n_points or b2.shape[0] != kernel.n_points:
        raise ValueError(
            f"a and b must have {kernel.n_points} rows (the ground metric's size),"
            f" got shapes {a.shape} and {b.shape}"
        )
    if a2.shape[1] != b2.shape[1]:
        if a2.shape[1] == 1:
            a2 = xp.repeat(a2, b2.shape[1], axis=1)
        elif b2.shape[1] == 1:
            b2 = xp.repeat(b2, a2.shape[1], axis=1)
        else:
            raise ValueError(
                f"a and b have different numbers of columns: {a.shape} and {b.shape}"
            )
    if gamma == np.inf:
        _check_balanced(a2, b2, kernel.blocks, xp)
    prob = _Problem(kernel, a2, b2, psi, None, a2.shape[1])
    sol = _solve(
        prob,
        gamma,
        tol=tol,
        max_iter=max_iter,
        init=_init_potentials(init, a2.shape, xp, kernel.epsilon),
        log_domain=log_domain,
        relaxation=relaxation,
    )
    value = sol.value + _marginal_penalty(gamma, sol.n, b2.astype(np.float64), xp)
    out_dtype = kernel.dtype
    state = sol.state(prob, out_dtype, a2.shape)
    m, n = sol.m.astype(out_dtype), sol.n.astype(out_dtype)
    if squeeze:
        return SinkhornResult(float(value[0]), m[:, 0], n[:, 0], state)
    return SinkhornResult(value, m, n, state)


def signed_wasserstein(a, b, M, *, epsilon=None, gamma, **kwargs):
    """Signed unbalanced distance W~ (Eq. 10 of Janati 2020).

    ``W~(a, b) = W_u(a+, b+) + W_u(a-, b-)``, both parts solved in one
    batched call.

    Parameters
    ----------
    a, b : array, shape (p,)
        Signed vectors (e.g. source amplitudes in A*m).
    M : array, shape (p, p) | list of array | KernelOperator
        The ground metric (see :func:`make_kernel`).
    epsilon : float | None
        Entropic regularisation (> 0), in the unit of ``M``. ``None``: that
        of ``M``, a :class:`KernelOperator` (which carries its epsilon; a
        value given with one must equal it).
    gamma : float
        Marginal relaxation (> 0), in the unit of ``M``.
    **kwargs
        Passed to :func:`unbalanced_sinkhorn` (``tol``, ``max_iter``...).

    Returns
    -------
    result : SinkhornResult
        ``value`` is ``W~`` (a float); ``left_marginal`` and
        ``right_marginal`` have shape (p, 2): positive then negative part.
    """
    xp = get_namespace(a, b, backend=kwargs.get("backend"))
    a, b = xp.asarray(a), xp.asarray(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"a and b must be 1-D, got shapes {a.shape} and {b.shape}")
    A = _stack_signs(a, xp)
    B = _stack_signs(b, xp)
    res = unbalanced_sinkhorn(A, B, M, epsilon=epsilon, gamma=gamma, **kwargs)
    res.value = float(res.value.sum())
    return res


def _stack_signs(x, xp):
    return xp.stack([xp.maximum(x, 0), xp.maximum(-x, 0)], axis=1)


def unbalanced_barycenter(
    A,
    M,
    *,
    epsilon=None,
    gamma,
    weights=None,
    tol=1e-6,
    max_iter=10_000,
    init=None,
    log_domain="auto",
    relaxation=None,
    dtype=None,
    backend=None,
):
    """Unbalanced entropic Wasserstein barycenter(s) of the columns of ``A``.

    Minimises ``sum_s w_s W_u(A[:, s], q)`` over ``q`` by generalised
    Sinkhorn (Chizat et al. 2018)::

        u_s <- (a_s / K v_s)^psi
        q   <- (sum_s w_s (K^T u_s)^(1 - psi))^(1 / (1 - psi))
        v_s <- (q / K^T u_s)^psi

    Parameters
    ----------
    A : array, shape (p, S) or (p, S, n_problems)
        Non-negative inputs (e.g. the positive parts of the S subjects'
        source estimates, in A*m). A third axis batches independent
        barycenter problems on the same kernel (e.g. the positive and the
        negative parts: ``n_problems=2``), solved together.
    M : array, shape (p, p) | list of array | KernelOperator
        The ground metric (see :func:`make_kernel`), e.g. geodesic distances
        in mm with ``np.inf`` between hemispheres.
    epsilon : float | None
        Entropic regularisation (> 0), in the unit of ``M``. ``None``: that
        of ``M``, a :class:`KernelOperator` (which carries its epsilon; a
        value given with one must equal it).
    gamma : float
        Marginal relaxation (> 0), in the unit of ``M``.
    weights : None | array, shape (S,)
        Non-negative weights summing to 1 (``None``: ``1 / S``).
    tol : float
        Stopping tolerance (see Notes).
    max_iter : int
        Maximum number of iterations.
    init : None | BarycenterResult | SinkhornState
        Warm start from a previous solution of a problem of the same shape.
    log_domain : "auto" | bool
        See :func:`unbalanced_sinkhorn`.
    relaxation : float | None
        Over-relaxation factor in [1, 2); ``None`` (default):
        ``2 / (1 + sqrt(1 - psi^2))``, moved towards 1 when the error
        increases three iterations in a row or cycles.
    dtype : None | float64 | float32
        Dtype of the kernel-domain products (``None``: that of ``A``); the
        log-scalings, the updates and the log domain are always float64.
        float32 products (half the memory traffic of float64) round each
        product to about 6e-8 relative: this moves the solution by a few
        1e-7 relative and puts a floor of about 2e-7 under the stopping
        criterion. When the criterion stops decreasing above ``tol`` (it has
        not halved in 6 iterations), the products switch to float64, so that
        ``tol`` means the same in both. Outputs have this dtype.
    backend : None | "numpy" | "cupy"
        Array namespace (``None``: from the inputs).

    Returns
    -------
    result : BarycenterResult
        ``barycenter``, ``marginals`` (left marginals ``m_s``), ``value`` and
        ``state``.

    Notes
    -----
    The stopping criterion is the larger of the relative change of the
    barycenter between two iterations (``max |dq| / max q`` per problem) and
    the violation of the optimality condition in ``u``
    (``max_i m_i |log u'_i - log u_i| / max_i m_i`` per column, ``m_s`` the
    left marginals, ``u'`` the next update). The optimality condition of the
    barycenter itself
    (``q = sum_s w_s P_s^T 1``) holds exactly after every iteration.
    """
    gamma, tol, max_iter = _check_common(gamma, tol, max_iter, log_domain, relaxation)
    if dtype is None and not isinstance(M, KernelOperator):
        dtype = getattr(A, "dtype", None)
        dtype = np.float32 if dtype == np.float32 else np.float64
    kernel = _solver_kernel(M, epsilon, dtype, backend, A)
    psi, relaxation = _rates(kernel, gamma, relaxation)
    xp = kernel.xp
    A = _check_masses(A, "A", xp, np.float64, ndim=(2, 3))
    in_shape = A.shape
    p, S = A.shape[:2]
    n_problems = 1 if A.ndim == 2 else A.shape[2]
    if p != kernel.n_points:
        raise ValueError(
            f"A must have {kernel.n_points} rows (the ground "
            f"metric's size), got shape {A.shape}"
        )
    if weights is None:
        weights = np.full(S, 1.0 / S)
    weights = np.asarray(to_numpy(weights), dtype=np.float64)
    if weights.shape != (S,):
        raise ValueError(f"weights must have shape ({S},), got {weights.shape}")
    if (weights < 0).any() or not np.isclose(weights.sum(), 1.0, rtol=1e-9):
        raise ValueError(
            f"weights must be non-negative and sum to 1, got sum={weights.sum()}"
        )
    A2 = A.reshape(p, S * n_problems)
    prob = _Problem(kernel, A2, None, psi, xp.asarray(weights), n_problems)
    sol = _solve(
        prob,
        gamma,
        tol=tol,
        max_iter=max_iter,
        init=_init_potentials(init, A2.shape, xp, kernel.epsilon),
        log_domain=log_domain,
        relaxation=relaxation,
    )
    with np.errstate(all="ignore"):
        lq = prob.log_barycenter(xp.where(prob.mask_v, sol.lKtu, -np.inf))
        q = xp.exp(lq)  # consistent with the returned potentials
    value = sol.value + gamma * _kl(sol.n, prob.expand(q), xp)
    value = xp.tensordot(
        value.reshape(S, n_problems), xp.asarray(weights), axes=([0], [0])
    )
    out_dtype = kernel.dtype
    state = sol.state(prob, out_dtype, in_shape)
    m = sol.m.astype(out_dtype).reshape(in_shape)
    q = q.astype(out_dtype)
    if A.ndim == 2:
        return BarycenterResult(q[:, 0], m, float(value[0]), state)
    return BarycenterResult(q, m, value, state)
