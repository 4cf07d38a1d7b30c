"""The simulation study of Janati et al. (NeuroImage 2020), section 5.1, Fig. 4.

Protocol (paper 001, section 5.1), on a synthetic cohort of
``mne_wasserstein.datasets`` (MEG, ico4 template source space):

- per trial (seed): a random subset of S subjects of the cohort; 5 sources
  in 5 regions of the left hemisphere, half of the subjects sharing their
  locations, amplitudes 20-30 nAm, one polarity per region, SNR 4 on the
  gradiometers (:func:`mne_wasserstein.simulation.simulate_group_evokeds`:
  the root mean square of the whitened signal is 4 times the noise standard
  deviation, as in the authors' code), under two conditions: every subject
  with the leadfield of one subject drawn at random ("same") or each with
  its own ("different");
- data: the 204 planar gradiometers at the peak time, whitened by the noise
  covariance; the fixed-orientation (surface normal) gain restricted to the
  left hemisphere (p = 2562), whitened and depth-weighted with exponent 0.9
  (column ``j`` divided by its norm to the power 0.9, no limit); estimates
  are brought back to A*m before scoring;
- models: Lasso and reweighted Lasso (``IndependentLasso`` q=1, q=0.5),
  ``GroupLasso``, ``DirtyModel``, ``MWE`` q=1 and q=0.5 (epsilon = 1 mm,
  package defaults for gamma and tau), each fitted on a grid of hyperparameters
  (alpha paths with warm starts, an outer loop over beta);
- scores (:mod:`mne_wasserstein.metrics`, averaged over subjects): PR-AUC,
  EMD per source (mm, geodesic ground metric of the template), MSE (nAm^2)
  and localisation error (mm); for each trial the best score of each metric
  over the grid is kept, as in the paper: for the joint models the best
  grid point for the mean over subjects, for the independent ones (Lasso,
  reweighted Lasso) the best grid point of each subject, as in the authors'
  code; the table gives the mean and the 95 % confidence interval of the
  mean (Student t) over trials.

Deviations from the paper: regions are 20 mm geodesic discs on the template,
not Destrieux labels (no atlas offline); the cohort is synthetic (warped
template anatomies, not Cam-CAN); MWE's epsilon is 1 mm (the paper's, 10 / p
times the median distance, is about 0.45 mm, and slower; the package
default, the source spacing, is 4.2 mm) and its sources have the exact zeros
of the mass floor tau.

Outputs (in ``--out``): ``fits/*.csv`` (one file per condition, S, trial and
model: every grid point and subject; a finished file is never recomputed, so
an interrupted run resumes), ``fits.csv`` (all of them), ``table.csv`` and
``table.rst``, ``paired.csv`` and ``paired.rst`` (each model against the
Lasso, trial by trial: the mean and 95 % CI of the differences of the best
PR-AUC and EMD, and in how many trials the model is ahead), ``figure.png``
and ``figure.svg`` (Fig. 4 layout), and
``config.json`` (a resumed run must use the same settings). Columns of
the fits: the scores of one subject (``emd`` and ``loc`` are nan when its
estimate is all zeros), ``n_active`` its number of non-zeros, ``time`` the
seconds per grid point (path time / number of alphas, all subjects),
``warnings`` the ConvergenceWarnings of the whole alpha path.

Timing (2026-12-02, 2-core machine, nothing else running,
OPENBLAS_NUM_THREADS=1): ``--quick`` took 18 min 37 s with ``--n-jobs 2``
(1108 s of fits); per fit (median), MWE_1 26 s (S=2) and 49 s (S=8),
MWE_0.5 77 s and 116 s, Group Lasso 0.4 s and 4.2 s, Lasso 0.2 s and 1.1 s.
The full run has not been run: about 290 hours with --n-jobs 2, estimated
from cold MWE fits at S = 8, 16 and 32. Results and the estimate:
doc/simulation_results.rst.

Tasks (one per condition, S and trial: simulate once, then fit every model's
grid) run through joblib (``--n-jobs``); a grid is fitted sequentially with
warm starts.

Run: python benchmarks/paper_simulation.py [--quick] [--n-jobs 2] [--out DIR]
(the cohort is built and cached on first use: about 40 s per subject on 2
cores). ``--quick``: S in {2, 8}, 3 trials, small grids (6 alphas for the
baselines, 1 alpha x 1 beta for MWE).
"""

