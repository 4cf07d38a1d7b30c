"""Common source space: correspondences through FreeSurfer ``sphere.reg``."""

from pathlib import Path

import numpy as np
from mne import (
    Forward,
    SourceSpaces,
    convert_forward_solution,
    morph_source_spaces,
    read_surface,
    setup_source_space,
)
from mne.io.constants import FIFF
from mne.utils import get_subjects_dir, logger, verbose
from scipy.spatial import cKDTree

from .._docs import fill_doc
from .._validation import check_list

__all__ = ["align_forwards", "aligned_order", "make_aligned_source_spaces"]

_HEMI_IDS = {
    FIFF.FIFFV_MNE_SURF_LEFT_HEMI: "lh",
    FIFF.FIFFV_MNE_SURF_RIGHT_HEMI: "rh",
}


def _unit_sphere_reg(subjects_dir, subject, hemi):
    fname = Path(subjects_dir) / subject / "surf" / f"{hemi}.sphere.reg"
    if not fname.is_file():
        raise ValueError(
            f"Cannot align the source space of subject {subject!r}: {fname} does "
            "not exist (wrong subject or subjects_dir?)."
        )
    rr, _ = read_surface(fname, verbose=False)
    return rr / np.linalg.norm(rr, axis=1, keepdims=True)


def _check_surface_src(src, what):
    """Return the subject and the hemisphere names of surface source spaces."""
    if not isinstance(src, SourceSpaces):
        raise TypeError(f"{what} must be a SourceSpaces, got {type(src).__name__}")
    hemis = []
    for s in src:
        if s["type"] != "surf" or s["id"] not in _HEMI_IDS:
            raise ValueError(
                f"{what} must contain cortical surface source spaces only (one "
                f"per hemisphere), got a {s['type']!r} source space: volume and "
                "discrete source spaces cannot be aligned through sphere.reg."
            )
        hemis.append(_HEMI_IDS[s["id"]])
    if len(set(hemis)) != len(hemis):
        raise ValueError(f"{what} has the same hemisphere twice")
    subject = src[0].get("subject_his_id")
    if not subject:
        raise ValueError(f"{what} does not name its subject (subject_his_id)")
    return subject, hemis


def _match_sources(src_ref, src, subjects_dir):
    """Match each reference source to the nearest source of ``src``.

    Positions are compared on the registered spheres (``sphere.reg``) of the
    reference subject and of the subject of ``src``. For each reference
    source ``j`` (order of ``src_ref``: its hemispheres in turn, vertex
    numbers ascending) returns the row of ``src`` (its hemispheres in turn)
    holding its nearest source of the same hemisphere.

    Returns
    -------
    rows : array of int, shape (n_sources_ref,)
        The matched rows of ``src``.
    ratio : array, shape (n_sources_ref,)
        The distance on the sphere to the matched source, relative to the
        median distance between neighbouring reference sources.
    """
    subject_ref, hemis_ref = _check_surface_src(src_ref, "src_ref")
    subject, hemis = _check_surface_src(src, "The source space")
    offsets = np.cumsum([0] + [s["nuse"] for s in src])
    rows, ratio = [], []
    for hemi, s_ref in zip(hemis_ref, src_ref, strict=True):
        if hemi not in hemis:
            raise ValueError(
                f"The source space of {subject!r} has no {hemi} hemisphere, "
                "which src_ref has."
            )
        h = hemis.index(hemi)
        sphere_ref = _unit_sphere_reg(subjects_dir, subject_ref, hemi)
        sphere = _unit_sphere_reg(subjects_dir, subject, hemi)
        for name, sph, s in (
            (subject_ref, sphere_ref, s_ref),
            (subject, sphere, src[h]),
        ):
            if len(sph) != s["np"]:
                raise ValueError(
                    f"{hemi}.sphere.reg of {name!r} has {len(sph)} vertices but the "
                    f"source space has {s['np']}: the source space is not on "
                    f"{name!r}'s surface (wrong subject or subjects_dir?)."
                )
        ref_pos = sphere_ref[s_ref["vertno"]]
        spacing = np.median(cKDTree(ref_pos).query(ref_pos, k=2)[0][:, 1])
        dist, idx = cKDTree(sphere[src[h]["vertno"]]).query(ref_pos)
        rows.append(idx + offsets[h])
        ratio.append(dist / spacing)
    return np.concatenate(rows), np.concatenate(ratio)


