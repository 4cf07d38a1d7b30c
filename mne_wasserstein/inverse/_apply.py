"""apply_mwe and apply_group_inverse: MNE objects in, SourceEstimates out."""

import inspect
from dataclasses import dataclass, field

import numpy as np
from mne import SourceEstimate
from mne.io.constants import FIFF
from mne.utils import get_subjects_dir, logger, verbose

from .._docs import docdict, fill_doc
from ..ot import KernelOperator, to_numpy, unbalanced_barycenter
from ..solvers import MTW, MWE, DirtyModel, GroupLasso, IndependentLasso
from ._align import _align_one, _check_forwards, _check_surface_src
from ._gain import (
    _check_covs,
    _check_data,
    _check_depth,
    _check_evokeds,
    _prepare_group,
)

__all__ = ["GroupInverseResult", "apply_group_inverse", "apply_mwe"]


@dataclass(frozen=True)
class _Method:
    """A model of :func:`apply_group_inverse`: its estimator and parameters.

    Attributes
    ----------
    name : str
        The ``method`` that selects it.
    estimator : type
        The estimator class of :mod:`mne_wasserstein.solvers`.
    fixed : dict
        The estimator parameters that the method sets (``solver_params``
        cannot change them).
    takes_beta : bool
        Whether ``beta`` is a parameter of the model (else it must be
        ``None`` or 0).
    transport : bool
        Whether the model couples the subjects by optimal transport: its
        estimator takes the ground metric (first argument) and ``n_jobs``,
        and estimates a barycenter (``barycenter_``).
    """

    name: str
    estimator: type
    fixed: dict = field(default_factory=dict)
    takes_beta: bool = False
    transport: bool = False

    def estimator_params(self, alpha, beta, solver_params):
        """Check and gather the estimator's parameters (but the ground metric).

        Parameters
        ----------
        alpha, beta : float | None
            The arguments of :func:`apply_group_inverse`.
        solver_params : dict
            The other parameters of the estimator.

        Returns
        -------
        params : dict
            The keyword arguments of the estimator.
        """
        params = dict(alpha=alpha, **self.fixed)
        if self.takes_beta:
            if beta is not None:
                params["beta"] = beta
        elif beta not in (None, 0):
            raise ValueError(f"method={self.name!r} has no beta (got beta={beta})")
        valid = set(inspect.signature(self.estimator).parameters)
        valid -= set(params) | {"ground_metric"}
        unknown = set(solver_params) - valid
        if unknown:
            raise ValueError(
                f"solver_params of method={self.name!r} must be among "
                f"{sorted(valid)}, got {sorted(unknown)}"
            )
        return {**params, **solver_params}

    def make_estimator(self, params, ground_metric, n_jobs):
        """Return the unfitted estimator.

        ``ground_metric`` and ``n_jobs`` serve the transport models only;
        an ``n_jobs`` in ``params`` (from ``solver_params``) wins.
        """
        if self.transport:
            return self.estimator(ground_metric, **{"n_jobs": n_jobs, **params})
        return self.estimator(**params)


_METHODS = {
    method.name: method
    for method in (
        _Method("mwe", MWE, takes_beta=True, transport=True),
        _Method("mtw", MTW, takes_beta=True, transport=True),
        _Method("grouplasso", GroupLasso),
        _Method("dirty", DirtyModel, takes_beta=True),
        _Method("lasso", IndependentLasso, fixed={"q": 1}),
        _Method("relasso", IndependentLasso, fixed={"q": 0.5}),
    )
}

# the user-facing barycenter (see GroupInverseResult.stc_bar): recomputed
# from the final estimates with this fraction of the fit's epsilon, then
# restricted to the largest sources holding this fraction of its mass
SHARP_EPSILON_FACTOR = 0.5
SHARP_MASS_FRACTION = 0.9


