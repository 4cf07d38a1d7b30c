"""
.. _tut-compare-solvers:

Comparing MWE, MTW, Group Lasso, Dirty and independent solvers
==============================================================

:func:`mne_wasserstein.apply_group_inverse` fits six models on the same
group data with one call each; only ``method`` changes:

- ``"lasso"`` and ``"relasso"``: each subject alone (MNE's MxNE and irMxNE
  with one time sample), the usual single-subject baselines;
- ``"grouplasso"``: one support shared by all subjects (an l21 penalty
  across subjects);
- ``"dirty"``: a shared part plus a subject-specific part;
- ``"mtw"`` and ``"mwe"``: each subject its own support, pulled towards a
  common Wasserstein barycenter along the cortex; MWE also estimates each
  subject's noise level.

This tutorial fits all six on one simulated cohort and scores them against
the truth. It is one draw of one simulation, to show the workflow and what
the numbers mean, not a benchmark (see :ref:`simulation_results`).
"""

# %%
# One cohort, one simulated group response
# ----------------------------------------
# The cohort and simulation of :ref:`tut-mwe-quickstart`: four MEG subjects
# (ico4 source spaces), five active regions in the left hemisphere, half of
# the subjects sharing exact locations, the others drawing theirs within
# 20 mm, SNR 4. The analysis is restricted to the left
# hemisphere (``src_ref`` holds it only), which keeps the fits fast.
import time

import matplotlib.pyplot as plt
import numpy as np

from mne_wasserstein import apply_group_inverse, compute_ground_metric
from mne_wasserstein.datasets import make_cohort
from mne_wasserstein.metrics import emd_per_source, localization_error
from mne_wasserstein.simulation import simulate_group_evokeds
from mne_wasserstein.viz import plot_group_sources

cohort = make_cohort(4, spacing="ico4", modality="meg", random_state=0, verbose=False)
sim = simulate_group_evokeds(
    cohort, n_sources=5, overlap=0.5, snr=4.0, random_state=0, verbose=False
)
src_ref = cohort.src_ref[:1]
ground_metric = compute_ground_metric(src_ref, subjects_dir=cohort.subjects_dir)
n_lh = src_ref[0]["nuse"]
truth = sim.coef[:, :n_lh]  # (n_subjects, n_sources), A*m
print(f"{len(cohort.subjects)} subjects, {n_lh} candidate sources")
print("true sources per subject:", np.count_nonzero(truth, axis=1))

# %%
# Six models, one call each
# -------------------------
# ``alpha`` is relative to each model's own ``alpha_max`` (the smallest value
# that gives no source at all), so the same number means "the same fraction
# of the way from an empty solution" for every model (see
# :ref:`tut-alpha-beta`). All models get ``alpha = 0.1`` and fit the same
# sample, the peak of the simulated response. MTW and MWE use the
# quickstart's coupling ``beta = 0.03`` and their default ``q = 0.5``
# (reweighted), with at most 3 reweighting rounds and a loose tolerance to
# keep this page fast; ``"relasso"`` is the same ``q = 0.5`` for each
# subject alone. The other solvers stop at a relative duality gap of 1e-4
# (their default, 1e-8, took 3 to 17 times longer here for the same
# localisation errors and supports within one source).
fast = dict(tol=1e-3, reweighting_steps=3)
methods = {
    "lasso": dict(solver_params=dict(tol=1e-4)),
    "relasso": dict(solver_params=dict(tol=1e-4)),
    "grouplasso": dict(solver_params=dict(tol=1e-4)),
    "dirty": dict(solver_params=dict(tol=1e-4)),
    "mtw": dict(beta=0.03, solver_params=fast),
    "mwe": dict(beta=0.03, solver_params=fast),
}
results, seconds = {}, {}
for method, kwargs in methods.items():
    start = time.perf_counter()
    results[method] = apply_group_inverse(
        sim.evokeds,
        sim.forwards,
        sim.noise_covs,
        method=method,
        alpha=0.1,
        src_ref=src_ref,
        subjects_dir=cohort.subjects_dir,
        ground_metric=ground_metric if method in ("mtw", "mwe") else None,
        time=sim.peak_time,
        verbose=False,
        **kwargs,
    )
    seconds[method] = time.perf_counter() - start

