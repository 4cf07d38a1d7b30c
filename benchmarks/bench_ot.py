"""Time the unbalanced barycenter of mne_wasserstein.ot against POT.

For p in {2562 (one hemisphere), 5124 (two)} and S in {8, 32} subjects, on
the template source space (fsaverage5, ico4), with the geodesic ground metric
of :func:`mne_wasserstein.compute_ground_metric` (what MWE uses; Dijkstra
along the white surface, mm, np.inf between hemispheres; ``--metric
euclidean`` for straight-line distances), epsilon = 0.05 and gamma = 1 times
the median distance, this prints the median time of POT's
``barycenter_unbalanced`` and of this engine at tol=1e-6 (cold and
warm-started; one dense block or per-hemisphere blocks; float64 or the
engine defaults: float32 products), the error of every barycenter against a
tightly converged reference (``max |q - q_ref| / max q_ref``) and two
speed-ups:

- ``vs POT 1e-6``: against POT at the same nominal tolerance (its stopping
  criterion is looser: its error is about 100 times larger);
- ``equal error``: against the time POT needs to reach the same error,
  interpolated log-linearly in the error between POT runs at stopThr=1e-7
  and 1e-9 (Sinkhorn converges linearly: the error decays geometrically
  with the iterations, and the time grows linearly with them).

The inputs are sparse: three smooth bumps (radius 30 mm) per hemisphere and
subject, 80 percent of them at common locations. Warm starts begin at the
solution for the inputs perturbed by 1 percent multiplicative noise, as in a
late MWE outer iteration. Repeats are interleaved and medians are reported
because the machine is shared. Kernel construction (done once per fit in
MWE) is excluded from our times and printed separately; POT builds its
kernel inside every call.

On a shared machine with more runnable threads than cores, each
multi-threaded BLAS call waits for its threads to be scheduled: many small
calls (ours) then pay much more than few large ones (POT's).
``OPENBLAS_NUM_THREADS=1`` times the algorithms rather than the scheduler;
the load average is printed with the table.

Run: python benchmarks/bench_ot.py [--repeats 3] [--quick] [--metric geodesic]

``--mwe-step`` times the transport step of MWE instead: the barycenters of
both signs of S subjects' sources (a mass floor of 1e-3 plus five focal
sources per subject near common centres, amplitudes 0.5-1.5) on both
hemispheres, gamma = the median distance, at epsilon in {0.45, 1, 2, 4.2}
mm, cold and warm-started (inputs perturbed by 1 percent, as in a late
outer iteration), with four engines side by side: the dense kernel with
float32 products (the engine MWE used before the sparse kernel), the sparse
kernel with the compiled loop on a float64 and on a float32 metric (MWE's
default where it is chosen: ``compute_ground_metric`` gives float32, whose
truncation is 1e-9 instead of 1e-12) and the sparse kernel with the array
code; POT's ``barycenter_unbalanced``
(log-stabilised, ``method="sinkhorn_stabilized"``) for reference.

Run: python benchmarks/bench_ot.py --mwe-step [--repeats 3] [--n-subjects 8 32]

``--small`` times the cold barycenter of small problems with the dense and
the sparse kernel (``kind=`` forced) side by side: 1-D grids of p points
(metric ``|i - j|``, gamma its median), S = 8 subjects and both signs
(inputs ``U^4 + 1e-3``, U uniform), epsilon in {1, 5, 20} grid steps, a
float64 and a float32 metric: where the per-iteration Python work of the
dense solver outweighs its products (``make_kernel(kind="auto")`` uses the
sparse kernel on numpy for blocks of at most 256 points).

Run: python benchmarks/bench_ot.py --small [--repeats 5]
"""

import argparse
import os
import time
import warnings

import mne
import numpy as np
import ot

from mne_wasserstein import compute_ground_metric
from mne_wasserstein.datasets import make_template
from mne_wasserstein.ot import BlockDiagonalKernel, make_kernel, unbalanced_barycenter

EPS_REL, GAMMA_REL, TOL = 0.05, 1.0, 1e-6
POT_LADDER = (1e-7, 1e-9)  # stopThr of the POT runs used for "equal error"