docdict["group_inverse_body"] = """\
For each subject, the channels common to the evoked, the forward and the
noise covariance are whitened (rank-aware, as MNE's inverse solvers, with
the covariance divided by the evoked's ``nave``); the forward is aligned to
the reference source space (:func:`align_forwards`), taken with a fixed
orientation normal to the cortex (free-orientation forwards are converted,
with a log message), depth-weighted (``depth``, 0.9 in Janati et al. 2020)
and scaled as in :func:`mne.inverse_sparse.mixed_norm`. All subjects are
then fitted jointly and the sources brought back to A*m."""
docdict["group_inverse_data"] = """\
evokeds : list of Evoked
    One evoked response per subject (its own channels, bad channels and
    times).
forwards : list of Forward
    One forward solution per subject (same order), on a cortical surface
    source space of that subject; free or fixed orientation, MEG, EEG or
    both.
noise_cov : Covariance | list of Covariance | None
    The noise covariance of each subject, or one for all. ``None``:
    ad-hoc diagonal covariances (:func:`mne.make_ad_hoc_cov`, with a
    warning)."""
docdict["group_inverse_rest"] = """\
src_ref : SourceSpaces | None
    The reference source space (e.g. ``mne.setup_source_space("fsaverage",
    "ico4", add_dist=False)``), the common source space of the subjects.
    It may hold one hemisphere only, which restricts the analysis to it.
    ``None``: all forwards must be on the same source space (one subject,
    or the same subject's leadfield), used as is.
subjects_dir : path-like | None
    The FreeSurfer subjects folder of the reference and of the subjects
    (``None``: MNE's ``SUBJECTS_DIR``). Only read when ``src_ref`` is given.
depth : None | float | dict
    The depth weighting, as in :func:`mne.inverse_sparse.mixed_norm`: the
    exponent (0.9 in the paper; ``None`` or 0 for none) or a dict of the
    keyword arguments of :func:`mne.forward.compute_depth_prior` (defaults
    of MNE's sparse solvers: ``limit=None``, ``limit_depth_chs="whiten"``,
    ``combine_xyz="fro"``). The prior is computed on each subject's
    fixed-orientation forward, as ``mixed_norm`` does with ``loose=0``.
loose : float
    Only 0 (fixed orientation, normal to the cortex) is supported.
time : None | float | "all"
    The data fitted. A float: the sample nearest to that time (s) for every
    subject. ``None``: for each subject, the sample of the largest global
    field power of its whitened data between ``tmin`` and ``tmax`` (the
    paper's choice). ``"all"``: every sample between ``tmin`` and ``tmax``,
    fitted one after the other with warm starts (all subjects must have the
    same times there); the SourceEstimates then have those times.
tmin, tmax : float | None
    The window (s) of ``time=None`` or ``"all"`` (``None``: the start and
    end of the data).
pick_ori : None | "normal"
    Both give the signed amplitude along the cortical normal.
ground_metric : GroundMetric | array | None
    For ``"mwe"`` and ``"mtw"``: the ground metric between the reference
    sources (mm). ``None``: :func:`mne_wasserstein.compute_ground_metric`
    of ``src_ref`` (geodesic, cached on disk).
solver_params : dict | None
    Other parameters of the estimator (e.g. ``tol``, ``max_iter``, ``q``,
    ``epsilon``, ``gamma``, ``tau`` for MWE).
return_barycenter : bool
    Whether to return the barycenters ``stc_bar`` and ``stc_bar_raw``
    (``"mwe"`` and ``"mtw"``).
n_jobs : int | None
    For ``"mwe"`` and ``"mtw"``: the number of threads of the coordinate
    descent over subjects (``None``: 1)."""
docdict["group_inverse_notes"] = """\
The diagnostics of the fit are attributes of the result
(:class:`GroupInverseResult`): the noise levels ``sigma`` (whitened
units), ``n_iter``, ``objective``, ``alpha_max``, the hyperparameters used
(``params``), the times and channels used, and the fitted ``estimator``.

``alpha`` is relative to the model's ``alpha_max`` on the prepared
(whitened, depth-weighted, scaled) problem. For one subject, ``method=
"lasso"`` solves ``min_x ||y - G x||^2 / (2 n) + alpha alpha_max ||x||_1``
with ``alpha_max = ||G^T y||_inf / n``, and
:func:`mne.inverse_sparse.mixed_norm` with ``loose=0`` and one time sample
solves ``min_x ||y - G x||^2 / 2 + (alpha_mne / 100) ||G^T y||_inf
||x||_1`` on the same ``G`` and ``y`` (MNE whitens without ``nave``,
which scales ``G`` and ``y`` alike and changes neither solution). Multiplied
by ``n``, the first objective is the second when ``alpha = alpha_mne /
100``: the two give the same sources (with ``n_mxne_iter=1`` and
``debias=False``; tested to 1e-4).

Every solver sees the subjects' data in whitened units; ``nave`` is taken
into account, as in :func:`mne.minimum_norm.apply_inverse`. Nothing passed
in (evokeds, forwards, covariances) is modified."""


