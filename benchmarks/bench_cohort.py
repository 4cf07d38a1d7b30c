"""Time building a synthetic cohort from an empty cache and from the cache.

Run by hand (never in CI)::

    python benchmarks/bench_cohort.py --n-subjects 4 --repeat 3

Prints a table with the median of ``--repeat`` runs of each case.
"""

import argparse
import shutil
import tempfile
import time

import numpy as np

from mne_wasserstein.datasets import make_cohort


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=4)
    parser.add_argument("--spacing", default="ico4")
    parser.add_argument("--modality", default="meg")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    kwargs = dict(
        spacing=args.spacing,
        modality=args.modality,
        random_state=0,
        n_jobs=args.n_jobs,
        verbose=False,
    )
    empty, cached = [], []
    for _ in range(args.repeat):
        folder = tempfile.mkdtemp(prefix="mw-bench-")
        try:
            t0 = time.perf_counter()
            make_cohort(args.n_subjects, subjects_dir=folder, **kwargs)
            empty.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            make_cohort(args.n_subjects, subjects_dir=folder, **kwargs)
            cached.append(time.perf_counter() - t0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(
        f"make_cohort({args.n_subjects}, spacing={args.spacing!r}, "
        f"modality={args.modality!r}, n_jobs={args.n_jobs}), {args.repeat} runs"
    )
    print(f"{'case':<14}{'median (s)':>12}{'min (s)':>10}{'max (s)':>10}")
    for name, times in (("empty cache", empty), ("from cache", cached)):
        print(
            f"{name:<14}{np.median(times):>12.2f}{min(times):>10.2f}{max(times):>10.2f}"
        )


if __name__ == "__main__":
    main()
