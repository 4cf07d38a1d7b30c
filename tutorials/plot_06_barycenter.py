"""
.. _tut-barycenter:

The barycenter and group maps
=============================

Besides one source estimate per subject, :func:`mne_wasserstein.apply_mwe`
returns their Wasserstein barycenter on the template, ``stc_bar``: the
latent group map towards which the transport term pulls every subject. This
tutorial looks at what that object is (an entropic, unbalanced barycenter:
smooth and nowhere exactly zero), how much of its mass lies near the true
common sources, and how to turn it into a sparse group map with a stated
rule. It compares it with the Euclidean mean of the subjects' estimates.
"""

# %%
# Fit a group
# -----------
# The cohort and simulation of :ref:`tut-mwe-quickstart` (five regions in the
# left hemisphere, two of the four subjects sharing exact locations), fitted
# on both hemispheres this time, so that we can check that the barycenter
# puts no mass where there is no source.
import matplotlib.pyplot as plt
import numpy as np

from mne_wasserstein import apply_mwe, compute_ground_metric
from mne_wasserstein.datasets import make_cohort
from mne_wasserstein.simulation import simulate_group_evokeds
from mne_wasserstein.viz import plot_barycenter, plot_group_sources

cohort = make_cohort(4, spacing="ico4", modality="meg", random_state=0, verbose=False)
sim = simulate_group_evokeds(cohort, n_sources=5, random_state=0, verbose=False)
src_ref = cohort.src_ref
ground_metric = compute_ground_metric(src_ref, subjects_dir=cohort.subjects_dir)
result = apply_mwe(
    sim.evokeds,
    sim.forward,
    sim.noise_cov,
    alpha=0.05,
    beta=0.03,
    src_ref=src_ref,
    subjects_dir=cohort.subjects_dir,
    ground_metric=ground_metric,
    time=sim.peak_time,
    solver_params=dict(tol=1e-3, reweighting_steps=3),
    verbose=False,
)
stcs, stc_bar = result
bary = stc_bar.data[:, 0]  # A*m, lh then rh
n_lh = len(stc_bar.vertices[0])
print(stc_bar)
print("active sources per subject:", np.count_nonzero(result.coef, axis=1))

# %%
# What ``stc_bar`` is
# -------------------
# The barycenter minimises the average unbalanced entropic transport cost
# to the subjects' (positive and negative) source maps. Entropy spreads it
# (by about ``epsilon``, see :ref:`tut-ground-metric`) and the unbalanced
# transport never sets a source exactly to zero, so it is a smooth map
# rather than a sparse estimate. Its scale is that of the sources (A*m),
# through the mean depth weighting of the subjects.
mass = np.abs(bary)
print(f"non-zero at {np.count_nonzero(bary)} of {len(bary)} sources")
print(f"above 1 % of its peak: {np.count_nonzero(mass > 0.01 * mass.max())}")
print(f"mass in the right hemisphere: {mass[n_lh:].sum() / mass.sum():.1%}")

# %%
# Where is the mass?
# ------------------
# The fraction of the mass within a geodesic radius of the true sources of
# the subjects that share their locations (the common sources), for the
# barycenter and for the Euclidean mean of the subjects' estimates (a plain
# group average). The closer a curve rises to 1 at small radii, the
# more the map concentrates on the common sources.
common = np.flatnonzero(sim.coef[np.flatnonzero(sim.shared)[0]])
dist = ground_metric.blocks[0][np.ix_(common, np.arange(n_lh))].min(axis=0)
euclidean_mean = np.abs(result.coef.mean(axis=0))
radii = np.arange(0, 41, 2.0)


def mass_within(x, radii):
    """Fraction of the mass of x (lh then rh) within each radius of the truth."""
    return np.array([x[:n_lh][dist <= r].sum() / x.sum() for r in radii])


fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
for x, label in ((mass, "barycenter"), (euclidean_mean, "mean of the subjects")):
    curve = mass_within(x, radii)
    ax.plot(radii, curve, "o-", label=label)
    print(f"{label}: {curve[radii == 10][0]:.0%} of the mass within 10 mm")
ax.set(xlabel="distance to the common sources (mm)", ylabel="fraction of the mass")
ax.legend()

# %%
# A sparse group map
# ------------------
# To report or plot a group map, keep the largest sources of the barycenter
# that together hold a stated fraction of its mass (here 90 %), and say so.
# This is a rule on the output, not a change of the model; the raw
# barycenter stays available. How many sources it keeps, and how many of
# them are near a common source, says how spread the barycenter is.
order = np.argsort(mass)[::-1]
keep = order[: np.searchsorted(np.cumsum(mass[order]), 0.9 * mass.sum()) + 1]
group_map = np.zeros_like(bary)
group_map[keep] = bary[keep]
print(f"90 % of the mass is in {len(keep)} sources")
near = np.mean(np.isin(keep, np.flatnonzero(dist <= 10)))
print(f"of which within 10 mm of a common source: {near:.0%}")

# %%
# On the template: the raw barycenter, drawn where it exceeds a tenth of its
# peak (:func:`~mne_wasserstein.viz.plot_barycenter`), then the sparse group
# map with the subjects' estimates and the common true sources (one colour
# each). Both are MNE's 3D :class:`~mne.viz.Brain` with the
# ``viz`` extra and a display, matplotlib otherwise.
brain = plot_barycenter(stc_bar, subjects_dir=cohort.subjects_dir)
# sphinx_gallery_thumbnail_number = 2

# %%
stc_map = stc_bar.copy()
stc_map.data[:, 0] = group_map
stc_common = sim.stcs_template[np.flatnonzero(sim.shared)[0]]
brain = plot_group_sources(
    [*stcs, stc_common],
    stc_map,
    subjects_dir=cohort.subjects_dir,
    labels=[*cohort.subjects, "common true sources"],
)
plt.show()
