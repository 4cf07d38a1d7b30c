"""Time the MNE-facing inverse layer against MNE's own sparse solver.

On the 4-subject MEG cohort of the test suite (ico4, sources simulated in
the left hemisphere, SNR 4, half of the subjects sharing their locations),
one time sample (the simulated peak):

- ``apply_group_inverse`` end to end for ``lasso`` (one subject at a time,
  the counterpart of ``mixed_norm`` with ``n_mxne_iter=1``), ``grouplasso``
  and ``mwe`` (MWE_0.5, package defaults) on the left hemisphere, with the
  share of the time spent in the preparation (alignment, channels,
  whitening, depth weighting) and in the solver;
- :func:`mne.inverse_sparse.mixed_norm` (irMxNE, 5 reweightings) on each
  subject, the left hemisphere only (the right one masked by ``weights``).

Each time is the median of ``--repeats`` runs; the localisation error (mm)
of each estimate is printed next to it. On a loaded machine set
``OPENBLAS_NUM_THREADS=1``: MNE's whitener computes eigendecompositions of
306 x 306 matrices, which two OpenBLAS threads on busy cores can make 100
times slower.

Run: python benchmarks/bench_inverse.py [--repeats 3]
"""

import argparse
import time

import numpy as np

from mne_wasserstein import apply_group_inverse, compute_ground_metric
from mne_wasserstein._demo import _irmxne_lh
from mne_wasserstein.datasets import make_cohort
from mne_wasserstein.inverse import _gain
from mne_wasserstein.metrics import localization_error
from mne_wasserstein.simulation import simulate_group_evokeds


def _timed(func, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cohort = make_cohort(4, random_state=0, n_jobs=2, verbose=False)
    sim = simulate_group_evokeds(cohort, random_state=1, verbose=False)
    src_lh = cohort.src_ref[:1]
    n_lh = src_lh[0]["nuse"]
    metric = compute_ground_metric(src_lh, subjects_dir=cohort.subjects_dir)
    true = sim.coef[:, :n_lh]

    # time spent in the preparation, measured by wrapping it
    prep = []
    original = _gain._prepare_subject

    def timed_prepare(*a, **k):
        t0 = time.perf_counter()
        out = original(*a, **k)
        prep[-1] += time.perf_counter() - t0
        return out

    rows = []
    for method, alpha in (("lasso", 0.3), ("grouplasso", 0.3), ("mwe", 0.05)):

        def run(method=method, alpha=alpha):
            prep.append(0.0)
            return apply_group_inverse(
                sim.evokeds,
                sim.forwards,
                sim.noise_covs,
                method=method,
                alpha=alpha,
                src_ref=src_lh,
                subjects_dir=cohort.subjects_dir,
                ground_metric=metric,
                time=sim.peak_time,
                verbose=False,
            )

        _gain._prepare_subject = timed_prepare
        try:
            total, res = _timed(run, args.repeats)
        finally:
            _gain._prepare_subject = original
        error = localization_error(true, res.coef, metric)
        rows.append(
            (f"apply_group_inverse {method}", total, float(np.median(prep)), error)
        )
    total, est = _timed(
        lambda: np.array(
            [_irmxne_lh(sim, s, cohort, 20.0) for s in range(cohort.n_subjects)]
        ),
        args.repeats,
    )
    rows.append(
        ("mixed_norm irMxNE x4", total, np.nan, localization_error(true, est, metric))
    )

    print(f"4 subjects, {n_lh} sources (lh), 306 channels, 1 time sample")
    print(f"{'':32s} {'total (s)':>10s} {'prep. (s)':>10s} {'loc. error (mm)':>16s}")
    for name, total, prep_time, error in rows:
        print(f"{name:32s} {total:10.2f} {prep_time:10.2f} {np.nanmean(error):16.1f}")


if __name__ == "__main__":
    main()
