"""Time the ground metric of a template source space, dense and sparse.

Run by hand (never in CI)::

    python benchmarks/bench_ground_metric.py --spacing ico4 ico5 \
        --max-distance none 40 --n-jobs 1 --repeat 3

Each case (spacing, method, radius; ``none`` is the dense metric) runs
``--repeat`` times, each time in a fresh Python process with a new, empty
data folder (``MNE_WASSERSTEIN_DATA``): "scratch" is the build with nothing
cached, "cache" the second call of the same process, which reads the files
the first wrote. "peak MB" is the largest resident set size of that process
(what ``/usr/bin/time -v`` reports as "Maximum resident set size"), "base MB"
the same just before the build (Python, MNE, the template and its source
space). "nnz/row" is the median (and largest) number of stored distances per
source, "MB" the memory of the blocks. The table gives the median (min-max)
of the repeats.

For each spacing where both the dense and a sparse Dijkstra metric were
built, the script then checks that the sparse blocks store exactly the dense
entries up to the radius, and compares the sparse metric's median (estimated
from the full rows of a fixed random subsample of sources) with the exact
median of the dense metric, for the package's seed and for ``--seeds`` other
seeds. Dense metrics are also checked for the triangle inequality, and the
two methods compared.

Measured on 2026-12-04 on the shared 2-core machine (load average 7-9, so
wall times are about 2.5 times the CPU times), ``OPENBLAS_NUM_THREADS=1``,
``--n-jobs 1``, Dijkstra on ``fsaverage5`` white, float32; median (min-max)
of 3 runs, ico5 dense 1 run::

    spacing  sources  radius  scratch s            cache s  peak MB  nnz/row  max   MB
    ico4     5124     dense   26.45 (25.07-32.98)  0.039    252      2562     2562  52.5
    ico4     5124     40 mm    4.21 (3.70-4.33)    0.035    128       169      272   7.1
    ico5     20484    dense   129.06               0.424    2153     10242   10242 839.2
    ico5     20484    40 mm   15.41 (11.35-16.76)  0.784    467       673     1095 112.6

(base MB 88 in every case; the sparse scratch times include the 400 full
rows of the median estimate.) At 40 mm the sparse blocks keep 6.7 % (ico4)
and 6.7 % (ico5) of the pairs, and store exactly the dense entries up to the
radius (0 missing, 0 extra, 0 different values, ico4 and ico5). The sampled
median against the exact one: ico4 +0.300 % (seed 0; rms 0.228 %, largest
0.378 % over seeds 0-9), ico5 +0.197 % (seed 0; rms 0.286 %, largest
0.411 % over seeds 0-2). ``/usr/bin/time -v`` on the ico5 40 mm build alone
(``compute_ground_metric`` from an empty cache): 7.7 s user time, 19.3 s
wall at load 7.3, maximum resident set size 479 MB.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB


def _load(subjects_dir, spacing, method, radius, n_jobs):
    from mne_wasserstein.datasets._cohort import _template_src
    from mne_wasserstein.ground_metric import compute_ground_metric

    src = _template_src(subjects_dir, spacing)
    kwargs = dict(subjects_dir=subjects_dir, method=method, n_jobs=n_jobs)
    return src, lambda: compute_ground_metric(
        src, max_distance=radius, verbose=False, **kwargs
    )


def _child(args):
    """One case in this (fresh) process: prints its figures as JSON."""
    from pathlib import Path

    spacing, method, radius, n_jobs, subjects_dir = args
    _, build = _load(Path(subjects_dir), spacing, method, radius, n_jobs)
    base = _rss_mb()
    t0 = time.perf_counter()
    gm = build()
    scratch = time.perf_counter() - t0
    peak = _rss_mb()
    t0 = time.perf_counter()
    build()
    cache = time.perf_counter() - t0
    if gm.is_sparse:
        nnz = np.concatenate([np.diff(b.indptr) for b in gm.blocks])
        nbytes = sum(
            b.data.nbytes + b.indices.nbytes + b.indptr.nbytes for b in gm.blocks
        )
    else:
        nnz = np.concatenate([np.full(len(b), len(b)) for b in gm.blocks])
        nbytes = sum(b.nbytes for b in gm.blocks)
    print(
        json.dumps(
            dict(
                scratch=scratch,
                cache=cache,
                peak=peak,
                base=base,
                nnz_median=float(np.median(nnz)),
                nnz_max=int(nnz.max()),
                mb=nbytes / 1e6,
                n_sources=gm.n_sources,
            )
        )
    )


def _run_case(case, n_jobs, subjects_dir, folder):
    env = dict(os.environ, MNE_WASSERSTEIN_DATA=folder, OPENBLAS_NUM_THREADS="1")
    spacing, method, radius = case
    payload = json.dumps([spacing, method, radius, n_jobs, str(subjects_dir)])
    out = subprocess.run(
        [sys.executable, __file__, "--child", payload],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"{case} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spread(values, fmt):
    values = np.asarray(values)
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.median(values))} ({fmt.format(values.min())}-" + (
        f"{fmt.format(values.max())})"
    )


def _compare(dense, sparse_gm, meshes, n_seeds):
    """Stored entries against the dense ones; the sampled median's error."""
    from mne_wasserstein._geodesic import _sampled_median
    from mne_wasserstein.ground_metric import _MEDIAN_SAMPLE, _MEDIAN_SEED

    radius = sparse_gm.max_distance
    missing = extra = different = 0
    for block, ref in zip(sparse_gm.blocks, dense.blocks, strict=True):
        rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        within = ref <= radius
        stored = np.zeros(ref.shape, dtype=bool)
        stored[rows, block.indices] = True
        missing += int(np.count_nonzero(within & ~stored))
        extra += int(np.count_nonzero(stored & ~within))
        different += int(np.count_nonzero(ref[rows, block.indices] != block.data))
    print(
        f"  <= {radius:g} mm: {missing} dense entries missing, {extra} stored "
        f"beyond the radius, {different} stored values differ from the dense ones"
    )
    exact = dense.median()
    error = sparse_gm.median() / exact - 1
    print(
        f"  median: exact {exact:.3f} mm, estimated {sparse_gm.median():.3f} mm "
        f"from {_MEDIAN_SAMPLE} rows (seed {_MEDIAN_SEED}): {100 * error:+.3f} %"
    )
    if n_seeds:
        errors = np.array(
            [
                _sampled_median(meshes, _MEDIAN_SAMPLE, seed, dtype=dense.dtype) / exact
                - 1
                for seed in range(n_seeds)
            ]
        )
        rms = 100 * np.sqrt(np.mean(errors**2))
        print(
            f"  over seeds 0-{n_seeds - 1}: rms {rms:.3f} %, "
            f"largest {100 * np.abs(errors).max():.3f} %"
        )


