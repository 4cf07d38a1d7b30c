"""The MNE-facing inverse layer on the synthetic cohorts."""

import copy
import warnings

import mne
import numpy as np
import pytest
from mne.inverse_sparse import mixed_norm

from mne_wasserstein import (
    align_forwards,
    apply_group_inverse,
    apply_mwe,
    compute_ground_metric,
    make_aligned_source_spaces,
)
from mne_wasserstein._demo import _irmxne_lh
from mne_wasserstein.datasets import make_cohort
from mne_wasserstein.inverse import aligned_order
from mne_wasserstein.inverse._apply import _sharp_barycenter
from mne_wasserstein.metrics import localization_error
from mne_wasserstein.ot import unbalanced_barycenter
from mne_wasserstein.simulation import simulate_group_evokeds
from mne_wasserstein.solvers import MWE

LASSO_TIGHT = dict(tol=1e-10, max_iter=100_000)


@pytest.fixture(scope="module")
def sim_meg(cohort_meg):
    """A 4-subject group response in the left hemisphere (overlap 0.5)."""
    return simulate_group_evokeds(cohort_meg, random_state=1, verbose=False)


@pytest.fixture(scope="module")
def src_lh(cohort_meg):
    return cohort_meg.src_ref[:1]


def _ref_order(cohort, s, src_ref):
    """Rows of subject ``s``'s aligned source space in reference order."""
    src = mne.SourceSpaces(list(cohort.src[s][: len(src_ref)]))
    return aligned_order(
        src_ref, src, cohort.subject_ref, cohort.subjects[s], cohort.subjects_dir
    )


def _in_ref_order(stcs, cohort, src_ref):
    """The first time sample of each subject's stc, in reference order."""
    return np.array(
        [stc.data[:, 0][_ref_order(cohort, s, src_ref)] for s, stc in enumerate(stcs)]
    )


def _peak(evoked, time):
    return evoked.copy().crop(time, time)


def test_lasso_equals_mixed_norm(cohort_meg, sim_meg):
    """One subject, beta = 0: the Lasso is mixed_norm(loose=0) at alpha / 100."""
    evoked = _peak(sim_meg.evokeds[2], sim_meg.peak_time)
    evoked.info["bads"] = evoked.ch_names[10:13]  # both drop bad channels
    alpha = 0.3
    stc_mne = mixed_norm(
        evoked,
        sim_meg.forwards[2],
        sim_meg.noise_covs[2],
        alpha=100 * alpha,
        loose=0.0,
        depth=0.9,
        debias=False,
        tol=1e-10,
        maxit=100_000,
        verbose=False,
    )
    res = apply_group_inverse(
        [evoked],
        [sim_meg.forwards[2]],
        sim_meg.noise_covs[2],
        method="lasso",
        alpha=alpha,
        beta=0,
        solver_params=LASSO_TIGHT,
    )
    stc = res.stcs[0]
    assert res.ch_names[0] == [
        c for c in evoked.ch_names if c not in evoked.info["bads"]
    ]
    assert stc.subject == cohort_meg.subjects[2]
    # both on the forward's source space: compare vertex by vertex
    ours = {}
    n_lh = len(stc.vertices[0])
    for h, data in enumerate((stc.data[:n_lh, 0], stc.data[n_lh:, 0])):
        ours.update({(h, v): x for v, x in zip(stc.vertices[h], data, strict=True)})
    dense = np.array([ours[(h, v)] for h in range(2) for v in stc_mne.vertices[h]])
    assert np.count_nonzero(stc.data) == len(stc_mne.data) > 0
    # both solvers stop at a duality gap of 1e-10 relative: 1e-4 relative on
    # the amplitudes (A*m) is far above what is left
    np.testing.assert_allclose(dense, stc_mne.data[:, 0], rtol=1e-4)


