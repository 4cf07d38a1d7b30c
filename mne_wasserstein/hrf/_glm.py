"""The Rank-1 GLM estimator (Pedregosa et al., NeuroImage 2015)."""

import warnings
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from .._docs import fill_doc
from .._estimator import Estimator
from .._logging import logger, use_log_level
from .._warnings import ConvergenceWarning
from ._design import (
    BASES,
    _hrf_times,
    basis_functions,
    event_regressors,
    nuisance_basis,
    project_out,
)
from ._io import _as_list, _check_events, _load_runs
from ._maps import hrf_peak_latency, hrf_width
from ._solver import rank_one_solver

MODES = ("r1glm", "r1glms", "glm")
_CHUNK = 2000  # voxels per solver call: the batched arrays stay in cache
_FINE = 20  # samples per t_r for the peak latency and width maps


@dataclass
class _Design:
    """Nuisance-free event regressors of all runs and their conditions."""

    PE: list  # per run: (n_scans_r, n_events, n_basis), events of all runs
    Q: list  # per run: orthonormal nuisance basis (n_scans_r, rank)
    event_cond: np.ndarray  # (n_events,) condition index of each event
    n_cond: int

    def regressors(self, weights):
        """Return per run the (n_scans_r, n_regressors * n_basis) design.

        ``weights`` (n_events, n_regressors) makes regressors from events.
        """
        return [
            np.einsum("nmd,mk->nkd", pe, weights).reshape(len(pe), -1) for pe in self.PE
        ]

    def condition_weights(self):
        return np.eye(self.n_cond)[self.event_cond]

    def trial_mixing(self, t):
        """Return the regressors of the design of trial t, as weights.

        Rows: trial t, the other trials of its condition (if any) and every
        other condition; columns: [event t, condition 0, ..., n_cond - 1].
        """
        c = self.event_cond[t]
        eye = np.eye(1 + self.n_cond)
        rows = [eye[0]]
        if (self.event_cond == c).sum() > 1:
            rows.append(eye[1 + c] - eye[0])
        rows += [eye[1 + c2] for c2 in range(self.n_cond) if c2 != c]
        return np.array(rows)


@dataclass(frozen=True)
class _ChunkFit:
    """The fit of one block of voxels.

    Attributes
    ----------
    coefs : ndarray, shape (n_basis, n_voxels) | (n_basis, n_conditions, n_voxels)
        The HRFs in basis coefficients (one per condition in ``"glm"`` mode).
    betas : ndarray, shape (n_regressors, n_voxels)
        The amplitudes.
    scores : ndarray, shape (n_voxels,)
        The fraction of the variance explained.
    converged : ndarray of bool, shape (n_voxels,)
        Which voxels converged.
    n_iter : int
        The most iterations of a solver call (0 in ``"glm"`` mode).
    """

    coefs: np.ndarray
    betas: np.ndarray
    scores: np.ndarray
    converged: np.ndarray
    n_iter: int


def _fit_glm(G, xty, yty, d, B, ref):
    """Fit one free HRF per condition by least squares (``"glm"`` mode).

    Each HRF is normalised and signed as the rank-1 HRFs are, its norm and
    sign going to the amplitude.
    """
    n_vox = xty.shape[1]
    W = np.linalg.lstsq(G, xty, rcond=None)[0]
    rss = yty - 2 * (xty * W).sum(0) + (W * (G @ W)).sum(0)
    W = W.reshape(-1, d, n_vox).transpose(1, 0, 2)  # (d, k, voxels)
    sampled = np.einsum("tb,bkv->tkv", B, W)
    norm = np.linalg.norm(sampled, axis=0)
    sign = np.where(np.einsum("tkv,t->kv", sampled, B @ ref) < 0, -1.0, 1.0)
    scale = sign / np.where(norm > 0, norm, 1.0)
    converged = np.ones(n_vox, bool)
    return _ChunkFit(W * scale, sign * norm, _explained(rss, yty), converged, 0)


