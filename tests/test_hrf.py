import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import gamma

from mne_wasserstein.hrf import (
    RankOneGLM,
    hrf_peak_latency,
    hrf_width,
    make_hrf_model,
    rank_one_solver,
)
from mne_wasserstein.hrf._design import (
    _hrf_times,
    basis_functions,
    cosine_drift,
    event_regressors,
)
from mne_wasserstein.solvers import ConvergenceWarning

# nilearn 0.14 warns about the default of its own maskers
# nilearn's FirstLevelModel warns about impulses and given masks
pytestmark = [
    pytest.mark.filterwarnings("ignore:boolean values for 'standardize'"),
    pytest.mark.filterwarnings("ignore:The following conditions contain events"),
    pytest.mark.filterwarnings("ignore:.*Generation of a mask has been requested"),
    pytest.mark.filterwarnings("ignore:The same contrast will be used"),
]
T_R, L = 2.0, 32.0
CONDS = np.array(["a", "b", "c"])


def two_gamma(t, peak):
    """A non-canonical HRF: SPM-like with another peak time."""
    return gamma.pdf(t, peak) - 0.35 * gamma.pdf(t, peak + 8)


def true_coefs(basis, n_voxels, rng):
    """HRFs that lie in the basis (FIR: two-gamma HRFs at the knots)."""
    if basis == "fir":
        knots = _hrf_times(L, T_R)[:, np.newaxis]
        return two_gamma(knots, rng.uniform(5, 9, n_voxels))
    if basis == "3hrf":
        return np.array([[1.0], [0.0], [0.0]]) + rng.normal(0, 0.5, (3, n_voxels)) * [
            [0],
            [1],
            [1],
        ]
    return np.ones((1, n_voxels))


def make_events(rng, n_events=45, n_scans=300, durations=False):
    """Impulses (durations False), boxcars ("boxcar") or both (True)."""
    onsets = np.sort(rng.uniform(0, (n_scans - 10) * T_R, n_events))
    if durations == "boxcar":
        duration = rng.uniform(1.0, 4.0, n_events)
    elif durations:
        duration = rng.choice([0.0, 1.0, 3.5], n_events)
    else:
        duration = np.zeros(n_events)
    return dict(
        onset=onsets,
        duration=duration,
        trial_type=CONDS[rng.integers(0, 3, n_events)],
        modulation=rng.uniform(0.5, 1.5, n_events) if durations else np.ones(n_events),
    )


def simulate(
    basis, n_voxels, rng, *, snr=np.inf, n_runs=1, durations=False, confounds=None
):
    """Runs of BOLD from the package's own generative model, with drifts.

    Returns the runs, their events, the true HRF coefficients (d, V) and
    amplitudes (3, V).
    """
    coefs = true_coefs(basis, n_voxels, rng)
    betas = rng.uniform(0.5, 2.0, (3, n_voxels)) * rng.choice([-1, 1], (3, n_voxels))
    runs, events = [], []
    for r in range(n_runs):
        ev = make_events(rng, durations=durations)
        ft = np.arange(300) * T_R
        E = event_regressors(
            ft, ev["onset"], ev["duration"], ev["modulation"], basis, T_R, L
        )
        cond = np.searchsorted(CONDS, ev["trial_type"])
        signal = np.einsum("ned,dv,ev->nv", E, coefs, betas[cond])
        drift = cosine_drift(ft, 0.01)
        y = signal + 100 + drift @ rng.normal(0, 5, (drift.shape[1], n_voxels))
        if confounds is not None:
            y += confounds[r] @ rng.normal(0, 5, (confounds[r].shape[1], n_voxels))
        if np.isfinite(snr):
            y += signal.std(axis=0) / snr * rng.standard_normal(y.shape)
        runs.append(y)
        events.append(ev)
    return runs, events, coefs, betas


def normalised_truth(basis, coefs, betas):
    """The truth under the documented normalisation (unit norm on the TR
    grid, positive overlap with the canonical HRF)."""
    times = _hrf_times(L, T_R)
    hrfs = basis_functions(basis, times, T_R, L) @ coefs
    ref = basis_functions("canonical", times, T_R, L)[:, 0]
    scale = np.linalg.norm(hrfs, axis=0) * np.sign(ref @ hrfs)
    return hrfs / scale, betas * scale


def design_matrix(basis, events, ft):
    """The expanded design (n_scans, 3 n_basis), condition-major."""
    E = event_regressors(
        ft, events["onset"], events["duration"], events["modulation"], basis, T_R, L
    )
    S = np.eye(3)[np.searchsorted(CONDS, events["trial_type"])]
    return np.einsum("ned,ek->nkd", E, S).reshape(len(ft), -1)


