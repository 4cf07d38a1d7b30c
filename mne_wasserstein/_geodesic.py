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
