"""The ground metric between sources: one block of distances per hemisphere.

Arrays only (numpy and scipy.sparse): no MNE-Python, so that every layer of
the package can check ``isinstance(x, GroundMetric)``.
"""

import numpy as np
from scipy import sparse

from .._arrays import csr_row_indices, median64

__all__ = ["GroundMetric"]


def _check_sparse_block(block, n, max_distance):
    """Return ``block`` as a ``csr_array`` after checking the sparse contract."""
    if not sparse.issparse(block) or block.format != "csr":
        raise TypeError(
            "with max_distance, every block must be a scipy.sparse CSR array, "
            f"got {type(block).__name__}"
        )
    block = sparse.csr_array(block)  # shares the arrays, keeps explicit zeros
    if block.shape != (n, n):
        raise ValueError(f"a block of shape {block.shape} does not match {n} vertices")
    rows = csr_row_indices(block)
    # canonical: column indices strictly increase within each row (checked
    # here rather than through scipy's cached has_canonical_format flag)
    if not np.all((np.diff(block.indices) > 0) | (np.diff(rows) > 0)):
        raise ValueError(
            "a sparse block must be canonical (sorted indices, no duplicates)"
        )
    block.has_canonical_format = True
    data = block.data
    if data.dtype.kind != "f":
        raise TypeError(f"the blocks must be floating, got {data.dtype}")
    if not np.all((data >= 0) & (data <= max_distance)):
        raise ValueError(
            f"the stored distances of a sparse block must be in [0, {max_distance}] "
            "(max_distance); NaN, negative or larger values found"
        )
    diagonal = rows == block.indices
    if np.count_nonzero(diagonal) != n or np.any(data[diagonal] != 0):
        raise ValueError(
            "a sparse block must store its whole diagonal, with value 0.0 "
            "(explicit zeros: unstored entries mean farther than max_distance)"
        )
    transposed = block.T.tocsr()  # sorted indices, explicit zeros kept
    if not (
        np.array_equal(transposed.indptr, block.indptr)
        and np.array_equal(transposed.indices, block.indices)
        and np.array_equal(transposed.data, data)
    ):
        raise ValueError("a sparse block must be symmetric (structure and values)")
    return block


def _sparse_rows(block, rows):
    """Return the stored entries of the rows ``rows`` of a CSR block.

    Returns ``(which, cols, values)``: for each stored entry, its position in
    ``rows``, its column and its value.
    """
    starts, stops = block.indptr[rows], block.indptr[rows + 1]
    counts = stops - starts
    which = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    flat = np.repeat(starts, counts) + offsets
    return which, block.indices[flat], block.data[flat]


