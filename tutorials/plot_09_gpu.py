"""
.. _tut-gpu:

Running the transport on a GPU
==============================

MWE alternates coordinate descent over each subject's sources (on the CPU,
compiled with numba) and a batched Sinkhorn barycenter over all subjects
and both signs. The Sinkhorn part is array code written once for numpy and
cupy (:mod:`mne_wasserstein.ot`): given cupy arrays or ``backend="cupy"``,
it runs on a CUDA device, and only the transport scalings and marginals
move between host and device (in one module,
``mne_wasserstein/ot/_backend.py``). This page runs the GPU path when cupy
and a device are present (``pip install mne-wasserstein[gpu]``) and says
what it would do otherwise; the documentation is built without a GPU, so
the output below comes from the CPU.
"""

# %%
# Is there a GPU?
# ---------------
import time

import numpy as np

from mne_wasserstein import compute_ground_metric
from mne_wasserstein.datasets import make_cohort
from mne_wasserstein.ot import unbalanced_barycenter


def gpu_available():
    """Whether cupy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no cupy, no driver or no device
        return False


use_gpu = gpu_available()
backends = ["numpy", "cupy"] if use_gpu else ["numpy"]
print("GPU available:", use_gpu)
if not use_gpu:
    print("Without cupy and a CUDA device, only the numpy backend runs below.")

# %%
# The same barycenter on each backend
# -----------------------------------
# The barycenter of four source maps on both hemispheres of the template
# (ico4, 5124 sources; the kernel is stored per hemisphere), the operation
# at the heart of every MWE iteration. Inputs are numpy arrays; with
# ``backend="cupy"`` they are moved to the device once, and the result comes
# back as cupy arrays (``.get()`` brings them to the host).
cohort = make_cohort(4, spacing="ico4", modality="meg", random_state=0, verbose=False)
gm = compute_ground_metric(cohort.src_ref, subjects_dir=cohort.subjects_dir)
rng = np.random.default_rng(0)
A = np.zeros((gm.n_sources, 4))
for s in range(4):
    A[rng.choice(gm.n_sources, 5, replace=False), s] = rng.uniform(1, 2, 5)
params = dict(epsilon=2.0, gamma=gm.median(), tol=1e-6)

results = {}
for backend in backends:
    start = time.perf_counter()
    res = unbalanced_barycenter(A, gm, backend=backend, **params)
    bar = res.barycenter
    results[backend] = bar.get() if backend == "cupy" else bar
    elapsed = time.perf_counter() - start
    print(f"{backend}: {elapsed:.2f} s, {res.state.n_iter} iterations")
if use_gpu:
    diff = np.abs(results["cupy"] - results["numpy"]).max() / results["numpy"].max()
    print(f"largest difference between the backends (relative): {diff:.1e}")

# %%
# MWE on a GPU
# ------------
# For a whole fit, the estimators and :func:`mne_wasserstein.apply_mwe` take
# ``backend``: the coordinate descent stays on the CPU and the Sinkhorn
# steps run on the device. The call is the quickstart's with one more solver
# parameter:
#
# .. code-block:: python
#
#     result = apply_mwe(
#         evokeds, forwards, noise_covs,
#         src_ref=src_ref, subjects_dir=subjects_dir,
#         solver_params=dict(backend="cupy"),
#     )
#
# On arrays, ``MWE(ground_metric, backend="cupy").fit(X, Y)`` does the same.
# A GPU pays off when the transport dominates: many sources (ico5 and
# beyond) or many subjects; with a few thousand sources the numba-compiled
# CPU path is already fast. The test suite checks that both backends agree
# (``pytest -m gpu`` on a machine with a device).
from mne_wasserstein.solvers import MWE

estimator = MWE(gm, backend="cupy" if use_gpu else "numpy")
print(estimator)
