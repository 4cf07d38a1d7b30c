import re
import subprocess
import sys

import numpy as np
import pytest

from mne_wasserstein import __version__
from mne_wasserstein.__main__ import main
from mne_wasserstein._demo import _source_distances, run_demo
from mne_wasserstein.ground_metric import compute_ground_metric
from mne_wasserstein.metrics import localization_error


def test_demo_command(cohort_meg, tmp_path, capsys):
    # seed 0 and the session cohort's folder: the subjects come from the cache;
    # a fixed irMxNE alpha keeps the test fast (SURE fits a path per subject)
    main(
        [
            "demo",
            "--n-subjects",
            "2",
            "--irmxne-alpha",
            "30",
            "--subjects-dir",
            str(cohort_meg.subjects_dir),
            "--out",
            str(tmp_path),
        ]
    )
    captured = capsys.readouterr()
    out = captured.out
    # every method reports its localisation error
    for name in ("irMxNE (alpha=30.0)", "irMxNE (oracle alpha)", "MWE_0.5"):
        line = next(line for line in out.splitlines() if line.startswith(name))
        # all true sources / the better-seen half
        text = line.split("localisation error ")[1]
        errors = [float(e.strip(" /")) for e in text.split(" mm")[:2]]
        assert all(0 <= e < 100 for e in errors)  # mm, on a hemisphere
    report = tmp_path / "mne_wasserstein_demo.html"
    assert f"Report written to {report}" in out
    html = report.read_text()
    for title in (
        "Localisation errors",
        "Distance from each true source",
        "Parameters",
        "MWE convergence",
        "MWE_0.5 and its barycenter",
        "MWE barycenter",
    ):
        assert title in html
    # MNE's report does not list the assets it embeds
    assert "Embedding" not in out + captured.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--spacing", "foo"], "invalid choice: 'foo'"),
        (["--n-subjects", "0"], "must be >= 2, got 0"),
        (["--n-subjects", "x"], "not an integer: 'x'"),
        (["--mwe-alpha", "2"], r"must be in \(0, 1\), got 2.0"),
        (["--irmxne-alpha", "100"], r"must be in \(0, 100\), got 100.0"),
        (["--irmxne-alpha", "best"], "not a number: 'best'"),
        (["--beta", "-1"], r"must be in \(0, inf\), got -1.0"),
    ],
)
def test_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    # argparse's usage, then one error line
    assert err[0].startswith("usage: mne-wasserstein demo")
    assert err[-1].startswith("mne-wasserstein demo: error: argument ")
    assert re.search(message, err[-1])


def test_bad_option_fails_before_mne():
    # a bad option is rejected before anything heavy is imported (MNE, numba)
    code = (
        "import sys\n"
        "from mne_wasserstein.__main__ import main\n"
        "try:\n"
        "    main(['demo', '--mwe-alpha', '2'])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'mne' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["2", "False"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"mne-wasserstein {__version__}"


def test_every_option_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    # the defaults are shown for every option with a help text (all 9)
    assert text.count("(default: ") == 9
    for option in ("--n-subjects N number of subjects", "--irmxne-alpha ALPHA"):
        assert option in text


def test_run_demo_validates_first(tmp_path):
    # bad parameters fail before the cohort is built or a folder is made
    for kwargs, match in [
        (dict(mwe_alpha=2.0), "mwe_alpha"),
        (dict(irmxne_alpha=0), "irmxne_alpha"),
        (dict(spacing="ico9"), "spacing"),
        (dict(beta=0.0), "beta"),
    ]:
        with pytest.raises(ValueError, match=match):
            run_demo(
                2, out=tmp_path / "out", subjects_dir=tmp_path / "subjects", **kwargs
            )
    with pytest.raises(ValueError, match="n_subjects"):
        run_demo(1, out=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_source_distances(cohort_meg):
    # per subject, the mean of the per-source distances is the localisation
    # error of mne_wasserstein.metrics (exactly: the same minima)
    src_lh = cohort_meg.src_ref[:1]
    ground_metric = compute_ground_metric(src_lh, subjects_dir=cohort_meg.subjects_dir)
    rng = np.random.default_rng(0)
    true, est = np.zeros((2, 3, src_lh[0]["nuse"]))
    for s in range(3):
        true[s, rng.choice(src_lh[0]["nuse"], 4, replace=False)] = 1.0
        est[s, rng.choice(src_lh[0]["nuse"], 1 + s, replace=False)] = -2.0
    dists = _source_distances(true, est, ground_metric).reshape(3, 4)
    np.testing.assert_allclose(
        dists.mean(axis=1), localization_error(true, est, ground_metric)
    )
    est[1] = 0.0
    assert np.isnan(_source_distances(true, est, ground_metric)[4:8]).all()
