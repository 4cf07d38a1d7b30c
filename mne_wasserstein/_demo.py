"""The demo: a synthetic group study solved subject by subject, as a report."""

from pathlib import Path

import numpy as np
from mne import Report, SourceEstimate
from mne.inverse_sparse import mixed_norm
from mne.utils import ProgressBar, logger, verbose

from .datasets import make_cohort
from .ground_metric import compute_ground_metric
from .inverse import apply_mwe
from .inverse._align import _aligned_order
from .metrics import localization_error
from .simulation import simulate_group_evokeds
from .utils import get_data_dir
from .viz import plot_sources_2d


def _irmxne_lh(sim, s, cohort, alpha):
    """Solve subject ``s`` alone by irMxNE on the lh (A*m, template order)."""
    fwd = sim.forward[s]
    n_lh = cohort.src_ref[0]["nuse"]
    weights = np.zeros(fwd["nsource"])
    weights[:n_lh] = 1.0  # the right hemisphere is masked out (weights_min)
    stc = mixed_norm(
        sim.evokeds[s].copy().crop(sim.peak_time, sim.peak_time),
        fwd,
        sim.noise_cov[s],
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
    order = _aligned_order(
        cohort.src_ref[:1],
        fwd["src"][:1],
        cohort.subject_ref,
        cohort.subjects[s],
        cohort.subjects_dir,
    )
    return rows[order]


def _template_stc(coef_lh, cohort, time):
    """Return a left-hemisphere estimate in template order on the template."""
    vertices = [cohort.src_ref[0]["vertno"], np.zeros(0, int)]
    return SourceEstimate(
        coef_lh[:, np.newaxis], vertices, time, 1.0, subject=cohort.subject_ref
    )


@verbose
def run_demo(
    n_subjects=3,
    *,
    spacing="ico4",
    alpha=20.0,
    mwe_alpha=0.05,
    beta=0.03,
    output=None,
    subjects_dir=None,
    random_state=0,
    n_jobs=None,
    verbose=None,
):
    """Run the demo and return the path of its HTML report.

    Builds a synthetic MEG cohort, simulates a group response in the left
    hemisphere with the MWE paper's protocol, and solves it twice on the
    left hemisphere (the same depth weighting, 0.9): each subject alone with
    MNE's irMxNE (:func:`mne.inverse_sparse.mixed_norm`, 5 reweighting
    steps), the single-subject baseline, and all subjects jointly with
    MWE_0.5 (:func:`mne_wasserstein.apply_mwe`). Writes an
    :class:`mne.Report` with sensor topographies and true vs estimated
    sources, and the localisation error of both (mean geodesic distance
    from a true source to the closest estimated one).

    Parameters
    ----------
    n_subjects : int
        The number of subjects.
    spacing : str
        The source spacing.
    alpha : float
        The regularisation of ``mixed_norm`` (in [0, 100)).
    mwe_alpha, beta : float
        The regularisation and transport weight of MWE (relative to
        ``alpha_max``, see :func:`mne_wasserstein.apply_mwe`).
    output : path-like | None
        The folder of the report (default: ``<data folder>/demo``).
    subjects_dir : path-like | None
        Where the template and subjects live (default: the data folder).
    random_state : int
        The seed of the cohort and the simulation.
    n_jobs : int | None
        Parallel jobs to build the cohort.
    verbose : bool | str | int | None
        Verbosity (see :func:`mne.verbose`).

    Returns
    -------
    report_path : Path
        The HTML report.
    summary : str
        A summary (one line per method).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output) if output is not None else get_data_dir() / "demo"
    output.mkdir(parents=True, exist_ok=True)
    logger.info("1/4 building the synthetic cohort")
    cohort = make_cohort(
        n_subjects,
        spacing=spacing,
        modality="meg",
        subjects_dir=subjects_dir,
        random_state=random_state,
        n_jobs=n_jobs,
    )
    logger.info("2/4 simulating a group response (paper 001, section 5.1)")
    sim = simulate_group_evokeds(cohort, hemi="lh", random_state=random_state)
    src_lh = cohort.src_ref[:1]
    ground_metric = compute_ground_metric(src_lh, subjects_dir=cohort.subjects_dir)
    n_lh = src_lh[0]["nuse"]
    logger.info("3/4 solving each subject alone with irMxNE")
    est = {"irMxNE": np.zeros((n_subjects, n_lh))}
    for s in ProgressBar(range(n_subjects), mesg="irMxNE"):
        est["irMxNE"][s] = _irmxne_lh(sim, s, cohort, alpha)
    logger.info("4/4 solving all subjects jointly with MWE_0.5")
    est["MWE_0.5"] = apply_mwe(
        sim.evokeds,
        sim.forward,
        sim.noise_cov,
        alpha=mwe_alpha,
        beta=beta,
        src_ref=src_lh,
        subjects_dir=cohort.subjects_dir,
        ground_metric=ground_metric,
        time=sim.peak_time,
        n_jobs=n_jobs,
    ).coef
    true = sim.coef[:, :n_lh]
    errors = {k: localization_error(true, v, ground_metric) for k, v in est.items()}
    counts = {k: np.count_nonzero(v, axis=1) for k, v in est.items()}

    report = Report(title="mne-wasserstein demo: MWE_0.5 and the irMxNE baseline")
    for s, subject in enumerate(cohort.subjects):
        fig = sim.evokeds[s].plot_topomap(
            times=[sim.peak_time], ch_type="mag", show=False
        )
        report.add_figure(fig, title=f"{subject}: sensors at the peak", section=subject)
        stcs = [sim.stcs_template[s]] + [
            _template_stc(est[k][s], cohort, sim.peak_time) for k in est
        ]
        fig = plot_sources_2d(
            stcs,
            subjects_dir=cohort.subjects_dir,
            subject=cohort.subject_ref,
            labels=["true", "irMxNE", "MWE_0.5"],
            threshold=0.0,
            title=", ".join(
                f"{k}: {counts[k][s]} sources, {errors[k][s]:.1f} mm" for k in est
            ),
        )
        report.add_figure(
            fig, title=f"{subject}: true vs estimated sources", section=subject
        )
        plt.close("all")
    summary = "\n".join(
        f"{name}: {counts[name].min()}-{counts[name].max()} sources per subject "
        f"for {len(sim.centers)} true ones; localisation error (mean distance from "
        f"a true source to the closest estimate) {np.nanmean(errors[name]):.1f} mm"
        for name in est
    )
    summary = f"{n_subjects} subjects, left hemisphere\n{summary}"
    report.add_html(f"<pre>{summary}</pre>", title="Summary")
    path = output / "report.html"
    report.save(path, overwrite=True, open_browser=False, verbose=False)
    return path, summary
