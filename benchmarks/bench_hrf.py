"""Time the Rank-1 GLM solvers on 50,000 voxels x 300 scans x 3 conditions.

For the FIR (16 coefficients, t_r = 2 s) and 3-HRF bases, on simulated BOLD
(90 impulse events, true HRFs in the basis, amplitude SNR 1, cosine drifts
and an offset), this prints the median time of:

- ``fit``: the package, ``RankOneGLM(mode="r1glm").fit`` end to end (design,
  drift projection, ``X^T Y`` and the batched solver) with ``n_jobs=1`` and
  ``n_jobs=2``;
- ``als``: the package's solver alone, batched alternating least squares
  (``rank_one_solver`` on the precomputed ``X^T X``, ``X^T Y``);
- ``newton``: a batched Newton method written for this benchmark: ``beta``
  eliminated in closed form, Newton steps on the unit sphere of ``h`` with
  the exact Hessian (Schur complement) and a per-voxel Levenberg-Marquardt
  damping, from the same start, stopped when the predicted decrease is
  below ``1e-10 ||y||^2``;
- ``scipy``: a straightforward per-voxel reference, L-BFGS-B
  (``scipy.optimize.minimize`` with the exact gradient) on
  ``||y - X vec(h beta^T)||^2`` with the full (300 x 3 n_basis) design,
  from the canonical HRF, on a subset of voxels (voxels/s extrapolated).

Solvers run with one BLAS thread (``fit`` too, inside; ``n_jobs=2`` uses
two threads). "excess" is the median and maximum over voxels of
``(RSS - RSS_als) / ||P y||^2``: positive means a worse minimum than the
package's. "voxel-iters" counts the iterations summed over voxels. Repeats
are interleaved and medians reported because the machine is shared.

Run: python benchmarks/bench_hrf.py [--voxels 50000] [--repeats 3] [--snr 1]
"""

import argparse
import time

import numpy as np
from scipy.optimize import minimize
from scipy.stats import gamma
from threadpoolctl import threadpool_limits

from mne_wasserstein.hrf import RankOneGLM, rank_one_solver
from mne_wasserstein.hrf._design import (
    _hrf_times,
    basis_functions,
    cosine_drift,
    event_regressors,
    nuisance_basis,
    project_out,
)
from mne_wasserstein.hrf._solver import _Problem, _solve

T_R, N_SCANS, N_EVENTS, HRF_LENGTH = 2.0, 300, 90, 32.0
CONDITIONS = np.array(["a", "b", "c"])


def simulate(basis, n_voxels, snr, rng):
    frame_times = np.arange(N_SCANS) * T_R
    onsets = np.sort(rng.uniform(0, frame_times[-1] - 20, N_EVENTS))
    types = CONDITIONS[rng.integers(0, 3, N_EVENTS)]
    events = dict(onset=onsets, duration=np.zeros(N_EVENTS), trial_type=types)
    E = event_regressors(
        frame_times,
        onsets,
        np.zeros(N_EVENTS),
        np.ones(N_EVENTS),
        basis,
        T_R,
        HRF_LENGTH,
    )
    if basis == "fir":  # two-gamma HRFs peaking between 4 and 8 s
        knots = _hrf_times(HRF_LENGTH, T_R)[:, np.newaxis]
        peak = rng.uniform(5, 9, n_voxels)
        h = gamma.pdf(knots, peak) - 0.35 * gamma.pdf(knots, peak + 8)
    else:
        h = np.array([[1.0], [0.0], [0.0]]) + rng.normal(0, 0.5, (3, n_voxels)) * [
            [0],
            [1],
            [1],
        ]
    beta = rng.uniform(0.5, 2.0, (3, n_voxels))
    cond = np.searchsorted(CONDITIONS, types)
    X = np.einsum("ned,ek->nkd", E, np.eye(3)[cond])  # (n, k, d)
    signal = np.einsum("nkd,dv,kv->nv", X, h, beta)
    drift = cosine_drift(frame_times, 0.01)
    Y = signal + signal.std(axis=0) / snr * rng.standard_normal(signal.shape)
    Y += drift @ rng.normal(0, 3, (drift.shape[1], n_voxels)) + 100.0
    return Y, events, X.reshape(N_SCANS, -1), frame_times


