"""The disk cache of templates, cohorts and ground metrics, and its seeds."""

import os
import uuid
import warnings
from pathlib import Path

import numpy as np
from mne.utils import check_random_state, warn

DATA_KEY = "MNE_WASSERSTEIN_DATA"


def check_writable(path):
    """Create a folder of the cache if needed; check that it is writable.

    Parameters
    ----------
    path : path-like
        The folder.

    Returns
    -------
    path : Path
        The folder.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(
            f"Cannot create the data folder {path} ({err.strerror}). Choose a "
            f"writable folder with the {DATA_KEY} environment variable or MNE "
            f"config key, or the subjects_dir argument."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(
            f"The data folder {path} is not writable. Choose a writable folder "
            f"with the {DATA_KEY} environment variable or MNE config key, or "
            f"the subjects_dir argument."
        )
    return path


def seed_from(random_state):
    """Turn any random state into a non-negative integer seed (a cache key).

    Parameters
    ----------
    random_state : None | int | numpy.random.Generator | numpy.random.RandomState
        The random state.

    Returns
    -------
    seed : int
        ``random_state`` itself if it is an integer, else drawn from it.
    """
    if isinstance(random_state, (int, np.integer)) and not isinstance(
        random_state, bool
    ):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return int(check_random_state(random_state).randint(2**31 - 1))


def cached(fname, compute, write, read):
    """Read ``fname``; if missing or unreadable, compute and write it first.

    Writes are atomic (a temporary file renamed), so a reader never sees a
    half-written file from a concurrent process. A cached file that fails to
    read (truncated or corrupted by a crash, a full disk or a copy) is
    rebuilt, with a warning naming it; a reader's ``RuntimeWarning`` (MNE's
    "Invalid tag" on a truncated FIF file) counts as a failure. The object is
    always read back from disk, so that a cohort is the same whether it was
    just built or came from the cache (FIF files store forwards in single
    precision).

    Parameters
    ----------
    fname : path-like
        The cached file.
    compute : callable
        ``compute()`` returns the object.
    write : callable
        ``write(fname, obj)`` writes it.
    read : callable
        ``read(fname)`` reads it back.

    Returns
    -------
    obj : object
        The object, as read from ``fname``.
    """
    fname = Path(fname)
    if fname.is_file():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                return read(fname)
        except Exception as err:  # any failure to read means a broken cache
            warn(
                f"The cached file {fname} could not be read "
                f"({type(err).__name__}: {err}); rebuilding it."
            )
    obj = compute()
    fname.parent.mkdir(parents=True, exist_ok=True)
    tmp = fname.with_name(f"tmp{uuid.uuid4().hex[:8]}-{fname.name}")
    write(tmp, obj)
    tmp.replace(fname)
    return read(fname)