# %%
# Scores
# ------
# Per subject, :func:`~mne_wasserstein.metrics.localization_error` is the
# mean geodesic distance from each true source to the nearest estimated one
# (it ignores spurious sources); :func:`~mne_wasserstein.metrics.emd_per_source`
# is the optimal transport cost between the normalised true and estimated
# amplitude maps, divided by the number of true sources (it penalises both
# misplaced and spurious mass). Both are in mm, lower is better.
scores = {}
print(f"{'method':11s} {'active':>8s} {'loc. (mm)':>10s} {'EMD (mm)':>9s} {'s':>5s}")
for method, result in results.items():
    loc = localization_error(truth, result.coef, ground_metric)
    emd = emd_per_source(truth, result.coef, ground_metric)
    active = np.count_nonzero(result.coef, axis=1)
    scores[method] = (loc, emd)
    print(
        f"{method:11s} {active.mean():8.1f} {loc.mean():10.1f} {emd.mean():9.1f} "
        f"{seconds[method]:5.1f}"
    )

# %%
# At the same relative ``alpha``, the reweighted models (``q = 0.5``:
# ``relasso``, ``mtw``, ``mwe``) are the sparsest: they keep fewer sources
# than there are true ones and miss some regions, which the localisation
# error counts in full. A smaller ``alpha`` would recover more; choosing it
# is the subject of :ref:`tut-alpha-beta`.
#
# Per subject, the two scores of every model (one dot per subject):
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained", sharey=True)
names = list(scores)
labels = ("localisation error (mm)", "EMD per source (mm)")
for ax, k, label in zip(axes, (0, 1), labels, strict=True):
    for i, method in enumerate(names):
        values = scores[method][k]
        ax.plot(values, np.full(len(values), i), "o", color=f"C{i}", alpha=0.7)
        ax.plot([values.mean()] * 2, [i - 0.3, i + 0.3], "k-")
    ax.set(xlabel=label)
axes[0].set(yticks=range(len(names)), yticklabels=names)

# %%
# Supports
# --------
# How many subjects have a source at each place? Group Lasso forces all
# subjects to share one support (every active source is active in all four);
# the independent models know nothing of the others; MTW and MWE let each
# subject keep its own sources, and the transport term pulls them towards
# the same regions, not onto the same source. The printout counts, for each
# model, the active sources by the number of subjects in which they are
# active (exactly there); the brain below shows where they fall.
for method, result in results.items():
    shared = np.count_nonzero(result.coef, axis=0)
    counts = np.bincount(shared[shared > 0], minlength=len(cohort.subjects) + 1)
    print(f"{method:11s} sources active in 1..4 subjects: {counts[1:].tolist()}")

# %%
# On the brain
# ------------
# The first subject's true sources and the estimate of every model, on the
# inflated template (one colour per model, the size growing with the
# amplitude; :func:`~mne_wasserstein.viz.plot_group_sources` brings the
# subject's source space to the template through its registration).
brain = plot_group_sources(
    [sim.stcs[0]] + [result.stcs[0] for result in results.values()],
    subjects_dir=cohort.subjects_dir,
    labels=["truth"] + list(results),
)
# sphinx_gallery_thumbnail_number = 2

# %%
# The noise levels
# ----------------
# Only MWE estimates one noise level per subject (in whitened units: 1 when
# the noise covariance and ``nave`` describe the noise exactly); the other
# models report the root mean square of their whitened residual.
for method in ("mtw", "mwe"):
    print(f"{method}: sigma per subject {np.round(np.ravel(results[method].sigma), 2)}")
plt.show()
