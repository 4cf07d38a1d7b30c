"""The data folder of mne-wasserstein."""

from pathlib import Path

from mne import get_config

from ._cache import DATA_KEY, check_writable

# fill_doc is imported from here by other modules of the package
from ._docs import fill_doc as fill_doc

__all__ = ["get_data_dir"]


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
        path = get_config(DATA_KEY, default=None)
    if path is None:
        path = Path("~") / "mne_data" / "mne_wasserstein"
    path = Path(path).expanduser().resolve()
    return check_writable(path)
