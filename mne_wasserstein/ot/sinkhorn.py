"""Unbalanced entropic optimal transport: distance, signed extension, barycenter.

All solvers minimise the unbalanced entropic transport cost of Chizat et al.
(2018), Eq. 9 of Janati et al. (2020)::

    W_u(a, b) = min_P  eps KL(P | K) + gamma KL(P 1 | a) + gamma KL(P^T 1 | b)

with ``K = exp(-M / eps)``, by generalised Sinkhorn scaling iterations
(``psi = gamma / (gamma + eps)``)::

    u <- (a / K v)^psi,    v <- (b / K^T u)^psi.

The transport plan ``P = diag(u) K diag(v)`` is never formed. Iterations run
on scalings ``u, v`` (kernel domain, one matrix product per half-step) and
switch to the log domain (potentials, stabilised products in float64) as soon
as a scaling or a kernel product leaves the range where it is accurate.
"""

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from .._warnings import ConvergenceWarning
from ._backend import get_namespace, to_numpy
from .kernels import KernelOperator, _check_positive, make_kernel

__all__ = [
    "SinkhornState",
    "SinkhornResult",
    "BarycenterResult",
    "unbalanced_sinkhorn",
    "signed_wasserstein",
    "unbalanced_barycenter",
]

logger = logging.getLogger("mne_wasserstein")


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

# float32 kernel-domain iterations hand over to float64 below this criterion
_F32_SWITCH = 1e-4


def _tau(dtype):
    # kernel-domain values below tau (or above 1 / tau) trigger the switch to
    # the log domain: a sum of at most p terms each below the smallest normal
    # number then changes by less than p * tiny^(1/3) relative (1e-10 float32)
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
    f = xp.asarray(init.f, dtype=np.float64).reshape(shape[0], -1)
    g = xp.asarray(init.g, dtype=np.float64).reshape(shape[0], -1)
    if f.shape != shape or g.shape != shape:
        raise ValueError(
            f"init has potentials of shape {tuple(init.f.shape)}, incompatible "
            f"with this problem (shape {shape})"
        )
    with np.errstate(over="ignore"):  # floors of empty entries: -inf
        return f / eps, g / eps


# --------------------------------------------------------------------------
# the engine


def _lse(x, axis, xp):
    mx = x.max(axis=axis, keepdims=True)
    mx = xp.where(xp.isfinite(mx), mx, 0.0)
    return xp.squeeze(mx, axis=axis) + xp.log(xp.exp(x - mx).sum(axis=axis))


def _relative_change(new, old, xp):
    """max_i |new - old| / max_i new, per column, then max over columns."""
    diff = xp.abs(new - old).max(axis=0)
    scale = xp.abs(new).max(axis=0)
    ok = scale > 0
    return float(xp.where(ok, diff / xp.where(ok, scale, 1.0), 0.0).max())


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

    def barycenter(self, lKtu):
        """Log of the power mean of ``K^T u`` over subjects, (p, n_problems).

        Kernel domain: ``lKtu`` is finite where ``mask_v`` (checked by the
        caller) and ``-inf`` (or ignored) elsewhere.
        """
        xp, psi = self.xp, self.psi
        p = lKtu.shape[0]
        t = xp.where(self.mask_v, xp.exp((1.0 - psi) * lKtu), 0.0)
        t = t.reshape(p, -1, self.n_problems)
        mean = xp.tensordot(t, self.weights.astype(lKtu.dtype), axes=([1], [0]))
        return xp.log(mean) / (1.0 - psi)

    def log_barycenter(self, lKtu):
        xp, psi = self.xp, self.psi
        p = lKtu.shape[0]
        with np.errstate(divide="ignore"):
            lw = xp.log(self.weights)[None, :, None]
        t = lw + (1.0 - psi) * lKtu.reshape(p, -1, self.n_problems)
        return _lse(t, 1, xp) / (1.0 - psi)

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
    num = (m * xp.abs(delta)).max(axis=0)
    scale = m.max(axis=0)
    ok = scale > 0
    return float(xp.where(ok, num / xp.where(ok, scale, 1.0), 0.0).max())


