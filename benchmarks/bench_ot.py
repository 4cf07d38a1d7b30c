"""Time the unbalanced barycenter of mne_wasserstein.ot against POT.

For p in {2562 (one hemisphere), 5124 (two)} and S in {8, 32} subjects, on
the template source space (fsaverage5, ico4), ground metric = Euclidean
distances between vertices in mm (np.inf between hemispheres), this prints
the median time to tol=1e-6 of POT's ``barycenter_unbalanced`` and of this
engine (cold and warm-started, float64 and float32), the speed-ups and the
error of every barycenter against a tightly converged reference
(``max |q - q_ref| / max q_ref``). Repeats are interleaved and medians are
reported because the machine is shared.

Run: python benchmarks/bench_ot.py [--repeats 3] [--quick]
"""

import argparse
import time
import warnings

import mne
import numpy as np
import ot

from mne_wasserstein.datasets import make_template
from mne_wasserstein.ot import (
    BlockDiagonalKernel,
    make_kernel,
    unbalanced_barycenter,
)

EPS_REL, GAMMA_REL, TOL = 0.05, 1.0, 1e-6


def ground_metric():
    subjects_dir = make_template()
    src = mne.setup_source_space(
        "fsaverage5", "ico4", subjects_dir=subjects_dir, add_dist=False, verbose=False
    )
    pos = [s["rr"][s["vertno"]] * 1e3 for s in src]  # mm
    hemis = [np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)) for x in pos]
    return pos, hemis


def make_inputs(pos, n_subjects, rng):
    """Sparse non-negative sources: 3 smooth bumps per hemisphere and subject."""
    cols = []
    centres = [rng.choice(len(x), 3, replace=False) for x in pos]
    for _ in range(n_subjects):
        col = []
        for x, cs in zip(pos, centres, strict=True):
            a = np.zeros(len(x))
            for c in cs:
                jitter = rng.integers(len(x)) if rng.random() < 0.2 else c
                d2 = ((x - x[jitter]) ** 2).sum(1)
                a += rng.uniform(0.5, 1.5) * np.exp(-d2 / (2 * 8.0**2)) * (d2 < 30**2)
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="p=2562, S=8 only")
    args = parser.parse_args()
    pos_all, hemis_all = ground_metric()
    rng = np.random.default_rng(0)
    rows = []
    configs = [(1, 8), (1, 32), (2, 8), (2, 32)]
    if args.quick:
        configs = configs[:1]
    for n_hemi, S in configs:
        pos, hemis = pos_all[:n_hemi], hemis_all[:n_hemi]
        M = full_metric(hemis)
        p = M.shape[0]
        med = np.median(np.concatenate([h.ravel() for h in hemis]))
        eps, gamma = EPS_REL * med, GAMMA_REL * med
        A = make_inputs(pos, S, rng)
        # warm start as in a late MWE outer iteration: the previous sources
        # differ by ~1 % (multiplicative noise)
        A_prev = A * (1 + 0.01 * rng.standard_normal(A.shape)).clip(0)
        A32, M32 = A.astype(np.float32), M.astype(np.float32)
        kw = dict(epsilon=eps, gamma=gamma, tol=TOL)
        t_k64, k_dense = timed(
            lambda M=M, eps=eps, p=p: BlockDiagonalKernel(
                [slice(0, p)], [M], eps, np.float64, np
            )
        )
        t_kb, k_b64 = timed(lambda M=M, eps=eps: make_kernel(M, eps))
        k_b32 = make_kernel(M, eps, dtype=np.float32)
        q_ref = unbalanced_barycenter(
            A, k_b64, epsilon=eps, gamma=gamma, tol=1e-12
        ).barycenter
        init_dense = unbalanced_barycenter(A_prev, k_dense, **kw)
        init_b64 = unbalanced_barycenter(A_prev, k_b64, **kw)
        init_b32 = unbalanced_barycenter(A_prev.astype(np.float32), k_b32, **kw)

        def pot(A=A, M=M, eps=eps, gamma=gamma, tol=TOL):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ot.unbalanced.barycenter_unbalanced(
                    A, M, eps, gamma, stopThr=tol, numItermax=10_000, log=True
                )

        def ours(A, k, init=None, kw=kw):
            return lambda: unbalanced_barycenter(A, k, init=init, **kw)

        cases = {
            "POT f64 tol=1e-6": pot,
            "POT f64 tol=1e-8": lambda pot=pot: pot(tol=1e-8),
            "POT f32 tol=1e-6": lambda pot=pot, A=A32, M=M32: pot(A=A, M=M),
            "ours f64 dense cold": ours(A, k_dense),
            "ours f64 blocks cold": ours(A, k_b64),
            "ours f32 blocks cold": ours(A32, k_b32),
            "ours f64 dense warm": ours(A, k_dense, init_dense),
            "ours f64 blocks warm": ours(A, k_b64, init_b64),
            "ours f32 blocks warm": ours(A32, k_b32, init_b32),
        }
        times = {name: [] for name in cases}
        outs = {}
        for _ in range(args.repeats):
            for name, fun in cases.items():
                t, out = timed(fun)
                times[name].append(t)
                outs[name] = out
        t_pot = np.median(times["POT f64 tol=1e-6"])
        t_pot8 = np.median(times["POT f64 tol=1e-8"])
        for name in cases:
            out = outs[name]
            if name.startswith("POT"):
                q, n_iter = out[0], out[1]["niter"]
            else:
                q, n_iter = np.asarray(out.barycenter, float), out.state.n_iter
            err = np.abs(q - q_ref).max() / np.abs(q_ref).max()
            t = np.median(times[name])
            rows.append((p, S, name, t, t_pot / t, t_pot8 / t, n_iter, err))
        print(
            f"# p={p} S={S}: eps={eps:.2f} mm, gamma={gamma:.1f} mm; kernel build "
            f"(excluded): dense f64 {t_k64:.2f} s, blocks f64 {t_kb:.2f} s",
            flush=True,
        )
    print()
    print(
        f"{'p':>5} {'S':>3}  {'method':<22} {'time (s)':>9} {'vs POT 1e-6':>11} "
        f"{'vs POT 1e-8':>11} {'iters':>6} {'rel. error':>10}"
    )
    for p, S, name, t, sp, sp8, n_iter, err in rows:
        print(
            f"{p:>5} {S:>3}  {name:<22} {t:>9.3f} {sp:>10.1f}x {sp8:>10.1f}x "
            f"{n_iter:>6} {err:>10.1e}"
        )


if __name__ == "__main__":
    main()