def _triangle(gm):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", nargs="+", default=["ico4"])
    parser.add_argument("--methods", nargs="+", default=["dijkstra", "heat"])
    parser.add_argument(
        "--max-distance",
        nargs="+",
        default=["none"],
        help="radii in mm; 'none' for the dense metric (heat: dense only)",
    )
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    from mne import read_surface

    from mne_wasserstein.datasets import TEMPLATE, make_template
    from mne_wasserstein.datasets._cohort import _template_src

    subjects_dir = make_template(verbose=False)
    radii = [None if r.lower() == "none" else float(r) for r in args.max_distance]
    cases = [
        (spacing, method, radius)
        for spacing in args.spacing
        for method in args.methods
        for radius in radii
        if radius is None or method == "dijkstra"
    ]
    print(f"n_jobs={args.n_jobs}, {args.repeat} repeats")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rows, folders = [], {}
    try:
        for case in cases:
            results = []
            for _ in range(args.repeat):
                folder = tempfile.mkdtemp(prefix="mw-bench-gm-")
                results.append(_run_case(case, args.n_jobs, subjects_dir, folder))
                shutil.rmtree(folders.get(case, ""), ignore_errors=True)
                folders[case] = folder  # the last build is compared below
            rows.append((case, results))
        print(f"load average after: {os.getloadavg()[0]:.2f}\n")
        header = (
            f"{'spacing':<8}{'sources':>8}{'method':>10}{'radius':>8}"
            f"{'scratch s':>22}{'cache s':>20}{'peak MB':>18}{'base MB':>9}"
            f"{'nnz/row':>9}{'max':>6}{'MB':>8}"
        )
        print(header)
        for (spacing, method, radius), res in rows:
            get = lambda key, r=res: [x[key] for x in r]  # noqa: E731
            print(
                f"{spacing:<8}{res[0]['n_sources']:>8}{method:>10}"
                f"{'dense' if radius is None else f'{radius:g} mm':>8}"
                f"{_spread(get('scratch'), '{:.2f}'):>22}"
                f"{_spread(get('cache'), '{:.3f}'):>20}"
                f"{_spread(get('peak'), '{:.0f}'):>18}"
                f"{np.median(get('base')):>9.0f}"
                f"{np.median(get('nnz_median')):>9.0f}{max(get('nnz_max')):>6}"
                f"{np.median(get('mb')):>8.1f}"
            )
        for spacing in args.spacing:
            print(f"\n{spacing}")
            src = _template_src(subjects_dir, spacing)
            metrics = {}
            for case, folder in folders.items():
                if case[0] != spacing:
                    continue
                os.environ["MNE_WASSERSTEIN_DATA"] = folder
                metrics[case[1:]] = _load(subjects_dir, *case, args.n_jobs)[1]()
            os.environ.pop("MNE_WASSERSTEIN_DATA")
            meshes = []
            for s in src:
                hemi = "lh" if s["id"] == 101 else "rh"
                fname = subjects_dir / TEMPLATE / "surf" / f"{hemi}.white"
                meshes.append((*read_surface(fname, verbose=False)[:2], s["vertno"]))
            dense = metrics.get(("dijkstra", None))
            for (_, radius), gm in metrics.items():
                print(f"  {gm!r}")
                if radius is None:
                    _triangle(gm)
                elif dense is not None:
                    _compare(dense, gm, meshes, args.seeds)
            if dense is not None and ("heat", None) in metrics:
                ratios = []
                for d, h in zip(
                    dense.blocks, metrics[("heat", None)].blocks, strict=True
                ):
                    mask = d > 10
                    ratios.append(d[mask] / h[mask])
                q = np.percentile(np.concatenate(ratios), [5, 50, 95])
                print(
                    f"  dijkstra / heat for pairs > 10 mm apart: 5th {q[0]:.3f}, "
                    f"median {q[1]:.3f}, 95th {q[2]:.3f}"
                )
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(json.loads(sys.argv[2]))
    else:
        main()