import argparse
import csv
import json
import time
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

# data preparation from the MNE objects of a simulation: the gain in template
# order, as the simulation builds it (gradiometers only, left hemisphere)
from mne_wasserstein.inverse._align import _aligned_order
from mne_wasserstein.metrics import emd_per_source, localization_error, mse, pr_auc
from mne_wasserstein.simulation import _fixed_gain
from mne_wasserstein.solvers import (
    MWE,
    DirtyModel,
    GroupLasso,
    IndependentLasso,
    fit_path,
)

DEPTH = 0.9
# the baselines' stopping rule: relative duality gap 1e-6 is far below what
# changes the scores; at small alpha the Lasso needs thousands of sweeps on
# these ill-conditioned gains, so sweeps are capped (fits that stop there
# are counted in the "warnings" column)
SOLVER = dict(tol=1e-6, max_iter=2000)
# MWE: package defaults for gamma and tau, epsilon = 1 mm (the paper's is
# 10 / p times the median distance, about 0.45 mm here; the package default,
# the source spacing of 4.2 mm, blurs the transport over a neighbour: its
# entropic mass bias activates nearly every source as soon as beta nears
# alpha, and with beta well below alpha the subjects barely interact).
# alpha relative to the concomitant alpha_max, beta to alpha_max too
# (doc/model.rst). Chosen on three S = 8 trials drawn with other seeds than
# the benchmark's (1, 2, 3; doc/simulation_results.rst): at epsilon = 1 mm,
# beta = 0.3 was the best of 0.03, 0.1, 0.3 and 1 (1: about 100 active
# sources per subject), at 4.2 mm and 2 mm no beta beat the Lasso; alpha =
# 0.05 beat 0.1 on all three. --quick fits that one point: with alpha in
# {0.1, 0.05} it took 25 min (MWE 81 % of the fit time), over its 20-minute
# budget.
MWE_EPSILON = 1.0
MWE_ALPHAS = dict(quick=[0.05], full=np.geomspace(0.2, 0.01, 8).tolist())
MWE_BETAS = dict(quick=[0.3], full=[0.1, 0.3, 1.0])
CONDITIONS = ("same", "different")
METRICS = (  # name, column, best over the grid, label
    ("auc", "PR-AUC", np.nanmax, "PR-AUC"),
    ("emd", "EMD (mm)", np.nanmin, "EMD per source (mm)"),
    ("mse", "MSE (nAm^2)", np.nanmin, "MSE (nAm$^2$)"),
    ("loc", "loc. (mm)", np.nanmin, "localisation error (mm)"),
)
FIELDS = [
    "condition",
    "n_subjects",
    "trial",
    "seed",
    "model",
    "alpha",
    "beta",
    "subject",
    "auc",
    "emd",
    "mse",
    "loc",
    "n_active",
    "time",
    "warnings",
]


@dataclass
class _Model:
    """A row of the model table: how to build the estimator and its grid."""

    name: str
    make: object  # (ground_metric, beta) -> estimator
    betas: object  # n_subjects -> list of beta (None: no beta)
    alphas: np.ndarray  # relative to each model's alpha_max
    # independent subjects (Lasso, reweighted Lasso): each subject's best
    # grid point is its own, as in the authors' code; joint models: one grid
    # point for all subjects (the best mean over subjects)
    independent: bool = False


def _no_beta(n_subjects):
    return [None]


