"""The base class of the package's estimators (solvers and the Rank-1 GLM)."""

from sklearn.base import BaseEstimator
from sklearn.utils import RegressorTags


class Estimator(BaseEstimator):
    """scikit-learn's ``BaseEstimator`` for models fitted to grouped data.

    ``get_params``, ``set_params``, :func:`sklearn.base.clone` and the repr
    come from scikit-learn: constructor parameters are stored as given and
    never modified by ``fit``, learned state ends with ``_``. The inputs are
    not sample matrices (the first axis of ``X`` is subjects, or runs of
    fMRI), so scikit-learn's input validation is off.
    """

    def __sklearn_tags__(self):
        """Describe the estimator to scikit-learn meta-estimators.

        Returns
        -------
        tags : sklearn.utils.Tags
            A regressor that needs its targets (multi-output), without
            scikit-learn's input validation.
        """
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.regressor_tags = RegressorTags()
        tags.no_validation = True
        return tags
