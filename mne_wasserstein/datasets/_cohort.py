"""Synthetic multi-subject cohorts: own meshes, registrations, forwards."""

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mne import (
    Covariance,
    SourceSpaces,
    make_bem_model,
    make_bem_solution,
    make_forward_solution,
    morph_source_spaces,
    read_bem_solution,
    read_cov,
    read_forward_solution,
    read_source_spaces,
    read_trans,
    setup_source_space,
    write_bem_solution,
    write_cov,
    write_forward_solution,
    write_source_spaces,
)
from mne.io import read_info, write_info
from mne.parallel import parallel_func
from mne.transforms import Transform
from mne.utils import logger, verbose
from scipy.spatial import cKDTree

from .._cache import cached, seed_from
from ..inverse import aligned_order
from ..utils import fill_doc
from ._mesh import (
    _clamp_norm,
    _fibonacci_sphere,
    _locate_on_sphere,
    _log_normal_field,
    _random_rotation,
    _self_intersections,
    _smooth_warp,
    _sphere_triangulation,
    _star_radius,
    _tangential_warp,
    _umbrella_smooth,
    _vertex_normals,
)
from ._sensors import _make_info
from ._template import (
    _HEMIS,
    _MARKER,
    TEMPLATE,
    _is_complete,
    _publish,
    _subjects_dir,
    _template_bem_surfaces,
    _template_fiducials,
    _template_head,
    _template_meshes,
    _tmp_dir,
    _write_subject_files,
    make_template,
)

SPACINGS = ("ico3", "ico4", "ico5", "oct4", "oct5", "oct6")
MODALITIES = ("meg", "eeg", "meg+eeg")
_SUBJECT_FORMAT = 3
# anatomy of the synthetic subjects
N_VERTICES = (20_000, 30_000)  # per hemisphere, drawn uniformly
HEAD_SCALE = (0.92, 1.08)  # isotropic head-size factor
SKULL_MARGIN_WHITE = 2.0  # mm, white vertices stay this far inside the skull
SKULL_MARGIN_PIAL = 0.5  # mm
HEMI_MARGIN = 1.0  # mm, folding changes keep the hemispheres this far apart
# individual anatomy (anatomy=1): residual of the spherical registration and
# folding depth, see make_cohort's Notes for the choice of the values
REG_RMS = 3.0  # mm on the white surface, RMS of the registration residual
REG_LENGTH = 10.0  # mm on the white surface, length scale of the residual
DEPTH_SD = 0.2  # standard deviation of the log of the folding-depth factor
DEPTH_LENGTH = 15.0  # mm on the white surface, length scale of the factor
HULL_ITER = 100  # umbrella smoothing steps that remove the template's folds
ANATOMY_LEVELS = {"template": None, "individual": 1.0, "exaggerated": 2.5}
# anatomy="warp": the cohorts built before issue 20 (a smooth warp of the
# template, whose folding all subjects share)
WARP_STEPS = 4  # composed random fields, each injective
WARP_RMS = 2.0  # mm, root mean square of each field
WARP_LENGTH = 6.0  # mm, spatial scale of the fields
# a new intersection of the white surfaces halves the folding change about
# it, at most _MAX_HALVINGS times (then the change is dropped); intersections
# within _DEFECT_RADIUS of one of the template's own are the template's
_MAX_HALVINGS = 6
_DEFECT_RADIUS = 10.0  # mm
_FIX_LENGTH = 8.0  # mm, the length scale of the halving about intersections
# noise: standard deviations of mne.make_ad_hoc_cov, varied per subject
NOISE_STD = {"grad": 5e-13, "mag": 20e-15, "eeg": 0.2e-6}
CONDUCTIVITY = {1: (0.3,), 3: (0.3, 0.006, 0.3)}