def reference_problem(basis, Y, X, frame_times):
    Q = nuisance_basis(frame_times, "cosine", 0.01, None)
    PX = project_out(Q, X)
    PY = project_out(Q, Y)
    d = X.shape[1] // 3
    B = basis_functions(basis, _hrf_times(HRF_LENGTH, T_R), T_R, HRF_LENGTH)
    if basis == "fir":
        ref = basis_functions(
            "canonical", _hrf_times(HRF_LENGTH, T_R), T_R, HRF_LENGTH
        )[:, 0]
    else:
        ref = np.eye(d)[0]
    return PX, PY, d, B, ref


def newton(gram, xty, yty, d, B, ref, tol=1e-10, max_iter=100):
    """Batched Newton on the sphere; returns (rss, n_iter, voxel_iters)."""
    n_vox = xty.shape[1]
    k = gram.shape[0] // d
    prob = _Problem(gram, xty.T.reshape(n_vox, k, d), yty, d)
    # the package's start: the rank-one truncation of least squares
    h = rank_one_solver(gram, xty, yty, d, max_iter=0).hrf.T.copy()

    def profile(h, idx):
        GH = (h @ prob.G_h).reshape(-1, k, d, k)
        A = np.einsum("va,viaj->vij", h, GH)
        beta, g = prob.profile(h, idx)
        return beta, g, GH, A

    beta, g, GH, A = profile(h, np.arange(n_vox))
    mu = np.full(n_vox, 1e-4)
    done_all = np.zeros(n_vox, bool)
    n_iter = voxel_iters = 0
    eye = np.eye(d)
    while n_iter < max_iter and not done_all.all():
        n_iter += 1
        act = np.flatnonzero(~done_all)
        voxel_iters += act.size
        ha, ba, C = h[act], beta[act], prob.C[act]
        M, R = prob.hrf_system(ba, act)
        grad = 2 * (np.einsum("vab,vb->va", M, ha) - R)
        # d^2 f / dh_a dbeta_l = 2 [sum_j beta_j ((G_lj h)_a + (G_jl h)_a) - c_la]
        H_hb = 2 * (
            np.einsum("vj,vlaj->val", ba, GH[act])
            + np.einsum("vj,vjal->val", ba, GH[act])
            - C.transpose(0, 2, 1)
        )
        S = 2 * M - H_hb @ _solve(2 * A[act], H_hb.transpose(0, 2, 1))
        scale = 2 * np.trace(M, axis1=1, axis2=2) / d
        scale = np.maximum(scale, 1e-12 * scale.max(initial=0.0) + 1e-300)
        # damped Hessian on the tangent space, invertible along h
        Sh = np.einsum("vab,vb->va", S, ha)
        hSh = np.einsum("va,va->v", Sh, ha)
        damp = mu[act] * scale
        K = (
            S
            - ha[:, :, np.newaxis] * Sh[:, np.newaxis]
            - Sh[:, :, np.newaxis] * ha[:, np.newaxis]
            + ((hSh + scale - damp)[:, np.newaxis] * ha)[:, :, np.newaxis]
            * ha[:, np.newaxis]
            + damp[:, np.newaxis, np.newaxis] * eye
        )
        step = -_solve(K, grad)
        decrease = -np.einsum("va,va->v", step, grad)
        done = (decrease >= 0) & (decrease <= tol * yty[act]) & (mu[act] <= 1e-3)
        new = ha + step
        new /= np.linalg.norm(new, axis=1, keepdims=True)
        beta_n, g_n, GH_n, A_n = profile(new, act)
        accept = done | ((decrease > 0) & (g_n <= g[act] + 1e-15 * yty[act]))
        mu[act] = np.where(accept, np.maximum(mu[act] / 10, 1e-12), mu[act] * 10)
        sel = act[accept]
        h[sel], beta[sel], g[sel] = new[accept], beta_n[accept], g_n[accept]
        GH[sel], A[sel] = GH_n[accept], A_n[accept]
        done_all[act[done]] = True
    return g, n_iter, voxel_iters


def als_voxel_iters(gram, xty, yty, d, B, ref):
    """Iterations of the package's solver summed over voxels (by counting
    the voxels of every minimisation in h)."""
    count = [0]
    original = _Problem.hrf_system

    def counting(self, beta, idx):
        count[0] += len(idx)
        return original(self, beta, idx)

    _Problem.hrf_system = counting
    try:
        rank_one_solver(gram, xty, yty, d, basis_values=B, hrf_ref=ref)
    finally:
        _Problem.hrf_system = original
    return count[0]


