"""Multi-subject M/EEG source imaging with optimal transport."""

__version__ = "0.1.dev0"