class GroundMetric:
    """Geodesic distances (mm) between the sources of a source space.

    Distances between hemispheres are infinite (no transport across the
    midline), so the metric is stored as one block per hemisphere: a dense
    array, or, for a metric truncated at ``max_distance``, a sparse array
    that stores only the distances up to ``max_distance``.

    Parameters
    ----------
    blocks : list of array, shape (n_sources_h, n_sources_h)
        The distances in millimetres within each hemisphere; symmetric with
        a zero diagonal. Dense :class:`numpy.ndarray` when ``max_distance``
        is ``None``; otherwise :class:`scipy.sparse.csr_array` with this
        contract: canonical (sorted indices, no duplicates), symmetric in
        structure and values, the stored entries are the distances
        ``<= max_distance``, the diagonal is stored explicitly with value
        ``0.0``, and an entry that is not stored means "farther than
        ``max_distance``" (``+inf``: no transport), never 0. The contract is
        checked here (a ``ValueError`` otherwise), in O(nnz). Beware that
        some scipy operations (sums and element-wise products of sparse
        arrays, ``eliminate_zeros``) drop explicit zeros and so lose the
        diagonal: work on ``block.data``, ``block.indices`` and
        ``block.indptr`` instead (transposition, ``astype``, row slicing,
        ``save_npz``/``load_npz`` keep them).
        :func:`~mne_wasserstein.compute_ground_metric` gives ``dtype`` data
        (float32 by default) and int32 indices.
    vertices : list of array of int, shape (n_sources_h,)
        The vertex numbers (of the full surface) of the sources of each
        block, in the order of the rows of the block (``src[h]["vertno"]``).
    hemis : list of str
        ``"lh"`` or ``"rh"`` for each block.
    subject : str | None
        The FreeSurfer subject.
    surface : str
        The surface the distances were measured on.
    method : str
        ``"dijkstra"`` or ``"heat"``.
    max_distance : float | None
        ``None`` for dense blocks; otherwise the radius (mm) up to which the
        sparse blocks store distances.
    median : float | None
        The value :meth:`median` returns (mm). ``None``: computed from the
        dense blocks when first asked for. Required with ``max_distance``
        (the stored entries cannot give it, see :meth:`median`).

    Attributes
    ----------
    n_sources : int
        The total number of sources (rows of :meth:`to_dense`).
    is_sparse : bool
        Whether the blocks are sparse (``max_distance`` is not ``None``).
    """

    def __init__(
        self,
        blocks,
        vertices,
        hemis,
        *,
        subject=None,
        surface="white",
        method="dijkstra",
        max_distance=None,
        median=None,
    ):
        if len(blocks) != len(vertices) or len(blocks) != len(hemis):
            raise ValueError("blocks, vertices and hemis must have the same length")
        if max_distance is not None:
            max_distance = float(max_distance)
            if not max_distance > 0:
                raise ValueError(f"max_distance must be > 0, got {max_distance}")
            if median is None:
                raise ValueError(
                    "a sparse GroundMetric (max_distance) needs its median: the "
                    "stored distances (<= max_distance) cannot give it"
                )
            blocks = [
                _check_sparse_block(b, len(v), max_distance)
                for b, v in zip(blocks, vertices, strict=True)
            ]
        else:
            for block, vertno in zip(blocks, vertices, strict=True):
                if sparse.issparse(block):
                    raise TypeError("sparse blocks need max_distance (their radius)")
                if block.shape != (len(vertno), len(vertno)):
                    raise ValueError(
                        f"a block of shape {block.shape} does not match "
                        f"{len(vertno)} vertices"
                    )
        if median is not None:
            median = float(median)
            if not median > 0:
                raise ValueError(f"median must be > 0, got {median}")
        self.blocks = list(blocks)
        self.vertices = [np.asarray(v) for v in vertices]
        self.hemis = list(hemis)
        self.subject = subject
        self.surface = surface
        self.method = method
        self.max_distance = max_distance
        self._median = median

    @property
    def n_sources(self):
        """The total number of sources."""
        return sum(len(v) for v in self.vertices)

    @property
    def is_sparse(self):
        """Whether the blocks are sparse (truncated at ``max_distance``)."""
        return self.max_distance is not None

    @property
    def dtype(self):
        """The dtype of the blocks."""
        return self.blocks[0].dtype if self.blocks else np.dtype(np.float64)

    def median(self):
        """Median distance (mm) between two distinct sources of a hemisphere.

        The reference scale of the OT hyperparameters (``gamma``): the median
        of the finite off-diagonal entries of the blocks, in float64. The
        diagonal (zeros) and the infinite distances between hemispheres are
        left out. For a sparse metric it is the value given at construction:
        :func:`~mne_wasserstein.compute_ground_metric` estimates it from the
        full distance rows of a random subsample of sources.

        Returns
        -------
        median : float
            The median distance (mm).
        """
        if self._median is None:
            values = []
            for block in self.blocks:
                off = block[~np.eye(len(block), dtype=bool)]
                values.append(off[np.isfinite(off)])
            self._median = median64(np.concatenate(values or [np.zeros(0)]))
        return self._median

    def spacing(self):
        """Median over sources of the distance (mm) to the nearest other source.

        The source spacing: for each source, the smallest finite distance to
        another source of its hemisphere (sources without one are left out),
        then the median over sources, in float64. For a sparse metric, the
        nearest source farther than ``max_distance`` is unknown: such sources
        are left out too.

        Returns
        -------
        spacing : float
            The median nearest-neighbour distance (mm).
        """
        nearest = []
        for block in self.blocks:
            if self.is_sparse:
                # every row stores its diagonal, so no row is empty
                rows = csr_row_indices(block)
                values = block.data.astype(np.float64)
                values[rows == block.indices] = np.inf
                row_min = (
                    np.minimum.reduceat(values, block.indptr[:-1])
                    if values.size
                    else np.zeros(0)
                )
            else:
                block = np.array(block, dtype=np.float64)
                np.fill_diagonal(block, np.inf)
                block[~np.isfinite(block)] = np.inf
                row_min = block.min(axis=1) if block.size else np.zeros(0)
            nearest.append(row_min)
        nearest = np.concatenate(nearest or [np.zeros(0)])
        nearest = nearest[np.isfinite(nearest)]
        if nearest.size == 0:
            raise ValueError("No source has a neighbour at a finite distance")
        return float(np.median(nearest))

    def max(self):
        """Largest finite distance (mm); at most ``max_distance`` if sparse.

        Returns
        -------
        max : float
            The largest finite distance (mm) of the blocks.
        """
        if self.is_sparse:
            return float(max(b.data.max() for b in self.blocks))
        return float(max(b[np.isfinite(b)].max() for b in self.blocks))

    def distances(self, rows, cols):
        """Distances (mm) between two sets of sources.

        Parameters
        ----------
        rows, cols : array of int, shape (n_rows,) and (n_cols,)
            Source indices in ``range(n_sources)`` (rows of :meth:`to_dense`).

        Returns
        -------
        distances : array, shape (n_rows, n_cols)
            float64; ``np.inf`` between hemispheres and, for a sparse metric,
            beyond ``max_distance``.
        """
        rows, cols = np.asarray(rows), np.asarray(cols)
        for name, idx in (("rows", rows), ("cols", cols)):
            if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
                raise TypeError(f"{name} must be a 1D array of source indices")
            if idx.size and (idx.min() < 0 or idx.max() >= self.n_sources):
                raise ValueError(f"{name} must be in [0, {self.n_sources - 1}]")
        rows, cols = rows.astype(np.int64), cols.astype(np.int64)  # also if empty
        starts = np.cumsum([0, *(len(v) for v in self.vertices)])
        block_r = np.searchsorted(starts, rows, side="right") - 1
        block_c = np.searchsorted(starts, cols, side="right") - 1
        out = np.full((len(rows), len(cols)), np.inf)
        for h, block in enumerate(self.blocks):
            r, c = np.flatnonzero(block_r == h), np.flatnonzero(block_c == h)
            local_r, local_c = rows[r] - starts[h], cols[c] - starts[h]
            if not self.is_sparse:
                out[np.ix_(r, c)] = block[np.ix_(local_r, local_c)]
                continue
            # columns may repeat: fill the unique ones, then expand
            unique_c, inverse = np.unique(local_c, return_inverse=True)
            position = np.full(block.shape[1], -1)
            position[unique_c] = np.arange(len(unique_c))
            sub = np.full((len(r), len(unique_c)), np.inf)
            which, stored_cols, values = _sparse_rows(block, local_r)
            keep = position[stored_cols] >= 0
            sub[which[keep], position[stored_cols[keep]]] = values[keep]
            out[np.ix_(r, c)] = sub[:, inverse]
        return out

    def to_dense(self):
        """Full matrix (n_sources, n_sources) of the distances (mm).

        Returns
        -------
        dense : array, shape (n_sources, n_sources)
            The blocks on the diagonal, ``np.inf`` between hemispheres and,
            for a sparse metric, beyond ``max_distance``.
        """
        dense = np.full((self.n_sources, self.n_sources), np.inf, dtype=self.dtype)
        start = 0
        for block in self.blocks:
            stop = start + block.shape[0]
            if self.is_sparse:
                which, cols, values = _sparse_rows(block, np.arange(block.shape[0]))
                dense[start + which, start + cols] = values
            else:
                dense[start:stop, start:stop] = block
            start = stop
        return dense

    def __repr__(self):  # noqa: D105
        sizes = " + ".join(
            f"{len(v)} ({h})" for v, h in zip(self.vertices, self.hemis, strict=True)
        )
        kind = (
            f"sparse <= {self.max_distance:g} mm, "
            f"{sum(b.nnz for b in self.blocks) / max(self.n_sources, 1):.0f} per row"
            if self.is_sparse
            else "dense"
        )
        return (
            f"<GroundMetric | {self.subject}, {self.surface}, {self.method}, "
            f"{sizes} sources, {kind}, median {self.median():.1f} mm>"
        )
