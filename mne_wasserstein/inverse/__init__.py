"""The MNE-facing layer: common source space, gain preparation, inverse."""

from ._align import align_forwards, aligned_order, make_aligned_source_spaces
from ._apply import GroupInverseResult, apply_group_inverse, apply_mwe

__all__ = [
    "GroupInverseResult",
    "align_forwards",
    "aligned_order",
    "apply_group_inverse",
    "apply_mwe",
    "make_aligned_source_spaces",
]