def _fit_trials(G, xty, yty, d, weights, trials, solve):
    """Fit the condition-level HRF, then each trial from it (``"r1glms"`` mode)."""
    n_events, n_vox = len(weights), xty.shape[1]
    xty_e = xty.reshape(n_events, d, n_vox)
    xty_c = np.einsum("mdv,mk->kdv", xty_e, weights)
    res = rank_one_solver(G, xty_c.reshape(-1, n_vox), yty, d, **solve)
    betas = np.empty((n_events, n_vox))
    converged, n_iter = res.converged.copy(), res.n_iter
    for t, (mixing, G_t) in enumerate(trials):
        aug = np.concatenate([xty_e[t : t + 1], xty_c])
        xty_t = np.einsum("jr,rdv->jdv", mixing, aug).reshape(-1, n_vox)
        res_t = rank_one_solver(G_t, xty_t, yty, d, hrf_init=res.hrf, **solve)
        betas[t] = res_t.betas[0]
        converged &= res_t.converged
        n_iter = max(n_iter, res_t.n_iter)
    return _ChunkFit(res.hrf, betas, _explained(res.objective, yty), converged, n_iter)


def _gram(Xs):
    return sum(x.T @ x for x in Xs)


def _explained(rss, tss):
    """Return ``1 - rss / tss``, and 0 where ``tss`` is 0."""
    return np.where(tss > 0, 1 - rss / np.where(tss > 0, tss, 1.0), 0.0)


def _expression_weights(expression, conditions):
    """Return one weight per condition from a contrast such as ``"a - 0.5 * b"``.

    The expression is read by nilearn's parser
    (:func:`nilearn.glm.expression_to_contrast_vector`), as in nilearn's
    ``compute_contrast``.
    """
    from nilearn.glm import expression_to_contrast_vector

    try:
        return expression_to_contrast_vector(expression, conditions)
    except ValueError as err:
        if isinstance(err.__cause__, NameError):  # pandas' UndefinedVariableError
            raise ValueError(
                f"Unknown trial types in the contrast {expression!r} "
                f"({err.__cause__}); the model knows {conditions}"
            ) from None
        raise ValueError(
            f"Cannot read the contrast {expression!r}: use a condition name, an "
            "expression like 'a - 2 * b', a dict or weights"
        ) from err


