"""Shared utilities: the data folder (public), the disk cache, random states."""

import os
import uuid
import warnings
from pathlib import Path

import numpy as np
from mne import get_config
from mne.utils import check_random_state, warn

# fill_doc is imported from here by other modules of the package
from ._docs import fill_doc as fill_doc

__all__ = ["get_data_dir"]

_DATA_KEY = "MNE_WASSERSTEIN_DATA"


def get_data_dir(path=None):
    """Return the (created, writable) data folder of mne-wasserstein.

    Parameters
    ----------
    path : path-like | None
        An explicit folder. If ``None``, the ``MNE_WASSERSTEIN_DATA``
        environment variable or MNE config key is used, and else
        ``~/mne_data/mne_wasserstein``.

    Returns
    -------
    path : Path
        The folder, created if needed.
    """
    if path is None:
        path = get_config(_DATA_KEY, default=None)
    if path is None:
        path = Path("~") / "mne_data" / "mne_wasserstein"
    path = Path(path).expanduser().resolve()
    return _check_writable(path)


def _check_writable(path):
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(
            f"Cannot create the data folder {path} ({err.strerror}). Choose a "
            f"writable folder with the {_DATA_KEY} environment variable or MNE "
            f"config key, or the subjects_dir argument."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(
            f"The data folder {path} is not writable. Choose a writable folder "
            f"with the {_DATA_KEY} environment variable or MNE config key, or "
            f"the subjects_dir argument."
        )
    return path


def _seed_from(random_state):
    """Turn any random state into a non-negative integer seed (for caching)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(
        random_state, bool
    ):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return int(check_random_state(random_state).randint(2**31 - 1))


def _cached(fname, compute, write, read):
    """Read ``fname``; if missing or unreadable, compute and write it first.

    Writes are atomic (a temporary file renamed), so a reader never sees a
    half-written file from a concurrent process. A cached file that fails to
    read (truncated or corrupted by a crash, a full disk or a copy) is
    rebuilt, with a warning naming it; a reader's ``RuntimeWarning`` (MNE's
    "Invalid tag" on a truncated FIF file) counts as a failure. The object is
    always read back from disk, so that a cohort is the same whether it was
    just built or came from the cache (FIF files store forwards in single
    precision).
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