def test_mwe_recovers_sources_better_than_mixed_norm(cohort_meg, src_lh):
    """Acceptance: MWE_0.5 localises aligned sources better than irMxNE."""
    sim = simulate_group_evokeds(cohort_meg, overlap=1.0, random_state=2, verbose=False)
    gm = compute_ground_metric(src_lh, subjects_dir=cohort_meg.subjects_dir)
    n_lh = src_lh[0]["nuse"]
    res = apply_mwe(
        sim.evokeds,
        sim.forwards,
        sim.noise_covs,
        src_ref=src_lh,
        subjects_dir=cohort_meg.subjects_dir,
        ground_metric=gm,
        time=sim.peak_time,
        # a loose outer tolerance and 3 reweightings keep the test fast
        solver_params=dict(tol=1e-3, reweighting_steps=3),
    )
    stcs, stc_bar = res
    est_mwe = res.coef
    # the stcs hold the same sources, on each subject's aligned source space
    for s, stc in enumerate(stcs):
        np.testing.assert_array_equal(
            stc.data[_ref_order(cohort_meg, s, src_lh), 0], est_mwe[s]
        )
    # irMxNE, the single-subject counterpart of MWE_0.5, on the same left
    # hemisphere (other sources masked out) with the same depth weighting
    est_mne = np.array(
        [_irmxne_lh(sim, s, cohort_meg, 20.0) for s in range(cohort_meg.n_subjects)]
    )
    true = sim.coef[:, :n_lh]
    err_mwe = localization_error(true, est_mwe, gm)
    err_mne = localization_error(true, est_mne, gm)
    assert np.mean(err_mwe) < np.mean(err_mne)
    # measured: 13-25 mm per subject, mean 19 mm (mixed_norm: 24-39 mm, mean
    # 32 mm); 5 sources 20 mm apart or more, on a 4 mm source spacing: an
    # estimate unrelated to the data would be about 50 mm away
    assert np.mean(err_mwe) < 25
    # the barycenters live on the reference source space, in A*m
    for bar in (stc_bar, res.stc_bar_raw):
        assert bar.subject == cohort_meg.subject_ref
        assert len(bar.vertices[0]) == n_lh and len(bar.vertices[1]) == 0
        assert 1e-10 < np.abs(bar.data).max() < 1e-6
    # the raw one is the solver's (times positive mean column weights)
    raw = res.stc_bar_raw.data[:, 0]
    np.testing.assert_array_equal(np.sign(raw), np.sign(res.estimator.barycenter_))
    # the user-facing one is sparse, and its strong sources include a true
    # one; measured: non-zero at 127 of 2562 sources (the raw one: at all),
    # its peak 18 mm from a true source (a source of two subjects'
    # estimates, as the raw barycenter's), one at 0.89 of the peak on a true
    # source (test_sharp_barycenter checks the peak on exact estimates)
    assert np.count_nonzero(raw) == n_lh
    assert np.count_nonzero(stc_bar.data) < n_lh / 10
    strong = np.flatnonzero(
        np.abs(stc_bar.data[:, 0]) > 0.5 * np.abs(stc_bar.data).max()
    )
    assert gm.blocks[0][np.ix_(np.flatnonzero(true.any(axis=0)), strong)].min() < 5


def test_sharp_barycenter(cohort_meg, sim_meg):
    """stc_bar: no mass where no subject has a source, mass on the sources."""
    sim = sim_meg  # left-hemisphere sources, two of four subjects shared
    src = cohort_meg.src_ref
    gm = compute_ground_metric(src, subjects_dir=cohort_meg.subjects_dir)
    n_lh = src[0]["nuse"]
    # the subjects' estimates: the true sources (A*m, reference order), with
    # the solver's default epsilon and gamma on this metric
    est = MWE(gm)
    est.coef_ = sim.coef
    est.epsilon_, est.gamma_ = est._ot_parameters()
    X = [np.ones((3, len(sim.coef[0])))]  # internal unit: 1 / max rms of Y
    Y = [np.full(3, 1e-8)]
    bary = _sharp_barycenter(est, X, Y)[:, 0]
    shared = np.flatnonzero(sim.shared)
    common = np.flatnonzero(sim.coef[shared[0]])
    dist = gm.blocks[0][np.ix_(common, np.arange(n_lh))].min(axis=0)
    # exactly zero in the right hemisphere (no transport between
    # hemispheres, no mass floor), where the floor tau of the solver's
    # transport term puts mass (measured: 26 percent of it)
    assert np.all(bary[n_lh:] == 0)
    A = sim.coef / 1e-8
    floored = unbalanced_barycenter(
        np.stack([np.maximum(A, 0).T, np.maximum(-A, 0).T], axis=2) + est.tau,
        gm,
        epsilon=est.epsilon_,
        gamma=est.gamma_,
    ).barycenter
    assert floored[n_lh:].sum() > 0.1 * floored.sum()
    # the sign of the sources, kept at a few of them (measured: 59)
    assert 0 < np.count_nonzero(bary) < 100
    assert np.all(np.sign(bary[common]) * sim.coef[shared][0, common] >= 0)
    # it peaks on a common source; measured: 82 percent of the mass within
    # 10 mm of them (the two other subjects' sources are drawn up to 20 mm
    # away; below 70 percent would mean a blurred or shifted barycenter)
    assert dist[np.argmax(np.abs(bary))] < 5
    mass = np.abs(bary)
    assert mass[:n_lh][dist <= 10].sum() / mass.sum() > 0.7
    # no source in any subject (alpha >= 1): an empty map, no transport solve
    est.coef_ = np.zeros_like(sim.coef)
    assert not _sharp_barycenter(est, X, Y).any()


