import os
import shutil
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from mne import read_surface

from mne_wasserstein import viz
from mne_wasserstein.simulation import simulate_group_evokeds
from mne_wasserstein.viz import plot_barycenter, plot_group_sources, plot_sources_2d


@pytest.fixture(scope="module")
def sim(cohort_meg):
    """The true sources of a left-hemisphere group response."""
    return simulate_group_evokeds(cohort_meg, hemi="lh", random_state=0)


@pytest.fixture(scope="session")
def display():
    """A display for Qt: the one set, else a virtual one (Xvfb) if installed."""
    if viz._display_available():
        yield os.environ.get("DISPLAY")
        return
    if shutil.which("Xvfb") is None:
        pytest.skip("no display and no Xvfb: 3D rendering cannot start")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24"],
        pass_fds=(write_fd,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        number = f.readline().strip()
    if not number:
        proc.wait()
        pytest.skip("Xvfb did not start")
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield os.environ["DISPLAY"]
    finally:
        if previous is None:
            del os.environ["DISPLAY"]
        else:
            os.environ["DISPLAY"] = previous
        proc.terminate()
        proc.wait()


@pytest.fixture(scope="session")
def renderer(display):
    """MNE's pyvistaqt backend on the display; skip if it cannot load."""
    pytest.importorskip("pyvistaqt")
    from mne.viz import get_3d_backend

    try:
        get_3d_backend()
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"no 3D backend: {exc}")
    return display


def _silhouette(img, background=255, tol=30):
    """Return the fraction of pixels that differ from a white background."""
    return float(np.mean(np.abs(img.astype(int) - background).sum(-1) > tol))


def test_brain_screenshot(renderer, sim, cohort_meg):
    bar = sim.stcs_template[0]
    brain = plot_group_sources(
        sim.stcs,
        bar,
        subjects_dir=cohort_meg.subjects_dir,
        backend="pyvistaqt",
        show=False,
    )
    try:
        img = brain.screenshot()
    finally:
        brain.close()
    # one hemisphere with something to show: lateral and medial views side
    # by side, 800 x 300 pixels
    assert img.shape == (300, 800, 3)
    # not blank: a uniform frame has no variance; the grey brain on white
    # gives a standard deviation of 67 (measured)
    assert img.std() > 20
    # the lateral and medial views of the inflated hemisphere cover 33 % of
    # the frame (measured); a blank frame gives 0, a garbled one 1 (seen with
    # pyvista.OFF_SCREEN = True under Xvfb)
    assert 0.15 < _silhouette(img) < 0.6
    # every subject's colour is in the frame (its foci), within the shading
    colours = (np.array(viz._colors(len(sim.stcs))) * 255).astype(int)
    near = np.abs(img[:, :, None, :].astype(int) - colours).max(-1) < 40
    assert near.any(axis=(0, 1)).all()


def test_plot_barycenter_3d(renderer, sim, cohort_meg):
    brain = plot_barycenter(
        sim.stcs_template[0],
        subjects_dir=cohort_meg.subjects_dir,
        backend="pyvistaqt",
        show=False,
        threshold=0.0,
    )
    try:
        img = brain.screenshot()
    finally:
        brain.close()
    # the same two views as above (measured 33 %)
    assert 0.15 < _silhouette(img) < 0.6
    # the positive sources in warm, the negative ones in cold colours
    # (measured: 0.4 % and 0.5 % of the frame)
    r, g, b = np.moveaxis(img.astype(int), -1, 0)
    assert np.mean((r > g + 60) & (r > b + 60)) > 1e-3
    assert np.mean(b > r + 60) > 1e-3


def test_template_mapping(sim, cohort_meg):
    # a subject's sources brought to the template through sphere.reg land
    # where the simulation put them on the template (its own registration)
    subject, subjects_dir = cohort_meg.subject_ref, cohort_meg.subjects_dir
    rr = read_surface(f"{subjects_dir}/{subject}/surf/lh.white")[0]
    for stc, stc_tpl in zip(sim.stcs, sim.stcs_template, strict=True):
        (mapped,), (truth,) = (
            viz._group_foci([s], subject, subjects_dir, None, 0.0)
            for s in (stc, stc_tpl)
        )
        assert len(mapped["rh"][0]) == 0
        dist = np.linalg.norm(
            rr[mapped["lh"][0]][:, None] - rr[truth["lh"][0]], axis=-1
        ).min(axis=1)
        # fsaverage5's vertex spacing is about 4 mm (measured max: 0.0 mm)
        assert dist.max() < 5.0


