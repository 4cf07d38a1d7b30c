"""Gibbs kernel operators ``K = exp(-M / epsilon)``.

A kernel operator applies ``K`` and ``K^T`` to a batch of columns, in the
kernel domain (``K @ V``) and in the log domain
(``log(K @ exp(log V))``, computed without under/overflow). The solvers of
:mod:`mne_wasserstein.ot.sinkhorn` only use this interface, so another
operator (e.g. a heat kernel built from a mesh Laplacian) is one new
subclass of :class:`KernelOperator`.
"""

from abc import ABC, abstractmethod
from functools import cached_property

import numpy as np

from .._validation import check_positive
from ._backend import asarray, check_dtype, csr_matrix, get_namespace, to_numpy
from ._metric import GroundMetric

__all__ = ["KernelOperator", "BlockDiagonalKernel", "SparseKernel", "make_kernel"]

# Rows of a shifted kernel product below this value are recomputed with an
# exact log-sum-exp: above it, the terms lost to underflow (each < 1e-307 and
# at most p of them) change the row by less than 1e-100 relative.
_LOG_REPAIR = 1e-200
_ROW_CHUNK = 512
# exp(x) is slow below about -708 (subnormal results): clamp there
_LOG_TINY = -700.0
# The truncation of SparseKernel: an entry is left out when it carries less
# than _TRUNCATION[dtype] * (mass scale) / p of transport in every column,
# while the log-scalings stay within _ABSORB of the potentials absorbed in the
# kernel (beyond, the kernel is stabilized again), so that every row and
# column of every transport plan loses less than _TRUNCATION[dtype] times the
# mass scale: by dtype of the outputs, 1e-12 in float64 (six orders below the
# solvers' default tolerance) and 1e-9 in float32 (below the rounding of the
# outputs' largest value, 6e-8 of it)
_TRUNCATION = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-9}
_ABSORB = 5.0
# make_kernel(kind="auto") is sparse when the truncation at zero potentials
# keeps less than this fraction of the entries. The stabilized truncation
# keeps more (transport plans of a linear cost spread along the transport
# directions), and a float64 CSR product costs several times a float32
# dense one per entry; but where the dense kernel underflows, its solver
# iterates in the log domain (the crossover: benchmarks/README.rst)
_SPARSE_FRACTION = 0.2
# ... and, on numpy, when no block has more than this many points: the
# compiled loop then saves the per-iteration Python work of the dense
# solver, which dominates the cost of small problems (benchmarks/README.rst)
_SMALL_BLOCK = 256


def _gibbs(M, epsilon, dtype, xp):
    """``exp(-M / epsilon)`` in ``dtype``, subnormal entries flushed to 0.

    Products with subnormal numbers are an order of magnitude slower on x86
    (benchmarks/README.rst). The entries lost are
    below the smallest normal number ``tiny``, as are the terms the solvers
    already flush (see ``sinkhorn._LogProducts``).
    """
    K = np.exp(-np.asarray(M, dtype=np.float64) / epsilon).astype(dtype)
    K[K < np.finfo(dtype).tiny] = 0
    return asarray(K, xp)


class KernelOperator(ABC):
    """Interface of a Gibbs kernel ``K = exp(-M / epsilon)`` of shape (p, p).

    Subclasses implement :meth:`matvec`, :meth:`rmatvec`, :meth:`log_matvec`,
    :meth:`log_rmatvec` and :meth:`total`, and set the attributes below.

    Attributes
    ----------
    n_points : int
        The number of points ``p`` (source-space vertices).
    epsilon : float
        The entropic regularisation, in the unit of the ground metric.
    dtype : numpy.dtype
        The dtype of the kernel-domain products (float64 or float32).
    xp : module
        The array namespace (numpy or cupy).
    blocks : list of slice | array of int
        Groups of points between which there is no transport (``K = 0``
        between two groups), e.g. the two hemispheres. One group if none.
    """

    n_points: int
    epsilon: float
    dtype: np.dtype
    xp: object
    blocks: list

    @abstractmethod
    def matvec(self, V):
        """Return ``K @ V`` for ``V`` of shape (p, n_columns), in ``self.dtype``."""

    @abstractmethod
    def rmatvec(self, U):
        """Return ``K.T @ U`` for ``U`` of shape (p, n_columns)."""

    @abstractmethod
    def log_matvec(self, log_V):
        """Return ``log(K @ exp(log_V))`` in float64, stable for any ``log_V``."""

    @abstractmethod
    def log_rmatvec(self, log_U):
        """Return ``log(K.T @ exp(log_U))`` in float64, stable for any ``log_U``."""

    @abstractmethod
    def total(self):
        """Return the sum of the entries of ``K`` (a float)."""

    @abstractmethod
    def astype(self, dtype):
        """Return the same operator with kernel-domain products in ``dtype``."""

    def _log_entries(self, log_V, rows, cols, transpose):
        """Return entries ``(rows[k], cols[k])`` of ``log(K @ exp(log_V))``.

        In float64, ``K.T`` if ``transpose``. The default computes the whole
        log-domain products of the columns involved; subclasses compute the
        rows only.
        """
        xp = self.xp
        ucols, inv = np.unique(to_numpy(cols), return_inverse=True)
        sub = log_V[:, asarray(ucols, xp)]
        full = self.log_rmatvec(sub) if transpose else self.log_matvec(sub)
        return full[rows, asarray(inv, xp)]

    def _restrict(self, rows, cols):
        """Return the operator for products that only involve ``rows``, ``cols``.

        ``rows`` and ``cols`` are boolean numpy arrays of length p. The
        returned operator's ``matvec(V)`` equals ``K @ V`` on ``rows`` for
        any ``V`` that is zero outside ``cols``, and its ``rmatvec(U)`` equals
        ``K.T @ U`` on ``cols`` for any ``U`` that is zero outside ``rows``
        (other rows of the results are unspecified). The kernel entries
        outside ``rows x cols`` only ever meet zeros there, so skipping them
        is exact. The default does not skip anything.
        """
        return self

    def _smallest_entry(self):
        """Return a lower bound of the positive entries of ``K`` (float64).

        The kernel-domain products lose the entries below the smallest
        normal number of their dtype; the solvers bound what that can change
        with this value. ``0.0`` (the default) means unknown.
        """
        return 0.0


