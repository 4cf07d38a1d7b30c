"""Shared fixtures: the template and the cohorts, built once per session.

The data folder is the package default (``~/mne_data/mne_wasserstein``) or the
``MNE_WASSERSTEIN_DATA`` environment variable, so that a developer's second
run reads everything from the cache. From an empty folder (a fresh clone) the
cohorts take most of the suite's time (``benchmarks/README.rst``, "Where the
test suite spends its time"): their fixtures say on the terminal what they
build, subject by subject.

The cohorts share their subjects through the cache: ``cohort_eeg`` (and
``cohort_meeg`` of ``test_inverse.py``, with the same three-layer BEM) has
``cohort_meg``'s first anatomy. One EEG subject is enough for the tests that
use it, and saves the costliest item of a cold run: a three-layer BEM
(``benchmarks/bench_cohort.py --stages``).
"""

import time

import matplotlib
import pytest
from _strict_backend import ArrayBackend
from threadpoolctl import threadpool_limits

from mne_wasserstein.datasets import make_cohort, make_template

matplotlib.use("Agg")

SEED = 0  # cohorts of the test suite share their subjects through the cache
N_JOBS = 2  # subjects built in parallel (the test machine has 2 cores)


def _report(config, text):
    """Write a line on the terminal, past pytest's output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # e.g. -p no:terminal
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[fixture] {text}")


def _cohort(config, name, n_subjects, **kwargs):
    """``make_cohort`` with progress: ``N_JOBS`` subjects at a time.

    Each step builds (or reads from the cache) the first subjects of the
    cohort; the subjects of a smaller cohort with the same seed are those of
    the larger one, so the steps add only the reading of the cached subjects
    (well under a second each).
    """
    kwargs = dict(random_state=SEED, verbose=False, **kwargs)
    start = time.perf_counter()
    what = ", ".join(
        [
            f"{n_subjects} {kwargs.get('modality', 'meg').upper()} subject(s)",
            kwargs.get("spacing", "ico4"),
            f"anatomy {kwargs.get('anatomy', 'individual')}",
        ]
    )
    _report(config, f"{name}: {what} (minutes from an empty data folder)")
    for n in range(min(N_JOBS, n_subjects), n_subjects + N_JOBS, N_JOBS):
        n = min(n, n_subjects)
        cohort = make_cohort(n, n_jobs=min(n, N_JOBS), **kwargs)
        _report(
            config,
            f"{name}: {n} of {n_subjects} subjects ready "
            f"({time.perf_counter() - start:.0f} s)",
        )
        if n == n_subjects:
            return cohort


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
def subjects_dir(pytestconfig):
    """The template subject ``fsaverage5`` in the data folder."""
    start = time.perf_counter()
    folder = make_template(verbose=False)
    _report(
        pytestconfig,
        f"subjects_dir: template in {folder} ({time.perf_counter() - start:.0f} s)",
    )
    return folder


@pytest.fixture(scope="session")
def cohort_meg(pytestconfig, subjects_dir):
    """Four MEG subjects, ico4, one-layer BEM (the acceptance cohort)."""
    return _cohort(pytestconfig, "cohort_meg", 4, subjects_dir=subjects_dir)


@pytest.fixture(scope="session")
def cohort_eeg(pytestconfig, subjects_dir):
    """One EEG subject (cohort_meg's first anatomy), ico3, 3-layer BEM."""
    return _cohort(
        pytestconfig,
        "cohort_eeg",
        1,
        modality="eeg",
        spacing="ico3",
        subjects_dir=subjects_dir,
    )


@pytest.fixture(scope="session")
def cohort_template(pytestconfig, subjects_dir):
    """Two MEG subjects with the template's anatomy (ico3: fast forwards)."""
    return _cohort(
        pytestconfig,
        "cohort_template",
        2,
        spacing="ico3",
        anatomy="template",
        subjects_dir=subjects_dir,
    )


@pytest.fixture(params=["numpy", "strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """The array backends of ``mne_wasserstein.ot`` (as POT's ``nx`` fixture).

    numpy; ``"strict"``, a CPU stand-in for cupy whose arrays refuse implicit
    conversion to numpy (``_strict_backend.py``), so that CI catches device
    transfer bugs without a GPU; cupy, skipped without cupy and a CUDA device.
    """
    return ArrayBackend(request.param)
