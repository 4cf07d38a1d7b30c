"""Geodesic ground metrics between the sources of cortical source spaces.

:class:`GroundMetric` lives in :mod:`mne_wasserstein.ot` (no MNE-Python) and
is re-exported here.
"""

import hashlib
from dataclasses import dataclass
from functools import partial
from numbers import Real
from pathlib import Path

import numpy as np
from mne import read_surface
from mne.utils import ProgressBar, get_subjects_dir, logger, verbose
from scipy import sparse

from ._cache import cached
from ._geodesic import (
    _geodesic_distances,
    _sampled_median,
    _sparse_geodesic_distances,
)
from .ot import GroundMetric
from .utils import fill_doc, get_data_dir

__all__ = ["GroundMetric", "compute_ground_metric"]

_METHODS = ("dijkstra", "heat")
_SURFACES = ("white", "pial", "inflated", "orig", "smoothwm", "sphere")
_HEMIS = {101: "lh", 102: "rh"}  # FIFFV_MNE_SURF_LEFT_HEMI / RIGHT_HEMI
_CACHE_VERSION = "1"
# the median of a sparse metric: from the full rows of this many sources,
# drawn with numpy.random.default_rng(_MEDIAN_SEED) (see compute_ground_metric)
_MEDIAN_SAMPLE = 400
_MEDIAN_SEED = 0


def _check_src(src):
    from mne import SourceSpaces

    if not isinstance(src, SourceSpaces):
        raise TypeError(f"src must be an instance of SourceSpaces, got {type(src)}")
    for s in src:
        if s["type"] != "surf":
            raise ValueError(
                f"src must only contain surface source spaces, got a {s['type']!r} "
                f"source space: the ground metric is geodesic along the cortex"
            )
        if s.get("tris") is None or len(s["tris"]) == 0:
            raise ValueError(
                "the source space has no triangulation (tris): a surface source "
                "space from mne.setup_source_space is needed"
            )
        if s["id"] not in _HEMIS:
            raise ValueError(f"unknown hemisphere id {s['id']} in the source space")
    subject = src[0].get("subject_his_id")
    if not subject:
        raise ValueError("the source space does not name its subject (subject_his_id)")
    return subject


def _cache_key(rr, tris, vertno, method, surface, dtype, max_distance=None):
    digest = hashlib.sha256()
    for array in (rr.astype("<f8"), tris.astype("<i8"), vertno.astype("<i8")):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(f"{method}|{surface}|{np.dtype(dtype).str}|{_CACHE_VERSION}".encode())
    # a dense metric's key has no radius part; a new key would rebuild its file
    if max_distance is not None:
        digest.update(f"|max_distance={max_distance!r}".encode())
    return digest.hexdigest()[:32]


def _check_max_distance(max_distance, method):
    if max_distance is None:
        return None
    if isinstance(max_distance, bool) or not isinstance(max_distance, Real):
        raise TypeError(
            f"max_distance must be a number (mm) or None, got {type(max_distance)}"
        )
    max_distance = float(max_distance)
    if not (np.isfinite(max_distance) and max_distance > 0):
        raise ValueError(
            f"max_distance must be finite and > 0 (mm), got {max_distance}: "
            "use None for the dense metric"
        )
    if method != "dijkstra":
        raise ValueError(
            f"max_distance needs method='dijkstra' (a Dijkstra search stops at "
            f"the radius; the heat method solves on the whole mesh), got {method!r}"
        )
    return max_distance


@dataclass(frozen=True)
class _HemiMesh:
    """One hemisphere's surface and the source vertices on it.

    Attributes
    ----------
    hemi : str
        ``"lh"`` or ``"rh"``.
    rr : ndarray, shape (n_vertices, 3)
        The vertex positions (mm).
    tris : ndarray of int, shape (n_triangles, 3)
        The triangles.
    vertno : ndarray of int64, shape (n_sources,)
        The source vertices.
    """

    hemi: str
    rr: np.ndarray
    tris: np.ndarray
    vertno: np.ndarray


