"""A CPU stand-in for cupy: numpy arrays that refuse implicit conversion.

cupy arrays live on the GPU: ``np.asarray(x)``, ``np.array(x)`` or writing
one into a numpy array raises ``TypeError`` ("Implicit conversion to a NumPy
array is not allowed"), arithmetic between a cupy and a numpy array raises
``TypeError`` ("Unsupported type"), and the only way back to numpy is
``x.get()`` (which ``mne_wasserstein.ot._backend.to_numpy`` calls). CI has no
GPU, so :class:`StrictArray` reproduces these rules around a numpy array, and
this module is its namespace (``xp``): the functions of numpy that the
package calls on ``xp``, ``csr_matrix`` for the sparse kernel (as
:mod:`cupyx.scipy.sparse` offers). Like cupy, it accepts numpy arrays where
cupy copies them to the device (``asarray``, index arrays, values assigned
into an array) and dispatches numpy functions called on its arrays to its
own (``__array_ufunc__``, ``__array_function__``); anything else fails.

:func:`register` makes it ``backend="strict"`` (see
``mne_wasserstein.ot._backend.register_backend``); :class:`ArrayBackend` is
what the ``backend`` fixture of ``conftest.py`` gives the tests.
"""

import sys

import numpy as np
import pytest
from scipy import sparse

from mne_wasserstein.ot._backend import register_backend

_MESSAGE = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)
_SCALARS = (bool, int, float, complex, np.generic)


def _unwrap(x):
    """The numpy data of an operand: a StrictArray or a scalar (as cupy)."""
    if isinstance(x, StrictArray):
        return x._data
    if isinstance(x, _SCALARS):
        return x
    raise TypeError(f"Unsupported type {type(x)}")


def _unwrap_index(key):
    """An index: device arrays, numpy index arrays (copied, as cupy does)."""
    if isinstance(key, tuple):
        return tuple(_unwrap_index(k) for k in key)
    if isinstance(key, StrictArray):
        return key._data
    return key


def _wrap(x):
    """Results stay on the "device": arrays and scalars become StrictArray."""
    if isinstance(x, tuple):
        return tuple(_wrap(a) for a in x)
    return StrictArray(np.asarray(x))


def _unwrap_arg(x):
    """A function's argument: device arrays unwrapped, numpy arrays refused."""
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    return x._data if isinstance(x, StrictArray) else x


def _elementwise(func):
    def apply(*args, **kwargs):
        return _wrap(func(*map(_unwrap_arg, args), **kwargs))

    apply.__name__ = func.__name__
    return apply


def _binary(func, reflected=False):
    def method(self, other):
        if reflected:
            return _wrap(func(_unwrap(other), self._data))
        return _wrap(func(self._data, _unwrap(other)))

    return method


def _reduction(name):
    def method(self, axis=None, **kwargs):
        return _wrap(getattr(self._data, name)(axis=axis, **kwargs))

    method.__name__ = name
    return method


