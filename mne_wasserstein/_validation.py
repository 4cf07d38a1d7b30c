"""Input validation shared by every layer of the package.

No dependency on MNE-Python: the MNE layer passes its classes (``Evoked``,
``Forward``...) to :func:`check_list` and its channel names to
:func:`check_channel_names`, and the array-only layers use
:func:`check_positive`. Each check raises a ``TypeError`` (wrong kind of
object) or a ``ValueError`` (right kind, wrong value) that names the
argument.
"""

import numpy as np


def check_positive(value, name):
    """Return ``value`` as a float after checking that it is positive and finite.

    Parameters
    ----------
    value : float
        The number to check.
    name : str
        The argument name, for the error message.

    Returns
    -------
    value : float
        ``float(value)``.
    """
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def check_list(items, name, kind, *, hint=""):
    """Return ``items`` as a list after checking that it holds only ``kind``.

    The inputs of the group functions have one object per subject: a single
    object, an empty sequence or an entry of another type is refused.

    Parameters
    ----------
    items : iterable of kind
        The objects (a list or tuple; any iterable other than a ``kind``).
    name : str
        The argument name, for the error messages (``"evokeds"``).
    kind : type
        The class of every entry (``mne.Evoked``).
    hint : str
        Appended to the message about a wrongly typed entry.

    Returns
    -------
    items : list of kind
        The entries, in order.
    """
    expected = f"{name} must be a list of {kind.__name__} (one per subject)"
    if isinstance(items, kind):
        raise TypeError(f"{expected}, got one {kind.__name__}")
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"{expected}, got {type(items).__name__}") from None
    if not items:
        raise ValueError(f"{name} is empty: {expected}")
    article = "an" if kind.__name__[0] in "AEIOU" else "a"
    for k, item in enumerate(items):
        if not isinstance(item, kind):
            raise TypeError(
                f"{name}[{k}] must be {article} {kind.__name__}, got "
                f"{type(item).__name__}{hint}"
            )
    return items


def check_channel_names(names, expected, what, subject):
    """Check that an object of a subject is on the channels of its data.

    Parameters
    ----------
    names : list of str
        The channels of the object, in its order.
    expected : list of str
        The data channels, in their order.
    what : str
        What the object is, for the error message (``"whitener"``).
    subject : str | int
        The subject, for the error message.
    """
    if list(names) != list(expected):
        differ = [
            f"{a!r} != {b!r}" for a, b in zip(names, expected, strict=False) if a != b
        ]
        raise ValueError(
            f"Subject {subject}: the {what} has {len(names)} channels, the data "
            f"{len(expected)}; they must be the same, in the same order"
            + (f" (first difference: {differ[0]})" if differ else "")
        )
