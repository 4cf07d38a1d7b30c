"""Numba proximal coordinate-descent kernels (arrays in, arrays out).

Every model of the package is solved on the split ``x = x+ - x-`` with
``x+, x- >= 0``, one coordinate at a time, with residual updates. For a
non-negative coordinate ``t`` with column ``a`` (``A = ||a||^2 / n``) and
partial correlation ``b = a^T r / n`` (``r`` the residual without ``t``), the
block objective of every model of the package reads

    (A / 2) t^2 - b t + sigma [ c (t - m log(t + tau)) + lam t ],   t >= 0,

(``c = 0`` for the Lasso: no transport term). It is convex and its minimiser
has a closed form: with ``g = b - sigma (c + lam)``, ``t = 0`` if
``g <= 0`` and ``g tau + sigma c m <= 0``, else the positive root of
``A t^2 + (A tau - g) t - (g tau + sigma c m) = 0``. With ``c = 0`` this is
the soft-threshold ``max(g, 0) / A``.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def _prox_nonneg(A, b, lam, sigma, c, m, tau):
    """Minimise the one-coordinate objective above over t >= 0."""
    g = b - sigma * (c + lam)
    # zero iff the derivative at 0, -g - sigma c m / tau, is >= 0 (for
    # tau = 0 that needs c m = 0 and g <= 0)
    if g <= 0.0 and g * tau + sigma * c * m <= 0.0:
        return 0.0
    lin = A * tau - g
    disc = lin * lin + 4.0 * A * (g * tau + sigma * c * m)
    root = np.sqrt(max(disc, 0.0))
    # numerically stable form of the positive root
    if lin >= 0.0:
        return 2.0 * (g * tau + sigma * c * m) / (lin + root)
    return (root - lin) / (2.0 * A)


@njit(cache=True)
def _cd_epoch(X, R, coef, col_norms, ws, lam_w, sigma, c, marg, tau):
    """One sweep over the coordinates ``ws`` of both signs; updates R, coef.

    Parameters
    ----------
    X : array, shape (n, p)
    R : array, shape (n,)
        The residual ``y - X (x+ - x-)``, updated in place.
    coef : array, shape (2, p)
        ``x+`` and ``x-``, updated in place.
    col_norms : array, shape (p,)
        ``||X_j||^2 / n``.
    ws : array of int
        The coordinates to sweep.
    lam_w : array, shape (p,)
        The (weighted) l1 threshold of each coordinate.
    sigma : float
        The noise level multiplying the penalties (1 without concomitance).
    c : float
        The weight of the transport term (0 for none).
    marg : array, shape (2, p)
        The transport marginals ``m`` of each sign.
    tau : float
        The shift of the log term.

    Returns
    -------
    max_change : float
        The largest absolute change of a coefficient.
    """
    n = X.shape[0]
    max_change = 0.0
    for j in ws:
        A = col_norms[j]
        if A == 0.0:
            continue
        for sign_idx in range(2):
            sign = 1.0 - 2.0 * sign_idx
            old = coef[sign_idx, j]
            # partial correlation with the residual without this coordinate
            b = 0.0
            for i in range(n):
                b += X[i, j] * R[i]
            b = sign * b / n + A * old
            new = _prox_nonneg(A, b, lam_w[j], sigma, c, marg[sign_idx, j], tau)
            if new != old:
                delta = sign * (new - old)
                for i in range(n):
                    R[i] -= X[i, j] * delta
                coef[sign_idx, j] = new
                max_change = max(max_change, abs(new - old))
    return max_change