# ------------------------------------------------------------------ bases
def test_basis_closed_forms():
    t = np.linspace(-5, 40, 9001)
    # FIR tents: the identity at the knots, a partition of unity inside
    knots = _hrf_times(L, T_R)
    np.testing.assert_allclose(basis_functions("fir", knots, T_R, L), np.eye(16))
    inside = (t >= 0) & (t <= knots[-1])
    fir = basis_functions("fir", t, T_R, L)
    np.testing.assert_allclose(fir[inside].sum(axis=1), 1.0, atol=1e-12)
    assert not fir[t < 0].any() and not fir[t > L].any()
    # the time derivative is d/dt of the canonical HRF (central differences
    # on a 5 ms grid: error O(dt^2) ~ 1e-6)
    vals = basis_functions("3hrf", t, T_R, L)
    dt = t[1] - t[0]
    deriv = np.gradient(vals[:, 0], dt)
    smooth = (t > 0.1) & (t < L - 0.1)  # away from the truncation at L
    np.testing.assert_allclose(vals[smooth, 1], deriv[smooth], atol=1e-5)
    # the integrals are integrals (trapezoids every 0.1 ms, aligned with the
    # FIR knots: error < 1e-8)
    grid = np.arange(0, 350001) * 1e-4
    for basis in ("3hrf", "fir"):
        vals = basis_functions(basis, grid, T_R, L)
        cum = np.concatenate(
            [
                np.zeros((1, vals.shape[1])),
                np.cumsum((vals[1:] + vals[:-1]) / 2, axis=0) * 1e-4,
            ]
        )
        for s in (0.3, 4.7, 31.9, 35.0):
            ints = basis_functions(basis, s, T_R, L, integral=True)
            np.testing.assert_allclose(ints, cum[int(round(s * 1e4))], atol=1e-8)


def test_boxcar_regressors_integrate_impulses():
    """A boxcar event is the integral of impulses over its duration."""
    ft = np.arange(40) * T_R
    on, dur, mod = np.array([3.3]), np.array([5.5]), np.array([1.7])
    for basis in ("3hrf", "fir"):
        box = event_regressors(ft, on, dur, mod, basis, T_R, L)[:, 0]
        s = np.linspace(on[0], on[0] + dur[0], 2201)  # midpoint rule, 2.5 ms
        mid = (s[1:] + s[:-1]) / 2
        impulses = event_regressors(
            ft, mid, np.zeros(len(mid)), np.full(len(mid), mod[0]), basis, T_R, L
        )
        # midpoint rule on piecewise smooth functions: error < 1e-5
        np.testing.assert_allclose(box, impulses.sum(axis=1) * 2.5e-3, atol=1e-5)


def test_canonical_matches_nilearn_spm():
    glm = pytest.importorskip("nilearn.glm.first_level")
    dt = T_R / 50
    ours = basis_functions("canonical", np.arange(800) * dt, T_R, L)[:, 0]
    theirs = glm.spm_hrf(T_R, 50)
    # nilearn shifts its kernel by one sample and samples 32 s with 800
    # points: the shapes agree to a correlation of 1 - 1e-4
    assert np.corrcoef(ours, theirs)[0, 1] > 1 - 1e-4


# ----------------------------------------------------------------- solver
def problem(basis, n_voxels, rng, snr=np.inf):
    runs, events, coefs, betas = simulate(basis, n_voxels, rng, snr=snr)
    ft = np.arange(300) * T_R
    X = design_matrix(basis, events[0], ft)
    D = cosine_drift(ft, 0.01)
    P = np.eye(len(ft)) - D @ np.linalg.pinv(D)
    PX, PY = P @ X, P @ runs[0]
    B = basis_functions(basis, _hrf_times(L, T_R), T_R, L)
    return PX, PY, B, coefs, betas


