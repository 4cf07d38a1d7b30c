"""
.. _tut-ground-metric:

The ground metric and epsilon: what transport sees on the cortex
================================================================

Optimal transport compares source maps by how far mass must travel along
the cortex. Two numbers set what "far" means: the ground metric ``M`` (the
geodesic distance between sources, in mm) and the entropic regularisation
``epsilon`` (mm), which blurs transport through the Gibbs kernel
``K = exp(-M / epsilon)``. This tutorial computes the metric on the template,
compares it with straight-line distances, and shows the kernel on the
cortex for a few values of ``epsilon``, with its effect on a barycenter.
"""

# %%
# Geodesic distances on the template
# ----------------------------------
# :func:`mne_wasserstein.compute_ground_metric` runs Dijkstra along the edges
# of the template's white surface (10242 vertices per hemisphere) between
# the sources of a source space (here the ico4 left hemisphere, 2562
# sources), and caches the result on disk: the second call is a file read.
# There is no transport between hemispheres (``np.inf``), so the metric is
# stored as one block per hemisphere.
import matplotlib.pyplot as plt
import mne
import numpy as np

from mne_wasserstein import compute_ground_metric
from mne_wasserstein.datasets import make_cohort
from mne_wasserstein.ot import unbalanced_barycenter

cohort = make_cohort(4, spacing="ico4", modality="meg", random_state=0, verbose=False)
src = cohort.src_ref[:1]
gm = compute_ground_metric(src, subjects_dir=cohort.subjects_dir)
M = gm.blocks[0].astype(float)
print(gm)
nearest = np.where(np.eye(len(M), dtype=bool), np.inf, M).min(axis=1)
spacing = np.median(nearest)
print(f"median distance {gm.median():.1f} mm, largest {gm.max():.1f} mm")
print(f"source spacing (median nearest-neighbour distance): {spacing:.2f} mm")

# %%
# Geodesic and straight-line distances
# ------------------------------------
# Along the folded cortex two sources on the opposite banks of a sulcus are
# close in space but far apart along the surface. The ratio of the geodesic
# to the Euclidean distance between the sources' positions on the white
# surface shows how often that happens.
rr = src[0]["rr"][src[0]["vertno"]] * 1e3  # m -> mm
euclid = np.linalg.norm(rr[:, None] - rr[None], axis=-1)
pairs = np.triu_indices(len(M), 1)
close = euclid[pairs] < 20.0
ratio = M[pairs][close] / euclid[pairs][close]
print(
    f"pairs closer than 20 mm in space: geodesic / Euclidean median "
    f"{np.median(ratio):.2f}, above 2 for {np.mean(ratio > 2):.1%}"
)
fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
ax.hist(ratio, bins=np.linspace(1, 6, 51))
ax.set(xlabel="geodesic / Euclidean distance", ylabel="pairs < 20 mm apart")

# %%
# The Gibbs kernel for a few epsilons
# -----------------------------------
# ``K[i, j] = exp(-M[i, j] / epsilon)`` is the weight with which mass at
# source ``i`` can reach source ``j`` in one entropic transport step; it
# falls below 1e-3 beyond ``7 epsilon`` mm. MWE's default ``epsilon`` is the
# source spacing (one neighbour of blur); the simulation study of this
# package uses 1 mm; the paper's ``10 / p`` times the median distance is
# about 0.45 mm at this resolution. Most entries are negligible at these
# scales, which is why the kernel is sparse and cheap to apply.
epsilons = [1.0, spacing, 10.0]
for eps in epsilons:
    density = np.mean(np.exp(-M / eps) > 1e-8)
    print(f"epsilon {eps:5.2f} mm: {density:6.2%} of the entries above 1e-8")

# %%
# On the cortex: one row of the kernel, ``K[j]`` for a source ``j`` on the
# lateral surface, drawn on the sources within 40 mm of it (the inflated
# template seen along the region's normal: its two principal axes). The
# circle marks ``j``. With ``epsilon`` at the source spacing a source
# reaches its immediate neighbours; at 10 mm the blur covers centimetres.
surf = cohort.subjects_dir / cohort.subject_ref / "surf" / "lh.inflated"
inflated = mne.read_surface(surf)[0][src[0]["vertno"]]
j = int(np.argmax(inflated[:, 0] * -1 + inflated[:, 2]))  # lateral, superior
near = np.flatnonzero(M[j] < 40.0)
pos = inflated[near] - inflated[near].mean(axis=0)
xy = pos @ np.linalg.svd(pos, full_matrices=False)[2][:2].T
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
for ax, eps in zip(axes, epsilons, strict=True):
    row = np.exp(-M[j, near] / eps)
    sc = ax.scatter(*xy.T, c=row, s=25, cmap="magma", vmin=0, vmax=1)
    ax.scatter(*xy[near == j].T, s=150, facecolors="none", edgecolors="tab:cyan")
    ax.set(title=f"epsilon = {eps:.2f} mm", aspect="equal", xticks=[], yticks=[])
fig.colorbar(sc, ax=axes, label="K[j, i]", shrink=0.8)

# %%
# Epsilon and the barycenter
# --------------------------
# The unbalanced barycenter of two point masses 20 mm apart (geodesic), with
# ``gamma`` (the marginal relaxation) at MWE's default, the median distance:
# large, so that mass is transported rather than created or destroyed. The
# cost is the distance itself, not its square: every point on a shortest
# path between the two masses is at the same total distance from both (20
# mm), so the barycenter is not a point midway, and the entropy spreads it
# along the path and around the inputs, more as ``epsilon`` grows. The
# fraction of its mass within 5 mm of its peak measures how sharp it is;
# :ref:`tut-barycenter` shows what that means for MWE's group maps.
other = int(np.argmin(np.abs(M[j] - 20.0)))
A = np.zeros((len(M), 2))
A[j, 0] = A[other, 1] = 1.0
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
for ax, eps in zip(axes, epsilons, strict=True):
    bar = unbalanced_barycenter(A, [M], epsilon=eps, gamma=gm.median()).barycenter
    peak = int(np.argmax(bar))
    sharp = bar[M[peak] <= 5.0].sum() / bar.sum()
    print(
        f"epsilon {eps:5.2f} mm: peak {M[peak, j]:4.1f} and {M[peak, other]:4.1f} "
        f"mm from the inputs, {sharp:.0%} of the mass within 5 mm of it"
    )
    ax.scatter(*xy.T, c=bar[near] / bar.max(), s=25, cmap="magma", vmin=0, vmax=1)
    for k in (j, other):
        ax.scatter(*xy[near == k].T, s=150, facecolors="none", edgecolors="tab:cyan")
    ax.set(title=f"epsilon = {eps:.2f} mm", aspect="equal", xticks=[], yticks=[])
plt.show()
