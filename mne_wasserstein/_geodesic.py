"""Geodesic distances along triangle meshes (edge graphs, Dijkstra)."""

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from ._arrays import csr_row_indices, median64


def _mesh_graph(rr, tris):
    """Sparse symmetric graph of mesh edges weighted by their lengths."""
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    lengths = np.linalg.norm(rr[edges[:, 0]] - rr[edges[:, 1]], axis=1)
    n = len(rr)
    graph = sparse.coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(n, n))
    return (graph + graph.T).tocsr()


def _geodesic_from(graph, sources, limit=np.inf):
    """Edge-path distances (rows: ``sources``) to every vertex, up to ``limit``."""
    return dijkstra(graph, directed=False, indices=sources, limit=limit)


# ---------------------------------------------------------------------------
# Array-only core of the ground metric: distances between a subset of the
# vertices of a triangle mesh, measured along the whole mesh.


def _check_mesh(rr, tris, vertices):
    rr = np.asarray(rr, dtype=np.float64)
    tris = np.asarray(tris)
    if rr.ndim != 2 or rr.shape[1] != 3:
        raise ValueError(f"rr must have shape (n_vertices, 3), got {rr.shape}")
    if tris.ndim != 2 or tris.shape[1] != 3 or len(tris) == 0:
        raise ValueError(f"tris must have shape (n_triangles, 3), got {tris.shape}")
    if not np.issubdtype(tris.dtype, np.integer):
        raise TypeError(f"tris must be integers, got {tris.dtype}")
    vertices = np.asarray(vertices)
    if vertices.ndim != 1 or not np.issubdtype(vertices.dtype, np.integer):
        raise TypeError("vertices must be a 1D array of vertex numbers")
    if tris.min() < 0 or tris.max() >= len(rr):
        raise ValueError("tris refers to vertices that are not in rr")
    if len(vertices) and (vertices.min() < 0 or vertices.max() >= len(rr)):
        raise ValueError(
            f"vertices must be in [0, {len(rr) - 1}], got "
            f"[{vertices.min()}, {vertices.max()}]"
        )
    return rr, tris.astype(np.int64), vertices.astype(np.int64)


def _gradient_operator(rr, tris):
    """Per-face gradient of piecewise-linear functions and the face areas.

    Returns ``G`` (sparse, shape (3 * n_triangles, n_vertices)), so that
    ``(G @ u).reshape(-1, 3)`` is the gradient of ``u`` on each face, and the
    face areas (n_triangles,). ``G.T @ diag(area) @ G`` is the cotangent
    stiffness matrix (positive semi-definite Laplacian).
    """
    p0, p1, p2 = rr[tris[:, 0]], rr[tris[:, 1]], rr[tris[:, 2]]
    normal = np.cross(p1 - p0, p2 - p0)
    double_area = np.linalg.norm(normal, axis=1)
    if np.any(double_area <= 0):
        raise ValueError("the mesh has degenerate (zero-area) triangles")
    normal /= double_area[:, np.newaxis]
    # gradient of the hat function of a vertex: the opposite edge rotated by
    # +90 degrees in the face plane, divided by twice the area
    grads = [
        np.cross(normal, edge) / double_area[:, np.newaxis]
        for edge in (p2 - p1, p0 - p2, p1 - p0)
    ]
    n_tris = len(tris)
    rows = (3 * np.arange(n_tris)[:, np.newaxis] + np.arange(3)).ravel()
    data, row_idx, col_idx = [], [], []
    for k in range(3):
        data.append(grads[k].ravel())
        row_idx.append(rows)
        col_idx.append(np.repeat(tris[:, k], 3))
    G = sparse.csr_matrix(
        (np.concatenate(data), (np.concatenate(row_idx), np.concatenate(col_idx))),
        shape=(3 * n_tris, len(rr)),
    )
    return G, double_area / 2.0


class _HeatSolver:
    """Heat method (Crane, Weischedel & Wardetzky 2013) on a triangle mesh.

    One sparse LU factorisation for the heat step ``(M + t L) u = delta`` and
    one for the Poisson step ``L phi = G^T A X`` are computed once and reused
    for every source. ``L = G^T A G`` is the cotangent stiffness matrix,
    ``M`` the lumped (barycentric) mass matrix, ``t = h^2`` with ``h`` the
    mean edge length.
    """

    def __init__(self, rr, tris):
        from scipy.sparse.linalg import splu

        n = len(rr)
        self.G, self.area = _gradient_operator(rr, tris)
        area3 = np.repeat(self.area, 3)
        self.GtA = (self.G.T @ sparse.diags(area3)).tocsr()
        stiffness = (self.GtA @ self.G).tocsc()
        mass = np.bincount(tris.ravel(), np.repeat(self.area / 3.0, 3), minlength=n)
        graph = _mesh_graph(rr, tris)
        h = graph.data.mean()  # every edge is stored twice: same mean
        self.t = h**2
        self._heat = splu((sparse.diags(mass) + self.t * stiffness).tocsc())
        # L is singular (constants); a tiny mass shift makes it definite and
        # only removes the constant component (1^T M phi = 0), which the
        # final shift (phi[source] = 0) restores.
        shift = 1e-10 * stiffness.diagonal().mean() / mass.mean()
        self._poisson = splu((stiffness + shift * sparse.diags(mass)).tocsc())
        self.n = n

    def distances(self, sources):
        """Distances (len(sources), n_vertices) from each source vertex."""
        sources = np.asarray(sources)
        delta = np.zeros((self.n, len(sources)))
        delta[sources, np.arange(len(sources))] = 1.0
        u = self._heat.solve(delta)
        grad = (self.G @ u).reshape(-1, 3, len(sources))
        norm = np.linalg.norm(grad, axis=1, keepdims=True)
        norm[norm == 0] = 1.0
        field = -grad / norm  # unit field pointing away from the source
        phi = self._poisson.solve(self.GtA @ field.reshape(-1, len(sources)))
        phi = phi.T
        phi -= phi[np.arange(len(sources)), sources][:, np.newaxis]
        np.maximum(phi, 0.0, out=phi)
        return phi


def _batches(n, size):
    return [np.arange(start, min(start + size, n)) for start in range(0, n, size)]


def _distance_rows(rr, tris, vertices, method, rows, batch_size=128):
    """Distances from ``vertices[rows]`` to ``vertices`` (float64)."""
    if method == "heat":
        solver = _HeatSolver(rr, tris)
        compute = solver.distances
    else:
        graph = _mesh_graph(rr, tris)
        compute = lambda sources: _geodesic_from(graph, sources)  # noqa: E731
    out = np.empty((len(rows), len(vertices)))
    for batch in _batches(len(rows), batch_size):
        out[batch] = compute(vertices[rows[batch]])[:, vertices]
    return out


def _groups(n_src, n_jobs):
    """Split the source rows in groups: one per job at least, for progress."""
    from joblib import effective_n_jobs

    n_jobs = max(1, min(effective_n_jobs(n_jobs), max(n_src, 1)))
    n_groups = max(n_jobs, int(np.ceil(n_src / 512)))
    groups = [g for g in np.array_split(np.arange(n_src), n_groups) if len(g)]
    return groups, n_jobs


def _map_groups(func, args, n_src, n_jobs, progress):
    """``(group, func(*args, group))`` for groups of rows, in order (joblib)."""
    from joblib import Parallel, delayed

    groups, n_jobs = _groups(n_src, n_jobs)
    if n_jobs == 1:
        results = (func(*args, group) for group in groups)
    else:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
        results = parallel(delayed(func)(*args, group) for group in groups)
    for group, rows in zip(groups, results, strict=True):
        if progress is not None:
            progress(len(group))
        yield group, rows