@pytest.mark.parametrize("basis", ["3hrf", "fir"])
def test_solver_exact_recovery_from_canonical_start(basis):
    rng = np.random.default_rng(0)
    PX, PY, B, coefs, betas = problem(basis, 50, rng)
    d = B.shape[1]
    ref = np.linalg.lstsq(
        B, basis_functions("canonical", _hrf_times(L, T_R), T_R, L)[:, 0]
    )[0]
    res = rank_one_solver(
        PX.T @ PX,
        PX.T @ PY,
        (PY**2).sum(0),
        d,
        basis_values=B,
        hrf_ref=ref,
        hrf_init=ref,  # far from the truth: the iterations do the work
        tol=1e-24,
        max_iter=5000,
    )
    assert res.converged.all() and res.n_iter > 3
    hrfs, amps = normalised_truth(basis, coefs, betas)
    # noise-free: the minimum is the truth, reached to the precision of a
    # relative decrease of 1e-24 per iteration (about 1e-12 in h)
    np.testing.assert_allclose(B @ res.hrf, hrfs, atol=1e-6)
    np.testing.assert_allclose(res.betas, amps, atol=1e-6 * np.abs(amps).max())
    # the documented constraint
    sampled = B @ res.hrf
    np.testing.assert_allclose(np.linalg.norm(sampled, axis=0), 1.0, rtol=1e-12)
    assert (sampled.T @ (B @ ref) > 0).all()
    assert (res.objective <= 1e-12 * (PY**2).sum(0)).all()


def test_solver_local_optimum_and_monotone():
    """Noisy data: no descent left (L-BFGS-B from the solution does not
    improve it) and the objective never increases along the iterations."""
    rng = np.random.default_rng(1)
    PX, PY, B, _, _ = problem("fir", 20, rng, snr=0.5)
    gram, xty, yty = PX.T @ PX, PX.T @ PY, (PY**2).sum(0)
    d = B.shape[1]
    res = rank_one_solver(gram, xty, yty, d, basis_values=B, tol=1e-14, max_iter=2000)
    assert res.converged.all() and (res.decrease <= 1e-14).all()
    for v in range(5):

        def f(x, y=PY[:, v]):
            r = y - PX @ np.kron(x[d:], x[:d])
            gw = -2 * (PX.T @ r).reshape(3, d)
            return r @ r, np.concatenate([x[d:] @ gw, gw @ x[:d]])

        x0 = np.concatenate([res.hrf[:, v], res.betas[:, v]])
        fun, grad = f(x0)
        # the residual matches, and the gradient vanishes (to the 1e-14
        # relative decrease per iteration: |grad| ~ 1e-7 ||X^T y||)
        assert abs(fun - res.objective[v]) < 1e-10 * yty[v]
        assert np.linalg.norm(grad) < 1e-5 * np.linalg.norm(xty[:, v])
        ref = minimize(f, x0, jac=True, method="L-BFGS-B", options=dict(ftol=1e-15))
        assert ref.fun >= res.objective[v] - 1e-10 * yty[v]
    objectives = [
        rank_one_solver(gram, xty, yty, d, basis_values=B, max_iter=m).objective
        for m in range(6)
    ]
    # each iteration is an exact block minimisation: no increase beyond
    # rounding (1e-12 relative)
    assert (np.diff(objectives, axis=0) <= 1e-12 * yty).all()


def test_solver_bad_inputs():
    gram, xty, yty = np.eye(6), np.ones((6, 4)), np.ones(4)
    with pytest.raises(ValueError, match="divisor"):
        rank_one_solver(gram, xty, yty, 4)
    with pytest.raises(ValueError, match="symmetric"):
        rank_one_solver(np.triu(np.ones((6, 6))), xty, yty, 3)
    with pytest.raises(ValueError, match="xty"):
        rank_one_solver(gram, np.ones((5, 4)), yty, 3)
    with pytest.raises(ValueError, match="yty"):
        rank_one_solver(gram, xty, np.ones(3), 3)
    with pytest.raises(ValueError, match="finite"):
        rank_one_solver(gram, np.full((6, 4), np.nan), yty, 3)
    with pytest.raises(ValueError, match="hrf_init"):
        rank_one_solver(gram, xty, yty, 3, hrf_init=np.ones(2))
    with pytest.raises(ValueError, match="hrf_ref"):
        rank_one_solver(gram, xty, yty, 3, hrf_ref=np.zeros(3))
    # a voxel without data: zero amplitudes, converged at once
    res = rank_one_solver(gram, np.zeros((6, 2)), np.zeros(2), 3)
    assert res.converged.all() and not res.betas.any() and res.n_iter == 0


