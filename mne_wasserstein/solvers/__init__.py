"""Array-only solver core: estimators with scikit-learn conventions."""

from ._base import ConvergenceWarning
from .lasso import IndependentLasso, LassoResult, lasso_alpha_max, lasso_solver

__all__ = [
    "ConvergenceWarning",
    "IndependentLasso",
    "LassoResult",
    "lasso_alpha_max",
    "lasso_solver",
]
