"""Array helpers for the synthetic anatomy: sphere lattices, ray casting, warps.

Everything here takes and returns numpy arrays (millimetres unless stated).
"""

import numpy as np
from scipy.sparse import coo_matrix
from scipy.spatial import ConvexHull, cKDTree


def _fibonacci_sphere(n_points, rotation=None):
    """Return ``n_points`` well spread unit vectors (a Fibonacci lattice)."""
    idx = np.arange(n_points) + 0.5
    z = 1.0 - 2.0 * idx / n_points
    r = np.sqrt(1.0 - z**2)
    phi = np.pi * (1.0 + 5**0.5) * idx
    points = np.c_[r * np.cos(phi), r * np.sin(phi), z]
    if rotation is not None:
        points = points @ rotation.T
    return points


def _random_rotation(rng):
    """Return a uniformly distributed 3D rotation matrix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _sphere_triangulation(points):
    """Triangulate points on the unit sphere with outward-facing triangles."""
    tris = ConvexHull(points).simplices.astype(np.int32)
    a, b, c = (points[tris[:, k]] for k in range(3))
    outward = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) > 0
    tris[~outward] = tris[~outward][:, ::-1]
    return tris


def _ray_triangle(origins, dirs, a, b, c):
    """Ray-triangle intersection (Moller-Trumbore), broadcast over inputs.

    Returns the ray parameter ``t`` and barycentric coordinates ``(u, v)`` of
    the hit point ``a + u (b - a) + v (c - a)``; ``t`` is ``nan`` for rays
    parallel to the triangle plane.
    """
    e1, e2 = b - a, c - a
    h = np.cross(dirs, e2)
    det = np.einsum("...k,...k->...", e1, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(np.abs(det) > 1e-12, 1.0 / det, np.nan)
        s = origins - a
        u = inv * np.einsum("...k,...k->...", s, h)
        q = np.cross(s, e1)
        v = inv * np.einsum("...k,...k->...", dirs, q)
        t = inv * np.einsum("...k,...k->...", e2, q)
    return t, u, v


def _radial_distance(center, dirs, rr, tris, chunk=256):
    """Largest distance from ``center`` along each unit vector to a mesh."""
    out = np.full(len(dirs), np.nan)
    a, b, c = (rr[tris[:, k]][np.newaxis] for k in range(3))
    for start in range(0, len(dirs), chunk):
        d = dirs[start : start + chunk, np.newaxis]
        t, u, v = _ray_triangle(center, d, a, b, c)
        hit = (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9) & (t > 0)
        t = np.where(hit, t, -np.inf)
        out[start : start + chunk] = t.max(axis=1)
    out[~np.isfinite(out)] = np.nan
    return out


def _vertex_triangles(tris, n_vertices):
    """Tabulate the triangles around each vertex (padded with -1)."""
    flat = tris.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=n_vertices)
    table = np.full((n_vertices, counts.max()), -1, dtype=np.int64)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.arange(len(flat)) - np.repeat(starts, counts)
    table[flat[order], rank] = order // 3
    return table


def _locate_on_sphere(points, sphere_rr, tris, k=3):
    """Find, for each unit vector, the sphere-mesh triangle it passes through.

    Parameters
    ----------
    points : array, shape (n, 3)
        Unit vectors.
    sphere_rr : array, shape (n_vertices, 3)
        Vertices of a mesh of a sphere centred on the origin.
    tris : array, shape (n_tris, 3)
        Its triangles.
    k : int
        The number of nearest vertices whose triangles are candidates.

    Returns
    -------
    tri_idx : array of int, shape (n,)
        The triangle crossed by each ray.
    weights : array, shape (n, 3)
        Barycentric weights (non-negative, summing to one) of the crossing
        point with respect to the triangle's three vertices.
    """
    unit = sphere_rr / np.linalg.norm(sphere_rr, axis=1, keepdims=True)
    _, near = cKDTree(unit).query(points, k=k)
    cand = _vertex_triangles(tris, len(sphere_rr))[near].reshape(len(points), -1)
    valid = cand >= 0
    cand_safe = np.where(valid, cand, 0)
    a, b, c = (sphere_rr[tris[cand_safe, j]] for j in range(3))
    t, u, v = _ray_triangle(np.zeros(3), points[:, np.newaxis], a, b, c)
    w = np.stack([1 - u - v, u, v], axis=-1)
    score = np.where(
        valid & (t > 0), np.nan_to_num(w.min(axis=-1), nan=-np.inf), -np.inf
    )
    best = np.argmax(score, axis=1)
    rows = np.arange(len(points))
    weights = np.clip(w[rows, best], 0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return cand_safe[rows, best], weights


def _bump_field(rr, centers, weights, length, jacobian=True):
    """Sum of Gaussian bumps ``sum_k w_k exp(-|x - c_k|^2 / (2 length^2))``.

    Returns the field at ``rr``, shape (n, d) for weights of shape (K, d),
    and, if ``jacobian``, its spatial Jacobian, shape (n, d, 3).
    """
    n_dims = weights.shape[1]
    values = np.zeros((len(rr), n_dims))
    jac = np.zeros((len(rr), n_dims, 3)) if jacobian else None
    # d/dx_j of sum_k w_ki g_k = -(x_j (sum_k w_ki g_k) - sum_k w_ki c_kj g_k) / l^2
    moments = (weights[:, :, np.newaxis] * centers[:, np.newaxis, :]).reshape(
        len(centers), 3 * n_dims
    )
    sq_centers = np.sum(centers**2, axis=1)
    step = max(1, 2**22 // len(centers))
    for start in range(0, len(rr), step):
        x = rr[start : start + step]
        sq_dist = np.sum(x**2, axis=1)[:, np.newaxis] + sq_centers - 2 * x @ centers.T
        g = np.exp(-np.maximum(sq_dist, 0) / (2 * length**2))
        val = g @ weights
        values[start : start + step] = val
        if jacobian:
            first = (g @ moments).reshape(len(x), n_dims, 3)
            jac[start : start + step] = (
                first - val[:, :, np.newaxis] * x[:, np.newaxis, :]
            ) / length**2
    return values, jac


def _gaussian_field(rr, rng, *, rms, length, max_jac, n_centers=300, centers=None):
    """Draw a smooth random displacement field, evaluated at ``rr`` (mm).

    A sum of Gaussian bumps with random vector weights, centred on
    ``n_centers`` of the points (or on ``centers``), scaled so that its root
    mean square over ``rr`` is ``rms`` mm, and then shrunk if needed so that
    the spectral norm of its Jacobian stays below ``max_jac`` on ``rr``.
    """
    if centers is None:
        idx = rng.choice(len(rr), size=min(n_centers, len(rr)), replace=False)
        centers = rr[idx]
    weights = rng.standard_normal((len(centers), 3))
    disp, jac = _bump_field(rr, centers, weights, length)
    scale = rms / np.sqrt(np.mean(np.sum(disp**2, axis=1)))
    jac_norm = np.linalg.norm(jac, ord=2, axis=(1, 2)).max() * scale
    if jac_norm > max_jac:
        scale *= max_jac / jac_norm
    return disp * scale


def _smooth_warp(rr, rng, *, n_steps=4, rms=2.0, length=6.0, max_jac=0.5):
    """Displacement of a random smooth warp, composed of ``n_steps`` fields.

    Each step adds a Gaussian random field (:func:`_gaussian_field`) whose
    Jacobian norm is below ``max_jac < 1`` on the points, so each step is
    injective there, and so is their composition: a warped surface does not
    fold onto itself, while the composition reaches larger deformations
    (hence normal rotations) than one field with the same guarantee.
    """
    warped = rr.copy()
    for _ in range(n_steps):
        warped += _gaussian_field(warped, rng, rms=rms, length=length, max_jac=max_jac)
    return warped - rr


def _sphere_centers(radius, length, rng):
    """Bump centres on a sphere, about one per ``length`` x ``length`` mm."""
    n_centers = int(np.ceil(4 * np.pi * radius**2 / length**2))
    return radius * _fibonacci_sphere(n_centers, _random_rotation(rng))


def _tangential_warp(unit, rng, *, radius, rms, length, n_steps, max_jac=0.5):
    """Move points on a sphere by a smooth random tangential displacement.

    The points ``radius * unit`` move, in ``n_steps`` composed steps, along
    Gaussian random vector fields (:func:`_gaussian_field` with bumps spread
    evenly over the sphere) projected on the tangent plane and brought back
    onto the sphere. Each field has a root mean square of ``rms`` mm (in mm
    on the sphere of the given radius) and a Jacobian norm below
    ``max_jac < 1``, so each step is injective and preserves orientation.

    Returns
    -------
    moved : array, shape (n, 3)
        The displaced unit vectors.
    """
    rr = unit * radius
    for _ in range(n_steps):
        centers = _sphere_centers(radius, length, rng)
        disp = _gaussian_field(
            rr, rng, rms=rms, length=length, max_jac=max_jac, centers=centers
        )
        normal = rr / np.linalg.norm(rr, axis=1, keepdims=True)
        disp -= np.sum(disp * normal, axis=1, keepdims=True) * normal
        rr = rr + disp
        rr *= radius / np.linalg.norm(rr, axis=1, keepdims=True)
    return rr / radius


def _log_normal_field(unit, rng, *, radius, sd, length):
    """Draw a smooth random positive factor on the sphere, ``exp(sd * g)``.

    ``g`` is a Gaussian random field (bumps spread evenly over the sphere of
    the given radius, length scale ``length`` mm) with unit root mean square
    over the points.
    """
    centers = _sphere_centers(radius, length, rng)
    weights = rng.standard_normal((len(centers), 1))
    values, _ = _bump_field(unit * radius, centers, weights, length, jacobian=False)
    values = values[:, 0] / np.sqrt(np.mean(values[:, 0] ** 2))
    return np.exp(sd * values)


def _umbrella(tris, n_vertices):
    """Return the uniform (umbrella) averaging operator of a mesh (CSR)."""
    i = tris[:, [0, 1, 1, 2, 2, 0]].ravel()
    j = tris[:, [1, 0, 2, 1, 0, 2]].ravel()
    adj = coo_matrix((np.ones(len(i)), (i, j)), shape=(n_vertices,) * 2).tocsr()
    adj.data[:] = 1.0  # edges counted twice become 1
    degree = np.asarray(adj.sum(axis=1)).ravel()
    return adj.multiply(1.0 / degree[:, np.newaxis]).tocsr()


def _umbrella_smooth(rr, tris, n_iter, step=0.5):
    """Smooth a mesh by ``n_iter`` steps towards its neighbours' mean."""
    avg = _umbrella(tris, len(rr))
    out = rr.copy()
    for _ in range(n_iter):
        out += step * (avg @ out - out)
    return out


