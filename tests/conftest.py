"""Shared fixtures: the template and the cohorts, built once per session.

The data folder is the package default (``~/mne_data/mne_wasserstein``) or the
``MNE_WASSERSTEIN_DATA`` environment variable, so that a developer's second
run reads everything from the cache. From an empty folder (a fresh clone) the
cohorts take most of the suite's time (``benchmarks/README.rst``, "Where the
test suite spends its time"), so:

- the cohorts share their subjects through the cache (``_cohorts.py``);
- the modules that use a cohort run after those that do not, and the cohorts
  that one core builds alone are built meanwhile in a background process, on
  the core that the array tests leave idle (they run BLAS on one thread);
- the fixtures say on the terminal what they build and when it is ready.
"""

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import matplotlib
import numba
import pytest
from _cohorts import BACKGROUND, COHORTS, SEED, prebuild
from _strict_backend import ArrayBackend
from threadpoolctl import threadpool_limits

from mne_wasserstein.datasets import make_cohort, make_template

matplotlib.use("Agg")

N_JOBS = 2  # subjects built in parallel (the test machine has 2 cores)

_background = {}  # cohort fixture name -> Future of its prebuild


def _report(config, text):
    """Write a line on the terminal, past pytest's output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # e.g. -p no:terminal
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[fixture] {text}")


@pytest.hookimpl(trylast=True)  # after the deselection by -k and -m
def pytest_collection_modifyitems(config, items):
    """Run the modules that need a cohort last; prebuild cohorts meanwhile.

    The order within each group is the usual one (modules stay whole, so
    module fixtures are set up once). At the end of the session pytest waits
    for a build in progress (a cached file is never left half-written).
    """
    late = {item.path for item in items if COHORTS.keys() & set(item.fixturenames)}
    items.sort(key=lambda item: item.path in late)  # stable
    needed = {name for item in items for name in item.fixturenames} & set(BACKGROUND)
    if not needed or config.option.collectonly:
        return
    subjects_dir = make_template(verbose=False)
    # one process, one core; spawned: no fork of pytest's threads and state
    executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    config.add_cleanup(lambda: executor.shutdown(cancel_futures=True))
    for name in BACKGROUND:
        if name in needed:
            _background[name] = executor.submit(prebuild, name, subjects_dir)
    _report(
        config,
        f"building {', '.join(_background)} in the background (data folder "
        f"{subjects_dir.parent})",
    )


def _cohort(config, name, subjects_dir):
    """The cohort of fixture ``name``, with progress on the terminal.

    A cohort prebuilt in the background is waited for, then read from the
    cache. Otherwise it is built here, ``N_JOBS`` subjects at a time: each
    step builds (or reads) the first subjects of the cohort, since a smaller
    cohort with the same seed has the first subjects of a larger one.
    """
    kwargs = dict(COHORTS[name])
    n_subjects = kwargs.pop("n_subjects")
    kwargs.update(subjects_dir=subjects_dir, random_state=SEED, verbose=False)
    start = time.perf_counter()
    future = _background.get(name)
    if future is not None and future.cancel():
        future = None  # not started yet: build it here
    what = ", ".join(
        [
            f"{n_subjects} {kwargs.get('modality', 'meg').upper()} subject(s)",
            kwargs.get("spacing", "ico4"),
            f"anatomy {kwargs.get('anatomy', 'individual')}",
        ]
    )
    if future is not None:
        if not future.done():
            _report(config, f"{name}: {what}, waiting for the background build")
        seconds = future.result()
        _report(
            config,
            f"{name}: ready (built in the background in {seconds:.0f} s, "
            f"waited {time.perf_counter() - start:.0f} s)",
        )
        return make_cohort(n_subjects, n_jobs=1, **kwargs)
    _report(config, f"{name}: {what} (minutes from an empty data folder)")
    for n in range(min(N_JOBS, n_subjects), n_subjects + N_JOBS, N_JOBS):
        n = min(n, n_subjects)
        cohort = make_cohort(n, n_jobs=min(n, N_JOBS), **kwargs)
        _report(
            config,
            f"{name}: {n} of {n_subjects} subjects ready "
            f"({time.perf_counter() - start:.0f} s)",
        )
    return cohort


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """Run BLAS and numba's parallel loops on one thread: the arrays are small.

    On a 2-core machine that also runs joblib workers or the background
    cohort build, threads oversubscribe the cores: a 306 x 306 ``eigh``
    (MNE's whitener) took 2.15 s with 2 OpenBLAS threads under load and
    0.023 s with 1; the compiled Sinkhorn loop's ``prange`` regions wait for
    the busy core in the same way (``test_recovery_on_a_grid``: about 17 s
    per case in a cold run next to the cohort build, 7 s in a warm one).
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(1)  # for this (the main) thread
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)


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
    return _cohort(pytestconfig, "cohort_meg", subjects_dir)


@pytest.fixture(scope="session")
def cohort_eeg(pytestconfig, subjects_dir):
    """One EEG subject (cohort_meg's first anatomy), ico3, 3-layer BEM."""
    return _cohort(pytestconfig, "cohort_eeg", subjects_dir)


@pytest.fixture(scope="session")
def cohort_template(pytestconfig, subjects_dir):
    """Two MEG subjects with the template's anatomy (ico3: fast forwards)."""
    return _cohort(pytestconfig, "cohort_template", subjects_dir)


@pytest.fixture(params=["numpy", "strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """The array backends of ``mne_wasserstein.ot`` (as POT's ``nx`` fixture).

    numpy; ``"strict"``, a CPU stand-in for cupy whose arrays refuse implicit
    conversion to numpy (``_strict_backend.py``), so that CI catches device
    transfer bugs without a GPU; cupy, skipped without cupy and a CUDA device.
    """
    return ArrayBackend(request.param)
