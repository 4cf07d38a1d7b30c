import json

import mne
import numpy as np
import pytest
from scipy.spatial import cKDTree

from mne_wasserstein.datasets import (
    TEMPLATE,
    LeadfieldDiversity,
    leadfield_diversity,
    make_cohort,
    make_template,
)
from mne_wasserstein.datasets._cohort import (
    SKULL_MARGIN_WHITE,
    _both_hemispheres,
    _check_anatomy,
    _new_intersections,
    _subject_name,
    _template_defects,
    _write_subject,
)
from mne_wasserstein.datasets._mesh import (
    _fibonacci_sphere,
    _self_intersections,
    _sphere_triangulation,
    _star_radius,
    _triangles_intersect,
)
from mne_wasserstein.datasets._template import _template_bem_surfaces
from mne_wasserstein.inverse import aligned_order
from mne_wasserstein.inverse._align import _unit_sphere_reg
from mne_wasserstein.utils import get_data_dir

LEVELS = ("template", 0.0, "individual", "exaggerated", "warp")

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
    order = cohort.source_order(s)
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
        order = aligned_order(
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
        cohort_meg.forwards,
        cohort_meg.info,
        cohort_meg.noise_covs,
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
    g0, g1 = (f["sol"]["data"] for f in cohort_meg.forwards[:2])
    assert not np.allclose(g0, g1)
    for fwd in cohort_eeg.forwards:
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
    for a, b in zip(small.forwards, cohort_meg.forwards[:2], strict=True):
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
        (dict(n_subjects=1, anatomy="real"), ValueError, "anatomy must be one of"),
        (dict(n_subjects=1, anatomy=-0.5), ValueError, "must be finite and >= 0"),
        (dict(n_subjects=1, anatomy=np.nan), ValueError, "must be finite and >= 0"),
        (dict(n_subjects=1, anatomy=True), TypeError, "anatomy must be"),
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


def test_triangles_intersect():
    tri = np.array([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    piercing = np.array([[[0.2, 0.2, -1], [0.2, 0.2, 1], [1, 1, 0.5]]])
    assert _triangles_intersect(tri, piercing)[0]
    assert not _triangles_intersect(tri, piercing + [0, 0, 5])[0]
    # coplanar: overlapping, and side by side
    assert _triangles_intersect(tri, tri + [0.1, 0.1, 0])[0]
    assert not _triangles_intersect(tri, tri + [2, 0, 0])[0]
    # parallel planes 1 micrometre apart (mm units)
    assert not _triangles_intersect(tri, tri + [0, 0, 1e-3])[0]


def test_self_intersections_brute_force():
    """The grid search finds exactly the intersections of all pairs."""
    unit = _fibonacci_sphere(300)
    tris = _sphere_triangulation(unit)
    rr = 10 * unit + np.random.default_rng(0).normal(0, 0.8, unit.shape)
    i, j = np.triu_indices(len(tris), 1)
    shared = (tris[i][:, :, None] == tris[j][:, None, :]).any(axis=(1, 2))
    i, j = i[~shared], j[~shared]
    hit = _triangles_intersect(rr[tris[i]], rr[tris[j]])
    expected = set(zip(i[hit].tolist(), j[hit].tolist(), strict=True))
    found = set(map(tuple, _self_intersections(rr, tris).tolist()))
    assert len(expected) > 5  # the noise folds the mesh
    assert found == expected
    assert len(_self_intersections(10 * unit, tris)) == 0


def _read_hemis(subject_dir, kind):
    return {
        h: mne.read_surface(subject_dir / "surf" / f"{h}.{kind}") for h in ("lh", "rh")
    }


@pytest.fixture(scope="module")
def scratch_subjects_dir(tmp_path_factory):
    """A template in a temporary folder, for anatomies kept out of the cache.

    Shared by the anatomy tests below: their subjects have distinct names
    (seed, level, index), and writing the template once saves a few seconds
    per test.
    """
    return make_template(tmp_path_factory.mktemp("anatomies"))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed, index", [(1, 0), (2, 5)])
def test_anatomy_meshes_are_valid(level, seed, index, scratch_subjects_dir):
    """White surfaces: no new self-intersections, inside the inner skull."""
    subjects_dir = scratch_subjects_dir
    level = _check_anatomy(level)
    subject = _subject_name(seed, level, index)
    _write_subject(subjects_dir, subject, seed, index, level)
    subject_dir = subjects_dir / subject
    scale = json.loads((subject_dir / "mne_wasserstein.json").read_text())["scale"]
    rr, tris = _both_hemispheres(_read_hemis(subject_dir, "white"))
    # the template's own crossings (medial wall, one fold) are not counted
    assert len(_new_intersections(rr / scale, tris, _template_defects())) == 0
    bem_rr, bem_tris = _template_bem_surfaces()
    skull = bem_rr["inner_skull"]
    center = skull.mean(axis=0)
    gap = _star_radius(center, skull, bem_tris, rr / scale) - np.linalg.norm(
        rr / scale - center, axis=1
    )
    # the margin minus half the spacing of the skull mesh's vertices
    assert gap.min() > SKULL_MARGIN_WHITE - 1.5
    # the registration is a bijection: sphere.reg triangles face outwards
    for rr_s, tris_s in _read_hemis(subject_dir, "sphere.reg").values():
        a, b, c = (rr_s[tris_s[:, k]] for k in range(3))
        assert np.all(np.einsum("ij,ij->i", np.cross(b - a, c - a), a) > 0)


def test_anatomy_levels_share_sampling(scratch_subjects_dir):
    """Numeric levels change only the anatomy: same lattice and head size."""
    subjects_dir = scratch_subjects_dir
    surfs = {}
    for level in (0.0, 1.0):
        subject = _subject_name(3, level, 0)
        _write_subject(subjects_dir, subject, 3, 0, level)
        surfs[level] = {
            kind: _read_hemis(subjects_dir / subject, kind)["lh"][0]
            for kind in ("sphere.reg", "white")
        }
    np.testing.assert_array_equal(surfs[0.0]["sphere.reg"], surfs[1.0]["sphere.reg"])
    moved = np.linalg.norm(surfs[0.0]["white"] - surfs[1.0]["white"], axis=1)
    assert np.median(moved) > 0.5  # mm


def test_template_level_has_identical_gains(cohort_template):
    assert all("-template-" in s for s in cohort_template.subjects)
    np.testing.assert_array_equal(cohort_template.scale, 1.0)
    # own vertex orders, yet the same gain column for each aligned source
    orders = [
        aligned_order(
            cohort_template.src_ref,
            cohort_template.src[s],
            cohort_template.subject_ref,
            cohort_template.subjects[s],
            cohort_template.subjects_dir,
        )
        for s in range(cohort_template.n_subjects)
    ]
    assert not np.array_equal(
        cohort_template.src[0][0]["vertno"], cohort_template.src[1][0]["vertno"]
    )
    gains = [
        f["sol"]["data"].reshape(len(f["sol"]["data"]), -1, 3)[:, o]
        for f, o in zip(cohort_template.forwards, orders, strict=True)
    ]
    for g in gains[1:]:
        np.testing.assert_array_equal(g, gains[0])
    div = leadfield_diversity(cohort_template)
    # float32 gains (FIF) of identical computations: equal to rounding
    np.testing.assert_allclose(div.cross_subject, 1.0, atol=1e-6)
    np.testing.assert_allclose(div.normal_angle, 0.0, atol=1e-3)
    assert div.summary()["neighbour"]["median"] < 1.0


def test_leadfield_diversity(cohort_meg):
    div = leadfield_diversity(cohort_meg, ch_type="grad")
    assert isinstance(div, LeadfieldDiversity)
    n_src = sum(s["nuse"] for s in cohort_meg.src_ref)
    assert div.cross_subject.shape == div.normal_angle.shape == (6, n_src)
    assert div.neighbour.shape == (4, n_src)
    assert len(div.ch_names) == 204
    assert div.pairs.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    for values in (div.cross_subject, div.neighbour):
        assert np.all((values >= 0) & (values <= 1 + 1e-12))
    # ico4: neighbouring sources are about 4 mm apart on fsaverage5
    assert 2 < np.median(div.neighbour_distance) < 6
    # one source computed by hand: each subject's fixed gain is its free gain
    # (head frame) along the source normal (MRI frame, rotated to the head)
    j = 123
    cols = []
    for s in (0, 1):
        row = aligned_order(
            cohort_meg.src_ref,
            cohort_meg.src[s],
            cohort_meg.subject_ref,
            cohort_meg.subjects[s],
            cohort_meg.subjects_dir,
        )[j]
        normal = np.concatenate([h["nn"][h["vertno"]] for h in cohort_meg.src[s]])[row]
        normal = cohort_meg.trans[s]["trans"][:3, :3].T @ normal
        fwd = cohort_meg.forwards[s]
        picks = [fwd["sol"]["row_names"].index(c) for c in div.ch_names]
        cov = cohort_meg.noise_covs[s]
        std = np.sqrt(np.diag(cov.data)[[cov.ch_names.index(c) for c in div.ch_names]])
        cols.append(fwd["sol"]["data"][picks, 3 * row : 3 * row + 3] @ normal / std)
    cosine = abs(cols[0] @ cols[1]) / np.linalg.norm(cols[0]) / np.linalg.norm(cols[1])
    # float32 gains; the normals are rotated the same way by MNE
    assert div.cross_subject[0, j] == pytest.approx(cosine, abs=1e-5)
    table = div.to_frame()
    assert table.shape == (3, 3)
    assert table.loc["cosine, same source, two subjects", "median"] == pytest.approx(
        div.summary()["cross_subject"]["median"]
    )
    assert "same-source cosine median" in repr(div)


def test_leadfield_diversity_bad_input(cohort_meg):
    with pytest.raises(TypeError, match="must be a Cohort"):
        leadfield_diversity(cohort_meg.forwards)
    with pytest.raises(ValueError, match="ch_type must be"):
        leadfield_diversity(cohort_meg, ch_type="seeg")
    with pytest.raises(ValueError, match="no eeg channel in common"):
        leadfield_diversity(cohort_meg, ch_type="eeg")
