"""
.. _tut-synthetic-cohort:

A synthetic cohort and the MWE simulation protocol
==================================================

mne-wasserstein ships no data and downloads none: it builds a template brain
and synthetic subjects from files inside the ``mne`` and ``nilearn`` wheels.
This tutorial builds a small MEG cohort, looks at how subjects differ, and
simulates a group response with the protocol of Janati et al. (2020).
"""

# %%
# Build the cohort
# ----------------
# Each subject has its own cortical mesh (vertex count and ordering), its own
# anatomy relative to its ``sphere.reg`` registration to the template (a
# registration residual and its own folding depth: ``anatomy="individual"``,
# the default), a head-size factor and a head position in the MEG helmet.
# Forward solutions are computed by :func:`mne.make_forward_solution` on the
# template source space morphed onto each subject.
import matplotlib.pyplot as plt
import numpy as np

from mne_wasserstein.datasets import leadfield_diversity, make_cohort
from mne_wasserstein.simulation import simulate_group_evokeds
from mne_wasserstein.viz import plot_group_sources

cohort = make_cohort(4, spacing="ico4", modality="meg", random_state=0, n_jobs=2)
print(cohort)
print("head-size factors:", np.round(cohort.scale, 3))

# %%
# How different are the subjects?
# --------------------------------
# :func:`~mne_wasserstein.datasets.leadfield_diversity` compares the
# subjects' whitened gain columns of each source: two subjects see the same
# source less alike (absolute cosine) than one subject sees two neighbouring
# sources about 4 mm apart, and their source normals differ by tens of
# degrees. ``anatomy="template"`` gives every subject the same gains (the
# "same leadfield" condition of the paper), ``anatomy="exaggerated"`` or a
# number above 1 more diversity (see :func:`~mne_wasserstein.datasets.make_cohort`).
diversity = leadfield_diversity(cohort)
print(diversity.to_frame().round(3))

# %%
# Simulate a group response
# -------------------------
# Five regions in the left hemisphere, one source per region and subject,
# half of the subjects sharing exactly the same locations, SNR 4.
sim = simulate_group_evokeds(cohort, n_sources=5, overlap=0.5, snr=4.0, random_state=0)
print(f"measured SNR {sim.snr:.2f}; subjects sharing locations: {sim.shared}")

# %%
# The sensor data of the first subject at the peak
sim.evokeds[0].plot_topomap(times=[sim.peak_time], ch_type="mag")

# %%
# The true sources of all subjects on the template: each subject's source
# space is brought to the template through its ``sphere.reg`` (one colour
# per subject, size by amplitude; see :ref:`tut-mwe-quickstart`)
brain = plot_group_sources(sim.stcs, subjects_dir=cohort.subjects_dir)
plt.show()
