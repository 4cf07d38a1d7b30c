"""Small synthetic generators shared by the solver tests."""

import numpy as np


def smooth_design(rng, n, p, width=2.0):
    """Correlated columns, like a leadfield: rows are smoothed white noise."""
    half = int(np.ceil(2.5 * width))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    raw = rng.standard_normal((n, p + 2 * half))
    return np.array([np.convolve(row, kernel, mode="valid") for row in raw])
