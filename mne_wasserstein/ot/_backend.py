"""Array namespace selection, dtype policy and device transfer.

This is the only module of :mod:`mne_wasserstein.ot` that knows about numpy
and cupy as distinct libraries: every other module takes the namespace ``xp``
returned by :func:`get_namespace` and calls ``xp.exp``, ``xp.log``... on it,
and moves arrays between namespaces with :func:`asarray` and
:func:`to_numpy`. cupy is optional and imported lazily.

Other namespaces can be registered under a backend name with
:func:`register_backend`; the test suite registers a CPU stand-in for cupy
(``tests/_strict_backend.py``) whose arrays, like cupy's, refuse implicit
conversion to numpy, so that CI runs the device code path without a GPU.
"""

import numpy as np

__all__ = [
    "get_namespace",
    "to_numpy",
    "asarray",
    "backend_name",
    "check_dtype",
    "csr_matrix",
    "register_backend",
]

# backends registered with register_backend: name -> (namespace, array type)
_REGISTERED = {}


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


def _registered_namespace(x):
    """Return the registered namespace of array ``x``, or ``None``."""
    for namespace, array_type in _REGISTERED.values():
        if isinstance(x, array_type):
            return namespace
    return None


def register_backend(name, namespace, array_type):
    """Make an array namespace available as ``backend=name``.

    Parameters
    ----------
    name : str
        The backend name (not ``"numpy"`` or ``"cupy"``).
    namespace : module | object
        The functions of numpy that :mod:`mne_wasserstein.ot` calls on
        ``xp`` (``xp.exp``, ``xp.where``, ``xp.zeros``...), a ``__name__``,
        and ``csr_matrix((data, indices, indptr), shape=shape)`` for the
        sparse kernel (as :mod:`cupyx.scipy.sparse` offers).
    array_type : type
        The type of its arrays: :func:`get_namespace` recognises them, and
        :func:`to_numpy` copies them to numpy with their ``get()`` method
        (as cupy's arrays do).

    Notes
    -----
    This is how the test suite runs the array code on a CPU stand-in for
    cupy (``tests/_strict_backend.py``); it is not a way to add a supported
    backend.
    """
    if name in ("numpy", "cupy"):
        raise ValueError(f"backend {name!r} is built in")
    _REGISTERED[name] = (namespace, array_type)


def get_namespace(*arrays, backend=None):
    """Return the array namespace (``numpy`` or ``cupy``) to compute with.

    Parameters
    ----------
    *arrays : array-like
        Arrays whose type decides the namespace when ``backend`` is ``None``:
        ``cupy`` if any of them is a cupy array (or the namespace of a
        registered backend's array, see :func:`register_backend`), else
        ``numpy``.
    backend : None | "numpy" | "cupy"
        Explicit choice (or the name of a registered backend).

    Returns
    -------
    xp : module
        ``numpy`` or ``cupy``.
    """
    if backend is None:
        for a in arrays:
            if _is_cupy_array(a):
                return _import_cupy()
            namespace = _registered_namespace(a)
            if namespace is not None:
                return namespace
        return np
    if backend == "numpy":
        return np
    if backend == "cupy":
        return _import_cupy()
    if backend in _REGISTERED:
        return _REGISTERED[backend][0]
    raise ValueError(f"backend must be None, 'numpy' or 'cupy', got {backend!r}")


def backend_name(xp):
    """Return the backend name of namespace ``xp`` (for ``backend=``)."""
    if xp is np:
        return "numpy"
    if getattr(xp, "__name__", None) == "cupy":
        return "cupy"
    for name, (namespace, _) in _REGISTERED.items():
        if namespace is xp:
            return name
    raise ValueError(f"{xp!r} is not the namespace of a backend")


def to_numpy(x):
    """Return an array as a numpy array (copied from the device if needed).

    Parameters
    ----------
    x : array-like
        A numpy, cupy (or registered backend) array, or anything
        :func:`numpy.asarray` takes.

    Returns
    -------
    x : ndarray
        The array on the host.
    """
    if _is_cupy_array(x) or _registered_namespace(x) is not None:
        return x.get()
    return np.asarray(x)


def asarray(x, xp, dtype=None):
    """Move an array to an array namespace (host <-> device transfers happen here).

    Parameters
    ----------
    x : array-like
        The array (of any backend).
    xp : module
        The target namespace, e.g. ``numpy`` or ``cupy`` (see the ``xp``
        attribute of a kernel operator).
    dtype : dtype | None
        The target dtype; ``None`` keeps the dtype of ``x``.

    Returns
    -------
    x : array
        The array in namespace ``xp``.
    """
    if xp is np:
        return np.asarray(to_numpy(x), dtype=dtype)
    return xp.asarray(x, dtype=dtype)


def csr_matrix(data, indices, indptr, shape, xp):
    """Return a CSR matrix of namespace ``xp`` (``mat @ V`` for ``V`` in ``xp``).

    :mod:`scipy.sparse` on numpy, :mod:`cupyx.scipy.sparse` on cupy, the
    namespace's own ``csr_matrix`` for a registered backend; the arrays
    (numpy or ``xp``) are moved to ``xp`` first.
    """
    if xp is np:
        from scipy.sparse import csr_array as make
    elif getattr(xp, "__name__", None) == "cupy":  # pragma: no cover - needs a GPU
        from cupyx.scipy.sparse import csr_matrix as make
    else:
        make = xp.csr_matrix
    arrays = (asarray(data, xp), asarray(indices, xp), asarray(indptr, xp))
    return make(arrays, shape=shape)


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