def _models(grid):
    """The model table; ``grid`` is ``"quick"`` or ``"full"``."""
    quick = grid == "quick"
    # alpha relative to each model's alpha_max: the Lasso's best is near
    # 0.02-0.1 at SNR 4
    alphas = np.geomspace(0.5, 0.01, 6 if quick else 12)
    # MWE's alpha is relative to the concomitant alpha_max (noise level of
    # the data, not of the residual): its best lies lower
    mwe_alphas = np.array(MWE_ALPHAS[grid])
    mwe_betas = MWE_BETAS[grid]

    def dirty_betas(n_subjects):
        # between 1/sqrt(S) (independent Lasso) and 1 (Group Lasso)
        fractions = [0.5] if quick else [0.25, 0.5, 0.75]
        return [n_subjects ** (-f / 2) for f in fractions]

    def mwe(q):
        def make(ground_metric, beta):
            return MWE(
                ground_metric,
                beta=beta,
                q=q,
                epsilon=MWE_EPSILON,
                n_jobs=1,
                verbose=False,
            )

        return make

    return [
        _Model(
            "Lasso",
            lambda gm, b: IndependentLasso(q=1, **SOLVER),
            _no_beta,
            alphas,
            independent=True,
        ),
        _Model(
            "Re-Lasso",
            lambda gm, b: IndependentLasso(q=0.5, **SOLVER),
            _no_beta,
            alphas,
            independent=True,
        ),
        _Model("GroupLasso", lambda gm, b: GroupLasso(**SOLVER), _no_beta, alphas),
        _Model(
            "Dirty", lambda gm, b: DirtyModel(beta=b, **SOLVER), dirty_betas, alphas
        ),
        _Model("MWE_1", mwe(1), lambda s: mwe_betas, mwe_alphas),
        _Model("MWE_0.5", mwe(0.5), lambda s: mwe_betas, mwe_alphas),
    ]


def _grad_whitener(noise_cov, info, ch_names):
    from mne.cov import compute_whitener

    W, _ = compute_whitener(noise_cov, info, picks=ch_names, pca=True, verbose=False)
    return W


def _prepare_subject(sim, s, cohort, grads, n_lh):
    """Whitened, depth-weighted lh gain of subject ``s`` and its data.

    Returns ``X`` (n_grad, n_lh), ``y`` (n_grad,) and ``scale`` (n_lh,):
    the sources in A*m are ``scale * z`` for solver coefficients ``z``.
    """
    fwd = sim.forward[s]
    subject = fwd["src"][0]["subject_his_id"]
    order = _aligned_order(
        cohort.src_ref, fwd["src"], cohort.subject_ref, subject, cohort.subjects_dir
    )
    rows = [fwd["sol"]["row_names"].index(name) for name in grads]
    gain = _fixed_gain(fwd, order)[rows][:, :n_lh]
    W = _grad_whitener(sim.noise_cov[s], sim.evokeds[s].info, grads)
    gain = W @ gain
    depth = np.linalg.norm(gain, axis=0) ** -DEPTH
    evoked = sim.evokeds[s]
    peak = evoked.time_as_index(sim.peak_time)[0]
    y = W @ evoked.data[[evoked.ch_names.index(name) for name in grads], peak]
    return gain * depth, y, depth


def _simulate(cohort, n_subjects, condition, seed, snr):
    from mne import pick_types

    from mne_wasserstein.simulation import simulate_group_evokeds

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(cohort.n_subjects, n_subjects, replace=False))
    sub = replace(
        cohort,
        subjects=[cohort.subjects[i] for i in pick],
        **{k: [getattr(cohort, k)[i] for i in pick] for k in _PER_SUBJECT},
        scale=cohort.scale[pick],
    )
    sim = simulate_group_evokeds(
        sub,
        same_leadfield=condition == "same",
        hemi="lh",
        snr=snr,
        snr_ch_type="grad",  # the SNR of the data the models see
        random_state=seed,
    )
    info = sim.evokeds[0].info
    grads = [info["ch_names"][i] for i in pick_types(info, meg="grad")]
    n_lh = cohort.src_ref[0]["nuse"]
    parts = [_prepare_subject(sim, s, sub, grads, n_lh) for s in range(sub.n_subjects)]
    X = np.stack([p[0] for p in parts])
    Y = np.stack([p[1] for p in parts])
    scale = np.stack([p[2] for p in parts])
    return X, Y, scale, sim.coef[:, :n_lh]


