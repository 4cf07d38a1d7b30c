"""Multi-subject M/EEG source imaging with optimal transport."""

__version__ = "0.1.dev0"

from .ground_metric import GroundMetric, compute_ground_metric  # noqa: E402

__all__ = ["GroundMetric", "compute_ground_metric"]
