"""Geodesic ground metrics between the sources of cortical source spaces."""

import hashlib
from pathlib import Path

import numpy as np
from mne import read_surface
from mne.utils import ProgressBar, get_subjects_dir, logger, verbose

from ._geodesic import _geodesic_distances
from .utils import _cached, fill_doc, get_data_dir

__all__ = ["GroundMetric", "compute_ground_metric"]

_METHODS = ("dijkstra", "heat")
_SURFACES = ("white", "pial", "inflated", "orig", "smoothwm", "sphere")
_HEMIS = {101: "lh", 102: "rh"}  # FIFFV_MNE_SURF_LEFT_HEMI / RIGHT_HEMI
_CACHE_VERSION = "1"


class GroundMetric:
    """Geodesic distances (mm) between the sources of a source space.

    Distances between hemispheres are infinite (no transport across the
    midline), so the metric is stored as one dense block per hemisphere.

    Parameters
    ----------
    blocks : list of array, shape (n_sources_h, n_sources_h)
        The distances in millimetres within each hemisphere; symmetric with
        a zero diagonal.
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

    Attributes
    ----------
    n_sources : int
        The total number of sources (rows of :meth:`to_dense`).
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
    ):
        if len(blocks) != len(vertices) or len(blocks) != len(hemis):
            raise ValueError("blocks, vertices and hemis must have the same length")
        for block, vertno in zip(blocks, vertices, strict=True):
            if block.shape != (len(vertno), len(vertno)):
                raise ValueError(
                    f"a block of shape {block.shape} does not match "
                    f"{len(vertno)} vertices"
                )
        self.blocks = list(blocks)
        self.vertices = [np.asarray(v) for v in vertices]
        self.hemis = list(hemis)
        self.subject = subject
        self.surface = surface
        self.method = method

    @property
    def n_sources(self):
        """The total number of sources."""
        return sum(len(v) for v in self.vertices)

    @property
    def dtype(self):
        """The dtype of the blocks."""
        return self.blocks[0].dtype if self.blocks else np.dtype(np.float64)

    def _offdiagonal(self):
        return np.concatenate(
            [b[~np.eye(len(b), dtype=bool)] for b in self.blocks] or [np.zeros(0)]
        )

    def median(self):
        """Median distance (mm) between two distinct sources of a hemisphere.

        The reference scale of the OT hyperparameters: the diagonal (zeros)
        and the infinite distances between hemispheres are left out.
        """
        return float(np.median(self._offdiagonal()))

    def max(self):
        """Largest finite distance (mm)."""
        return float(max(b.max() for b in self.blocks))

    def to_dense(self):
        """Full matrix (n_sources, n_sources): np.inf between hemispheres."""
        dense = np.full((self.n_sources, self.n_sources), np.inf, dtype=self.dtype)
        start = 0
        for block in self.blocks:
            stop = start + len(block)
            dense[start:stop, start:stop] = block
            start = stop
        return dense

    def __repr__(self):  # noqa: D105
        sizes = " + ".join(
            f"{len(v)} ({h})" for v, h in zip(self.vertices, self.hemis, strict=True)
        )
        return (
            f"<GroundMetric | {self.subject}, {self.surface}, {self.method}, "
            f"{sizes} sources, median {self.median():.1f} mm>"
        )


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


def _cache_key(rr, tris, vertno, method, surface, dtype):
    digest = hashlib.sha256()
    for array in (rr.astype("<f8"), tris.astype("<i8"), vertno.astype("<i8")):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(f"{method}|{surface}|{np.dtype(dtype).str}|{_CACHE_VERSION}".encode())
    return digest.hexdigest()[:32]


@fill_doc
@verbose
def compute_ground_metric(
    src,
    *,
    subjects_dir=None,
    surface="white",
    method="dijkstra",
    dtype=np.float32,
    n_jobs=None,
    verbose=None,
):
    """Geodesic distances (mm) between the sources of a surface source space.

    Distances are measured along the full-resolution surface
    ``subjects_dir/subject/surf/{lh,rh}.{surface}`` (not only between source
    vertices), one dense block per hemisphere, infinite between hemispheres.
    Results are cached on disk (``<data folder>/ground_metrics``), keyed on
    the mesh, the source vertices, the method, the surface and the dtype: a
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
        fastest (ico4 on fsaverage5 in a few seconds). Edge paths zig-zag,
        so it overestimates true geodesics: on an ico5 sphere of radius
        80 mm (vertex spacing about 4 mm) the median relative error is
        +6.7 percent and the 95th percentile 12.8 percent for pairs more than 10 mm
        apart. ``"heat"``: the heat method of Crane et al. (2013):
        cotangent Laplacian and lumped mass matrix, heat step
        ``t = h ** 2`` (``h`` the mean edge length), normalised gradient
        field, Poisson solve, shifted so that the source is at 0; one sparse
        LU factorisation (scipy) per hemisphere reused for all sources; the
        result is symmetrised. On the same sphere its median relative error
        is 0.7 percent and the 95th percentile 1.3 percent, with no
        systematic bias. On the folded fsaverage5 white surface (ico4
        sources) it is about 2.5 times slower than Dijkstra and less
        reliable: its distances are 8 percent shorter than Dijkstra's in the
        median, as expected, but some exceed Dijkstra's (an upper bound of
        the true geodesic) by up to 80 percent near obtuse triangles, and
        1.3 percent of random triplets violate the triangle inequality, by
        up to 39 mm.
        Dijkstra is the default because the OT penalty needs a robust,
        exact metric more than unbiased absolute distances: its
        overestimate (2 to 25 percent above the heat method on the cortex,
        5th to 95th percentile) is smooth and largely
        absorbed by the hyperparameters, which are relative to
        :meth:`GroundMetric.median`. Use ``"heat"`` on smooth, well-shaped
        meshes when unbiased distances in millimetres matter.
    dtype : dtype
        The dtype of the blocks (float32 halves the memory).
    %(n_jobs)s
    %(verbose)s

    Returns
    -------
    ground_metric : GroundMetric
        The distances, one block per hemisphere in the order of ``src``,
        rows ordered like ``src[h]["vertno"]``.

    References
    ----------
    K. Crane, C. Weischedel, M. Wardetzky. Geodesics in heat: a new approach
    to computing distance based on heat flow. ACM Transactions on Graphics,
    32(5), 2013.
    """
    subject = _check_src(src)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not isinstance(surface, str):
        raise TypeError(f"surface must be a str, got {type(surface)}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    subjects_dir = get_subjects_dir(subjects_dir)
    if subjects_dir is None:  # no SUBJECTS_DIR set: the package's subjects
        subjects_dir = get_data_dir() / "subjects"
    subjects_dir = Path(subjects_dir).expanduser()
    cache_dir = get_data_dir() / "ground_metrics"

    blocks, vertices, hemis = [], [], []
    for s in src:
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
        vertno = np.asarray(s["vertno"], dtype=np.int64)
        key = _cache_key(rr, tris, vertno, method, surface, dtype)
        cache = cache_dir / f"{subject}-{hemi}-{method}-{len(vertno)}-{key}.npy"
        if cache.is_file():
            logger.info(f"Reading the {hemi} ground metric from {cache}")

        def compute(rr=rr, tris=tris, vertno=vertno, hemi=hemi):
            logger.info(
                f"Computing {method} geodesic distances between {len(vertno)} "
                f"sources on {hemi}.{surface} ({len(rr)} vertices)"
            )
            done = [0]
            with ProgressBar(len(vertno), mesg=f"{hemi} sources") as bar:

                def progress(n_done):
                    done[0] += n_done
                    bar.update(done[0])

                return _geodesic_distances(
                    rr,
                    tris,
                    vertno,
                    method=method,
                    n_jobs=n_jobs,
                    dtype=dtype,
                    progress=progress,
                )

        blocks.append(
            _cached(
                cache,
                compute,
                lambda f, d: np.save(f, d, allow_pickle=False),
                lambda f: np.load(f, allow_pickle=False),
            )
        )
        vertices.append(vertno)
        hemis.append(hemi)
    return GroundMetric(
        blocks, vertices, hemis, subject=subject, surface=surface, method=method
    )
