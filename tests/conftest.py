"""Shared fixtures: cohorts are built once per session and cached on disk.

The data folder is the package default (``~/mne_data/mne_wasserstein``) or the
``MNE_WASSERSTEIN_DATA`` environment variable, so that a developer's second
run reads everything from the cache.
"""

import matplotlib
import pytest
from _strict_backend import ArrayBackend
from threadpoolctl import threadpool_limits

from mne_wasserstein.datasets import make_cohort, make_template

matplotlib.use("Agg")

SEED = 0  # cohorts of the test suite share their subjects through the cache


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """Run BLAS on one thread: the tests' arrays are small.

    On a 2-core machine that also runs joblib workers, OpenBLAS threads
    oversubscribe the cores: a 306 x 306 ``eigh`` (MNE's whitener) took 2.15 s
    with 2 threads under load and 0.023 s with 1.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def subjects_dir():
    return make_template()


@pytest.fixture(scope="session")
def cohort_meg(subjects_dir):
    """Four MEG subjects, ico4, one-layer BEM (the acceptance cohort)."""
    return make_cohort(4, subjects_dir=subjects_dir, random_state=SEED, n_jobs=2)


@pytest.fixture(scope="session")
def cohort_eeg(subjects_dir):
    """Two EEG subjects (the anatomy of cohort_meg's first two), 3-layer BEM."""
    return make_cohort(
        2,
        modality="eeg",
        spacing="ico3",
        subjects_dir=subjects_dir,
        random_state=SEED,
        n_jobs=2,
    )


@pytest.fixture(params=["numpy", "strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """The array backends of ``mne_wasserstein.ot`` (as POT's ``nx`` fixture).

    numpy; ``"strict"``, a CPU stand-in for cupy whose arrays refuse implicit
    conversion to numpy (``_strict_backend.py``), so that CI catches device
    transfer bugs without a GPU; cupy, skipped without cupy and a CUDA device.
    """
    return ArrayBackend(request.param)
