"""Small synthetic generators shared by the solver tests."""

import numpy as np


def smooth_design(rng, n, p, width=2.0):
    """Correlated columns, like a leadfield: rows are smoothed white noise."""
    half = int(np.ceil(2.5 * width))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    raw = rng.standard_normal((n, p + 2 * half))
    return np.array([np.convolve(row, kernel, mode="valid") for row in raw])


def sparse_multitask(seed, *, n_subjects=6, n=20, p=80, k=3, jitter=0, snr=3.0):
    """Multi-task data on a 1-D grid of p sources with a ground metric |i - j|.

    Each subject has k sources of random sign (the same for all subjects)
    and amplitudes in [1, 1.5]; with ``jitter > 0`` every other subject's
    sources are moved by 2 to ``jitter`` positions. Designs are
    ``smooth_design`` with width 1; noise is white with std
    ``||X x|| / sqrt(n) / snr``.

    Returns
    -------
    X : array, shape (S, n, p)
    Y : array, shape (S, n)
    coef : array, shape (S, p)
    M : array, shape (p, p)
    """
    rng = np.random.default_rng(seed)
    X = np.stack([smooth_design(rng, n, p, width=1.0) for _ in range(n_subjects)])
    support = rng.choice(np.arange(5, p - 5), k, replace=False)
    signs = rng.choice([-1.0, 1.0], k)
    shifts = [s for s in range(-jitter, jitter + 1) if abs(s) >= 2]
    coef = np.zeros((n_subjects, p))
    for s in range(n_subjects):
        where = support + (rng.choice(shifts, k) if jitter and s % 2 else 0)
        coef[s, where] = signs * rng.uniform(1.0, 1.5, k)
    clean = np.einsum("sij,sj->si", X, coef)
    sd = np.linalg.norm(clean, axis=1).mean() / np.sqrt(n) / snr
    Y = clean + sd * rng.standard_normal(clean.shape)
    grid = np.arange(p, dtype=float)
    return X, Y, coef, np.abs(grid[:, None] - grid[None])