def test_result_diagnostics(cohort_meg, sim_meg, src_lh):
    sim = sim_meg
    n_lh = src_lh[0]["nuse"]
    res = apply_group_inverse(
        sim.evokeds[:2],
        sim.forwards[:2],
        sim.noise_covs[:2],
        method="mtw",
        alpha=0.1,
        beta=0.01,
        src_ref=src_lh,
        subjects_dir=cohort_meg.subjects_dir,
        time="all",
        tmin=sim.peak_time,
        tmax=sim.peak_time + 0.001,
        solver_params=dict(q=1, tol=1e-3),
    )
    stcs, stc_bar = res
    assert len(stcs) == 2
    for bar in (stc_bar, res.stc_bar_raw):
        assert bar.data.shape == (n_lh, 2) and bar.tmin == pytest.approx(0.05)
    assert res.sigma.shape == (2, 2) and res.n_iter.shape == (2,)
    assert res.params["alpha"] == 0.1 and res.params["beta"] == 0.01
    assert res.params["epsilon_"] > 0 and res.params["depth"]["exp"] == 0.9
    assert len(res.objective) == 2 and res.objective[0]
    np.testing.assert_allclose(res.times, [0.05, 0.051])
    assert list(res.rank) == [306, 306]
    # the sources are in A*m: the data they explain, whitened by MNE,
    # leave the residual whose rms res.sigma reports (MTW has no noise level);
    # wrong units, scaling or depth weights would change it
    for s, stc in enumerate(stcs):
        assert stc.subject == cohort_meg.subjects[s]
        assert stc.data.shape == (n_lh, 2)
        np.testing.assert_allclose(stc.times, res.times)
        evoked, cov = sim.evokeds[s], sim.noise_covs[s]
        W, _ = mne.cov.compute_whitener(cov, evoked.info, pca=True, verbose=False)
        fixed = mne.convert_forward_solution(
            sim.forwards[s], force_fixed=True, use_cps=True, verbose=False
        )
        gain = fixed["sol"]["data"][:, :n_lh]  # lh rows of the aligned space
        k = evoked.time_as_index(res.times)
        resid = W @ (evoked.data[:, k] - gain @ stc.data) * np.sqrt(evoked.nave)
        rms = np.linalg.norm(resid, axis=0) / np.sqrt(len(W))
        # float64 round-off on the same arrays computed in another order
        np.testing.assert_allclose(res.sigma[s], rms, rtol=1e-6)


@pytest.fixture(scope="module")
def cohort_meeg(subjects_dir):
    """One MEG+EEG subject (cohort_meg's first anatomy), ico3, 3-layer BEM."""
    return make_cohort(
        1, modality="meg+eeg", spacing="ico3", subjects_dir=subjects_dir, random_state=0
    )


@pytest.mark.parametrize("modality", ["eeg", "meg+eeg"])
def test_modalities_recover_a_strong_source(modality, cohort_eeg, cohort_meeg):
    """EEG and MEG+EEG forwards (free orientation, converted) work."""
    cohort = cohort_eeg if modality == "eeg" else cohort_meeg
    sim = simulate_group_evokeds(
        cohort, n_sources=1, snr=20.0, hemi="both", random_state=0, verbose=False
    )
    with mne.utils.catch_logging() as log:
        res = apply_group_inverse(
            sim.evokeds,
            sim.forwards,
            sim.noise_covs,
            method="lasso",  # each subject alone: the forwards are tested
            alpha=0.5,
            src_ref=cohort.src_ref,
            subjects_dir=cohort.subjects_dir,
            time=sim.peak_time,
            verbose=True,
        )
    assert "converting the free-orientation forward" in log.getvalue()
    gm = compute_ground_metric(cohort.src_ref, subjects_dir=cohort.subjects_dir)
    est = res.coef
    # one source at SNR 20: the estimate is within two source spacings
    # (ico3: about 9 mm)
    assert np.all(localization_error(sim.coef, est, gm) < 20)
    n_eeg = len(mne.pick_types(sim.evokeds[0].info, meg=False, eeg=True))
    # the average reference removes one dimension of the EEG data
    assert res.rank[0] == len(res.ch_names[0]) - (n_eeg > 0)


