"""The cohorts of the test suite, and their build in a background process.

``COHORTS`` maps each cohort fixture to its ``make_cohort`` arguments (all
with seed ``SEED``, so that they share subjects through the cache).
``prebuild`` writes one of them to the cache; ``conftest.py`` runs it in a
spawned process for the cohorts that one core builds alone (one or two
subjects, mostly a three-layer BEM), while the tests that need no cohort run
on the other core.
"""

import time

from threadpoolctl import threadpool_limits

from mne_wasserstein.datasets import make_cohort

SEED = 0

COHORTS = {
    # the acceptance cohort: four MEG subjects, ico4, one-layer BEM
    "cohort_meg": dict(n_subjects=4),
    # cohort_meg's first anatomy, three-layer BEM (the costliest item)
    "cohort_eeg": dict(n_subjects=1, modality="eeg", spacing="ico3"),
    # the same anatomy and BEM (a module fixture of test_inverse.py)
    "cohort_meeg": dict(n_subjects=1, modality="meg+eeg", spacing="ico3"),
    # the template's anatomy: identical gains
    "cohort_template": dict(n_subjects=2, spacing="ico3", anatomy="template"),
}

# built in the background, in this order (cohort_meg is built by its fixture
# with one worker per core: four subjects)
BACKGROUND = ("cohort_eeg", "cohort_meeg", "cohort_template")


def prebuild(name, subjects_dir):
    """Write cohort ``name`` to the cache; return the seconds it took."""
    start = time.perf_counter()
    kwargs = dict(COHORTS[name])
    with threadpool_limits(limits=1, user_api="blas"):
        make_cohort(
            kwargs.pop("n_subjects"),
            subjects_dir=subjects_dir,
            random_state=SEED,
            n_jobs=1,
            verbose=False,
            **kwargs,
        )
    return time.perf_counter() - start
