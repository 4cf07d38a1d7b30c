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
  ``GroupLasso``, ``DirtyModel``, ``MWE`` q=1 and q=0.5 at two epsilons:
  1 mm (``MWE_1``, ``MWE_0.5``) and the paper's, 10 / p times the median
  geodesic distance, about 0.45 mm here (``MWE_1-paper-eps``,
  ``MWE_0.5-paper-eps``), package defaults for gamma and tau;
- tuning, the same for every model: a grid of 9 points (Lasso, reweighted
  Lasso, Group Lasso: 9 alphas; Dirty: 3 alphas x 3 betas; each MWE: 3
  alphas x 3 betas; alpha paths with warm starts, an outer loop over beta),
  one grid point for all the subjects of a trial, and for each trial and
  metric the best grid point (the mean over subjects), as in the paper.
  The row ``Lasso (oracle)`` is the Lasso's fits scored with each
  subject's own best alpha (the authors' code tunes the independent models
  that way): an extra row, not a model with the same tuning;
- scores (:mod:`mne_wasserstein.metrics`, averaged over subjects): PR-AUC,
  EMD per source (mm, geodesic ground metric of the template), MSE (nAm^2)
  and localisation error (mm); the table gives the mean and the 95 %
  confidence interval of the mean (Student t) over trials.

Deviations from the paper: regions are 20 mm geodesic discs on the template,
not Destrieux labels (no atlas offline); the cohort is synthetic (template
anatomies, see :func:`mne_wasserstein.datasets.make_cohort`, not Cam-CAN);
MWE's sources have the exact zeros of the mass floor tau.

Anatomy (``--anatomy LEVEL [LEVEL ...]``): the study runs on the cohort of
each level (``make_cohort(..., anatomy=LEVEL)``: ``template``,
``individual``, ``exaggerated`` or a number); without it, on the cohort of
``make_cohort``'s default. Every level uses the same seeds, hence the same
subjects, sources and noise: the levels are paired. The sensitivity sweep
is the study at S = 8 and 32 over the levels, with the different
leadfields::

    python benchmarks/paper_simulation.py --n-subjects 8 32 \
        --conditions different --models Lasso MWE_0.5 MWE_0.5-paper-eps \
        --anatomy template individual exaggerated

in the folder of the main run: run with ``--anatomy individual``, the main
run's fits at S = 8 and 32 are the sweep's at that level.