@dataclass
class Cohort:
    """A synthetic multi-subject M/EEG cohort.

    Attributes
    ----------
    subjects_dir : Path
        The FreeSurfer subjects folder holding the template and the subjects.
    subjects : list of str
        The subject names (one FreeSurfer subject each).
    subject_ref : str
        The template subject (``"fsaverage5"``).
    src_ref : SourceSpaces
        The template source space (the common source space of the cohort).
    src : list of SourceSpaces
        Per subject, ``src_ref`` morphed onto the subject through the
        ``sphere.reg`` registrations (vertex numbers of the subject's mesh).
    forwards : list of Forward
        Per subject, the free-orientation forward solution on ``src[s]``.
    info : list of Info
        Per subject, the measurement info (sensor positions, device->head).
    noise_covs : list of Covariance
        Per subject, the sensor noise covariance.
    trans : list of Transform
        Per subject, the head->MRI transform.
    scale : ndarray, shape (n_subjects,)
        The head-size factor of each subject relative to the template.
    spacing, modality : str
        The arguments the cohort was built with.
    random_state : int
        The seed of the cohort: subject ``i`` of any cohort with this seed and
        anatomy level has the same anatomy.
    anatomy : str | float
        The anatomy level: ``"template"``, ``"warp"`` or the number scaling the
        individual variability (``"individual"`` is 1.0, ``"exaggerated"``
        2.5).
    """

    subjects_dir: Path
    subjects: list
    subject_ref: str
    src_ref: SourceSpaces
    src: list
    forwards: list
    info: list
    noise_covs: list
    trans: list
    scale: np.ndarray
    spacing: str
    modality: str
    random_state: int
    anatomy: object

    @property
    def n_subjects(self):
        """The number of subjects."""
        return len(self.subjects)

    def source_order(self, s):
        """Return where subject ``s``'s sources are in the reference order.

        Parameters
        ----------
        s : int
            The subject's index.

        Returns
        -------
        order : ndarray of int, shape (n_sources,)
            The indices of the subject's sources (in the order of
            ``src[s]``) that match the sources of ``src_ref``, in that
            order: :func:`mne_wasserstein.inverse.aligned_order` on this
            cohort.
        """
        return aligned_order(
            self.src_ref,
            self.src[s],
            self.subject_ref,
            self.subjects[s],
            self.subjects_dir,
        )

    def __repr__(self):  # noqa: D105
        n_src = sum(s["nuse"] for s in self.src_ref)
        return (
            f"<Cohort | {self.n_subjects} subjects, {self.modality}, "
            f"{self.spacing} ({n_src} sources), anatomy {self.anatomy!r}, "
            f"subjects_dir={self.subjects_dir}>"
        )


def _check_anatomy(anatomy):
    """Return the canonical anatomy level: a name or a float."""
    if isinstance(anatomy, str):
        _check_choice(anatomy, "anatomy", (*ANATOMY_LEVELS, "warp"))
        level = ANATOMY_LEVELS.get(anatomy)
        return anatomy if level is None else level
    if isinstance(anatomy, (int, float, np.integer, np.floating)) and not isinstance(
        anatomy, bool
    ):
        if not np.isfinite(anatomy) or anatomy < 0:
            raise ValueError(
                f"anatomy, if a number, must be finite and >= 0, got {anatomy}"
            )
        return float(anatomy)
    raise TypeError(
        "anatomy must be 'template', 'individual', 'exaggerated', 'warp' or a "
        f"number >= 0, got {type(anatomy).__name__}"
    )


def _anatomy_tag(level):
    if isinstance(level, str):
        return level
    return "a" + f"{level:g}".replace(".", "p").replace("+", "")


def _subject_name(seed, level, index):
    return f"synth{seed}-{_anatomy_tag(level)}-{index:02d}"


def _subject_rng(seed, index):
    return np.random.default_rng([seed, index])


def _interpolate(values, tris, tri_idx, weights):
    return np.einsum("nk,nkj->nj", weights, values[tris[tri_idx]])


@functools.cache
def _template_folding(hemi):
    """Return the folding component of the template's white surface.

    Returns the height of each template vertex above the smoothed surface
    (the template with its folds removed by ``HULL_ITER`` umbrella steps) along
    the smoothed surface's normal, times that normal: (n_vertices, 3), mm.
    """
    rr, tris = _template_meshes()[(hemi, "white")]
    hull = _umbrella_smooth(rr, tris, HULL_ITER)
    normal = _vertex_normals(hull, tris)
    return np.sum((rr - hull) * normal, axis=1, keepdims=True) * normal


@functools.cache
def _template_defects():
    """Centroids of the intersecting triangles of the template's white surfaces.

    fsaverage5's hemispheres cross each other at the medial wall near
    (1, -39, 13) mm and its right white surface folds onto itself once near
    (47, -22, -26) mm.
    """
    template = _template_meshes()
    rr, tris = _both_hemispheres({h: template[(h, "white")] for h in _HEMIS})
    pairs = _self_intersections(rr, tris)
    return rr[tris[pairs.ravel()]].mean(axis=1)


def _both_hemispheres(meshes):
    offset = len(meshes["lh"][0])
    rr = np.concatenate([meshes[h][0] for h in _HEMIS])
    tris = np.concatenate([meshes["lh"][1], meshes["rh"][1] + offset])
    return rr, tris


