"""Compiled CPU loops of the sparse Sinkhorn engine (numba).

The same algorithm as the array code of :mod:`mne_wasserstein.ot.sinkhorn`
run with a :class:`~mne_wasserstein.ot.kernels.SparseKernel` (the reference,
and the GPU path): ``tests/test_ot_sparse.py`` asserts that both give the
same potentials and barycenters. Everything here takes and returns numpy
arrays; the kernel is a truncated stabilized kernel in CSR form (see
:class:`~mne_wasserstein.ot.kernels.SparseKernel`).
"""

import numpy as np
from numba import njit, prange

# a kernel-domain product below this value may have lost its terms to
# underflow: it is recomputed by a log-sum-exp over the row (see _tau)
_TAU64 = float(np.finfo(np.float64).tiny) ** (2.0 / 3.0)
_TINY64 = float(np.finfo(np.float64).tiny)
_HUGE64 = float(np.finfo(np.float64).max)
_LOG_TINY = -700.0
# the window of the over-relaxation's reduction rule (see sinkhorn._adapt)
_WINDOW = 101


@njit(cache=True)
def _top(pot, active):
    """Return the largest potential of the active points (``-inf`` if none)."""
    top = -np.inf
    for i in range(pot.shape[0]):
        if active[i]:
            top = max(top, pot[i])
    return top


@njit(parallel=True, cache=True)
def _best_entries(cand, pot, active, other_active, inv_eps):
    """``max_j (pot_j - M_ij / eps)`` over the active ``j`` of each active row.

    ``cand`` is ``(indptr, indices, distances)`` with each row sorted by
    distance, so the scan of a row stops once no farther entry can win.
    """
    indptr, indices, dist = cand
    n_rows = indptr.shape[0] - 1
    top = _top(pot, other_active)
    best = np.full(n_rows, -np.inf)
    for i in prange(n_rows):
        if not active[i]:
            continue
        for k in range(indptr[i], indptr[i + 1]):
            if top - dist[k] * inv_eps < best[i]:
                break
            j = indices[k]
            if other_active[j]:
                best[i] = max(best[i], pot[j] - dist[k] * inv_eps)
    return best


@njit(cache=True)
def _reachable(cand, cand_t, row_pot, col_pot, row_active, col_active, inv_eps,
               log_keep):  # fmt: skip
    """Raise the potentials so that every active row and column keeps an entry.

    ``cand`` and ``cand_t``: the finite entries of ``M`` and ``M^T`` (CSR,
    rows sorted by distance). First each active column's potential is
    raised to keep its best entry towards active rows, then each active
    row's to keep its best entry towards active columns (raising a potential
    only adds entries).
    """
    # the best entry is kept by a margin of 1 (rounding of large potentials)
    best = _best_entries(cand_t, row_pot, col_active, row_active, inv_eps)
    new_col = col_pot.copy()
    for j in range(new_col.shape[0]):
        if best[j] > -np.inf:
            new_col[j] = max(col_pot[j], log_keep + 1.0 - best[j])
    best = _best_entries(cand, new_col, row_active, col_active, inv_eps)
    new_row = row_pot.copy()
    for i in range(new_row.shape[0]):
        if best[i] > -np.inf:
            new_row[i] = max(row_pot[i], log_keep + 1.0 - best[i])
    return new_row, new_col