def _clamp_norm(disp, limit):
    """Shrink each displacement vector to a norm of at most ``limit``."""
    norm = np.linalg.norm(disp, axis=1)
    factor = np.minimum(1.0, np.maximum(limit, 0.0) / np.maximum(norm, 1e-12))
    return disp * factor[:, np.newaxis]


def _star_radius(center, surf_rr, surf_tris, points):
    """Radius of a star-shaped closed surface in the directions of ``points``.

    The surface must be star-shaped about ``center``; the radius is
    interpolated linearly on the triangle crossed by each direction.
    """
    rel = surf_rr - center
    radius = np.linalg.norm(rel, axis=1)
    dirs = points - center
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    tri_idx, weights = _locate_on_sphere(dirs, rel / radius[:, None], surf_tris)
    return np.einsum("nk,nk->n", weights, radius[surf_tris[tri_idx]])


def _vertex_normals(rr, tris):
    """Area-weighted unit vertex normals of a triangle mesh."""
    tri_nn = np.cross(rr[tris[:, 1]] - rr[tris[:, 0]], rr[tris[:, 2]] - rr[tris[:, 0]])
    nn = np.zeros_like(rr)
    for k in range(3):
        np.add.at(nn, tris[:, k], tri_nn)
    return nn / np.linalg.norm(nn, axis=1, keepdims=True)


