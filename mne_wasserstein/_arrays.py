"""Array helpers shared by the ground metric (``ot``) and the geodesic code.

numpy only, no dependency on MNE-Python.
"""

import numpy as np


def csr_row_indices(csr):
    """Return the row of each stored entry of a CSR array.

    Parameters
    ----------
    csr : scipy.sparse.csr_array | scipy.sparse.csr_matrix
        The array.

    Returns
    -------
    rows : ndarray, shape (nnz,)
        The rows, in the dtype of ``csr.indices``.
    """
    n = csr.shape[0]
    return np.repeat(np.arange(n, dtype=csr.indices.dtype), np.diff(csr.indptr))


def median64(values):
    """Return ``np.median(values.astype(np.float64))`` without the float64 copy.

    Parameters
    ----------
    values : ndarray, shape (n,)
        The finite off-diagonal distances of a ground metric (any float dtype).

    Returns
    -------
    median : float
        Their median.
    """
    n = values.size
    if n == 0:
        raise ValueError("The ground metric has no finite off-diagonal entry")
    k = n // 2
    kth = [k - 1, k] if n % 2 == 0 else [k]
    middle = np.partition(values, kth)[kth].astype(np.float64)
    return float(middle.sum() / len(middle))