@njit(parallel=True, cache=True)
def _truncate(cand, row_pot, col_pot, env_u, env_v, lu, lv, mask_u, mask_v,
              row_active, col_active, inv_eps, log_keep):  # fmt: skip
    """Entries kept by the stabilized truncation, as CSR.

    ``cand``: the finite entries of ``M`` (CSR, rows sorted by distance).
    ``row_pot``, ``col_pot``: the potentials absorbed; ``env_u``, ``env_v``:
    the envelopes of the columns' log-scalings they were raised from
    (``max_c lu``, ``max_c lv``); ``lu``, ``lv``: the log-scalings, with
    their masks. Entry ``(i, j)`` (both active) is kept when some column
    ``c`` has ``lu[i, c] + lv[j, c] - M_ij / eps >= log_keep`` (its plan
    entry is not negligible), or when ``row_pot[i] + col_pot[j] - M_ij / eps
    >= log_keep`` for a potential raised above its envelope (the best entry
    of a row or column that would be empty). Returns the CSR structure and
    the log values ``row_pot + col_pot - M / eps`` of the kept entries.
    (Arrays, not a tuple of them: a tuple in the parallel loop costs 5x.)
    """
    indptr, indices, dist = cand
    n_rows = indptr.shape[0] - 1
    top = _top(col_pot, col_active)
    n_col = lu.shape[1]
    keep = np.empty(dist.shape[0], dtype=np.bool_)
    # each row is scanned up to the first candidate too far for any column
    stop = indptr[:-1].copy()
    counts = np.zeros(n_rows + 1, dtype=np.int64)
    for i in prange(n_rows):
        if not row_active[i]:
            continue
        n = 0
        k = indptr[i]
        raised_i = row_pot[i] > env_u[i]
        while k < indptr[i + 1]:
            d = dist[k] * inv_eps
            if row_pot[i] + top - d < log_keep:
                break
            j = indices[k]
            kept = False
            if col_active[j] and row_pot[i] + col_pot[j] - d >= log_keep:
                # a potential raised above its envelope (see _reachable)
                if raised_i or col_pot[j] > env_v[j]:
                    kept = True
                else:
                    for c in range(n_col):
                        if mask_u[i, c] and mask_v[j, c]:
                            kept = lu[i, c] + lv[j, c] - d >= log_keep
                            if kept:
                                break
            keep[k] = kept
            n += kept
            k += 1
        stop[i] = k
        counts[i + 1] = n
    out_indptr = np.cumsum(counts)
    out_indices = np.empty(out_indptr[-1], dtype=np.int32)
    logk = np.empty(out_indptr[-1], dtype=np.float64)
    for i in prange(n_rows):
        out = out_indptr[i]
        for k in range(indptr[i], stop[i]):
            if keep[k]:
                j = indices[k]
                out_indices[out] = j
                logk[out] = row_pot[i] + col_pot[j] - dist[k] * inv_eps
                out += 1
    return out_indptr, out_indices, logk


@njit(cache=True)
def _exp_sum(log_values):
    """``sum(exp(log_values))`` in float64 (a Gibbs kernel's total)."""
    total = 0.0
    for v in log_values:
        total += np.exp(v)
    return total


@njit(parallel=True, cache=True)
def _log_product(indptr, indices, data, log_data, post, lx, pre, need, cand, out):
    """``out = log(K @ exp(lx))`` with the stabilized kernel ``K``.

    ``K_ij = exp(post_i) data_ij exp(-pre_j)``, ``log_data = log(data)``
    (finite where ``data`` underflows to 0: an entry negligible for the
    potentials absorbed may matter to a column far below them): one product
    ``data @ exp(lx - pre)`` in the kernel domain; entries of ``need`` whose
    product is below ``_TAU64`` (underflow may have lost terms) or infinite
    (a log-scaling far above its absorbed potential) are
    recomputed by a log-sum-exp over the row, and those still empty by a
    log-sum-exp over the candidates ``cand`` (``indptr, indices, distances,
    1 / epsilon``: the untruncated row). ``lx`` may hold ``-inf``.
    """
    p, n_col = lx.shape
    n_rows = indptr.shape[0] - 1
    E = np.empty((p, n_col))
    for j in prange(p):
        for c in range(n_col):
            E[j, c] = np.exp(lx[j, c] - pre[j])
    for i in prange(n_rows):
        acc = np.zeros(n_col)
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            w = data[k]
            for c in range(n_col):
                acc[c] += w * E[j, c]
        for c in range(n_col):
            y = acc[c]
            if not (_TAU64 <= y < np.inf) and need[i, c]:
                out[i, c] = post[i] + _row_logsumexp(
                    indptr[i], indptr[i + 1], indices, log_data, lx, pre, c
                )
                if out[i, c] == -np.inf:
                    out[i, c] = _candidate_logsumexp(cand, i, lx, c)
            else:
                out[i, c] = np.log(min(max(y, _TINY64), _HUGE64)) + post[i]