@dataclass
class GroupInverseResult:
    """The output of :func:`apply_group_inverse` and :func:`apply_mwe`.

    It unpacks as ``stcs, stc_bar = result``; the other attributes are the
    diagnostics of the fit.

    Attributes
    ----------
    stcs : list of SourceEstimate
        Per subject, the sources (A*m, fixed orientation normal to the cortex)
        on the subject's aligned source space: source ``j`` is reference
        source ``j`` (see :func:`align_forwards`).
    stc_bar : SourceEstimate | None
        The group map (``"mwe"`` and ``"mtw"`` only) on the reference source
        space (subject ``src_ref``), in A*m: the unbalanced entropic
        Wasserstein barycenter of the subjects' final sources (positive and
        negative parts apart), recomputed after the fit on the same ground
        metric and ``gamma`` but without the mass floor ``tau`` (so a region
        where no subject has a source gets no mass) and with half the fit's
        ``epsilon`` (half the blur), then set to zero but at the largest
        sources that together hold 90 percent of its mass: exactly sparse,
        with the sign of the sources. Brought to A*m with the mean over
        subjects of the column weights (depth weighting and scaling); at the
        mean of the subjects' times when they differ (``time=None``).
        ``None`` for the other methods or with ``return_barycenter=False``.
        See :ref:`model-barycenter`.
    stc_bar_raw : SourceEstimate | None
        The barycenter of the solver itself (the latent variable of the
        transport term, ``barycenter_`` of the estimator), in the same units
        and on the same source space: entropic, with the floor ``tau`` in
        both signs, so smooth and nowhere exactly zero.
    coef : ndarray, shape (n_subjects, n_sources) | (n_subjects, n_sources, n_times)
        The same sources (A*m) in reference source order (source ``j`` of
        every subject is reference source ``j``), e.g. for
        :mod:`mne_wasserstein.metrics`.
    method : str
        The method.
    params : dict
        The hyperparameters used: those of the estimator (``alpha``,
        ``beta``, and e.g. ``epsilon_``/``gamma_`` as resolved by MWE) and
        of the preparation (``depth``).
    times : ndarray, shape (n_subjects,) | (n_times,)
        The time (s) fitted for each subject (a single time or the peak of
        the global field power), or the times of the window (every sample).
    ch_names : list of list of str
        Per subject, the channels used.
    rank : ndarray of int, shape (n_subjects,)
        Per subject, the rank of the whitener (the number of whitened data
        dimensions).
    sigma : ndarray, shape (n_subjects,) | (n_subjects, n_times)
        Per subject, the noise level in whitened units (1 if the noise
        covariance and ``nave`` describe the noise exactly): the
        concomitant estimate of ``"mwe"``; for the other methods the root
        mean square of the whitened residual.
    n_iter : int | ndarray
        The solver's iterations (``n_iter_`` of the estimator).
    objective : list | None
        The objective after each outer iteration (``"mwe"``, ``"mtw"``),
        in the solver's internal units.
    alpha_max : float | ndarray
        The solver's ``alpha_max_``, the scale of ``alpha``, in the solver's
        units.
    estimator : object
        The fitted estimator of :mod:`mne_wasserstein.solvers`.
    """

    stcs: list
    stc_bar: object
    stc_bar_raw: object
    coef: np.ndarray
    method: str
    params: dict
    times: np.ndarray
    ch_names: list
    rank: np.ndarray
    sigma: np.ndarray
    n_iter: object
    objective: object
    alpha_max: object
    estimator: object = field(repr=False)

    def __iter__(self):
        """Unpack as ``stcs, stc_bar``."""
        return iter((self.stcs, self.stc_bar))


