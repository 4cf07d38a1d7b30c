"""Numba proximal coordinate-descent kernels (arrays in, arrays out).

Every model of the package is solved on the split ``x = x+ - x-`` with
``x+, x- >= 0``, one coordinate at a time, with residual updates. For a
non-negative coordinate ``t`` with column ``a`` (``a2 = ||a||^2 / n``) and
partial correlation ``b = a^T r / n`` (``r`` the residual without ``t``), the
block objective of every model of the package reads

    (a2 / 2) t^2 - b t + sigma [ c (t - m log(t + tau)) + lam t ],   t >= 0,

(``c = 0`` for the Lasso: no transport term). It is convex and its minimiser
has a closed form: with ``g = b - sigma (c + lam)``, ``t = 0`` if
``g <= 0`` and ``g tau + sigma c m <= 0``, else the positive root of
``a2 t^2 + (a2 tau - g) t - (g tau + sigma c m) = 0``. With ``c = 0`` this is
the soft-threshold ``max(g, 0) / a2``.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _prox_nonneg(a2, b, lam, sigma, c, m, tau):
    """Minimise the one-coordinate objective above over t >= 0."""
    g = b - sigma * (c + lam)
    # zero iff the derivative at 0, -g - sigma c m / tau, is >= 0 (for
    # tau = 0 that needs c m = 0 and g <= 0)
    if g <= 0.0 and g * tau + sigma * c * m <= 0.0:
        return 0.0
    lin = a2 * tau - g
    disc = lin * lin + 4.0 * a2 * (g * tau + sigma * c * m)
    root = np.sqrt(max(disc, 0.0))
    # numerically stable form of the positive root
    if lin >= 0.0:
        return 2.0 * (g * tau + sigma * c * m) / (lin + root)
    return (root - lin) / (2.0 * a2)


@njit(cache=True, nogil=True)
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
        a2 = col_norms[j]
        if a2 == 0.0:
            continue
        for sign_idx in range(2):
            sign = 1.0 - 2.0 * sign_idx
            old = coef[sign_idx, j]
            # partial correlation with the residual without this coordinate
            b = 0.0
            for i in range(n):
                b += X[i, j] * R[i]
            b = sign * b / n + a2 * old
            new = _prox_nonneg(a2, b, lam_w[j], sigma, c, marg[sign_idx, j], tau)
            if new != old:
                delta = sign * (new - old)
                for i in range(n):
                    R[i] -= X[i, j] * delta
                coef[sign_idx, j] = new
                max_change = max(max_change, abs(new - old))
    return max_change


@njit(cache=True)
def _lasso_epoch(X, R, coef, col_norms, ws, lam_w):
    """:func:`_cd_epoch` of the Lasso: no transport term, no noise level.

    ``c = 0`` removes the transport term, so its marginals and shift are
    never read (zeros are passed); ``sigma = 1``.
    """
    no_marginals = np.zeros((2, coef.shape[1]))
    return _cd_epoch(X, R, coef, col_norms, ws, lam_w, 1.0, 0.0, no_marginals, 0.0)


@njit(cache=True)
def _group_prox(a2, b, lam):
    """Minimise ``sum_s (a2_s/2) v_s^2 - b_s v_s + lam ||v||_2`` over v.

    The minimiser is zero when ``||b|| <= lam``; otherwise
    ``v_s = b_s r / (a2_s r + lam)`` where ``r = ||v|| > 0`` solves
    ``psi(r) = sum_s b_s^2 / (a2_s r + lam)^2 - 1 = 0``; ``psi`` is convex and
    decreasing with ``psi(0) > 0``, so Newton's method from ``r = 0``
    increases monotonically to the root.
    """
    S = b.shape[0]
    out = np.zeros(S)
    norm2 = 0.0
    for s in range(S):
        norm2 += b[s] * b[s]
    if norm2 <= lam * lam:
        return out
    r = 0.0
    for _ in range(100):
        psi, dpsi = -1.0, 0.0
        for s in range(S):
            d = a2[s] * r + lam
            psi += b[s] * b[s] / (d * d)
            dpsi -= 2.0 * b[s] * b[s] * a2[s] / (d * d * d)
        if dpsi == 0.0:
            break
        step = psi / dpsi
        r -= step
        if abs(step) <= 1e-15 * r:
            break
    for s in range(S):
        out[s] = b[s] * r / (a2[s] * r + lam)
    return out


@njit(cache=True)
def _group_epoch(X, R, inv_n, coef, col_norms, ws, lam, lam_l1, spec):
    """One block sweep of the Group Lasso / Dirty model; updates R, coef, spec.

    Parameters
    ----------
    X : array, shape (S, n_max, p)
        Designs, zero-padded to a common number of rows.
    R : array, shape (S, n_max)
        Residuals, updated in place.
    inv_n : array, shape (S,)
        ``1 / n_s``.
    coef : array, shape (S, p)
        The common (l21) part, updated in place.
    col_norms : array, shape (S, p)
        ``||X_sj||^2 / n_s``.
    ws : array of int
        The blocks to sweep.
    lam : float
        The l21 threshold.
    lam_l1 : float
        The l1 threshold of the specific part (``inf``: no specific part).
    spec : array, shape (S, p)
        The specific (l1) part, updated in place.

    Returns
    -------
    max_change : float
        The largest absolute change of a coefficient.
    """
    S, n, _ = X.shape
    max_change = 0.0
    b = np.zeros(S)
    for j in ws:
        for part in range(2 if lam_l1 < np.inf else 1):
            target = coef if part == 0 else spec
            for s in range(S):
                acc = 0.0
                for i in range(n):
                    acc += X[s, i, j] * R[s, i]
                b[s] = acc * inv_n[s] + col_norms[s, j] * target[s, j]
            if part == 0:
                new = _group_prox(col_norms[:, j], b, lam)
            else:
                new = np.zeros(S)
                for s in range(S):
                    if col_norms[s, j] > 0.0:
                        mag = max(abs(b[s]) - lam_l1, 0.0)
                        new[s] = np.sign(b[s]) * mag / col_norms[s, j]
            for s in range(S):
                delta = new[s] - target[s, j]
                if delta != 0.0:
                    for i in range(n):
                        R[s, i] -= X[s, i, j] * delta
                    target[s, j] = new[s]
                    max_change = max(max_change, abs(delta))
    return max_change
