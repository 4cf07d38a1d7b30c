"""Gibbs kernel of a ground metric extended by virtual points.

Kantorovich's distance between non-negative measures of different masses
(Gramfort, Peyré and Cuturi, IPMI 2015, Definition 1) is a balanced
transport problem on the points plus a virtual point ``omega`` at distance
``delta_i`` of every point ``i``, which buffers the mass difference::

    M_hat = [[M,       delta],
             [delta^T, 0    ]]

:class:`VirtualPointKernel` applies ``K_hat = exp(-M_hat / epsilon)`` from
the kernel ``K`` of ``M`` and the column ``k = exp(-delta / epsilon)``,
without forming ``M_hat``. Each block of ``K`` (e.g. each hemisphere) gets
its own virtual point, so that mass is never moved between blocks: it is
destroyed in one block and created in another, at cost
``delta_i + delta_j``.
"""

import numpy as np

from ._backend import asarray, to_numpy
from .kernels import KernelOperator, _gibbs, make_kernel

__all__ = ["VirtualPointKernel"]


class VirtualPointKernel(KernelOperator):
    """Gibbs kernel of a ground metric extended by one virtual point per block.

    The ``p`` real points keep their order; the virtual point of block ``h``
    of the ground metric is point ``p + h``. It is at distance ``delta[i]``
    of every point ``i`` of its block, at distance 0 of itself, and
    unreachable from other blocks.

    Parameters
    ----------
    ground_metric : array, shape (p, p) | list of array | GroundMetric | KernelOperator
        The ground metric between the ``p`` real points (see
        :func:`~mne_wasserstein.ot.make_kernel`), e.g. geodesic distances in
        mm with ``np.inf`` between hemispheres (two blocks).
    delta : float | array, shape (p,)
        The distances (> 0, finite) between each point and the virtual
        point of its block, in the unit of the ground metric.
    epsilon : float
        The entropic regularisation (> 0), in the unit of the ground metric.
    dtype : None | float64 | float32
        The dtype of the kernel-domain products (see
        :func:`~mne_wasserstein.ot.make_kernel`).
    backend : None | "numpy" | "cupy"
        The array namespace (see :func:`~mne_wasserstein.ot.make_kernel`).

    Attributes
    ----------
    base : KernelOperator
        The kernel of the ground metric between the real points.
    delta : ndarray, shape (p,)
        The distances to the virtual points (numpy, float64).
    n_points : int
        ``p + n_blocks``: the real points, then the virtual ones.
    epsilon : float
        The entropic regularisation.
    dtype : numpy.dtype
        The dtype of the kernel-domain products.
    xp : module
        The array namespace.
    blocks : list of array of int
        Block ``h``: the real points of block ``h`` of ``base`` and ``p + h``.

    Notes
    -----
    For ``V`` of shape (p + n_blocks, n_columns), ``K_hat @ V`` is
    ``K @ V[:p] + k * V[p + h(i)]`` on the real rows (``h(i)`` the block of
    point ``i``) and ``sum_{i in h} k_i V[i] + V[p + h]`` on the virtual
    rows; the log-domain products combine those of ``K`` with stable
    log-sum-exps of ``-delta / epsilon``. With ``delta`` far above
    ``epsilon`` (e.g. a high quantile of the metric and
    ``epsilon = median / 100``), ``k`` underflows in the kernel domain
    (always in float32): the solvers then switch to the log domain, which
    loses nothing.
    """

    def __init__(self, ground_metric, delta, epsilon, *, dtype=None, backend=None):
        # dense: the virtual point's column reaches every point, and the
        # stabilized truncation of SparseKernel is only for its own engine
        base = make_kernel(
            ground_metric, epsilon, dtype=dtype, backend=backend, kind="dense"
        )
        p = base.n_points
        delta = np.asarray(to_numpy(delta), dtype=np.float64)
        if delta.ndim == 0:
            delta = np.full(p, float(delta))
        if delta.shape != (p,):
            raise ValueError(
                f"delta must be a number or have shape ({p},), got {delta.shape}"
            )
        if not np.isfinite(delta).all() or (delta <= 0).any():
            raise ValueError("delta must be positive and finite")
        xp = base.xp
        self.base = base
        self.delta = delta
        self.epsilon = base.epsilon
        self.dtype = base.dtype
        self.xp = xp
        n_blocks = len(base.blocks)
        self.n_points = p + n_blocks
        owner = np.empty(p, dtype=np.int64)
        blocks = []
        for h, idx in enumerate(base.blocks):
            rows = np.arange(p)[idx] if isinstance(idx, slice) else to_numpy(idx)
            owner[rows] = h
            blocks.append(asarray(np.append(rows, p + h), xp))
        self.blocks = blocks
        self._owner = asarray(owner + p, xp)  # row of the virtual point of i
        self._real = list(base.blocks)
        self._log_k = asarray(-delta / self.epsilon, xp, np.float64)[:, None]
        self._k = _gibbs(delta, self.epsilon, self.dtype, xp)[:, None]

    def __repr__(self):
        return (
            f"<VirtualPointKernel | {self.base.n_points} points + "
            f"{len(self.blocks)} virtual, median delta {np.median(self.delta):g}, "
            f"epsilon={self.epsilon:g}, {self.dtype}, {self.xp.__name__}>"
        )

    def _apply(self, V, transpose):
        xp = self.xp
        p = self.base.n_points
        top = V[:p]
        out = xp.empty(V.shape, dtype=self.dtype)
        out[:p] = self.base.rmatvec(top) if transpose else self.base.matvec(top)
        out[:p] += self._k * V[self._owner]
        kv = self._k * top
        for h, idx in enumerate(self._real):
            out[p + h] = kv[idx].sum(axis=0) + V[p + h]
        return out

    def matvec(self, V):
        """Return ``K_hat @ V`` for ``V`` of shape (n_points, n_columns)."""
        return self._apply(V, transpose=False)

    def rmatvec(self, U):
        """Return ``K_hat.T @ U`` for ``U`` of shape (n_points, n_columns)."""
        return self._apply(U, transpose=True)

    def _log_apply(self, log_V, transpose):
        xp = self.xp
        p = self.base.n_points
        top = log_V[:p]
        base = self.base
        out = xp.empty(log_V.shape, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            lbase = base.log_rmatvec(top) if transpose else base.log_matvec(top)
            out[:p] = xp.logaddexp(lbase, self._log_k + log_V[self._owner])
            t = self._log_k + top
            for h, idx in enumerate(self._real):
                th = t[idx]
                mx = th.max(axis=0)
                mx = xp.where(xp.isfinite(mx), mx, 0.0)
                lse = mx + xp.log(xp.exp(th - mx).sum(axis=0))
                out[p + h] = xp.logaddexp(lse, log_V[p + h])
        return out

    def log_matvec(self, log_V):
        """Return ``log(K_hat @ exp(log_V))`` (float64), without under/overflow."""
        return self._log_apply(log_V, transpose=False)

    def log_rmatvec(self, log_U):
        """Return ``log(K_hat.T @ exp(log_U))`` (float64), without under/overflow."""
        return self._log_apply(log_U, transpose=True)

    def total(self):
        """Return the sum of the entries of ``K_hat``."""
        k = np.exp(-self.delta / self.epsilon)
        return self.base.total() + 2.0 * float(k.sum()) + len(self.blocks)

    def astype(self, dtype):
        """Return the same operator with kernel-domain products in ``dtype``."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        new = self._copy(self.base.astype(dtype))
        new.dtype = dtype
        new._k = _gibbs(self.delta, self.epsilon, dtype, self.xp)[:, None]
        return new

    def _copy(self, base):
        new = object.__new__(VirtualPointKernel)
        new.__dict__.update(self.__dict__)
        new.base = base
        return new

    def _smallest_entry(self):
        return min(
            self.base._smallest_entry(), float(np.exp(-self.delta.max() / self.epsilon))
        )

    def _restrict(self, rows, cols):
        # the kernel of the real points restricted, the virtual rows kept
        p = self.base.n_points
        base = self.base._restrict(rows[:p], cols[:p])
        return self if base is self.base else self._copy(base)