Outputs (in ``--out``): ``fits/LEVEL/*.csv`` (one file per anatomy level,
condition, S, trial and model: every grid point and subject; LEVEL is
``default`` without ``--anatomy``; a finished file is never recomputed, so
an interrupted run resumes, and a run with more trials, sizes, models or
levels adds to it), ``fits.csv`` (all of them), ``table.csv`` and
``table.rst``, ``paired.csv`` and ``paired.rst`` (each model against the
Lasso, trial by trial: the mean and 95 % CI of the differences of the best
PR-AUC and EMD, and in how many trials the model is ahead),
``figure-LEVEL.png`` and ``.svg`` (Fig. 4 layout, one per anatomy level),
``config.json`` (a resumed run must use the same settings), and with
``--anatomy``: ``diversity.json`` (the leadfield diversity of each level:
the median absolute cosine between two subjects' gain columns of the same
source, and between one subject's columns of neighbouring sources),
``sensitivity.csv``, ``sensitivity.rst`` and ``sensitivity.png`` /
``.svg`` (the paired MWE_0.5 minus Lasso differences of PR-AUC and EMD,
different leadfields, against the diversity of the level). Columns of the
fits: the scores of one subject (``emd`` and ``loc`` are nan when its
estimate is all zeros), ``n_active`` its number of non-zeros, ``time`` the
seconds per grid point (path time / number of alphas, all subjects),
``warnings`` the ConvergenceWarnings of the whole alpha path.

Tasks (one per anatomy level, condition, S, trial and model: simulate, then
fit the model's grid sequentially with warm starts; the simulation takes
about 0.2 s per subject) run through joblib (``--n-jobs``), or on a Dask
cluster with ``--scheduler ADDRESS`` (``dask.distributed``; the script is
sent to the workers, which need mne-wasserstein and build or read the
cohort from their own data cache; start them with one thread each, e.g.
``dask worker ADDRESS --nthreads 1``: the warnings count is per process).
Every task runs with one BLAS and one numba thread, and the CSV files are
written by this process: the results do not depend on the backend.

Timing: the last ``--quick`` of the earlier protocol (6 alphas for the
baselines, one point for MWE at 1 mm, 3 trials, both conditions) took 18
min 37 s on the 2-core machine (``--n-jobs 2``, 2026-12-02); cold fits at 1
mm (median): MWE_1 26 s (S=2), 48 s (S=8), 86 s (S=16), 167 s (S=32),
MWE_0.5 77, 130, 255 and 486 s; a point of the baselines' grids 0.3-0.6 s
at S=2, 1-4.5 s at S=8 (doc/simulation_results.rst). At the paper's
epsilon, one MWE_1 fit (S=2, alpha 0.05, beta 0.3) took 3.1 times as long
as at 1 mm (153 s and 49 s, 34 and 28 outer iterations, side by side on a
loaded machine, 2026-12-04). Estimated from these, with MWE 10 times faster
(issue 19; not measured yet) and the ratio 3.1 for every fit at the paper's
epsilon: ``--quick`` (4 simulations x 36 MWE fits: 20,700 s of fits before
the speed-up, and 230 s of the baselines) about 20 min with ``--n-jobs 2``;
the full run (30 trials; S = 4 timed as S = 8, the baselines at S = 16 and
32 scaled from S = 8) about 51 hours (10 trials: 17 hours); the sweep
above, two levels besides the main run's, 10 trials: about 6.5 hours.

Run: python benchmarks/paper_simulation.py [--quick] [--n-jobs 2] [--out DIR]
(the cohort is built and cached on first use: about 40 s per subject on 2
cores). ``--quick``: S in {2, 8}, 2 trials, different leadfields only
(``--conditions same different`` adds the other, doubling the time);
default: S in {2, 4, 8, 16, 32}, 30 trials, both conditions.
"""

import argparse
import csv
import json
import time
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed

# data preparation from the MNE objects of a simulation: the gain in template
# order, as the simulation builds it (gradiometers only, left hemisphere)
from mne_wasserstein.inverse import aligned_order
from mne_wasserstein.metrics import emd_per_source, localization_error, mse, pr_auc
from mne_wasserstein.simulation import _fixed_gain
from mne_wasserstein.solvers import (
    MWE,
    DirtyModel,
    GroupLasso,
    IndependentLasso,
    fit_path,
)
from mne_wasserstein.solvers.mwe import _metric_scales

DEPTH = 0.9
# the baselines' stopping rule: relative duality gap 1e-6 is far below what
# changes the scores; at small alpha the Lasso needs thousands of sweeps on
# these ill-conditioned gains, so sweeps are capped (fits that stop there
# are counted in the "warnings" column)
SOLVER = dict(tol=1e-6, max_iter=2000)
# The grids: 9 points for every model (issue 20: every model tuned the same
# way). Alphas are relative to each model's alpha_max: the Lasso's best is
# near 0.02-0.1 at SNR 4.
ALPHAS = np.geomspace(0.5, 0.01, 9)  # Lasso, reweighted Lasso, Group Lasso
DIRTY_ALPHAS = np.geomspace(0.2, 0.02, 3)
# Dirty's beta: S^(-f / 2), between 1/sqrt(S) (independent Lasso, f = 1) and
# 1 (Group Lasso, f = 0)
DIRTY_FRACTIONS = (0.25, 0.5, 0.75)
# MWE: alpha relative to the concomitant alpha_max (noise level of the data,
# not of the residual: its best lies lower than the Lasso's), beta to
# alpha_max too (doc/model.rst); package defaults for gamma and tau. The grid
# is centred on the point chosen on three held-out S = 8 trials (seeds 1, 2,
# 3; doc/simulation_results.rst): alpha = 0.05, beta = 0.3 at epsilon = 1 mm.
MWE_ALPHAS = np.array([0.1, 0.05, 0.025])
MWE_BETAS = [0.1, 0.3, 1.0]
# epsilon: 1 mm (the benchmark's; the package default, the source spacing of
# 4.2 mm, blurs the transport over a neighbour: its entropic mass bias
# activates nearly every source as soon as beta nears alpha), and the
# paper's: 10 / p times the median of the ground metric, about 0.45 mm for
# p = 2562 (the authors' simulation code divides the ground metric by its
# median and sets epsilon = 10 / p, p the sources of the left hemisphere;
# section 5.1 of paper 001 says 0.002 relative to the median)
MWE_EPSILON = 1.0
PAPER_EPSILON = "10 / p * median ground metric distance"
CONDITIONS = ("same", "different")
REFERENCE = "Lasso"  # the paired comparisons and the sensitivity sweep
ORACLE = "Lasso (oracle)"  # the Lasso's fits, each subject at its best alpha
SWEEP_MODELS = ("MWE_0.5", "MWE_0.5-paper-eps")
DEFAULT_ANATOMY = "default"  # the label of make_cohort's default anatomy
METRICS = (  # name, column, best over the grid, label
    ("auc", "PR-AUC", np.nanmax, "PR-AUC"),
    ("emd", "EMD (mm)", np.nanmin, "EMD per source (mm)"),
    ("mse", "MSE (nAm^2)", np.nanmin, "MSE (nAm$^2$)"),
    ("loc", "loc. (mm)", np.nanmin, "localisation error (mm)"),
)
FIELDS = [
    "anatomy",
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


class _Task(NamedTuple):
    """One simulation; a task fits one model's grid on it."""

    anatomy: object  # the anatomy level of make_cohort (None: its default)
    condition: str
    n_subjects: int
    trial: int
    seed: int


def _no_beta(n_subjects):
    return [None]


def _dirty_betas(n_subjects):
    return [n_subjects ** (-f / 2) for f in DIRTY_FRACTIONS]


def _mwe_betas(n_subjects):
    return MWE_BETAS


def _paper_epsilon(ground_metric):
    """The paper's epsilon (mm): 10 / p times the median distance."""
    median, _ = _metric_scales(ground_metric)
    return 10 / len(ground_metric) * median


def _models():
    """The model table (the order of the tables and figures)."""

    def mwe(q, paper_epsilon):
        def make(ground_metric, beta):
            epsilon = _paper_epsilon(ground_metric) if paper_epsilon else MWE_EPSILON
            return MWE(
                ground_metric, beta=beta, q=q, epsilon=epsilon, n_jobs=1, verbose=False
            )

        return make

    models = [
        _Model(
            "Lasso", lambda gm, b: IndependentLasso(q=1, **SOLVER), _no_beta, ALPHAS
        ),
        _Model(
            "Re-Lasso",
            lambda gm, b: IndependentLasso(q=0.5, **SOLVER),
            _no_beta,
            ALPHAS,
        ),
        _Model("GroupLasso", lambda gm, b: GroupLasso(**SOLVER), _no_beta, ALPHAS),
        _Model(
            "Dirty",
            lambda gm, b: DirtyModel(beta=b, **SOLVER),
            _dirty_betas,
            DIRTY_ALPHAS,
        ),
    ]
    for paper_epsilon, suffix in ((False, ""), (True, "-paper-eps")):
        for q in (1, 0.5):
            models.append(
                _Model(
                    f"MWE_{q}{suffix}", mwe(q, paper_epsilon), _mwe_betas, MWE_ALPHAS
                )
            )
    return models


def _grad_whitener(noise_cov, info, ch_names):
    from mne.cov import compute_whitener

    W, _ = compute_whitener(noise_cov, info, picks=ch_names, pca=True, verbose=False)
    return W


def _prepare_subject(sim, s, cohort, grads, n_lh):
    """Whitened, depth-weighted lh gain of subject ``s`` and its data.

    Returns ``X`` (n_grad, n_lh), ``y`` (n_grad,) and ``scale`` (n_lh,):
    the sources in A*m are ``scale * z`` for solver coefficients ``z``.
    """
    fwd = sim.forwards[s]
    subject = fwd["src"][0]["subject_his_id"]
    order = aligned_order(
        cohort.src_ref, fwd["src"], cohort.subject_ref, subject, cohort.subjects_dir
    )
    rows = [fwd["sol"]["row_names"].index(name) for name in grads]
    gain = _fixed_gain(fwd, order)[rows][:, :n_lh]
    W = _grad_whitener(sim.noise_covs[s], sim.evokeds[s].info, grads)
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
        verbose=False,
    )
    info = sim.evokeds[0].info
    grads = [info["ch_names"][i] for i in pick_types(info, meg="grad")]
    n_lh = cohort.src_ref[0]["nuse"]
    parts = [_prepare_subject(sim, s, sub, grads, n_lh) for s in range(sub.n_subjects)]
    X = np.stack([p[0] for p in parts])
    Y = np.stack([p[1] for p in parts])
    scale = np.stack([p[2] for p in parts])
    return X, Y, scale, sim.coef[:, :n_lh]


_PER_SUBJECT = ("src", "forwards", "info", "noise_covs", "trans")


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


def _anatomy_label(anatomy):
    """The name of an anatomy level in file names and tables."""
    return DEFAULT_ANATOMY if anatomy is None else str(anatomy)


def _fit_file(out, task, model):
    name = f"{task.condition}-S{task.n_subjects:02d}-trial{task.trial:03d}-{model}"
    return out / "fits" / _anatomy_label(task.anatomy) / f"{name}.csv"


def _write_csv(fname, rows, fields):
    fname.parent.mkdir(parents=True, exist_ok=True)
    tmp = fname.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fid:
        writer = csv.DictWriter(fid, fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(fname)  # atomic: a fit file that exists is a finished fit


def _cohort_kwargs(anatomy):
    """The keyword arguments of ``make_cohort`` for an anatomy level.

    ``None`` (no ``--anatomy``): none, the call of the earlier versions of
    this script.
    """
    return {} if anatomy is None else dict(anatomy=anatomy)


def _leadfield_diversity(cohort):
    """The median absolute cosines of the cohort's gain columns.

    ``cross_subject``: two subjects, the same source; ``neighbour``: one
    subject, two neighbouring sources.
    """
    from mne_wasserstein.datasets import leadfield_diversity

    diversity = leadfield_diversity(cohort)
    return dict(
        cross_subject=float(np.median(diversity.cross_subject)),
        neighbour=float(np.median(diversity.neighbour)),
    )


@lru_cache(maxsize=1)
def _load(cohort_size, cohort_seed, anatomy):
    """The cohort and the lh ground metric (mm), from the disk cache.

    Each worker reads them once per anatomy level (the tasks of a level are
    dispatched together): pickled, a cohort weighs about 50 MB per subject.
    """
    from mne_wasserstein import compute_ground_metric
    from mne_wasserstein.datasets import make_cohort

    cohort = make_cohort(
        cohort_size,
        spacing="ico4",
        random_state=cohort_seed,
        n_jobs=2,
        verbose=False,
        **_cohort_kwargs(anatomy),
    )
    ground_metric = compute_ground_metric(cohort.src_ref, verbose=False)
    return cohort, ground_metric.blocks[0]


@contextmanager
def _one_thread():
    """Run BLAS and numba's parallel loops on one thread.

    The tasks run side by side, and the result of a parallel reduction
    depends on its number of threads: with one, a fit gives the same result
    whatever the backend and the machine.
    """
    import numba
    from threadpoolctl import threadpool_limits

    n_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(n_threads)


def _run_task(task, model, cohort_size, cohort_seed, snr):
    """Simulate one trial and fit one model's grid; return its rows."""
    from mne_wasserstein.solvers import ConvergenceWarning

    cohort, ground_metric = _load(cohort_size, cohort_seed, task.anatomy)
    rows = []
    with _one_thread():
        X, Y, scale, true = _simulate(
            cohort, task.n_subjects, task.condition, task.seed, snr
        )
        for beta in model.betas(task.n_subjects):
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                path = fit_path(model.make(ground_metric, beta), X, Y, model.alphas)
            n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            elapsed = (time.perf_counter() - t0) / len(model.alphas)
            for alpha, coef in zip(model.alphas, path.coefs, strict=True):
                rows.extend(
                    dict(
                        anatomy=_anatomy_label(task.anatomy),
                        condition=task.condition,
                        n_subjects=task.n_subjects,
                        trial=task.trial,
                        seed=task.seed,
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
    return task, model.name, rows


def _read_fits(out):
    rows = []
    for fname in sorted((out / "fits").glob("*/*.csv")):
        with open(fname, newline="") as fid:
            rows.extend(csv.DictReader(fid))
    for row in rows:
        for key in ("n_subjects", "trial", "seed", "subject", "warnings"):
            row[key] = int(row[key])
        for key in ("alpha", "auc", "emd", "mse", "loc", "n_active", "time"):
            row[key] = float(row[key])
    return rows