def _new_intersections(rr, tris, defects):
    """Centroids of intersecting triangles not within 10 mm of a template defect."""
    pairs = _self_intersections(rr, tris)
    centroids = rr[tris[pairs.ravel()]].mean(axis=1)
    if len(defects) == 0 or len(centroids) == 0:
        return centroids
    dist, _ = cKDTree(defects).query(centroids)
    return centroids[dist > _DEFECT_RADIUS]


def _skull_gap(points):
    """Radial distance from points to the template's inner skull (mm)."""
    bem_rr, bem_tris = _template_bem_surfaces()
    skull = bem_rr["inner_skull"]
    center = skull.mean(axis=0)
    return _star_radius(center, skull, bem_tris, points) - np.linalg.norm(
        points - center, axis=1
    )


def _skull_clamp(rr, disp, margin, *, exact=True):
    """Shrink displacements so that ``rr + disp`` stays inside the skull.

    Each displacement is first shrunk to the radial gap (less ``margin``)
    between its point and the inner skull. If ``exact``, a displacement that
    still ends closer than ``margin`` to the skull (where the skull is
    oblique) is then halved until it does not (``anatomy="warp"`` keeps the
    first step only, as before).
    """
    disp = _clamp_norm(disp, _skull_gap(rr) - margin)
    if not exact:
        return disp
    for _ in range(_MAX_HALVINGS):
        out = _skull_gap(rr + disp) < margin
        if not out.any():
            break
        disp[out] /= 2
    else:
        disp[out] = 0.0
    return disp


def _midline_clamp(hemis, disp):
    """Shrink displacements to less than half the gap between hemispheres.

    ``hemis`` are the vertices of the left and right hemisphere; each vertex
    moves by at most half (less ``HEMI_MARGIN``) its distance to the nearest
    vertex of the other hemisphere, so that the medial surfaces stay apart.
    """
    gap = np.concatenate(
        [cKDTree(other).query(rr)[0] for rr, other in (hemis, hemis[::-1])]
    )
    return _clamp_norm(disp, (gap - HEMI_MARGIN) / 2)


def _warp_anatomy(meshes, rng):
    """Warp both hemispheres by one smooth warp (``anatomy="warp"``).

    The warp is clamped near the inner skull so that sources stay inside it.
    """
    white = np.concatenate([meshes[(h, "white")][0] for h in _HEMIS])
    disp = _smooth_warp(
        white, rng, n_steps=WARP_STEPS, rms=WARP_RMS, length=WARP_LENGTH
    )
    splits = [len(meshes[("lh", "white")][0])]
    for kind, margin in (("white", SKULL_MARGIN_WHITE), ("pial", SKULL_MARGIN_PIAL)):
        rr = np.concatenate([meshes[(h, kind)][0] for h in _HEMIS])
        warped = rr + _skull_clamp(rr, disp, margin, exact=False)
        for hemi, new in zip(_HEMIS, np.split(warped, splits), strict=True):
            meshes[(hemi, kind)][0] = new


def _sphere_to_white(hemi):
    """Mean length ratio of the template's white surface to its sphere."""
    template = _template_meshes()
    areas = []
    for kind in ("white", "sphere"):
        rr, tris = template[(hemi, kind)]
        cross = np.cross(
            rr[tris[:, 1]] - rr[tris[:, 0]], rr[tris[:, 2]] - rr[tris[:, 0]]
        )
        areas.append(np.linalg.norm(cross, axis=1).sum() / 2)
    return np.sqrt(areas[0] / areas[1])