@njit(cache=True)
def _row_logsumexp(start, stop, indices, log_data, lx, pre, c):
    """``log sum_k exp(log_data_k + lx[j_k, c] - pre[j_k])``, stably."""
    top = -np.inf
    for k in range(start, stop):
        j = indices[k]
        v = log_data[k] + lx[j, c] - pre[j]
        if v > top:
            top = v
    if top == -np.inf:
        return -np.inf
    total = 0.0
    for k in range(start, stop):
        j = indices[k]
        total += np.exp(log_data[k] + lx[j, c] - pre[j] - top)
    return top + np.log(total)


@njit(cache=True)
def _candidate_logsumexp(cand, i, lx, c):
    """``log sum_j exp(-M_ij / eps + lx[j, c])`` over the candidates of row i."""
    indptr, indices, dist, inv_eps = cand
    top = -np.inf
    for k in range(indptr[i], indptr[i + 1]):
        top = max(top, lx[indices[k], c] - dist[k] * inv_eps)
    if top == -np.inf:
        return -np.inf
    total = 0.0
    for k in range(indptr[i], indptr[i + 1]):
        total += np.exp(lx[indices[k], c] - dist[k] * inv_eps - top)
    return top + np.log(total)


@njit(cache=True)
def _relaxed(lx, lmass, lK, mask, psi, omega, quadratic, out, delta):
    """Safeguarded over-relaxed update (``sinkhorn._relaxed``, exact).

    ``quadratic``: ``sinkhorn._QUADRATIC`` (see ``sinkhorn._unchecked_length``).
    """
    p, n_col = lx.shape
    kappa = (1.0 - psi) / psi
    floor = 0.5 * (1.0 - (omega - 1.0) ** 2)
    unchecked = quadratic * 1.5 * (1.0 - (omega - 1.0) ** 2) / omega**3
    for i in range(p):
        for c in range(n_col):
            valid = mask[i, c] and lK[i, c] > -np.inf
            x_new = psi * (lmass[i, c] - lK[i, c])
            if valid and lx[i, c] > -np.inf:
                x0 = lx[i, c]
                d = x_new - x0
                delta[i, c] = d
                step = d
                if abs(d) * max(1.0, kappa) < unchecked:
                    step = omega * d
                elif omega != 1.0:
                    args = (x0, lmass[i, c], lK[i, c], kappa)
                    if _dual_gain(*args, omega * d) >= floor * _dual_gain(*args, d):
                        step = omega * d
                out[i, c] = x0 + step
            else:
                delta[i, c] = 0.0
                out[i, c] = x_new if valid else -np.inf


@njit(cache=True)
def _dual_gain(x0, lmass, lK, kappa, d):
    """``sinkhorn._dual_gains`` of one entry."""
    if kappa > 0:
        mass = np.exp(lmass - kappa * x0) * (-np.expm1(-kappa * d) / kappa)
    else:
        mass = np.exp(lmass) * d
    return mass - np.exp(x0 + lK) * np.expm1(d)


@njit(cache=True)
def _marginal_change(lu, lKv, delta):
    """``sinkhorn._marginal_change`` of ``m = exp(max(lu + lKv, -700))``."""
    p, n_col = lu.shape
    worst = 0.0
    for c in range(n_col):
        num = 0.0
        scale = 0.0
        for i in range(p):
            m = np.exp(max(lu[i, c] + lKv[i, c], _LOG_TINY))
            num = max(num, m * abs(delta[i, c]))
            scale = max(scale, m)
        if scale > 0:
            worst = max(worst, num / scale)
    return worst