# ---------------------------------------------------------------- estimator
@pytest.mark.parametrize("basis", ["3hrf", "fir", "canonical"])
def test_rank_one_glm_noise_free(basis):
    """Two runs, boxcars with modulations, drifts and confounds: exact."""
    rng = np.random.default_rng(2)
    confounds = [rng.standard_normal((300, 2)) for _ in range(2)]
    runs, events, coefs, betas = simulate(
        basis, 30, rng, n_runs=2, durations=True, confounds=confounds
    )
    model = RankOneGLM(basis=basis, t_r=T_R, tol=1e-20).fit(runs, events, confounds)
    hrfs, amps = normalised_truth(basis, coefs, betas)
    # noise-free data in the model: exact up to rounding (1e-6 as accepted)
    np.testing.assert_allclose(model.hrfs_, hrfs, atol=1e-6)
    np.testing.assert_allclose(model.betas_, amps, atol=1e-6 * np.abs(amps).max())
    np.testing.assert_allclose(model.scores_, 1.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(model.hrfs_, axis=0), 1.0, rtol=1e-12)
    assert model.conditions_ == list(CONDS) and model.regressor_names_ == list(CONDS)
    # the drifts and confounds are in the model: without the confounds
    # the fit is no longer exact
    worse = RankOneGLM(basis=basis, t_r=T_R).fit(runs, events)
    assert worse.scores_.max() < 0.999


@pytest.mark.parametrize("basis", ["3hrf", "fir"])
def test_rank_one_glm_snr_1(basis):
    """SNR 1 (signal std = noise std) over 300 scans, truth in the basis."""
    rng = np.random.default_rng(3)
    runs, events, coefs, _ = simulate(basis, 200, rng, snr=1.0)
    model = RankOneGLM(basis=basis, t_r=T_R).fit(runs[0], events[0])
    hrfs, _ = normalised_truth(basis, coefs, np.ones((3, 200)))
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(model.hrfs_.T, hrfs.T, strict=True)]
    # acceptance: median correlation > 0.9 (measured: 0.96 FIR, 0.998 3-HRF)
    assert np.median(corr) > 0.9


def test_glm_mode_is_least_squares():
    """mode='glm' is OLS on the expanded design with the drift columns."""
    rng = np.random.default_rng(4)
    runs, events, _, _ = simulate("fir", 10, rng, snr=2.0, durations=True)
    ft = np.arange(300) * T_R
    X = np.column_stack([design_matrix("fir", events[0], ft), cosine_drift(ft, 0.01)])
    W = np.linalg.lstsq(X, runs[0], rcond=None)[0][:48].reshape(3, 16, -1)
    model = RankOneGLM(basis="fir", mode="glm", t_r=T_R).fit(runs[0], events[0])
    # FIR coefficients are the HRF samples: responses = hrfs_ * betas_
    # (a 300 x 61 least-squares problem: agreement to 1e-9 relative)
    responses = model.hrfs_ * model.betas_
    np.testing.assert_allclose(
        responses, W.transpose(1, 0, 2), atol=1e-9 * np.abs(W).max()
    )
    assert model.hrfs_.shape == (16, 3, 10)
    # the canonical basis: the Rank-1 GLM is the standard GLM
    glm = RankOneGLM(basis="canonical", mode="glm", t_r=T_R).fit(runs[0], events[0])
    r1 = RankOneGLM(basis="canonical", t_r=T_R).fit(runs[0], events[0])
    np.testing.assert_allclose(r1.betas_, glm.betas_, rtol=1e-10)
    np.testing.assert_allclose(r1.scores_, glm.scores_, rtol=1e-10)


def nifti_run(runs, shape, t_r=T_R):
    nib = pytest.importorskip("nibabel")
    data = np.stack([y.T.reshape(*shape, -1) for y in runs])
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    imgs = []
    for d in data:
        img = nib.Nifti1Image(d.astype(np.float64), affine)
        img.header.set_zooms((3.0, 3.0, 3.0, t_r))
        imgs.append(img)
    mask = nib.Nifti1Image(np.ones(shape, np.int8), affine)
    return imgs, mask