def aligned_order(src_ref, src, subject_ref, subject, subjects_dir=None):
    """Match the sources of a morphed source space to the reference sources.

    ``src`` is ``src_ref`` morphed onto ``subject`` (for instance by
    :func:`mne.morph_source_spaces`, which sorts vertex numbers, or by
    :func:`make_aligned_source_spaces`). For each reference source ``j`` (in
    the order of ``src_ref``: its hemispheres in turn, vertex numbers
    ascending), return the row of ``src`` that holds its image: the used
    vertex of ``src`` closest to it on the registered spheres
    (``sphere.reg``). ``src[order]`` is then ``src_ref`` source by source,
    which is how the sources of an aligned forward solution, or of a
    :class:`mne.SourceEstimate` on it, are put in reference order.

    Parameters
    ----------
    src_ref : SourceSpaces
        The reference (surface) source space.
    src : SourceSpaces
        ``src_ref`` morphed onto ``subject``.
    subject_ref : str
        The subject of ``src_ref``.
    subject : str
        The subject of ``src``.
    subjects_dir : path-like | None
        The FreeSurfer ``SUBJECTS_DIR`` holding both subjects (``None``: the
        ``SUBJECTS_DIR`` environment variable or MNE config key).

    Returns
    -------
    order : ndarray of int, shape (n_sources,)
        Rows of ``src`` in reference order.
    """
    subjects_dir = get_subjects_dir(subjects_dir, raise_error=True)
    for what, s, name in (("src_ref", src_ref, subject_ref), ("src", src, subject)):
        if s[0].get("subject_his_id") != name:
            raise ValueError(f"{name!r} is not the subject of {what}")
    order, ratio = _match_sources(src_ref, src, subjects_dir)
    if not _is_aligned(order, ratio):
        raise RuntimeError(
            f"The source space of {subject} is not a one-to-one morph of the "
            f"reference source space of {subject_ref}."
        )
    return order


# a reference source whose nearest source is farther than this (relative to
# the reference source spacing, on the registered spheres) has no close match
_CLOSE = 0.5


def _is_aligned(rows, ratio):
    return len(np.unique(rows)) == len(rows) and bool(np.all(ratio <= _CLOSE))


@fill_doc
@verbose
def make_aligned_source_spaces(
    subjects,
    *,
    subject_ref="fsaverage",
    spacing="ico4",
    subjects_dir=None,
    verbose=None,
):
    """Morph the reference source space onto each subject (common source space).

    The reference source space is ``mne.setup_source_space(subject_ref,
    spacing, add_dist=False)``; each subject's source space is its image by
    :func:`mne.morph_source_spaces` (nearest vertex on the registered spheres,
    ``surf/?h.sphere.reg``), so that source ``j`` of every subject lies at the
    same place of the reference brain (Janati et al. 2020, section 2). Use
    them to compute the forward solutions of the subjects.

    Parameters
    ----------
    subjects : list of str
        The FreeSurfer subjects.
    subject_ref : str
        The reference subject.
    spacing : str
        The spacing of the reference source space (see
        :func:`mne.setup_source_space`). The same reference source space is
        the ``src_ref`` of :func:`align_forwards` and :func:`apply_mwe`.
    subjects_dir : path-like | None
        The FreeSurfer subjects folder (``None``: MNE's ``SUBJECTS_DIR``).
    %(verbose)s

    Returns
    -------
    src : list of SourceSpaces
        The aligned source space of each subject.
    """
    if isinstance(subjects, str) or not all(isinstance(s, str) for s in subjects):
        raise TypeError("subjects must be a list of subject names (str)")
    subjects_dir = get_subjects_dir(subjects_dir, raise_error=True)
    src_ref = setup_source_space(
        subject_ref, spacing, subjects_dir=subjects_dir, add_dist=False, verbose=False
    )
    out = []
    for subject in subjects:
        logger.info(
            f"Morphing the {spacing} source space of {subject_ref} to {subject}"
        )
        out.append(
            morph_source_spaces(
                src_ref, subject, subjects_dir=subjects_dir, verbose=False
            )
        )
    return out


