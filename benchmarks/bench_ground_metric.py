"""Time the ground metric of a template source space, from scratch and cached.

Run by hand (never in CI)::

    python benchmarks/bench_ground_metric.py --spacing ico4 --n-jobs 2 --repeat 3

Each "scratch" run uses a new, empty data folder (``MNE_WASSERSTEIN_DATA``),
so nothing is cached; each "cache" run reads the files the scratch run wrote.
Prints a table with the median (and min/max) of ``--repeat`` runs per case,
then how the two methods compare on the cortex.
"""

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from mne_wasserstein.datasets import make_template
from mne_wasserstein.datasets._cohort import _template_src
from mne_wasserstein.ground_metric import compute_ground_metric


def _time(func):
    t0 = time.perf_counter()
    out = func()
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", default="ico4")
    parser.add_argument("--methods", nargs="+", default=["dijkstra", "heat"])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    subjects_dir = make_template(verbose=False)
    src = _template_src(subjects_dir, args.spacing)
    n_src = " + ".join(str(s["nuse"]) for s in src)
    n_vert = " + ".join(str(s["np"]) for s in src)
    print(f"{args.spacing}: {n_src} sources on {n_vert} vertices, n_jobs={args.n_jobs}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rows, metrics = [], {}
    env = os.environ.get("MNE_WASSERSTEIN_DATA")
    for method in args.methods:
        scratch, cached = [], []
        for _ in range(args.repeat):
            folder = tempfile.mkdtemp(prefix="mw-bench-gm-")
            os.environ["MNE_WASSERSTEIN_DATA"] = folder
            try:
                kwargs = dict(
                    subjects_dir=subjects_dir,
                    method=method,
                    n_jobs=args.n_jobs,
                    verbose=False,
                )
                seconds, gm = _time(lambda kw=kwargs: compute_ground_metric(src, **kw))
                scratch.append(seconds)
                seconds, _ = _time(lambda kw=kwargs: compute_ground_metric(src, **kw))
                cached.append(seconds)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        metrics[method] = gm
        for case, times in (("scratch", scratch), ("cache", cached)):
            rows.append((method, case, np.median(times), min(times), max(times)))
    if env is None:
        os.environ.pop("MNE_WASSERSTEIN_DATA", None)
    else:
        os.environ["MNE_WASSERSTEIN_DATA"] = env
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\n{'method':<10}{'case':<9}{'median s':>10}{'min s':>9}{'max s':>9}")
    for method, case, med, lo, hi in rows:
        print(f"{method:<10}{case:<9}{med:>10.3f}{lo:>9.3f}{hi:>9.3f}")
    for gm in metrics.values():
        print(f"\n{gm!r}")
        rng = np.random.default_rng(0)
        worst, frac = [], []
        for block in gm.blocks:
            d = block.astype(np.float64)
            i, j, k = rng.integers(0, len(d), (3, 200_000))
            violation = d[i, k] - d[i, j] - d[j, k]
            worst.append(violation.max())
            frac.append(np.mean(violation > 1e-3))
        print(
            f"  triangle inequality on 200000 random triplets per hemisphere: "
            f"worst violation {max(worst):.3g} mm, "
            f"{100 * np.mean(frac):.2f} % of triplets violate it by > 1 um"
        )
    if {"dijkstra", "heat"} <= metrics.keys():
        ratios = []
        for d, h in zip(
            metrics["dijkstra"].blocks, metrics["heat"].blocks, strict=True
        ):
            mask = d > 10
            ratios.append(d[mask] / h[mask])
        q = np.percentile(np.concatenate(ratios), [5, 50, 95])
        print(
            f"\ndijkstra / heat for pairs > 10 mm apart: 5th {q[0]:.3f}, "
            f"median {q[1]:.3f}, 95th {q[2]:.3f}"
        )


if __name__ == "__main__":
    main()
