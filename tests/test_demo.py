from mne_wasserstein.__main__ import main


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