_PER_SUBJECT = ("src", "forward", "info", "noise_cov", "trans")


def _scores(true, est, ground_metric):
    """The metrics of each subject (a list of dicts); est and true in A*m."""
    true, est = true * 1e9, est * 1e9  # nAm: MSE in nAm^2
    scores = dict(
        auc=pr_auc(true, est),
        # nan (undefined) where an estimate is all zeros
        emd=emd_per_source(true, est, ground_metric),
        mse=mse(true, est),
        loc=localization_error(true, est, ground_metric),
        n_active=np.count_nonzero(est, axis=1),
    )
    return [
        dict(subject=s, **{k: float(v[s]) for k, v in scores.items()})
        for s in range(len(true))
    ]


def _fit_file(out, condition, n_subjects, trial, model):
    return out / "fits" / f"{condition}-S{n_subjects:02d}-trial{trial:03d}-{model}.csv"


def _write_rows(fname, rows):
    fname.parent.mkdir(parents=True, exist_ok=True)
    tmp = fname.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fid:
        writer = csv.DictWriter(fid, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(fname)  # atomic: a file that exists is a finished fit


@lru_cache(maxsize=1)
def _load(n_subjects, cohort_seed):
    """The cohort and the lh ground metric (mm), from the disk cache.

    Each joblib worker reads them once: pickled, a cohort weighs about
    50 MB per subject.
    """
    from mne_wasserstein import compute_ground_metric
    from mne_wasserstein.datasets import make_cohort

    cohort = make_cohort(
        n_subjects, spacing="ico4", random_state=cohort_seed, n_jobs=2, verbose=False
    )
    ground_metric = compute_ground_metric(cohort.src_ref, verbose=False)
    return cohort, ground_metric.blocks[0]


def _run_task(task, cohort_args, models, snr, out):
    """Simulate one (condition, S, trial) and fit the grid of each model."""
    from mne_wasserstein.solvers import ConvergenceWarning

    cohort, ground_metric = _load(*cohort_args)
    condition, n_subjects, trial, seed = task
    X, Y, scale, true = _simulate(cohort, n_subjects, condition, seed, snr)
    for model in models:
        fname = _fit_file(out, condition, n_subjects, trial, model.name)
        if fname.exists():
            continue
        rows = []
        for beta in model.betas(n_subjects):
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                path = fit_path(model.make(ground_metric, beta), X, Y, model.alphas)
            n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            elapsed = (time.perf_counter() - t0) / len(model.alphas)
            for alpha, coef in zip(model.alphas, path.coefs, strict=True):
                rows.extend(
                    dict(
                        condition=condition,
                        n_subjects=n_subjects,
                        trial=trial,
                        seed=seed,
                        model=model.name,
                        alpha=alpha,
                        beta="" if beta is None else beta,
                        time=elapsed,
                        # ConvergenceWarnings of the whole path (all alphas
                        # and subjects), repeated on each of its rows
                        warnings=n_warn,
                        **subject_scores,
                    )
                    for subject_scores in _scores(true, coef * scale, ground_metric)
                )
        _write_rows(fname, rows)
    return task


def _read_fits(out):
    rows = []
    for fname in sorted((out / "fits").glob("*.csv")):
        with open(fname, newline="") as fid:
            rows.extend(csv.DictReader(fid))
    for row in rows:
        for key in ("n_subjects", "trial", "seed", "subject", "warnings"):
            row[key] = int(row[key])
        for key in ("alpha", "auc", "emd", "mse", "loc", "n_active", "time"):
            row[key] = float(row[key])
    return rows


def _trial_best(fits, metric, pick, independent):
    """The best score of one trial over the grid (mean over subjects).

    Joint models: the mean over subjects at each grid point, then the best
    grid point (``nan`` at a point where some subject's score is). Independent
    models: each subject's best grid point, then the mean over subjects.
    """
    points = sorted({(f["beta"], f["alpha"]) for f in fits})
    subjects = sorted({f["subject"] for f in fits})
    values = np.full((len(points), len(subjects)), np.nan)
    for f in fits:
        values[points.index((f["beta"], f["alpha"])), f["subject"]] = f[metric]

    def best(v, axis=None):
        finite = np.isfinite(v).any(axis=axis)
        return np.where(finite, pick(np.where(finite, v, 0.0), axis=axis), np.nan)

    if independent:
        return float(np.mean(best(values, axis=0)))
    return float(best(values.mean(axis=1)))


def _trial_scores(rows, independent):
    """Return the best score of every trial over its grid.

    A dict ``{(condition, model, S): {metric: {trial: value}}}``, with the
    fit time of the trial's grid under ``"time"``. ``independent``: the
    names of the models whose subjects are tuned one by one (see
    :func:`_trial_best`).
    """
    fits = {}
    for row in rows:
        key = (row["condition"], row["model"], row["n_subjects"], row["trial"])
        fits.setdefault(key, []).append(row)
    scores = {}
    for (condition, model, n_subjects, trial), trial_fits in fits.items():
        entry = scores.setdefault((condition, model, n_subjects), {})
        for metric, _, pick, _ in METRICS:
            value = _trial_best(trial_fits, metric, pick, model in independent)
            entry.setdefault(metric, {})[trial] = value
        # the fit time of the grid: one time per grid point
        times = {(f["beta"], f["alpha"]): f["time"] for f in trial_fits}
        entry.setdefault("time", {})[trial] = sum(times.values())
    return scores


def _mean_ci(values):
    """Return the mean, its 95 % CI half-width (Student t) and the count."""
    from scipy.stats import t as student

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    mean = values.mean() if n else np.nan
    half = (
        student.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    )
    return mean, half, n


def _summarise(scores):
    """Mean and 95 % CI over trials of the best scores (:func:`_trial_scores`)."""
    table = []
    for (condition, model, n_subjects), entry in sorted(scores.items()):
        row = dict(condition=condition, model=model, n_subjects=n_subjects)
        for metric in [m[0] for m in METRICS] + ["time"]:
            mean, half, n = _mean_ci(list(entry[metric].values()))
            row[metric], row[f"{metric}_ci"], row["n_trials"] = mean, half, n
        table.append(row)
    return table


def _paired(scores, reference="Lasso"):
    """Each model against ``reference`` on the trials both have (paired).

    The trials share their data across models, so the per-trial difference
    of the best scores is less noisy than the difference of the means: its
    mean, 95 % CI and the number of trials where the model is ahead (higher
    PR-AUC, lower EMD per source), for PR-AUC and EMD (``{metric}_n``: the
    trials where both scores are finite).
    """
    table = []
    for (condition, model, n_subjects), entry in sorted(scores.items()):
        ref = scores.get((condition, reference, n_subjects))
        if model == reference or ref is None:
            continue
        trials = sorted(set(entry["auc"]) & set(ref["auc"]))
        row = dict(
            condition=condition,
            model=model,
            n_subjects=n_subjects,
            n_trials=len(trials),
        )
        for metric, sign in (("auc", 1), ("emd", -1)):
            diff = np.array([entry[metric][t] - ref[metric][t] for t in trials])
            row[metric], row[f"{metric}_ci"], row[f"{metric}_n"] = _mean_ci(diff)
            row[f"{metric}_ahead"] = int(np.sum(sign * diff > 0))
        table.append(row)
    return table


def _rst_table(head, lines):
    widths = [max(len(c) for c in col) for col in zip(head, *lines, strict=True)]
    rule = "  ".join("=" * w for w in widths)
    fmt_line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) for c, w in zip(cells, widths, strict=True)
    ).rstrip()
    return "\n".join([rule, fmt_line(head), rule, *map(fmt_line, lines), rule])