def _run(prob, *, tol, max_iter, init, log_domain, relaxation):
    """Generalised Sinkhorn on log-scalings; returns (lu, lv, state fields).

    Kernel domain: ``u = exp(lu)`` and ``v = exp(lv)`` enter the products
    ``K v`` and ``K^T u`` in ``kernel.dtype``; the updates are done on the logs
    (one log and one exp per entry and half-step, fused over-relaxation).
    Log domain: the products are stabilised log-sum-exps in float64.
    """
    kernel, xp, psi = prob.kernel, prob.xp, prob.psi
    mask_u, mask_v, bary = prob.mask_u, prob.mask_v, prob.weights is not None
    dtype = kernel.dtype
    lu0, lv0 = init
    omega = float(relaxation)
    n_iter, err, converged = 0, np.inf, False
    errors = []

    use_log = log_domain is True
    if lv0 is None:
        lu0 = xp.where(mask_u, 0.0, -np.inf)
        lv0 = xp.where(mask_v, 0.0, -np.inf)
    else:
        lu0 = xp.where(mask_u, lu0, -np.inf)
        lv0 = xp.where(mask_v, lv0, -np.inf)
        big = np.log(1.0 / _tau(dtype))
        if log_domain == "auto" and bool((lv0 > big).any() | (lu0 > big).any()):
            use_log = True

    with np.errstate(all="ignore"):
        if not use_log:
            kern = kernel
            tau = _tau(dtype)
            big = np.log(1.0 / tau)
            lu, lv = lu0.astype(dtype), lv0.astype(dtype)
            u, v = xp.exp(lu), xp.exp(lv)
            logA = xp.log(prob.A.astype(dtype))
            ltarget = None if bary else xp.log(prob.target.astype(dtype))
            q = None
            while n_iter < max_iter:
                if dtype == np.float32 and err < _F32_SWITCH and tol < _F32_SWITCH:
                    # float32 rounding stalls the criterion around 1e-6..1e-5:
                    # finish in float64 (a few iterations)
                    dtype = np.dtype(np.float64)
                    tau = _tau(dtype)
                    big = np.log(1.0 / tau)
                    kern = kernel.astype(dtype)
                    lu, lv = lu.astype(dtype), lv.astype(dtype)
                    u, v = xp.exp(lu), xp.exp(lv)
                    logA = xp.log(prob.A.astype(dtype))
                    ltarget = None if bary else xp.log(prob.target.astype(dtype))
                    q = None if q is None else q.astype(dtype)
                Kv = kern.matvec(v)
                bad = bool((mask_u & ~(Kv >= tau)).any())
                lu_new = xp.where(mask_u, psi * (logA - xp.log(Kv)), -np.inf)
                delta = xp.where(mask_u, lu_new - lu, 0.0)
                err = _marginal_change(u * Kv, delta, xp)
                if omega != 1.0:
                    lu_new = xp.where(mask_u, lu + omega * delta, -np.inf)
                u_new = xp.exp(lu_new)
                Ktu = kern.rmatvec(u_new)
                bad |= bool((mask_v & ~(Ktu >= tau)).any())
                lKtu = xp.log(Ktu)
                if bary:
                    lq_new = prob.barycenter(lKtu)
                    bad |= not bool((lq_new <= big).all())
                    q_new = xp.exp(lq_new)
                    if q is not None:
                        err = max(err, _relative_change(q_new, q, xp))
                    ltgt = prob.expand(lq_new)
                else:
                    q_new, ltgt = None, ltarget
                lv_new = xp.where(mask_v, psi * (ltgt - lKtu), -np.inf)
                if omega != 1.0:
                    lv_new = _relax_log(lv, lv_new, omega, xp)
                bad |= bool((lu_new > big).any() | (lv_new > big).any())
                bad |= bool(xp.isnan(lu_new).any() | xp.isnan(lv_new).any())
                if bad:
                    if log_domain is False:
                        raise FloatingPointError(
                            "The kernel-domain Sinkhorn iterations under/overflowed "
                            f"at iteration {n_iter + 1} (epsilon too small for "
                            f"{dtype}); use log_domain='auto' or True"
                        )
                    logger.info(
                        "Sinkhorn: switching to the log domain at iteration %d",
                        n_iter + 1,
                    )
                    use_log = True
                    break
                lu, lv, u, v, q = lu_new, lv_new, u_new, xp.exp(lv_new), q_new
                n_iter += 1
                omega = _adapt(omega, errors, err)
                if err < tol:
                    converged = True
                    break
            lu0, lv0 = lu.astype(np.float64), lv.astype(np.float64)
            final_kernel = kern

        if use_log:
            final_kernel = None
            lu, lv, lq = lu0, lv0, None
            logA = xp.log(prob.A.astype(np.float64))
            ltarget = None if bary else xp.log(prob.target.astype(np.float64))
            while n_iter < max_iter and not converged:
                lKv = kernel.log_matvec(lv)
                lu_new = xp.where(mask_u & (lKv > -np.inf), psi * (logA - lKv), -np.inf)
                ok = (lu_new > -np.inf) & (lu > -np.inf)
                delta = xp.where(ok, lu_new - lu, 0.0)
                err = _marginal_change(xp.where(ok, xp.exp(lu + lKv), 0.0), delta, xp)
                if omega != 1.0:
                    lu_new = _relax_log(lu, lu_new, omega, xp)
                lKtu = kernel.log_rmatvec(lu_new)
                if bary:
                    lq_new = prob.log_barycenter(xp.where(mask_v, lKtu, -np.inf))
                    if lq is not None:
                        err = max(err, _relative_change(xp.exp(lq_new), xp.exp(lq), xp))
                    ltgt = prob.expand(lq_new)
                else:
                    lq_new, ltgt = None, ltarget
                # K^T u = 0 exactly (no kernel entry reaches an input's mass):
                # v is irrelevant there, -inf keeps the products finite
                lv_new = xp.where(
                    mask_v & (lKtu > -np.inf), psi * (ltgt - lKtu), -np.inf
                )
                if omega != 1.0:
                    lv_new = _relax_log(lv, lv_new, omega, xp)
                lu, lv, lq = lu_new, lv_new, lq_new
                n_iter += 1
                omega = _adapt(omega, errors, err)
                if err < tol:
                    converged = True
            lu0, lv0 = lu, lv
    if not converged:
        warnings.warn(
            f"Sinkhorn did not converge in {max_iter} iterations "
            f"(err={err:.2e}, tol={tol:.1e}); increase max_iter or tol.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return lu0, lv0, n_iter, converged, err, final_kernel


def _relax_log(lx, lx_new, omega, xp):
    ok = (lx > -np.inf) & (lx_new > -np.inf)
    return xp.where(ok, (1.0 - omega) * lx + omega * lx_new, lx_new)


def _adapt(omega, errors, err):
    """Reduce the over-relaxation when the error stops decreasing."""
    errors.append(err)
    if (
        omega > 1.0
        and len(errors) > 6
        and all(errors[-k] > errors[-k - 1] for k in range(1, 4))
    ):
        errors.clear()
        return 1.0 + 0.5 * (omega - 1.0)
    return omega


def _finish(prob, lu, lv, gamma, final_kernel):
    """Marginals and objective from log-scalings (float64, finite).

    ``final_kernel`` is the kernel of the last kernel-domain iterations (its
    products are accurate there), ``None`` after log-domain iterations.
    """
    kernel, xp = prob.kernel, prob.xp
    eps = kernel.epsilon
    with np.errstate(all="ignore"):
        if final_kernel is None:
            lKv = kernel.log_matvec(lv)
            lKtu = kernel.log_rmatvec(lu)
        else:
            dt = final_kernel.dtype
            lKv = xp.log(final_kernel.matvec(xp.exp(lv).astype(dt)))
            lKtu = xp.log(final_kernel.rmatvec(xp.exp(lu).astype(dt)))
            lKv, lKtu = lKv.astype(np.float64), lKtu.astype(np.float64)
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
    return _check_positive(gamma, "gamma")


def _check_common(
    epsilon, gamma, tol, max_iter, log_domain, relaxation, balanced=False
):
    epsilon = _check_positive(epsilon, "epsilon")
    gamma = _check_gamma(gamma, balanced)
    tol = _check_positive(tol, "tol")
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}")
    if log_domain not in ("auto", True, False):
        raise ValueError(
            f"log_domain must be 'auto', True or False, got {log_domain!r}"
        )
    psi = _psi(epsilon, gamma)
    if relaxation is None:
        relaxation = _default_relaxation(psi)
    relaxation = float(relaxation)
    if not 1.0 <= relaxation < 2.0:
        raise ValueError(f"relaxation must be in [1, 2), got {relaxation}")
    return epsilon, gamma, tol, int(max_iter), psi, relaxation


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
    epsilon,
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
    epsilon : float
        Entropic regularisation (> 0), in the unit of ``M``.
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
        Dtype of the kernel-domain iterations (``None``: that of ``a``).
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
    epsilon, gamma, tol, max_iter, psi, relaxation = _check_common(
        epsilon, gamma, tol, max_iter, log_domain, relaxation, balanced=True
    )
    if dtype is None and not isinstance(M, KernelOperator):
        dtype = np.float32 if getattr(a, "dtype", None) == np.float32 else np.float64
    kernel = make_kernel(M, epsilon, dtype=dtype, backend=backend)
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
    init = _init_potentials(init, a2.shape, xp, epsilon)
    lu, lv, n_iter, converged, err, final_kernel = _run(
        prob,
        tol=tol,
        max_iter=max_iter,
        init=init,
        log_domain=log_domain,
        relaxation=relaxation,
    )
    m, n, f, g, value, _ = _finish(prob, lu, lv, gamma, final_kernel)
    value = value + _marginal_penalty(gamma, n, b2.astype(np.float64), xp)
    out_dtype = kernel.dtype
    state = SinkhornState(
        f=_potentials_out(f, prob.mask_u, out_dtype, xp),
        g=_potentials_out(g, prob.mask_v, out_dtype, xp),
        n_iter=n_iter,
        converged=converged,
        err=err,
        log_domain=final_kernel is None,
    )
    m, n = m.astype(out_dtype), n.astype(out_dtype)
    if squeeze:
        return SinkhornResult(float(value[0]), m[:, 0], n[:, 0], state)
    return SinkhornResult(value, m, n, state)


