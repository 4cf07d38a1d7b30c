"""The simulation protocol of Janati et al. (2020), section 5.1, on a cohort."""

from dataclasses import dataclass

import numpy as np
from mne import EvokedArray, SourceEstimate, convert_forward_solution, read_surface
from mne.cov import compute_whitener
from mne.utils import check_random_state, logger, verbose

from ._geodesic import _geodesic_from, _mesh_graph
from .utils import fill_doc

__all__ = ["GroupSimulation", "simulate_group_evokeds"]

_HEMIS = ("lh", "rh")
WAVEFORM_WIDTH = 0.02  # s, standard deviation of the Gaussian time course


@dataclass
class GroupSimulation:
    """A simulated group study with its ground truth.

    Attributes
    ----------
    evokeds : list of Evoked
        The simulated evoked responses, one per subject.
    forwards, noise_covs : list
        The forward solution and noise covariance that generated each
        subject's data (with ``same_leadfield=True`` all are the same subject's):
        pass them to the inverse solvers.
    stcs : list of SourceEstimate
        The true sources of each subject, on its aligned source space
        (``forwards[s]["src"]``), in A*m.
    stcs_template : list of SourceEstimate
        The same, on the template source space (source ``j`` of every subject
        is template source ``j``).
    coef : ndarray, shape (n_subjects, n_sources_total)
        The true amplitudes at ``peak_time`` in template source order (lh then
        rh, vertex numbers ascending), in A*m.
    regions : list of ndarray of int
        For each region, the template source indices of its geodesic patch.
    centers : ndarray of int, shape (n_sources,)
        The template source index of each region's centre.
    shared : ndarray of bool, shape (n_subjects,)
        Which subjects share the same source locations.
    signs : ndarray, shape (n_sources,)
        The polarity of each region (the same for all subjects).
    sigma : float
        The standard deviation of the whitened noise (per whitened channel).
    snr : float
        The signal-to-noise ratio measured on the drawn noise,
        ``(1 / S) sum_s rms(W_s L_s x_s) / sigma_hat`` (paper 001, section
        5.1; see :func:`simulate_group_evokeds`), with ``W_s`` the whitener of
        subject ``s`` (on the channels of ``snr_ch_type``) and ``sigma_hat``
        the empirical standard deviation of the whitened noise there.
    peak_time : float
        The time (s) at which sources peak (where ``coef`` and the SNR hold).
    leadfield_subject : int | None
        With ``same_leadfield=True``, the subject whose leadfield everyone uses.
    """

    evokeds: list
    forwards: list
    noise_covs: list
    stcs: list
    stcs_template: list
    coef: np.ndarray
    regions: list
    centers: np.ndarray
    shared: np.ndarray
    signs: np.ndarray
    sigma: float
    snr: float
    peak_time: float
    leadfield_subject: int | None


def _template_graphs(cohort):
    graphs = []
    for hemi in _HEMIS:
        rr, tris = read_surface(
            cohort.subjects_dir / cohort.subject_ref / "surf" / f"{hemi}.white"
        )
        graphs.append(_mesh_graph(rr, tris))
    return graphs


def _draw_regions(cohort, n_sources, radius, hemi, rng):
    """Disjoint geodesic patches of template sources (indices, lh then rh)."""
    graphs = _template_graphs(cohort)
    hemis = [0] if hemi == "lh" else [1] if hemi == "rh" else [0, 1]
    offsets = np.cumsum([0] + [s["nuse"] for s in cohort.src_ref])
    free = [np.ones(s["nuse"], bool) for s in cohort.src_ref]
    regions, centers = [], []
    for _ in range(n_sources):
        candidates = [(h, j) for h in hemis for j in np.flatnonzero(free[h])]
        if not candidates:
            raise ValueError(
                f"Cannot place {n_sources} disjoint regions of radius {radius} mm "
                f"in hemi={hemi!r}; use fewer sources or a smaller region_radius."
            )
        h, j = candidates[rng.integers(len(candidates))]
        vertno = cohort.src_ref[h]["vertno"]
        dist = _geodesic_from(graphs[h], vertno[j], limit=2 * radius)[vertno]
        regions.append(np.flatnonzero(dist <= radius) + offsets[h])
        centers.append(j + offsets[h])
        # next centres at least 2 radii away: patches do not overlap
        free[h] &= dist > 2 * radius
    return regions, np.array(centers)