def _format_table(table):
    head = ["condition", "model", "S", "trials"] + [m[1] for m in METRICS]
    head.append("fit time (s)")
    lines = []
    for row in table:
        cells = [row["condition"], row["model"], str(row["n_subjects"])]
        cells.append(str(row["n_trials"]))
        for metric in [m[0] for m in METRICS] + ["time"]:
            fmt = ".3f" if metric == "auc" else ".2f"
            cells.append(f"{row[metric]:{fmt}} ± {row[metric + '_ci']:{fmt}}")
        lines.append(cells)
    return _rst_table(head, lines)


def _format_paired(table, reference="Lasso"):
    head = ["condition", "model", "S", "trials"]
    head += [f"PR-AUC - {reference}", "ahead", f"EMD - {reference} (mm)", "ahead"]
    lines = []
    for row in table:
        cells = [row["condition"], row["model"], str(row["n_subjects"])]
        cells.append(str(row["n_trials"]))
        for metric, digits in (("auc", 3), ("emd", 2)):
            half = row[metric + "_ci"]
            cells.append(f"{row[metric]:+.{digits}f} ± {half:.{digits}f}")
            cells.append(f"{row[metric + '_ahead']}/{row[metric + '_n']}")
        lines.append(cells)
    return _rst_table(head, lines)