def ground_metric(metric):
    """The per-hemisphere blocks (mm) and positions of the template sources."""
    subjects_dir = make_template(verbose=False)
    src = mne.setup_source_space(
        "fsaverage5", "ico4", subjects_dir=subjects_dir, add_dist=False, verbose=False
    )
    pos = [s["rr"][s["vertno"]] * 1e3 for s in src]  # mm
    if metric == "geodesic":
        gm = compute_ground_metric(src, subjects_dir=subjects_dir, verbose=False)
        return [np.asarray(b, dtype=np.float64) for b in gm.blocks]
    return [np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)) for x in pos]


def make_inputs(hemis, n_subjects, rng):
    """Sparse non-negative sources: 3 smooth bumps per hemisphere and subject."""
    cols = []
    centres = [rng.choice(len(h), 3, replace=False) for h in hemis]
    for _ in range(n_subjects):
        col = []
        for h, cs in zip(hemis, centres, strict=True):
            a = np.zeros(len(h))
            for c in cs:
                centre = rng.integers(len(h)) if rng.random() < 0.2 else c
                d = h[centre]
                a += rng.uniform(0.5, 1.5) * np.exp(-(d**2) / (2 * 8.0**2)) * (d < 30)
            col.append(a)
        cols.append(np.concatenate(col))
    return np.stack(cols, axis=1)


def full_metric(hemis):
    p = sum(len(h) for h in hemis)
    M = np.full((p, p), np.inf)
    start = 0
    for h in hemis:
        M[start : start + len(h), start : start + len(h)] = h
        start += len(h)
    return M


def timed(fun):
    t0 = time.perf_counter()
    out = fun()
    return time.perf_counter() - t0, out


def pot_time_at(err, ladder):
    """POT's time to reach ``err``, log-linear between the two ladder runs."""
    (t1, e1), (t2, e2) = ladder
    frac = (np.log(e1) - np.log(err)) / (np.log(e1) - np.log(e2))
    return t1 + frac * (t2 - t1), not 0 <= frac <= 1


def mwe_inputs(hemis, n_subjects, rng, floor=1e-3):
    """MWE's transport inputs, shape (p, S, 2): a floor plus focal sources."""
    p = sum(len(h) for h in hemis)
    A = np.full((p, n_subjects, 2), floor)
    start = 0
    for h in hemis:
        for centre in rng.choice(len(h), 3, replace=False):
            near = start + np.argsort(h[centre])[:20]
            for s in range(n_subjects):
                A[rng.choice(near), s, rng.integers(2)] += rng.uniform(0.5, 1.5)
        start += len(h)
    return A