def signed_wasserstein(a, b, M, *, epsilon, gamma, **kwargs):
    """Signed unbalanced distance W~ (Eq. 10 of Janati 2020).

    ``W~(a, b) = W_u(a+, b+) + W_u(a-, b-)``, both parts solved in one
    batched call.

    Parameters
    ----------
    a, b : array, shape (p,)
        Signed vectors (e.g. source amplitudes in A*m).
    M : array, shape (p, p) | list of array | KernelOperator
        The ground metric (see :func:`make_kernel`).
    epsilon : float
        Entropic regularisation (> 0), in the unit of ``M``.
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
    epsilon,
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
    epsilon : float
        Entropic regularisation (> 0), in the unit of ``M``.
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
        ``2 / (1 + sqrt(1 - psi^2))``, halved towards 1 when the error
        increases three iterations in a row.
    dtype : None | float64 | float32
        Dtype of the kernel-domain iterations (``None``: that of ``A``).
        float32 iterations hand over to float64 once the stopping criterion
        is below 1e-4 (float32 rounding stalls it around 1e-6 to 1e-5), so
        that ``tol`` means the same in both; the log domain always runs in
        float64. Outputs have this dtype.
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
    epsilon, gamma, tol, max_iter, psi, relaxation = _check_common(
        epsilon, gamma, tol, max_iter, log_domain, relaxation
    )
    if dtype is None and not isinstance(M, KernelOperator):
        dtype = getattr(A, "dtype", None)
        dtype = np.float32 if dtype == np.float32 else np.float64
    kernel = make_kernel(M, epsilon, dtype=dtype, backend=backend)
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
    init = _init_potentials(init, A2.shape, xp, epsilon)
    lu, lv, n_iter, converged, err, final_kernel = _run(
        prob,
        tol=tol,
        max_iter=max_iter,
        init=init,
        log_domain=log_domain,
        relaxation=relaxation,
    )
    m, n, f, g, value, lKtu = _finish(prob, lu, lv, gamma, final_kernel)
    with np.errstate(all="ignore"):
        lq = prob.log_barycenter(xp.where(prob.mask_v, lKtu, -np.inf))
        q = xp.exp(lq)  # consistent with the returned potentials
    qe = prob.expand(q)
    value = value + gamma * _kl(n, qe, xp)
    value = xp.tensordot(
        value.reshape(S, n_problems), xp.asarray(weights), axes=([0], [0])
    )
    out_dtype = kernel.dtype
    state = SinkhornState(
        f=_potentials_out(f, prob.mask_u, out_dtype, xp).reshape(in_shape),
        g=_potentials_out(g, prob.mask_v, out_dtype, xp).reshape(in_shape),
        n_iter=n_iter,
        converged=converged,
        err=err,
        log_domain=final_kernel is None,
    )
    m = m.astype(out_dtype).reshape(in_shape)
    q = q.astype(out_dtype)
    if A.ndim == 2:
        return BarycenterResult(q[:, 0], m, float(value[0]), state)
    return BarycenterResult(q, m, value, state)