def _plot(table, models, fname_base):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in (m[0] for m in METRICS) if m != "loc"]  # Fig. 4: 3 rows
    fig, axes = plt.subplots(
        len(shown), 2, figsize=(9, 2.6 * len(shown)), sharex=True, sharey="row"
    )
    colors = plt.get_cmap("tab10")
    for col, condition in enumerate(CONDITIONS):
        for row_i, metric in enumerate(shown):
            ax = axes[row_i, col]
            for k, model in enumerate(m.name for m in models):
                rows = [
                    r
                    for r in table
                    if r["condition"] == condition and r["model"] == model
                ]
                if not rows:
                    continue
                S = np.array([r["n_subjects"] for r in rows])
                mean = np.array([r[metric] for r in rows])
                half = np.nan_to_num(np.array([r[f"{metric}_ci"] for r in rows]))
                ax.plot(S, mean, "o-", color=colors(k), label=model, ms=4)
                ax.fill_between(
                    S, mean - half, mean + half, color=colors(k), alpha=0.12, lw=0
                )
            ax.set_xscale("log", base=2)
            sizes = sorted({r["n_subjects"] for r in table})
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
            if row_i == 0:
                ax.set_title(f"{condition} leadfields")
            if col == 0:
                ax.set_ylabel(dict((m[0], m[3]) for m in METRICS)[metric])
            if row_i == len(shown) - 1:
                ax.set_xlabel("number of subjects S")
    for ax in axes[0]:
        ax.set_ylim(0, 1)  # PR-AUC (the CIs of few trials overflow)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    for ext in ("png", "svg"):
        fig.savefig(f"{fname_base}.{ext}", dpi=150)
    plt.close(fig)


