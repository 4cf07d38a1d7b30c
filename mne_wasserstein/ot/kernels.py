"""Gibbs kernel operators ``K = exp(-M / epsilon)``.

A kernel operator applies ``K`` and ``K^T`` to a batch of columns, in the
kernel domain (``K @ V``) and in the log domain
(``log(K @ exp(log V))``, computed without under/overflow). The solvers of
:mod:`mne_wasserstein.ot.sinkhorn` only use this interface, so another
operator (e.g. a heat kernel built from a mesh Laplacian) is one new
subclass of :class:`KernelOperator`.
"""

from abc import ABC, abstractmethod

import numpy as np

from ._backend import asarray, check_dtype, get_namespace, to_numpy

__all__ = ["KernelOperator", "BlockDiagonalKernel", "make_kernel"]

# Rows of a shifted kernel product below this value are recomputed with an
# exact log-sum-exp: above it, the terms lost to underflow (each < 1e-307 and
# at most p of them) change the row by less than 1e-100 relative.
_LOG_REPAIR = 1e-200
_ROW_CHUNK = 512
# exp(x) is slow below about -708 (subnormal results): clamp there
_LOG_TINY = -700.0


def _gibbs(M, epsilon, dtype, xp):
    """``exp(-M / epsilon)`` in ``dtype``, subnormal entries flushed to 0.

    Products with subnormal numbers are an order of magnitude slower on x86
    (measured: float32 ``K @ V``, p = 2562, 16 columns, 12 % of the entries
    subnormal at epsilon = 1 mm: 77 ms, 6.6 ms flushed). The entries lost are
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
    a tiny ``K_ij`` can carry transported mass. Measured on the benchmark
    (fsaverage5 ico4 hemisphere, geodesic metric, ``epsilon`` 0.05 and
    ``gamma`` 1 times the median distance): dropping the entries below
    ``exp(-34)`` (3.3 percent of them) moves the barycenter by 3e-7
    relative, below ``exp(-30)`` (10.7 percent) by 6e-4; a threshold safe
    at ``tol = 1e-6`` skips too few entries to save time.
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


def make_kernel(ground_metric, epsilon, *, dtype=None, backend=None):
    """Build the Gibbs kernel operator of a ground metric.

    Parameters
    ----------
    ground_metric : array, shape (p, p) | list of array | GroundMetric | KernelOperator
        The ground metric ``M`` (non-negative, e.g. geodesic distances in mm).
        ``np.inf`` entries mean no transport; points connected by finite
        entries form blocks (e.g. one per hemisphere) that are stored and
        applied separately. A list of square arrays gives the diagonal blocks
        directly, in order; so does a
        :class:`~mne_wasserstein.GroundMetric` (its ``blocks``). A
        :class:`KernelOperator` is returned unchanged (after checking
        ``epsilon``).
    epsilon : float
        The entropic regularisation (> 0), in the unit of ``M``.
    dtype : None | float64 | float32
        The dtype of the kernel-domain products. ``None``: float32 if ``M``
        (all of its blocks) is float32, else float64.
    backend : None | "numpy" | "cupy"
        ``None``: cupy if ``M`` is a cupy array, else numpy.

    Returns
    -------
    kernel : KernelOperator
        The kernel operator.
    """
    epsilon = _check_positive(epsilon, "epsilon")
    if isinstance(ground_metric, KernelOperator):
        if not np.isclose(ground_metric.epsilon, epsilon, rtol=1e-12, atol=0):
            raise ValueError(
                f"The kernel operator was built with epsilon={ground_metric.epsilon}"
                f", got epsilon={epsilon}"
            )
        return ground_metric
    if hasattr(ground_metric, "blocks") and hasattr(ground_metric, "to_dense"):
        ground_metric = ground_metric.blocks  # a GroundMetric (duck-typed: no mne)
    if isinstance(ground_metric, (list, tuple)):
        mats = list(ground_metric)
        xp = get_namespace(*mats, backend=backend)
        dtype = check_dtype(dtype, *mats)
        mats = [_check_metric(to_numpy(m), f"block {k}") for k, m in enumerate(mats)]
        blocks, start = [], 0
        for m in mats:
            blocks.append(slice(start, start + m.shape[0]))
            start += m.shape[0]
        return BlockDiagonalKernel(blocks, mats, epsilon, dtype, xp)
    xp = get_namespace(ground_metric, backend=backend)
    dtype = check_dtype(dtype, ground_metric)
    M = _check_metric(to_numpy(ground_metric), "ground_metric")
    blocks = _find_blocks(np.isfinite(M))
    mats = [M[b][:, b] if not isinstance(b, slice) else M[b, b] for b in blocks]
    return BlockDiagonalKernel(blocks, mats, epsilon, dtype, xp)


def _check_metric(M, name):
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got {M.shape}")
    if np.isnan(M).any():
        raise ValueError(f"{name} contains NaN")
    if (M < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return M


def _check_positive(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value