def _trial_best(fits, metric, pick, per_subject=False):
    """The best score of one trial over the grid (mean over subjects).

    The mean over subjects at each grid point, then the best grid point
    (``nan`` at a point where some subject's score is). ``per_subject``
    (the oracle): each subject's best grid point, then the mean over
    subjects.
    """
    points = sorted({(f["beta"], f["alpha"]) for f in fits})
    subjects = sorted({f["subject"] for f in fits})
    values = np.full((len(points), len(subjects)), np.nan)
    for f in fits:
        values[points.index((f["beta"], f["alpha"])), f["subject"]] = f[metric]

    def best(v, axis=None):
        finite = np.isfinite(v).any(axis=axis)
        return np.where(finite, pick(np.where(finite, v, 0.0), axis=axis), np.nan)

    if per_subject:
        return float(np.mean(best(values, axis=0)))
    return float(best(values.mean(axis=1)))


def _trial_scores(rows):
    """Return the best score of every trial over its grid.

    A dict ``{(anatomy, condition, model, S): {metric: {trial: value}}}``,
    with the fit time of the trial's grid under ``"time"``; the Lasso's fits
    also give the row :data:`ORACLE` (see :func:`_trial_best`).
    """
    fits = {}
    for row in rows:
        key = (row["anatomy"], row["condition"], row["model"], row["n_subjects"])
        fits.setdefault((*key, row["trial"]), []).append(row)
    scores = {}
    for (anatomy, condition, model, n_subjects, trial), trial_fits in fits.items():
        names = [(model, False)] + [(ORACLE, True)] * (model == REFERENCE)
        for name, per_subject in names:
            entry = scores.setdefault((anatomy, condition, name, n_subjects), {})
            for metric, _, pick, _ in METRICS:
                value = _trial_best(trial_fits, metric, pick, per_subject)
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
    for (anatomy, condition, model, n_subjects), entry in sorted(scores.items()):
        row = dict(
            anatomy=anatomy, condition=condition, model=model, n_subjects=n_subjects
        )
        for metric in [m[0] for m in METRICS] + ["time"]:
            mean, half, n = _mean_ci(list(entry[metric].values()))
            row[metric], row[f"{metric}_ci"], row["n_trials"] = mean, half, n
        table.append(row)
    return table


