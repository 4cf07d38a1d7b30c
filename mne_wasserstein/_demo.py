"""The demo: a synthetic group study, MWE against MNE's irMxNE, as a report."""

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mne import Report, SourceEstimate, convert_forward_solution, pick_info
from mne.cov import compute_whitener
from mne.inverse_sparse import mixed_norm
from mne.utils import ProgressBar, logger, use_log_level, verbose

from .__main__ import ORACLE_ALPHAS, REPORT_NAME, SPACINGS
from .datasets import make_cohort
from .ground_metric import compute_ground_metric
from .inverse import aligned_order, apply_mwe
from .metrics import localization_error
from .simulation import simulate_group_evokeds
from .viz import plot_barycenter, plot_group_sources

# the better-seen half of the cortex: whitened gain norm at or above the median
_WELL_SEEN = 50


def _check_demo_params(n_subjects, spacing, irmxne_alpha, mwe_alpha, beta):
    """Validate the demo's parameters before any work."""
    if not isinstance(n_subjects, int) or n_subjects < 2:
        raise ValueError(f"n_subjects must be an int >= 2, got {n_subjects!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if irmxne_alpha != "sure" and not 0 < float(irmxne_alpha) < 100:
        raise ValueError(
            f"irmxne_alpha must be 'sure' or in (0, 100), got {irmxne_alpha!r}"
        )
    if not 0 < mwe_alpha < 1:
        raise ValueError(f"mwe_alpha must be in (0, 1), got {mwe_alpha!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")


def _irmxne_lh(sim, s, cohort, alpha):
    """Solve subject ``s`` alone by irMxNE on the lh (A*m, template order)."""
    fwd = sim.forwards[s]
    n_lh = cohort.src_ref[0]["nuse"]
    weights = np.zeros(fwd["nsource"])
    weights[:n_lh] = 1.0  # the right hemisphere is masked out (weights_min)
    stc = mixed_norm(
        sim.evokeds[s].copy().crop(sim.peak_time, sim.peak_time),
        fwd,
        sim.noise_covs[s],
        alpha=alpha,
        loose=0.0,
        depth=0.9,
        n_mxne_iter=5,
        weights=weights,
        weights_min=0.5,
        verbose=False,
    )
    rows = np.zeros(n_lh)
    rows[np.searchsorted(fwd["src"][0]["vertno"], stc.vertices[0])] = stc.data[:, 0]
    return rows[_template_order(sim, s, cohort)]


def _template_order(sim, s, cohort):
    """Subject ``s``'s lh sources in template order."""
    return aligned_order(
        cohort.src_ref[:1],
        sim.forwards[s]["src"][:1],
        cohort.subject_ref,
        cohort.subjects[s],
        cohort.subjects_dir,
    )


def _visibility(sim, s, cohort):
    """Percentile of each lh source's whitened gain norm (template order).

    How strongly the sensors see a unit dipole there, normal to the
    cortex, relative to the subject's other left-hemisphere sources: low
    for deep and radial sources, which MEG sees poorly.
    """
    fwd = convert_forward_solution(
        sim.forwards[s], surf_ori=True, force_fixed=True, verbose=False
    )
    info = pick_info(
        sim.evokeds[s].info,
        [sim.evokeds[s].ch_names.index(c) for c in fwd["sol"]["row_names"]],
    )
    whitener, _ = compute_whitener(sim.noise_covs[s], info, verbose=False)
    n_lh = cohort.src_ref[0]["nuse"]
    norms = np.linalg.norm(whitener @ fwd["sol"]["data"][:, :n_lh], axis=0)
    ranks = np.argsort(np.argsort(norms))
    return (100.0 * ranks / (n_lh - 1))[_template_order(sim, s, cohort)]


def _template_stc(coef_lh, cohort, time):
    """Return a left-hemisphere estimate in template order on the template."""
    vertices = [cohort.src_ref[0]["vertno"], np.zeros(0, int)]
    return SourceEstimate(
        coef_lh[:, np.newaxis], vertices, time, 1.0, subject=cohort.subject_ref
    )


def _snapshot(fig):
    """Return a Brain's screenshot (closing it), or the matplotlib figure."""
    if hasattr(fig, "screenshot"):
        img = fig.screenshot()
        fig.close()
        return img
    return fig


def _table(header, rows):
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f'<table class="table table-sm"><tr>{cells}</tr>{body}</table>'


def _source_distances(true, x, ground_metric):
    """Per true source (subject-major), the distance to the closest estimate (mm).

    ``nan`` where the subject's estimate is all zeros.
    """
    dist = ground_metric.blocks[0]
    out = []
    for t, e in zip(true, x, strict=True):
        found = np.flatnonzero(e)
        for j in np.flatnonzero(t):
            out.append(dist[j, found].min() if len(found) else np.nan)
    return np.array(out)


@dataclass(frozen=True)
class _Comparison:
    """The estimates of each method of the demo, against the truth.

    Attributes
    ----------
    true : ndarray, shape (n_subjects, n_sources_lh)
        The true lh sources (A*m, template order).
    estimates : dict of str to ndarray, shape (n_subjects, n_sources_lh)
        Per method (its name in the report), the lh sources (A*m, template
        order).
    errors : dict of str to ndarray, shape (n_subjects,)
        Per method, the localisation error of each subject (mm).
    counts : dict of str to ndarray of int, shape (n_subjects,)
        Per method, the number of sources of each subject.
    distances : dict of str to ndarray, shape (n_true,)
        Per method, the distance from each true source (subject-major) to
        the closest estimate (mm).
    visibility : ndarray, shape (n_true,)
        The gain-norm percentile of each true source (subject-major).
    """

    true: np.ndarray
    estimates: dict
    errors: dict
    counts: dict
    distances: dict
    visibility: np.ndarray

    @property
    def well_seen(self):
        """Which true sources are in the better-seen half of the cortex."""
        return self.visibility >= _WELL_SEEN


def _report_path(out):
    """Return the report file of ``out`` (a file or a folder), creating its folder."""
    out = Path.cwd() if out is None else Path(out)
    path = out if out.suffix == ".html" else out / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _solve_irmxne(sim, cohort, alpha, ground_metric):
    """Solve each subject alone with irMxNE, at ``alpha`` and at the oracle alpha.

    Returns
    -------
    estimates : dict of str to ndarray, shape (n_subjects, n_sources_lh)
        The lh sources (A*m, template order) at ``alpha`` and at the oracle
        alpha, by the method names of the report.
    best : ndarray of int, shape (n_subjects,)
        Per subject, the index of its oracle alpha in ``ORACLE_ALPHAS``.
    """
    n_subjects = cohort.n_subjects
    true = sim.coef[:, : cohort.src_ref[0]["nuse"]]
    logger.info(f"3/5 solving each subject alone with irMxNE (alpha={alpha})")
    chosen = np.array(
        [
            _irmxne_lh(sim, s, cohort, alpha)
            for s in ProgressBar(range(n_subjects), mesg="irMxNE per subject")
        ]
    )
    logger.info(f"4/5 irMxNE oracle: alpha in {ORACLE_ALPHAS} with the truth")
    grid = np.array(
        [
            [_irmxne_lh(sim, s, cohort, a) for s in range(n_subjects)]
            for a in ProgressBar(ORACLE_ALPHAS, mesg="irMxNE oracle alphas")
        ]
    )
    grid_errors = np.array([localization_error(true, g, ground_metric) for g in grid])
    best = np.argmin(np.nan_to_num(grid_errors, nan=np.inf), axis=0)
    estimates = {
        f"irMxNE (alpha={alpha})": chosen,
        "irMxNE (oracle alpha)": grid[best, np.arange(n_subjects)],
    }
    return estimates, best


def _compare(sim, cohort, estimates, ground_metric):
    """Measure each method's estimates against the truth (a :class:`_Comparison`)."""
    true = sim.coef[:, : cohort.src_ref[0]["nuse"]]
    visibility = np.array(
        [_visibility(sim, s, cohort) for s in range(cohort.n_subjects)]
    )
    return _Comparison(
        true=true,
        estimates=estimates,
        errors={
            k: localization_error(true, v, ground_metric) for k, v in estimates.items()
        },
        counts={k: np.count_nonzero(v, axis=1) for k, v in estimates.items()},
        distances={
            k: _source_distances(true, v, ground_metric) for k, v in estimates.items()
        },
        # subject by subject, as the distances
        visibility=visibility[true != 0],
    )


def _summary(comparison, n_true, irmxne_alpha):
    """Return the demo's summary, one line per method after three of context."""
    cmp, well_seen = comparison, comparison.well_seen
    rule = (
        "MNE's data-driven rule, mixed_norm(alpha='sure')"
        if irmxne_alpha == "sure"
        else f"fixed, mixed_norm(alpha={irmxne_alpha})"
    )
    context = [
        f"{len(cmp.true)} subjects, {n_true} true sources each (left "
        f"hemisphere), {well_seen.sum()} of {len(well_seen)} in the better-seen "
        f"half of the cortex (gain-norm percentile >= {_WELL_SEEN})",
        f"irMxNE alpha: {rule}; oracle: the best of {ORACLE_ALPHAS} per "
        "subject (uses the truth)",
        "localisation error: mean distance from a true source to the closest "
        "estimate (all sources / better-seen half)",
    ]
    return "\n".join(
        context
        + [
            f"{name}: {cmp.counts[name].min()}-{cmp.counts[name].max()} sources per "
            f"subject, localisation error {np.nanmean(cmp.errors[name]):.1f} mm / "
            f"{np.nanmean(cmp.distances[name][well_seen]):.1f} mm"
            for name in cmp.estimates
        ]
    )


def _add_error_tables(report, comparison, subjects):
    """Add the localisation errors and the distance of each true source."""
    cmp, well_seen = comparison, comparison.well_seen
    header = [
        "method",
        "sources per subject",
        "error per subject (mm)",
        "mean (mm)",
        f"mean on the better-seen half, percentile >= {_WELL_SEEN} (mm)",
    ]
    rows = [
        [
            k,
            ", ".join(map(str, cmp.counts[k])),
            ", ".join(f"{e:.1f}" for e in cmp.errors[k]),
            f"{np.nanmean(cmp.errors[k]):.1f}",
            f"{np.nanmean(cmp.distances[k][well_seen]):.1f}",
        ]
        for k in cmp.estimates
    ]
    report.add_html(_table(header, rows), title="Localisation errors")
    owners, sources = np.nonzero(cmp.true)
    header = ["subject", "true source", "visibility (gain-norm percentile)"]
    rows = [
        [
            subjects[s],
            j,
            f"{v:.0f}",
            *(f"{cmp.distances[k][i]:.1f}" for k in cmp.estimates),
        ]
        for i, (s, j, v) in enumerate(zip(owners, sources, cmp.visibility, strict=True))
    ]
    report.add_html(
        _table([*header, *cmp.estimates], rows),
        title="Distance from each true source to the closest estimate (mm)",
    )


def _add_parameters(report, parameters, result):
    """Add the demo's parameters and those that MWE used."""
    rows = list(parameters) + [
        [f"MWE {k}", f"{v:.4g}" if isinstance(v, float) else v]
        for k, v in result.params.items()
        if k not in ("alpha", "beta", "verbose", "n_jobs")
    ]
    report.add_html(_table(["parameter", "value"], rows), title="Parameters")


def _add_convergence(report, result):
    """Add MWE's objective after each outer iteration."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.plot(np.arange(1, len(result.objective) + 1), result.objective, "o-")
    ax.set(
        xlabel="outer iteration",
        ylabel="objective (solver units)",
        title="MWE_0.5 convergence",
    )
    report.add_figure(
        fig,
        title="MWE convergence",
        caption="The objective after each outer iteration; each reweighting "
        "round of q = 0.5 changes the weights, hence the objective: the steps.",
    )


def _add_sources(report, cohort, sim, irmxne, result):
    """Add the brains of the truth, of each method and of MWE's barycenter."""
    import matplotlib.pyplot as plt

    brains = {"truth": (sim.stcs, None)}
    for name, coef in irmxne.items():
        brains[name] = ([_template_stc(x, cohort, sim.peak_time) for x in coef], None)
    brains["MWE_0.5 and its barycenter"] = (result.stcs, result.stc_bar)
    for title, (stcs, stc_bar) in brains.items():
        fig = plot_group_sources(
            stcs,
            stc_bar,
            subject=cohort.subject_ref,
            subjects_dir=cohort.subjects_dir,
            labels=list(cohort.subjects),
            threshold=0.0,
            show=False,
        )
        report.add_figure(_snapshot(fig), title=title, section="Sources")
        plt.close("all")
    fig = plot_barycenter(
        result.stc_bar,
        subject=cohort.subject_ref,
        subjects_dir=cohort.subjects_dir,
        show=False,
    )
    report.add_figure(
        _snapshot(fig),
        title="MWE barycenter (above 10 % of its peak)",
        section="Sources",
    )


def _add_topomaps(report, cohort, sim):
    """Add each subject's magnetometer topography at the peak."""
    import matplotlib.pyplot as plt

    for s, subject in enumerate(cohort.subjects):
        fig = sim.evokeds[s].plot_topomap(
            times=[sim.peak_time], ch_type="mag", show=False, size=2.5
        )
        report.add_figure(fig, title=f"{subject}: sensors at the peak")
        plt.close("all")


@verbose
def run_demo(
    n_subjects=3,
    *,
    spacing="ico4",
    irmxne_alpha="sure",
    mwe_alpha=0.05,
    beta=0.03,
    out=None,
    subjects_dir=None,
    random_state=0,
    n_jobs=None,
    verbose=None,
):
    """Run the demo and write its HTML report.

    Builds a synthetic MEG cohort, simulates a group response in the left
    hemisphere with the MWE paper's protocol (5 sources, half of the
    subjects sharing their locations, SNR 4), and solves it on the left
    hemisphere with the same depth weighting (0.9) in two ways: each subject
    alone with MNE's irMxNE (:func:`mne.inverse_sparse.mixed_norm`, 5
    reweighting steps), the single-subject baseline, and all subjects
    jointly with MWE_0.5 (:func:`mne_wasserstein.apply_mwe`).

    irMxNE's alpha is chosen as a user would: by default with MNE's own
    data-driven rule, Stein's unbiased risk estimate (``alpha="sure"`` of
    :func:`mne.inverse_sparse.mixed_norm`), per subject. The oracle, the
    alpha of ``ORACLE_ALPHAS`` with the smallest localisation error per
    subject (it needs the truth, so no user can reach it), is reported too.

    The report (an :class:`mne.Report`) has the parameters, the
    localisation errors (mean geodesic distance from a true source to the
    closest estimated one), the MWE convergence, brain snapshots of the
    truth, of each method and of the barycenter (3D with the ``viz`` extra
    and a display, else matplotlib), and each subject's sensor topography.

    Parameters
    ----------
    n_subjects : int
        The number of subjects (>= 2).
    spacing : str
        The source spacing, one of ``SPACINGS``.
    irmxne_alpha : ``"sure"`` | float
        irMxNE's alpha on MNE's scale (in (0, 100), percent of its
        ``alpha_max``), or ``"sure"``.
    mwe_alpha : float
        MWE's regularisation, in (0, 1), relative to its ``alpha_max`` (see
        :func:`mne_wasserstein.apply_mwe`).
    beta : float
        MWE's transport weight (> 0).
    out : path-like | None
        The report file or the folder to write it into (default: the
        current folder); the file is ``mne_wasserstein_demo.html`` unless
        ``out`` ends in ``.html``.
    subjects_dir : path-like | None
        Where the template and subjects live (default: the data folder).
    random_state : int
        The seed of the cohort and the simulation.
    n_jobs : int | None
        Parallel jobs to build the cohort and fit MWE.
    verbose : bool | str | int | None
        Verbosity (see :func:`mne.verbose`).

    Returns
    -------
    report_path : Path
        The HTML report.
    summary : str
        A summary (one line per method).
    """
    _check_demo_params(n_subjects, spacing, irmxne_alpha, mwe_alpha, beta)
    import matplotlib

    matplotlib.use("Agg")
    path = _report_path(out)

    logger.info("1/5 building the synthetic cohort")
    cohort = make_cohort(
        n_subjects,
        spacing=spacing,
        modality="meg",
        subjects_dir=subjects_dir,
        random_state=random_state,
        n_jobs=n_jobs,
    )
    logger.info("2/5 simulating a group response (paper 001, section 5.1)")
    sim = simulate_group_evokeds(cohort, hemi="lh", random_state=random_state)
    src_lh = cohort.src_ref[:1]
    ground_metric = compute_ground_metric(src_lh, subjects_dir=cohort.subjects_dir)
    irmxne, best = _solve_irmxne(sim, cohort, irmxne_alpha, ground_metric)
    logger.info("5/5 solving all subjects jointly with MWE_0.5")
    result = apply_mwe(
        sim.evokeds,
        sim.forwards,
        sim.noise_covs,
        alpha=mwe_alpha,
        beta=beta,
        src_ref=src_lh,
        subjects_dir=cohort.subjects_dir,
        ground_metric=ground_metric,
        time=sim.peak_time,
        n_jobs=n_jobs,
    )
    estimates = {**irmxne, "MWE_0.5": result.coef}
    comparison = _compare(sim, cohort, estimates, ground_metric)
    parameters = [
        ["subjects", n_subjects],
        ["spacing", spacing],
        ["seed", random_state],
        ["true sources", len(sim.centers)],
        ["measured SNR", f"{sim.snr:.2f}"],
        ["time fitted (s)", f"{sim.peak_time:.3f}"],
        ["irMxNE alpha (MNE's % of alpha_max)", irmxne_alpha],
        ["irMxNE oracle alpha per subject", [ORACLE_ALPHAS[b] for b in best]],
        ["MWE alpha (relative to alpha_max)", mwe_alpha],
        ["MWE beta", beta],
    ]
    with use_log_level("warning"):
        report = Report(title="mne-wasserstein demo: MWE_0.5 and MNE's irMxNE")
        _add_error_tables(report, comparison, cohort.subjects)
        _add_parameters(report, parameters, result)
        _add_convergence(report, result)
        _add_sources(report, cohort, sim, irmxne, result)
        _add_topomaps(report, cohort, sim)
        report.save(path, overwrite=True, open_browser=False)
    return path, _summary(comparison, len(sim.centers), irmxne_alpha)
