"""Kantorovich means and Wasserstein barycenters of source estimates.

Group averages of source estimates are usually Euclidean means, which blur
focal activity that is not exactly at the same place in every subject.
Optimal-transport averages move mass along the cortex instead: the
Kantorovich mean of Gramfort, Peyré and Cuturi (IPMI 2015) and the
unbalanced Wasserstein barycenter (the latent average of MWE). Both are
computed with :mod:`mne_wasserstein.ot`.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from mne import SourceEstimate, SourceSpaces, compute_source_morph
from mne.utils import logger, verbose

from ._validation import check_list, check_positive
from ._warnings import ConvergenceWarning
from .ground_metric import GroundMetric, compute_ground_metric
from .ot import (
    VirtualPointKernel,
    asarray,
    kantorovich_barycenter,
    to_numpy,
    unbalanced_barycenter,
)
from .utils import fill_doc

__all__ = ["kantorovich_mean", "wasserstein_barycenter"]

# default entropic regularisation: lambda = 100 / median(M) in the paper
EPSILON_REL = 0.01
# default distance to the virtual point: this quantile of the ground metric
DELTA_QUANTILE = 0.9
# default marginal relaxation of the Wasserstein barycenter, relative to median(M)
GAMMA_REL = 1.0


# --------------------------------------------------------------------------
# the MNE layer: inputs, reference source space, ground metric


@dataclass
class _Reference:
    vertices: list
    subject: object
    ground_metric: object  # GroundMetric | array | list of array


def _check_stcs(stcs):
    """Return ``stcs`` as a list of surface source estimates on the same times."""
    stcs = check_list(
        stcs,
        "stcs",
        SourceEstimate,
        hint="; for a VectorSourceEstimate use its magnitude()",
    )
    for k, stc in enumerate(stcs):
        if stc.shape[1] != stcs[0].shape[1] or not np.allclose(
            [stc.tmin, stc.tstep], [stcs[0].tmin, stcs[0].tstep]
        ):
            raise ValueError(
                f"stcs[{k}] has other times ({stc.shape[1]} samples from "
                f"{stc.tmin} s, step {stc.tstep} s) than stcs[0] "
                f"({stcs[0].shape[1]} samples from {stcs[0].tmin} s, step "
                f"{stcs[0].tstep} s)"
            )
        if not np.isfinite(stc.data).all():
            raise ValueError(f"stcs[{k}] contains NaN or inf")
    return stcs


def _same_vertices(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x, y) for x, y in zip(a, b, strict=True)
    )


def _reference(stcs, ground_metric, src, subjects_dir):
    src_vertices = src_subject = None
    if src is not None:
        if not isinstance(src, SourceSpaces):
            raise TypeError(f"src must be a SourceSpaces, got {type(src).__name__}")
        src_vertices = [np.asarray(s["vertno"]) for s in src]
        src_subject = src[0].get("subject_his_id")
    if ground_metric is None:
        if src is None:
            raise ValueError(
                "ground_metric or src is needed (the reference source space)"
            )
        ground_metric = compute_ground_metric(src, subjects_dir=subjects_dir)
    if isinstance(ground_metric, GroundMetric):
        vertices, subject = ground_metric.vertices, ground_metric.subject
        if src is not None and not _same_vertices(vertices, src_vertices):
            raise ValueError("ground_metric and src have different vertices")
    elif src is not None:
        vertices, subject = src_vertices, src_subject
    else:
        vertices, subject = stcs[0].vertices, stcs[0].subject
    return _Reference(list(vertices), subject, ground_metric)


def _data_on_reference(stcs, ref, subjects_dir):
    """Return the data of every estimate on the reference (n_sources, S, n_times)."""
    morphs, out = {}, []
    for k, stc in enumerate(stcs):
        same_subject = ref.subject is None or stc.subject in (None, ref.subject)
        if same_subject and _same_vertices(stc.vertices, ref.vertices):
            out.append(stc.data)
            continue
        if subjects_dir is None:
            raise ValueError(
                f"stcs[{k}] (subject {stc.subject!r}, {len(stc.data)} sources) is "
                f"not on the reference source space (subject {ref.subject!r}, "
                f"{sum(map(len, ref.vertices))} sources): pass subjects_dir to "
                "morph it with mne.compute_source_morph"
            )
        if stc.subject is None or ref.subject is None:
            raise ValueError(
                f"stcs[{k}] is not on the reference source space and cannot be "
                "morphed: the estimate and the reference must name their subject"
            )
        key = (stc.subject, tuple(map(len, stc.vertices)))
        if key not in morphs:
            logger.info(f"Morphing the estimates of {stc.subject} to {ref.subject}")
            morphs[key] = compute_source_morph(
                stc,
                subject_from=stc.subject,
                subject_to=ref.subject,
                spacing=ref.vertices,
                subjects_dir=subjects_dir,
                smooth=None,
                verbose=False,
            )
        out.append(morphs[key].apply(stc).data)
    data = np.stack(out, axis=1).astype(np.float64)
    n_ref = sum(map(len, ref.vertices))
    if data.shape[0] != n_ref:
        raise ValueError(
            f"the estimates have {data.shape[0]} sources, the reference {n_ref}"
        )
    return data


def _cost(ground_metric, p, n_sources):
    """Return the cost ``M^p`` (float64 blocks or array) and its off-diagonal."""
    if isinstance(ground_metric, GroundMetric):
        mats = list(ground_metric.blocks)
    elif isinstance(ground_metric, (list, tuple)):
        mats = list(ground_metric)
    else:
        mats = [ground_metric]
    mats = [np.asarray(to_numpy(m), dtype=np.float64) for m in mats]
    if sum(m.shape[0] for m in mats) != n_sources:
        raise ValueError(
            f"the ground metric has {sum(m.shape[0] for m in mats)} rows, the "
            f"estimates {n_sources} sources"
        )
    mats = [m**p for m in mats]
    offdiag = np.concatenate(
        [m[~np.eye(len(m), dtype=bool) & np.isfinite(m)] for m in mats]
    )
    if offdiag.size == 0:
        raise ValueError("the ground metric has no finite off-diagonal entry")
    return (mats if len(mats) > 1 else mats[0]), offdiag


def _signed_parts(data):
    """(n_sources, S, n_times) -> positive then negative parts (.., 2 n_times)."""
    return np.concatenate([np.maximum(data, 0.0), np.maximum(-data, 0.0)], axis=2)


def _check_mass(mass, n_times):
    if mass is None:
        return None
    mass = np.asarray(mass, dtype=np.float64)
    if mass.ndim == 0:
        mass = np.full(n_times, float(mass))
    if mass.shape != (n_times,):
        raise ValueError(
            f"mass must be a number or have shape ({n_times},), got {mass.shape}"
        )
    if not np.isfinite(mass).all() or (mass < 0).any():
        raise ValueError(f"mass must be non-negative and finite, got {mass}")
    return mass


def _check_number(value, name, default):
    return default if value is None else check_positive(value, name)


def _check_iter(max_iter):
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}")
    return int(max_iter)


def _to_stc(data, ref, stc0):
    return SourceEstimate(
        data, ref.vertices, tmin=stc0.tmin, tstep=stc0.tstep, subject=ref.subject
    )


# --------------------------------------------------------------------------
# public functions


@verbose
@fill_doc
def kantorovich_mean(
    stcs,
    *,
    ground_metric=None,
    src=None,
    subjects_dir=None,
    mass=None,
    p=1,
    delta=None,
    epsilon=None,
    step=4.0,
    max_iter=1000,
    tol=1e-4,
    backend=None,
    verbose=None,
):
    """Kantorovich mean of source estimates (Gramfort et al., IPMI 2015).

    The Kantorovich mean with constrained mass ``rho`` of non-negative
    vectors ``b_1, ..., b_S`` (Definition 2 of the paper) is::

        a = argmin_{a >= 0, sum(a) = rho} (1 / S) sum_s K_eps(a, b_s)

    where ``K_eps`` is the entropic Kantorovich distance with cost ``M^p``:
    balanced optimal transport after adding a virtual point at distance
    ``delta`` of every source, which creates or absorbs the mass difference
    (Definition 1). It is computed as in the paper by exponentiated gradient
    with a fixed step, the gradient being the mean of the Sinkhorn dual
    potentials, followed by a renormalisation of the mass; every time sample
    (and sign) is a column of one batched computation.

    Parameters
    ----------
    %(average_stcs)s
        Signed data (e.g. currents) are averaged as positive and negative
        parts, each with its own mass: use the absolute value or dSPM
        values for the magnitude of activity.
    %(average_reference)s
    mass : None | float | array, shape (n_times,)
        The total mass ``sum(|a|)`` of the mean at each time (in the unit of
        the data). ``None`` (default, as in the paper): the mean of the
        masses of the estimates. It is split between the hemispheres (the
        blocks of the ground metric), and for signed data between the
        positive and negative parts, in the proportions of their mean masses
        (see Notes).
    p : float
        The exponent of the ground metric in the cost ``M^p`` (> 0). ``p=1``
        (the paper's choice, the earth mover's distance) averages locations
        like a median; ``p=2`` like a mean (e.g. two Diracs average to one
        in the middle, where ``p=1`` spreads the mass between them).
    delta : None | float
        The distance between the sources and the virtual point, in the unit
        of ``M^p``. ``None``: the 0.9 quantile of the finite distances
        ``M^p`` (the paper's "large quantile").
    epsilon : None | float
        The entropic regularisation, in the unit of ``M^p``. ``None``:
        ``median(M^p) / 100`` (``lambda = 100 / median(M)`` in the paper).
        Smaller values give sharper means and need more iterations.
    step : float
        The fixed step of the exponentiated gradient, in units of
        ``1 / max(M^p, delta)``: ``log(a)`` changes by at most about ``step``
        in one iteration. Larger steps converge in fewer iterations; a step
        that increases the objective is undone and halved (see Notes).
    max_iter : int
        The maximum number of exponentiated-gradient iterations.
    tol : float
        Stop when the relative change of the mean (``max |da| / max a``) and
        the violation of the Sinkhorn marginals are below ``tol`` for every
        time sample.
    %(backend)s
    %(verbose)s

    Returns
    -------
    stc : SourceEstimate
        The Kantorovich mean on the reference source space.

    Notes
    -----
    Each hemisphere (block of the ground metric) has its own virtual point,
    and only the mass difference goes through it (in each hemisphere, the
    lighter of the mean and an estimate is completed by the virtual point).
    The mass of the mean is constrained in each hemisphere (to its share of
    the mean mass of the estimates there), which makes the problem separate
    into one Kantorovich mean per hemisphere, each as in the paper. With
    only the total mass constrained, the split between hemispheres would
    cost ``delta`` per unit of mass difference with every estimate: a
    piecewise linear function on which the fixed-step iterations cycle
    (measured on estimates with mass in both hemispheres).
    This is Definition 1 of the paper with no mass moved between hemispheres
    (mass destroyed in one and created in the other costs ``2 delta``)
    whenever ``M^p_ij <= 2 delta`` in a hemisphere (true for the default
    ``delta`` on cortical meshes): then a unit of mass is never both
    destroyed and created in a hemisphere. It keeps the balanced Sinkhorn
    iterations well conditioned (with a virtual mass on both sides, they
    need up to 10^5 iterations where they need 10^3 otherwise).

    The mean is started uniform in each hemisphere (with the hemisphere's
    mean mass). Each iteration runs at most 10 warm-started Sinkhorn
    iterations (:func:`mne_wasserstein.ot.unbalanced_sinkhorn` with
    ``gamma=np.inf`` on a :class:`mne_wasserstein.ot.VirtualPointKernel`),
    takes the dual potentials of the sources (also where the mean
    underflows: ``log(a)`` is the iterate) and updates
    ``a <- a exp(-step grad / max(M^p, delta))``, then renormalises the mass
    in each hemisphere.
    Where the Sinkhorn iterations have converged (to ``tol``), a step that
    increases the objective by more than ``tol * max(M^p, delta)`` is
    undone and its step halved: a safeguard that fixed steps of the
    default size rarely trigger on cortical meshes, but that keeps the
    objective decreasing on degenerate problems (e.g. ``p=1`` on regular
    grids, where transport plans tie). Convergence is linear, about
    ``1 - step * epsilon / max(M^p, delta)`` per iteration near the
    solution, so the error left at a relative change ``tol`` is about
    ``tol * max(M^p, delta) / (step * epsilon)`` relative.

    References
    ----------
    A. Gramfort, G. Peyré, M. Cuturi. Fast optimal transport averaging of
    neuroimaging data. Information Processing in Medical Imaging (IPMI), 2015.
    """
    stcs = _check_stcs(stcs)
    p = _check_number(p, "p", None)
    step = _check_number(step, "step", None)
    tol = _check_number(tol, "tol", None)
    max_iter = _check_iter(max_iter)
    n_times = stcs[0].shape[1]
    mass = _check_mass(mass, n_times)
    ref = _reference(stcs, ground_metric, src, subjects_dir)
    data = _data_on_reference(stcs, ref, subjects_dir)
    n_sources, n_subjects = data.shape[:2]
    cost, offdiag = _cost(ref.ground_metric, p, n_sources)
    delta = _check_number(delta, "delta", float(np.quantile(offdiag, DELTA_QUANTILE)))
    epsilon = _check_number(epsilon, "epsilon", EPSILON_REL * float(np.median(offdiag)))
    cost_scale = max(float(offdiag.max()), delta)

    parts = _signed_parts(data)  # (n_sources, S, 2 n_times)
    part_mass = parts.sum(axis=0).mean(axis=0)  # (2 n_times,)
    if mass is None:
        target = part_mass
    else:
        total = np.tile(part_mass[:n_times] + part_mass[n_times:], 2)
        share = np.divide(part_mass, total, out=np.zeros_like(total), where=total > 0)
        target = share * np.tile(mass, 2)
    active = np.flatnonzero((target > 0) & (part_mass > 0))
    out = np.zeros((n_sources, 2 * n_times))
    logger.info(
        f"Kantorovich mean of {n_subjects} estimates ({n_sources} sources, "
        f"{len(active)} time samples and signs), p={p:g}, epsilon={epsilon:.3g}, "
        f"delta={delta:.3g}"
    )
    if len(active):
        kernel = VirtualPointKernel(
            cost, delta, epsilon, dtype=np.float64, backend=backend
        )
        # the mean of each column has unit mass: the inputs relative to it
        B = asarray(parts[:, :, active] / target[active], kernel.xp)
        res = kantorovich_barycenter(
            B,
            kernel,
            step=step,
            cost_scale=cost_scale,
            max_iter=max_iter,
            tol=tol,
        )
        logger.info(
            f"    {res.n_iter} iterations, change {res.err:.2e}"
            + (" (converged)" if res.converged else "")
        )
        if not res.converged:
            warnings.warn(
                f"The Kantorovich mean did not converge in {max_iter} iterations "
                f"(change {res.err:.1e}, tol={tol:.1e}); increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        out[:, active] = to_numpy(res.mean) * target[active]
    return _to_stc(out[:, :n_times] - out[:, n_times:], ref, stcs[0])


@verbose
@fill_doc
def wasserstein_barycenter(
    stcs,
    *,
    ground_metric=None,
    src=None,
    subjects_dir=None,
    epsilon=None,
    gamma=None,
    tol=1e-6,
    max_iter=10_000,
    backend=None,
    verbose=None,
):
    """Unbalanced Wasserstein barycenter of source estimates.

    The minimiser of ``(1 / S) sum_s W_u(b_s, q)`` with the unbalanced
    entropic transport cost ``W_u`` of Eq. 9 of Janati et al. (2020), as
    computed by :func:`mne_wasserstein.ot.unbalanced_barycenter`: the
    latent average of MWE. Its mass is not constrained: it follows from the
    marginal relaxation ``gamma``. Signed data are averaged as positive and
    negative parts; every time sample is one problem of a batched call.

    Parameters
    ----------
    %(average_stcs)s
    %(average_reference)s
    epsilon : None | float
        The entropic regularisation, in mm. ``None``: ``median(M) / 100``
        (as for :func:`kantorovich_mean`).
    gamma : None | float
        The marginal relaxation, in mm. ``None``: ``median(M)``.
    tol : float
        The stopping tolerance of :func:`~mne_wasserstein.ot.unbalanced_barycenter`.
    max_iter : int
        Its maximum number of iterations.
    %(backend)s
    %(verbose)s

    Returns
    -------
    stc : SourceEstimate
        The barycenter on the reference source space.
    """
    stcs = _check_stcs(stcs)
    tol = _check_number(tol, "tol", None)
    max_iter = _check_iter(max_iter)
    ref = _reference(stcs, ground_metric, src, subjects_dir)
    data = _data_on_reference(stcs, ref, subjects_dir)
    n_sources, n_subjects, n_times = data.shape
    cost, offdiag = _cost(ref.ground_metric, 1, n_sources)
    median = float(np.median(offdiag))
    epsilon = _check_number(epsilon, "epsilon", EPSILON_REL * median)
    gamma = _check_number(gamma, "gamma", GAMMA_REL * median)
    parts = _signed_parts(data)
    active = np.flatnonzero(parts.sum(axis=(0, 1)) > 0)
    out = np.zeros((n_sources, 2 * n_times))
    logger.info(
        f"Wasserstein barycenter of {n_subjects} estimates ({n_sources} sources, "
        f"{len(active)} time samples and signs), epsilon={epsilon:.3g}, "
        f"gamma={gamma:.3g}"
    )
    if len(active):
        res = unbalanced_barycenter(
            parts[:, :, active],
            cost,
            epsilon=epsilon,
            gamma=gamma,
            tol=tol,
            max_iter=max_iter,
            dtype=np.float64,
            backend=backend,
        )
        logger.info(f"    {res.state.n_iter} Sinkhorn iterations")
        bary = to_numpy(res.barycenter)
        out[:, active] = bary.reshape(n_sources, len(active))
    return _to_stc(out[:, :n_times] - out[:, n_times:], ref, stcs[0])
