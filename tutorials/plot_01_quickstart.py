"""
.. _tut-mwe-quickstart:

Group source imaging with MWE: from evokeds to source estimates
===============================================================

The whole workflow of :func:`mne_wasserstein.apply_mwe` on a synthetic MEG
cohort: one evoked response, forward solution and noise covariance per
subject go in; a :class:`mne.SourceEstimate` per subject and their
Wasserstein barycenter on the template come out. Everything is built offline
(see :ref:`tut-synthetic-cohort`).
"""

# %%
# The data: four subjects with their own anatomy
# ----------------------------------------------
# Each subject's forward solution is computed on the template source space
# morphed onto the subject (:func:`mne_wasserstein.make_aligned_source_spaces`
# does the same for real FreeSurfer subjects), so that source ``j`` lies at
# the same place of the template for every subject. Five sources are
# simulated in the left hemisphere, half of the subjects sharing their
# locations, the others drawing theirs nearby.
import matplotlib.pyplot as plt
import numpy as np

from mne_wasserstein import apply_mwe, compute_ground_metric
from mne_wasserstein.datasets import make_cohort
from mne_wasserstein.metrics import localization_error
from mne_wasserstein.simulation import simulate_group_evokeds
from mne_wasserstein.viz import plot_group_sources

cohort = make_cohort(4, spacing="ico4", modality="meg", random_state=0)
sim = simulate_group_evokeds(cohort, n_sources=5, hemi="lh", random_state=0)
evokeds, forwards, noise_covs = sim.evokeds, sim.forwards, sim.noise_covs
print(evokeds[0])
print(forwards[0])

# %%
# Different subjects rarely have the same good channels: mark a few bad.
evokeds = [evoked.copy() for evoked in evokeds]
evokeds[1].info["bads"] = ["MEG0113", "MEG0112"]

# %%
# Solve all subjects jointly
# --------------------------
# ``src_ref`` is the common (reference) source space; here its left
# hemisphere only, where the sources are, to keep the example fast. The
# ground metric between its sources (geodesic distances along the template
# cortex, in mm) is computed once and cached on disk. ``time=None`` fits each
# subject at the peak of the global field power of its whitened data between
# ``tmin`` and ``tmax``, as in Janati et al. (2020).
src_ref = cohort.src_ref[:1]
ground_metric = compute_ground_metric(src_ref, subjects_dir=cohort.subjects_dir)
result = apply_mwe(
    evokeds,
    forwards,
    noise_covs,
    alpha=0.05,
    beta=0.03,
    src_ref=src_ref,
    subjects_dir=cohort.subjects_dir,
    ground_metric=ground_metric,
    tmin=0.0,
    tmax=0.1,
    # a loose tolerance and 3 reweighting steps keep this example fast
    solver_params=dict(tol=1e-3, reweighting_steps=3),
)
stcs, stc_bar = result
print(stcs[0])

# %%
# Diagnostics of the fit come with the result: the time fitted for each
# subject, the channels used, the noise level estimated for each subject (in
# whitened units) and the hyperparameters used.
print("times (s):", result.times)
print("channels:", [len(names) for names in result.ch_names])
print("noise levels:", np.round(result.sigma, 2))
print("outer iterations:", result.n_iter)
print({k: result.params[k] for k in ("alpha", "beta", "q", "epsilon_", "gamma_")})

# %%
# How far are the estimates from the truth?
# -----------------------------------------
# ``result.coef`` holds the sources in template order (source ``j`` of every
# subject is template source ``j``), ready for :mod:`mne_wasserstein.metrics`.
n_lh = src_ref[0]["nuse"]
error = localization_error(sim.coef[:, :n_lh], result.coef, ground_metric)
print("localisation error (mm):", np.round(error, 1))

# %%
# Look at the sources
# -------------------
# :func:`~mne_wasserstein.viz.plot_group_sources` draws every subject's
# sources on the inflated template, one colour per subject and the size
# growing with the amplitude (subjects' source spaces are brought to the
# template through their registrations), and the barycenter as a colour map
# (red positive, blue negative). With the ``viz`` extra and a display (a
# virtual one, Xvfb, when building this page) it is MNE's 3D
# :class:`~mne.viz.Brain`; without, the same content is drawn with
# matplotlib. First the truth:
brain = plot_group_sources(sim.stcs, subjects_dir=cohort.subjects_dir)

# %%
# Then the estimates and their barycenter. The barycenter is entropic,
# smooth and nowhere exactly zero: it is drawn where it exceeds a tenth of
# its peak (``threshold``); :ref:`tut-barycenter` looks at it closely.
brain = plot_group_sources(stcs, stc_bar, subjects_dir=cohort.subjects_dir)
plt.show()