def _fixed_gain(fwd, order):
    fwd = convert_forward_solution(
        fwd, surf_ori=True, force_fixed=True, use_cps=True, verbose=False
    )
    return fwd["sol"]["data"][:, order]


def _stc(data, src, tmin, tstep, subject):
    vertices = [s["vertno"] for s in src]
    return SourceEstimate(data, vertices, tmin=tmin, tstep=tstep, subject=subject)


@dataclass(frozen=True)
class _Truth:
    """The drawn sources (see :class:`GroupSimulation`)."""

    coef: np.ndarray
    regions: list
    centers: np.ndarray
    shared: np.ndarray
    signs: np.ndarray


@dataclass(frozen=True)
class _Leadfield:
    """The leadfield and noise model of one subject, used by one or more subjects.

    Attributes
    ----------
    order : ndarray of int, shape (n_sources_total,)
        The source of the subject's source space of each template source.
    gain : ndarray, shape (n_channels, n_sources_total)
        The fixed-orientation gain, columns in template order.
    whitener : ndarray, shape (rank, n_picks)
        The whitener of the SNR channels, one row per whitened dimension.
    picks : ndarray of int, shape (n_picks,)
        The SNR channels.
    colorer : ndarray, shape (n_channels, n_channels)
        Maps white noise to noise of the subject's noise covariance.
    """

    order: np.ndarray
    gain: np.ndarray
    whitener: np.ndarray
    picks: np.ndarray
    colorer: np.ndarray

    def whiten(self, data):
        """Return the whitened SNR channels of ``data`` (n_channels[, n_times])."""
        return self.whitener @ data[self.picks]


def _check_params(cohort, n_sources, overlap, snr, snr_ch_type, hemi):
    """Check the parameters of :func:`simulate_group_evokeds`."""
    if not 0 <= overlap <= 1:
        raise ValueError(f"overlap must be in [0, 1], got {overlap}")
    if n_sources < 1:
        raise ValueError(f"n_sources must be >= 1, got {n_sources}")
    if snr <= 0:
        raise ValueError(f"snr must be > 0, got {snr}")
    ch_types = set(cohort.info[0].get_channel_types())
    if snr_ch_type is not None and snr_ch_type not in ch_types:
        raise ValueError(
            f"snr_ch_type must be None or one of {sorted(ch_types)}, got "
            f"{snr_ch_type!r}"
        )
    if hemi not in ("lh", "rh", "both"):
        raise ValueError(f"hemi must be 'lh', 'rh' or 'both', got {hemi!r}")


def _time_course(sfreq, tmin, tmax, peak_time):
    """Return the times, the peak time on a sample, and the source waveform."""
    times = tmin + np.arange(int(round((tmax - tmin) * sfreq)) + 1) / sfreq
    if not times[0] <= peak_time <= times[-1]:
        raise ValueError(f"peak_time={peak_time} is outside [tmin, tmax]")
    peak_time = times[np.argmin(np.abs(times - peak_time))]
    waveform = np.exp(-0.5 * ((times - peak_time) / WAVEFORM_WIDTH) ** 2)
    return times, peak_time, waveform / waveform.max()


def _draw_truth(cohort, n_sources, overlap, amplitude, hemi, radius, rng):
    """Draw the regions, who shares locations, the polarities and amplitudes."""
    n_subjects = cohort.n_subjects
    regions, centers = _draw_regions(cohort, n_sources, radius, hemi, rng)
    n_shared = int(round(overlap * n_subjects))
    shared = np.zeros(n_subjects, bool)
    shared[rng.choice(n_subjects, n_shared, replace=False)] = True
    common = np.array([rng.choice(region) for region in regions])
    signs = rng.choice([-1.0, 1.0], n_sources)
    coef = np.zeros((n_subjects, sum(s["nuse"] for s in cohort.src_ref)))
    for s in range(n_subjects):
        where = common if shared[s] else [rng.choice(region) for region in regions]
        coef[s, where] = signs * rng.uniform(*amplitude, n_sources)
    return _Truth(coef, regions, centers, shared, signs)


