"""Geodesic distances along triangle meshes (edge graphs, Dijkstra)."""

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra


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


def _distance_rows(rr, tris, vertices, rows, method, batch_size=128):
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
    from joblib import Parallel, delayed, effective_n_jobs

    rr, tris, vertices = _check_mesh(rr, tris, vertices)
    if method not in ("dijkstra", "heat"):
        raise ValueError(f'method must be "dijkstra" or "heat", got {method!r}')
    n_src = len(vertices)
    n_jobs = max(1, min(effective_n_jobs(n_jobs), max(n_src, 1)))
    # groups: at least one per job, small enough to report progress
    n_groups = max(n_jobs, int(np.ceil(n_src / 512)))
    groups = [g for g in np.array_split(np.arange(n_src), n_groups) if len(g)]
    dist = np.empty((n_src, n_src))
    if n_jobs == 1:
        for group in groups:
            dist[group] = _distance_rows(rr, tris, vertices, group, method)
            if progress is not None:
                progress(len(group))
    else:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
        results = parallel(
            delayed(_distance_rows)(rr, tris, vertices, group, method)
            for group in groups
        )
        for group, rows in zip(groups, results, strict=True):
            dist[group] = rows
            if progress is not None:
                progress(len(group))
    # exactly symmetric: for Dijkstra this only evens out the rounding of
    # paths summed in opposite orders, for the heat method it averages the
    # two solves (and halves their asymmetry)
    dist += dist.T
    dist /= 2.0
    np.fill_diagonal(dist, 0.0)
    return dist.astype(dtype, copy=False)
