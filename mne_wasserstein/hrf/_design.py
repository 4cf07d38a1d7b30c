"""HRF bases, event regressors and nuisance (drift, confound) models.

Arrays in, arrays out; times in seconds. An event (onset ``o``, duration
``D``, modulation ``m``) contributes ``m * b(t - o)`` to the regressor of the
basis function ``b`` when ``D = 0`` (a unit impulse) and
``m * integral_o^(o + D) b(t - s) ds`` when ``D > 0`` (a unit-height boxcar),
both in closed form: no oversampled grid, no rounding of onsets.
"""

import numpy as np
from scipy.linalg import orth
from scipy.stats import gamma

BASES = ("3hrf", "fir", "canonical")
# SPM's canonical HRF: gamma densities of shapes 6 (peak) and 16 (undershoot),
# scale 1 s, undershoot ratio 1/6; its dispersion derivative is SPM's finite
# difference in the scale of the peak gamma, with step 0.01
_PEAK, _UNDERSHOOT, _RATIO, _DISP_STEP = 6.0, 16.0, 1.0 / 6.0, 0.01


def _n_knots(hrf_length, t_r):
    return max(1, int(round(hrf_length / t_r)))


def _hrf_times(hrf_length, t_r):
    """Return the grid on which HRFs are reported and normalised (every t_r)."""
    return np.arange(_n_knots(hrf_length, t_r)) * float(t_r)


def _two_gamma(t, dispersion=1.0, integral=False):
    """SPM's HRF (or its integral from 0 to t) with a given peak dispersion."""
    f = gamma.cdf if integral else gamma.pdf
    return f(t, _PEAK / dispersion, scale=dispersion) - _RATIO * f(t, _UNDERSHOOT)


def _parametric_basis(t, basis, integral):
    """Canonical HRF [, time derivative, dispersion derivative] at times t."""
    cols = [_two_gamma(t, integral=integral)]
    if basis == "3hrf":
        if integral:  # the integral of the time derivative is the HRF itself
            cols.append(_two_gamma(t))
        else:  # d/dt gamma.pdf(t, a) = gamma.pdf(t, a - 1) - gamma.pdf(t, a)
            cols.append(
                gamma.pdf(t, _PEAK - 1)
                - gamma.pdf(t, _PEAK)
                - _RATIO * (gamma.pdf(t, _UNDERSHOOT - 1) - gamma.pdf(t, _UNDERSHOOT))
            )
        step = _two_gamma(t, 1.0 + _DISP_STEP, integral=integral)
        cols.append((cols[0] - step) / _DISP_STEP)
    return np.stack(cols, axis=-1)


def _tent_integral(u):
    """Integral from -inf to u of the unit tent max(0, 1 - |x|)."""
    u = np.clip(u, -1.0, 1.0)
    return np.where(u <= 0, 0.5 * (1 + u) ** 2, 1 - 0.5 * (1 - u) ** 2)


def basis_functions(basis, times, t_r, hrf_length, integral=False):
    """Values (or integrals from 0) of the HRF basis functions.

    Parameters
    ----------
    basis : "3hrf" | "fir" | "canonical"
        ``"canonical"``: SPM's two-gamma HRF; ``"3hrf"``: the canonical HRF
        and its time and dispersion derivatives; ``"fir"``: piecewise-linear
        tents centred every ``t_r`` from 0 (the first one a half tent), so
        that an FIR HRF is the linear interpolation of its samples.
    times : array
        Times after the event onset (s), any shape.
    t_r : float
        The repetition time (s): the spacing of the FIR knots.
    hrf_length : float
        The support of the HRF (s): every basis function is 0 outside
        ``[0, hrf_length]``.
    integral : bool
        If True, return ``integral_0^t b(s) ds`` instead of ``b(t)``.

    Returns
    -------
    values : array, shape times.shape + (n_basis,)
        One trailing column per basis function.
    """
    t = np.asarray(times, dtype=np.float64)
    if basis == "fir":
        knots = _hrf_times(hrf_length, t_r)
        u = (t[..., np.newaxis] - knots) / t_r
        lower = np.where(knots > 0, -1.0, 0.0)  # the first tent starts at 0
        if integral:
            return t_r * (_tent_integral(np.maximum(u, lower)) - _tent_integral(lower))
        return np.where(u >= lower, np.maximum(0.0, 1.0 - np.abs(u)), 0.0)
    if integral:
        return _parametric_basis(np.clip(t, 0.0, hrf_length), basis, True)
    inside = ((t >= 0) & (t < hrf_length))[..., np.newaxis]
    return np.where(inside, _parametric_basis(t, basis, False), 0.0)


def event_regressors(
    frame_times, onsets, durations, modulations, basis, t_r, hrf_length
):
    """Regressors of each event convolved with each basis function.

    Returns
    -------
    regressors : array, shape (n_scans, n_events, n_basis)
    """
    lag = np.asarray(frame_times, float)[:, np.newaxis] - onsets
    impulse = basis_functions(basis, lag, t_r, hrf_length)
    boxcar = basis_functions(
        basis, lag, t_r, hrf_length, integral=True
    ) - basis_functions(basis, lag - durations, t_r, hrf_length, integral=True)
    out = np.where((durations > 0)[:, np.newaxis], boxcar, impulse)
    return out * modulations[:, np.newaxis]


def cosine_drift(frame_times, high_pass):
    """Discrete cosine (DCT-II) drifts below ``high_pass`` Hz and a constant.

    The number of cosines is ``floor(2 n high_pass dt)`` (``n`` scans
    ``dt`` apart), as in nilearn's design matrices.

    Returns
    -------
    drift : array, shape (n_scans, n_cosines + 1)
    """
    n = len(frame_times)
    dt = (frame_times[-1] - frame_times[0]) / (n - 1) if n > 1 else 1.0
    order = min(n - 1, int(np.floor(2 * n * high_pass * dt)))
    k = np.arange(1, order + 1)
    cosines = np.cos(np.pi / n * (np.arange(n)[:, np.newaxis] + 0.5) * k)
    return np.column_stack([np.sqrt(2.0 / n) * cosines, np.ones(n)])


def nuisance_basis(frame_times, drift_model, high_pass, confounds):
    """Orthonormal basis of the drifts, the constant and the confounds.

    Returns
    -------
    Q : array, shape (n_scans, rank)
        Projecting on its orthogonal complement removes the nuisance part.
    """
    n = len(frame_times)
    cols = [cosine_drift(frame_times, high_pass) if drift_model else np.ones((n, 1))]
    if confounds is not None:
        cols.append(confounds)
    return orth(np.column_stack(cols))


def project_out(Q, Z):
    """Remove from Z (n_scans, ...) its component in the span of Q."""
    flat = Z.reshape(len(Z), -1)
    return (flat - Q @ (Q.T @ flat)).reshape(Z.shape)