def _individual_anatomy(meshes, lattice, level, rng):
    """Registration residual and folding depth of one subject, in place.

    ``lattice[hemi]`` are the unit vectors of the subject's ``sphere.reg``.
    Each subject vertex takes the template's anatomy at its registered
    position moved by a smooth tangential displacement (the registration
    residual); the folding component of the template (:func:`_template_folding`)
    is then scaled by a smooth log-normal factor, on the white and the pial
    surfaces alike. Where the folding change would make the white surfaces
    intersect (beyond the crossings of the template, see
    :func:`_template_defects`, and of its resampling on the lattice) it is
    halved about the intersections until they do not.
    """
    template = _template_meshes()
    fold_disp = {}
    for hemi in _HEMIS:
        sphere_rr, sphere_tris = template[(hemi, "sphere.reg")]
        radius = np.linalg.norm(sphere_rr, axis=1).mean()
        mm = 1.0 / _sphere_to_white(hemi)  # sphere mm per white-surface mm
        n_steps = max(1, int(np.ceil(level**2)))
        moved = _tangential_warp(
            lattice[hemi],
            rng,
            radius=radius,
            rms=level * REG_RMS * mm / np.sqrt(n_steps),
            length=REG_LENGTH * mm,
            n_steps=n_steps,
        )
        tri_idx, weights = _locate_on_sphere(moved, sphere_rr, sphere_tris)
        for kind in ("white", "pial", "inflated"):
            meshes[(hemi, kind)][0] = _interpolate(
                template[(hemi, kind)][0], sphere_tris, tri_idx, weights
            )
        factor = _log_normal_field(
            moved, rng, radius=radius, sd=level * DEPTH_SD, length=DEPTH_LENGTH * mm
        )
        folding = _interpolate(_template_folding(hemi), sphere_tris, tri_idx, weights)
        fold_disp[hemi] = (factor[:, np.newaxis] - 1.0) * folding
    disp = np.concatenate([fold_disp[h] for h in _HEMIS])
    splits = [len(fold_disp["lh"])]
    base = {
        kind: _both_hemispheres({h: meshes[(h, kind)] for h in _HEMIS})
        for kind in ("white", "pial")
    }
    for kind, margin in (("white", SKULL_MARGIN_WHITE), ("pial", SKULL_MARGIN_PIAL)):
        disp = _skull_clamp(base[kind][0], disp, margin)
        disp = _midline_clamp(np.split(base[kind][0], splits), disp)
    white, tris = base["white"]
    # crossings of the resampled template itself are not the change's
    defects = _template_defects()
    defects = np.concatenate([defects, _new_intersections(white, tris, defects)])
    for _ in range(_MAX_HALVINGS):
        hits = _new_intersections(white + disp, tris, defects)
        if len(hits) == 0:
            break
        # halve the change about the intersections (Gaussian taper)
        dist, _ = cKDTree(hits).query(white)
        disp *= 1 - 0.5 * np.exp(-(dist**2) / (2 * _FIX_LENGTH**2))[:, np.newaxis]
    else:
        disp[:] = 0.0
    for kind, (rr, _) in base.items():
        for hemi, new in zip(_HEMIS, np.split(rr + disp, splits), strict=True):
            meshes[(hemi, kind)][0] = new


def _template_anatomy(rng):
    """Return the template's meshes in a vertex order of the subject's own."""
    template = _template_meshes()
    meshes = {}
    for hemi in _HEMIS:
        n_vert = len(template[(hemi, "white")][0])
        perm = rng.permutation(n_vert)  # new vertex k is template vertex perm[k]
        inv = np.argsort(perm)
        tris = inv[template[(hemi, "white")][1]].astype(np.int32)
        for kind in ("white", "pial", "inflated", "sphere.reg"):
            meshes[(hemi, kind)] = [template[(hemi, kind)][0][perm], tris]
        rr = meshes[(hemi, "sphere.reg")][0]
        meshes[(hemi, "sphere")] = [rr @ _random_rotation(rng).T, tris]
    return meshes


def _lattice_anatomy(rng):
    """Meshes of the template resampled on a subject's own sphere lattice."""
    template = _template_meshes()
    meshes, lattice = {}, {}
    for hemi in _HEMIS:
        n_vert = int(rng.integers(N_VERTICES[0], N_VERTICES[1] + 1))
        unit = _fibonacci_sphere(n_vert, _random_rotation(rng))[rng.permutation(n_vert)]
        tris = _sphere_triangulation(unit)
        sphere_rr, sphere_tris = template[(hemi, "sphere.reg")]
        tri_idx, weights = _locate_on_sphere(unit, sphere_rr, sphere_tris)
        for kind in ("white", "pial", "inflated"):
            rr = _interpolate(template[(hemi, kind)][0], sphere_tris, tri_idx, weights)
            meshes[(hemi, kind)] = [rr, tris]
        radius = np.linalg.norm(sphere_rr, axis=1).mean()
        meshes[(hemi, "sphere.reg")] = [unit * radius, tris]
        # the native (unregistered) sphere: registration is not a no-op
        meshes[(hemi, "sphere")] = [unit @ _random_rotation(rng).T * radius, tris]
        lattice[hemi] = unit
    return meshes, lattice


