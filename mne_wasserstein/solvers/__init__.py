"""Array-only solver core: estimators with scikit-learn conventions."""

from ._base import ConvergenceWarning
from ._multitask import MultiTaskResult
from .dirty import DirtyModel, dirty_alpha_max, dirty_solver
from .group_lasso import GroupLasso, group_lasso_alpha_max, group_lasso_solver
from .lasso import (
    IndependentLasso,
    LassoResult,
    lasso_alpha_max,
    lasso_solver,
    reweighted_lasso_solver,
)
from .mwe import (
    MTW,
    MWE,
    MWEResult,
    mwe_alpha_max,
    mwe_solver,
    reweighted_mwe_solver,
)
from .path import PathResult, fit_path

__all__ = [
    "ConvergenceWarning",
    "DirtyModel",
    "GroupLasso",
    "IndependentLasso",
    "LassoResult",
    "MTW",
    "MWE",
    "MWEResult",
    "MultiTaskResult",
    "PathResult",
    "dirty_alpha_max",
    "dirty_solver",
    "fit_path",
    "group_lasso_alpha_max",
    "group_lasso_solver",
    "lasso_alpha_max",
    "lasso_solver",
    "mwe_alpha_max",
    "mwe_solver",
    "reweighted_lasso_solver",
    "reweighted_mwe_solver",
]