def _fit_sphere(rr):
    """Least-squares sphere fit: return (center, radius)."""
    A = np.c_[2 * rr, np.ones(len(rr))]
    b = np.sum(rr**2, axis=1)
    sol = np.linalg.lstsq(A, b, rcond=None)[0]
    center = sol[:3]
    return center, np.sqrt(sol[3] + center @ center)


def _farthest_points(rr, n, start=0):
    """Greedy farthest-point subsampling of ``n`` indices of ``rr``."""
    chosen = [start]
    dist = np.linalg.norm(rr - rr[start], axis=1)
    for _ in range(n - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(rr - rr[nxt], axis=1))
    return np.array(chosen)


def _project_intervals(tri_a, tri_b, axes):
    """Extents of two triangle sets projected on per-pair axes."""
    pa = np.einsum("pkj,pj->pk", tri_a, axes)
    pb = np.einsum("pkj,pj->pk", tri_b, axes)
    return pa.min(axis=1), pa.max(axis=1), pb.min(axis=1), pb.max(axis=1)


def _triangles_intersect(tri_a, tri_b, tol=1e-12):
    """Exact triangle-triangle intersection test (separating axes).

    Two triangles do not intersect if and only if their projections on one
    of 17 axes are disjoint: the two face normals, the 9 cross products of an
    edge of each, and the 6 in-plane edge normals (for coplanar pairs).

    Parameters
    ----------
    tri_a, tri_b : array, shape (n_pairs, 3, 3)
        The corners of the triangles of each pair.
    tol : float
        Projections must be apart by more than ``tol`` times the size of the
        pair to separate the triangles (touching counts as intersecting).

    Returns
    -------
    hit : array of bool, shape (n_pairs,)
        Whether the two triangles of each pair intersect.
    """
    ea = np.roll(tri_a, -1, axis=1) - tri_a  # (p, 3 edges, 3)
    eb = np.roll(tri_b, -1, axis=1) - tri_b
    na = np.cross(ea[:, 0], ea[:, 1])
    nb = np.cross(eb[:, 0], eb[:, 1])
    axes = [na, nb]
    axes += [np.cross(ea[:, i], eb[:, j]) for i in range(3) for j in range(3)]
    axes += [np.cross(na, ea[:, i]) for i in range(3)]
    axes += [np.cross(nb, eb[:, i]) for i in range(3)]
    size = np.abs(np.concatenate([tri_a, tri_b], axis=1)).max(axis=(1, 2)) + 1.0
    hit = np.ones(len(tri_a), dtype=bool)
    for axis in axes:
        norm = np.linalg.norm(axis, axis=1)
        ok = norm > 1e-12 * size**2
        unit = axis / np.where(ok, norm, 1.0)[:, np.newaxis]
        amin, amax, bmin, bmax = _project_intervals(tri_a, tri_b, unit)
        separated = ok & ((amax < bmin - tol * size) | (bmax < amin - tol * size))
        hit &= ~separated
    return hit


