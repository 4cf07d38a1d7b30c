"""
.. _tut-alpha-beta:

Choosing alpha and beta: relative scales, paths and warm starts
===============================================================

MWE has two main hyperparameters: ``alpha``, the sparsity, and ``beta``,
the strength of the transport coupling between subjects. Both are
*relative*: ``alpha = 1`` is the smallest regularisation that gives no
source at all, whatever the units, the number of sensors or the noise
level. This tutorial works on small arrays (a 1-D "cortex" of 120 sources,
2 mm apart) where every fit takes a fraction of a second, to show what the
scales mean, how to compute a path of solutions with warm starts and how to
pick ``alpha`` for a target number of sources. The same estimators run
under :func:`mne_wasserstein.apply_mwe` (last section).
"""

# %%
# A group problem in arrays
# -------------------------
# Four subjects, 40 sensors each, 120 candidate sources on a line with a
# ground metric ``|i - j| * 2`` mm. Each subject's design (its leadfield)
# has smooth, correlated columns of its own. Three sources are active in
# every subject, at locations that move by up to 3 positions (6 mm) from
# subject to subject, with the same sign.
import time

import matplotlib.pyplot as plt
import numpy as np

from mne_wasserstein.solvers import MWE, fit_path, mwe_alpha_max

rng = np.random.default_rng(0)
n_subjects, n_sensors, n_sources, spacing = 4, 40, 120, 2.0
grid = spacing * np.arange(n_sources)
ground_metric = np.abs(grid[:, None] - grid[None])  # mm


def smooth_design(n, p, width=2.0):
    """Rows of smoothed white noise: neighbouring columns are correlated."""
    kernel = np.exp(-0.5 * (np.arange(-5, 6) / width) ** 2)
    raw = rng.standard_normal((n, p + 10))
    return np.array([np.convolve(row, kernel, mode="valid") for row in raw])


X = np.stack([smooth_design(n_sensors, n_sources) for _ in range(n_subjects)])
centers, signs = np.array([20, 60, 95]), np.array([1.0, -1.0, 1.0])
coef = np.zeros((n_subjects, n_sources))
for s in range(n_subjects):
    coef[s, centers + rng.integers(-3, 4, 3)] = signs * rng.uniform(1, 1.5, 3)
clean = np.einsum("sij,sj->si", X, coef)
noise_std = np.linalg.norm(clean, axis=1).mean() / np.sqrt(n_sensors) / 3  # SNR 3
Y = clean + noise_std * rng.standard_normal(clean.shape)
print("true supports:", [np.flatnonzero(c).tolist() for c in coef])

# %%
# What "relative alpha" means
# ---------------------------
# The l1 threshold is ``alpha * alpha_max``, with ``alpha_max``
# (:func:`~mne_wasserstein.solvers.mwe_alpha_max`) the smallest threshold at
# which no source is active, computed from the data. So ``alpha = 1`` gives
# an empty solution, and ``alpha`` is the fraction of that threshold that is
# kept. Because the data are rescaled internally, multiplying ``Y`` by any
# constant (volts instead of femtotesla, a different whitening) changes
# nothing but the unit of the sources.
print(f"alpha_max = {mwe_alpha_max(X, Y):.3g} (in the data's units)")
model = MWE(ground_metric, alpha=0.2, beta=0.1, q=1, epsilon=spacing)
a = model.fit(X, Y).coef_
b = model.fit(X, 1e-12 * Y).coef_ * 1e12
print("active sources per subject:", np.count_nonzero(a, axis=1))
print(f"same solution for Y and 1e-12 Y: {np.allclose(a, b, rtol=1e-6, atol=1e-9)}")
for beta in (0.0, 0.1):
    at_one = model.set_params(alpha=1.0, beta=beta).fit(X, Y).coef_
    print(f"alpha = 1, beta = {beta}: {np.count_nonzero(at_one)} active sources")

# %%
# ``alpha_max`` is computed without the transport term: with ``beta > 0``
# the coupling can keep a few sources active at ``alpha = 1``.

