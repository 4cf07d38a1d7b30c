"""
.. _tut-kantorovich-averaging:

Euclidean, Kantorovich and Wasserstein averages of source estimates
===================================================================

A group average of source estimates is usually their Euclidean mean, source
by source. When the active region is not exactly at the same place in every
subject, that mean is wider and lower than any subject's estimate. Gramfort,
Peyré and Cuturi (IPMI 2015) average with optimal transport instead: their
Kantorovich mean moves mass along the cortex, with the same total mass as the
inputs. This tutorial compares it with the Euclidean mean and with the
unbalanced Wasserstein barycenter (the latent average of MWE) on dSPM
estimates of a synthetic cohort.
"""

# %%
# Per-subject estimates
# ---------------------
# One focal source per subject, drawn in the same region of the left
# hemisphere of the template (so about 10 mm apart), simulated on each
# subject's own anatomy and sensors, then estimated with dSPM on each
# subject's source space. Everything is offline: the cohort is built from
# files shipped with ``mne`` and ``nilearn`` (and cached).
from importlib.util import find_spec

import matplotlib.pyplot as plt
import mne
import numpy as np
from mne.minimum_norm import apply_inverse, make_inverse_operator

from mne_wasserstein import (
    compute_ground_metric,
    kantorovich_mean,
    wasserstein_barycenter,
)
from mne_wasserstein.datasets import make_cohort
from mne_wasserstein.simulation import simulate_group_evokeds

cohort = make_cohort(
    4, spacing="ico4", modality="meg", random_state=0, n_jobs=2, verbose=False
)
sim = simulate_group_evokeds(
    cohort, n_sources=1, overlap=0.0, region_radius=15.0, snr=4.0, random_state=3
)
gm = compute_ground_metric(cohort.src_ref, subjects_dir=cohort.subjects_dir)
n_lh = len(gm.vertices[0])
true = [int(np.flatnonzero(coef[:n_lh])[0]) for coef in sim.coef]
print("geodesic distances between the true sources (mm):")
print(np.round(gm.blocks[0][np.ix_(true, true)]))

# %%
# Each estimate is morphed to the template source space
# (:func:`mne.compute_source_morph`, through the ``sphere.reg``
# registrations). ``kantorovich_mean`` and ``wasserstein_barycenter`` can
# also morph the estimates themselves (pass ``subjects_dir``); here the
# morphed estimates serve the three averages. A dSPM map is non-zero
# everywhere, and its background (noise) would dominate any average: we keep
# the activity above half of each subject's maximum.
stcs = []
for evoked, fwd, cov in zip(sim.evokeds, sim.forwards, sim.noise_covs, strict=True):
    inv = make_inverse_operator(evoked.info, fwd, cov, loose=0.2, verbose=False)
    stc = apply_inverse(evoked, inv, lambda2=1 / 9, method="dSPM", verbose=False)
    stc = stc.crop(sim.peak_time, sim.peak_time)  # magnitudes, >= 0
    morph = mne.compute_source_morph(
        stc,
        subject_to=cohort.subject_ref,
        spacing=gm.vertices,
        subjects_dir=cohort.subjects_dir,
        verbose=False,
    )
    stc = morph.apply(stc)
    stc.data[stc.data < 0.5 * stc.data.max()] = 0.0
    stcs.append(stc)

# %%
# Focal estimates
# ---------------
# A dSPM map is a blurred image of the source, a few centimetres wide: the
# subjects' blobs overlap, and transport has little to align. Sparse
# estimates (MxNE, MWE) are focal. As a stand-in for them, each subject's
# second estimate is its true source, spread by a 4 mm Gaussian along the
# cortex of the template.
focal = []
for j, stc in zip(true, stcs, strict=True):
    data = np.zeros((len(stc.data), 1))
    data[:n_lh, 0] = np.exp(-0.5 * (gm.blocks[0][j] / 4.0) ** 2)
    data[data < 1e-3] = 0.0
    focal.append(mne.SourceEstimate(data, gm.vertices, 0.0, 1.0, cohort.subject_ref))

# %%
# Three averages on the template
# ------------------------------
# The ground metric is the geodesic distance along the template's white
# surface (cached on disk); the defaults follow the paper (entropic
# regularisation ``median(M) / 100``, mass of the Kantorovich mean = mean mass
# of the estimates), except the tolerance of the Kantorovich mean: ``1e-3``
# instead of ``1e-4`` stops it about twice as early, which is enough for
# a figure.