def _find_blocks(finite):
    """Find the groups of points connected by finite ground-metric entries.

    Contiguous index ranges are returned as slices (views, no copy), other
    groups as sorted integer arrays.
    """
    p = finite.shape[0]
    any_row = finite.any(axis=1)
    if not any_row.all():
        bad = np.flatnonzero(~any_row)[:5]
        raise ValueError(
            f"Rows {bad.tolist()} of the ground metric have no finite entry: "
            "these points cannot receive or send any mass"
        )
    # contiguous blocks: grow [start, stop) until no row reaches beyond it
    last = p - 1 - np.argmax(finite[:, ::-1], axis=1)
    first = np.argmax(finite, axis=1)
    blocks, start = [], 0
    while start < p:
        stop = last[start] + 1
        while True:
            new_stop = max(stop, int(last[start:stop].max()) + 1)
            if new_stop == stop:
                break
            stop = new_stop
        if first[start:stop].min() < start:
            blocks = None
            break
        blocks.append(slice(start, stop))
        start = stop
    if blocks is not None:
        n_inside = sum(int(finite[b, b].sum()) for b in blocks)
        if n_inside == int(finite.sum()):
            return blocks
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import connected_components

    n_comp, labels = connected_components(csr_array(finite), directed=False)
    return [np.flatnonzero(labels == k) for k in range(n_comp)]