def _rebuild_forward(fwd, src_aligned, rows, cols):
    """Return a fixed-orientation forward on ``src_aligned``.

    Its source ``rows[j]`` has the column ``cols[j]`` of ``fwd`` (converted
    to fixed orientation, normal to the cortex).
    """
    out = convert_forward_solution(
        fwd, surf_ori=True, force_fixed=True, use_cps=True, copy=True, verbose=False
    )
    take = np.empty(len(rows), int)
    take[rows] = cols
    out["sol"]["data"] = out["sol"]["data"][:, take]
    out["sol"]["ncol"] = len(take)
    if len(out["sol"]["col_names"]):  # empty in forwards from MNE
        out["sol"]["col_names"] = [out["sol"]["col_names"][k] for k in take]
    # the rebuilt forward is fixed from the start (no free solution behind it)
    out["_orig_sol"] = out["sol"]["data"]
    out["_orig_source_ori"] = FIFF.FIFFV_MNE_FIXED_ORI
    out["sol_grad"] = None
    out["source_rr"] = out["source_rr"][take]
    out["source_nn"] = out["source_nn"][take]
    out["nsource"] = len(take)
    out["src"] = src_aligned
    return out


@verbose
def align_forwards(forwards, src_ref, *, subjects_dir=None, verbose=None):
    """Match the leadfield columns of each subject to the reference sources.

    Each reference source is matched to the nearest source of the forward
    solution on the registered spheres (``surf/?h.sphere.reg`` of the
    reference subject and of the forward's subject). A forward computed on
    an aligned source space (:func:`make_aligned_source_spaces`, or
    :func:`mne.morph_source_spaces` of ``src_ref``) matches one-to-one: it is
    returned unchanged (the same object). Any other surface forward is
    rebuilt on the aligned source space of its subject: converted to fixed
    orientation (normal to the cortex), its column for reference source
    ``j`` is that of the source nearest to ``j``. Reference sources whose
    nearest source is farther than half the reference source spacing have
    no close match; they get the leadfield of that nearest source (a source
    of the forward can then serve several reference sources), and their
    number is logged.

    Parameters
    ----------
    forwards : list of Forward
        The forward solutions of the subjects, on cortical surface source
        spaces of their own subjects (``src[0]["subject_his_id"]``).
    src_ref : SourceSpaces
        The reference source space. It may hold one hemisphere only: the
        forwards are then restricted to that hemisphere.
    subjects_dir : path-like | None
        The FreeSurfer subjects folder of the reference and of every subject
        (``None``: MNE's ``SUBJECTS_DIR``).
    %(verbose)s

    Returns
    -------
    forwards : list of Forward
        The aligned forward solutions: source ``j`` of every subject is
        reference source ``j``. As in MNE, the sources of each hemisphere
        are in ascending vertex order: the ``j``-th source of the aligned
        forward is in general not the ``j``-th reference source.
    """
    subjects_dir = get_subjects_dir(subjects_dir, raise_error=True)
    return [_align_one(f, src_ref, subjects_dir)[0] for f in _check_forwards(forwards)]


def _check_forwards(forwards):
    """Return ``forwards`` as a list of :class:`mne.Forward`, checked."""
    return check_list(forwards, "forwards", Forward)


def _align_one(fwd, src_ref, subjects_dir):
    """Align one forward; also return the reference order of its sources.

    Returns
    -------
    fwd : Forward
        The input forward if it is already aligned, else a rebuilt one.
    order : array of int, shape (n_sources_ref,)
        The source (row of ``fwd["src"]``) of each reference source.
    """
    subject, hemis = _check_surface_src(fwd["src"], "The forward's source space")
    rows, ratio = _match_sources(src_ref, fwd["src"], subjects_dir)
    src_ref_subject = src_ref[0]["subject_his_id"]
    if _is_aligned(rows, ratio):
        if len(rows) == fwd["nsource"]:
            return fwd, rows
        # aligned, but src_ref has fewer hemispheres: keep those
        keep = [_HEMI_IDS[s["id"]] for s in src_ref]
        src_aligned = SourceSpaces(
            [fwd["src"][hemis.index(h)] for h in keep], info=fwd["src"].info
        )
        logger.info(f"Forward of {subject}: restricted to {', '.join(keep)}")
    else:
        src_aligned = morph_source_spaces(
            src_ref, subject, subjects_dir=subjects_dir, verbose=False
        )
        logger.info(
            f"Forward of {subject}: not on the aligned source space of "
            f"{src_ref_subject}; rebuilt on it, fixed orientation, each of the "
            f"{len(rows)} reference sources taking the leadfield of the nearest "
            f"of its {fwd['nsource']} sources. {int(np.sum(ratio > _CLOSE))} "
            "reference sources have no source within half the reference "
            f"spacing (nearest used, up to {ratio.max():.2f} spacings away); "
            f"{len(rows) - len(np.unique(rows))} share a source with another."
        )
    order = aligned_order(src_ref, src_aligned, src_ref_subject, subject, subjects_dir)
    return _rebuild_forward(fwd, src_aligned, order, rows), order