def _paired(scores):
    """Each model against :data:`REFERENCE` on the trials both have (paired).

    The trials share their data across models, so the per-trial difference
    of the best scores is less noisy than the difference of the means: its
    mean, 95 % CI and the number of trials where the model is ahead (higher
    PR-AUC, lower EMD per source), for PR-AUC and EMD (``{metric}_n``: the
    trials where both scores are finite).
    """
    table = []
    for (anatomy, condition, model, n_subjects), entry in sorted(scores.items()):
        ref = scores.get((anatomy, condition, REFERENCE, n_subjects))
        if model == REFERENCE or ref is None:
            continue
        trials = sorted(set(entry["auc"]) & set(ref["auc"]))
        row = dict(
            anatomy=anatomy,
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


def _sensitivity(paired, diversity):
    """The sweep: MWE_0.5 minus the Lasso against the leadfield diversity.

    The rows of :func:`_paired` for :data:`SWEEP_MODELS` with different
    leadfields (with the same leadfield, the subjects' gains do not differ
    whatever the anatomy) at the anatomy levels of ``diversity`` (a dict
    ``{level: {"cross_subject": cos, "neighbour": cos}}``), with the
    diversity of their level, from the most similar subjects to the least.
    """
    rows = [
        dict(
            anatomy=row["anatomy"],
            cos_cross_subject=diversity[row["anatomy"]]["cross_subject"],
            cos_neighbour=diversity[row["anatomy"]]["neighbour"],
            **{k: v for k, v in row.items() if k != "anatomy"},
        )
        for row in paired
        if row["anatomy"] in diversity
        and row["condition"] == "different"
        and row["model"] in SWEEP_MODELS
    ]
    return sorted(
        rows,
        key=lambda r: (
            -r["cos_cross_subject"],
            r["anatomy"],
            r["model"],
            r["n_subjects"],
        ),
    )


def _rst_table(head, lines):
    widths = [max(len(c) for c in col) for col in zip(head, *lines, strict=True)]
    rule = "  ".join("=" * w for w in widths)
    fmt_line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) for c, w in zip(cells, widths, strict=True)
    ).rstrip()
    return "\n".join([rule, fmt_line(head), rule, *map(fmt_line, lines), rule])


