"""Array helpers for the synthetic anatomy: sphere lattices, ray casting, warps.

Everything here takes and returns numpy arrays (millimetres unless stated).
"""

import numpy as np
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


def _gaussian_field(rr, rng, *, rms, length, max_jac, n_centers=300):
    """Draw a smooth random displacement field, evaluated at ``rr`` (mm).

    A sum of Gaussian bumps with random vector weights, scaled so that its
    root mean square over ``rr`` is ``rms`` mm, and then shrunk if needed so
    that the spectral norm of its Jacobian stays below ``max_jac`` on ``rr``.
    """
    centers = rr[rng.choice(len(rr), size=min(n_centers, len(rr)), replace=False)]
    weights = rng.standard_normal((len(centers), 3))
    disp = np.zeros_like(rr)
    jac = np.zeros((len(rr), 3, 3))
    for start in range(0, len(rr), 4096):
        diff = rr[start : start + 4096, np.newaxis] - centers  # (m, K, 3)
        g = np.exp(-np.einsum("mkj,mkj->mk", diff, diff) / (2 * length**2))
        disp[start : start + 4096] = g @ weights
        # d/dx_j of sum_k w_k g_k = sum_k w_k (-diff_j / length^2) g_k
        jac[start : start + 4096] = (
            -np.einsum("mk,ki,mkj->mij", g, weights, diff) / length**2
        )
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