def _check_time(time, tmin, tmax):
    if isinstance(time, str):
        if time != "all":
            raise ValueError(f"time must be None, a float or 'all', got {time!r}")
    elif time is not None:
        if not isinstance(time, (int, float, np.number)) or isinstance(time, bool):
            raise TypeError(f"time must be None, a float or 'all', got {time!r}")
        if tmin is not None or tmax is not None:
            raise ValueError(
                "tmin and tmax select a window: give them or time, not both"
            )
    if tmin is not None and tmax is not None and tmin > tmax:
        raise ValueError(f"tmin ({tmin}) must be <= tmax ({tmax})")


def _time_indices(evokeds, time, tmin, tmax, subjects):
    """Check the times against the data; return the candidate samples.

    Returns
    -------
    idx : list of array of int
        Per subject, the sample of ``time`` (a float), or the samples of the
        window (``time`` None or ``"all"``).
    """
    idx = []
    for evoked, label in zip(evokeds, subjects, strict=True):
        times, half = evoked.times, 0.5 / evoked.info["sfreq"]
        if time is not None and time != "all":
            if not times[0] - half <= time <= times[-1] + half:
                raise ValueError(
                    f"Subject {label}: time={time} s is outside the data "
                    f"({times[0]:.3f} to {times[-1]:.3f} s)"
                )
            idx.append(np.array([np.argmin(np.abs(times - time))]))
            continue
        lo = times[0] if tmin is None else tmin
        hi = times[-1] if tmax is None else tmax
        window = np.flatnonzero((times >= lo - half) & (times <= hi + half))
        if len(window) == 0:
            raise ValueError(
                f"Subject {label}: no sample between tmin={tmin} and "
                f"tmax={tmax} (data from {times[0]:.3f} to {times[-1]:.3f} s)"
            )
        idx.append(window)
    if time == "all":
        first = evokeds[0].times[idx[0]]
        for s in range(1, len(idx)):
            other = evokeds[s].times[idx[s]]
            if len(other) != len(first) or not np.allclose(
                other, first, atol=0.5 / evokeds[0].info["sfreq"]
            ):
                raise ValueError(
                    "time='all' fits the subjects sample by sample: the window "
                    f"must hold the same times for all subjects ({subjects[0]}: "
                    f"{len(first)} samples from {first[0]:.3f} s, {subjects[s]}: "
                    f"{len(other)} from {other[0]:.3f} s)"
                )
    return idx


def _gfp_peak(y, window):
    """Return the sample of the window where the whitened data peak in power."""
    return window[[np.argmax(np.sum(y[:, window] ** 2, axis=0))]]


def _stc(data, src, order, tmin, tstep, subject):
    """Build a SourceEstimate on ``src`` from rows in reference order."""
    data = data if data.ndim == 2 else data[:, np.newaxis]
    rows = np.empty_like(data)
    rows[order] = data
    vertices = [np.zeros(0, int), np.zeros(0, int)]
    for s in src:
        vertices[int(s["id"] == FIFF.FIFFV_MNE_SURF_RIGHT_HEMI)] = np.asarray(
            s["vertno"]
        )
    return SourceEstimate(rows, vertices, tmin=tmin, tstep=tstep, subject=subject)


def _common_src(forwards):
    """Return the source space shared by all forwards (``src_ref=None``)."""
    src = forwards[0]["src"]
    for fwd in forwards[1:]:
        same = len(fwd["src"]) == len(src) and all(
            a.get("subject_his_id") == b.get("subject_his_id")
            and np.array_equal(a["vertno"], b["vertno"])
            for a, b in zip(fwd["src"], src, strict=True)
        )
        if not same:
            raise ValueError(
                "The forwards are on different source spaces: src_ref (the "
                "reference source space, e.g. mne.setup_source_space('fsaverage', "
                "'ico4', add_dist=False)) is needed to align them."
            )
    _check_surface_src(src, "The forwards' source space")
    return src


