"""Gain preparation: channels, whitening, orientation, depth weighting, scaling.

MNE objects in, arrays out (:class:`GroupProblem`), following what
:func:`mne.inverse_sparse.mixed_norm` does with ``loose=0`` through MNE's
public API only.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from mne import (
    Covariance,
    Evoked,
    convert_forward_solution,
    make_ad_hoc_cov,
    pick_channels_forward,
    pick_info,
    pick_types,
)
from mne.cov import compute_whitener
from mne.forward import compute_depth_prior, is_fixed_orient
from mne.utils import logger

from .._validation import check_channel_names, check_list

# the depth weighting of MNE's sparse solvers (mne.forward.compute_depth_prior,
# documented there): the whitened gain, Frobenius norm per source, no limit
_DEPTH_DEFAULTS = dict(exp=0.8, limit=None, limit_depth_chs="whiten", combine_xyz="fro")


@dataclass
class GroupProblem:
    """The multi-subject regression problem of a group of MNE objects.

    Attributes
    ----------
    X : list of ndarray, shape (n_s, n_sources)
        Per subject, the whitened, depth-weighted and scaled fixed-orientation
        gain, columns in reference source order; ``n_s`` is the rank of the
        subject's whitener (its number of whitened channels).
    Y : list of ndarray, shape (n_s, n_times_s)
        Per subject, the whitened evoked data (all its times).
    source_std : ndarray, shape (n_subjects, n_sources)
        The column weights (depth weighting times the scaling): sources in
        A*m are ``source_std * coef`` for solver coefficients ``coef``.
    times : list of ndarray
        Per subject, the times of the evoked (s).
    sfreq : ndarray, shape (n_subjects,)
        The sampling frequencies.
    ch_names : list of list of str
        Per subject, the channels used.
    """

    X: list
    Y: list
    source_std: np.ndarray
    times: list
    sfreq: np.ndarray
    ch_names: list


def _check_depth(depth):
    """MNE's ``depth`` argument as the keyword arguments of the depth prior."""
    if depth is None:
        return None
    if isinstance(depth, dict):
        unknown = set(depth) - set(_DEPTH_DEFAULTS)
        if unknown:
            raise ValueError(
                f"depth, if a dict, takes the keys {sorted(_DEPTH_DEFAULTS)} (see "
                f"mne.forward.compute_depth_prior), got {sorted(unknown)}"
            )
        depth = {**_DEPTH_DEFAULTS, **depth}
    elif isinstance(depth, (int, float, np.floating, np.integer)) and not isinstance(
        depth, bool
    ):
        depth = {**_DEPTH_DEFAULTS, "exp": float(depth)}
    else:
        raise TypeError(f"depth must be None, a float or a dict, got {depth!r}")
    if depth["exp"] is None or depth["exp"] == 0:
        return None
    if not 0 < depth["exp"] <= 1:
        raise ValueError(f"the depth exponent must be in [0, 1], got {depth['exp']}")
    return depth


def _check_covs(noise_cov, evokeds):
    n_subjects = len(evokeds)
    if noise_cov is None:
        warnings.warn(
            "noise_cov is None: using ad-hoc diagonal noise covariances "
            "(mne.make_ad_hoc_cov); pass each subject's noise covariance for "
            "meaningful whitening.",
            RuntimeWarning,
            stacklevel=4,
        )
        return [make_ad_hoc_cov(e.info, verbose=False) for e in evokeds]
    if isinstance(noise_cov, Covariance):
        return [noise_cov] * n_subjects
    if not isinstance(noise_cov, (list, tuple)) or not all(
        isinstance(c, Covariance) for c in noise_cov
    ):
        raise TypeError(
            "noise_cov must be a Covariance, a list of Covariance (one per "
            f"subject) or None, got {type(noise_cov).__name__}"
        )
    if len(noise_cov) != n_subjects:
        raise ValueError(
            f"noise_cov has {len(noise_cov)} covariances for {n_subjects} subjects"
        )
    return list(noise_cov)


