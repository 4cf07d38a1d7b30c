"""Synthetic multi-subject cohorts: own meshes, registrations, forwards."""

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

from ..utils import _cached, _seed_from, fill_doc
from ._mesh import (
    _clamp_norm,
    _fibonacci_sphere,
    _locate_on_sphere,
    _random_rotation,
    _smooth_warp,
    _sphere_triangulation,
    _star_radius,
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
_SUBJECT_FORMAT = 1
# anatomy of the synthetic subjects
N_VERTICES = (20_000, 30_000)  # per hemisphere, drawn uniformly
HEAD_SCALE = (0.92, 1.08)  # isotropic head-size factor
WARP_STEPS = 4  # composed random fields, each injective
WARP_RMS = 2.0  # mm, root mean square of each field
WARP_LENGTH = 6.0  # mm, spatial scale of the fields
SKULL_MARGIN_WHITE = 2.0  # mm, white vertices stay this far inside the skull
SKULL_MARGIN_PIAL = 0.5  # mm
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
    forward : list of Forward
        Per subject, the free-orientation forward solution on ``src[s]``.
    info : list of Info
        Per subject, the measurement info (sensor positions, device->head).
    noise_cov : list of Covariance
        Per subject, the sensor noise covariance.
    trans : list of Transform
        Per subject, the head->MRI transform.
    scale : ndarray, shape (n_subjects,)
        The head-size factor of each subject relative to the template.
    spacing, modality : str
        The arguments the cohort was built with.
    random_state : int
        The seed of the cohort: subject ``i`` of any cohort with this seed has
        the same anatomy.
    """

    subjects_dir: Path
    subjects: list
    subject_ref: str
    src_ref: SourceSpaces
    src: list
    forward: list
    info: list
    noise_cov: list
    trans: list
    scale: np.ndarray
    spacing: str
    modality: str
    random_state: int

    @property
    def n_subjects(self):
        """The number of subjects."""
        return len(self.subjects)

    def __repr__(self):  # noqa: D105
        n_src = sum(s["nuse"] for s in self.src_ref)
        return (
            f"<Cohort | {self.n_subjects} subjects, {self.modality}, "
            f"{self.spacing} ({n_src} sources), "
            f"subjects_dir={self.subjects_dir}>"
        )


def _subject_name(seed, index):
    return f"synth{seed}-{index:02d}"


def _subject_rng(seed, index):
    return np.random.default_rng([seed, index])


def _write_subject(subjects_dir, subject, seed, index):
    """Write the anatomy of one synthetic subject (cached)."""
    subject_dir = subjects_dir / subject
    if _is_complete(subject_dir, _SUBJECT_FORMAT):
        return
    rng = _subject_rng(seed, index)
    scale = float(rng.uniform(*HEAD_SCALE))
    template = _template_meshes()
    meshes, points = {}, {}
    for hemi in _HEMIS:
        n_vert = int(rng.integers(N_VERTICES[0], N_VERTICES[1] + 1))
        unit = _fibonacci_sphere(n_vert, _random_rotation(rng))[rng.permutation(n_vert)]
        tris = _sphere_triangulation(unit)
        sphere_rr, sphere_tris = template[(hemi, "sphere.reg")]
        tri_idx, weights = _locate_on_sphere(unit, sphere_rr, sphere_tris)
        corners = sphere_tris[tri_idx]
        for kind in ("white", "pial", "inflated"):
            rr = np.einsum("nk,nkj->nj", weights, template[(hemi, kind)][0][corners])
            meshes[(hemi, kind)] = [rr, tris]
        radius = np.linalg.norm(sphere_rr, axis=1).mean()
        meshes[(hemi, "sphere.reg")] = [unit * radius, tris]
        # the native (unregistered) sphere: registration is not a no-op
        meshes[(hemi, "sphere")] = [unit @ _random_rotation(rng).T * radius, tris]
        points[hemi] = len(unit)
    # one warp for both hemispheres so that they cannot collide; near the
    # inner skull it is clamped so that sources stay inside it
    bem_rr, bem_tris = _template_bem_surfaces()
    skull = bem_rr["inner_skull"]
    center = skull.mean(axis=0)
    white = np.concatenate([meshes[(h, "white")][0] for h in _HEMIS])
    disp = _smooth_warp(
        white, rng, n_steps=WARP_STEPS, rms=WARP_RMS, length=WARP_LENGTH
    )
    splits = [points["lh"]]
    for kind, margin in (("white", SKULL_MARGIN_WHITE), ("pial", SKULL_MARGIN_PIAL)):
        rr = np.concatenate([meshes[(h, kind)][0] for h in _HEMIS])
        gap = _star_radius(center, skull, bem_tris, rr) - np.linalg.norm(
            rr - center, axis=1
        )
        warped = rr + _clamp_norm(disp, gap - margin)
        for hemi, new in zip(_HEMIS, np.split(warped, splits), strict=True):
            meshes[(hemi, kind)][0] = new
    for hemi in _HEMIS:
        for kind in ("white", "pial", "inflated"):
            meshes[(hemi, kind)][0] = meshes[(hemi, kind)][0] * scale
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
        meta = {"format": _SUBJECT_FORMAT, "scale": scale, "seed": seed, "index": index}
        _publish(tmp, subject_dir, meta)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_quiet(reader):
    return lambda fname: reader(fname, verbose=False)


def _template_src(subjects_dir, spacing):
    fname = subjects_dir / TEMPLATE / "bem" / f"{TEMPLATE}-{spacing}-src.fif"
    return _cached(
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
    return _cached(
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


def _subject_data(subjects_dir, subject, seed, index, spacing, modality):
    """Anatomy, aligned source space, info, noise covariance and forward."""
    _write_subject(subjects_dir, subject, seed, index)
    cache = subjects_dir / subject / "mne_wasserstein"
    trans = read_trans(subjects_dir / subject / "bem" / f"{subject}-trans.fif")
    src_ref = _template_src(subjects_dir, spacing)
    src = _cached(
        cache / f"{spacing}-aligned-src.fif",
        lambda: morph_source_spaces(
            src_ref, subject, subjects_dir=subjects_dir, verbose=False
        ),
        lambda f, s: write_source_spaces(f, s, verbose=False),
        _read_quiet(read_source_spaces),
    )
    # sensors and noise depend on the subject and modality only
    rng = np.random.default_rng([seed, index, MODALITIES.index(modality)])
    scale = float(_subject_scale(subjects_dir / subject))
    info = _cached(
        cache / f"{modality.replace('+', '-')}-info.fif",
        lambda: _make_info(modality, scale, rng),
        lambda f, i: write_info(f, i),
        _read_quiet(read_info),
    )
    noise_cov = _cached(
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

    fwd = _cached(
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
      triangulated as a convex hull; its white, pial and inflated surfaces are
      the template surfaces interpolated through the template sphere, the
      white and pial surfaces then warped by a smooth random deformation (four
      composed Gaussian random fields, each of RMS 2 mm and length scale 6 mm
      with a Jacobian norm below 0.5, hence injective: the surface does not
      fold onto itself), clamped so that white vertices stay 2 mm inside the
      inner skull; the median angle between two subjects' normals at aligned
      sources is about 12 degrees;
    - a head-size factor (uniform in 0.92-1.08) applied to its cortex, BEM
      surfaces, scalp, fiducials and head<->MRI transform;
    - ``surf/?h.sphere.reg``, the lattice itself, registering it to the
      template (``surf/?h.sphere`` is a rotated, unregistered copy);
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
      lies at the same place of the template.

    Everything is cached on disk: subject ``i`` of a cohort depends only on
    ``random_state`` and ``i``, so cohorts with the same seed share subjects.

    Parameters
    ----------
    n_subjects : int
        The number of subjects (>= 1).
    spacing : str
        The source spacing of the template source space (``"ico3"``,
        ``"ico4"``, ``"ico5"``, ``"oct4"``, ``"oct5"`` or ``"oct6"``).
    modality : ``"meg"`` | ``"eeg"`` | ``"meg+eeg"``
        The sensors.
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
    """
    if not isinstance(n_subjects, (int, np.integer)) or isinstance(n_subjects, bool):
        raise TypeError(f"n_subjects must be an int, got {type(n_subjects).__name__}")
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    _check_choice(spacing, "spacing", SPACINGS)
    _check_choice(modality, "modality", MODALITIES)
    seed = _seed_from(random_state)
    subjects_dir = make_template(_subjects_dir(subjects_dir))
    src_ref = _template_src(subjects_dir, spacing)
    subjects = [_subject_name(seed, i) for i in range(n_subjects)]
    logger.info(
        f"Cohort of {n_subjects} subjects ({modality}, {spacing}) in {subjects_dir}"
    )
    parallel, p_fun, _ = parallel_func(_subject_data, n_jobs, total=n_subjects)
    out = parallel(
        p_fun(subjects_dir, subject, seed, i, spacing, modality)
        for i, subject in enumerate(subjects)
    )
    src, info, noise_cov, fwd, trans, scale = (list(x) for x in zip(*out, strict=True))
    return Cohort(
        subjects_dir=subjects_dir,
        subjects=subjects,
        subject_ref=TEMPLATE,
        src_ref=src_ref,
        src=src,
        forward=fwd,
        info=info,
        noise_cov=noise_cov,
        trans=trans,
        scale=np.array(scale),
        spacing=spacing,
        modality=modality,
        random_state=seed,
    )