@njit(cache=True)
def _log_barycenter(lKtu, mask_v, weights, psi, n_problems, lq):
    """``_Problem.log_barycenter`` of ``where(mask_v, lKtu, -inf)``."""
    p = lKtu.shape[0]
    S = weights.shape[0]
    t = np.empty(S)
    for i in range(p):
        for n in range(n_problems):
            shift = -np.inf
            for s in range(S):
                c = s * n_problems + n
                t[s] = (1.0 - psi) * lKtu[i, c] if mask_v[i, c] else -np.inf
                shift = max(shift, t[s])
            if not np.isfinite(shift):
                shift = 0.0
            mean = 0.0
            for s in range(S):
                mean += np.exp(t[s] - shift) * weights[s]
            lq[i, n] = (shift + np.log(mean)) / (1.0 - psi)


@njit(cache=True)
def _log_relative_change(lnew, lold):
    """``sinkhorn._log_relative_change``: relative change of exp(lnew)."""
    p, n_col = lnew.shape
    worst = 0.0
    for c in range(n_col):
        shift = -np.inf
        for i in range(p):
            shift = max(shift, lnew[i, c])
        if not np.isfinite(shift):
            shift = 0.0
        diff = 0.0
        scale = 0.0
        for i in range(p):
            new = np.exp(lnew[i, c] - shift)
            diff = max(diff, abs(new - np.exp(lold[i, c] - shift)))
            scale = max(scale, abs(new))
        if scale > 0:
            worst = max(worst, diff / scale)
    return worst


@njit(cache=True)
def _adapt(omega, errors, n_errors, err, oscillation, reduction):
    """``sinkhorn._adapt`` on a fixed buffer; returns (omega, n_errors)."""
    if n_errors == errors.shape[0]:
        errors[:-1] = errors[1:]
        n_errors -= 1
    errors[n_errors] = err
    n_errors += 1
    if omega > 1.0:
        rising = n_errors > 6
        if rising:
            for k in range(1, 4):
                if not errors[n_errors - k] > errors[n_errors - k - 1]:
                    rising = False
        stuck = n_errors > oscillation and errors[:n_errors].min() == errors[0]
        if rising or stuck:
            return 1.0 + reduction * (omega - 1.0), 0
    return omega, n_errors


@njit(cache=True)
def _grown(lx, mask, ref, limit):
    """Whether a log-scaling grew by more than ``limit`` above ``ref``."""
    p, n_col = lx.shape
    for i in range(p):
        for c in range(n_col):
            if mask[i, c] and lx[i, c] - ref[i, c] > limit:
                return True
    return False