def _write_subject(subjects_dir, subject, seed, index, level):
    """Write the anatomy of one synthetic subject (cached)."""
    subject_dir = subjects_dir / subject
    if _is_complete(subject_dir, _SUBJECT_FORMAT):
        return
    rng = _subject_rng(seed, index)
    if level == "template":
        scale = 1.0
        meshes = _template_anatomy(rng)
    else:
        # the head size and the lattice of subject ``index`` are the same at
        # every level; so are its anatomy fields at every numeric level
        scale = float(rng.uniform(*HEAD_SCALE))
        meshes, lattice = _lattice_anatomy(rng)
        if level == "warp":
            _warp_anatomy(meshes, rng)
        elif level > 0:
            _individual_anatomy(
                meshes, lattice, level, np.random.default_rng([seed, index, 1])
            )
    for hemi in _HEMIS:
        for kind in ("white", "pial", "inflated"):
            meshes[(hemi, kind)][0] = meshes[(hemi, kind)][0] * scale
    bem_rr, bem_tris = _template_bem_surfaces()
    bem_rr = {name: rr * scale for name, rr in bem_rr.items()}
    trans = read_trans(subjects_dir / TEMPLATE / "bem" / f"{TEMPLATE}-trans.fif")
    trans_mat = trans["trans"].copy()
    # scaling the anatomy about the MRI origin scales the fiducials, hence
    # moves the head-frame origin by the same factor
    trans_mat[:3, 3] *= scale
    fids = _template_fiducials()
    for fid in fids:
        fid["r"] = fid["r"] * scale
    head_rr, head_tris = _template_head()
    tmp = _tmp_dir(subjects_dir, subject)
    try:
        _write_subject_files(
            tmp,
            subject,
            {k: tuple(v) for k, v in meshes.items()},
            bem_rr,
            bem_tris,
            Transform("head", "mri", trans_mat),
            fids,
            (head_rr * scale, head_tris),
        )
        meta = {
            "format": _SUBJECT_FORMAT,
            "scale": scale,
            "seed": seed,
            "index": index,
            "anatomy": _anatomy_tag(level),
        }
        _publish(tmp, subject_dir, meta)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_quiet(reader):
    return lambda fname: reader(fname, verbose=False)


def _template_src(subjects_dir, spacing):
    fname = subjects_dir / TEMPLATE / "bem" / f"{TEMPLATE}-{spacing}-src.fif"
    return cached(
        fname,
        lambda: setup_source_space(
            TEMPLATE, spacing, subjects_dir=subjects_dir, add_dist=False, verbose=False
        ),
        lambda f, s: write_source_spaces(f, s, verbose=False),
        _read_quiet(read_source_spaces),
    )


def _bem_solution(subjects_dir, subject, modality):
    """One-layer (MEG) or three-layer (EEG) ico4 BEM solution, cached."""
    cache = subjects_dir / subject / "mne_wasserstein"
    n_layers = 1 if modality == "meg" else 3
    return cached(
        cache / f"{n_layers}layer-ico4-bem-sol.fif",
        lambda: make_bem_solution(
            make_bem_model(
                subject,
                ico=4,
                conductivity=CONDUCTIVITY[n_layers],
                subjects_dir=subjects_dir,
                verbose=False,
            ),
            verbose=False,
        ),
        lambda f, s: write_bem_solution(f, s, verbose=False),
        _read_quiet(read_bem_solution),
    )


def _noise_cov(info, rng):
    """Diagonal noise covariance: ad-hoc levels, a subject factor, jitter."""
    types = info.get_channel_types()
    factor = np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
    std = np.array([NOISE_STD[t] for t in types]) * factor
    std *= np.exp(0.2 * rng.standard_normal(len(std)))
    return Covariance(
        np.diag(std**2),
        info["ch_names"],
        bads=[],
        projs=info["projs"],
        nfree=1000,
        verbose=False,
    )