def _resolve_ground_metric(ground_metric, src_ref, subjects_dir, n_sources):
    from ..ground_metric import GroundMetric, compute_ground_metric

    if ground_metric is None:
        ground_metric = compute_ground_metric(src_ref, subjects_dir=subjects_dir)
    if isinstance(ground_metric, GroundMetric):
        vertno = [np.asarray(s["vertno"]) for s in src_ref]
        if len(vertno) != len(ground_metric.vertices) or not all(
            np.array_equal(a, b)
            for a, b in zip(vertno, ground_metric.vertices, strict=True)
        ):
            raise ValueError(
                "The ground metric is not on the reference source space (its "
                "vertices differ from src_ref's)"
            )
    elif hasattr(ground_metric, "shape") and ground_metric.shape != (
        n_sources,
        n_sources,
    ):
        raise ValueError(
            f"ground_metric has shape {ground_metric.shape}, expected "
            f"({n_sources}, {n_sources}) for the reference sources"
        )
    return ground_metric


def _sharp_barycenter(est, X, Y):
    """Recompute the barycenter of the final sources, sharp (``stc_bar``).

    The unbalanced barycenter (both signs, one batched call) of the
    estimator's ``coef_`` without the mass floor ``tau``, with
    ``SHARP_EPSILON_FACTOR`` times its epsilon, in the solver's internal
    units (those of ``_WassersteinEstimator._fit_arrays``: unit rms column
    and unit largest rms measurement, since the entropic barycenter is not
    homogeneous in the masses), then kept at the largest sources holding
    ``SHARP_MASS_FRACTION`` of its mass per time sample.

    Returns
    -------
    bary : ndarray, shape (n_sources, n_times)
        In the unit of ``coef_`` (column-weighted, scaled).
    """
    coef = est.coef_ if est.coef_.ndim == 3 else est.coef_[:, :, np.newaxis]
    x_scale = np.sqrt(np.mean([np.mean(x**2) for x in X]))
    y_scale = max(
        np.linalg.norm(y if y.ndim == 2 else y[:, None], axis=0).max() / np.sqrt(len(y))
        for y in Y
    )
    unit = y_scale / x_scale if y_scale > 0 else 1.0
    p, n_times = coef.shape[1:]
    # (p, S, 2 n_times): positive then negative parts of each time sample
    A = np.concatenate([np.maximum(coef, 0), np.maximum(-coef, 0)], axis=2)
    A = A.transpose(1, 0, 2) / unit
    solved = A.any(axis=(0, 1))
    if not solved.any():
        return np.zeros((p, n_times))
    epsilon = est.epsilon_
    if not isinstance(est.ground_metric, KernelOperator):  # else fixed epsilon
        epsilon = SHARP_EPSILON_FACTOR * epsilon
    res = unbalanced_barycenter(
        A[:, :, solved],
        est.ground_metric,
        epsilon=epsilon,
        gamma=est.gamma_,
        backend=est.backend,
    )
    parts = np.zeros((p, 2 * n_times))
    parts[:, solved] = to_numpy(res.barycenter)
    bary = (parts[:, :n_times] - parts[:, n_times:]) * unit
    for t in range(n_times):
        mass = np.abs(bary[:, t])
        order = np.argsort(mass)[::-1]
        n_keep = np.searchsorted(
            np.cumsum(mass[order]), SHARP_MASS_FRACTION * mass.sum()
        )
        bary[order[n_keep + 1 :], t] = 0.0
    logger.info(
        f"Barycenter of the final sources (epsilon {epsilon:.3g}, gamma "
        f"{est.gamma_:.3g}): {np.count_nonzero(bary.any(axis=1))} sources hold "
        f"{SHARP_MASS_FRACTION:.0%} of its mass"
    )
    return bary


def _barycenter_stc(bary, problem, src_ref, times, all_times):
    """Build a barycenter (n_sources[, n_times]) on ``src_ref``, in A*m."""
    bary = bary if bary.ndim == 2 else bary[:, None]
    bary = bary * problem.source_std.mean(axis=0)[:, np.newaxis]
    return _stc(
        bary,
        src_ref,
        np.arange(len(bary)),
        times[0] if all_times else float(np.mean(times)),
        1.0 / problem.sfreq[0],
        src_ref[0]["subject_his_id"],
    )


def _noise_levels(est, X, Y, coef):
    """Return MWE's noise levels, else the rms of the whitened residual (S, T)."""
    if getattr(est, "concomitant", False):
        sigma = np.asarray(est.sigma_)
        return sigma if sigma.ndim == 2 else sigma[:, np.newaxis]
    return np.array(
        [
            np.linalg.norm((y if y.ndim == 2 else y[:, None]) - x @ c, axis=0)
            / np.sqrt(len(x))
            for x, y, c in zip(X, Y, coef, strict=True)
        ]
    )


