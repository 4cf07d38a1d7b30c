"""fMRI HRF estimation with the Rank-1 GLM, interoperable with nilearn.

nilearn is only needed for image inputs (Nifti, ``SurfaceImage``); plain
arrays ``(n_scans, n_voxels)`` work without it.
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