def scipy_reference(PX, PY, d, ref, n_voxels):
    """Per-voxel L-BFGS-B on the full objective; returns (rss, time)."""
    k = PX.shape[1] // d
    rss = np.empty(n_voxels)
    t0 = time.perf_counter()
    for v in range(n_voxels):
        y = PY[:, v]

        def objective(x, y=y):
            h, b = x[:d], x[d:]
            r = y - PX @ np.kron(b, h)
            gw = -2 * (PX.T @ r).reshape(k, d)
            return r @ r, np.concatenate([b @ gw, gw @ h])

        Xh = PX.reshape(len(PX), k, d) @ ref
        b0 = np.linalg.lstsq(Xh, y, rcond=None)[0]
        res = minimize(
            objective, np.concatenate([ref, b0]), jac=True, method="L-BFGS-B"
        )
        rss[v] = res.fun
    return rss, time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voxels", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scipy-voxels", type=int, default=100)
    parser.add_argument("--snr", type=float, default=1.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for basis in ("3hrf", "fir"):
        Y, events, X, frame_times = simulate(basis, args.voxels, args.snr, rng)
        PX, PY, d, B, ref = reference_problem(basis, Y, X, frame_times)
        gram, xty, yty = PX.T @ PX, PX.T @ PY, (PY**2).sum(axis=0)
        times, iters = {}, {}
        for _ in range(args.repeats):
            for n_jobs in (1, 2):
                t0 = time.perf_counter()
                model = RankOneGLM(basis=basis, t_r=T_R, n_jobs=n_jobs, verbose=False)
                model.fit(Y, events)
                times.setdefault(f"fit n_jobs={n_jobs}", []).append(
                    time.perf_counter() - t0
                )
            with threadpool_limits(1, user_api="blas"):
                t0 = time.perf_counter()
                res = rank_one_solver(gram, xty, yty, d, basis_values=B, hrf_ref=ref)
                times.setdefault("als solver", []).append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                rss_newton, it, vit = newton(gram, xty, yty, d, B, ref)
                times.setdefault("newton solver", []).append(time.perf_counter() - t0)
        iters["newton solver"] = (it, vit)
        iters["als solver"] = (res.n_iter, als_voxel_iters(gram, xty, yty, d, B, ref))
        with threadpool_limits(1, user_api="blas"):
            n_ref = min(args.scipy_voxels, args.voxels)
            rss_ref, t_ref = scipy_reference(PX, PY, d, ref, n_ref)
        rate_ref = n_ref / t_ref
        for name, ts in times.items():
            t = np.median(ts)
            excess = np.zeros(1)
            if name.startswith("newton"):
                excess = (rss_newton - res.objective) / yty
            it, vit = iters.get(name, (res.n_iter, -1))
            rows.append((basis, name, args.voxels, t, args.voxels / t, it, vit, excess))
        excess = (rss_ref - res.objective[:n_ref]) / yty[:n_ref]
        rows.append((basis, "scipy L-BFGS-B", n_ref, t_ref, rate_ref, -1, -1, excess))
        fit_time = np.median(times["fit n_jobs=2"])
        print(
            f"{basis}: {args.voxels} voxels fitted in {fit_time:.1f} s "
            f"(n_jobs=2), {args.voxels / fit_time / rate_ref:.0f}x the per-voxel "
            f"scipy reference ({rate_ref:.0f} voxels/s on one core)"
        )
    header = (
        f"{'basis':6s} {'method':16s} {'voxels':>7s} {'time (s)':>9s} "
        f"{'voxels/s':>9s} {'iters':>6s} {'voxel-iters':>12s} {'excess med':>11s} "
        f"{'excess max':>11s}"
    )
    print(header)
    print("-" * len(header))
    for basis, name, n, t, rate, it, vit, excess in rows:
        it, vit = (x if x >= 0 else "-" for x in (it, vit))
        print(
            f"{basis:6s} {name:16s} {n:7d} {t:9.2f} {rate:9.0f} {it:>6} {vit:>12} "
            f"{np.median(excess):11.1e} {excess.max():11.1e}"
        )


if __name__ == "__main__":
    main()