def test_subjects_are_not_mixed_up(cohort_meg, sim_meg, src_lh):
    """Independent models: each subject's sources as if it were alone.

    Different data, bad channels and channel counts per subject, every
    sample of a window: a subject paired with another one's gain, channels
    or times would differ.
    """
    sim = sim_meg
    evokeds = [e.copy() for e in sim.evokeds[:3]]
    evokeds[0].info["bads"] = evokeds[0].ch_names[:4]
    evokeds[1].pick(evokeds[1].ch_names[20:])  # fewer channels
    evokeds[2].info["bads"] = evokeds[2].ch_names[-7:]
    kw = dict(
        method="lasso",
        alpha=0.3,
        src_ref=src_lh,
        subjects_dir=cohort_meg.subjects_dir,
        time="all",
        tmin=sim.peak_time - 0.002,
        tmax=sim.peak_time + 0.002,
        solver_params=dict(tol=1e-8),
    )
    group = apply_group_inverse(evokeds, sim.forwards[:3], sim.noise_covs[:3], **kw)
    assert [len(c) for c in group.ch_names] == [302, 286, 299]
    for s in range(3):
        alone = apply_group_inverse(
            [evokeds[s]], [sim.forwards[s]], sim.noise_covs[s], **kw
        )
        # the same problem solved twice: equal to the solver tolerance
        np.testing.assert_allclose(
            group.stcs[s].data, alone.stcs[0].data, rtol=1e-6, atol=1e-15
        )
        np.testing.assert_allclose(
            group.stcs[s].times,
            evokeds[s].times[
                (evokeds[s].times > kw["tmin"] - 1e-4)
                & (evokeds[s].times < kw["tmax"] + 1e-4)
            ],
        )
    # every sample fitted: the time courses peak at the simulated peak
    assert group.stcs[0].data.shape == (src_lh[0]["nuse"], 5)
    assert group.sigma.shape == (3, 5)


def test_time_selection(cohort_meg, sim_meg, src_lh):
    sim = sim_meg
    # subject 1 responds 10 ms later
    evokeds = [sim.evokeds[0].copy(), sim.evokeds[1].copy()]
    evokeds[1].shift_time(0.01, relative=True)
    kw = dict(method="lasso", alpha=0.5, src_ref=src_lh)
    kw.update(subjects_dir=cohort_meg.subjects_dir)
    res = apply_group_inverse(evokeds, sim.forwards[:2], sim.noise_covs[:2], **kw)
    # the peak of the whitened global field power (computed with MNE here)
    for s, evoked in enumerate(evokeds):
        white = mne.whiten_evoked(evoked, sim.noise_covs[s], verbose=False)
        gfp = np.sum(white.data**2, axis=0)
        assert res.times[s] == pytest.approx(evoked.times[np.argmax(gfp)])
        assert res.stcs[s].tmin == pytest.approx(res.times[s])
    assert res.times[1] - res.times[0] == pytest.approx(0.01)
    # a window: the peak inside it
    res = apply_group_inverse(
        evokeds, sim.forwards[:2], sim.noise_covs[:2], tmin=-0.05, tmax=0.0, **kw
    )
    assert np.all(res.times <= 0.0)
    # one time for all
    res = apply_group_inverse(
        evokeds, sim.forwards[:2], sim.noise_covs[:2], time=0.0304, **kw
    )
    np.testing.assert_allclose(res.times, 0.030)
    # different times in the window: no sample-by-sample fit
    with pytest.raises(ValueError, match="same times"):
        apply_group_inverse(
            evokeds, sim.forwards[:2], sim.noise_covs[:2], time="all", **kw
        )


def _snapshot(evokeds, forwards, covs):
    return (
        [(e.data.copy(), list(e.info["bads"]), list(e.ch_names)) for e in evokeds],
        [copy.deepcopy(f) for f in forwards],
        [(c.data.copy(), list(c["bads"])) for c in covs],
    )


