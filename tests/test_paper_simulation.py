"""The simulation study script, ``benchmarks/paper_simulation.py``, on tiny grids.

The script is not part of the package: it is imported from its file. Its
studies run on the 4-subject MEG cohort of the suite (``cohort_meg``, read
from the cache), at S = 2, one trial, with two cheap models on small grids.
"""

import csv
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "paper_simulation.py"


@pytest.fixture(scope="module")
def study():
    """The script as the module ``paper_simulation``.

    The name under which it runs: the workers of a Dask cluster import it
    by that name.
    """
    spec = importlib.util.spec_from_file_location("paper_simulation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["paper_simulation"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["paper_simulation"]


def _tiny(study, cohort, **kwargs):
    """A tiny study on ``cohort``: Lasso and Dirty, S = 2, different leadfields."""
    models = {m.name: m for m in study._models()}
    return dict(
        models=[
            replace(models["Lasso"], alphas=np.array([0.1, 0.03])),
            replace(models["Dirty"], alphas=np.array([0.1])),  # x 3 betas
        ],
        n_subjects=[2],
        trials=1,
        conditions=["different"],
        cohort_size=cohort.n_subjects,  # the suite's cohort, from the cache
        cohort_seed=cohort.random_state,
        n_jobs=1,
        **kwargs,
    )


def _rows(out, drop=("time",)):
    """The rows of ``fits.csv`` without the fit times, in a fixed order."""
    with open(out / "fits.csv", newline="") as fid:
        rows = [
            tuple((k, v) for k, v in row.items() if k not in drop)
            for row in csv.DictReader(fid)
        ]
    return sorted(rows)


# Lasso 2 alphas, Dirty 3 betas x 1 alpha, 2 subjects each
N_ROWS = (2 + 3) * 2


def test_dask_scheduler_same_rows(study, cohort_meg, tmp_path):
    """A Dask cluster gives the CSV rows of the local backend."""
    from dask.distributed import LocalCluster

    study.run_study(tmp_path / "local", **_tiny(study, cohort_meg))
    # one single-threaded worker process: a real cluster's worker, which
    # imports the script sent by the client and loads the cohort itself
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        study.run_study(
            tmp_path / "dask",
            **_tiny(study, cohort_meg, scheduler=cluster.scheduler_address),
        )
    local, dask = _rows(tmp_path / "local"), _rows(tmp_path / "dask")
    assert len(local) == N_ROWS
    # exact: the same code on the same data, one BLAS thread in both
    assert local == dask
    for out in ("local", "dask"):
        for name in ("table", "paired"):
            assert (tmp_path / out / f"{name}.rst").is_file()
        assert (tmp_path / out / "figure-default.png").is_file()
    # every model has one grid point for all subjects, the oracle its own
    with open(tmp_path / "local" / "table.csv", newline="") as fid:
        models = {row["model"] for row in csv.DictReader(fid)}
    assert models == {"Lasso", "Dirty", study.ORACLE}


def test_resume(study, cohort_meg, tmp_path, monkeypatch):
    """A finished fit is never recomputed; other settings stop the run."""
    out = tmp_path / "study"
    kwargs = _tiny(study, cohort_meg)
    study.run_study(out, **dict(kwargs, models=kwargs["models"][:1]))
    study.run_study(out, **kwargs)  # another model: the grids merge
    config = json.loads((out / "config.json").read_text())
    assert set(config["grids"]) == {"Lasso", "Dirty"}
    rows = _rows(out)
    assert len(rows) == N_ROWS
    (lasso,) = (out / "fits" / "default").glob("*-Lasso.csv")
    lasso.unlink()  # an interrupted run
    done = []
    run_task = study._run_task
    monkeypatch.setattr(
        study, "_run_task", lambda *args: done.append(args[1].name) or run_task(*args)
    )
    study.run_study(out, **kwargs)
    assert done == ["Lasso"]
    assert _rows(out) == rows  # the same fit again
    kwargs["models"][0] = replace(kwargs["models"][0], alphas=np.array([0.2]))
    with pytest.raises(SystemExit, match="other settings"):
        study.run_study(out, **kwargs)
    with pytest.raises(SystemExit, match="other settings"):
        study.run_study(out, **_tiny(study, cohort_meg, snr=2.0))


def test_anatomy_levels(study, cohort_meg, tmp_path, monkeypatch):
    """Each level gets its fits, its diversity and a row of the sweep.

    ``make_cohort`` without the ``anatomy`` parameter: a stand-in passes the
    level on to nothing (every level is the suite's cohort), so the levels,
    which share their seeds, must give the same fits.
    """
    import mne_wasserstein.datasets

    make_cohort = mne_wasserstein.datasets.make_cohort
    levels = []

    def make_cohort_at(*args, anatomy, **kwargs):
        levels.append(anatomy)
        return make_cohort(*args, **kwargs)

    diversity = iter([0.98, 0.61])
    monkeypatch.setattr(mne_wasserstein.datasets, "make_cohort", make_cohort_at)
    monkeypatch.setattr(
        study,
        "_leadfield_diversity",
        lambda cohort: dict(cross_subject=next(diversity), neighbour=0.9),
    )
    monkeypatch.setattr(study, "SWEEP_MODELS", ("Dirty",))
    study._load.cache_clear()
    out = tmp_path / "study"
    study.run_study(out, **_tiny(study, cohort_meg, anatomy=["template", 0.5]))
    study._load.cache_clear()
    assert levels == ["template", 0.5] * 2  # the diversity, then the tasks
    assert json.loads((out / "diversity.json").read_text()) == {
        "template": dict(cross_subject=0.98, neighbour=0.9),
        "0.5": dict(cross_subject=0.61, neighbour=0.9),
    }
    assert {p.name for p in (out / "fits").iterdir()} == {"template", "0.5"}
    fits = _rows(out, drop=("time", "anatomy"))
    assert fits[::2] == fits[1::2]  # each row twice: the levels are paired
    with open(out / "sensitivity.csv", newline="") as fid:
        sweep = list(csv.DictReader(fid))
    # the sweep's model, from the most similar level
    assert [(r["anatomy"], r["model"]) for r in sweep] == [
        ("template", "Dirty"),
        ("0.5", "Dirty"),
    ]
    assert sweep[0]["auc"] == sweep[1]["auc"]
    assert (out / "sensitivity.png").is_file()
    assert (out / "figure-template.png").is_file()
