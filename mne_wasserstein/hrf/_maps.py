"""Maps derived from HRFs, and HRFs as nilearn hemodynamic models."""

import numpy as np

from .._docs import fill_doc


def _check_samples(hrfs, times):
    hrfs = np.asarray(hrfs, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 2 or not (np.diff(times) > 0).all():
        raise ValueError("times must be a 1D increasing array of at least 2 samples")
    if hrfs.ndim < 1 or hrfs.shape[0] != len(times):
        raise ValueError(
            f"hrfs must have one row per time ({len(times)}), got shape {hrfs.shape}"
        )
    return hrfs, times


@fill_doc
def hrf_peak_latency(hrfs, times):
    """Time of the maximum of sampled HRFs.

    Parameters
    ----------
    %(hrf_samples)s
    %(hrf_sample_times)s

    Returns
    -------
    latency : ndarray, shape hrfs.shape[1:]
        The time of the largest sample (s), so its resolution is the
        sampling step; :meth:`RankOneGLM.get_img` samples every ``t_r / 20``.
    """
    hrfs, times = _check_samples(hrfs, times)
    return times[np.argmax(hrfs, axis=0)]


@fill_doc
def hrf_width(hrfs, times):
    """Full width at half maximum of sampled HRFs.

    Parameters
    ----------
    %(hrf_samples)s
    %(hrf_sample_times)s

    Returns
    -------
    width : ndarray, shape hrfs.shape[1:]
        The time between the last crossing of half the maximum before the
        peak and the first one after it (s), by linear interpolation between
        samples. NaN where the maximum is not positive or a crossing is not
        within ``times``.
    """
    hrfs, times = _check_samples(hrfs, times)
    flat = hrfs.reshape(len(times), -1)
    cols = np.arange(flat.shape[1])
    peak = np.argmax(flat, axis=0)
    half = flat[peak, cols] / 2
    below = flat < half
    idx = np.arange(len(times))[:, np.newaxis]
    left = np.where(below & (idx < peak), idx, -1).max(axis=0)
    right = np.where(below & (idx > peak), idx, len(times)).min(axis=0)
    ok = (half > 0) & (left >= 0) & (right < len(times))
    i, j = np.where(ok, left, 0), np.where(ok, right, 1)

    def crossing(a, b):  # between samples a and b, where flat crosses half
        ha, hb = flat[a, cols], flat[b, cols]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = (half - ha) / (hb - ha)
        return times[a] + frac * (times[b] - times[a])

    width = np.where(ok, crossing(j - 1, j) - crossing(i, i + 1), np.nan)
    return width.reshape(hrfs.shape[1:])


@fill_doc
def make_hrf_model(hrf, times, name="estimated_hrf"):
    """Turn an estimated HRF into a hemodynamic model for nilearn.

    The result can be passed as ``hrf_model`` to
    :class:`nilearn.glm.first_level.FirstLevelModel` or
    :func:`nilearn.glm.first_level.make_first_level_design_matrix`, e.g.
    to refit a standard GLM with an HRF estimated by :class:`RankOneGLM`
    and averaged over a region.

    Parameters
    ----------
    hrf : array, shape (n_times,)
        The HRF samples (any scale; e.g. a column of ``RankOneGLM.hrfs_``
        or an average of columns).
    %(hrf_sample_times)s
    name : str
        The name of the model, which nilearn appends to the condition names
        of the design matrix columns.

    Returns
    -------
    hrf_model : callable
        ``hrf_model(t_r, oversampling=50, time_length=32.0, onset=0.0)``
        returns the HRF linearly interpolated every ``t_r / oversampling``
        seconds from ``-onset`` over ``time_length`` seconds (0 outside
        ``times``) and scaled to sum to 1, like nilearn's own kernels.
    """
    hrf, times = _check_samples(hrf, times)
    if hrf.ndim != 1 or not np.isfinite(hrf).all():
        raise ValueError(f"hrf must be a finite 1D array, got shape {hrf.shape}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier, got {name!r}")
    step = np.median(np.diff(times))
    if not np.trapezoid(hrf, times) > 1e-3 * np.abs(hrf).max(initial=0.0) * step:
        raise ValueError(
            "The HRF must have a positive integral (nilearn's kernels sum to 1); "
            "flip its sign or pass an HRF with a positive main lobe"
        )

    def hrf_model(t_r, oversampling=50, time_length=32.0, onset=0.0):
        dt = t_r / oversampling
        grid = np.arange(int(np.rint(time_length / dt))) * dt - onset
        kernel = np.interp(grid, times, hrf, left=0.0, right=0.0)
        if not kernel.sum() > 0:
            raise ValueError(f"The HRF {name!r} sums to <= 0 on this time grid")
        return kernel / kernel.sum()

    hrf_model.__name__ = hrf_model.__qualname__ = name
    hrf_model.__doc__ = f"The HRF {name!r} sampled for nilearn (sums to 1)."
    return hrf_model