def _assert_same(before, evokeds, forwards, covs):
    ev, fw, cv = before
    for (data, bads, names), e in zip(ev, evokeds, strict=True):
        np.testing.assert_array_equal(data, e.data)
        assert bads == e.info["bads"] and names == e.ch_names
    for f0, f in zip(fw, forwards, strict=True):
        np.testing.assert_array_equal(f0["sol"]["data"], f["sol"]["data"])
        assert f0["source_ori"] == f["source_ori"] and f0["nsource"] == f["nsource"]
        assert f0["surf_ori"] == f["surf_ori"]
    for (data, bads), c in zip(cv, covs, strict=True):
        np.testing.assert_array_equal(data, c.data)
        assert bads == c["bads"]


def test_bad_input(cohort_meg, sim_meg, src_lh):
    sim = sim_meg
    evokeds, forwards, covs = sim.evokeds[:2], sim.forwards[:2], sim.noise_covs[:2]
    before = _snapshot(evokeds, forwards, covs)
    kw = dict(src_ref=src_lh, subjects_dir=cohort_meg.subjects_dir, method="lasso")
    with pytest.raises(ValueError, match="2 evokeds and 1 forwards"):
        apply_group_inverse(evokeds, forwards[:1], covs, **kw)
    with pytest.raises(ValueError, match="3 covariances for 2 subjects"):
        apply_group_inverse(evokeds, forwards, sim.noise_covs[:3], **kw)
    with pytest.raises(TypeError, match="list of Evoked"):
        apply_group_inverse(evokeds[0], forwards, covs, **kw)
    # a forward that is not on its subject: another subject's surfaces
    other = copy.deepcopy(forwards[1])
    for s in other["src"]:
        s["subject_his_id"] = cohort_meg.subjects[3]
    with pytest.raises(ValueError, match=f"not on '{cohort_meg.subjects[3]}'"):
        apply_group_inverse(evokeds, [forwards[0], other], covs, **kw)
    # good evoked channels missing from the forward
    fwd_less = mne.pick_channels_forward(
        forwards[1], exclude=evokeds[1].ch_names[5:7], verbose=False
    )
    with pytest.raises(ValueError, match="2 good channels of the evoked are missing"):
        apply_group_inverse(evokeds, [forwards[0], fwd_less], covs, **kw)
    # marked bad, they are not needed
    ok = evokeds[1].copy()
    ok.info["bads"] = ok.ch_names[5:7]
    apply_group_inverse([ok], [fwd_less], covs[1], alpha=0.9, **kw)
    with pytest.raises(ValueError, match="outside the data"):
        apply_group_inverse(evokeds, forwards, covs, time=1.0, **kw)
    with pytest.raises(ValueError, match="no sample between"):
        apply_group_inverse(evokeds, forwards, covs, tmin=0.5, tmax=0.6, **kw)
    with pytest.raises(ValueError, match="give them or time"):
        apply_group_inverse(evokeds, forwards, covs, time=0.0, tmin=0.0, **kw)
    nan = evokeds[1].copy()
    nan.data[3, 40] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        apply_group_inverse([evokeds[0], nan], forwards, covs, **kw)
    with pytest.raises(ValueError, match="loose=0"):
        apply_group_inverse(evokeds, forwards, covs, loose=0.2, **kw)
    with pytest.raises(ValueError, match="method must be one of"):
        apply_group_inverse(evokeds, forwards, covs, **{**kw, "method": "mne"})
    with pytest.raises(ValueError, match="has no beta"):
        apply_group_inverse(evokeds, forwards, covs, beta=0.5, **kw)
    with pytest.raises(ValueError, match="solver_params"):
        apply_group_inverse(evokeds, forwards, covs, solver_params=dict(nu=1), **kw)
    with pytest.raises(ValueError, match="different source spaces"):
        apply_group_inverse(evokeds, forwards, covs, method="lasso")
    # a volume source space cannot be aligned
    vol = mne.setup_volume_source_space(
        pos=30.0, sphere=(0.0, 0.0, 0.04, 0.09), sphere_units="m", verbose=False
    )
    fwd_vol = mne.make_forward_solution(
        evokeds[0].info,
        None,
        vol,
        mne.make_sphere_model((0.0, 0.0, 0.04), None, verbose=False),
        eeg=False,
        verbose=False,
    )
    with pytest.raises(ValueError, match="volume and discrete"):
        apply_group_inverse(evokeds, [forwards[0], fwd_vol], covs, **kw)
    with pytest.raises(ValueError, match="volume and discrete"):
        align_forwards([fwd_vol], src_lh, subjects_dir=cohort_meg.subjects_dir)
    with pytest.raises(TypeError, match="noise_cov must be"):
        apply_group_inverse(evokeds, forwards, [covs[0], "cov"], **kw)
    # no covariance: ad-hoc ones, with a warning
    with pytest.warns(RuntimeWarning, match="ad-hoc"):
        apply_group_inverse(evokeds[:1], forwards[:1], None, alpha=0.9, **kw)
    _assert_same(before, evokeds, forwards, covs)