def _pick_channels(info, fwd, noise_cov, subject):
    """Good MEG/EEG channels of ``info``, in its order, checked against both.

    MNE's rules (``mixed_norm``): bad channels of the evoked or of the
    covariance are excluded. Unlike MNE, a good data channel missing from the
    forward or the covariance is an error, not silently dropped.
    """
    bads = set(info["bads"]) | set(noise_cov["bads"])
    picks = pick_types(info, meg=True, eeg=True, ref_meg=False, exclude=[])
    names = [info["ch_names"][k] for k in picks if info["ch_names"][k] not in bads]
    if not names:
        raise ValueError(f"Subject {subject}: the evoked has no good MEG/EEG channel")
    for what, available in (
        ("forward", fwd["sol"]["row_names"]),
        ("noise covariance", noise_cov["names"]),
    ):
        missing = sorted(set(names) - set(available))
        if missing:
            raise ValueError(
                f"Subject {subject}: {len(missing)} good channels of the evoked are "
                f"missing from the {what} ({', '.join(missing[:5])}"
                f"{', ...' if len(missing) > 5 else ''}); mark them as bad "
                "(evoked.info['bads']) or use a matching "
                f"{what}."
            )
    return names


def _check_data(evoked, fwd, noise_cov, subject):
    """Return the channels to use; check that their data are finite."""
    ch_names = _pick_channels(evoked.info, fwd, noise_cov, subject)
    sel = [evoked.ch_names.index(name) for name in ch_names]
    if not np.isfinite(evoked.data[sel]).all():
        raise ValueError(f"Subject {subject}: the evoked data contain NaN or inf")
    return ch_names


def _prepare_subject(evoked, fwd, noise_cov, order, ch_names, depth, subject):
    """Whitened, fixed, depth-weighted, scaled gain and whitened data."""
    sel = [evoked.ch_names.index(name) for name in ch_names]
    data = evoked.data[sel]
    info = pick_info(evoked.info, sel, verbose=False)
    fwd = pick_channels_forward(fwd, ch_names, ordered=True, verbose=False)
    if not is_fixed_orient(fwd):
        logger.info(
            f"Subject {subject}: converting the free-orientation forward to fixed "
            "orientation (normal to the cortex)"
        )
    # as mixed_norm with loose=0: fixed orientation first, then the depth prior
    fwd = convert_forward_solution(
        fwd, surf_ori=True, force_fixed=True, use_cps=True, verbose=False
    )
    W, names = compute_whitener(
        noise_cov, info, picks=ch_names, pca=True, verbose=False
    )
    check_channel_names(names, ch_names, "noise covariance's whitener", subject)
    # the noise of an average of nave epochs is the covariance / nave
    W = W * np.sqrt(evoked.nave)
    gain = W @ fwd["sol"]["data"][:, order]
    source_std = np.ones(gain.shape[1])
    if depth is not None:
        prior = compute_depth_prior(
            fwd, info, noise_cov=noise_cov, verbose=False, **depth
        )
        source_std = np.sqrt(prior[order])
    gain *= source_std
    # MNE's scaling: trace(G R G^T) = rank of the whitener
    scale = np.sqrt(len(W) / np.sum(gain**2))
    return gain * scale, W @ data, source_std * scale


def _prepare_group(evokeds, forwards, noise_covs, orders, ch_names, depth, subjects):
    """Build the :class:`GroupProblem` of aligned forwards."""
    X, Y, stds = [], [], []
    for s, args in enumerate(
        zip(evokeds, forwards, noise_covs, orders, ch_names, strict=True)
    ):
        x, y, std = _prepare_subject(*args, depth, subjects[s])
        logger.info(
            f"Subject {subjects[s]}: {len(ch_names[s])} channels, whitener of "
            f"rank {len(x)}"
        )
        X.append(x)
        Y.append(y)
        stds.append(std)
    return GroupProblem(
        X=X,
        Y=Y,
        source_std=np.array(stds),
        times=[e.times for e in evokeds],
        sfreq=np.array([e.info["sfreq"] for e in evokeds]),
        ch_names=list(ch_names),
    )


def _check_evokeds(evokeds):
    """Return ``evokeds`` as a list of :class:`mne.Evoked`, checked."""
    return check_list(evokeds, "evokeds", Evoked)