# %%
# A path of solutions with warm starts
# ------------------------------------
# :func:`~mne_wasserstein.solvers.fit_path` fits a grid of ``alpha`` values
# from the sparsest to the densest, each fit starting from the previous
# solution (sources and Sinkhorn potentials). The printout compares it
# with independent (cold) fits of the same grid.
alphas = np.geomspace(0.8, 0.05, 10)
estimator = MWE(ground_metric, beta=0.1, q=1, epsilon=spacing, tol=1e-5)
start = time.perf_counter()
path = fit_path(estimator, X, Y, alphas)
warm = time.perf_counter() - start
start = time.perf_counter()
cold_iter = [estimator.set_params(alpha=a).fit(X, Y).n_iter_ for a in alphas]
cold = time.perf_counter() - start
print(f"outer iterations, warm path: {sum(path.n_iter)}, cold fits: {sum(cold_iter)}")
print(f"time, warm path: {warm:.2f} s, cold fits: {cold:.2f} s")

n_active = np.count_nonzero(path.coefs, axis=2)  # (n_alphas, n_subjects)
fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
ax.semilogx(alphas, n_active, "o-", alpha=0.7)
ax.axhline(3, color="k", ls="--", label="true sources per subject")
ax.set(xlabel="alpha (relative to alpha_max)", ylabel="active sources")
ax.legend()

# %%
# Choosing alpha for a target sparsity
# ------------------------------------
# With no ground truth, a common rule is a target number of sources: the
# largest ``alpha`` at which every subject has at least that many (here 3;
# in MEG, the number of regions one expects to be active). The path makes it
# one line; the errors below use the truth, which a real analysis lacks.
target = 3
chosen = np.flatnonzero((n_active >= target).all(axis=1))[0]
print(f"alpha = {alphas[chosen]:.3f}: active sources {n_active[chosen].tolist()}")
errors = [
    np.abs(grid[np.flatnonzero(est)][:, None] - grid[np.flatnonzero(true)]).min(0)
    for est, true in zip(path.coefs[chosen], coef, strict=True)
]
print("distance (mm) from each true source to the nearest estimate:")
print(np.array(errors))

# %%
# beta: how strongly the subjects are coupled
# -------------------------------------------
# ``beta`` weighs the transport term against the data, on the same scale as
# ``alpha`` (both multiply ``alpha_max``): ``beta = 0`` fits independent
# (concomitant) Lassos, and a large ``beta`` pulls every subject's sources
# onto the barycenter. A path over ``beta`` (``param="beta"``) shows it:
# below, for each ``beta``, the spread of the subjects' estimates (mean
# distance from a subject's source to the nearest source of another
# subject) and the number of active sources.
betas = [0.0, 0.03, 0.1, 0.3, 1.0]
beta_path = fit_path(
    MWE(ground_metric, alpha=alphas[chosen], q=1, epsilon=spacing),
    X,
    Y,
    betas,
    param="beta",
)


def spread(coefs):
    """Mean distance (mm) from each source to the nearest of another subject."""
    dist = []
    for s, c in enumerate(coefs):
        others = np.flatnonzero(np.delete(coefs, s, axis=0).any(axis=0))
        for j in np.flatnonzero(c):
            dist.append(np.abs(grid[others] - grid[j]).min())
    return np.mean(dist)


for beta, coefs in zip(betas, beta_path.coefs, strict=True):
    print(
        f"beta = {beta:4.2f}: spread {spread(coefs):4.1f} mm, active "
        f"{np.count_nonzero(coefs, axis=1).tolist()}"
    )

# %%
# The solutions along the ``beta`` path (one row per subject, one panel per
# ``beta``): as ``beta`` grows, the subjects' sources move towards common
# locations, and with a large ``beta`` the entropic transport also spreads
# mass onto neighbouring sources.
fig, axes = plt.subplots(1, len(betas), figsize=(11, 2.6), sharey=True)
for ax, beta, coefs in zip(axes, betas, beta_path.coefs, strict=True):
    ax.imshow(np.abs(coefs), aspect="auto", cmap="Greys", interpolation="none")
    ax.plot(centers, [-0.6] * 3, "rv")
    ax.set(title=f"beta = {beta}", xlabel="source")
axes[0].set(ylabel="subject")

# %%
# On M/EEG data
# -------------
# :func:`mne_wasserstein.apply_mwe` takes the same relative ``alpha`` and
# ``beta``: the whitened, depth-weighted gains and data of the subjects are
# the arrays above, and ``result.alpha_max`` holds the scale in the solver's
# units. A path on MEG data is the same loop over ``alpha`` (each
# ``apply_mwe`` call prepares the data again, which takes about a second);
# the quickstart uses ``alpha = 0.05`` and ``beta = 0.03``, and
# :ref:`tut-compare-solvers` compares the models at one ``alpha``.
plt.show()
