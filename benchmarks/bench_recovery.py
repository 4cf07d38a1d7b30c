"""Support recovery of MWE_0.5 against the independent and Group Lasso on a grid.

The data are those of the solver tests (``tests/_synthetic.py``,
``sparse_multitask``): S = 6 subjects, n = 20 noisy measurements (SNR 3),
p = 80 sources on a 1-D grid with the ground metric ``|i - j|``, k = 3
sources of random sign shared by all subjects; with ``--jitter 4`` every
other subject's sources are moved by 2 to 4 positions. Each model is fitted
at every point of its grid (alpha in {0.3, 0.2, 0.1}; for MWE also beta in
{0.1, 1}, epsilon = 0.5 grid step, ``tol=1e-4``) and scored by the PR-AUC of
its coefficients against the true supports (mean over subjects); the table
gives the best point of each model per seed, its score and the time of the
whole grid, then the means over seeds.

The test suite runs the same comparison on seeds 0 and 2
(``tests/test_solvers_mwe.py::test_recovery_on_a_grid``); this script runs
it on any seeds (two seeds: about 30 s on the 2-core machine).

Run: python benchmarks/bench_recovery.py [--seeds 0 2] [--jitter 0 4]
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _synthetic import sparse_multitask  # noqa: E402

from mne_wasserstein.solvers import (  # noqa: E402
    MWE,
    ConvergenceWarning,
    GroupLasso,
    IndependentLasso,
)

ALPHAS, BETAS = (0.3, 0.2, 0.1), (0.1, 1.0)
MODELS = {
    "Lasso_0.5": (lambda a: IndependentLasso(a, q=0.5), [(a,) for a in ALPHAS]),
    "Group Lasso": (GroupLasso, [(a,) for a in ALPHAS]),
    "MWE_0.5": (
        lambda a, b, M: MWE(M, alpha=a, beta=b, epsilon=0.5, tol=1e-4),
        [(a, b) for a in ALPHAS for b in BETAS],
    ),
}


def pr_auc(coef, est):
    """Mean over subjects of the PR-AUC of ``|est|`` against ``coef != 0``."""
    return np.mean(
        [
            average_precision_score(c != 0, np.abs(e))
            for c, e in zip(coef, est, strict=True)
        ]
    )


def grid_scores(name, X, Y, coef, M):
    """PR-AUC at every grid point of one model, and the grid's time (s)."""
    make, grid = MODELS[name]
    scores = {}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for params in grid:
            args = params + (M,) if name.startswith("MWE") else params
            scores[params] = pr_auc(coef, make(*args).fit(X, Y).coef_)
    return scores, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--jitter", type=int, nargs="+", default=[0, 4])
    args = parser.parse_args()
    # one untimed fit of each model compiles the numba kernels
    X, Y, coef, M = sparse_multitask(0)
    for name in MODELS:
        make, grid = MODELS[name]
        make(*(grid[0] + ((M,) if name.startswith("MWE") else ()))).fit(X, Y)

    header = f"{'jitter':>6}  {'seed':>4}  {'model':<12}  {'best point':<12}  "
    header += f"{'PR-AUC':>6}  {'all points':<40}  {'time (s)':>8}"
    print(header)
    print("-" * len(header))
    means = {}
    for jitter in args.jitter:
        for seed in args.seeds:
            X, Y, coef, M = sparse_multitask(seed, jitter=jitter)
            for name in MODELS:
                scores, elapsed = grid_scores(name, X, Y, coef, M)
                best = max(scores, key=scores.get)
                means.setdefault((jitter, name), []).append(scores[best])
                every = " ".join(f"{v:.2f}" for v in scores.values())
                print(
                    f"{jitter:>6}  {seed:>4}  {name:<12}  {str(best):<12}  "
                    f"{scores[best]:>6.3f}  {every:<40}  {elapsed:>8.2f}"
                )
    print()
    print(f"mean of the best PR-AUC over seeds {args.seeds}")
    for jitter in args.jitter:
        row = ", ".join(f"{name} {np.mean(means[jitter, name]):.3f}" for name in MODELS)
        print(f"  jitter {jitter}: {row}")


if __name__ == "__main__":
    main()