@pytest.mark.parametrize("basis", ["canonical", "3hrf"])
@pytest.mark.parametrize("durations", [False, "boxcar"])
def test_glm_mode_matches_nilearn(basis, durations):
    """Data simulated with nilearn's own design, fitted by both."""
    first_level = pytest.importorskip("nilearn.glm.first_level")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(5)
    events = pd.DataFrame(make_events(rng, durations=durations))
    hrf_model = {"canonical": "spm", "3hrf": "spm + derivative + dispersion"}[basis]
    ft = np.arange(300) * T_R
    dm = first_level.make_first_level_design_matrix(
        ft, events, hrf_model=hrf_model, drift_model="cosine", high_pass=0.01
    ).to_numpy()
    n_task = 3 * (1 if basis == "canonical" else 3)
    coef = rng.normal(0, 1, (dm.shape[1], 27))
    coef[:-1] /= dm[:, :-1].std(axis=0)[:, np.newaxis]
    coef[-1] = 100.0  # the constant
    y = dm @ coef
    y += (dm[:, :n_task] @ coef[:n_task]).std(axis=0) * rng.standard_normal(y.shape)
    imgs, mask = nifti_run([y], (3, 3, 3))
    flm = first_level.FirstLevelModel(
        t_r=T_R,
        hrf_model=hrf_model,
        noise_model="ols",
        drift_model="cosine",
        high_pass=0.01,
        mask_img=mask,
        signal_scaling=False,
        minimize_memory=False,
    ).fit(imgs[0], events)
    model = RankOneGLM(basis=basis, mode="glm", mask_img=mask).fit(imgs[0], events)
    masker = model.masker_
    residuals = getattr(flm, "residuals_", None) or flm.residuals  # nilearn < 0.14
    rss_nilearn = (masker.transform(residuals[0]) ** 2).sum(axis=0)
    D = cosine_drift(ft, 0.01)
    tss = ((y - D @ np.linalg.lstsq(D, y, rcond=None)[0]) ** 2).sum(axis=0)
    rss = (1 - model.scores_) * tss
    # nilearn's regressors lag ours by 1-2 samples of t_r / 50 and round the
    # onsets to that grid (this package integrates exactly): its columns are
    # 1-2 % away from our span, so the residuals agree to 1 %
    np.testing.assert_allclose(rss, rss_nilearn, rtol=1e-2)
    if basis == "canonical":
        # the effect maps are proportional (one scale: the kernels differ in
        # normalisation; nilearn's impulses are boxcars of t_r / 50 s)
        effect = flm.compute_contrast("a - b", output_type="effect_size")
        ours = model.compute_contrast("a - b")
        corr = np.corrcoef(
            np.ravel(masker.transform(effect)), np.ravel(masker.transform(ours))
        )
        assert corr[0, 1] > 0.999


def test_nilearn_round_trip():
    """Nifti in, Nifti out, and FirstLevelModel with make_hrf_model."""
    first_level = pytest.importorskip("nilearn.glm.first_level")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(6)
    runs, events, coefs, betas = simulate("fir", 8, rng, snr=4.0, n_runs=2)
    imgs, mask = nifti_run(runs, (2, 2, 2))
    events = [pd.DataFrame(e) for e in events]
    model = RankOneGLM(basis="fir", mask_img=mask).fit(imgs, events)
    assert model.t_r_ == T_R  # from the header
    hrf_img = model.get_img("hrfs")
    assert hrf_img.shape == (2, 2, 2, len(model.hrf_times_))
    np.testing.assert_allclose(model.masker_.transform(hrf_img), model.hrfs_)
    beta_img = model.get_img("betas")
    assert beta_img.shape == (2, 2, 2, 3)
    for name in ("scores", "peak_latency", "width"):
        assert model.get_img(name).shape == (2, 2, 2)
    latency = model.masker_.transform(model.get_img("peak_latency"))[0]
    true_latency = hrf_peak_latency(
        basis_functions("fir", np.arange(321) * 0.1, T_R, L) @ coefs,
        np.arange(321) * 0.1,
    )
    # SNR 4: the peak sample of each voxel is at most one knot away
    assert np.abs(latency - true_latency).max() <= T_R
    # a region-average HRF as nilearn's hemodynamic model
    hrf_model = make_hrf_model(model.hrfs_.mean(axis=1), model.hrf_times_)
    flm = first_level.FirstLevelModel(
        t_r=T_R, hrf_model=hrf_model, mask_img=mask, signal_scaling=False
    ).fit(imgs, events)
    columns = flm.design_matrices_[0].columns
    assert f"a_{hrf_model.__name__}" in columns
    effect = flm.compute_contrast(f"a_{hrf_model.__name__}", output_type="effect_size")
    assert effect.shape == (2, 2, 2)


def test_surface_round_trip():
    surface = pytest.importorskip("nilearn.surface")
    rng = np.random.default_rng(7)
    runs, events, _, _ = simulate("3hrf", 8, rng, snr=4.0)
    coords = rng.standard_normal((4, 3))
    faces = np.array([[0, 1, 2], [1, 2, 3]])
    mesh = {h: surface.InMemoryMesh(coords, faces) for h in ("left", "right")}
    data = {"left": runs[0][:, :4].T, "right": runs[0][:, 4:].T}
    img = surface.SurfaceImage(mesh=mesh, data=data)
    model = RankOneGLM(t_r=T_R).fit(img, events[0])
    ref = RankOneGLM(t_r=T_R).fit(runs[0], events[0])
    np.testing.assert_allclose(model.hrfs_, ref.hrfs_, atol=1e-12)
    out = model.get_img("peak_latency")
    assert isinstance(out, surface.SurfaceImage)
    np.testing.assert_allclose(
        np.concatenate([out.data.parts["left"], out.data.parts["right"]]).ravel(),
        ref.get_img("peak_latency"),
    )
    with pytest.raises(ValueError, match="t_r"):
        RankOneGLM().fit(img, events[0])  # no header: t_r is needed