def _subject_data(subjects_dir, subject, seed, index, level, spacing, modality):
    """Anatomy, aligned source space, info, noise covariance and forward."""
    _write_subject(subjects_dir, subject, seed, index, level)
    cache = subjects_dir / subject / "mne_wasserstein"
    trans = read_trans(subjects_dir / subject / "bem" / f"{subject}-trans.fif")
    src_ref = _template_src(subjects_dir, spacing)
    src = cached(
        cache / f"{spacing}-aligned-src.fif",
        lambda: morph_source_spaces(
            src_ref, subject, subjects_dir=subjects_dir, verbose=False
        ),
        lambda f, s: write_source_spaces(f, s, verbose=False),
        _read_quiet(read_source_spaces),
    )
    # sensors and noise depend on the subject and modality only; the
    # subjects of a template cohort all have those of subject 0
    sensor_index = 0 if level == "template" else index
    rng = np.random.default_rng([seed, sensor_index, MODALITIES.index(modality)])
    scale = float(_subject_scale(subjects_dir / subject))
    info = cached(
        cache / f"{modality.replace('+', '-')}-info.fif",
        lambda: _make_info(modality, scale, rng),
        lambda f, i: write_info(f, i),
        _read_quiet(read_info),
    )
    noise_cov = cached(
        cache / f"{modality.replace('+', '-')}-cov.fif",
        lambda: _noise_cov(info, rng),
        lambda f, c: write_cov(f, c, verbose=False),
        _read_quiet(read_cov),
    )

    def compute_forward():
        bem = _bem_solution(subjects_dir, subject, modality)
        fwd = make_forward_solution(
            info,
            trans,
            src,
            bem,
            meg="meg" in modality,
            eeg="eeg" in modality,
            n_jobs=1,
            verbose=False,
        )
        n_src = sum(s["nuse"] for s in src)
        if fwd["nsource"] != n_src:  # pragma: no cover (see SKULL_MARGIN_WHITE)
            raise RuntimeError(
                f"{n_src - fwd['nsource']} sources of {subject} were dropped by "
                "make_forward_solution (outside the inner skull)."
            )
        return fwd

    fwd = cached(
        cache / f"{modality.replace('+', '-')}-{spacing}-fwd.fif",
        compute_forward,
        lambda f, fw: write_forward_solution(f, fw, verbose=False),
        _read_quiet(read_forward_solution),
    )
    return src, info, noise_cov, fwd, trans, scale


def _subject_scale(subject_dir):
    return json.loads((subject_dir / _MARKER).read_text())["scale"]


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )


