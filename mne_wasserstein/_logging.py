"""Logging without importing MNE-Python.

``logger`` is the logger of :data:`mne.utils.logger` (``logging.getLogger
("mne")``), so messages follow MNE's logging configuration; the array-only
layers use it without importing MNE.
"""

import logging
from contextlib import contextmanager

logger = logging.getLogger("mne")

_LEVELS = {True: logging.INFO, False: logging.WARNING}


@contextmanager
def use_log_level(verbose):
    """Set the level of ``logger`` for a block (MNE's ``verbose`` semantics).

    Parameters
    ----------
    verbose : bool | str | int | None
        ``None`` keeps the current level; ``True``/``False`` mean
        INFO/WARNING; a level name or number is used as is.

    Yields
    ------
    None
        The level is restored when the block ends.
    """
    if verbose is None:
        yield
        return
    if isinstance(verbose, str):
        level = verbose.upper()
    else:
        level = _LEVELS.get(verbose, verbose)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