@fill_doc
class RankOneGLM(Estimator):
    """Voxel-wise HRF estimation with the Rank-1 GLM.

    Every voxel gets one HRF shared by all conditions and one amplitude per
    condition (Pedregosa et al., NeuroImage 2015):
    ``min ||y - X vec(h beta^T)||^2`` subject to ``||h|| = 1`` and
    ``<h, h_ref> > 0`` (``h_ref``: the canonical HRF), with drifts and
    confounds in the model (they are projected out of the data and of the
    design). Events are impulses (duration 0) or boxcars.

    Parameters
    ----------
    basis : "3hrf" | "fir" | "canonical"
        The HRF basis. ``"3hrf"``: SPM's canonical HRF and its time and
        dispersion derivatives. ``"fir"``: one coefficient every ``t_r``
        over ``hrf_length`` (piecewise-linear HRF). ``"canonical"``: the
        canonical HRF only (the standard GLM).
    mode : "r1glm" | "r1glms" | "glm"
        ``"r1glm"``: one HRF per voxel shared by all conditions.
        ``"r1glms"``: single-trial amplitudes (for decoding); trial ``t``
        gets its own Rank-1 GLM with one regressor for ``t``, one for the
        other trials of its condition and one per other condition, started
        from the ``"r1glm"`` solution. ``"glm"``: ordinary least squares on
        the expanded design (one HRF per voxel and condition).
    hrf_length : float
        The support of the HRF (s).
    t_r : float | None
        The repetition time (s). ``None``: from the image header or the
        spacing of ``frame_times``; an explicit value must agree with them.
    drift_model : "cosine" | None
        ``"cosine"``: discrete cosines below ``high_pass`` and a constant, as
        in nilearn; ``None``: the constant only.
    high_pass : float
        The cut-off frequency of the cosine drifts (Hz).
    mask_img : None | Nifti-like | SurfaceImage | masker
        For image inputs: a mask image, or a nilearn ``NiftiMasker`` or
        ``SurfaceMasker`` (fitted or not). ``None``: nilearn's default mask
        of the first run.
    tol : float
        The tolerance of :func:`rank_one_solver`.
    max_iter : int
        The maximum number of iterations of :func:`rank_one_solver` per voxel.
    %(n_jobs)s
        Blocks of voxels are solved in parallel threads.
    verbose : bool | str | int | None
        Verbosity of ``fit`` (see :func:`mne.verbose`); ``None``: the
        current MNE log level.

    Attributes
    ----------
    conditions_ : list of str
        The conditions (sorted ``trial_type`` values).
    regressor_names_ : list of str
        The rows of ``betas_``: the conditions, or in ``"r1glms"`` mode one
        ``"<trial_type>_<i>"`` per event (runs in order, events in the order
        given, ``i`` counting the trials of each condition).
    hrf_times_ : ndarray, shape (n_hrf_times,)
        The times (s) of the HRF samples: every ``t_r`` from 0.
    hrfs_ : ndarray, shape (n_hrf_times, n_voxels)
        The HRFs, with unit Euclidean norm over ``hrf_times_`` and a positive
        inner product with the canonical HRF. In ``"r1glms"`` mode, those of
        the ``"r1glm"`` fit. In ``"glm"`` mode, one per condition: shape
        (n_hrf_times, n_conditions, n_voxels).
    hrf_coefs_ : ndarray, shape (n_basis, n_voxels)
        The same HRFs as basis coefficients ((n_basis, n_conditions,
        n_voxels) in ``"glm"`` mode).
    betas_ : ndarray, shape (n_regressors, n_voxels)
        The amplitudes of the normalised HRFs: the response to one event of
        regressor ``i`` is ``betas_[i]`` times the HRF (impulse events;
        boxcars integrate the HRF over their duration in seconds).
    scores_ : ndarray, shape (n_voxels,)
        The fraction of variance explained, ``1 - RSS / ||P y||^2`` with
        ``P`` removing drifts and confounds (of the ``"r1glm"`` fit in
        ``"r1glms"`` mode).
    voxel_mask_ : ndarray of bool, shape (n_voxels,)
        The voxels that were fitted (finite in every run); the others are 0
        in every attribute.
    t_r_ : float
        The repetition time used (s).
    masker_ : nilearn masker | None
        The masker of image inputs (``None`` for arrays).
    n_iter_ : int
        The largest number of solver iterations over all fits.

    Notes
    -----
    Regressors are computed in closed form: an impulse (duration 0) is a
    unit-area Dirac at the onset, a boxcar has unit height (times the
    modulation). nilearn instead samples an impulse as a boxcar of
    ``t_r / oversampling`` seconds and scales its kernels to sum to 1, so
    its amplitudes differ from ``betas_`` by a factor per basis function, and
    a condition that mixes impulses and boxcars weighs them differently in
    the two packages.

    Unlike the reference implementation (``hrf_estimation``), the HRF is
    constrained by its norm (not by pinning a coefficient), events may have
    durations, and the single-trial objective is the Rank-1 GLM of each
    trial's design. The solver is :func:`rank_one_solver`.
    """

    def __init__(
        self,
        basis="3hrf",
        mode="r1glm",
        hrf_length=32.0,
        t_r=None,
        drift_model="cosine",
        high_pass=0.01,
        mask_img=None,
        tol=1e-10,
        max_iter=1000,
        n_jobs=None,
        verbose=None,
    ):
        self.basis = basis
        self.mode = mode
        self.hrf_length = hrf_length
        self.t_r = t_r
        self.drift_model = drift_model
        self.high_pass = high_pass
        self.mask_img = mask_img
        self.tol = tol
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_params(self):
        if self.basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {self.basis!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.hrf_length > 0:
            raise ValueError(f"hrf_length must be positive, got {self.hrf_length}")
        if self.drift_model not in ("cosine", None):
            raise ValueError(
                f"drift_model must be 'cosine' or None, got {self.drift_model!r}"
            )
        if not self.high_pass >= 0:
            raise ValueError(f"high_pass must be >= 0, got {self.high_pass}")

    def _basis(self, times):
        return basis_functions(self.basis, times, self.t_r_, self.hrf_length)

    def _hrf_ref(self):
        """Return the canonical HRF in basis coefficients (sign reference)."""
        if self.basis != "fir":
            return np.eye(self._basis(0.0).shape[-1])[0]
        times = _hrf_times(self.hrf_length, self.t_r_)
        return basis_functions("canonical", times, self.t_r_, self.hrf_length)[:, 0]

    def _nuisance(self, runs, confounds):
        Q = []
        conf = [None] * len(runs.data) if confounds is None else confounds
        for r, (ft, c) in enumerate(zip(runs.frame_times, conf, strict=True)):
            if c is not None:
                c = np.asarray(c, dtype=np.float64)
                c = c[:, np.newaxis] if c.ndim == 1 else c
                if c.shape[0] != len(ft) or c.ndim != 2 or not np.isfinite(c).all():
                    raise ValueError(
                        f"Run {r}: confounds must be finite, shape ({len(ft)}, "
                        f"n_confounds), got {c.shape}"
                    )
            Q.append(nuisance_basis(ft, self.drift_model, self.high_pass, c))
        return Q

    def _events(self, events, frame_times):
        return [
            _check_events(ev, ft, self.hrf_length, r)
            for r, (ev, ft) in enumerate(
                zip(
                    _as_list(events, len(frame_times), "events"),
                    frame_times,
                    strict=True,
                )
            )
        ]

    def _event_design(self, events, frame_times, Q, conditions):
        """Return projected event regressors of all runs, and event types.

        The events of a run have zero regressors in the other runs.
        """
        n_events = [len(e[0]) for e in events]
        start = np.concatenate([[0], np.cumsum(n_events)])
        PE = []
        for r, ((on, du, mo, _), ft) in enumerate(
            zip(events, frame_times, strict=True)
        ):
            E = np.zeros((len(ft), start[-1], self._basis(0.0).shape[-1]))
            E[:, start[r] : start[r + 1]] = event_regressors(
                ft, on, du, mo, self.basis, self.t_r_, self.hrf_length
            )
            PE.append(E if Q is None else project_out(Q[r], E))
        types = np.concatenate([e[3] for e in events])
        unknown = sorted(set(types) - set(conditions))
        if unknown:
            raise ValueError(
                f"Unknown trial types {unknown}; the model knows {conditions}"
            )
        event_cond = np.searchsorted(conditions, types)
        return _Design(PE, Q, event_cond, len(conditions)), types

    @fill_doc
    def fit(self, run_imgs, events, confounds=None, frame_times=None):
        """Estimate the HRFs and amplitudes of every voxel.

        Parameters
        ----------
        run_imgs : array | Nifti-like | SurfaceImage | list
            One run or a list of runs: arrays of shape (n_scans, n_voxels),
            4D Nifti images (or paths) or nilearn ``SurfaceImage`` objects.
        events : DataFrame | dict | path | list
            The events of each run (one table per run): ``onset`` and
            ``duration`` (s), optional ``trial_type`` (default ``"dummy"``)
            and ``modulation`` (default 1), as in nilearn.
        confounds : array | DataFrame | list | None
            Confounds of each run, shape (n_scans, n_confounds), added to the
            nuisance model with the drifts.
        frame_times : array | list of array | None
            The acquisition time of every scan of each run (s). ``None``:
            ``arange(n_scans) * t_r``.

        Returns
        -------
        self : RankOneGLM
            The fitted estimator.
        """
        self._check_params()
        with use_log_level(self.verbose):
            runs = _load_runs(run_imgs, self.mask_img, self.t_r, frame_times)
            self.t_r_, self.masker_ = runs.t_r, runs.masker
            self.voxel_mask_ = runs.voxel_mask
            events = self._events(events, runs.frame_times)
            n_runs = len(runs.data)
            confounds = (
                None if confounds is None else _as_list(confounds, n_runs, "confounds")
            )
            Q = self._nuisance(runs, confounds)
            self.conditions_ = sorted(set().union(*(set(e[3]) for e in events)))
            design, types = self._event_design(
                events, runs.frame_times, Q, self.conditions_
            )
            if self.mode == "r1glms":
                counts = {c: 0 for c in self.conditions_}
                self.regressor_names_ = []
                for t in types:
                    self.regressor_names_.append(f"{t}_{counts[t]}")
                    counts[t] += 1
            else:
                self.regressor_names_ = list(self.conditions_)
            self.hrf_times_ = _hrf_times(self.hrf_length, self.t_r_)
            self._fit_voxels(design, runs)
        return self

    def _fit_voxels(self, design, runs):
        # MNE's progress bar; importing MNE also sets up the handler of the
        # "mne" logger (hrf imports MNE only here)
        from mne.utils import ProgressBar

        idx = np.flatnonzero(runs.voxel_mask)
        d = self._basis(0.0).shape[-1]
        Xc = design.regressors(design.condition_weights())
        G = _gram(Xc)
        if np.linalg.matrix_rank(G) < G.shape[0]:
            warnings.warn(
                "The expanded design is rank deficient (too many basis functions "
                "or collinear conditions for the number of scans): the estimates "
                "are not unique.",
                UserWarning,
                stacklevel=3,
            )
        trials = None
        if self.mode == "r1glms":
            Xs = [pe.reshape(len(pe), -1) for pe in design.PE]
            trials = []
            for t in range(len(design.event_cond)):
                mixing = design.trial_mixing(t)
                aug = [
                    np.concatenate([pe[:, t : t + 1], x.reshape(len(x), -1, d)], axis=1)
                    for pe, x in zip(design.PE, Xc, strict=True)
                ]
                X_t = [
                    np.einsum("jr,nrd->njd", mixing, a).reshape(len(a), -1) for a in aug
                ]
                trials.append((mixing, _gram(X_t)))
        else:
            Xs = Xc
        B = self._basis(self.hrf_times_)
        ctx = dict(G=G, Xs=Xs, Q=design.Q, data=runs.data, d=d, B=B)
        ctx.update(
            ref=self._hrf_ref(), trials=trials, weights=design.condition_weights()
        )
        chunks = [idx[i : i + _CHUNK] for i in range(0, len(idx), _CHUNK)]
        logger.info(
            f"Rank-1 GLM ({self.mode}, {self.basis}): {len(idx)} voxels, "
            f"{len(self.regressor_names_)} regressors, {d} basis functions"
        )
        with ProgressBar(len(chunks), mesg="voxel blocks") as bar:

            def run(cols):
                out = self._fit_chunk(cols, **ctx)
                bar.update_with_increment_value(1)
                return out

            with threadpool_limits(1, user_api="blas"):
                outs = Parallel(n_jobs=self.n_jobs, prefer="threads")(
                    delayed(run)(cols) for cols in chunks
                )
        n_vox = len(runs.voxel_mask)
        k = len(self.conditions_)
        shape = (d, k, n_vox) if self.mode == "glm" else (d, n_vox)
        self.hrf_coefs_ = np.zeros(shape)
        self.betas_ = np.zeros((len(self.regressor_names_), n_vox))
        self.scores_ = np.zeros(n_vox)
        self.n_iter_ = max((out.n_iter for out in outs), default=0)
        n_bad = 0
        for cols, out in zip(chunks, outs, strict=True):
            self.hrf_coefs_[..., cols] = out.coefs
            self.betas_[:, cols] = out.betas
            self.scores_[cols] = out.scores
            n_bad += int((~out.converged).sum())
        self.hrfs_ = np.einsum("tb,b...->t...", B, self.hrf_coefs_)
        if n_bad:
            warnings.warn(
                f"The Rank-1 GLM did not converge in {self.max_iter} iterations "
                f"for {n_bad} voxel(s); increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _fit_chunk(self, cols, G, Xs, Q, data, d, B, ref, trials, weights):
        """Fit the voxels ``cols`` (a :class:`_ChunkFit`)."""
        xty, yty = 0.0, 0.0
        for X, q, Y in zip(Xs, Q, data, strict=True):
            Yc = Y[:, cols]
            xty = xty + X.T @ Yc
            yty = yty + (project_out(q, Yc) ** 2).sum(axis=0)
        if self.mode == "glm":
            return _fit_glm(G, xty, yty, d, B, ref)
        solve = dict(basis_values=B, hrf_ref=ref, tol=self.tol, max_iter=self.max_iter)
        if self.mode == "r1glms":
            return _fit_trials(G, xty, yty, d, weights, trials, solve)
        res = rank_one_solver(G, xty, yty, d, **solve)
        score = _explained(res.objective, yty)
        return _ChunkFit(res.hrf, res.betas, score, res.converged, res.n_iter)

    # ------------------------------------------------------------ outputs
    def _check_fitted(self):
        if not hasattr(self, "hrfs_"):
            raise ValueError(f"This {type(self).__name__} is not fitted yet: call fit")

    def get_hrfs(self, times=None):
        """Sample the fitted HRFs at any times.

        Parameters
        ----------
        times : array, shape (n_times,) | None
            Times after the onset (s). ``None``: ``hrf_times_``.

        Returns
        -------
        hrfs : ndarray, shape (n_times, n_voxels)
            The HRFs (same normalisation as ``hrfs_``; shape (n_times,
            n_conditions, n_voxels) in ``"glm"`` mode). FIR HRFs are
            piecewise linear between their samples.
        """
        self._check_fitted()
        times = self.hrf_times_ if times is None else np.asarray(times, float)
        return np.einsum("tb,b...->t...", self._basis(times), self.hrf_coefs_)

    def _weights(self):
        """Basis coefficients of each condition's response (d, k, voxels)."""
        if self.mode == "glm":
            return self.hrf_coefs_ * self.betas_
        if self.mode == "r1glms":
            raise ValueError(
                "Single-trial amplitudes (mode='r1glms') do not predict other runs: "
                "use mode='r1glm' or 'glm'"
            )
        return self.hrf_coefs_[:, np.newaxis] * self.betas_

    def predict(self, events, frame_times):
        """Predict the BOLD response to events (without drifts or confounds).

        Parameters
        ----------
        events : DataFrame | dict | path
            The events of one run, as in :meth:`fit`; their trial types must
            be among ``conditions_``.
        frame_times : array, shape (n_scans,)
            The scan times (s).

        Returns
        -------
        bold : ndarray, shape (n_scans, n_voxels)
            The predicted signal.
        """
        self._check_fitted()
        ft = np.asarray(frame_times, dtype=np.float64)
        W = self._weights()
        events = self._events([events], [ft])
        design, _ = self._event_design(events, [ft], None, self.conditions_)
        X = design.regressors(design.condition_weights())[0]
        return X @ W.transpose(1, 0, 2).reshape(X.shape[1], -1)

    def score(self, run_imgs, events, confounds=None, frame_times=None):
        """Fraction of variance of new runs explained by the fitted model.

        The drifts and confounds of the new runs are removed from both the
        data and the prediction, as in the fit.

        Parameters
        ----------
        run_imgs : array | Nifti-like | SurfaceImage | list
            New runs in the space of the fit.
        events : DataFrame | dict | path | list
            Their events.
        confounds : array | DataFrame | list | None
            Their confounds.
        frame_times : array | list of array | None
            Their scan times (s); ``None``: every ``t_r_``.

        Returns
        -------
        r2 : ndarray, shape (n_voxels,)
            ``1 - ||P (y - y_pred)||^2 / ||P y||^2`` summed over runs (0 for
            voxels left out of the fit or without variance).
        """
        self._check_fitted()
        runs = _load_runs(run_imgs, self.masker_, self.t_r_, frame_times)
        if runs.data[0].shape[1] != len(self.voxel_mask_):
            raise ValueError(
                f"The runs have {runs.data[0].shape[1]} voxels, the model "
                f"{len(self.voxel_mask_)}"
            )
        n_runs = len(runs.data)
        events = _as_list(events, n_runs, "events")
        confounds = (
            None if confounds is None else _as_list(confounds, n_runs, "confounds")
        )
        Q = self._nuisance(runs, confounds)
        rss, tss = 0.0, 0.0
        for r in range(n_runs):
            pred = self.predict(events[r], runs.frame_times[r])
            rss = rss + (project_out(Q[r], runs.data[r] - pred) ** 2).sum(axis=0)
            tss = tss + (project_out(Q[r], runs.data[r]) ** 2).sum(axis=0)
        return np.where(self.voxel_mask_ & runs.voxel_mask, _explained(rss, tss), 0.0)

    def _contrast_weights(self, contrast_def):
        conds = self.conditions_
        if isinstance(contrast_def, str):
            return _expression_weights(contrast_def, conds)
        if isinstance(contrast_def, dict):
            unknown = sorted(set(contrast_def) - set(conds))
            if unknown:
                raise ValueError(
                    f"Unknown trial types in the contrast: {unknown}; the model "
                    f"knows {conds}"
                )
            return np.array([float(contrast_def.get(c, 0.0)) for c in conds])
        weights = np.asarray(contrast_def, dtype=float)
        if weights.shape != (len(conds),):
            raise ValueError(
                f"Contrast weights must have shape ({len(conds)},) (one per "
                f"condition: {conds}), got {weights.shape}"
            )
        return weights

    def compute_contrast(self, contrast_def):
        """Compute the effect size of a linear contrast of conditions.

        Parameters
        ----------
        contrast_def : str | dict | array
            A condition name, an expression such as ``"a - b"`` or
            ``"(a + b) / 2"`` (read by nilearn's parser,
            :func:`nilearn.glm.expression_to_contrast_vector`), a dict
            ``{condition: weight}`` or one weight per condition
            (``conditions_``).

        Returns
        -------
        effect : ndarray, shape (n_voxels,) | image
            ``sum_c w_c beta_c`` (in ``"r1glms"`` mode, ``beta_c`` is the mean
            of the trials of condition ``c``), as an image in the space of
            the input for image inputs.
        """
        self._check_fitted()
        w = self._contrast_weights(contrast_def)
        if self.mode == "r1glms":
            cond = [name.rsplit("_", 1)[0] for name in self.regressor_names_]
            weights = np.array(
                [[c == k for k in self.conditions_] for c in cond], float
            )
            betas = (weights / weights.sum(axis=0)).T @ self.betas_
        else:
            betas = self.betas_
        return self._to_output(w @ betas)

    def _to_output(self, data):
        if self.masker_ is None:
            return data
        return self.masker_.inverse_transform(data)

    def get_img(self, name):
        """Return an attribute or a derived map in the space of the input.

        Parameters
        ----------
        name : "hrfs" | "betas" | "scores" | "peak_latency" | "width"
            ``"peak_latency"`` and ``"width"`` (full width at half maximum)
            are computed on the fitted HRFs sampled every ``t_r / 20`` s
            (see :func:`hrf_peak_latency` and :func:`hrf_width`).

        Returns
        -------
        img : image | ndarray
            A Nifti image or ``SurfaceImage`` for image inputs (4D for
            ``"hrfs"``, one volume per time of ``hrf_times_``, and for
            ``"betas"``, one per regressor; in ``"glm"`` mode one per
            condition for the maps and condition-major for ``"hrfs"``), the
            array itself (voxels last) for array inputs.
        """
        self._check_fitted()
        names = ("hrfs", "betas", "scores", "peak_latency", "width")
        if name not in names:
            raise ValueError(f"name must be one of {names}, got {name!r}")
        if name in ("hrfs", "betas", "scores"):
            data = getattr(self, name + "_")
            if self.mode == "glm" and name == "hrfs":
                data = data.transpose(1, 0, 2).reshape(-1, data.shape[-1])
        else:
            func = hrf_peak_latency if name == "peak_latency" else hrf_width
            times = np.arange(len(self.hrf_times_) * _FINE + 1) * self.t_r_ / _FINE
            B = self._basis(times)
            n_vox = len(self.voxel_mask_)
            data = np.concatenate(
                [
                    func(
                        np.einsum(
                            "tb,b...->t...", B, self.hrf_coefs_[..., s : s + _CHUNK]
                        ),
                        times,
                    )
                    for s in range(0, n_vox, _CHUNK)
                ],
                axis=-1,
            )
            data = np.where(self.voxel_mask_, data, 0.0)
        return self._to_output(data)