def test_sources_2d(sim, cohort_meg):
    kwargs = dict(subjects_dir=cohort_meg.subjects_dir)
    fig = plot_sources_2d(sim.stcs, sim.stcs_template[0], title="t", **kwargs)
    # only the left hemisphere has sources: one panel, plus the colour bar
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["lh (lateral)"]
    assert len(fig.axes) == 2
    # the legend's colours are the subjects' colours, in order
    legend = panels[0].get_legend()
    colours = [h.get_color() for h in legend.legend_handles][: len(sim.stcs)]
    np.testing.assert_allclose(colours, viz._colors(len(sim.stcs)))
    assert [t.get_text() for t in legend.get_texts()][:2] == cohort_meg.subjects[:2]
    plt.close(fig)
    # axes given: one per hemisphere drawn
    fig, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="1 axes"):
        plot_sources_2d(sim.stcs, axes=axes, **kwargs)
    assert plot_sources_2d(sim.stcs, axes=axes[:1], **kwargs) is fig
    plt.close(fig)
    # with no sources, both hemispheres are drawn
    fig = plot_sources_2d([], **kwargs)
    assert len(fig.axes) == 2
    plt.close(fig)


def test_display_check(monkeypatch):
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delitem(sys.modules, "qtpy.QtWidgets", raising=False)  # no Qt app
    monkeypatch.delenv("DISPLAY", raising=False)
    assert not viz._display_available()
    # an X display that nobody serves
    monkeypatch.setenv("DISPLAY", ":4242")
    assert not viz._display_available()


def test_fallback(sim, cohort_meg, monkeypatch):
    monkeypatch.setattr(viz, "_display_available", lambda: False)
    kwargs = dict(subjects_dir=cohort_meg.subjects_dir)
    fig = plot_group_sources(sim.stcs, backend="auto", **kwargs)
    assert isinstance(fig, plt.Figure)
    plt.close(fig)
    with pytest.raises(RuntimeError, match="Cannot draw in 3D.*viz extra"):
        plot_group_sources(sim.stcs, backend="pyvistaqt", **kwargs)
    # Qt fails to start after all (e.g. the display went away)
    monkeypatch.setattr(viz, "_start_3d", lambda backend: None)

    def no_brain(*args):
        raise RuntimeError("Cannot connect to a valid display")

    monkeypatch.setattr(viz, "_new_brain", no_brain)
    fig = plot_group_sources(sim.stcs, backend="auto", **kwargs)
    assert isinstance(fig, plt.Figure)
    plt.close(fig)
    with pytest.raises(RuntimeError, match="valid display"):
        plot_group_sources(sim.stcs, backend="pyvistaqt", **kwargs)


def test_validation(sim, cohort_meg):
    kwargs = dict(subjects_dir=cohort_meg.subjects_dir, backend="matplotlib")
    with pytest.raises(ValueError, match="threshold"):
        plot_group_sources(sim.stcs, threshold=1.0, **kwargs)
    with pytest.raises(ValueError, match="backend"):
        plot_group_sources(sim.stcs, subjects_dir=kwargs["subjects_dir"], backend="x")
    with pytest.raises(ValueError, match="labels"):
        plot_group_sources(sim.stcs, labels=["a"], **kwargs)
    with pytest.raises(ValueError, match="stc_bar must be on the template"):
        plot_group_sources(sim.stcs, sim.stcs[0], **kwargs)
    with pytest.raises(TypeError, match="SourceEstimate"):
        plot_group_sources([sim.coef], **kwargs)
    with pytest.raises(ValueError, match="outside"):
        plot_group_sources(sim.stcs, time=10.0, **kwargs)
    with pytest.raises(ValueError, match="no surfaces"):
        plot_group_sources(sim.stcs, subject="nobody", **kwargs)
