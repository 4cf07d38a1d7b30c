import mne
import numpy as np
import pytest

from mne_wasserstein.inverse import aligned_order
from mne_wasserstein.simulation import _fixed_gain, simulate_group_evokeds


def _order(cohort, sim, s):
    """Subject ``s``'s sources in the order of the reference sources."""
    return aligned_order(
        cohort.src_ref,
        sim.forwards[s]["src"],
        cohort.subject_ref,
        cohort.subjects[s],
        cohort.subjects_dir,
    )


@pytest.fixture(scope="module")
def sim(cohort_meg):
    return simulate_group_evokeds(cohort_meg, random_state=42)


def test_snr(sim):
    # the empirical noise std over 4 subjects x 306 channels x 201 samples has
    # a relative standard error of about 0.2 %, so 5 % cannot fail by chance
    assert sim.snr == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("snr_ch_type", [None, "grad"])
def test_snr_per_channel(cohort_meg, snr_ch_type):
    """The SNR is a per-channel ratio: rms of the whitened signal / noise std.

    Recomputed from the evokeds: the noiseless data are the gain times the
    sources (times the waveform), the rest is noise.
    """
    snr = 4.0
    sim = simulate_group_evokeds(
        cohort_meg, snr=snr, snr_ch_type=snr_ch_type, random_state=7
    )
    ratios = []
    for s, evoked in enumerate(sim.evokeds):
        info = evoked.info
        picks = (
            mne.pick_types(info, meg=snr_ch_type)
            if snr_ch_type
            else np.arange(len(info["ch_names"]))
        )
        W, _ = mne.cov.compute_whitener(
            sim.noise_covs[s], info, picks=picks, pca=True, verbose=False
        )
        order = _order(cohort_meg, sim, s)
        signal = _fixed_gain(sim.forwards[s], order) @ sim.coef[s]
        j = np.flatnonzero(sim.coef[s])[0]
        waveform = sim.stcs_template[s].data[j] / sim.coef[s, j]
        noise = W @ (evoked.data - np.outer(signal, waveform))[picks]
        # whitened noise: standard deviation sigma on every whitened channel
        assert noise.std() == pytest.approx(sim.sigma, rel=0.05)
        ratios.append(np.sqrt(np.mean((W @ signal[picks]) ** 2)) / noise.std())
    # the noise std over (about 200 or 300 channels x 201 samples) has a
    # relative standard error below 0.5 %: 5 % cannot fail by chance
    assert np.mean(ratios) == pytest.approx(snr, rel=0.05)
    assert sim.snr == pytest.approx(snr, rel=0.05)


@pytest.mark.parametrize("overlap", [0.0, 0.5, 1.0])
def test_shared_locations(cohort_meg, overlap):
    sim = simulate_group_evokeds(cohort_meg, overlap=overlap, random_state=0)
    n_subjects = cohort_meg.n_subjects
    assert sim.shared.sum() == round(overlap * n_subjects)
    supports = [tuple(np.flatnonzero(c)) for c in sim.coef]
    shared = [supports[s] for s in np.flatnonzero(sim.shared)]
    assert len(set(shared)) <= 1  # those that share have the same locations
    for s, support in enumerate(supports):
        # one source per region, with the region's polarity
        assert len(support) == len(sim.regions)
        for region, sign in zip(sim.regions, sim.signs, strict=True):
            inside = np.intersect1d(support, region)
            assert len(inside) == 1
            value = sim.coef[s, inside[0]]
            assert np.sign(value) == sign
            assert 20e-9 <= abs(value) <= 30e-9


def test_regions_disjoint_lh(sim, cohort_meg):
    n_lh = cohort_meg.src_ref[0]["nuse"]
    all_idx = np.concatenate(sim.regions)
    assert len(np.unique(all_idx)) == len(all_idx)
    assert all_idx.max() < n_lh  # hemi="lh", as in the paper


def test_evokeds_follow_forward(cohort_meg):
    """Without noise, the evoked at the peak is the gain times the sources."""
    sim = simulate_group_evokeds(cohort_meg, snr=1e12, random_state=1)
    for s, evoked in enumerate(sim.evokeds):
        order = _order(cohort_meg, sim, s)
        expected = _fixed_gain(sim.forwards[s], order) @ sim.coef[s]
        peak = evoked.time_as_index(sim.peak_time)[0]
        # rel. 1e-6: the noise is 1e-12 of the signal
        np.testing.assert_allclose(
            evoked.data[:, peak],
            expected,
            rtol=1e-6,
            atol=1e-6 * np.abs(expected).max(),
        )
        # ground-truth estimates agree with coef, in both source spaces
        stc, stc_tpl = sim.stcs[s], sim.stcs_template[s]
        ipk = stc.time_as_index(sim.peak_time)[0]
        np.testing.assert_allclose(stc_tpl.data[:, ipk], sim.coef[s])
        np.testing.assert_allclose(stc.data[order, ipk], sim.coef[s])
        assert stc.subject == cohort_meg.subjects[s]
        assert stc_tpl.subject == cohort_meg.subject_ref


def test_same_leadfield(cohort_meg):
    sim = simulate_group_evokeds(cohort_meg, same_leadfield=True, random_state=3)
    lead = sim.leadfield_subject
    assert lead is not None
    assert all(f is cohort_meg.forwards[lead] for f in sim.forwards)
    assert all(c is cohort_meg.noise_covs[lead] for c in sim.noise_covs)
    assert sim.snr == pytest.approx(4.0, rel=0.05)


def test_eeg_simulation(cohort_eeg):
    sim = simulate_group_evokeds(cohort_eeg, snr=2.0, hemi="both", random_state=0)
    assert sim.snr == pytest.approx(2.0, rel=0.05)
    assert isinstance(sim.evokeds[0], mne.Evoked)
    assert sim.evokeds[0].info["projs"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(overlap=1.5), "overlap must be in"),
        (dict(n_sources=0), "n_sources must be >= 1"),
        (dict(snr=0), "snr must be > 0"),
        (dict(hemi="left"), "hemi must be"),
        (dict(snr_ch_type="grad"), "snr_ch_type must be None or one of"),
        (dict(peak_time=1.0), "peak_time"),
        (dict(n_sources=50, region_radius=40.0), "Cannot place 50 disjoint"),
    ],
)
def test_simulation_bad_input(cohort_eeg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_group_evokeds(cohort_eeg, **kwargs)