@njit(cache=True)
def _sinkhorn_loop(
    kv, ktu, cand, lu0, lv0, logA, ltarget, mask_u, mask_v, weights, n_problems, psi,
    lu, lv, lq, has_lq, omega, errors, n_errors, best, since_best, err,
    n_iter, max_iter, tol, absorb, oscillation, reduction, quadratic,
):  # fmt: skip
    """Generalised Sinkhorn iterations until convergence, ``max_iter`` or absorb.

    ``sinkhorn._run`` and ``sinkhorn._step`` with a stabilized sparse kernel
    (products always exact: the log-domain branch of ``_relaxed``).
    ``kv`` and ``ktu`` are ``(indptr, indices, data, log_data, post, pre)`` of ``K``
    and ``K^T``. ``lu``, ``lv``, ``lq`` are updated in place; ``err`` is the
    criterion of the last iteration (of an earlier call: kept if ``max_iter``
    is reached right after a re-stabilization). Returns
    ``(status, n_iter, err, omega, n_errors, best, since_best, has_lq)``;
    status 0: converged, 1: ``max_iter`` reached, 2: a log-scaling grew
    more than ``absorb`` above its value ``lu0``, ``lv0`` when the kernel
    was stabilized (re-stabilize and call again), 3: NaN.
    """
    p, n_col = lu.shape
    bary = weights.shape[0] > 0
    lKv = np.empty((p, n_col))
    lKtu = np.empty((p, n_col))
    lu_new = np.empty((p, n_col))
    lv_new = np.empty((p, n_col))
    delta = np.empty((p, n_col))
    target = np.empty((p, n_col))
    lq_new = np.empty(lq.shape)
    while n_iter < max_iter:
        _log_product(*kv[:5], lv, kv[5], mask_u, cand[0], lKv)
        _relaxed(lu, logA, lKv, mask_u, psi, omega, quadratic, lu_new, delta)
        err = _marginal_change(lu, lKv, delta)
        _log_product(*ktu[:5], lu_new, ktu[5], mask_v, cand[1], lKtu)
        if bary:
            _log_barycenter(lKtu, mask_v, weights, psi, n_problems, lq_new)
            if has_lq:
                err = max(err, _log_relative_change(lq_new, lq))
            for i in range(p):
                for c in range(n_col):
                    target[i, c] = lq_new[i, c % n_problems]
            _relaxed(lv, target, lKtu, mask_v, psi, omega, quadratic, lv_new, delta)
        else:
            _relaxed(lv, ltarget, lKtu, mask_v, psi, omega, quadratic, lv_new, delta)
        if np.isnan(lu_new).any() or np.isnan(lv_new).any():
            return 3, n_iter, err, omega, n_errors, best, since_best, has_lq
        lu[:] = lu_new
        lv[:] = lv_new
        if bary:
            lq[:] = lq_new
            has_lq = True
        n_iter += 1
        omega, n_errors = _adapt(omega, errors, n_errors, err, oscillation, reduction)
        if err < tol:
            return 0, n_iter, err, omega, n_errors, best, since_best, has_lq
        if err < 0.5 * best:
            best, since_best = err, 0
        else:
            since_best += 1
        if _grown(lu, mask_u, lu0, absorb) or _grown(lv, mask_v, lv0, absorb):
            return 2, n_iter, err, omega, n_errors, best, since_best, has_lq
    return 1, n_iter, err, omega, n_errors, best, since_best, has_lq


@njit(cache=True)
def _transpose(indptr, indices, values, n_cols):
    """CSR of the transpose (counting sort; explicit zeros are kept)."""
    n_rows = indptr.shape[0] - 1
    counts = np.zeros(n_cols + 1, dtype=np.int64)
    for k in range(indptr[-1]):
        counts[indices[k] + 1] += 1
    t_indptr = np.cumsum(counts)
    fill = t_indptr[:-1].copy()
    t_indices = np.empty(indptr[-1], dtype=np.int32)
    t_values = np.empty(indptr[-1], dtype=values.dtype)
    for i in range(n_rows):
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            t_indices[fill[j]] = i
            t_values[fill[j]] = values[k]
            fill[j] += 1
    return t_indptr, t_indices, t_values


@njit(parallel=True, cache=True)
def _normalise_rows(indptr, logk):
    """Row maxima ``r`` of ``logk`` (0 if empty), ``exp(logk - r)`` and its log."""
    n_rows = indptr.shape[0] - 1
    r = np.zeros(n_rows)
    data = np.empty(logk.shape[0])
    log_data = np.empty(logk.shape[0])
    for i in prange(n_rows):
        top = -np.inf
        for k in range(indptr[i], indptr[i + 1]):
            top = max(top, logk[k])
        if top > -np.inf:
            r[i] = top
        for k in range(indptr[i], indptr[i + 1]):
            log_data[k] = logk[k] - r[i]
            data[k] = np.exp(log_data[k])
    return r, data, log_data