def _check_args(src, method, max_distance, surface, dtype):
    """Check the arguments of :func:`compute_ground_metric`.

    Returns
    -------
    subject : str
        The subject of ``src``.
    max_distance : float | None
        The radius (mm), a float.
    dtype : numpy.dtype
        The floating dtype.
    """
    subject = _check_src(src)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    max_distance = _check_max_distance(max_distance, method)
    if not isinstance(surface, str):
        raise TypeError(f"surface must be a str, got {type(surface)}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    return subject, max_distance, dtype


def _read_mesh(s, subject, subjects_dir, surface):
    """Read the surface of source space ``s`` (a :class:`_HemiMesh`)."""
    hemi = _HEMIS[s["id"]]
    fname = subjects_dir / subject / "surf" / f"{hemi}.{surface}"
    if not fname.is_file():
        raise ValueError(
            f"surface {surface!r} not found for subject {subject!r}: {fname} "
            f"does not exist (known FreeSurfer surfaces: {', '.join(_SURFACES)})"
        )
    rr, tris = read_surface(fname, verbose=False)[:2]
    if len(rr) != s["np"]:
        raise ValueError(
            f"{fname} has {len(rr)} vertices but the source space has "
            f"{s['np']}: wrong subject, surface or subjects_dir"
        )
    return _HemiMesh(hemi, rr, tris, np.asarray(s["vertno"], dtype=np.int64))


def _compute_block(mesh, method, surface, max_distance, dtype, n_jobs):
    """Compute the distances between the sources of one hemisphere."""
    radius = "" if max_distance is None else f" up to {max_distance:g} mm"
    logger.info(
        f"Computing {method} geodesic distances{radius} between "
        f"{len(mesh.vertno)} sources on {mesh.hemi}.{surface} ({len(mesh.rr)} "
        "vertices)"
    )
    with ProgressBar(len(mesh.vertno), mesg=f"{mesh.hemi} sources") as bar:
        kwargs = dict(
            n_jobs=n_jobs, dtype=dtype, progress=bar.update_with_increment_value
        )
        if max_distance is None:
            return _geodesic_distances(
                mesh.rr, mesh.tris, mesh.vertno, method=method, **kwargs
            )
        return _sparse_geodesic_distances(
            mesh.rr, mesh.tris, mesh.vertno, max_distance, **kwargs
        )


def _write_dense(fname, block):
    np.save(fname, block, allow_pickle=False)


def _read_dense(fname):
    return np.load(fname, allow_pickle=False)


def _write_sparse(fname, block):
    # save_npz stores data, indices and indptr as they are: the explicit
    # zeros of the diagonal are kept
    sparse.save_npz(fname, block, compressed=False)


def _read_sparse(fname):
    return sparse.csr_array(sparse.load_npz(fname))


def _cached_block(mesh, subject, surface, method, max_distance, dtype, n_jobs):
    """Read one hemisphere's block from the cache, computing it if missing."""
    key = _cache_key(
        mesh.rr, mesh.tris, mesh.vertno, method, surface, dtype, max_distance
    )
    name = f"{subject}-{mesh.hemi}-{method}-{len(mesh.vertno)}"
    if max_distance is None:
        cache = _cache_dir() / f"{name}-{key}.npy"
        write, read = _write_dense, _read_dense
    else:
        cache = _cache_dir() / f"{name}-{max_distance:g}mm-{key}.npz"
        write, read = _write_sparse, _read_sparse
    if cache.is_file():
        logger.info(f"Reading the {mesh.hemi} ground metric from {cache}")
    compute = partial(
        _compute_block, mesh, method, surface, max_distance, dtype, n_jobs
    )
    return cached(cache, compute, write, read)


def _cached_median(meshes, subject, surface, method, dtype):
    """Estimate the median distance of a sparse metric (cached).

    The median of the full rows of ``_MEDIAN_SAMPLE`` sources (see
    :func:`compute_ground_metric`). Its cache key has no radius: one median
    serves the metrics of every ``max_distance``.
    """
    keys = [_cache_key(m.rr, m.tris, m.vertno, method, surface, dtype) for m in meshes]
    digest = hashlib.sha256(
        f"{'|'.join(keys)}|{_MEDIAN_SAMPLE}|{_MEDIAN_SEED}".encode()
    ).hexdigest()[:32]
    n_sources = sum(len(m.vertno) for m in meshes)
    cache = _cache_dir() / f"{subject}-{method}-{n_sources}-median-{digest}.npy"
    compute = partial(_estimate_median, meshes, dtype)
    return float(cached(cache, compute, _write_dense, _read_dense))


def _estimate_median(meshes, dtype):
    """Estimate the median distance from the full rows of sampled sources."""
    n_sources = sum(len(m.vertno) for m in meshes)
    logger.info(
        f"Estimating the median distance from the rows of "
        f"{min(_MEDIAN_SAMPLE, n_sources)} sources"
    )
    rows = [(m.rr, m.tris, m.vertno) for m in meshes]
    return np.array(_sampled_median(rows, _MEDIAN_SAMPLE, _MEDIAN_SEED, dtype=dtype))


def _cache_dir():
    """Return the folder of the cached ground metrics."""
    return get_data_dir() / "ground_metrics"


@fill_doc
@verbose
def compute_ground_metric(
    src,
    *,
    subjects_dir=None,
    surface="white",
    method="dijkstra",
    max_distance=None,
    dtype=np.float32,
    n_jobs=None,
    verbose=None,
):
    """Geodesic distances (mm) between the sources of a surface source space.

    Distances are measured along the full-resolution surface
    ``subjects_dir/subject/surf/{lh,rh}.{surface}`` (not only between source
    vertices), one block per hemisphere, infinite between hemispheres. The
    blocks are dense, or sparse with ``max_distance``. Results are cached on
    disk (``<data folder>/ground_metrics``), keyed on the mesh, the source
    vertices, the method, the surface, the dtype and ``max_distance``: a
    second call with the same inputs reads the cache.

    Parameters
    ----------
    src : SourceSpaces
        Surface source spaces (one per hemisphere), e.g. from
        :func:`mne.setup_source_space` or from the template of
        :mod:`mne_wasserstein.datasets`. Their subject is
        ``src[0]["subject_his_id"]``.
    subjects_dir : path-like | None
        The FreeSurfer subjects folder of the source space's subject. If
        ``None``, MNE's ``SUBJECTS_DIR`` (:func:`mne.utils.get_subjects_dir`), and
        if that is not set the subjects folder of the package's data folder
        (where :func:`mne_wasserstein.datasets.make_template` writes).
    surface : str
        The FreeSurfer surface to measure along (``"white"``, ``"pial"``,
        ...). It must have the vertices of the source space.
    method : "dijkstra" | "heat"
        ``"dijkstra"`` (default): shortest paths along the edges of the mesh.
        Exact for the edge graph (a true metric: symmetric, triangle
        inequality), equal to :func:`mne.add_source_space_distances`, and the
        fastest. Edge paths zig-zag, so it overestimates true geodesics, by
        a few percent on a regular mesh. ``"heat"``: the heat method of
        Crane et al. (2013): cotangent Laplacian and lumped mass matrix, heat
        step ``t = h ** 2`` (``h`` the mean edge length), normalised gradient
        field, Poisson solve, shifted so that the source is at 0; one sparse
        LU factorisation (scipy) per hemisphere reused for all sources; the
        result is symmetrised. It has no systematic bias and is accurate to
        about a percent on a smooth, regular mesh, but on the folded cortex
        it is slower and less reliable: near obtuse triangles some of its
        distances exceed Dijkstra's (an upper bound of the true geodesic),
        and some triplets of sources violate the triangle inequality.
        Dijkstra is the default because the OT penalty needs a robust,
        exact metric more than unbiased absolute distances: its overestimate
        is smooth and largely absorbed by the hyperparameters, which are
        relative to :meth:`GroundMetric.median`. Use ``"heat"`` on smooth,
        well-shaped meshes when unbiased distances in millimetres matter.
        The two methods are measured against each other and against exact
        geodesics in ``benchmarks/README.rst``.
    max_distance : float | None
        ``None`` (default): dense blocks, all the distances (memory
        ``n_sources_h ** 2`` per hemisphere). A radius in mm: sparse blocks
        (:class:`scipy.sparse.csr_array`) that store only the distances
        ``<= max_distance`` (compared in ``dtype``), exactly the entries of
        the dense metric up to the radius; each Dijkstra search stops at the
        radius, so time and memory grow with ``n_sources_h`` times the
        number of sources within the radius. Unstored entries mean "farther
        than ``max_distance``" (no transport); the diagonal is stored, with
        explicit zeros (see :class:`GroundMetric` for the contract). Needs
        ``method="dijkstra"``. The stored entries cannot give
        :meth:`GroundMetric.median` (they miss every distance above the
        radius): it is estimated from the full Dijkstra rows of 400 sources
        drawn uniformly without replacement from all the sources
        (``numpy.random.default_rng(0)``; every row when there are fewer
        sources), each row giving the distances to the other sources of its
        hemisphere. The memory saved and the error of this estimate are
        measured in ``benchmarks/README.rst``.
    dtype : dtype
        The dtype of the blocks (float32 halves the memory).
    %(n_jobs)s
    %(verbose)s

    Returns
    -------
    ground_metric : GroundMetric
        The distances, one block per hemisphere in the order of ``src``,
        rows ordered like ``src[h]["vertno"]``; sparse blocks if
        ``max_distance`` is given.

    References
    ----------
    K. Crane, C. Weischedel, M. Wardetzky. Geodesics in heat: a new approach
    to computing distance based on heat flow. ACM Transactions on Graphics,
    32(5), 2013.
    """
    subject, max_distance, dtype = _check_args(
        src, method, max_distance, surface, dtype
    )
    subjects_dir = get_subjects_dir(subjects_dir)
    if subjects_dir is None:  # no SUBJECTS_DIR set: the package's subjects
        subjects_dir = get_data_dir() / "subjects"
    subjects_dir = Path(subjects_dir).expanduser()
    meshes = [_read_mesh(s, subject, subjects_dir, surface) for s in src]
    blocks = [
        _cached_block(mesh, subject, surface, method, max_distance, dtype, n_jobs)
        for mesh in meshes
    ]
    median = None
    if max_distance is not None:  # the stored entries miss the larger distances
        median = _cached_median(meshes, subject, surface, method, dtype)
    return GroundMetric(
        blocks,
        [mesh.vertno for mesh in meshes],
        [mesh.hemi for mesh in meshes],
        subject=subject,
        surface=surface,
        method=method,
        max_distance=max_distance,
        median=median,
    )
