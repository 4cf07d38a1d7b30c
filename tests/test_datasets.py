import json

import mne
import numpy as np
import pytest
from scipy.spatial import cKDTree

from mne_wasserstein.datasets import TEMPLATE, make_cohort, make_template
from mne_wasserstein.inverse._align import _aligned_order, _unit_sphere_reg
from mne_wasserstein.utils import get_data_dir

SPHERE_RADIUS = 100.0  # mm, the radius of FreeSurfer spheres


def test_template_files(subjects_dir):
    subject_dir = subjects_dir / TEMPLATE
    for hemi in ("lh", "rh"):
        for kind in ("white", "pial", "inflated", "sphere", "sphere.reg"):
            rr, tris = mne.read_surface(subject_dir / "surf" / f"{hemi}.{kind}")
            assert rr.shape == (10242, 3)
            assert tris.shape == (20480, 3)
            assert np.isfinite(rr).all()
    for name in ("inner_skull", "outer_skull", "outer_skin"):
        rr, tris = mne.read_surface(subject_dir / "bem" / f"{name}.surf")
        assert rr.shape == (10242, 3)
    trans = mne.read_trans(subject_dir / "bem" / f"{TEMPLATE}-trans.fif")
    assert trans["from"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD
    src = mne.setup_source_space(
        TEMPLATE, "ico3", subjects_dir=subjects_dir, add_dist=False, verbose=False
    )
    assert [s["nuse"] for s in src] == [642, 642]


def test_template_bem_is_nested(subjects_dir):
    """The three BEM layers pass MNE's checks (nesting, ico4 decimation)."""
    model = mne.make_bem_model(
        TEMPLATE,
        ico=3,
        conductivity=(0.3, 0.006, 0.3),
        subjects_dir=subjects_dir,
        verbose=False,
    )
    assert [s["np"] for s in model] == [642, 642, 642]


def test_template_is_cached(subjects_dir):
    marker = subjects_dir / TEMPLATE / "mne_wasserstein.json"
    before = marker.stat().st_mtime_ns
    assert make_template(subjects_dir) == subjects_dir
    assert marker.stat().st_mtime_ns == before


def test_cohort_subjects_differ(cohort_meg):
    counts = []
    for subject in cohort_meg.subjects:
        rr, _ = mne.read_surface(
            cohort_meg.subjects_dir / subject / "surf" / "lh.white"
        )
        counts.append(len(rr))
    assert len(set(counts)) == len(counts)
    assert not np.allclose(cohort_meg.scale, cohort_meg.scale[0])


def _aligned_normals(cohort, s):
    order = _aligned_order(
        cohort.src_ref,
        cohort.src[s],
        cohort.subject_ref,
        cohort.subjects[s],
        cohort.subjects_dir,
    )
    return np.concatenate([h["nn"][h["vertno"]] for h in cohort.src[s]])[order]


def test_cohort_normals_differ(cohort_meg):
    normals = [_aligned_normals(cohort_meg, s) for s in range(cohort_meg.n_subjects)]
    for i in range(len(normals)):
        for j in range(i + 1, len(normals)):
            cos = np.clip(np.sum(normals[i] * normals[j], axis=1), -1, 1)
            angle = np.degrees(np.median(np.arccos(cos)))
            print(f"median normal angle {i}-{j}: {angle:.1f} deg")
            assert angle > 10


def test_sphere_reg_mapping(cohort_meg):
    """Each template vertex has a subject vertex within 2 mm on the sphere."""
    for subject in cohort_meg.subjects:
        for hemi in ("lh", "rh"):
            ref = _unit_sphere_reg(cohort_meg.subjects_dir, TEMPLATE, hemi)
            sub = _unit_sphere_reg(cohort_meg.subjects_dir, subject, hemi)
            dist, _ = cKDTree(sub).query(ref)
            assert SPHERE_RADIUS * dist.max() < 2.0
    # and the aligned sources are those images
    for s, subject in enumerate(cohort_meg.subjects):
        order = _aligned_order(
            cohort_meg.src_ref,
            cohort_meg.src[s],
            TEMPLATE,
            subject,
            cohort_meg.subjects_dir,
        )
        assert np.array_equal(np.sort(order), np.arange(len(order)))
        for h, (s_ref, s_sub) in enumerate(
            zip(cohort_meg.src_ref, cohort_meg.src[s], strict=True)
        ):
            hemi = ("lh", "rh")[h]
            ref = _unit_sphere_reg(cohort_meg.subjects_dir, TEMPLATE, hemi)
            sub = _unit_sphere_reg(cohort_meg.subjects_dir, subject, hemi)
            rows = (
                order[h * s_ref["nuse"] : (h + 1) * s_ref["nuse"]] - h * s_ref["nuse"]
            )
            d = np.linalg.norm(
                ref[s_ref["vertno"]] - sub[s_sub["vertno"][rows]], axis=1
            )
            assert SPHERE_RADIUS * d.max() < 2.0


def test_cohort_forwards(cohort_meg, cohort_eeg):
    n_src = 2 * 2562
    assert cohort_meg.n_subjects == 4
    assert "4 subjects" in repr(cohort_meg)
    for fwd, info, cov, src in zip(
        cohort_meg.forward,
        cohort_meg.info,
        cohort_meg.noise_cov,
        cohort_meg.src,
        strict=True,
    ):
        assert fwd["sol"]["data"].shape == (306, 3 * n_src)
        assert np.isfinite(fwd["sol"]["data"]).all()
        assert np.abs(fwd["sol"]["data"]).max() > 0
        assert len(mne.pick_types(info, meg="mag")) == 102
        assert len(mne.pick_types(info, meg="grad")) == 204
        assert cov["names"] == info["ch_names"]
        assert [s["nuse"] for s in src] == [2562, 2562]
    # subjects differ in their leadfields
    g0, g1 = (f["sol"]["data"] for f in cohort_meg.forward[:2])
    assert not np.allclose(g0, g1)
    for fwd in cohort_eeg.forward:
        n_eeg = len(mne.pick_types(fwd["info"], meg=False, eeg=True))
        assert n_eeg > 300
        assert fwd["sol"]["data"].shape == (n_eeg, 3 * 2 * 642)
        assert np.isfinite(fwd["sol"]["data"]).all()
    assert any(p["desc"].startswith("Average EEG") for p in cohort_eeg.info[0]["projs"])


def test_cohort_cache_shares_subjects(cohort_meg):
    """Same seed: a smaller cohort is read from the cache, identical."""
    small = make_cohort(
        2, subjects_dir=cohort_meg.subjects_dir, random_state=cohort_meg.random_state
    )
    assert small.subjects == cohort_meg.subjects[:2]
    for a, b in zip(small.forward, cohort_meg.forward[:2], strict=True):
        np.testing.assert_array_equal(a["sol"]["data"], b["sol"]["data"])
    meta = json.loads(
        (
            cohort_meg.subjects_dir / small.subjects[0] / "mne_wasserstein.json"
        ).read_text()
    )
    assert meta["scale"] == pytest.approx(cohort_meg.scale[0])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_subjects=0), ValueError, "n_subjects must be >= 1"),
        (dict(n_subjects=2.5), TypeError, "n_subjects must be an int"),
        (dict(n_subjects=1, spacing="ico9"), ValueError, "spacing must be one of"),
        (dict(n_subjects=1, modality="fmri"), ValueError, "modality must be one of"),
    ],
)
def test_cohort_bad_input(kwargs, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        make_cohort(subjects_dir=tmp_path, **kwargs)


def test_unwritable_data_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MNE_WASSERSTEIN_DATA", str(blocker / "data"))
    with pytest.raises(PermissionError, match="Cannot create the data folder"):
        get_data_dir()
    with pytest.raises(PermissionError, match="MNE_WASSERSTEIN_DATA"):
        make_cohort(1)
    with pytest.raises(PermissionError, match="Cannot create"):
        make_template(blocker / "subjects")


def test_data_folder_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_WASSERSTEIN_DATA", str(tmp_path / "here"))
    assert get_data_dir() == (tmp_path / "here").resolve()
    assert (tmp_path / "here").is_dir()
