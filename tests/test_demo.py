import numpy as np
import pytest

from mne_wasserstein.__main__ import main
from mne_wasserstein.viz import plot_sources_2d


def test_demo_command(cohort_meg, tmp_path, capsys):
    # seed 0 and the session cohort's folder: the subjects come from the cache
    main(
        [
            "demo",
            "--n-subjects",
            "2",
            "--subjects-dir",
            str(cohort_meg.subjects_dir),
            "--output",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    # both methods report their localisation error
    for name in ("irMxNE", "MWE_0.5"):
        line = next(line for line in out.splitlines() if line.startswith(name))
        error = float(line.split("estimate) ")[1].split(" mm")[0])
        assert 0 <= error < 100  # mm, on a hemisphere about 100 mm long
    report = tmp_path / "report.html"
    assert f"Report written to {report}" in out
    html = report.read_text()
    assert "true vs estimated sources" in html


def test_plot_sources_2d(cohort_meg):
    n = sum(s["nuse"] for s in cohort_meg.src_ref)
    coef = np.zeros((2, n))
    coef[0, [3, n - 5]] = [1.0, -2.0]
    fig = plot_sources_2d(
        coef,
        cohort_meg.src_ref,
        subjects_dir=cohort_meg.subjects_dir,
        subject=cohort_meg.subject_ref,
        labels=["a", "b"],
        title="t",
    )
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="columns"):
        plot_sources_2d(
            coef[:, :10],
            cohort_meg.src_ref,
            subjects_dir=cohort_meg.subjects_dir,
            subject=cohort_meg.subject_ref,
        )