def _fitted_params(est, depth):
    """Return the hyperparameters used: the estimator's and ``depth``."""
    params = {k: v for k, v in est.get_params().items() if k != "ground_metric"}
    for name in ("epsilon_", "gamma_"):
        if hasattr(est, name):
            params[name] = getattr(est, name)
    params["depth"] = depth
    return params


@dataclass(frozen=True)
class _Request:
    """The checked arguments of one :func:`apply_group_inverse` call.

    Attributes
    ----------
    method : _Method
        The model.
    params : dict
        The estimator's parameters (but the ground metric).
    evokeds, forwards, noise_covs : list
        One of each per subject.
    subjects : list of str
        The subject of each forward.
    labels : list of str
        ``"k (subject)"``: how messages name subject ``k``.
    ch_names : list of list of str
        Per subject, the channels used.
    samples : list of ndarray of int
        Per subject, the sample of ``time`` (a float), or the samples of the
        window (``time`` None or ``"all"``).
    time : None | float | "all"
        The ``time`` argument.
    depth : dict | None
        The keyword arguments of the depth prior.
    """

    method: _Method
    params: dict
    evokeds: list
    forwards: list
    noise_covs: list
    subjects: list
    labels: list
    ch_names: list
    samples: list
    time: object
    depth: object


def _check_options(method, loose, pick_ori, solver_params):
    """Check the options that do not depend on the data; return the model."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if loose not in (0, 0.0) or isinstance(loose, bool):
        raise ValueError(
            f"only loose=0 (fixed orientation, normal to the cortex) is supported, "
            f"got {loose!r}"
        )
    if pick_ori not in (None, "normal"):
        raise ValueError(
            f"pick_ori must be None or 'normal' (fixed orientation), got {pick_ori!r}"
        )
    if not isinstance(solver_params, dict):
        raise TypeError(f"solver_params must be a dict, got {type(solver_params)}")
    return _METHODS[method]


def _validate(
    evokeds,
    forwards,
    noise_cov,
    *,
    method,
    alpha,
    beta,
    solver_params,
    depth,
    loose,
    pick_ori,
    time,
    tmin,
    tmax,
):
    """Check everything that needs only the inputs, before any work (step 1).

    Returns
    -------
    request : _Request
        The checked arguments.
    """
    evokeds = _check_evokeds(evokeds)
    forwards = _check_forwards(forwards)
    if len(evokeds) != len(forwards):
        raise ValueError(
            f"Got {len(evokeds)} evokeds and {len(forwards)} forwards: one of each "
            "per subject is needed"
        )
    if len(evokeds) == 0:
        raise ValueError("evokeds is empty")
    solver_params = {} if solver_params is None else solver_params
    model = _check_options(method, loose, pick_ori, solver_params)
    _check_time(time, tmin, tmax)
    depth = _check_depth(depth)
    noise_covs = _check_covs(noise_cov, evokeds)
    params = model.estimator_params(alpha, beta, solver_params)
    for fwd in forwards:
        _check_surface_src(fwd["src"], "The forward's source space")
    subjects = [fwd["src"][0]["subject_his_id"] for fwd in forwards]
    labels = [f"{k} ({name})" for k, name in enumerate(subjects)]
    ch_names = [
        _check_data(*args)
        for args in zip(evokeds, forwards, noise_covs, labels, strict=True)
    ]
    return _Request(
        method=model,
        params=params,
        evokeds=evokeds,
        forwards=forwards,
        noise_covs=noise_covs,
        subjects=subjects,
        labels=labels,
        ch_names=ch_names,
        samples=_time_indices(evokeds, time, tmin, tmax, labels),
        time=time,
        depth=depth,
    )


@dataclass(frozen=True)
class _Problem:
    """The arrays of one fit, and what maps its sources back to MNE objects.

    Attributes
    ----------
    group : GroupProblem
        The whitened, depth-weighted and scaled gains and data (all times).
    Y : list of ndarray, shape (n_s,) | (n_s, n_times)
        Per subject, the whitened data fitted.
    samples : list of ndarray of int
        Per subject, the samples fitted.
    src_ref : SourceSpaces
        The reference (common) source space.
    subjects_dir : Path | None
        The subjects folder (``None`` without ``src_ref``).
    srcs : list of SourceSpaces
        Per subject, the aligned source space.
    orders : list of ndarray of int
        Per subject, the source of ``srcs[s]`` of each reference source.
    """

    group: object
    Y: list
    samples: list
    src_ref: object
    subjects_dir: object
    srcs: list
    orders: list


def _build_problem(request, src_ref, subjects_dir):
    """Align the forwards on the common source space, build the arrays (step 2).

    Returns
    -------
    problem : _Problem
        The arrays fitted and the aligned source spaces.
    """
    if src_ref is None:
        src_ref = _common_src(request.forwards)
        aligned = [(fwd, np.arange(fwd["nsource"])) for fwd in request.forwards]
    else:
        _check_surface_src(src_ref, "src_ref")
        subjects_dir = get_subjects_dir(subjects_dir, raise_error=True)
        aligned = [_align_one(fwd, src_ref, subjects_dir) for fwd in request.forwards]
    forwards = [fwd for fwd, _ in aligned]
    orders = [order for _, order in aligned]
    group = _prepare_group(
        request.evokeds,
        forwards,
        request.noise_covs,
        orders,
        request.ch_names,
        request.depth,
        request.labels,
    )
    samples = request.samples
    if request.time is None:
        samples = [_gfp_peak(y, k) for y, k in zip(group.Y, samples, strict=True)]
    Y = [
        y[:, k] if request.time == "all" else y[:, k[0]]
        for y, k in zip(group.Y, samples, strict=True)
    ]
    return _Problem(
        group=group,
        Y=Y,
        samples=samples,
        src_ref=src_ref,
        subjects_dir=subjects_dir,
        srcs=[fwd["src"] for fwd in forwards],
        orders=orders,
    )


def _fit(request, problem, ground_metric, n_jobs):
    """Build the model's estimator and fit it on the arrays."""
    n_sources = problem.group.X[0].shape[1]
    if request.method.transport:
        ground_metric = _resolve_ground_metric(
            ground_metric, problem.src_ref, problem.subjects_dir, n_sources
        )
    est = request.method.make_estimator(request.params, ground_metric, n_jobs)
    logger.info(
        f"Fitting {type(est).__name__} on {len(problem.Y)} subjects, "
        f"{n_sources} sources, "
        f"{len(problem.samples[0]) if request.time == 'all' else 1} time sample(s)"
    )
    est.fit(problem.group.X, problem.Y)
    return est


