"""How much the subjects of a cohort differ: leadfield and normal diversity."""

from dataclasses import dataclass

import numpy as np
from mne import convert_forward_solution, pick_channels_forward
from mne.utils import logger, verbose
from scipy.spatial import cKDTree

from .._docs import fill_doc

_CH_TYPES = ("grad", "mag", "eeg")


@dataclass
class LeadfieldDiversity:
    """How much the leadfields and source normals of a cohort's subjects differ.

    Attributes
    ----------
    cross_subject : ndarray, shape (n_pairs, n_sources)
        For each pair of subjects and each common source, the absolute cosine
        between the two subjects' whitened fixed-orientation gain columns.
    neighbour : ndarray, shape (n_subjects, n_sources)
        For each subject and source, the absolute cosine between the
        subject's columns of the source and of its nearest neighbour.
    normal_angle : ndarray, shape (n_pairs, n_sources)
        For each pair of subjects and source, the angle between the two
        subjects' source normals (degrees, 0-180).
    neighbour_distance : ndarray, shape (n_sources,)
        The distance from each source to its nearest neighbour on the
        template (mm).
    pairs : ndarray of int, shape (n_pairs, 2)
        The subject indices of each pair.
    ch_names : list of str
        The channels used, in their common order.
    """

    cross_subject: np.ndarray
    neighbour: np.ndarray
    normal_angle: np.ndarray
    neighbour_distance: np.ndarray
    pairs: np.ndarray
    ch_names: list

    def summary(self):
        """Summarise the distributions.

        Returns
        -------
        summary : dict
            ``"cross_subject"`` and ``"neighbour"``: the median and the 10 %
            quantile of the cosines; ``"normal_angle"``: the median and the
            90 % quantile of the angles (degrees); ``"neighbour_distance"``:
            the median distance (mm). Each value is a dict with the keys
            ``"median"`` and ``"q10"`` or ``"q90"``.
        """
        out = {}
        for name, q in (("cross_subject", 10), ("neighbour", 10), ("normal_angle", 90)):
            values = getattr(self, name)
            out[name] = {
                "median": float(np.median(values)),
                f"q{q}": float(np.percentile(values, q)),
            }
        out["neighbour_distance"] = {
            "median": float(np.median(self.neighbour_distance))
        }
        return out

    def to_frame(self):
        """Return the summary as a table.

        Returns
        -------
        frame : pandas.DataFrame
            One row per quantity (the cross-subject and neighbour cosines,
            the normal angle in degrees), columns ``median``, ``q10`` and
            ``q90``.
        """
        import pandas as pd

        rows = {
            "cosine, same source, two subjects": self.cross_subject,
            "cosine, neighbouring sources, one subject": self.neighbour,
            "normal angle, two subjects (deg)": self.normal_angle,
        }
        return pd.DataFrame(
            {
                "median": [np.median(v) for v in rows.values()],
                "q10": [np.percentile(v, 10) for v in rows.values()],
                "q90": [np.percentile(v, 90) for v in rows.values()],
            },
            index=list(rows),
        )

    def __repr__(self):  # noqa: D105
        s = self.summary()
        return (
            f"<LeadfieldDiversity | {len(self.neighbour)} subjects, "
            f"{self.cross_subject.shape[1]} sources, {len(self.ch_names)} channels: "
            f"same-source cosine median {s['cross_subject']['median']:.3f} "
            f"(q10 {s['cross_subject']['q10']:.3f}), neighbour cosine median "
            f"{s['neighbour']['median']:.3f} (q10 {s['neighbour']['q10']:.3f}, "
            f"{s['neighbour_distance']['median']:.1f} mm), normal angle median "
            f"{s['normal_angle']['median']:.1f} deg>"
        )


def _whitened_fixed_gain(cohort, s, ch_names):
    """Whitened fixed-orientation gain of subject ``s`` (reference order)."""
    fwd = pick_channels_forward(
        cohort.forwards[s], ch_names, ordered=True, verbose=False
    )
    fwd = convert_forward_solution(
        fwd, surf_ori=True, force_fixed=True, use_cps=True, verbose=False
    )
    gain = fwd["sol"]["data"]
    # the projectors of the measurement (the EEG average reference)
    gain = _projector(cohort.info[s]["projs"], ch_names) @ gain
    cov = cohort.noise_covs[s]
    std = np.sqrt(np.diag(cov.data)[[cov.ch_names.index(c) for c in ch_names]])
    order = cohort.source_order(s)
    normals = np.concatenate([h["nn"][h["vertno"]] for h in cohort.src[s]]).astype(
        np.float64
    )
    return (gain / std[:, np.newaxis])[:, order], normals[order]