def _ragged_arange(counts):
    """Concatenated ``arange(c)`` for each ``c`` of ``counts``."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(counts.sum()) - starts


def _candidate_pairs(lo, hi):
    """Pairs of boxes (corners ``lo``, ``hi``) that overlap, each once (i < j).

    The boxes are hashed on a uniform grid whose cell is their median size;
    boxes that share a cell are candidates, then their overlap is checked
    exactly.
    """
    cell = np.median(np.max(hi - lo, axis=1))
    lo_c = np.floor(lo / cell).astype(np.int64)
    hi_c = np.floor(hi / cell).astype(np.int64)
    origin = lo_c.min(axis=0)
    dims = hi_c.max(axis=0) - origin + 1

    def cell_key(index):
        index = index - origin
        return (index[:, 0] * dims[1] + index[:, 1]) * dims[2] + index[:, 2]

    span = hi_c - lo_c + 1
    counts = span.prod(axis=1)
    box = np.repeat(np.arange(len(lo)), counts)
    local = _ragged_arange(counts)
    offset = np.c_[
        local % span[box, 0],
        (local // span[box, 0]) % span[box, 1],
        local // (span[box, 0] * span[box, 1]),
    ]
    key = cell_key(lo_c[box] + offset)
    order = np.argsort(key, kind="stable")
    key, box = key[order], box[order]
    # pair each entry with the later entries of its cell
    first = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    size = np.diff(np.r_[first, len(key)])
    end = np.repeat(first + size, size)
    n_later = end - np.arange(len(key)) - 1
    left = np.repeat(np.arange(len(key)), n_later)
    right = left + 1 + _ragged_arange(n_later)
    i, j = box[left], box[right]
    # two boxes can share several cells: keep the pair in one of them, the
    # cell of the lowest corner of their intersection
    keep = key[left] == cell_key(np.maximum(lo_c[i], lo_c[j]))
    i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    overlap = np.all((lo[i] <= hi[j]) & (lo[j] <= hi[i]), axis=1)
    return np.c_[i[overlap], j[overlap]]


def _self_intersections(rr, tris, chunk=100_000):
    """Find the pairs of triangles of a mesh that intersect each other.

    Pairs that share a vertex are not tested (they touch by construction).
    Candidates are the pairs whose bounding boxes overlap
    (:func:`_candidate_pairs`), so all intersections are found.

    Parameters
    ----------
    rr : array, shape (n_vertices, 3)
        The vertex positions.
    tris : array of int, shape (n_tris, 3)
        The triangles.
    chunk : int
        The number of candidate pairs tested at once.

    Returns
    -------
    pairs : array of int, shape (n_hits, 2)
        The intersecting pairs of triangle indices.
    """
    corners = rr[tris]  # (n_tris, 3, 3)
    cand = _candidate_pairs(corners.min(axis=1), corners.max(axis=1))
    i, j = cand[:, 0], cand[:, 1]
    shared = (tris[i][:, :, np.newaxis] == tris[j][:, np.newaxis, :]).any(axis=(1, 2))
    cand = cand[~shared]
    hits = [
        cand[start : start + chunk][
            _triangles_intersect(
                corners[cand[start : start + chunk, 0]],
                corners[cand[start : start + chunk, 1]],
            )
        ]
        for start in range(0, len(cand), chunk)
    ]
    return np.concatenate([np.empty((0, 2), dtype=cand.dtype), *hits])