def _check_config(out, config):
    fname = out / "config.json"
    if fname.exists():
        previous = json.loads(fname.read_text())
        if previous != config:
            raise SystemExit(
                f"{out} holds a run with other settings ({fname}); use another "
                f"--out or delete it.\nprevious: {previous}\nnow:      {config}"
            )
    out.mkdir(parents=True, exist_ok=True)
    fname.write_text(json.dumps(config, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-subjects", type=int, nargs="+", default=None)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--snr", type=float, default=4.0, help="per-channel SNR (paper: 4)"
    )
    parser.add_argument("--cohort-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--models", nargs="+", default=None, help="a subset of the model names"
    )
    args = parser.parse_args()
    grid = "quick" if args.quick else "full"
    n_subjects = args.n_subjects or ([2, 8] if args.quick else [2, 4, 8, 16, 32])
    trials = args.trials or (3 if args.quick else 30)
    out = args.out or Path(__file__).parent / "results" / f"paper_simulation_{grid}"
    all_models = models = _models(grid)
    grids = {
        m.name: dict(
            alphas=m.alphas.tolist(),
            betas={str(S): m.betas(S) for S in sorted(n_subjects)},
        )
        for m in models
    }
    if args.models:
        unknown = set(args.models) - {m.name for m in models}
        if unknown:
            parser.error(f"unknown models {sorted(unknown)}")
        models = [m for m in models if m.name in args.models]
    config = dict(
        grid=grid,
        grids=grids,
        seed=args.seed,
        snr=args.snr,
        cohort_seed=args.cohort_seed,
        cohort_size=max(n_subjects),  # trials draw their subjects from it
        spacing="ico4",
        depth=DEPTH,
        solver=SOLVER,
        mwe_epsilon=MWE_EPSILON,
    )
    _check_config(out, config)

    t_start = time.perf_counter()
    cohort_args = (max(n_subjects), args.cohort_seed)
    _load(*cohort_args)  # builds the caches once
    t_setup = time.perf_counter() - t_start
    seeds = np.random.SeedSequence(args.seed).generate_state(trials)
    tasks = [
        (condition, S, trial, int(seeds[trial]))
        for S in sorted(n_subjects, reverse=True)  # the longest first
        for trial in range(trials)
        for condition in CONDITIONS
    ]
    todo = [
        t
        for t in tasks
        if not all(_fit_file(out, *t[:3], m.name).exists() for m in models)
    ]
    print(
        f"{len(tasks)} tasks x {len(models)} models, {len(tasks) - len(todo)} "
        f"already done; cohort and ground metric in {t_setup:.0f} s"
    )
    t0 = time.perf_counter()
    results = Parallel(n_jobs=args.n_jobs, return_as="generator_unordered")(
        delayed(_run_task)(task, cohort_args, models, args.snr, out) for task in todo
    )
    for k, (condition, S, trial, _) in enumerate(results, 1):
        print(
            f"[{k}/{len(todo)}] {condition} leadfields, S={S}, trial {trial} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    t_fits = time.perf_counter() - t0

    rows = _read_fits(out)
    with open(out / "fits.csv", "w", newline="") as fid:
        writer = csv.DictWriter(fid, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    # the table and figure show every model with fits in out (earlier runs
    # with other --models included)
    scores = _trial_scores(rows, {m.name for m in all_models if m.independent})
    table, paired = _summarise(scores), _paired(scores)
    for name, rows_out, fmt in (
        ("table", table, _format_table),
        ("paired", paired, _format_paired),
    ):
        if not rows_out:  # paired: no Lasso fits in out
            continue
        text = fmt(rows_out)
        with open(out / f"{name}.csv", "w", newline="") as fid:
            writer = csv.DictWriter(fid, list(rows_out[0]))
            writer.writeheader()
            writer.writerows(rows_out)
        (out / f"{name}.rst").write_text(text + "\n")
        print(text)
    _plot(table, all_models, out / "figure")
    print(
        f"setup {t_setup:.0f} s, fits {t_fits:.0f} s ({len(todo)} tasks, "
        f"n_jobs={args.n_jobs}); outputs in {out}"
    )


if __name__ == "__main__":
    # run as an importable module: joblib workers then import its functions
    # (and keep the cache of _load between tasks) instead of receiving copies
    import paper_simulation

    paper_simulation.main()