def _build_result(request, problem, est, return_barycenter):
    """Bring the fitted sources back to MNE objects, in A*m (step 3).

    Returns
    -------
    result : GroupInverseResult
        The sources and the diagnostics of the fit.
    """
    group, all_times = problem.group, request.time == "all"
    coef = est.coef_ if est.coef_.ndim == 3 else est.coef_[:, :, np.newaxis]
    amps = coef * group.source_std[:, :, np.newaxis]
    stcs = [
        _stc(
            amps[s],
            problem.srcs[s],
            problem.orders[s],
            group.times[s][k[0]],
            1.0 / group.sfreq[s],
            request.subjects[s],
        )
        for s, k in enumerate(problem.samples)
    ]
    times = (
        group.times[0][problem.samples[0]]
        if all_times
        else np.array(
            [t[k[0]] for t, k in zip(group.times, problem.samples, strict=True)]
        )
    )
    stc_bar = stc_bar_raw = None
    if return_barycenter and request.method.transport:
        stc_bar, stc_bar_raw = (
            _barycenter_stc(b, group, problem.src_ref, times, all_times)
            for b in (_sharp_barycenter(est, group.X, problem.Y), est.barycenter_)
        )
    sigma = _noise_levels(est, group.X, problem.Y, coef)
    return GroupInverseResult(
        stcs=stcs,
        stc_bar=stc_bar,
        stc_bar_raw=stc_bar_raw,
        coef=amps if all_times else amps[:, :, 0],
        method=request.method.name,
        params=_fitted_params(est, request.depth),
        times=times,
        ch_names=group.ch_names,
        rank=np.array([len(x) for x in group.X]),
        sigma=sigma if all_times else sigma[:, 0],
        n_iter=est.n_iter_,
        objective=getattr(est, "objective_", None),
        alpha_max=est.alpha_max_ if hasattr(est, "alpha_max_") else None,
        estimator=est,
    )