class BlockDiagonalKernel(KernelOperator):
    """Dense Gibbs kernel stored and applied block by block.

    Parameters
    ----------
    blocks : list of slice | array of int
        The groups of points (see :class:`KernelOperator`); together they
        partition ``range(n_points)``.
    ground_metrics : list of array, shape (p_k, p_k)
        The ground metric inside each block, non-negative, in any unit
        (``np.inf`` allowed: no transport between those two points).
    epsilon : float
        The entropic regularisation, in the unit of the ground metric.
    dtype : numpy.dtype
        The dtype of the kernel-domain products (float64 or float32).
    xp : module
        The array namespace (numpy or cupy).

    Notes
    -----
    Entries of ``K`` that underflow (``M / epsilon`` above about 745 in
    float64, 87 in float32) are zeros in the kernel domain; the log-domain
    products use ``M`` itself and lose nothing.

    The solvers skip the entries between points where no column has mass
    (rows) or no column can receive mass (columns): those entries only meet
    zero scalings, so this is exact (see ``_restrict``). Entries are not
    skipped by value: the scalings compensate the kernel (``P = u K v``), so
    a tiny ``K_ij`` can carry transported mass: dropping entries by a fixed
    threshold is safe only for the stabilized kernel of
    :class:`~mne_wasserstein.ot.SparseKernel`, whose entries include the
    potentials.
    """

    def __init__(self, blocks, ground_metrics, epsilon, dtype, xp):
        self.blocks = [b if isinstance(b, slice) else asarray(b, xp) for b in blocks]
        self.epsilon = float(epsilon)
        self.dtype = np.dtype(dtype)
        self.xp = xp
        self.n_points = sum(_block_size(b) for b in self.blocks)
        self._M = [np.asarray(m, dtype=np.float64) for m in ground_metrics]
        self._symmetric = [bool(np.array_equal(m, m.T)) for m in self._M]
        self._K = [_gibbs(m, self.epsilon, self.dtype, xp) for m in self._M]
        finite = [m[np.isfinite(m)] for m in self._M]
        self._max_exponent = max(
            (float(f.max()) / self.epsilon for f in finite if f.size), default=0.0
        )
        self._K64 = None  # float64 kernels and -M/eps for the log domain (lazy)
        self._logK = None
        self._total = None
        self._restricted = None  # the last _restrict result, with its key
        self._owner = None  # block and local index of each point (lazy)

    def __repr__(self):
        sizes = [_block_size(b) for b in self.blocks]
        return (
            f"<BlockDiagonalKernel | {self.n_points} points, blocks {sizes}, "
            f"epsilon={self.epsilon:g}, {self.dtype}, {self.xp.__name__}>"
        )

    def _apply(self, V, transpose):
        xp = self.xp
        out = xp.empty(V.shape, dtype=self.dtype)
        for idx, K, sym in zip(self.blocks, self._K, self._symmetric, strict=True):
            Kb = K if (sym or not transpose) else K.T
            out[idx] = Kb @ V[idx]
        return out

    def matvec(self, V):
        """Return ``K @ V`` for ``V`` of shape (p, n_columns)."""
        return self._apply(V, transpose=False)

    def rmatvec(self, U):
        """Return ``K.T @ U`` for ``U`` of shape (p, n_columns)."""
        return self._apply(U, transpose=True)

    def _kernels64(self):
        if self._K64 is None:
            if self.dtype == np.float64:
                self._K64 = self._K
            else:
                self._K64 = [
                    _gibbs(m, self.epsilon, np.float64, self.xp) for m in self._M
                ]
        return self._K64

    def _log_kernels(self):
        if self._logK is None:
            xp = self.xp
            self._logK = [asarray(-m / self.epsilon, xp, np.float64) for m in self._M]
        return self._kernels64(), self._logK

    def _log_apply(self, log_V, transpose):
        xp = self.xp
        out = xp.empty(log_V.shape, dtype=np.float64)
        bad = xp.zeros(log_V.shape, dtype=bool)
        for idx, K, sym in zip(
            self.blocks, self._kernels64(), self._symmetric, strict=True
        ):
            K = K.T if (transpose and not sym) else K
            lv = log_V[idx]
            shift = lv.max(axis=0)
            live = xp.isfinite(shift)
            shift = xp.where(live, shift, 0.0)
            # exp of the clamped values: exp is slow below -708 (subnormal)
            t = lv - shift
            summed = K @ xp.where(t > _LOG_TINY, xp.exp(xp.maximum(t, _LOG_TINY)), 0.0)
            # rows where every non-negligible term underflowed
            bad[idx] = (summed < _LOG_REPAIR) & live
            with np.errstate(divide="ignore"):
                out[idx] = xp.log(summed) + shift
        if bool(bad.any()):
            rows, cols = xp.nonzero(bad)
            out[rows, cols] = self._log_entries(log_V, rows, cols, transpose)
        return out

    def _log_entries(self, log_V, rows, cols, transpose):
        """Return entries ``(rows[k], cols[k])`` of ``log(K @ exp(log_V))``.

        A log-sum-exp over the row of ``-M / epsilon`` (of the block of the
        row), chunked over the entries.
        """
        xp = self.xp
        _, logK = self._log_kernels()
        owner, local = self._owners()
        out = xp.empty(rows.shape[0], dtype=np.float64)
        row_block = owner[rows]
        for b, (idx, L, sym) in enumerate(
            zip(self.blocks, logK, self._symmetric, strict=True)
        ):
            sel = xp.flatnonzero(row_block == b)
            if sel.shape[0] == 0:
                continue
            L = L.T if (transpose and not sym) else L
            lv = log_V[idx]
            for start in range(0, sel.shape[0], _ROW_CHUNK):
                k = sel[start : start + _ROW_CHUNK]
                T = L[local[rows[k]]] + lv[:, cols[k]].T
                mx = T.max(axis=1)
                safe = xp.where(xp.isfinite(mx), mx, 0.0)
                with np.errstate(divide="ignore"):
                    out[k] = safe + xp.log(xp.exp(T - safe[:, None]).sum(axis=1))
        return out

    def _owners(self):
        """Return the block of each point and its index inside the block."""
        if self._owner is None:
            owner = np.empty(self.n_points, dtype=np.int64)
            local = np.empty(self.n_points, dtype=np.int64)
            for b, idx in enumerate(self.blocks):
                pts = np.arange(self.n_points)[
                    idx if isinstance(idx, slice) else to_numpy(idx)
                ]
                owner[pts] = b
                local[pts] = np.arange(pts.size)
            self._owner = (asarray(owner, self.xp), asarray(local, self.xp))
        return self._owner

    def log_matvec(self, log_V):
        """Return ``log(K @ exp(log_V))`` (float64), without under/overflow."""
        return self._log_apply(log_V, transpose=False)

    def log_rmatvec(self, log_U):
        """Return ``log(K.T @ exp(log_U))`` (float64), without under/overflow."""
        return self._log_apply(log_U, transpose=True)

    def astype(self, dtype):
        """Return the same operator with kernel-domain products in ``dtype``."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        new = object.__new__(BlockDiagonalKernel)
        new.__dict__.update(self.__dict__)
        new.dtype = dtype
        new._restricted = None
        if dtype == np.float64:
            new._K = self._kernels64()
        else:
            new._K = [_gibbs(m, self.epsilon, dtype, self.xp) for m in self._M]
        return new

    def _smallest_entry(self):
        return float(np.exp(-self._max_exponent))

    def _restrict(self, rows, cols):
        if rows.all() and cols.all():
            return self
        if self._restricted is not None:
            key_rows, key_cols, op = self._restricted
            if np.array_equal(key_rows, rows) and np.array_equal(key_cols, cols):
                return op
        op = _RestrictedKernel(self, rows, cols)
        self._restricted = (rows.copy(), cols.copy(), op)
        return op

    def total(self):
        """Return the sum of the entries of ``K``."""
        if self._total is None:
            self._total = float(sum(np.exp(-m / self.epsilon).sum() for m in self._M))
        return self._total


class _RestrictedKernel(KernelOperator):
    """Kernel-domain products of a :class:`BlockDiagonalKernel` on a support.

    Holds, per block, the dense sub-kernel ``K[rows, cols]`` (and its
    transpose, contiguous, for ``K.T @ U``): a copy made once, then every
    product reads only those entries. See :meth:`KernelOperator._restrict`.
    """

    def __init__(self, parent, rows, cols):
        xp = parent.xp
        self.n_points, self.epsilon = parent.n_points, parent.epsilon
        self.dtype, self.xp, self.blocks = parent.dtype, xp, parent.blocks
        self._parent, self._rows, self._cols = parent, rows, cols
        self._parts = []
        points = np.arange(parent.n_points)
        for idx, K, sym in zip(
            parent.blocks, parent._K, parent._symmetric, strict=True
        ):
            glob = points[to_numpy(idx)] if not isinstance(idx, slice) else points[idx]
            r = np.flatnonzero(rows[glob])
            c = np.flatnonzero(cols[glob])
            if r.size == 0 or c.size == 0:
                continue
            sub = xp.ascontiguousarray(K[xp.ix_(asarray(r, xp), asarray(c, xp))])
            same = sym and r.size == c.size and bool((r == c).all())
            sub_t = sub if same else xp.ascontiguousarray(sub.T)
            self._parts.append((_index(glob, r, xp), _index(glob, c, xp), sub, sub_t))

    def matvec(self, V):
        """Return ``K @ V`` on the rows of the support (``V`` zero elsewhere)."""
        out = self.xp.zeros(V.shape, dtype=self.dtype)
        for ri, ci, sub, _ in self._parts:
            out[ri] = sub @ V[ci]
        return out

    def rmatvec(self, U):
        """Return ``K.T @ U`` on the columns of the support."""
        out = self.xp.zeros(U.shape, dtype=self.dtype)
        for ri, ci, _, sub_t in self._parts:
            out[ci] = sub_t @ U[ri]
        return out

    def log_matvec(self, log_V):
        """Return ``log(K @ exp(log_V))`` (the parent's, on every row)."""
        return self._parent.log_matvec(log_V)

    def log_rmatvec(self, log_U):
        """Return ``log(K.T @ exp(log_U))`` (the parent's, on every row)."""
        return self._parent.log_rmatvec(log_U)

    def _log_entries(self, log_V, rows, cols, transpose):
        return self._parent._log_entries(log_V, rows, cols, transpose)

    def total(self):
        """Return the sum of the entries of ``K`` (the whole kernel)."""
        return self._parent.total()

    def astype(self, dtype):
        """Return the restriction of the parent converted to ``dtype``."""
        return self._parent.astype(dtype)._restrict(self._rows, self._cols)

    def _smallest_entry(self):
        return self._parent._smallest_entry()


class SparseKernel(KernelOperator):
    """Truncated stabilized Gibbs kernel (Schmitzer 2019), in CSR form.

    Where ``exp(-M / epsilon)`` is mostly negligible, the solvers iterate
    with the stabilized kernel ``exp((f_i + g_j - M_ij) / epsilon)``, ``f``
    and ``g`` potentials absorbed from the current iterate, keeping only the
    entries above a threshold. With several columns (subjects, signs), one
    kernel serves all: ``f_i`` and ``g_j`` are the largest potentials of the
    columns at each point, so an entry left out is negligible in every
    column.

    Parameters
    ----------
    blocks : list of slice
        Contiguous groups of points, in order, between which there is no
        transport (see :class:`KernelOperator`).
    ground_metrics : list of array | list of sparse array
        The ground metric inside each block: a dense array (``np.inf``: no
        transport), or a :mod:`scipy.sparse` array whose stored entries are
        the distances (the diagonal stored, 0) and whose missing entries
        mean no transport (e.g. beyond the ``max_distance`` of
        :func:`~mne_wasserstein.compute_ground_metric`).
    epsilon : float
        The entropic regularisation, in the unit of the ground metric.
    dtype : numpy.dtype
        The dtype of the solvers' outputs. The products are always float64.
    xp : module
        The array namespace (numpy or cupy; on cupy the products use
        :mod:`cupyx.scipy.sparse`).
    compiled : bool | None
        Run the Sinkhorn iterations in the compiled CPU loop (numba) instead
        of the array code. ``None``: compiled on numpy.

    Notes
    -----
    An entry ``(i, j)`` is kept when ``(f_i + g_j - M_ij) / epsilon >=
    log(t * s / p) - 2 * 5``, ``s`` the smallest of the columns' largest
    input masses and ``t`` the truncation of the dtype: ``1e-12`` in
    float64, ``1e-9`` in float32 (below the outputs' rounding). While every
    log-scaling stays less than 5 above its absorbed potential (``eps log
    u^c_i - f_i <= 5 epsilon``, else the kernel is stabilized again at the
    current potentials), each entry left out carries less than ``t s / p``
    of transport in every column, so that every row and column of every
    plan loses less than ``t s``
    (``tests/test_ot_sparse.py`` checks this bound). The bound holds for any
    potentials; the number of entries kept depends on them (about those
    within ``45 epsilon`` of each point at zero potentials).

    Products ``K @ exp(x)`` are one sparse product with the scalings
    ``exp(x - g)``, which stay below ``exp(5)``; a product that underflows
    (below ``tiny^(2/3)``) is recomputed by a log-sum-exp over its row, so
    the products are exact for the kept entries whatever the scalings.

    References
    ----------
    B. Schmitzer. Stabilized sparse scaling algorithms for entropy
    regularized transport problems. SIAM J. Sci. Comput. 41(3), 2019.
    """

    def __init__(self, blocks, ground_metrics, epsilon, dtype, xp, *, compiled=None):

        if not all(isinstance(b, slice) for b in blocks):
            raise ValueError("SparseKernel needs blocks of contiguous points")
        self.blocks = list(blocks)
        self.epsilon = float(epsilon)
        self.dtype = np.dtype(dtype)
        self.xp = xp
        self.n_points = sum(_block_size(b) for b in self.blocks)
        self.compiled = (xp is np) if compiled is None else bool(compiled)
        if self.compiled and xp is not np:
            raise ValueError("compiled=True runs on the CPU: use numpy arrays")
        # the candidate entries of M and M^T: their finite entries, as CSR
        # over all points with rows sorted by distance
        self._candidates = _candidates(self.blocks, ground_metrics)
        symmetric = all(_is_symmetric(m) for m in ground_metrics)
        self._candidates_t = (
            self._candidates
            if symmetric
            else _candidates(self.blocks, [m.T for m in ground_metrics])
        )
        self._total = None
        # (stabilized kernel, its log-scalings, masks, mass scale) of the
        # last solve, which a warm-started one may reuse (sinkhorn module)
        self._last_stabilization = None

    def __repr__(self):
        sizes = [_block_size(b) for b in self.blocks]
        return (
            f"<SparseKernel | {self.n_points} points, blocks {sizes}, "
            f"epsilon={self.epsilon:g}, {self.xp.__name__}>"
        )

    def _log_keep(self, mass_scale):
        """Return the log threshold of the stabilized kernel's entries."""
        return _log_keep(self.dtype, mass_scale, self.n_points)

    def stabilize(self, lu, lv, mask_u=None, mask_v=None, mass_scale=1.0):
        """Return the truncated kernel stabilized at log-scalings.

        Parameters
        ----------
        lu, lv : array, shape (p, n_columns)
            The columns' log-scalings (potentials divided by epsilon,
            ``f / epsilon``, ``g / epsilon``; ``-inf``: no mass).
        mask_u, mask_v : None | array of bool, shape (p, n_columns)
            Where the log-scalings matter (the points that can send and
            receive mass in each column); ``None``: where they are finite.
        mass_scale : float
            The mass scale ``s`` of the truncation (see Notes).

        Returns
        -------
        kernel : _StabilizedKernel
            The stabilized products. It absorbs the largest log-scalings of
            the columns at each point (``row_pot``, ``col_pot``), raised
            where needed so that every point that can send (receive) mass
            keeps an entry towards one that can receive (send) it.
        """
        from ._compiled import _normalise_rows, _reachable, _transpose, _truncate

        p = self.n_points
        lu = np.asarray(to_numpy(lu), dtype=np.float64).reshape(p, -1)
        lv = np.asarray(to_numpy(lv), dtype=np.float64).reshape(p, -1)
        mask_u = np.isfinite(lu) if mask_u is None else to_numpy(mask_u)
        mask_v = np.isfinite(lv) if mask_v is None else to_numpy(mask_v)
        with np.errstate(invalid="ignore"):
            lu = np.where(mask_u, lu, -np.inf)
            lv = np.where(mask_v, lv, -np.inf)
            env_u, env_v = lu.max(axis=1), lv.max(axis=1)
        env_u = np.where(np.isfinite(env_u), env_u, 0.0)
        env_v = np.where(np.isfinite(env_v), env_v, 0.0)
        row_active, col_active = mask_u.any(axis=1), mask_v.any(axis=1)
        log_keep = self._log_keep(mass_scale)
        inv_eps = 1.0 / self.epsilon
        cand, cand_t = self._candidates, self._candidates_t
        active = (row_active, col_active)
        row_pot, col_pot = _reachable(
            cand, cand_t, env_u, env_v, *active, inv_eps, log_keep
        )
        indptr, indices, logk = _truncate(
            cand, row_pot, col_pot, env_u, env_v, lu, lv, mask_u, mask_v,
            *active, inv_eps, log_keep,
        )  # fmt: skip
        t_indptr, t_indices, t_logk = _transpose(indptr, indices, logk, p)
        r, data, log_data = _normalise_rows(indptr, logk)
        rt, t_data, t_log_data = _normalise_rows(t_indptr, t_logk)
        return _StabilizedKernel(
            (indptr, indices, data, log_data, r - row_pot, col_pot),
            (t_indptr, t_indices, t_data, t_log_data, rt - col_pot, row_pot),
            (cand + (inv_eps,), cand_t + (inv_eps,)),
            self.xp,
        )

    def _zero(self):
        if getattr(self, "_at_zero", None) is None:
            zero = np.zeros((self.n_points, 1))
            self._at_zero = self.stabilize(zero, zero)
        return self._at_zero

    def matvec(self, V):
        """Return ``K @ V`` with ``K`` truncated at zero potentials."""
        return self._zero().apply(V, transpose=False)

    def rmatvec(self, U):
        """Return ``K.T @ U`` with ``K`` truncated at zero potentials."""
        return self._zero().apply(U, transpose=True)

    def log_matvec(self, log_V):
        """Return ``log(K @ exp(log_V))`` with ``K`` truncated at zero potentials."""
        need = self.xp.ones(log_V.shape, dtype=bool)
        return self._zero().log_product(log_V, False, need)

    def log_rmatvec(self, log_U):
        """Return ``log(K.T @ exp(log_U))`` with ``K`` truncated at zero potentials."""
        need = self.xp.ones(log_U.shape, dtype=bool)
        return self._zero().log_product(log_U, True, need)

    def total(self):
        """Return the sum of the entries of ``exp(-M / epsilon)`` (untruncated)."""
        from ._compiled import _exp_sum

        if self._total is None:
            total = _exp_sum(-self._candidates[2] / self.epsilon)
            self._total = float(total)
        return self._total

    def astype(self, dtype):
        """Return the same operator with outputs in ``dtype``."""
        new = object.__new__(SparseKernel)
        new.__dict__.update(self.__dict__)
        # the truncation depends on the dtype
        new._last_stabilization = new._at_zero = None
        new.dtype = np.dtype(dtype)
        return new

    def kept_fraction(self):
        """Fraction of the entries of the blocks kept at zero potentials."""
        n_entries = sum(_block_size(b) ** 2 for b in self.blocks)
        return self._zero().nnz / n_entries


class _StabilizedKernel:
    """The products of a :class:`SparseKernel` stabilized at potentials.

    ``kv`` and ``ktu`` are ``(indptr, indices, data, log_data, post, pre)``
    of ``K`` and ``K^T``: ``K_ij = exp(post_i) data_ij exp(-pre_j)``,
    ``data`` in [0, 1] and ``log_data = log(data)``, finite where ``data``
    underflows (numpy, for the compiled loop); the array code uses the same
    arrays in namespace ``xp``.
    """

    def __init__(self, kv, ktu, candidates, xp):
        self.kv, self.ktu, self.xp = kv, ktu, xp
        # (indptr, indices, distances, 1 / epsilon) of the untruncated K and
        # K^T: where a product over the kept entries is empty, it is
        # computed over these
        self.candidates = candidates
        self.nnz = int(kv[0][-1])
        self.n_points = kv[0].shape[0] - 1
        self.row_pot, self.col_pot = ktu[5], kv[5]

    @cached_property
    def _device(self):
        """The CSR matrices and arrays in ``xp`` (the array code's products)."""
        return [self._to_xp(part) for part in (self.kv, self.ktu)]

    @cached_property
    def _cand_xp(self):
        return [[asarray(a, self.xp) for a in c[:3]] for c in self.candidates]

    def _to_xp(self, part):
        indptr, indices, data = part[:3]
        xp = self.xp
        shape = (self.n_points, self.n_points)
        mat = csr_matrix(data, indices, indptr, shape, xp)
        arrays = [asarray(a, xp) for a in part]
        return mat, arrays

    def apply(self, V, transpose):
        """``K @ V`` (``K.T`` if ``transpose``) in the kernel domain."""
        xp = self.xp
        mat, (_, _, _, _, post, pre) = self._device[1 if transpose else 0]
        scaled = mat @ (V * xp.exp(-pre)[:, None])
        return scaled * xp.exp(post)[:, None]

    def log_product(self, lx, transpose, need):
        """``log(K @ exp(lx))``, exact on ``need`` (see :class:`SparseKernel`)."""
        from ._compiled import _HUGE64, _TAU64, _TINY64

        xp = self.xp
        mat, parts = self._device[1 if transpose else 0]
        indptr, indices, _, log_data, post, pre = parts
        with np.errstate(all="ignore"):
            y = mat @ xp.exp(lx - pre[:, None])
            out = xp.log(xp.clip(y, _TINY64, _HUGE64)) + post[:, None]
        # underflow may have lost terms; overflow: a log-scaling far above
        # its absorbed potential (within an iteration): exact log-sum-exps
        low = need & ~((y >= _TAU64) & (y < np.inf))
        if bool(low.any()):
            rows, cols = xp.nonzero(low)
            out[rows, cols] = post[rows] + _rows_logsumexp(
                indptr, indices, log_data, lx, pre, rows, cols, xp
            )
            empty = need & (out == -np.inf)
            if bool(empty.any()):
                rows, cols = xp.nonzero(empty)
                c_indptr, c_indices, dist = self._cand_xp[1 if transpose else 0]
                zero = xp.zeros(lx.shape[0])
                out[rows, cols] = _rows_logsumexp(
                    c_indptr, c_indices, -dist * self.candidates[0][3], lx, zero,
                    rows, cols, xp,
                )  # fmt: skip
        return out


def _rows_logsumexp(indptr, indices, log_data, lx, pre, rows, cols, xp):
    """``log sum_k exp(log_data_k + lx[j_k, col] - pre[j_k])`` over rows' entries."""
    if indices.shape[0] == 0:
        return xp.full(rows.shape[0], -np.inf)
    start = indptr[rows]
    length = indptr[rows + 1] - start
    width = max(int(length.max()), 1)
    offset = xp.arange(width)[None, :]
    valid = offset < length[:, None]
    pos = xp.where(valid, start[:, None] + offset, 0)
    j = indices[pos]
    with np.errstate(all="ignore"):
        v = log_data[pos] + lx[j, cols[:, None]] - pre[j]
        v = xp.where(valid, v, -np.inf)
        top = v.max(axis=1)
        safe = xp.where(xp.isfinite(top), top, 0.0)
        total = xp.exp(v - safe[:, None]).sum(axis=1)
        return xp.where(xp.isfinite(top), safe + xp.log(total), -np.inf)


def _candidates(blocks, metrics):
    """Return the finite entries of the blocks (CSR, rows sorted by distance)."""
    from scipy import sparse

    indptr, indices, dist = [np.zeros(1, np.int64)], [], []
    for b, m in zip(blocks, metrics, strict=True):
        if sparse.issparse(m):
            m = sparse.csr_array(m)  # keeps the stored zeros (the diagonal)
            ip, ix, d = m.indptr, m.indices, np.asarray(m.data, dtype=np.float64)
            order = np.lexsort((d, np.repeat(np.arange(m.shape[0]), np.diff(ip))))
            ix, d = ix[order], d[order]
        else:
            # sorted rows: the finite entries first (np.inf sorts last)
            order = np.argsort(m, axis=1, kind="stable")
            sorted_m = np.take_along_axis(np.asarray(m, dtype=np.float64), order, 1)
            finite = np.isfinite(sorted_m)
            ip = np.concatenate([[0], np.cumsum(finite.sum(axis=1))])
            ix, d = order[finite], sorted_m[finite]
        indptr.append(ip[1:] + indptr[-1][-1])
        indices.append(ix.astype(np.int32) + b.start)
        dist.append(d)
    return np.concatenate(indptr), np.concatenate(indices), np.concatenate(dist)


def _is_symmetric(m):
    if _is_sparse(m):
        diff = abs(m - m.T)
        return diff.nnz == 0 or float(diff.max()) == 0.0
    return bool(np.array_equal(m, m.T))


def _index(glob, local, xp):
    """Global indices ``glob[local]``, as a slice when contiguous."""
    sel = glob[local]
    if sel.size and sel[-1] - sel[0] + 1 == sel.size:
        return slice(int(sel[0]), int(sel[-1]) + 1)
    return asarray(sel, xp)


def _block_size(idx):
    if isinstance(idx, slice):
        return idx.stop - idx.start
    return len(idx)


def make_kernel(
    ground_metric, epsilon=None, *, dtype=None, backend=None, kind="auto", compiled=None
):
    """Build the Gibbs kernel operator of a ground metric.

    Parameters
    ----------
    ground_metric : array, shape (p, p) | list of array | GroundMetric | KernelOperator
        The ground metric ``M`` (non-negative, e.g. geodesic distances in mm).
        ``np.inf`` entries mean no transport; points connected by finite
        entries form blocks (e.g. one per hemisphere) that are stored and
        applied separately. A list of square arrays gives the diagonal blocks
        directly, in order (a :mod:`scipy.sparse` block: stored entries are
        distances, missing ones mean no transport); so does a
        :class:`~mne_wasserstein.GroundMetric` (its ``blocks``). A
        :class:`KernelOperator` is returned unchanged.
    epsilon : float | None
        The entropic regularisation (> 0), in the unit of ``M``. A kernel
        operator carries its own: ``None``, or a value equal to it.
    dtype : None | float64 | float32
        The dtype of the kernel-domain products. ``None``: float32 if ``M``
        (all of its blocks) is float32, else float64.
    backend : None | "numpy" | "cupy"
        ``None``: cupy if ``M`` is a cupy array, else numpy.
    kind : "auto" | "dense" | "sparse"
        ``"dense"``: :class:`BlockDiagonalKernel`. ``"sparse"``: the
        truncated stabilized :class:`SparseKernel` (products in float64,
        outputs in ``dtype``). ``"auto"``: sparse when its truncation at zero
        potentials keeps less than 20 percent of the entries of the blocks,
        or on numpy when no block has more than 256 points (the compiled
        loop), provided the blocks are contiguous; sparse when a block is
        stored sparse; dense otherwise.
    compiled : bool | None
        For a sparse kernel: run the iterations in the compiled CPU loop
        (``None``: on numpy). See :class:`SparseKernel`.

    Returns
    -------
    kernel : KernelOperator
        The kernel operator.
    """
    if kind not in ("auto", "dense", "sparse"):
        raise ValueError(f"kind must be 'auto', 'dense' or 'sparse', got {kind!r}")
    if isinstance(ground_metric, KernelOperator):
        given = None if epsilon is None else check_positive(epsilon, "epsilon")
        if given is not None and not np.isclose(
            ground_metric.epsilon, given, rtol=1e-12, atol=0
        ):
            raise ValueError(
                f"The kernel operator was built with epsilon={ground_metric.epsilon}"
                f", got epsilon={epsilon}"
            )
        return ground_metric
    if epsilon is None:
        raise ValueError("epsilon is needed to build a kernel from a ground metric")
    epsilon = check_positive(epsilon, "epsilon")
    if isinstance(ground_metric, GroundMetric):
        ground_metric = ground_metric.blocks
    if isinstance(ground_metric, (list, tuple)):
        mats = list(ground_metric)
        xp = get_namespace(*mats, backend=backend)
        dtype = check_dtype(dtype, *mats)
        mats = [_check_metric(m, f"block {k}") for k, m in enumerate(mats)]
        blocks, start = [], 0
        for m in mats:
            blocks.append(slice(start, start + m.shape[0]))
            start += m.shape[0]
    else:
        xp = get_namespace(ground_metric, backend=backend)
        dtype = check_dtype(dtype, ground_metric)
        M = _check_metric(ground_metric, "ground_metric")
        blocks = _find_blocks(np.isfinite(M))
        mats = [M[b][:, b] if not isinstance(b, slice) else M[b, b] for b in blocks]
    if kind == "auto":
        kind = _auto_kind(blocks, mats, epsilon, dtype, xp)
    if kind == "sparse":
        return SparseKernel(blocks, mats, epsilon, dtype, xp, compiled=compiled)
    if any(_is_sparse(m) for m in mats):
        raise ValueError("a ground metric stored sparse needs kind='sparse'")
    return BlockDiagonalKernel(blocks, mats, epsilon, dtype, xp)


def _is_sparse(m):
    from scipy import sparse

    return sparse.issparse(m)


def _log_keep(dtype, mass_scale, p):
    """Return the log threshold of the stabilized kernel's entries (SparseKernel)."""
    truncation = _TRUNCATION[np.dtype(dtype)]
    return np.log(truncation * mass_scale / max(p, 1)) - 2.0 * _ABSORB


def _auto_kind(blocks, mats, epsilon, dtype, xp):
    """``"sparse"`` where the truncated kernel or the blocks are small."""
    if any(_is_sparse(m) for m in mats):
        return "sparse"
    if not all(isinstance(b, slice) for b in blocks):
        return "dense"
    if xp is np and max(_block_size(b) for b in blocks) <= _SMALL_BLOCK:
        return "sparse"
    p = sum(_block_size(b) for b in blocks)
    radius = -epsilon * _log_keep(dtype, 1.0, p)
    kept = sum(int(np.count_nonzero(m <= radius)) for m in mats)
    total = sum(m.shape[0] ** 2 for m in mats)
    return "sparse" if kept < _SPARSE_FRACTION * total else "dense"


def _check_metric(M, name):
    if _is_sparse(M):
        if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty square matrix, got {M.shape}")
        if np.isnan(M.data).any() or (M.data < 0).any():
            raise ValueError(f"{name} must hold non-negative distances")
        return M
    M = to_numpy(M)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got {M.shape}")
    if np.isnan(M).any():
        raise ValueError(f"{name} contains NaN")
    if (M < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return M