def single_trial_data(rng, n_voxels=40, n_events=40):
    """Single-trial amplitudes with a delayed, non-canonical HRF."""
    ev = make_events(rng, n_events=n_events)
    ft = np.arange(300) * T_R
    times = np.arange(0, L, 0.01)
    true_hrf = two_gamma(times, 8.5)  # peaks ~2.5 s after the canonical
    onset = ev["onset"][:, np.newaxis]
    lag = ft[:, np.newaxis, np.newaxis] - onset[np.newaxis]  # (n, e, 1)
    E = np.interp(lag, times, true_hrf, left=0, right=0)[..., 0]
    trial_betas = rng.uniform(0.5, 3.0, (n_events, n_voxels))
    signal = E @ trial_betas
    y = signal + 100 + signal.std(axis=0) * rng.standard_normal(signal.shape)
    return y, ev, trial_betas


def test_r1glms_single_trials():
    rng = np.random.default_rng(8)
    y, ev, trial_betas = single_trial_data(rng)

    def corr(model):
        return np.median(
            [
                np.corrcoef(a, b)[0, 1]
                for a, b in zip(model.betas_.T, trial_betas.T, strict=True)
            ]
        )

    r1glms = RankOneGLM(basis="3hrf", mode="r1glms", t_r=T_R).fit(y, ev)
    lss = RankOneGLM(basis="canonical", mode="r1glms", t_r=T_R).fit(y, ev)
    assert r1glms.betas_.shape == (40, 40)
    assert r1glms.regressor_names_[0] == f"{ev['trial_type'][0]}_0"
    # seeded: the Rank-1 GLM separates the trials better than the
    # canonical-HRF least-squares-separate GLM (measured 0.63 vs 0.52)
    assert corr(r1glms) > corr(lss) + 0.05
    # the canonical basis is the least-squares-separate GLM itself: for
    # trial 0, OLS on [trial, other trials of its condition, the other
    # conditions, drifts]
    ft = np.arange(300) * T_R
    E = event_regressors(
        ft, ev["onset"], ev["duration"], ev["modulation"], "canonical", T_R, L
    )[..., 0]
    same = ev["trial_type"] == ev["trial_type"][0]
    cols = [E[:, 0], E[:, same].sum(1) - E[:, 0]]
    cols += [
        E[:, ev["trial_type"] == c].sum(1) for c in CONDS if c != ev["trial_type"][0]
    ]
    X = np.column_stack(cols + [cosine_drift(ft, 0.01)])
    beta0 = np.linalg.lstsq(X, y, rcond=None)[0][0]
    norm = np.linalg.norm(basis_functions("canonical", _hrf_times(L, T_R), T_R, L))
    # same least-squares problem, betas in units of the unit-norm HRF
    np.testing.assert_allclose(lss.betas_[0], beta0 * norm, rtol=1e-8)
    # contrasts average the trials of each condition
    a = ev["trial_type"] == "a"
    np.testing.assert_allclose(lss.compute_contrast("a"), lss.betas_[a].mean(0))


def test_predict_and_held_out_score():
    rng = np.random.default_rng(9)
    runs, events, _, _ = simulate("fir", 20, rng, snr=1.0, n_runs=2)
    fir = RankOneGLM(basis="fir", t_r=T_R).fit(runs[0], events[0])
    can = RankOneGLM(basis="canonical", t_r=T_R).fit(runs[0], events[0])
    # the delayed HRFs (peaks 4-8 s) are better predicted on the held-out
    # run with estimated HRFs than with the canonical one (seeded; measured
    # median R^2 0.47 vs 0.40, better in 85 % of the voxels)
    s_fir, s_can = fir.score(runs[1], events[1]), can.score(runs[1], events[1])
    assert np.median(s_fir - s_can) > 0
    # noise-free: prediction of a new run is exact
    clean, ev, _, _ = simulate("3hrf", 5, rng, n_runs=2)
    model = RankOneGLM(t_r=T_R).fit(clean[0], ev[0])
    np.testing.assert_allclose(model.score(clean[1], ev[1]), 1.0, atol=1e-9)
    pred = model.predict(ev[1], np.arange(300) * T_R)
    assert pred.shape == (300, 5)
    with pytest.raises(ValueError, match="Unknown trial types"):
        model.predict(
            dict(onset=[1.0], duration=[0.0], trial_type=["z"]), np.arange(300) * T_R
        )
    single = RankOneGLM(mode="r1glms", t_r=T_R).fit(clean[0], ev[0])
    with pytest.raises(ValueError, match="r1glms"):
        single.predict(ev[1], np.arange(300) * T_R)


