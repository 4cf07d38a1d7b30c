"""Inputs of the Rank-1 GLM: runs (arrays, Nifti, SurfaceImage), events.

nilearn is imported only when images are given, so that plain arrays work
without it.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class _Runs:
    """The data of all runs, as arrays, and what maps them back to images."""

    data: list  # (n_scans_r, n_voxels) arrays, non-finite voxels zeroed
    frame_times: list  # (n_scans_r,) arrays (s)
    t_r: float
    masker: object  # a fitted nilearn masker, or None for arrays
    voxel_mask: np.ndarray  # (n_voxels,) bool: finite in every run


def _as_list(obj, n_runs, name):
    if isinstance(obj, (list, tuple)):
        if len(obj) != n_runs:
            raise ValueError(
                f"{name} must have one entry per run ({n_runs}), got {len(obj)}"
            )
        return list(obj)
    if n_runs != 1:
        raise ValueError(f"{name} must be a list with one entry per run ({n_runs})")
    return [obj]


def _is_array(obj):
    return isinstance(obj, np.ndarray) or (
        isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], np.ndarray)
    )


def _header_t_r(img):
    """Return the repetition time in a Nifti header (s), or None if absent."""
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not zooms[3] > 0:
        return None
    unit = img.header.get_xyzt_units()[1]
    return float(zooms[3]) * {"msec": 1e-3, "usec": 1e-6}.get(unit, 1.0)


def _make_masker(mask_img, imgs, surface):
    """Return the given masker, or one of the given mask, or of the first run.

    The masker is fitted if it is not yet (nilearn's default mask of the first
    run when there is no mask).
    """
    from nilearn.maskers import NiftiMasker, SurfaceMasker

    if hasattr(mask_img, "transform") and hasattr(mask_img, "inverse_transform"):
        masker = mask_img
    else:
        masker = (SurfaceMasker if surface else NiftiMasker)(mask_img=mask_img)
    if getattr(masker, "mask_img_", None) is None:
        masker.fit() if getattr(masker, "mask_img", None) is not None else masker.fit(
            imgs[0]
        )
    return masker


def _transform(masker, img):
    with warnings.catch_warnings():
        # nilearn 0.14 warns about its own default (standardize=False)
        warnings.filterwarnings(
            "ignore", "boolean values for 'standardize'", FutureWarning
        )
        return np.asarray(masker.transform(img), dtype=np.float64)


def _load_runs(run_imgs, mask_img, t_r, frame_times):
    """Arrays (n_scans, n_voxels) and frame times of every run."""
    if _is_array(run_imgs):
        runs = run_imgs if isinstance(run_imgs, (list, tuple)) else [run_imgs]
        data = [np.asarray(y, dtype=np.float64) for y in runs]
        if any(y.ndim != 2 for y in data) or len({y.shape[1] for y in data}) != 1:
            raise ValueError(
                "Array runs must be 2D (n_scans, n_voxels) with the same number "
                "of voxels, got shapes " + ", ".join(str(y.shape) for y in data)
            )
        masker, header_t_r = None, []
    else:
        try:
            from nilearn.image import load_img
            from nilearn.surface import SurfaceImage
        except ImportError as err:  # pragma: no cover (nilearn is a dependency)
            raise ImportError(
                "Images need nilearn: pip install 'mne-wasserstein[hrf]', or pass "
                "arrays (n_scans, n_voxels) with frame_times"
            ) from err
        imgs = run_imgs if isinstance(run_imgs, (list, tuple)) else [run_imgs]
        surface = isinstance(imgs[0], SurfaceImage)
        if not surface:
            imgs = [
                load_img(img) if isinstance(img, (str, Path)) else img for img in imgs
            ]
            if any(len(img.shape) != 4 for img in imgs):
                raise ValueError("Nifti runs must be 4D images (one volume per scan)")
        masker = _make_masker(mask_img, imgs, surface)
        data = [_transform(masker, img) for img in imgs]
        header_t_r = [] if surface else [_header_t_r(img) for img in imgs]
    t_r = _check_t_r(t_r, header_t_r, frame_times, data)
    if frame_times is None:
        frame_times = [np.arange(len(y)) * t_r for y in data]
    else:
        frame_times = [
            np.asarray(ft, dtype=np.float64)
            for ft in _as_list(frame_times, len(data), "frame_times")
        ]
    for r, (ft, y) in enumerate(zip(frame_times, data, strict=True)):
        if ft.shape != (len(y),) or (len(ft) > 1 and not (np.diff(ft) > 0).all()):
            raise ValueError(
                f"Run {r}: frame_times must be increasing, one per scan "
                f"({len(y)}), got shape {ft.shape}"
            )
        if len(y) < 2:
            raise ValueError(f"Run {r} has {len(y)} scan(s); at least 2 are needed")
    finite = np.logical_and.reduce([np.isfinite(y).all(axis=0) for y in data])
    if not finite.all():
        warnings.warn(
            f"{(~finite).sum()} voxel(s) have NaN or infinite values: they are "
            "left out of the fit (zeros in hrfs_, betas_ and scores_; see "
            "voxel_mask_).",
            UserWarning,
            stacklevel=3,
        )
        data = [np.where(finite, y, 0.0) for y in data]
    if not finite.any():
        raise ValueError("No voxel has finite values in every run")
    return _Runs(data, frame_times, t_r, masker, finite)


def _check_t_r(t_r, header_t_r, frame_times, data):
    header = {round(x, 6) for x in header_t_r if x is not None}
    if len(header) > 1:
        raise ValueError(f"The runs have different t_r in their headers: {header}")
    header = header.pop() if header else None
    step = None
    if frame_times is not None:
        ft = np.asarray(_as_list(frame_times, len(data), "frame_times")[0], float)
        steps = np.diff(ft)
        if len(steps) and steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-6):
            step = float(steps[0])
    if t_r is not None:
        if not t_r > 0:
            raise ValueError(f"t_r must be positive, got {t_r}")
        for name, other in (("the image header", header), ("frame_times", step)):
            if other is not None and abs(other - t_r) > 1e-3 * t_r:
                raise ValueError(
                    f"t_r={t_r} s does not match {name} ({other} s); fix one of them"
                )
        return float(t_r)
    if header is not None:
        return header
    if step is not None:
        return step
    if frame_times is not None:
        raise ValueError("frame_times are not regular: set t_r (the FIR grid step)")
    raise ValueError("Set t_r, or pass frame_times (array runs) or images with t_r")


def _events_table(events):
    if isinstance(events, (str, Path)):
        import pandas as pd

        return pd.read_csv(events, sep="\t")
    return events


def _check_events(events, frame_times, hrf_length, run):
    """(onsets, durations, modulations, trial_types) of one run."""
    events = _events_table(events)
    try:
        onsets = np.asarray(events["onset"], dtype=np.float64).ravel()
        durations = np.asarray(events["duration"], dtype=np.float64).ravel()
    except (KeyError, TypeError, IndexError, ValueError) as err:
        raise ValueError(
            f"Run {run}: events must be a table (DataFrame, dict of arrays, or "
            f"path to a .tsv file) with numeric 'onset' and 'duration' columns ({err})"
        ) from None
    n = len(onsets)
    if n == 0:
        raise ValueError(f"Run {run}: no events")
    if "trial_type" in events:
        trial_types = np.asarray(events["trial_type"]).astype(str).ravel()
    else:
        trial_types = np.full(n, "dummy")
    if "modulation" in events:
        modulations = np.asarray(events["modulation"], dtype=np.float64).ravel()
    else:
        modulations = np.ones(n)
    if not (len(durations) == len(trial_types) == len(modulations) == n):
        raise ValueError(f"Run {run}: the event columns have different lengths")
    for name, x in (
        ("onset", onsets),
        ("duration", durations),
        ("modulation", modulations),
    ):
        if not np.isfinite(x).all():
            raise ValueError(f"Run {run}: event {name}s must be finite")
    if (durations < 0).any():
        raise ValueError(f"Run {run}: event durations must be >= 0")
    late = onsets > frame_times[-1]
    early = onsets + durations + hrf_length < frame_times[0]
    if late.any() or early.any():
        bad = np.flatnonzero(late | early)
        raise ValueError(
            f"Run {run}: {len(bad)} event(s) outside the run (scans from "
            f"{frame_times[0]} to {frame_times[-1]} s, HRF length {hrf_length} s), "
            f"e.g. onset {onsets[bad[0]]} s"
        )
    return onsets, durations, modulations, trial_types
