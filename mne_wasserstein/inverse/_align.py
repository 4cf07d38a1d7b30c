"""Common source space: correspondences through FreeSurfer ``sphere.reg``."""

from pathlib import Path

import numpy as np
from mne import read_surface
from scipy.spatial import cKDTree

_HEMI_NAMES = ("lh", "rh")


def _unit_sphere_reg(subjects_dir, subject, hemi):
    rr, _ = read_surface(Path(subjects_dir) / subject / "surf" / f"{hemi}.sphere.reg")
    return rr / np.linalg.norm(rr, axis=1, keepdims=True)


def _aligned_order(src_ref, src, subject_ref, subject, subjects_dir):
    """Match the sources of a morphed source space to the reference ones.

    ``src`` is ``src_ref`` morphed onto ``subject`` (for instance by
    :func:`mne.morph_source_spaces`, which sorts vertex numbers). For each
    reference source ``j`` (in the order lh then rh, vertex numbers
    ascending), return the row of ``src`` that holds its image: the used
    vertex of ``src`` closest to it on the registered spheres.

    Returns
    -------
    order : array of int, shape (n_sources,)
        Rows of ``src`` (lh then rh) in reference order.
    """
    order, offset = [], 0
    for hemi, s_ref, s in zip(_HEMI_NAMES, src_ref, src, strict=True):
        ref_pos = _unit_sphere_reg(subjects_dir, subject_ref, hemi)[s_ref["vertno"]]
        pos = _unit_sphere_reg(subjects_dir, subject, hemi)[s["vertno"]]
        _, rows = cKDTree(pos).query(ref_pos)
        if len(np.unique(rows)) != len(rows):
            raise RuntimeError(
                f"The source space of {subject} ({hemi}) is not a one-to-one "
                f"morph of the reference source space of {subject_ref}."
            )
        order.append(rows + offset)
        offset += s["nuse"]
    return np.concatenate(order)