def test_contrasts():
    rng = np.random.default_rng(10)
    runs, events, _, _ = simulate("3hrf", 6, rng, snr=2.0)
    model = RankOneGLM(t_r=T_R).fit(runs[0], events[0])
    b = dict(zip(model.conditions_, model.betas_, strict=True))
    np.testing.assert_allclose(model.compute_contrast("a - b"), b["a"] - b["b"])
    np.testing.assert_allclose(
        model.compute_contrast("0.5 * a + 0.5*c - 2 * b"),
        0.5 * b["a"] + 0.5 * b["c"] - 2 * b["b"],
    )
    # nilearn's expression parser: parentheses and divisions
    np.testing.assert_allclose(
        model.compute_contrast("(a + b) / 2"), (b["a"] + b["b"]) / 2
    )
    np.testing.assert_allclose(model.compute_contrast({"c": 2.0}), 2 * b["c"])
    np.testing.assert_allclose(model.compute_contrast([1, 0, -1]), b["a"] - b["c"])
    with pytest.raises(ValueError, match="Unknown trial types"):
        model.compute_contrast("a - z")
    with pytest.raises(ValueError, match="Unknown trial types"):
        model.compute_contrast({"z": 1})
    with pytest.raises(ValueError, match="Cannot read"):
        model.compute_contrast("a -")
    with pytest.raises(ValueError, match="one per"):
        model.compute_contrast([1, 0])


def test_nan_voxels_are_masked_out():
    rng = np.random.default_rng(11)
    runs, events, _, _ = simulate("fir", 2500, rng, snr=1.0)  # two voxel blocks
    y = runs[0].copy()
    y[10:20, 3] = np.nan
    y[0, 2100] = np.inf
    with pytest.warns(UserWarning, match="2 voxel"):
        model = RankOneGLM(basis="fir", t_r=T_R, n_jobs=2).fit(y, events[0])
    assert not model.voxel_mask_[[3, 2100]].any() and model.voxel_mask_.sum() == 2498
    for attr in ("hrfs_", "betas_", "scores_"):
        values = getattr(model, attr)
        assert np.isfinite(values).all() and not values[..., [3, 2100]].any()
    keep = model.voxel_mask_
    ref = RankOneGLM(basis="fir", t_r=T_R).fit(y[:, keep], events[0])
    # the other voxels are untouched by the NaNs (and n_jobs): same results
    np.testing.assert_allclose(model.hrfs_[:, keep], ref.hrfs_, atol=1e-12)
    np.testing.assert_allclose(
        model.betas_[:, keep], ref.betas_, rtol=1e-10, atol=1e-12
    )


def test_bad_inputs():
    rng = np.random.default_rng(12)
    runs, events, _, _ = simulate("3hrf", 3, rng, snr=1.0)
    y, ev = runs[0], events[0]
    ft = np.arange(300) * T_R
    late = dict(ev, onset=ev["onset"] + 700.0)
    with pytest.raises(ValueError, match="outside the run"):
        RankOneGLM(t_r=T_R).fit(y, late)
    early = dict(onset=[-100.0], duration=[0.0], trial_type=["a"])
    with pytest.raises(ValueError, match="outside the run"):
        RankOneGLM(t_r=T_R).fit(y, early)
    with pytest.raises(ValueError, match="basis"):
        RankOneGLM(basis="gamma", t_r=T_R).fit(y, ev)
    with pytest.raises(ValueError, match="mode"):
        RankOneGLM(mode="lss", t_r=T_R).fit(y, ev)
    with pytest.raises(ValueError, match="hrf_length"):
        RankOneGLM(hrf_length=0, t_r=T_R).fit(y, ev)
    with pytest.raises(ValueError, match="onset"):
        RankOneGLM(t_r=T_R).fit(y, dict(time=[1.0]))
    with pytest.raises(ValueError, match="durations"):
        RankOneGLM(t_r=T_R).fit(y, dict(ev, duration=-ev["duration"] - 1))
    with pytest.raises(ValueError, match="Set t_r"):
        RankOneGLM().fit(y, ev)
    with pytest.raises(ValueError, match="frame_times"):
        RankOneGLM(t_r=3.0).fit(y, ev, frame_times=ft)
    with pytest.raises(ValueError, match="confounds"):
        RankOneGLM(t_r=T_R).fit(y, ev, confounds=np.ones((299, 2)))
    with pytest.raises(ValueError, match="one entry per run"):
        RankOneGLM(t_r=T_R).fit([y, y], [ev])
    with pytest.raises(ValueError, match="same number of voxels"):
        RankOneGLM(t_r=T_R).fit([y, y[:, :2]], [ev, ev])
    with pytest.raises(ValueError, match="not fitted"):
        RankOneGLM().get_img("hrfs")
    model = RankOneGLM(t_r=T_R).fit(y, ev, frame_times=ft)  # t_r agrees
    with pytest.raises(ValueError, match="name must be"):
        model.get_img("latency")
    imgs, _ = nifti_run(runs, (1, 1, 3))
    with pytest.raises(ValueError, match="does not match the image header"):
        RankOneGLM(t_r=2.5).fit(imgs[0], ev)