def _projector(projs, ch_names):
    """Return the matrix of SSP projectors on the channels ``ch_names``."""
    index = {name: k for k, name in enumerate(ch_names)}
    vectors = []
    for proj in projs:
        cols = [index.get(name) for name in proj["data"]["col_names"]]
        for row in np.atleast_2d(proj["data"]["data"]):
            v = np.zeros(len(ch_names))
            for col, value in zip(cols, row, strict=True):
                if col is not None:
                    v[col] = value
            if np.linalg.norm(v) > 0:
                vectors.append(v)
    if not vectors:
        return np.eye(len(ch_names))
    u, sv, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    u = u[:, sv > sv.max() * 1e-10]
    return np.eye(len(ch_names)) - u @ u.T


def _abs_cosine(a, b):
    num = np.abs(np.sum(a * b, axis=0))
    return num / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))


def _nearest_neighbours(src_ref):
    """Each reference source's nearest other source of its hemisphere."""
    index, dist, offset = [], [], 0
    for hemi in src_ref:
        rr = hemi["rr"][hemi["vertno"]] * 1e3
        d, i = cKDTree(rr).query(rr, k=2)
        index.append(i[:, 1] + offset)
        dist.append(d[:, 1])
        offset += len(rr)
    return np.concatenate(index), np.concatenate(dist)


@fill_doc
@verbose
def leadfield_diversity(cohort, *, ch_type=None, verbose=None):
    """Measure how much the subjects of a cohort differ in their leadfields.

    For each source of the common (template) source space, compares the
    subjects' gain columns of that source: the absolute cosine between two
    subjects' columns (1 when they see the source alike), next to the
    absolute cosine between one subject's columns of two neighbouring sources
    (the nearest source of the same hemisphere on the template). A cohort
    whose same-source cosines are well below the neighbour cosines has
    subjects that differ more than neighbouring sources do. Also returns the
    angle between the subjects' source normals.

    The gains are the fixed-orientation gains (along the source normals) of
    ``cohort.forwards``, with the measurement's projectors (the EEG average
    reference) applied, whitened by each subject's noise standard deviations
    (the diagonal of its noise covariance), on the channels common to all
    subjects in one order. MNE's whitener is not used on purpose: it
    reorders its rows per subject (PCA), so two subjects' whitened columns
    could not be compared entry by entry.

    Parameters
    ----------
    cohort : Cohort
        The cohort (see :func:`make_cohort`).
    ch_type : None | ``"grad"`` | ``"mag"`` | ``"eeg"``
        The channels to use; ``None`` uses all the data channels.
    %(verbose)s

    Returns
    -------
    diversity : LeadfieldDiversity
        The distributions (raw arrays) and their summary
        (:meth:`LeadfieldDiversity.summary`, :meth:`LeadfieldDiversity.to_frame`).
    """
    from ._cohort import Cohort

    if not isinstance(cohort, Cohort):
        raise TypeError(f"cohort must be a Cohort, got {type(cohort).__name__}")
    if ch_type is not None and ch_type not in _CH_TYPES:
        raise ValueError(
            f"ch_type must be None or one of {', '.join(map(repr, _CH_TYPES))}, "
            f"got {ch_type!r}"
        )
    if cohort.n_subjects < 2:
        raise ValueError("leadfield_diversity needs a cohort of at least 2 subjects")
    names = []
    for info in cohort.info:
        types = info.get_channel_types()
        names.append(
            [
                n
                for n, t in zip(info["ch_names"], types, strict=True)
                if t in _CH_TYPES
                and (ch_type is None or t == ch_type)
                and n not in info["bads"]
            ]
        )
    common = set.intersection(*map(set, names))
    ch_names = [n for n in names[0] if n in common]
    if not ch_names:
        raise ValueError(f"The subjects have no {ch_type or 'data'} channel in common")
    gains, normals = zip(
        *(_whitened_fixed_gain(cohort, s, ch_names) for s in range(cohort.n_subjects)),
        strict=True,
    )
    pairs = np.array(
        [
            (i, j)
            for i in range(cohort.n_subjects)
            for j in range(i + 1, cohort.n_subjects)
        ]
    )
    cross = np.array([_abs_cosine(gains[i], gains[j]) for i, j in pairs])
    # atan2 rather than arccos: accurate for nearly parallel (float32) normals
    angle = np.array(
        [
            np.degrees(
                np.arctan2(
                    np.linalg.norm(np.cross(normals[i], normals[j]), axis=1),
                    np.sum(normals[i] * normals[j], axis=1),
                )
            )
            for i, j in pairs
        ]
    )
    neighbour_idx, neighbour_dist = _nearest_neighbours(cohort.src_ref)
    neighbour = np.array([_abs_cosine(g, g[:, neighbour_idx]) for g in gains])
    out = LeadfieldDiversity(
        cross_subject=cross,
        neighbour=neighbour,
        normal_angle=angle,
        neighbour_distance=neighbour_dist,
        pairs=pairs,
        ch_names=ch_names,
    )
    logger.info(repr(out))
    return out