def _geodesic_distances(
    rr,
    tris,
    vertices,
    *,
    method="dijkstra",
    n_jobs=None,
    dtype=np.float64,
    progress=None,
):
    """Geodesic distances between ``vertices`` of the mesh ``(rr, tris)``.

    Parameters
    ----------
    rr : array, shape (n_vertices, 3)
        Vertex positions (any unit; the distances come in the same unit).
    tris : array of int, shape (n_triangles, 3)
        The triangles of the full mesh.
    vertices : array of int, shape (n_sources,)
        The vertices between which distances are returned.
    method : "dijkstra" | "heat"
        Shortest paths along mesh edges, or the heat method.
    n_jobs : int | None
        Parallel jobs (joblib) over groups of sources.
    dtype : dtype
        The dtype of the output.
    progress : callable | None
        Called with the number of source rows done, after each group.

    Returns
    -------
    dist : array, shape (n_sources, n_sources)
        Exactly symmetric (rows averaged with their transpose), zero
        diagonal.
    """
    rr, tris, vertices = _check_mesh(rr, tris, vertices)
    if method not in ("dijkstra", "heat"):
        raise ValueError(f'method must be "dijkstra" or "heat", got {method!r}')
    n_src = len(vertices)
    dist = np.empty((n_src, n_src))
    args = (rr, tris, vertices, method)
    for group, rows in _map_groups(_distance_rows, args, n_src, n_jobs, progress):
        dist[group] = rows
    # exactly symmetric: for Dijkstra this only evens out the rounding of
    # paths summed in opposite orders, for the heat method it averages the
    # two solves (and halves their asymmetry)
    dist += dist.T
    dist /= 2.0
    np.fill_diagonal(dist, 0.0)
    return dist.astype(dtype, copy=False)


# relative margin of the Dijkstra limit over max_distance: paths summed in
# opposite orders differ by rounding (~1e-15 relative), and the symmetrised
# distance is then rounded to float32 (6e-8 relative); a pair within
# max_distance after both is always within the padded limit both ways
_LIMIT_MARGIN = 1e-6


def _limited_rows(graph, vertices, limit, rows, batch_size=128):
    """Return the rows ``rows`` up to ``limit``: counts, columns, distances.

    The number of entries of each row, then their columns (sorted within
    each row) and their distances (float64), row after row.
    """
    counts, cols, dists = [], [], []
    for batch in _batches(len(rows), batch_size):
        dist = _geodesic_from(graph, vertices[rows[batch]], limit)[:, vertices]
        finite = np.isfinite(dist)
        r, c = np.nonzero(finite)  # row-major: sorted by (r, c)
        counts.append(finite.sum(axis=1))
        cols.append(c.astype(np.int32))
        dists.append(dist[r, c])
    return np.concatenate(counts), np.concatenate(cols), np.concatenate(dists)


def _csr(data, indices, counts, n):
    """Canonical (n, n) CSR array from rows given in order, int32 if it fits."""
    index_dtype = np.int32 if len(data) <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=index_dtype)
    np.cumsum(counts, out=indptr[1:])
    out = sparse.csr_array(
        (data, indices.astype(index_dtype, copy=False), indptr), shape=(n, n)
    )
    out.has_canonical_format = True  # rows in order, columns sorted
    return out


def _keep_entries(csr, keep):
    """Return ``csr`` without the stored entries where ``keep`` is False."""
    counts = np.bincount(csr_row_indices(csr)[keep], minlength=csr.shape[0])
    return _csr(csr.data[keep], csr.indices[keep], counts, csr.shape[0])


def _symmetrise(dist, max_distance, dtype):
    """Symmetric, truncated part of canonical CSR edge-path distances.

    Keeps the pairs stored both ways, with the mean of the two distances
    (in float64, as :func:`_geodesic_distances` does), zero on the diagonal,
    cast to ``dtype`` and then truncated at ``max_distance`` (compared in
    ``dtype``). Only sums and selections of ``data``: explicit zeros stay.
    """
    transposed = dist.T.tocsr()  # sorted indices, explicit zeros kept
    if not (
        np.array_equal(dist.indptr, transposed.indptr)
        and np.array_equal(dist.indices, transposed.indices)
    ):
        # a pair at the limit found from one end only (rounding): keep the
        # pairs found from both ends, whose keys i * n + j sort alike
        keys = []
        for csr in (dist, transposed):
            rows = csr_row_indices(csr).astype(np.int64)
            keys.append(rows * csr.shape[0] + csr.indices)
        dist, transposed = (
            _keep_entries(dist, np.isin(keys[0], keys[1], assume_unique=True)),
            _keep_entries(transposed, np.isin(keys[1], keys[0], assume_unique=True)),
        )
    data = (dist.data + transposed.data) / 2.0
    rows = csr_row_indices(dist)
    data[rows == dist.indices] = 0.0
    del rows
    out = sparse.csr_array((data.astype(dtype), dist.indices, dist.indptr), dist.shape)
    del data, dist, transposed
    return _keep_entries(out, out.data <= max_distance)


