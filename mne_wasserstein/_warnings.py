"""Warning classes of the package (no dependency: usable by every layer)."""


class ConvergenceWarning(UserWarning):
    """A solver stopped at ``max_iter`` before reaching ``tol``."""