def three_averages(stcs):
    """The Euclidean mean, Kantorovich mean and Wasserstein barycenter."""
    return {
        "Euclidean": sum(stcs[1:], stcs[0]) / len(stcs),
        "Kantorovich": kantorovich_mean(stcs, ground_metric=gm, tol=1e-3),
        "Wasserstein": wasserstein_barycenter(stcs, ground_metric=gm),
    }


averages = {"dSPM": three_averages(stcs), "focal": three_averages(focal)}
inputs = {"dSPM": stcs, "focal": focal}
for kind, avg in averages.items():
    for name, stc in avg.items():
        print(
            f"{kind:5s} {name:12s} total mass {stc.data.sum():7.1f}, "
            f"peak {stc.data.max():6.2f}"
        )

# %%
# Peak sharpness
# --------------
# For each average, the fraction of its mass within a geodesic radius of its
# peak (left hemisphere). The Kantorovich mean keeps the total mass of the
# inputs but gathers it around one location; the Euclidean mean spreads it
# over the union of the subjects' regions. Transport aligns the estimates, it
# does not sharpen them: with dSPM inputs, whose own mass is spread over
# centimetres, the three averages differ little.
radii = np.linspace(0, 60, 61)


def mass_near_peak(x, radii):
    """Fraction of the mass of x (left hemisphere) within each radius."""
    x = np.abs(x[:n_lh])
    dist = gm.blocks[0][np.argmax(x)]
    return np.array([x[dist <= r].sum() / x.sum() for r in radii])


fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained", sharey=True)
for ax, (kind, avg) in zip(axes, averages.items(), strict=True):
    for name, stc in avg.items():
        ax.plot(radii, mass_near_peak(stc.data[:, 0], radii), label=name)
    curves = [mass_near_peak(stc.data[:, 0], radii) for stc in inputs[kind]]
    ax.plot(radii, np.mean(curves, 0), "k--", label="subjects (mean)")
    ax.set(xlabel="geodesic radius around the peak (mm)", title=f"{kind} inputs")
axes[0].set(ylabel="fraction of the mass (left hemisphere)")
axes[0].legend()
for kind, avg in averages.items():
    for name, stc in avg.items():
        within = mass_near_peak(stc.data[:, 0], [10.0])[0]
        print(f"{kind:5s} {name:12s} mass within 10 mm of the peak: {within:.2f}")

# %%
# The averages on the template
# ----------------------------
# The sources of the left hemisphere within 30 mm (geodesic) of the true
# sources, on the inflated surface seen from above the region (its two
# principal axes), each coloured by its value relative to the average's
# maximum; the circles are the true sources of the subjects.
rr = mne.read_surface(
    cohort.subjects_dir / cohort.subject_ref / "surf" / "lh.inflated"
)[0]
near = np.flatnonzero(gm.blocks[0][true].min(0) < 30.0)
pos = rr[gm.vertices[0][near]]
pos = pos - pos.mean(0)
xy = pos @ np.linalg.svd(pos, full_matrices=False)[2][:2].T  # (n, 2)
true_xy = xy[np.searchsorted(near, true)]
fig, axes = plt.subplots(2, 3, figsize=(10, 5), layout="constrained")
for row, (kind, avg) in zip(axes, averages.items(), strict=True):
    for ax, (name, stc) in zip(row, avg.items(), strict=True):
        x = stc.data[near, 0] / stc.data[near, 0].max()
        order = np.argsort(x)
        ax.scatter(*xy[order].T, c=x[order], s=30, cmap="magma", vmin=0, vmax=1)
        ax.scatter(*true_xy.T, s=120, facecolors="none", edgecolors="tab:cyan")
        ax.set(title=f"{name} ({kind})", aspect="equal", xticks=[], yticks=[])

# %%
# In the 3D viewer
# ----------------
# With a 3D backend (``pip install mne-wasserstein[viz]``) and an
# interactive session, the averages can be explored in MNE's 3D viewer. The
# documentation is built without one (its figures are static), hence the
# test.
if find_spec("pyvistaqt") and plt.get_backend().lower() != "agg":
    for name, stc in averages["focal"].items():
        stc.plot(
            subject=cohort.subject_ref,
            subjects_dir=cohort.subjects_dir,
            hemi="lh",
            surface="inflated",
            title=name,
            time_viewer=False,
        )
plt.show()