@verbose
@fill_doc
def apply_group_inverse(
    evokeds,
    forwards,
    noise_cov=None,
    *,
    method="mwe",
    alpha=0.05,
    beta=None,
    src_ref=None,
    subjects_dir=None,
    depth=0.9,
    loose=0.0,
    time=None,
    tmin=None,
    tmax=None,
    pick_ori=None,
    ground_metric=None,
    solver_params=None,
    return_barycenter=True,
    n_jobs=None,
    verbose=None,
):
    """Solve the inverse problem of a group of subjects jointly.

    %(group_inverse_body)s

    Parameters
    ----------
    %(group_inverse_data)s
    method : str
        The model (:mod:`mne_wasserstein.solvers`): ``"mwe"`` (:class:`MWE
        <mne_wasserstein.solvers.MWE>`), ``"mtw"`` (:class:`MTW
        <mne_wasserstein.solvers.MTW>`), ``"grouplasso"``
        (:class:`~mne_wasserstein.solvers.GroupLasso`), ``"dirty"``
        (:class:`~mne_wasserstein.solvers.DirtyModel`), ``"lasso"`` and
        ``"relasso"`` (:class:`~mne_wasserstein.solvers.IndependentLasso`
        with ``q=1`` and ``q=0.5``: each subject alone).
    alpha : float
        The regularisation relative to the model's ``alpha_max``, in (0, 1].
        For ``"lasso"`` it is ``mixed_norm``'s ``alpha / 100`` (see Notes).
    beta : float | None
        The coupling: the transport weight of ``"mwe"``/``"mtw"``, the ratio
        of the l1 to the l21 threshold of ``"dirty"`` (``None``: the
        estimator's default). The other methods take ``None`` (or 0).
    %(group_inverse_rest)s
    %(verbose)s

    Returns
    -------
    result : GroupInverseResult
        Unpacks as ``stcs, stc_bar``; also holds the diagnostics.

    Notes
    -----
    %(group_inverse_notes)s
    """
    request = _validate(
        evokeds,
        forwards,
        noise_cov,
        method=method,
        alpha=alpha,
        beta=beta,
        solver_params=solver_params,
        depth=depth,
        loose=loose,
        pick_ori=pick_ori,
        time=time,
        tmin=tmin,
        tmax=tmax,
    )
    problem = _build_problem(request, src_ref, subjects_dir)
    est = _fit(request, problem, ground_metric, n_jobs)
    return _build_result(request, problem, est, return_barycenter)


@verbose
@fill_doc
def apply_mwe(
    evokeds,
    forwards,
    noise_cov=None,
    *,
    alpha=0.05,
    beta=0.03,
    src_ref=None,
    subjects_dir=None,
    depth=0.9,
    loose=0.0,
    time=None,
    tmin=None,
    tmax=None,
    pick_ori=None,
    ground_metric=None,
    solver_params=None,
    return_barycenter=True,
    n_jobs=None,
    verbose=None,
):
    """Minimum Wasserstein Estimates of a group of subjects (MWE_0.5).

    The shortcut of :func:`apply_group_inverse` with ``method="mwe"``
    (:class:`~mne_wasserstein.solvers.MWE`, ``q=0.5`` by default).

    %(group_inverse_body)s

    Parameters
    ----------
    %(group_inverse_data)s
    alpha : float
        The l0.5 (l1 in the first reweighting round) regularisation relative
        to ``alpha_max`` of :class:`~mne_wasserstein.solvers.MWE`, in (0, 1].
    beta : float
        The weight of the transport term relative to ``alpha_max`` (>= 0; 0
        decouples the subjects).
    %(group_inverse_rest)s
    %(verbose)s

    Returns
    -------
    result : GroupInverseResult
        Unpacks as ``stcs, stc_bar``; also holds the diagnostics.

    Notes
    -----
    %(group_inverse_notes)s
    """
    # the first statement: locals() holds the arguments, and only them
    return apply_group_inverse(method="mwe", **locals())
