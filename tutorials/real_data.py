"""
.. _tut-real-data:

Adapting to real data: MNE's sample and somato datasets
=======================================================

The other tutorials run on synthetic subjects, built offline. With real
data, each subject brings its own FreeSurfer reconstruction, evoked
response, noise covariance and head-to-MRI transform; the reference brain
is usually ``fsaverage``. This page shows the code for two subjects of MNE's
datasets: ``sample`` (auditory responses) and ``somato`` (median-nerve
stimulation).

.. note::
   This page is **not executed** when the documentation is built: the
   datasets are downloaded by :mod:`mne.datasets` (about 2 GB), and nothing
   in this package downloads data. Run it yourself to fetch them. The two
   datasets are different experiments: putting them in one group is only a
   way of showing the code for two real subjects; a real study repeats the
   per-subject part for each of its subjects.
"""

# %%
# One folder of FreeSurfer subjects
# ---------------------------------
# :func:`mne_wasserstein.apply_mwe` reads every subject and the reference
# from one ``subjects_dir`` (their ``surf/?h.sphere.reg`` registrations align
# the source spaces). The two datasets ship their subjects in separate
# folders, so we link them into one, with ``fsaverage`` copied there by
# :func:`mne.datasets.fetch_fsaverage`.
from pathlib import Path

import mne

from mne_wasserstein import apply_mwe, make_aligned_source_spaces

sample_path = mne.datasets.sample.data_path()
somato_path = mne.datasets.somato.data_path()
subjects_dir = Path("~/mne_data/mwe_subjects").expanduser()
subjects_dir.mkdir(parents=True, exist_ok=True)
links = {
    "sample": sample_path / "subjects" / "sample",
    "01": somato_path / "derivatives" / "freesurfer" / "subjects" / "01",
}
for name, target in links.items():
    if not (subjects_dir / name).exists():
        (subjects_dir / name).symlink_to(target, target_is_directory=True)
mne.datasets.fetch_fsaverage(subjects_dir=subjects_dir)

# %%
# The common source space
# -----------------------
# The reference source space is fsaverage's ico4 (2562 sources per
# hemisphere); each subject's source space is its image on the subject's
# cortex, so that source ``j`` is at the same place of fsaverage for
# everybody. Forwards computed on these source spaces need no further
# alignment.
src_ref = mne.setup_source_space(
    "fsaverage", "ico4", subjects_dir=subjects_dir, add_dist=False
)
(src_sample,) = make_aligned_source_spaces(
    ["sample"], subject_ref="fsaverage", spacing="ico4", subjects_dir=subjects_dir
)

# %%
# Subject 1: sample (left auditory stimulation)
# ---------------------------------------------
# The evoked response, the noise covariance and the transform ship with the
# dataset; the forward uses the subject's BEM and the aligned source space.
meg_dir = sample_path / "MEG" / "sample"
evoked_sample = mne.read_evokeds(
    meg_dir / "sample_audvis-ave.fif", condition="Left Auditory", baseline=(None, 0)
).pick("meg", exclude="bads")
cov_sample = mne.read_cov(meg_dir / "sample_audvis-cov.fif")
fwd_sample = mne.make_forward_solution(
    evoked_sample.info,
    trans=meg_dir / "sample_audvis_raw-trans.fif",
    src=src_sample,
    bem=subjects_dir / "sample" / "bem" / "sample-5120-bem-sol.fif",
    meg=True,
    eeg=False,
)

# %%
# Subject 2: somato (median-nerve stimulation)
# --------------------------------------------
# The raw recording is epoched around the stimulations; the noise
# covariance is estimated on the pre-stimulus baseline. The dataset ships a
# forward solution on the subject's own source space: ``apply_mwe`` aligns
# it to the reference (:func:`mne_wasserstein.align_forwards`: each
# reference source takes the leadfield of the nearest source on the
# registered spheres), so it can be used as is.
raw = mne.io.read_raw_fif(
    somato_path / "sub-01" / "meg" / "sub-01_task-somato_meg.fif", preload=True
)
raw.filter(1.0, 40.0)
events = mne.find_events(raw, stim_channel="STI 014")
epochs = mne.Epochs(
    raw, events, event_id=1, tmin=-0.2, tmax=0.25, baseline=(None, 0), preload=True
)
evoked_somato = epochs.average().pick("meg", exclude="bads")
cov_somato = mne.compute_covariance(epochs, tmax=0.0, method="shrunk")
fwd_somato = mne.read_forward_solution(
    somato_path / "derivatives" / "sub-01" / "sub-01_task-somato-fwd.fif"
)

# %%
# Solve jointly
# -------------
# The two subjects peak at different latencies (about 90 ms for the auditory
# N100m, 30-40 ms for the somatosensory response): ``time=None`` fits each
# subject at the peak of its whitened global field power within
# ``tmin``-``tmax``. The cohort is far smaller, the data are real and
# unrelated experiments do not share sources, so expect the transport
# coupling to matter little here; with many subjects of one study, ``beta``
# (see :ref:`tut-alpha-beta`) sets how strongly they are pulled together.
result = apply_mwe(
    [evoked_sample, evoked_somato],
    [fwd_sample, fwd_somato],
    [cov_sample, cov_somato],
    alpha=0.1,
    beta=0.03,
    src_ref=src_ref,
    subjects_dir=subjects_dir,
    tmin=0.02,
    tmax=0.12,
    verbose=True,
)
stcs, stc_bar = result
print("times fitted (s):", result.times)
print("noise levels (whitened units):", result.sigma.ravel())

# %%
# Look at the results
# -------------------
# Each subject's estimate is on its own (aligned) source space; the
# barycenter is on fsaverage. With the ``viz`` extra installed:
for stc, subject in zip(stcs, ["sample", "01"], strict=True):
    stc.plot(subject=subject, subjects_dir=subjects_dir, hemi="both")
stc_bar.plot(subject="fsaverage", subjects_dir=subjects_dir, hemi="both")
