"""fMRI HRF estimation with the Rank-1 GLM, interoperable with nilearn.

nilearn is imported only where it is needed: to read image inputs (Nifti,
``SurfaceImage``; plain arrays ``(n_scans, n_voxels)`` do not use it) and
contrast expressions. MNE-Python is imported only by ``fit`` (for its
progress bar).
"""

from ._glm import RankOneGLM
from ._maps import hrf_peak_latency, hrf_width, make_hrf_model
from ._solver import RankOneResult, rank_one_solver

__all__ = [
    "RankOneGLM",
    "RankOneResult",
    "hrf_peak_latency",
    "hrf_width",
    "make_hrf_model",
    "rank_one_solver",
]