class StrictArray:
    """A numpy array behind cupy's rules (see the module docstring)."""

    __hash__ = None

    def __init__(self, data):
        if not isinstance(data, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy array, got {type(data)}")
        self._data = data

    # leaving the "device": explicit only
    def __array__(self, *args, **kwargs):
        raise TypeError(_MESSAGE)

    def get(self):
        """Return a numpy copy (``cupy.ndarray.get``)."""
        return self._data.copy()

    def __repr__(self):
        return f"StrictArray({self._data!r})"

    # numpy functions called on device arrays run on the device (as cupy)
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or "out" in kwargs:
            return NotImplemented
        return _wrap(ufunc(*map(_unwrap, inputs), **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        own = getattr(sys.modules[__name__], func.__name__, None)
        if own is None or not callable(own) or isinstance(own, type):
            return NotImplemented
        return own(*args, **kwargs)

    # attributes
    shape = property(lambda self: self._data.shape)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    dtype = property(lambda self: self._data.dtype)
    T = property(lambda self: StrictArray(self._data.T))

    def __len__(self):
        return len(self._data)

    def __iter__(self):
        return (_wrap(x) for x in self._data)

    # 0-d arrays to Python scalars (cupy synchronises and copies)
    def __bool__(self):
        return bool(self._data)

    def __float__(self):
        return float(self._data)

    def __int__(self):
        return int(self._data)

    def item(self):
        return self._data.item()

    # indexing
    def __getitem__(self, key):
        return _wrap(self._data[_unwrap_index(key)])

    def __setitem__(self, key, value):
        if not isinstance(value, np.ndarray):  # numpy values: a host copy
            value = _unwrap(value)
        self._data[_unwrap_index(key)] = value

    # methods
    def astype(self, dtype, copy=True):
        return StrictArray(self._data.astype(dtype, copy=copy))

    def reshape(self, *shape):
        return StrictArray(self._data.reshape(*shape))

    def transpose(self, *axes):
        return StrictArray(self._data.transpose(*axes))

    def copy(self):
        return StrictArray(self._data.copy())

    def ravel(self):
        return StrictArray(self._data.ravel())

    sum = _reduction("sum")
    max = _reduction("max")
    min = _reduction("min")
    mean = _reduction("mean")
    any = _reduction("any")
    all = _reduction("all")
    argmax = _reduction("argmax")

    # operators
    __add__, __radd__ = _binary(np.add), _binary(np.add, True)
    __sub__, __rsub__ = _binary(np.subtract), _binary(np.subtract, True)
    __mul__, __rmul__ = _binary(np.multiply), _binary(np.multiply, True)
    __truediv__ = _binary(np.true_divide)
    __rtruediv__ = _binary(np.true_divide, True)
    __pow__, __rpow__ = _binary(np.power), _binary(np.power, True)
    __matmul__, __rmatmul__ = _binary(np.matmul), _binary(np.matmul, True)
    __and__, __rand__ = _binary(np.bitwise_and), _binary(np.bitwise_and, True)
    __or__, __ror__ = _binary(np.bitwise_or), _binary(np.bitwise_or, True)
    __lt__, __le__ = _binary(np.less), _binary(np.less_equal)
    __gt__, __ge__ = _binary(np.greater), _binary(np.greater_equal)
    __eq__, __ne__ = _binary(np.equal), _binary(np.not_equal)

    def __iadd__(self, other):
        self._data += _unwrap(other)
        return self

    def __neg__(self):
        return StrictArray(-self._data)

    def __abs__(self):
        return StrictArray(np.abs(self._data))

    def __invert__(self):
        return StrictArray(~self._data)


# --------------------------------------------------------------------------
# the namespace: what mne_wasserstein calls on xp

# elementwise: device arrays and scalars only (a numpy array is refused)
exp = _elementwise(np.exp)
expm1 = _elementwise(np.expm1)
log = _elementwise(np.log)
abs = _elementwise(np.abs)
maximum = _elementwise(np.maximum)
clip = _elementwise(np.clip)
logaddexp = _elementwise(np.logaddexp)
isfinite = _elementwise(np.isfinite)
isnan = _elementwise(np.isnan)
where = _elementwise(np.where)
nonzero = _elementwise(np.nonzero)
flatnonzero = _elementwise(np.flatnonzero)
ix_ = _elementwise(np.ix_)
ascontiguousarray = _elementwise(np.ascontiguousarray)
expand_dims = _elementwise(np.expand_dims)
broadcast_to = _elementwise(np.broadcast_to)
repeat = _elementwise(np.repeat)
take_along_axis = _elementwise(np.take_along_axis)
tensordot = _elementwise(np.tensordot)
sum = _elementwise(np.sum)


def stack(arrays, axis=0):
    return _wrap(np.stack([_unwrap_arg(a) for a in arrays], axis=axis))


def concatenate(arrays, axis=0):
    return _wrap(np.concatenate([_unwrap_arg(a) for a in arrays], axis=axis))


# creation
def _creation(func):
    def create(*args, **kwargs):
        return StrictArray(func(*args, **kwargs))

    create.__name__ = func.__name__
    return create


zeros = _creation(np.zeros)
ones = _creation(np.ones)
empty = _creation(np.empty)
full = _creation(np.full)
arange = _creation(np.arange)


def asarray(x, dtype=None):
    """Host -> device: numpy data are copied (``cupy.asarray``)."""
    if isinstance(x, StrictArray):
        return x if dtype is None else x.astype(dtype, copy=False)
    return StrictArray(np.array(x, dtype=dtype, copy=True))


def array(x, dtype=None):
    """A copy on the device (``cupy.array``)."""
    return StrictArray(np.array(_unwrap_index(x), dtype=dtype, copy=True))


class _CSR:
    """A CSR matrix whose products take and give device arrays."""

    def __init__(self, mat):
        self._mat = mat
        self.shape, self.nnz = mat.shape, mat.nnz

    def __matmul__(self, other):
        if not isinstance(other, StrictArray):
            raise TypeError(f"Unsupported type {type(other)}")
        return StrictArray(np.asarray(self._mat @ other._data))


def csr_matrix(arg, shape):
    """``cupyx.scipy.sparse.csr_matrix((data, indices, indptr), shape=...)``."""
    data, indices, indptr = (_unwrap(a) for a in arg)
    return _CSR(sparse.csr_array((data, indices, indptr), shape=shape))


def register():
    """Make this namespace ``backend="strict"`` of ``mne_wasserstein.ot``."""
    register_backend("strict", sys.modules[__name__], StrictArray)


# --------------------------------------------------------------------------
# the test suite's view of a backend


def _has_gpu():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


class ArrayBackend:
    """A backend of the tests: its name, namespace and conversions.

    ``asarray`` moves a numpy input to the backend; ``to_numpy`` checks that
    an output lives on the backend (so that a silent fallback to numpy
    fails) and copies it back for comparisons with numpy references.
    """

    def __init__(self, name):
        self.name = name
        if name == "numpy":
            self.xp, self.array_type = np, np.ndarray
        elif name == "strict":
            register()
            self.xp, self.array_type = sys.modules[__name__], StrictArray
        elif name == "cupy":
            if not _has_gpu():
                pytest.skip("needs cupy and a CUDA device")
            import cupy

            self.xp, self.array_type = cupy, cupy.ndarray
        else:
            raise ValueError(f"unknown backend {name!r}")

    def __repr__(self):
        return self.name

    def asarray(self, x):
        return self.xp.asarray(x)

    def to_numpy(self, x):
        assert isinstance(x, self.array_type), f"{type(x)} is not a {self.name} array"
        return x.get() if self.name != "numpy" else x