def _format_table(table):
    head = ["anatomy", "condition", "model", "S", "trials"] + [m[1] for m in METRICS]
    head.append("fit time (s)")
    lines = []
    for row in table:
        cells = [row["anatomy"], row["condition"], row["model"]]
        cells += [str(row["n_subjects"]), str(row["n_trials"])]
        for metric in [m[0] for m in METRICS] + ["time"]:
            fmt = ".3f" if metric == "auc" else ".2f"
            cells.append(f"{row[metric]:{fmt}} ± {row[metric + '_ci']:{fmt}}")
        lines.append(cells)
    return _rst_table(head, lines)


_DIFF_HEAD = [f"PR-AUC - {REFERENCE}", "ahead", f"EMD - {REFERENCE} (mm)", "ahead"]


def _diff_cells(row):
    """The cells of a paired difference: mean ± CI and trials ahead."""
    cells = []
    for metric, digits in (("auc", 3), ("emd", 2)):
        half = row[metric + "_ci"]
        cells.append(f"{row[metric]:+.{digits}f} ± {half:.{digits}f}")
        cells.append(f"{row[metric + '_ahead']}/{row[metric + '_n']}")
    return cells


def _format_paired(table):
    head = ["anatomy", "condition", "model", "S", "trials", *_DIFF_HEAD]
    lines = [
        [row["anatomy"], row["condition"], row["model"], str(row["n_subjects"])]
        + [str(row["n_trials"]), *_diff_cells(row)]
        for row in table
    ]
    return _rst_table(head, lines)


def _format_sensitivity(table):
    head = ["anatomy", "cos subjects", "cos neighbours", "model", "S", "trials"]
    lines = [
        [row["anatomy"], f"{row['cos_cross_subject']:.3f}"]
        + [f"{row['cos_neighbour']:.3f}", row["model"], str(row["n_subjects"])]
        + [str(row["n_trials"]), *_diff_cells(row)]
        for row in table
    ]
    return _rst_table(head + _DIFF_HEAD, lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, fname_base):
    for ext in ("png", "svg"):
        fig.savefig(f"{fname_base}.{ext}", dpi=150)


def _plot(table, names, fname_base):
    """Fig. 4 of the paper: the scores against S, for one anatomy level."""
    plt = _pyplot()
    shown = [m for m in (m[0] for m in METRICS) if m != "loc"]  # Fig. 4: 3 rows
    fig, axes = plt.subplots(
        len(shown), 2, figsize=(9, 2.6 * len(shown)), sharex=True, sharey="row"
    )
    colors = plt.get_cmap("tab10")
    sizes = sorted({r["n_subjects"] for r in table})
    for col, condition in enumerate(CONDITIONS):
        for row_i, metric in enumerate(shown):
            ax = axes[row_i, col]
            for k, model in enumerate(names):
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
                style = "o--" if model == ORACLE else "o-"
                ax.plot(S, mean, style, color=colors(k), label=model, ms=4)
                ax.fill_between(
                    S, mean - half, mean + half, color=colors(k), alpha=0.12, lw=0
                )
            ax.set_xscale("log", base=2)
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
    legend = {}  # the models of both conditions (a run may have one)
    for ax in axes[0]:
        legend.update(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
    ncol = min(len(legend), 5)
    fig.legend(
        list(legend.values()), list(legend), loc="lower center", ncol=ncol, fontsize=8
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, fname_base)
    plt.close(fig)


def _plot_sensitivity(table, fname_base):
    """MWE_0.5 minus the Lasso against the cross-subject cosine of each level."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    colors = plt.get_cmap("tab10")
    curves = sorted({(r["model"], r["n_subjects"]) for r in table})
    panels = (("auc", f"PR-AUC - {REFERENCE}"), ("emd", f"EMD - {REFERENCE} (mm)"))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for k, (model, n_subjects) in enumerate(curves):
            rows = sorted(
                (
                    r
                    for r in table
                    if (r["model"], r["n_subjects"]) == (model, n_subjects)
                ),
                key=lambda r: r["cos_cross_subject"],
            )
            ax.errorbar(
                [r["cos_cross_subject"] for r in rows],
                [r[metric] for r in rows],
                np.nan_to_num([r[f"{metric}_ci"] for r in rows]),
                fmt="o-",
                color=colors(k),
                capsize=3,
                ms=4,
                label=f"{model}, S = {n_subjects}",
            )
        levels = {r["anatomy"]: r["cos_cross_subject"] for r in table}
        top = ax.secondary_xaxis("top")  # the names of the anatomy levels
        top.set_xticks(list(levels.values()), list(levels), fontsize=7)
        # the within-subject reference: one subject's neighbouring sources
        ax.axvline(np.median([r["cos_neighbour"] for r in table]), color="0.5", ls=":")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("median |cos| of two subjects' gains, same source")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].invert_xaxis()  # shared: more diverse leadfields to the right
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "Different leadfields, paired per trial (dotted: median |cos| of a "
        "subject's neighbouring sources)",
        fontsize=9,
    )
    fig.tight_layout()
    _save(fig, fname_base)
    plt.close(fig)


def _merge_grids(previous, grids):
    """The union of two runs' grids; ``None`` where a model's grid differs."""
    merged = dict(previous)
    for name, grid in grids.items():
        old = previous.get(name)
        if old is None:
            merged[name] = grid
            continue
        if old["alphas"] != grid["alphas"]:
            return None
        common = set(old["betas"]) & set(grid["betas"])
        if any(old["betas"][S] != grid["betas"][S] for S in common):
            return None
        merged[name] = dict(
            alphas=grid["alphas"], betas={**old["betas"], **grid["betas"]}
        )
    return merged


def _check_config(out, config):
    """Record the settings of a run in ``out``; stop if they differ from before.

    A run with other models, sizes, trials or anatomy levels adds to the
    fits of the earlier runs: the grids merge when they agree where they
    overlap.
    """
    fname = out / "config.json"
    if fname.exists():
        previous = json.loads(fname.read_text())
        grids = _merge_grids(previous.get("grids", {}), config["grids"])
        same = {k: v for k, v in previous.items() if k != "grids"} == {
            k: v for k, v in config.items() if k != "grids"
        }
        if grids is None or not same:
            raise SystemExit(
                f"{out} holds a run with other settings ({fname}); use another "
                f"--out or delete it.\nprevious: {previous}\nnow:      {config}"
            )
        config = dict(config, grids=grids)
    out.mkdir(parents=True, exist_ok=True)
    fname.write_text(json.dumps(config, indent=1))


def _dask_backend(stack, scheduler):
    """Send the tasks of joblib to the Dask scheduler at ``scheduler``."""
    from dask.distributed import Client
    from joblib import parallel_config

    client = stack.enter_context(Client(scheduler))
    # the workers import this script by name: the tasks refer to its
    # functions, and each worker keeps its cache of _load between tasks
    client.upload_file(__file__)
    stack.enter_context(parallel_config(backend="dask", client=client))


def run_study(
    out,
    *,
    n_subjects,
    trials,
    models=None,
    conditions=CONDITIONS,
    anatomy=None,
    seed=42,
    snr=4.0,
    cohort_seed=0,
    cohort_size=None,
    n_jobs=2,
    scheduler=None,
):
    """Run (or resume) the study in ``out`` and write its tables and figures.

    ``models``: a list of :class:`_Model` (default: :func:`_models`);
    ``anatomy``: a list of levels of ``make_cohort`` (``None``: its
    default); ``cohort_size``: the cohort that trials draw their subjects
    from (default: the largest S); ``scheduler``: the address of a Dask
    scheduler (``n_jobs`` is then ignored: every worker thread runs tasks).
    """
    out = Path(out)
    models = _models() if models is None else models
    cohort_size = cohort_size or max(n_subjects)
    if cohort_size < max(n_subjects):
        raise ValueError(f"cohort_size={cohort_size} < S = {max(n_subjects)}")
    levels = [None] if anatomy is None else list(anatomy)
    config = dict(
        # trials draw their subjects and sources from these
        seed=seed,
        snr=snr,
        cohort_seed=cohort_seed,
        cohort_size=cohort_size,
        spacing="ico4",
        depth=DEPTH,
        solver=SOLVER,
        mwe_epsilon=dict(benchmark=MWE_EPSILON, paper=PAPER_EPSILON),
        grids={
            m.name: dict(
                alphas=m.alphas.tolist(),
                betas={str(S): m.betas(S) for S in sorted(n_subjects)},
            )
            for m in models
        },
    )
    _check_config(out, config)

    t_start = time.perf_counter()
    diversity_file = out / "diversity.json"
    diversity = (
        json.loads(diversity_file.read_text()) if diversity_file.exists() else {}
    )
    for level in levels:
        cohort, ground_metric = _load(cohort_size, cohort_seed, level)  # the caches
        if level is not None and _anatomy_label(level) not in diversity:
            diversity[_anatomy_label(level)] = _leadfield_diversity(cohort)
            diversity_file.write_text(json.dumps(diversity, indent=1))
    print(f"paper epsilon: {_paper_epsilon(ground_metric):.3f} mm")
    del cohort
    _load.cache_clear()  # the workers load their own
    t_setup = time.perf_counter() - t_start

    # the first trials of a longer run are those of a shorter one
    seeds = np.random.SeedSequence(seed).generate_state(trials)
    tasks = [
        (_Task(level, condition, S, trial, int(seeds[trial])), model)
        for level in levels  # a worker loads one level at a time
        for S in sorted(n_subjects, reverse=True)  # the longest first
        for trial in range(trials)
        for condition in conditions
        for model in reversed(models)  # MWE first
    ]
    todo = [(t, m) for t, m in tasks if not _fit_file(out, t, m.name).exists()]
    print(
        f"{len(tasks)} tasks, {len(tasks) - len(todo)} already done; "
        f"cohort and ground metric in {t_setup:.0f} s"
    )
    t0 = time.perf_counter()
    with ExitStack() as stack:
        if scheduler is not None:
            _dask_backend(stack, scheduler)
            n_jobs = -1
        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_run_task)(task, model, cohort_size, cohort_seed, snr)
            for task, model in todo
        )
        for k, (task, name, rows) in enumerate(results, 1):
            _write_csv(_fit_file(out, task, name), rows, FIELDS)
            print(
                f"[{k}/{len(todo)}] {_anatomy_label(task.anatomy)} anatomy, "
                f"{task.condition} leadfields, S={task.n_subjects}, trial "
                f"{task.trial}, {name} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    t_fits = time.perf_counter() - t0

    # the tables and figures show every fit in out (earlier runs included)
    rows = _read_fits(out)
    _write_csv(out / "fits.csv", rows, FIELDS)
    scores = _trial_scores(rows)
    table, paired = _summarise(scores), _paired(scores)
    sensitivity = _sensitivity(paired, diversity)
    for name, rows_out, fmt in (
        ("table", table, _format_table),
        ("paired", paired, _format_paired),
        ("sensitivity", sensitivity, _format_sensitivity),
    ):
        if not rows_out:  # no Lasso fits, or no anatomy levels
            continue
        _write_csv(out / f"{name}.csv", rows_out, list(rows_out[0]))
        text = fmt(rows_out)
        (out / f"{name}.rst").write_text(text + "\n")
        print(text)
    order = [m.name for m in _models()]
    names = sorted(
        {r["model"] for r in table},
        key=lambda n: order.index(n) if n in order else order.index(REFERENCE) + 0.5,
    )
    for label in sorted({r["anatomy"] for r in table}):
        rows_label = [r for r in table if r["anatomy"] == label]
        _plot(rows_label, names, out / f"figure-{label}")
    if sensitivity:
        _plot_sensitivity(sensitivity, out / "sensitivity")
    print(
        f"setup {t_setup:.0f} s, fits {t_fits:.0f} s ({len(todo)} tasks, "
        f"{'scheduler ' + scheduler if scheduler else f'n_jobs={n_jobs}'}); "
        f"outputs in {out}"
    )


def _anatomy_level(text):
    """An anatomy level of the command line: a name or a number."""
    try:
        return float(text)
    except ValueError:
        return text


def main(argv=None):
    """Run the study from the command line (``argv``: its arguments)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="S in {2, 8}, 2 trials, different leadfields only",
    )
    parser.add_argument("--n-subjects", type=int, nargs="+", default=None)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=None)
    parser.add_argument(
        "--models", nargs="+", default=None, help="a subset of the model names"
    )
    parser.add_argument(
        "--anatomy",
        type=_anatomy_level,
        nargs="+",
        default=None,
        metavar="LEVEL",
        help="anatomy levels of make_cohort: template, individual, exaggerated "
        "or a number (default: make_cohort's default)",
    )
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the tasks on the Dask cluster of this scheduler "
        "(dask.distributed; --n-jobs is then ignored)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--snr", type=float, default=4.0, help="per-channel SNR (paper: 4)"
    )
    parser.add_argument("--cohort-seed", type=int, default=0)
    parser.add_argument(
        "--cohort-size",
        type=int,
        default=None,
        help="the subjects that trials draw from (default: the largest S of "
        "the preset and of --n-subjects)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    preset = "quick" if args.quick else "full"
    sizes = [2, 8] if args.quick else [2, 4, 8, 16, 32]
    n_subjects = args.n_subjects or sizes
    models = _models()
    if args.models:
        unknown = set(args.models) - {m.name for m in models}
        if unknown:
            parser.error(f"unknown models {sorted(unknown)}")
        models = [m for m in models if m.name in args.models]
    run_study(
        args.out or Path(__file__).parent / "results" / f"paper_simulation_{preset}",
        n_subjects=n_subjects,
        trials=args.trials or (2 if args.quick else 30),
        models=models,
        conditions=args.conditions or (["different"] if args.quick else CONDITIONS),
        anatomy=args.anatomy,
        seed=args.seed,
        snr=args.snr,
        cohort_seed=args.cohort_seed,
        cohort_size=args.cohort_size or max(sizes + n_subjects),
        n_jobs=args.n_jobs,
        scheduler=args.scheduler,
    )


if __name__ == "__main__":
    # run as an importable module: joblib workers then import its functions
    # (and keep the cache of _load between tasks) instead of receiving copies
    import paper_simulation

    paper_simulation.main()
