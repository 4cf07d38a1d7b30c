"""Entropic unbalanced optimal transport on numpy or cupy arrays.

Arrays only: this subpackage does not import MNE-Python.
"""

from ._backend import asarray, to_numpy
from ._metric import GroundMetric
from .kantorovich import KantorovichResult, kantorovich_barycenter
from .kernels import BlockDiagonalKernel, KernelOperator, SparseKernel, make_kernel
from .sinkhorn import (
    BarycenterResult,
    SinkhornResult,
    SinkhornState,
    signed_wasserstein,
    unbalanced_barycenter,
    unbalanced_sinkhorn,
)
from .virtual import VirtualPointKernel

__all__ = [
    "BarycenterResult",
    "BlockDiagonalKernel",
    "GroundMetric",
    "KantorovichResult",
    "KernelOperator",
    "SinkhornResult",
    "SinkhornState",
    "SparseKernel",
    "kantorovich_barycenter",
    "make_kernel",
    "signed_wasserstein",
    "unbalanced_barycenter",
    "unbalanced_sinkhorn",
    "VirtualPointKernel",
    "asarray",
    "to_numpy",
]