def _leadfield(cohort, s, snr_ch_type):
    """Return the leadfield and noise model of subject ``s`` of the cohort."""
    order = cohort.source_order(s)
    info, cov = cohort.info[s], cohort.noise_covs[s]
    *_, colorer = compute_whitener(cov, info, return_colorer=True, verbose=False)
    # the whitener of the SNR channels alone: the noise drawn on all channels
    # is white there too (any subset of a Gaussian is)
    types = np.array(info.get_channel_types())
    in_snr = types == snr_ch_type if snr_ch_type else np.ones(len(types), bool)
    picks = np.flatnonzero(in_snr)
    # pca: rank rows, so that every row is a whitened dimension
    whitener, _ = compute_whitener(cov, info, picks=picks, pca=True, verbose=False)
    gain = _fixed_gain(cohort.forwards[s], order)
    return _Leadfield(order, gain, whitener, picks, colorer)


def _draw_noise(cohort, owners, leadfields, sigma, n_times, rng):
    """Draw each subject's noise; also return its whitened standard deviation.

    Returns
    -------
    noise : list of ndarray, shape (n_channels, n_times)
        Per subject, white noise of standard deviation ``sigma`` coloured by
        the noise covariance.
    sigma_hat : float
        The empirical standard deviation of the whitened noise on the SNR
        channels, over all subjects.
    """
    noise = [
        sigma
        * leadfields[owner].colorer
        @ rng.standard_normal((len(cohort.info[owner]["ch_names"]), n_times))
        for owner in owners
    ]
    white = [leadfields[o].whiten(n) for o, n in zip(owners, noise, strict=True)]
    power = sum(np.sum(w**2) for w in white)
    return noise, float(np.sqrt(power / sum(w.size for w in white)))


def _truth_stcs(cohort, owner, leadfield, amplitudes, tmin, tstep):
    """Return the true sources on the subject's and on the template source space."""
    aligned = np.zeros_like(amplitudes)
    aligned[leadfield.order] = amplitudes
    src = cohort.forwards[owner]["src"]
    return (
        _stc(aligned, src, tmin, tstep, cohort.subjects[owner]),
        _stc(amplitudes, cohort.src_ref, tmin, tstep, cohort.subject_ref),
    )


