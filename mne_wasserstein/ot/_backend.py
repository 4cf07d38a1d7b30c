"""Array namespace selection, dtype policy and device transfer.

This is the only module of :mod:`mne_wasserstein.ot` that knows about numpy
and cupy as distinct libraries: every other module takes the namespace ``xp``
returned by :func:`get_namespace` and calls ``xp.exp``, ``xp.log``... on it.
cupy is optional and imported lazily.
"""

import numpy as np

__all__ = ["get_namespace", "to_numpy", "asarray", "check_dtype"]

_BACKENDS = ("numpy", "cupy")


def _import_cupy():
    try:
        import cupy
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise ImportError(
            "backend='cupy' needs cupy and a CUDA device; install cupy "
            "(pip install mne-wasserstein[gpu])"
        ) from err
    return cupy


def _is_cupy_array(x):
    return type(x).__module__.split(".")[0] == "cupy"


def get_namespace(*arrays, backend=None):
    """Return the array namespace (``numpy`` or ``cupy``) to compute with.

    Parameters
    ----------
    *arrays : array-like
        Arrays whose type decides the namespace when ``backend`` is ``None``:
        ``cupy`` if any of them is a cupy array, else ``numpy``.
    backend : None | "numpy" | "cupy"
        Explicit choice.

    Returns
    -------
    xp : module
        ``numpy`` or ``cupy``.
    """
    if backend is None:
        if any(_is_cupy_array(a) for a in arrays):
            return _import_cupy()
        return np
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be None, 'numpy' or 'cupy', got {backend!r}")
    if backend == "cupy":
        return _import_cupy()
    return np


def to_numpy(x):
    """Return ``x`` as a numpy array (copied from the device if needed)."""
    if _is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def asarray(x, xp, dtype=None):
    """Move ``x`` to namespace ``xp`` (host <-> device transfer happens here)."""
    if xp is np:
        return np.asarray(to_numpy(x), dtype=dtype)
    return xp.asarray(x, dtype=dtype)


def check_dtype(dtype, *arrays):
    """Return the floating dtype to compute in: float64 or float32.

    ``None`` keeps float32 when every given array is float32, else float64.
    """
    if dtype is None:
        if arrays and all(getattr(a, "dtype", None) == np.float32 for a in arrays):
            return np.dtype(np.float32)
        return np.dtype(np.float64)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype
