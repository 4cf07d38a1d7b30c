"""
.. _tut-barycenter:

The barycenter and group maps
=============================

Besides one source estimate per subject, :func:`mne_wasserstein.apply_mwe`
returns a group map on the template, ``stc_bar``: the Wasserstein barycenter
of the subjects' estimates, recomputed after the fit to be sharp and exactly
sparse (:ref:`model-barycenter`). The latent barycenter of the fit, towards
which the transport term pulls every subject, is ``result.stc_bar_raw``: an
entropic, unbalanced barycenter of floored inputs, smooth and nowhere
exactly zero. This tutorial compares the two, and the Euclidean mean of the
subjects' estimates, by how much of their mass lies near the true common
sources.
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
    sim.forwards,
    sim.noise_covs,
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
stc_bar_raw = result.stc_bar_raw
n_lh = len(stc_bar.vertices[0])
print(stc_bar)
print("active sources per subject:", np.count_nonzero(result.coef, axis=1))

# %%
# Two barycenters
# ---------------
# The fit's barycenter minimises the average unbalanced entropic transport
# cost to the subjects' (positive and negative) source maps plus a uniform
# mass floor ``tau``. Entropy spreads it (by about ``epsilon``, see
# :ref:`tut-ground-metric`) and the floor gives it mass everywhere, also in
# the right hemisphere, so it is a smooth map rather than a sparse estimate.
# ``stc_bar`` is the barycenter of the final estimates without the floor,
# with half the blur, kept at the largest sources that hold 90 % of its
# mass. Both are in A*m, through the mean depth weighting of the subjects.
maps = {
    "stc_bar": np.abs(stc_bar.data[:, 0]),  # A*m, lh then rh
    "stc_bar_raw": np.abs(stc_bar_raw.data[:, 0]),
    "mean of the subjects": np.abs(result.coef.mean(axis=0)),
}
for label, mass in maps.items():
    print(
        f"{label}: non-zero at {np.count_nonzero(mass)} of {len(mass)} sources, "
        f"{np.count_nonzero(mass > 0.01 * mass.max())} above 1 % of its peak, "
        f"{mass[n_lh:].sum() / mass.sum():.1%} of its mass in the right hemisphere"
    )

# %%
# Where is the mass?
# ------------------
# The fraction of the mass within a geodesic radius of the true sources of
# the subjects that share their locations (the common sources). The closer
# a curve rises to 1 at small radii, the more the map concentrates on the
# common sources. A barycenter is faithful to its inputs: where the
# subjects' estimates hold sources far from the truth (here some in the
# right hemisphere), so does it.
common = np.flatnonzero(sim.coef[np.flatnonzero(sim.shared)[0]])
dist = ground_metric.blocks[0][np.ix_(common, np.arange(n_lh))].min(axis=0)
radii = np.arange(0, 41, 2.0)


def mass_within(x, radii):
    """Fraction of the mass of x (lh then rh) within each radius of the truth."""
    return np.array([x[:n_lh][dist <= r].sum() / x.sum() for r in radii])


fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
for label, mass in maps.items():
    curve = mass_within(mass, radii)
    ax.plot(radii, curve, "o-", label=label)
    print(f"{label}: {curve[radii == 10][0]:.0%} of the mass within 10 mm")
ax.set(xlabel="distance to the common sources (mm)", ylabel="fraction of the mass")
ax.legend()

# %%
# On the template: the raw barycenter, drawn where it exceeds a tenth of its
# peak (:func:`~mne_wasserstein.viz.plot_barycenter`), then ``stc_bar`` with
# the subjects' estimates and the common true sources (one colour each).
# Both are MNE's 3D :class:`~mne.viz.Brain` with the ``viz`` extra and a
# display, matplotlib otherwise.
brain = plot_barycenter(stc_bar_raw, subjects_dir=cohort.subjects_dir)
# sphinx_gallery_thumbnail_number = 2

# %%
stc_common = sim.stcs_template[np.flatnonzero(sim.shared)[0]]
brain = plot_group_sources(
    [*stcs, stc_common],
    stc_bar,
    subjects_dir=cohort.subjects_dir,
    labels=[*cohort.subjects, "common true sources"],
)
plt.show()