def test_convergence_warning_and_clone():
    sklearn_base = pytest.importorskip("sklearn.base")
    rng = np.random.default_rng(13)
    runs, events, _, _ = simulate("fir", 30, rng, snr=0.3)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        RankOneGLM(basis="fir", t_r=T_R, max_iter=1).fit(runs[0], events[0])
    model = RankOneGLM(basis="fir", mode="glm", t_r=T_R)
    clone = sklearn_base.clone(model)
    assert clone.get_params() == model.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clone.fit(runs[0], events[0])


# -------------------------------------------------------------------- maps
def test_peak_latency_and_width_closed_forms():
    times = np.arange(0, 30, 0.01)
    sigma = np.array([1.0, 2.0])
    gauss = np.exp(-((times[:, np.newaxis] - [6.0, 9.0]) ** 2) / (2 * sigma**2))
    # a 0.01 s grid: latency exact to the sample, FWHM = 2 sqrt(2 ln 2) sigma
    # to the error of linear interpolation (1e-5)
    np.testing.assert_allclose(hrf_peak_latency(gauss, times), [6.0, 9.0], atol=1e-9)
    np.testing.assert_allclose(
        hrf_width(gauss, times), 2 * np.sqrt(2 * np.log(2)) * sigma, atol=1e-5
    )
    # piecewise-linear tent: exact
    tent = np.interp(np.arange(7.0), [0, 2, 6], [0, 1, 0])
    assert hrf_width(tent, np.arange(7.0)) == pytest.approx(3.0)
    # undefined: never reaching half the maximum again, or no positive peak
    assert np.isnan(hrf_width(times.copy(), times))
    assert np.isnan(hrf_width(-gauss[:, 0], times))
    with pytest.raises(ValueError, match="one row per time"):
        hrf_width(gauss[:10], times)


def test_make_hrf_model():
    first_level = pytest.importorskip("nilearn.glm.first_level")
    times = np.arange(0, L, T_R)
    hrf = two_gamma(times, 7.0)
    model = make_hrf_model(hrf, times, name="slow")
    assert model.__name__ == "slow"
    kernel = model(T_R, 16)
    dt = T_R / 16
    grid = np.arange(len(kernel)) * dt
    # nilearn's convention: the kernel sums to 1; between samples it is the
    # linear interpolation of the HRF
    assert kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(
        kernel / kernel[16 * 3], np.interp(grid, times, hrf, right=0) / hrf[3]
    )
    events = dict(onset=[10.0, 50.0], duration=[0.0, 0.0], trial_type=["a", "a"])
    pd = pytest.importorskip("pandas")
    dm = first_level.make_first_level_design_matrix(
        np.arange(60) * T_R, pd.DataFrame(events), hrf_model=model
    )
    assert "a_slow" in dm.columns
    # the regressor peaks where the HRF does after each event
    assert dm["a_slow"].idxmax() == pytest.approx(10 + times[np.argmax(hrf)])
    with pytest.raises(ValueError, match="positive integral"):
        make_hrf_model(-hrf, times)
    with pytest.raises(ValueError, match="identifier"):
        make_hrf_model(hrf, times, name="my hrf")


def test_arrays_without_nilearn():
    """The array path never imports nilearn (an optional dependency)."""
    code = (
        "import sys; sys.modules['nilearn'] = None\n"
        "import numpy as np\n"
        "from mne_wasserstein.hrf import RankOneGLM\n"
        "rng = np.random.default_rng(0)\n"
        "events = dict(onset=[10.0, 50.0, 90.0], duration=[0, 0, 2.0])\n"
        "model = RankOneGLM(basis='fir', t_r=2.0, verbose=False)\n"
        "model.fit(rng.standard_normal((80, 4)), events)\n"
        "assert model.hrfs_.shape == (16, 4) and model.masker_ is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