@fill_doc
@verbose
def make_cohort(
    n_subjects,
    *,
    spacing="ico4",
    modality="meg",
    anatomy="individual",
    subjects_dir=None,
    random_state=None,
    n_jobs=None,
    verbose=None,
):
    """Build (or load from the cache) a synthetic multi-subject cohort.

    Each subject is a FreeSurfer-style subject written next to the template
    ``fsaverage5`` (see :func:`make_template`), with

    - its own cortical mesh per hemisphere: 20,000-30,000 vertices (own count)
      on a randomly rotated Fibonacci lattice of the sphere (own ordering),
      triangulated as a convex hull; ``surf/?h.sphere.reg`` is the lattice
      itself, registering the subject to the template (``surf/?h.sphere`` is
      a rotated, unregistered copy); its white, pial and inflated surfaces
      are the template's at the registered positions, changed by the
      individual anatomy (``anatomy``, below);
    - a head-size factor (uniform in 0.92-1.08) applied to its cortex, BEM
      surfaces, scalp, fiducials and head<->MRI transform;
    - its sensors: for MEG 102 magnetometers and 204 planar gradiometers on
      the Vectorview-like helmet surface that ships with mne, with its own
      head position in the helmet; for EEG the 10-05 positions on fsaverage,
      scaled to the head, with an average-reference projector;
    - a diagonal noise covariance (the ad-hoc levels of
      :func:`mne.make_ad_hoc_cov` times a subject factor in 0.7-1.4 and a
      per-channel jitter);
    - its forward solution by :func:`mne.make_forward_solution` with an ico4
      BEM (one layer, the inner skull, for MEG; three layers for EEG, which
      takes about a minute per subject, once) on the
      template source space morphed onto the subject
      (:func:`mne.morph_source_spaces`), so that source ``j`` of every subject
      lies at the same place of the template's registered sphere.

    Everything is cached on disk: subject ``i`` of a cohort depends only on
    ``random_state``, ``anatomy`` and ``i``, so cohorts with the same seed and
    anatomy share subjects. At every numeric anatomy level subject ``i`` has
    the same head size, lattice, sensors and noise, and the same random
    fields scaled by the level, so that levels can be compared subject by
    subject.

    Parameters
    ----------
    n_subjects : int
        The number of subjects (>= 1).
    spacing : str
        The source spacing of the template source space (``"ico3"``,
        ``"ico4"``, ``"ico5"``, ``"oct4"``, ``"oct5"`` or ``"oct6"``).
    modality : ``"meg"`` | ``"eeg"`` | ``"meg+eeg"``
        The sensors.
    anatomy : ``"individual"`` | ``"template"`` | ``"exaggerated"`` | ``"warp"`` | float
        How the subjects' cortices differ (see Notes):

        - a number ``a >= 0`` scales the individual variability: a
          registration residual of nominal RMS ``3 a`` mm and a folding-depth factor
          ``exp(0.2 a g)`` (``g`` a smooth unit Gaussian field); ``0`` is the
          template's folding, resampled on each subject's own mesh, with its
          own head size, sensors and noise (gains differ a little);
        - ``"individual"`` (the default) is ``1.0``, ``"exaggerated"`` is
          ``2.5`` (for sensitivity studies);
        - ``"template"``: every subject is an exact copy of the template
          (its meshes in an own vertex order, head size 1, the sensors and
          noise of subject 0): the subjects' gains are identical, the "same
          leadfield" condition of Janati et al. (2020);
        - ``"warp"``: the anatomy of the cohorts built before this parameter
          existed (a smooth random warp of the template, four composed
          Gaussian fields of RMS 2 mm and length scale 6 mm: the subjects
          share the template's folding).
    %(subjects_dir)s
    %(random_state)s
        An integer seed makes the cohort reproducible and cached; ``None``
        draws a new seed (new subjects).
    %(n_jobs)s
        Subjects are built in parallel.
    %(verbose)s

    Returns
    -------
    cohort : Cohort
        The cohort.

    See Also
    --------
    leadfield_diversity : How much the subjects' leadfields differ.

    Notes
    -----
    **The individual anatomy** (numeric levels ``a > 0``) models the two
    reasons why a template source falls on a different piece of cortex in
    each real subject:

    - *the residual of spherical registration*: FreeSurfer aligns each
      subject's folding pattern to the atlas on the sphere (Fischl, Sereno,
      Tootell and Dale 1999), but not exactly. Each subject vertex takes the
      template's anatomy not at its ``sphere.reg`` position but at that
      position moved by a smooth random tangential displacement: composed
      Gaussian random fields (bumps spread evenly over the sphere, length
      scale 10 mm, ``ceil(a^2)`` steps of nominal RMS ``3 a / sqrt(steps)``
      mm, in mm of the template's white surface: the sphere is scaled by its
      mean areal ratio to the white surface). Each step is shrunk where
      needed to a Jacobian norm below 0.5, hence injective, so the measured
      RMS displacement is smaller than nominal: 2.0-2.4 mm at level 1 and
      5.8-6.0 mm at level 2.5 (90th percentile 3.1-3.7 and 8.7-9.0 mm; three
      seeds). A source registered to the crown of a fold in the template can
      so lie on its wall in a subject, with another orientation;
    - *individual folding*: the template's folding component, the height of
      the white surface above its smoothed version (100 umbrella smoothing
      steps; correlation -0.96 with the template's ``sulc``), is multiplied
      by a smooth log-normal factor ``exp(0.2 a g)`` (``g`` a Gaussian field
      of unit RMS, length scale 15 mm): folds are deeper or shallower, their
      walls steeper or flatter. The change is the same on the white and pial
      surfaces (the thickness, median 2.5 mm on fsaverage5, within the
      1-4.5 mm of Fischl and Dale 2000, is kept); it is clamped so that white
      vertices stay 2 mm inside the inner skull and the hemispheres do not
      meet, and halved about any place where the white surfaces would
      intersect until they do not.

    **Validity of the meshes.** The white surfaces are checked for
    intersecting triangles (an exact triangle-triangle test on every pair of
    triangles whose bounding boxes overlap). fsaverage5 itself has two
    crossings (its hemispheres touch at the medial wall and its right white
    surface folds onto itself once in the temporal lobe); these are
    inherited. Resampling the template on a subject's lattice can add a few
    crossing triangles where lattice triangles cut across a sharp fold of
    the template: in 2 of 32 subjects at level 0 (both near (26, -14, 61)
    mm), 4 of 32 at level 1 and 2 of 32 with ``"warp"`` (the former
    cohorts), none with ``"template"`` (``python benchmarks/bench_cohort.py
    --meshes-only --n-subjects 32 --seed 7``). The folding change adds none
    farther than 10 mm from those: it is halved until it does not. The
    forward model does not use the surfaces, only the source positions and
    normals.

    The values are modelling choices that the literature bounds rather than
    fixes. The 2-3 mm RMS residual is well below the spatial uncertainty of
    stereotaxic (volume) mapping, about 10 mm (Van Essen and Drury 1997),
    because folding-based registration aligns the major folds: the folds
    predict the location of V1 (Hinds et al. 2008) and of Brodmann areas
    (Fischl et al. 2008) well. Fischl et al. (2008) also find higher-order
    areas more variable relative to the folds than primary ones; the
    residual here is the same everywhere. The 20 percent depth variation is not
    taken from a measured figure.

    **Diversity of the leadfields per level** (:func:`leadfield_diversity`,
    all 306 channels, ico4 MEG cohort of 8 subjects, ``random_state=0``; the
    same-source cosine is between two subjects' gain columns of one source,
    the neighbour cosine between one subject's columns of two neighbouring
    sources, 4.0 mm apart; median and 10th percentile; normal angle: median
    and 90th percentile, degrees):

    ===========  ==================  ================  ==================
    anatomy      same-source cosine  neighbour cosine  normal angle (deg)
    ===========  ==================  ================  ==================
    template     1.000 (1.000)       0.906 (0.333)     0.0 (0.0)
    0            0.921 (0.823)       0.905 (0.321)     4.9 (15.0)
    warp         0.903 (0.764)       0.901 (0.325)     11.8 (23.3)
    individual   0.879 (0.517)       0.904 (0.331)     17.7 (51.6)
    exaggerated  0.776 (0.249)       0.903 (0.353)     38.2 (96.3)
    ===========  ==================  ================  ==================

    With the gradiometers only (``ch_type="grad"``) the same-source medians
    are 1.000, 0.913, 0.893, 0.865 and 0.755 and the neighbour medians
    0.898-0.904. So ``"warp"`` (the former cohorts) and level 0 make two
    subjects see a source about as alike as one subject sees two neighbours,
    ``"individual"`` a little less alike (with a long tail: 10 percent of
    the sources below 0.52) and ``"exaggerated"`` clearly less. Measured
    (2026-12-04) with, for each level::

        from mne_wasserstein.datasets import leadfield_diversity, make_cohort

        cohort = make_cohort(8, anatomy=level, random_state=0)
        print(leadfield_diversity(cohort).to_frame())

    How much real subjects differ was not measured here (no real anatomy is
    available offline): the median normal angle of 18 degrees at the
    default level follows from the choices above, it is not fitted to data.

    References
    ----------
    Fischl B, Sereno MI, Tootell RBH, Dale AM (1999). High-resolution
    intersubject averaging and a coordinate system for the cortical surface.
    Hum Brain Mapp 8:272-284.

    Fischl B, Dale AM (2000). Measuring the thickness of the human cerebral
    cortex from magnetic resonance images. PNAS 97:11050-11055.

    Fischl B, Rajendran N, Busa E, et al. (2008). Cortical folding patterns
    and predicting cytoarchitecture. Cereb Cortex 18:1973-1980.

    Hinds OP, Rajendran N, Polimeni JR, et al. (2008). Accurate prediction of
    V1 location from cortical folds in a surface coordinate system.
    NeuroImage 39:1585-1599.

    Janati H, Bazeille T, Thirion B, Cuturi M, Gramfort A (2020).
    Multi-subject MEG/EEG source imaging with sparse multi-task regression.
    NeuroImage 220:116847.

    Van Essen DC, Drury HA (1997). Structural and functional analyses of
    human cerebral cortex using a surface-based atlas. J Neurosci
    17:7079-7102.
    """
    if not isinstance(n_subjects, (int, np.integer)) or isinstance(n_subjects, bool):
        raise TypeError(f"n_subjects must be an int, got {type(n_subjects).__name__}")
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    _check_choice(spacing, "spacing", SPACINGS)
    _check_choice(modality, "modality", MODALITIES)
    level = _check_anatomy(anatomy)
    seed = seed_from(random_state)
    subjects_dir = make_template(_subjects_dir(subjects_dir))
    src_ref = _template_src(subjects_dir, spacing)
    subjects = [_subject_name(seed, level, i) for i in range(n_subjects)]
    logger.info(
        f"Cohort of {n_subjects} subjects ({modality}, {spacing}, anatomy "
        f"{_anatomy_tag(level)}) in {subjects_dir}"
    )
    parallel, p_fun, _ = parallel_func(_subject_data, n_jobs, total=n_subjects)
    out = parallel(
        p_fun(subjects_dir, subject, seed, i, level, spacing, modality)
        for i, subject in enumerate(subjects)
    )
    src, info, noise_cov, fwd, trans, scale = (list(x) for x in zip(*out, strict=True))
    return Cohort(
        subjects_dir=subjects_dir,
        subjects=subjects,
        subject_ref=TEMPLATE,
        src_ref=src_ref,
        src=src,
        forwards=fwd,
        info=info,
        noise_covs=noise_cov,
        trans=trans,
        scale=np.array(scale),
        spacing=spacing,
        modality=modality,
        random_state=seed,
        anatomy=level,
    )
