"""Multi-subject M/EEG source imaging with optimal transport."""

__version__ = "0.1.dev0"

# the public API is imported lazily, so that the array-only layers
# (mne_wasserstein.ot, mne_wasserstein.solvers) never import MNE-Python
_LAZY = {
    "GroundMetric": "ground_metric",
    "compute_ground_metric": "ground_metric",
    "GroupInverseResult": "inverse",
    "align_forwards": "inverse",
    "aligned_order": "inverse",
    "apply_group_inverse": "inverse",
    "apply_mwe": "inverse",
    "make_aligned_source_spaces": "inverse",
    "kantorovich_mean": "averaging",
    "wasserstein_barycenter": "averaging",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