def test_make_aligned_source_spaces(cohort_meg):
    src = make_aligned_source_spaces(
        cohort_meg.subjects[:2],
        subject_ref=cohort_meg.subject_ref,
        spacing="ico4",
        subjects_dir=cohort_meg.subjects_dir,
    )
    for s in range(2):
        for a, b in zip(src[s], cohort_meg.src[s], strict=True):
            np.testing.assert_array_equal(a["vertno"], b["vertno"])
        assert src[s][0]["subject_his_id"] == cohort_meg.subjects[s]
    with pytest.raises(TypeError, match="list of subject names"):
        make_aligned_source_spaces("synth0-00", subjects_dir=cohort_meg.subjects_dir)


def test_align_forwards(cohort_meg, sim_meg):
    subjects_dir = cohort_meg.subjects_dir
    fwd = sim_meg.forwards[0]
    # an aligned forward passes through unchanged
    assert (
        align_forwards([fwd], cohort_meg.src_ref, subjects_dir=subjects_dir)[0] is fwd
    )
    # a forward on the subject's own (coarser, unaligned) source space
    subject = cohort_meg.subjects[0]
    src = mne.setup_source_space(
        subject, "oct3", subjects_dir=subjects_dir, add_dist=False, verbose=False
    )
    own = mne.make_forward_solution(
        sim_meg.evokeds[0].info,
        cohort_meg.trans[0],
        src,
        mne.make_sphere_model((0.0, 0.0, 0.04), None, verbose=False),
        eeg=False,
        verbose=False,
    )
    n_own = own["nsource"]
    with mne.utils.catch_logging() as log:
        (out,) = align_forwards(
            [own], cohort_meg.src_ref, subjects_dir=subjects_dir, verbose=True
        )
    assert "have no source within half the reference spacing" in log.getvalue()
    assert own["nsource"] == n_own  # not modified
    assert out["nsource"] == sum(s["nuse"] for s in cohort_meg.src_ref)
    assert mne.forward.is_fixed_orient(out)
    for a, b in zip(out["src"], cohort_meg.src[0], strict=True):
        np.testing.assert_array_equal(a["vertno"], b["vertno"])
    # each reference source has the fixed leadfield of the nearest source of
    # the forward on the registered spheres
    fixed = mne.convert_forward_solution(
        own, surf_ori=True, force_fixed=True, use_cps=True, verbose=False
    )
    order = aligned_order(
        cohort_meg.src_ref, out["src"], cohort_meg.subject_ref, subject, subjects_dir
    )
    sphere = mne.read_surface(subjects_dir / subject / "surf" / "lh.sphere.reg")[0]
    ref = mne.read_surface(
        subjects_dir / cohort_meg.subject_ref / "surf" / "lh.sphere.reg"
    )[0]
    for j in (0, 100, 2000):
        pos = ref[cohort_meg.src_ref[0]["vertno"][j]]
        cand = sphere[src[0]["vertno"]]
        cos = cand @ pos / np.linalg.norm(cand, axis=1) / np.linalg.norm(pos)
        nearest = np.argmax(cos)
        np.testing.assert_array_equal(
            out["sol"]["data"][:, order[j]], fixed["sol"]["data"][:, nearest]
        )
    # and the inverse runs on it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stcs, _ = apply_group_inverse(
            [sim_meg.evokeds[0]],
            [own],
            sim_meg.noise_covs[0],
            method="lasso",
            alpha=0.5,
            src_ref=cohort_meg.src_ref,
            subjects_dir=subjects_dir,
        )
    assert stcs[0].data.shape == (out["nsource"], 1)


def test_apply_mwe_has_the_parameters_of_apply_group_inverse():
    """apply_mwe passes all its arguments on: the same parameters but method."""
    import inspect

    shortcut = inspect.signature(apply_mwe).parameters
    full = inspect.signature(apply_group_inverse).parameters
    assert list(shortcut) == [name for name in full if name != "method"]
    for name, param in shortcut.items():
        assert param.kind == full[name].kind
