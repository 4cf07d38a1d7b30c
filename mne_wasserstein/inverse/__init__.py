"""The MNE-facing layer: common source space, gain preparation, inverse."""