def _sparse_geodesic_distances(
    rr, tris, vertices, max_distance, *, n_jobs=None, dtype=np.float64, progress=None
):
    """Edge-path (Dijkstra) distances up to ``max_distance``, as a CSR array.

    Each source's Dijkstra search stops at ``max_distance`` (plus a margin of
    ``_LIMIT_MARGIN`` relative), so time and memory grow with the number of
    sources times the number of sources within the radius, not with its
    square.

    Parameters
    ----------
    rr, tris, vertices
        As in :func:`_geodesic_distances`.
    max_distance : float
        The radius (in the unit of ``rr``).
    n_jobs, dtype, progress
        As in :func:`_geodesic_distances`.

    Returns
    -------
    dist : scipy.sparse.csr_array, shape (n_sources, n_sources)
        Canonical (sorted indices, no duplicates), symmetric in structure
        and values; stores exactly the pairs whose distance, symmetrised in
        float64 as in :func:`_geodesic_distances` and then cast to
        ``dtype``, is ``<= max_distance`` (so they equal the dense result's
        entries bit for bit); the diagonal is stored with explicit zeros.
        Unstored entries mean "farther than ``max_distance``".
    """
    rr, tris, vertices = _check_mesh(rr, tris, vertices)
    n_src = len(vertices)
    limit = max_distance * (1.0 + _LIMIT_MARGIN)
    args = (_mesh_graph(rr, tris), vertices, limit)  # one graph for all groups
    parts = [
        part for _, part in _map_groups(_limited_rows, args, n_src, n_jobs, progress)
    ]
    counts = np.concatenate([p[0] for p in parts])
    cols = np.concatenate([p[1] for p in parts])
    dist = np.concatenate([p[2] for p in parts])
    del parts
    return _symmetrise(_csr(dist, cols, counts, n_src), max_distance, dtype)


def _sampled_median(meshes, n_sample, seed, dtype=np.float64, batch_size=64):
    """Median edge-path distance between distinct sources of a hemisphere.

    Estimated from the full Dijkstra rows of ``n_sample`` sources drawn
    uniformly without replacement (``numpy.random.default_rng(seed)``) from
    the sources of all the meshes pooled: each drawn source contributes its
    distances (cast to ``dtype``) to every other source of its own mesh, so
    that each mesh weighs as its number of pairs, like in the exact median.
    With ``n_sample`` at least the number of sources, every row is used.

    Parameters
    ----------
    meshes : list of tuple
        ``(rr, tris, vertices)`` per hemisphere (see
        :func:`_geodesic_distances`).
    n_sample : int
        The number of sources whose rows are used.
    seed : int
        The seed of the draw.
    dtype : dtype
        The distances are rounded to it before the median (like the blocks).
    batch_size : int
        Rows computed at once (memory: ``batch_size * n_vertices`` floats).

    Returns
    -------
    median : float
        The median of the off-diagonal distances of the drawn rows (float64).
    """
    sizes = [len(vertices) for _, _, vertices in meshes]
    n_total = sum(sizes)
    drawn = np.random.default_rng(seed).choice(
        n_total, min(n_sample, n_total), replace=False
    )
    starts = np.cumsum([0, *sizes])
    values = []
    for h, (rr, tris, vertices) in enumerate(meshes):
        rr, tris, vertices = _check_mesh(rr, tris, vertices)
        rows = np.sort(drawn[(drawn >= starts[h]) & (drawn < starts[h + 1])])
        rows -= starts[h]
        graph = _mesh_graph(rr, tris)
        for batch in _batches(len(rows), batch_size):
            dist = _geodesic_from(graph, vertices[rows[batch]])[:, vertices]
            dist[np.arange(len(batch)), rows[batch]] = np.nan  # the source itself
            dist = dist.astype(dtype)
            values.append(dist[np.isfinite(dist)])
    return median64(np.concatenate(values or [np.zeros(0)]))
