"""Tests of the shared utilities (mne_wasserstein.utils): the disk cache."""

import mne
import numpy as np
import pytest

from mne_wasserstein._cache import cached
from mne_wasserstein.datasets import TEMPLATE
from mne_wasserstein.ground_metric import compute_ground_metric


def _truncate(fname):
    """Keep the first half of a file, as a crash or a full disk would."""
    size = fname.stat().st_size
    with open(fname, "r+b") as fid:
        fid.truncate(size // 2)


class _Counter:
    """A compute function that counts its calls."""

    def __init__(self, obj):
        self.obj, self.calls = obj, 0

    def __call__(self):
        self.calls += 1
        return self.obj


def _save(fname, arr):
    np.save(fname, arr, allow_pickle=False)


def _load(fname):
    return np.load(fname, allow_pickle=False)


def test_cached_reads_and_heals(tmp_path):
    """Missing: built once; intact: read; unreadable: rebuilt with a warning."""
    fname = tmp_path / "sub" / "x.npy"
    compute = _Counter(np.arange(1000.0))
    np.testing.assert_array_equal(cached(fname, compute, _save, _load), compute.obj)
    np.testing.assert_array_equal(cached(fname, compute, _save, _load), compute.obj)
    assert compute.calls == 1
    assert [f.name for f in fname.parent.iterdir()] == ["x.npy"]  # no tmp file
    for damage in (_truncate, lambda f: f.write_bytes(b"")):
        damage(fname)
        with pytest.warns(RuntimeWarning, match=r"cached file .*x\.npy could not"):
            out = cached(fname, compute, _save, _load)
        np.testing.assert_array_equal(out, compute.obj)
        np.testing.assert_array_equal(_load(fname), compute.obj)  # healed on disk
    assert compute.calls == 3


def test_cached_reader_warning_is_a_failure(tmp_path):
    """A RuntimeWarning of the reader (MNE's "Invalid tag") triggers a rebuild."""
    fname = tmp_path / "x.npy"
    _save(fname, np.zeros(3))
    compute = _Counter(np.ones(3))
    state = {"first": True}

    def read_warns_once(f):
        if state.pop("first", False):
            mne.utils.warn("Invalid tag with only 0/16 bytes")
        return _load(f)

    with pytest.warns(RuntimeWarning, match="rebuilding it"):
        out = cached(fname, compute, _save, read_warns_once)
    np.testing.assert_array_equal(out, np.ones(3))
    assert compute.calls == 1


def test_cached_persistent_failure_raises(tmp_path):
    """A reader that cannot read even a fresh file raises its own error."""
    fname = tmp_path / "x.npy"
    _save(fname, np.zeros(3))

    def broken(f):
        raise ValueError("cannot read this")

    with pytest.warns(RuntimeWarning, match="rebuilding"):
        with pytest.raises(ValueError, match="cannot read this"):
            cached(fname, lambda: np.zeros(3), _save, broken)


def test_truncated_forward_is_rebuilt(cohort_meg, tmp_path):
    """A truncated cached forward (MNE: "No forward solutions") is rebuilt."""
    fwd = cohort_meg.forwards[0]
    fname = tmp_path / "meg-ico4-fwd.fif"
    mne.write_forward_solution(fname, fwd, verbose=False)
    _truncate(fname)

    def read(f):
        return mne.read_forward_solution(f, verbose=False)

    compute = _Counter(fwd)
    with pytest.warns(RuntimeWarning, match=r"meg-ico4-fwd\.fif could not be read"):
        out = cached(
            fname,
            compute,
            lambda f, obj: mne.write_forward_solution(f, obj, verbose=False),
            read,
        )
    assert compute.calls == 1
    np.testing.assert_array_equal(out["sol"]["data"], fwd["sol"]["data"])
    np.testing.assert_array_equal(read(fname)["sol"]["data"], fwd["sol"]["data"])


def test_truncated_ground_metric_is_rebuilt(subjects_dir, tmp_path, monkeypatch):
    """compute_ground_metric heals a truncated cache file in its data folder."""
    monkeypatch.setenv("MNE_WASSERSTEIN_DATA", str(tmp_path))  # isolated cache
    src = mne.setup_source_space(
        TEMPLATE, "ico3", subjects_dir=subjects_dir, add_dist=False, verbose=False
    )[:1]
    gm = compute_ground_metric(src, subjects_dir=subjects_dir)
    (cached,) = (tmp_path / "ground_metrics").glob("*.npy")
    _truncate(cached)
    with pytest.raises(ValueError):
        np.load(cached)
    with pytest.warns(RuntimeWarning, match=f"{cached.name} could not be read"):
        healed = compute_ground_metric(src, subjects_dir=subjects_dir)
    np.testing.assert_array_equal(healed.blocks[0], gm.blocks[0])
    np.testing.assert_array_equal(np.load(cached), gm.blocks[0])
