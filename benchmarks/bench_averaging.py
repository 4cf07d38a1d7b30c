"""Time the group averages of mne_wasserstein.averaging.

20 source estimates on the template source space (fsaverage5, ico4, both
hemispheres: 2 x 2562 sources) with its geodesic ground metric, averaged by
``kantorovich_mean`` and ``wasserstein_barycenter`` at their defaults, with 1
and 50 time samples (every time sample is one column of a batched
computation). Each subject has one focal patch per hemisphere (Gaussian
profile of 4 mm, cut at 12 mm), centred 5 to 15 mm away from a common centre
(the jitter across subjects), with a time course of its own (non-negative,
as dSPM values or magnitudes): the inputs are sparse, as thresholded
estimates are, and the transport is restricted to their support.

Each time is the median of ``--repeats`` runs (with their minimum); the
Euclidean mean is timed for reference, and the table gives the fraction of
the mass within 10 mm of the peak (left hemisphere, first time sample) of
each average.

Run: python benchmarks/bench_averaging.py [--repeats 3] [--times 1 50]
"""

import argparse
import os
import time
import warnings

import mne
import numpy as np

from mne_wasserstein import (
    compute_ground_metric,
    kantorovich_mean,
    wasserstein_barycenter,
)
from mne_wasserstein.datasets import make_cohort, make_template


def make_stcs(metric, n_subjects, n_times, rng):
    """Per subject, one jittered focal patch per hemisphere with a time course."""
    data = [[] for _ in range(n_subjects)]
    times = np.linspace(0.0, 0.2, n_times) if n_times > 1 else np.zeros(1)
    for D in metric.blocks:
        centre = rng.integers(len(D))
        ring = np.flatnonzero((D[centre] > 5) & (D[centre] < 15))
        for s, where in enumerate(rng.choice(ring, n_subjects)):
            profile = np.exp(-0.5 * (D[where] / 4.0) ** 2) * (D[where] < 12)
            phase = rng.uniform(0, 2 * np.pi)
            course = 1.2 + np.sin(2 * np.pi * 10 * times + phase)
            data[s].append(np.outer(profile, course) * rng.uniform(0.8, 1.2))
    return [
        mne.SourceEstimate(
            np.concatenate(d), metric.vertices, 0.0, 0.001, subject=metric.subject
        )
        for d in data
    ]


def mass_near_peak(stc, metric, radius=10.0):
    x = stc.data[: len(metric.vertices[0]), 0]
    return x[metric.blocks[0][np.argmax(x)] <= radius].sum() / x.sum()


def timed(func, repeats):
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a non-converged run is a failure
            out = func()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times)), float(np.min(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--times", type=int, nargs="+", default=[1, 50])
    args = parser.parse_args()
    mne.set_log_level("WARNING")
    subjects_dir = make_template()
    cohort = make_cohort(4, subjects_dir=subjects_dir, random_state=0, n_jobs=2)
    metric = compute_ground_metric(cohort.src_ref, subjects_dir=subjects_dir)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(
        f"{args.subjects} estimates, {sum(map(len, metric.vertices))} sources "
        f"(ico4, both hemispheres), median of {args.repeats} runs; "
        f"OPENBLAS_NUM_THREADS={threads}, load {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'average':>12s} {'times':>5s} {'median (s)':>10s} {'min (s)':>8s} "
        f"{'per sample (s)':>14s} {'mass < 10 mm':>12s}"
    )
    print(header)
    print("-" * len(header))
    for n_times in args.times:
        stcs = make_stcs(metric, args.subjects, n_times, np.random.default_rng(0))
        runs = {
            "Euclidean": lambda stcs=stcs: sum(stcs[1:], stcs[0]) / len(stcs),
            "Wasserstein": lambda stcs=stcs: wasserstein_barycenter(
                stcs, ground_metric=metric
            ),
            "Kantorovich": lambda stcs=stcs: kantorovich_mean(
                stcs, ground_metric=metric
            ),
        }
        for name, func in runs.items():
            stc, med, best = timed(func, args.repeats)
            print(
                f"{name:>12s} {n_times:5d} {med:10.2f} {best:8.2f} "
                f"{med / n_times:14.3f} {mass_near_peak(stc, metric):12.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