@fill_doc
@verbose
def simulate_group_evokeds(
    cohort,
    *,
    n_sources=5,
    overlap=0.5,
    amplitude=(20e-9, 30e-9),
    snr=4.0,
    snr_ch_type=None,
    same_leadfield=False,
    hemi="lh",
    region_radius=20.0,
    tmin=-0.05,
    tmax=0.15,
    peak_time=0.05,
    random_state=None,
    verbose=None,
):
    """Simulate a group response with the protocol of the MWE paper.

    Follows section 5.1 of Janati et al. (NeuroImage 2020): ``n_sources``
    regions (here geodesic patches on the template, since no atlas ships
    offline); each subject has one source per region; a fraction ``overlap``
    of the subjects share exactly the same locations, the others draw theirs
    at random within the regions; amplitudes are uniform in ``amplitude``
    with a random polarity per region shared by all subjects; white noise is
    added in the whitened space with a standard deviation ``sigma`` set so
    that the average SNR ``(1 / S) sum_s rms(L_s x_s) / sigma`` equals
    ``snr`` (``L_s`` the whitened fixed-orientation leadfield, ``rms(b) =
    ||b|| / sqrt(n)`` over its ``n`` whitened channels).

    The paper writes the SNR ``sum_s ||L_s x_s|| / (S sigma)`` with the
    noise covariance ``sigma I_n``. Read with the Euclidean norm and
    ``sigma`` a standard deviation, SNR 4 on 204 gradiometers would be a
    noise 3.6 times stronger than the signal in norm; the authors' code sets
    the noise standard deviation to the mean over subjects of the standard
    deviation over sensors of the noiseless data divided by the SNR: a
    signal 4 times stronger than the noise, per sensor. That is the
    convention here.

    The sources follow a Gaussian time course (20 ms standard deviation)
    peaking at ``peak_time``; the noise is drawn independently at every time,
    coloured by each subject's noise covariance.

    Parameters
    ----------
    cohort : Cohort
        A cohort from :func:`mne_wasserstein.datasets.make_cohort`.
    n_sources : int
        The number of regions (and of sources per subject).
    overlap : float
        The fraction (in [0, 1]) of subjects that share the same locations.
    amplitude : tuple of float
        The range of source amplitudes (A*m).
    snr : float
        The average signal-to-noise ratio (above) at the peak.
    snr_ch_type : str | None
        The type of the channels on which the SNR is defined (e.g.
        ``"grad"``, the channels the paper keeps); ``None``: all channels.
        The noise is added to all channels.
    same_leadfield : bool
        If True, every subject uses the leadfield of one randomly chosen
        subject (the "same leadfield" condition of the paper).
    hemi : ``"lh"`` | ``"rh"`` | ``"both"``
        Where regions are placed (the paper uses the left hemisphere).
    region_radius : float
        The geodesic radius (mm) of each region on the template white surface.
    tmin, tmax : float
        The first and last times (s) of the evokeds, sampled at the sampling
        frequency of the cohort's info.
    peak_time : float
        The time (s) of the source peak (rounded to the nearest sample).
    %(random_state)s
    %(verbose)s

    Returns
    -------
    simulation : GroupSimulation
        The evokeds, the forwards and covariances that generated them, and the
        ground truth.
    """
    rng = check_random_state(random_state)
    rng = np.random.default_rng(rng.randint(2**31 - 1))
    _check_params(cohort, n_sources, overlap, snr, snr_ch_type, hemi)
    sfreq = cohort.info[0]["sfreq"]
    times, peak_time, waveform = _time_course(sfreq, tmin, tmax, peak_time)
    truth = _draw_truth(cohort, n_sources, overlap, amplitude, hemi, region_radius, rng)
    n_subjects = cohort.n_subjects
    lead = int(rng.integers(n_subjects)) if same_leadfield else None
    owners = [lead if same_leadfield else s for s in range(n_subjects)]
    logger.info(
        f"Simulating {n_subjects} subjects, {n_sources} regions ({hemi}), "
        f"{truth.shared.sum()} with shared locations, SNR {snr}"
    )
    # one leadfield per subject whose leadfield is used
    leadfields = {o: _leadfield(cohort, o, snr_ch_type) for o in dict.fromkeys(owners)}
    signals = [leadfields[o].gain @ c for o, c in zip(owners, truth.coef, strict=True)]
    # root mean square of the whitened signal over the whitened dimensions
    white_rms = [
        np.linalg.norm(leadfields[o].whiten(b)) / np.sqrt(len(leadfields[o].whitener))
        for o, b in zip(owners, signals, strict=True)
    ]
    sigma = float(np.mean(white_rms) / snr)
    noise, sigma_hat = _draw_noise(cohort, owners, leadfields, sigma, len(times), rng)

    evokeds, stcs, stcs_template = [], [], []
    for s, owner in enumerate(owners):
        evokeds.append(
            EvokedArray(
                np.outer(signals[s], waveform) + noise[s],
                cohort.info[owner],
                tmin=times[0],
                nave=1,
                comment=f"simulated {s}",
                verbose=False,
            )
        )
        stc, stc_template = _truth_stcs(
            cohort,
            owner,
            leadfields[owner],
            np.outer(truth.coef[s], waveform),
            times[0],
            1.0 / sfreq,
        )
        stcs.append(stc)
        stcs_template.append(stc_template)
    return GroupSimulation(
        evokeds=evokeds,
        forwards=[cohort.forwards[o] for o in owners],
        noise_covs=[cohort.noise_covs[o] for o in owners],
        stcs=stcs,
        stcs_template=stcs_template,
        coef=truth.coef,
        regions=truth.regions,
        centers=truth.centers,
        shared=truth.shared,
        signs=truth.signs,
        sigma=sigma,
        snr=float(np.mean(white_rms) / sigma_hat),
        peak_time=float(peak_time),
        leadfield_subject=lead,
    )