def mwe_step(args):
    """The transport step of MWE: dense float32 vs sparse (compiled, array)."""
    hemis = ground_metric("geodesic")
    hemis32 = [h.astype(np.float32) for h in hemis]  # as MWE's ground metrics
    M = full_metric(hemis)
    gamma = float(np.median(np.concatenate([h.ravel() for h in hemis])))
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    print(
        f"{'eps':>5} {'S':>3}  {'engine':<16} {'kept':>6} {'cold (s)':>9} "
        f"{'iters':>6} {'warm (s)':>9} {'iters':>6} {'vs dense':>9} "
        f"{'rel. error':>10}",
        flush=True,
    )
    for S in args.n_subjects:
        A = mwe_inputs(hemis, S, rng)
        A_warm = A * np.exp(0.01 * rng.standard_normal(A.shape))
        for eps in (0.45, 1.0, 2.0, 4.2):
            kw = dict(epsilon=eps, gamma=gamma, tol=TOL, max_iter=20_000)
            kernels = {
                "dense f32": make_kernel(hemis, eps, kind="dense", dtype=np.float32),
                "sparse compiled": make_kernel(hemis, eps, kind="sparse"),
                "sparse f32": make_kernel(hemis32, eps, kind="sparse"),
                "sparse array": make_kernel(hemis, eps, kind="sparse", compiled=False),
            }
            starts = {
                name: unbalanced_barycenter(A, k, **kw) for name, k in kernels.items()
            }

            times = {name: ([], []) for name in kernels}
            outs = {}
            t_pot = []
            for _ in range(args.repeats):
                for name, k in kernels.items():
                    t0 = time.perf_counter()
                    cold = unbalanced_barycenter(A, k, **kw)
                    t1 = time.perf_counter()
                    warm = unbalanced_barycenter(A_warm, k, init=starts[name], **kw)
                    times[name][0].append(t1 - t0)
                    times[name][1].append(time.perf_counter() - t1)
                    outs[name] = (cold, warm)
                if args.pot:
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ot.unbalanced.barycenter_unbalanced(
                            A.reshape(len(M), -1)[:, :S], M, eps, gamma,
                            stopThr=TOL, numItermax=20_000,
                            method="sinkhorn_stabilized",
                        )  # fmt: skip
                    t_pot.append(time.perf_counter() - t0)
            ref = outs["dense f32"][0].barycenter.astype(np.float64)
            base = np.median(times["dense f32"][0]) + np.median(times["dense f32"][1])
            for name, k in kernels.items():
                cold, warm = outs[name]
                t_cold, t_warm = np.median(times[name][0]), np.median(times[name][1])
                kept = k.kept_fraction() if hasattr(k, "kept_fraction") else 1.0
                err = np.abs(cold.barycenter - ref).max() / np.abs(ref).max()
                print(
                    f"{eps:>5} {S:>3}  {name:<16} {kept:>6.3f} {t_cold:>9.3f} "
                    f"{cold.state.n_iter:>6} {t_warm:>9.3f} {warm.state.n_iter:>6} "
                    f"{base / (t_cold + t_warm):>8.1f}x {err:>10.1e}",
                    flush=True,
                )
            if args.pot:
                print(f"{eps:>5} {S:>3}  {'POT stabilized':<16} {'':>6} "
                      f"{np.median(t_pot):>9.3f} (first {S} columns only)")  # fmt: skip
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(
        f"\np = {len(M)} (both hemispheres), gamma = {gamma:.1f} mm, tol = {TOL:g}; "
        f"medians of {args.repeats} interleaved repeats; 'vs dense': cold + warm "
        f"time of dense f32 over this engine's; rel. error: cold barycenter vs "
        f"dense f32; OPENBLAS_NUM_THREADS={threads}, NUMBA_NUM_THREADS="
        f"{os.environ.get('NUMBA_NUM_THREADS', 'default')}; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )


def small_problems(args):
    """Dense against sparse kernels on small 1-D problems (``--small``)."""
    rng = np.random.default_rng(0)
    print(f"load {os.getloadavg()[0]:.1f}; cold solves, medians of {args.repeats}")
    print(f"{'metric':>8}{'p':>6}{'eps':>6}{'kept':>7}{'dense ms':>10}"
          f"{'sparse ms':>11}{'ratio':>7}{'iter':>6}")  # fmt: skip
    for dtype in (np.float64, np.float32):
        for p in (100, 200, 300, 500, 1000, 2000):
            grid = np.arange(p, dtype=float)
            M = np.abs(grid[:, None] - grid[None]).astype(dtype)
            gamma = float(np.median(M))
            A = rng.uniform(0, 1, (p, 8, 2)) ** 4 + 1e-3
            for eps in (1.0, 5.0, 20.0):
                kernels = {k: make_kernel(M, eps, kind=k) for k in ("dense", "sparse")}
                times = {k: [] for k in kernels}
                for kernel in kernels.values():  # compilation, caches
                    unbalanced_barycenter(A, kernel, gamma=gamma)
                for _ in range(args.repeats):  # interleaved
                    for kind, kernel in kernels.items():
                        t0 = time.perf_counter()
                        res = unbalanced_barycenter(A, kernel, gamma=gamma)
                        times[kind].append(time.perf_counter() - t0)
                dense, sparse = (1e3 * np.median(times[k]) for k in kernels)
                print(
                    f"{np.dtype(dtype).name:>8}{p:>6}{eps:>6.0f}"
                    f"{kernels['sparse'].kept_fraction():>7.2f}{dense:>10.1f}"
                    f"{sparse:>11.1f}{dense / sparse:>7.2f}{res.state.n_iter:>6}",
                    flush=True,
                )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="p=2562, S=8 only")
    parser.add_argument(
        "--metric", choices=("geodesic", "euclidean"), default="geodesic"
    )
    parser.add_argument("--mwe-step", action="store_true", help="see the docstring")
    parser.add_argument("--n-subjects", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--pot", action="store_true", help="also time POT")
    parser.add_argument("--small", action="store_true", help="see the docstring")
    args = parser.parse_args()
    if args.small:
        return small_problems(args)
    if args.mwe_step:
        return mwe_step(args)
    load_before = os.getloadavg()[0]
    hemis_all = ground_metric(args.metric)
    rng = np.random.default_rng(0)
    rows = []
    configs = [(1, 8), (1, 32), (2, 8), (2, 32)]
    if args.quick:
        configs = configs[:1]
    for n_hemi, S in configs:
        hemis = hemis_all[:n_hemi]
        M = full_metric(hemis)
        p = M.shape[0]
        med = np.median(np.concatenate([h.ravel() for h in hemis]))
        eps, gamma = EPS_REL * med, GAMMA_REL * med
        A = make_inputs(hemis, S, rng)
        # warm start as in a late MWE outer iteration: the previous sources
        # differ by ~1 % (multiplicative noise)
        A_prev = A * (1 + 0.01 * rng.standard_normal(A.shape)).clip(0)
        A32 = A.astype(np.float32)
        kw = dict(epsilon=eps, gamma=gamma, tol=TOL)
        t_k64, k_dense = timed(
            lambda M=M, eps=eps, p=p: BlockDiagonalKernel(
                [slice(0, p)], [M], eps, np.float64, np
            )
        )
        t_kb, k_b64 = timed(lambda M=M, eps=eps: make_kernel(M, eps))
        t_k32, k_b32 = timed(lambda M=M, eps=eps: make_kernel(M, eps, dtype=np.float32))
        q_ref = unbalanced_barycenter(
            A, k_b64, epsilon=eps, gamma=gamma, tol=1e-12
        ).barycenter
        init_dense = unbalanced_barycenter(A_prev, k_dense, **kw)
        init_b64 = unbalanced_barycenter(A_prev, k_b64, **kw)
        init_b32 = unbalanced_barycenter(A_prev.astype(np.float32), k_b32, **kw)

        def pot(tol, A=A, M=M, eps=eps, gamma=gamma):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ot.unbalanced.barycenter_unbalanced(
                    A, M, eps, gamma, stopThr=tol, numItermax=10_000, log=True
                )

        def ours(A, k, init=None, kw=kw):
            return lambda: unbalanced_barycenter(A, k, init=init, **kw)

        cases = {"POT tol=1e-6": lambda pot=pot: pot(1e-6)}
        for tol in POT_LADDER:
            cases[f"POT tol={tol:.0e}"] = lambda pot=pot, tol=tol: pot(tol)
        cases.update(
            {
                "f64 dense cold": ours(A, k_dense),
                "f64 blocks cold": ours(A, k_b64),
                "defaults cold": ours(A32, k_b32),
                "f64 dense warm": ours(A, k_dense, init_dense),
                "f64 blocks warm": ours(A, k_b64, init_b64),
                "defaults warm": ours(A32, k_b32, init_b32),
            }
        )
        times = {name: [] for name in cases}
        outs = {}
        for _ in range(args.repeats):
            for name, fun in cases.items():
                t, out = timed(fun)
                times[name].append(t)
                outs[name] = out
        results = {}
        for name, out in outs.items():
            if name.startswith("POT"):
                q, n_iter = out[0], out[1]["niter"]
            else:
                q, n_iter = np.asarray(out.barycenter, float), out.state.n_iter
            err = np.abs(q - q_ref).max() / np.abs(q_ref).max()
            results[name] = (float(np.median(times[name])), n_iter, err)
        t_pot = results["POT tol=1e-6"][0]
        ladder = [results[f"POT tol={tol:.0e}"][::2] for tol in POT_LADDER]
        for name, (t, n_iter, err) in results.items():
            t_eq, extrapolated = pot_time_at(err, ladder)
            mark = "*" if extrapolated else " "
            rows.append((p, S, name, t, t_pot / t, t_eq / t, mark, n_iter, err))
        print(
            f"# p={p} S={S}: eps={eps:.2f} mm, gamma={gamma:.1f} mm; kernel build "
            f"(excluded): dense f64 {t_k64:.2f} s, blocks f64 {t_kb:.2f} s, "
            f"blocks f32 {t_k32:.2f} s",
            flush=True,
        )
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(
        f"\nmetric: {args.metric}; medians of {args.repeats} interleaved repeats; "
        f"OPENBLAS_NUM_THREADS={threads}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print(
        f"{'p':>5} {'S':>3}  {'method':<16} {'time (s)':>9} {'vs POT 1e-6':>11} "
        f"{'equal error':>12} {'iters':>6} {'rel. error':>10}"
    )
    for p, S, name, t, sp, sp_eq, mark, n_iter, err in rows:
        print(
            f"{p:>5} {S:>3}  {name:<16} {t:>9.3f} {sp:>10.1f}x {sp_eq:>10.1f}x{mark} "
            f"{n_iter:>6} {err:>10.1e}"
        )
    print("* extrapolated outside the POT ladder's errors")


if __name__ == "__main__":
    main()
