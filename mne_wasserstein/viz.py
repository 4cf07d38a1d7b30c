"""Plots: a group's sources and their barycenter on the template brain.

3D figures use MNE's :class:`mne.viz.Brain` (the ``viz`` extra: pyvista,
pyvistaqt and a Qt binding, and a display, real or virtual such as Xvfb);
:func:`plot_sources_2d` draws the same content with matplotlib, and is used
where no 3D backend can start.
"""

import ctypes
import ctypes.util
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from mne import read_surface
from mne.utils import logger, use_log_level, verbose
from scipy.spatial import cKDTree

from ._docs import docdict
from .datasets import TEMPLATE, make_template
from .utils import fill_doc

__all__ = ["plot_barycenter", "plot_group_sources", "plot_sources_2d"]

_HEMIS = ("lh", "rh")
_BACKENDS = ("auto", "pyvistaqt", "matplotlib")
# marker sizes: the smallest source drawn is this fraction of the largest
_MIN_SIZE = 0.35
_SIZE_BINS = 6  # 3D foci are drawn in this many sizes per subject and hemisphere

docdict["viz_template"] = """\
subject : str | None
    The template subject the figure is drawn on (default:
    :data:`mne_wasserstein.datasets.TEMPLATE`).
subjects_dir : path-like | None
    The subjects folder holding ``subject`` and the subjects of the source
    estimates (default: the folder of
    :func:`mne_wasserstein.datasets.make_template`)."""
docdict["viz_labels"] = """\
labels : list of str | None
    A legend entry per element of ``stcs`` (default: ``stc.subject``)."""
docdict["viz_time"] = """\
time : float | None
    The time (s) shown. ``None``: for each source estimate, its sample of
    largest norm (its only sample for a single-time estimate)."""
docdict["viz_threshold"] = """\
threshold : float
    In [0, 1): sources below ``threshold`` times the largest absolute value
    of their estimate are not drawn (the barycenter is transparent there).
    With 0, every non-zero source is drawn."""
docdict["viz_3d"] = """\
views : str | list of str
    The views of :class:`mne.viz.Brain` (3D only; the matplotlib fallback
    projects each hemisphere onto its lateral view).
size : tuple of int | None
    The figure size in pixels (3D) or in hundredths of an inch
    (matplotlib). ``None``: 800 wide, 300 high per hemisphere drawn.
backend : ``"auto"`` | ``"pyvistaqt"`` | ``"matplotlib"``
    ``"pyvistaqt"``: MNE's :class:`mne.viz.Brain`, an error if no 3D
    backend can start; ``"matplotlib"``: :func:`plot_sources_2d`;
    ``"auto"``: 3D if a 3D backend can start (the ``viz`` extra and a
    display, real or virtual), else matplotlib (logged).
show : bool
    Show the 3D window (False: render only, e.g. for
    :meth:`mne.viz.Brain.screenshot`)."""


def _colors(n):
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10"]
    return [cmap(k % 10)[:3] for k in range(n)]


def _check_params(threshold, backend):
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")


def _resolve_template(subject, subjects_dir):
    subject = TEMPLATE if subject is None else subject
    subjects_dir = make_template() if subjects_dir is None else Path(subjects_dir)
    if not (subjects_dir / subject / "surf").is_dir():
        raise ValueError(f"no surfaces of subject {subject!r} in {subjects_dir}")
    return subject, subjects_dir


@lru_cache(maxsize=16)
def _read_surf(fname):
    return read_surface(fname)[0]


@lru_cache(maxsize=16)
def _sphere_tree(fname):
    return cKDTree(_read_surf(fname))


def _to_template(vertices, hemi, subject_from, subject, subjects_dir):
    """Map vertices of ``subject_from`` to the closest template vertices.

    The closest point on the registered spheres (``?h.sphere.reg``), as a
    FreeSurfer surface morph does.
    """
    if subject_from in (None, subject) or len(vertices) == 0:
        return np.asarray(vertices, int)
    sphere_from = _read_surf(f"{subjects_dir}/{subject_from}/surf/{hemi}.sphere.reg")
    tree = _sphere_tree(f"{subjects_dir}/{subject}/surf/{hemi}.sphere.reg")
    return tree.query(sphere_from[vertices])[1]


def _time_index(stc, time):
    if time is None:
        return int(np.argmax(np.linalg.norm(stc.data, axis=0)))
    if not stc.tmin - stc.tstep / 2 <= time <= stc.times[-1] + stc.tstep / 2:
        raise ValueError(
            f"time {time} s is outside the source estimate "
            f"({stc.tmin}-{stc.times[-1]} s)"
        )
    return int(stc.time_as_index(time)[0])


def _check_stc(stc, name):
    from mne import SourceEstimate

    if not isinstance(stc, SourceEstimate):
        raise TypeError(
            f"{name} must be a SourceEstimate (surface), got {type(stc).__name__}"
        )


def _values(stc, time):
    """Per hemisphere: (vertices, values) at ``time``."""
    x = stc.data[:, _time_index(stc, time)]
    n_lh = len(stc.vertices[0])
    return {"lh": (stc.vertices[0], x[:n_lh]), "rh": (stc.vertices[1], x[n_lh:])}


def _group_foci(stcs, subject, subjects_dir, time, threshold):
    """Per estimate and hemisphere: template vertices and values drawn."""
    foci = []
    for k, stc in enumerate(stcs):
        _check_stc(stc, f"stcs[{k}]")
        values = _values(stc, time)
        peak = max((np.abs(x).max(initial=0.0) for _, x in values.values()))
        per_hemi = {}
        for hemi, (verts, x) in values.items():
            keep = np.abs(x) > threshold * peak
            per_hemi[hemi] = (
                _to_template(verts[keep], hemi, stc.subject, subject, subjects_dir),
                x[keep],
            )
        foci.append(per_hemi)
    return foci


def _bar_values(stc_bar, subject, time):
    """Return the barycenter's values per hemisphere and its peak."""
    _check_stc(stc_bar, "stc_bar")
    if stc_bar.subject not in (None, subject):
        raise ValueError(
            f"stc_bar must be on the template {subject!r}, "
            f"got subject {stc_bar.subject!r}"
        )
    values = _values(stc_bar, time)
    peak = max(np.abs(x).max(initial=0.0) for _, x in values.values())
    return values, peak


def _shown_hemis(foci, bar, threshold):
    """Return the hemispheres with something to draw (both if none has)."""
    hemis = []
    for hemi in _HEMIS:
        has_foci = any(len(f[hemi][0]) for f in foci)
        has_bar = bar is not None and np.any(
            np.abs(bar[0][hemi][1]) > threshold * bar[1]
        )
        if has_foci or has_bar:
            hemis.append(hemi)
    return hemis or list(_HEMIS)


def _marker_sizes(x, amp_max):
    """Relative sizes in [_MIN_SIZE, 1] from absolute amplitudes."""
    rel = np.abs(x) / amp_max if amp_max > 0 else np.ones(len(x))
    return _MIN_SIZE + (1 - _MIN_SIZE) * rel


def _amp_max(foci):
    return max(
        (np.abs(x).max(initial=0.0) for f in foci for _, x in f.values()),
        default=0.0,
    )


def _labels(stcs, labels):
    if labels is None:
        return [stc.subject or f"estimate {k}" for k, stc in enumerate(stcs)]
    if len(labels) != len(stcs):
        raise ValueError(
            f"labels must have one entry per estimate ({len(stcs)}), got {len(labels)}"
        )
    return list(labels)


def _display_available():
    """Whether Qt can open windows: an existing QApplication, or a display."""
    qt = sys.modules.get("qtpy.QtWidgets")
    if qt is not None and qt.QApplication.instance() is not None:
        return True
    if sys.platform != "linux" or os.environ.get("WAYLAND_DISPLAY"):
        return True
    if not os.environ.get("DISPLAY"):
        return False
    # an X display that does not answer (e.g. a stale DISPLAY) makes Qt abort
    try:
        x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    except OSError:
        return False
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    display = x11.XOpenDisplay(None)
    if not display:
        return False
    x11.XCloseDisplay(display)
    return True


def _start_3d(backend):
    """Load MNE's 3D backend; return why it cannot start, or None."""
    from mne.viz import get_3d_backend

    try:
        get_3d_backend()
    except (ImportError, RuntimeError) as exc:
        reason = f"no 3D backend ({str(exc).splitlines()[0]})"
    else:
        if _display_available():
            return None
        reason = "no display (set DISPLAY to a running X server, e.g. Xvfb)"
    if backend == "pyvistaqt":
        raise RuntimeError(
            f"Cannot draw in 3D: {reason}. Install the viz extra "
            "(pip install mne-wasserstein[viz]) or use backend='matplotlib'."
        )
    return reason


@verbose
@fill_doc
def plot_group_sources(
    stcs,
    stc_bar=None,
    *,
    subject=None,
    subjects_dir=None,
    labels=None,
    time=None,
    threshold=0.1,
    views=("lateral", "medial"),
    size=None,
    backend="auto",
    show=True,
    verbose=None,
):
    """Plot the subjects' sources and their barycenter on the template.

    Each subject's sources are foci on the template's inflated surface: one
    colour per subject, the size growing with the absolute amplitude (the
    largest source of the group is the largest focus). Subjects other than
    the template are brought to it through their registered spheres
    (``?h.sphere.reg``, the closest template vertex). The barycenter, if
    given, is a colour map (red positive, blue negative). Only the
    hemispheres with something to show are drawn.

    Parameters
    ----------
    stcs : list of SourceEstimate
        Surface source estimates, e.g. ``stcs`` of
        :func:`mne_wasserstein.apply_mwe` or the truth of a simulation, each
        on its subject's source space (``stc.subject``) or on the template.
    stc_bar : SourceEstimate | None
        The barycenter, on the template (e.g. ``stc_bar`` of
        :func:`mne_wasserstein.apply_mwe`).
    %(viz_template)s
    %(viz_labels)s
    %(viz_time)s
    %(viz_threshold)s
    %(viz_3d)s
    %(verbose)s

    Returns
    -------
    fig : mne.viz.Brain | matplotlib.figure.Figure
        The 3D figure, or the matplotlib figure of the fallback.
    """
    _check_params(threshold, backend)
    stcs = list(stcs)
    subject, subjects_dir = _resolve_template(subject, subjects_dir)
    foci = _group_foci(stcs, subject, subjects_dir, time, threshold)
    labels = _labels(stcs, labels)
    bar = None if stc_bar is None else _bar_values(stc_bar, subject, time)
    reason = "matplotlib requested" if backend == "matplotlib" else _start_3d(backend)
    if reason is None:
        hemis = _shown_hemis(foci, bar, threshold)
        try:
            brain = _new_brain(subject, subjects_dir, hemis, views, size, show)
        except RuntimeError as exc:  # e.g. Qt finds no display after all
            if backend == "pyvistaqt":
                raise
            reason = f"the 3D figure did not start ({exc})"
        else:
            return _draw_3d(brain, hemis, foci, bar, labels, threshold)
    logger.info(f"Drawing with matplotlib: {reason}")
    return _draw_2d(
        foci, bar, labels, subject, subjects_dir, threshold, None, None, size
    )


@verbose
@fill_doc
def plot_barycenter(
    stc_bar,
    *,
    subject=None,
    subjects_dir=None,
    time=None,
    threshold=0.1,
    views=("lateral", "medial"),
    size=None,
    backend="auto",
    show=True,
    verbose=None,
):
    """Plot a barycenter on the template's inflated surface.

    The same figure as :func:`plot_group_sources` without the subjects'
    foci: red positive, blue negative values, transparent below
    ``threshold`` times the peak.

    Parameters
    ----------
    stc_bar : SourceEstimate
        The barycenter, on the template (e.g. ``stc_bar`` of
        :func:`mne_wasserstein.apply_mwe`).
    %(viz_template)s
    time : float | None
        The time (s) shown (default: the sample of largest norm).
    %(viz_threshold)s
    %(viz_3d)s
    %(verbose)s

    Returns
    -------
    fig : mne.viz.Brain | matplotlib.figure.Figure
        The 3D figure, or the matplotlib figure of the fallback.
    """
    return plot_group_sources(
        [],
        stc_bar,
        subject=subject,
        subjects_dir=subjects_dir,
        time=time,
        threshold=threshold,
        views=views,
        size=size,
        backend=backend,
        show=show,
    )


def _new_brain(subject, subjects_dir, hemis, views, size, show):
    from mne.viz import Brain

    # Brain's info messages (Qt theme detection, Talairach transform) are noise here
    with use_log_level("warning"):
        return Brain(
            subject,
            hemi=hemis[0] if len(hemis) == 1 else "split",
            surf="inflated",
            subjects_dir=subjects_dir,
            views=views,
            view_layout="horizontal",
            size=(800, 300 * len(hemis)) if size is None else size,
            background="white",
            cortex="low_contrast",
            theme="light",
            show=show,
        )


def _draw_3d(brain, hemis, foci, bar, labels, threshold):
    if bar is not None:
        values, peak = bar
        for hemi in hemis:
            verts, x = values[hemi]
            if len(verts) == 0 or peak == 0:
                continue
            brain.add_data(
                x,
                fmin=threshold * peak,
                fmid=(1 + threshold) / 2 * peak,
                fmax=peak,
                center=0.0,
                colormap="mne",
                transparent=True,
                vertices=verts,
                hemi=hemi,
                smoothing_steps="nearest",
                time_label=None,
                colorbar=hemi == hemis[-1],
                colorbar_kwargs=dict(n_labels=3, fmt="%.1e", label_font_size=12),
            )
    amp_max = _amp_max(foci)
    colors = _colors(len(foci))
    bins = np.linspace(_MIN_SIZE, 1.0, _SIZE_BINS)
    for k, (per_hemi, color) in enumerate(zip(foci, colors, strict=True)):
        for hemi in hemis:
            verts, x = per_hemi[hemi]
            sizes = _marker_sizes(x, amp_max)
            # one mesh per size bin rather than one per source
            which = np.argmin(np.abs(sizes[:, None] - bins), axis=1)
            for b in np.unique(which):
                brain.add_foci(
                    verts[which == b],
                    coords_as_verts=True,
                    hemi=hemi,
                    color=color,
                    scale_factor=1.5 * bins[b],
                    name=f"{labels[k]} ({hemi})",
                )
        brain.add_text(
            0.02,
            0.88 - 0.07 * k,
            labels[k],
            name=f"legend {k}",
            color=color,
            font_size=10,
        )
    return brain


def _draw_2d(foci, bar, labels, subject, subjects_dir, threshold, title, axes, size):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    hemis = _shown_hemis(foci, bar, threshold)
    if axes is None:
        fig, axes = plt.subplots(
            1,
            len(hemis),
            figsize=((5 * len(hemis) + 1, 4) if size is None else np.divide(size, 100)),
            layout="constrained",
            squeeze=False,
        )
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        if len(axes) != len(hemis):
            raise ValueError(
                f"axes must hold {len(hemis)} axes (hemispheres {hemis}), "
                f"got {len(axes)}"
            )
        fig = axes[0].figure
    amp_max = _amp_max(foci)
    colors = _colors(len(foci))
    for ax, hemi in zip(axes, hemis, strict=True):
        rr = _read_surf(f"{subjects_dir}/{subject}/surf/{hemi}.inflated")
        # lateral view: the lh seen from -x (anterior to the left), the rh
        # from +x (anterior to the right)
        flip = 1.0 if hemi == "lh" else -1.0
        ax.scatter(flip * -rr[:, 1], rr[:, 2], s=1, c="0.85", linewidths=0)
        if bar is not None:
            values, peak = bar
            verts, x = values[hemi]
            keep = np.abs(x) > threshold * peak
            im = ax.scatter(
                flip * -rr[verts[keep], 1],
                rr[verts[keep], 2],
                s=6,
                c=x[keep],
                cmap="RdBu_r",
                vmin=-peak,
                vmax=peak,
                linewidths=0,
            )
            if hemi == hemis[-1]:
                fig.colorbar(im, ax=axes, shrink=0.6, label="barycenter")
        for per_hemi, color in zip(foci, colors, strict=True):
            verts, x = per_hemi[hemi]
            for sign, marker in ((1, "^"), (-1, "v")):
                sel = np.sign(x) == sign
                ax.scatter(
                    flip * -rr[verts[sel], 1],
                    rr[verts[sel], 2],
                    s=150 * _marker_sizes(x[sel], amp_max) ** 2,
                    color=color,
                    marker=marker,
                    edgecolors="k",
                    linewidths=0.5,
                )
        ax.set(title=f"{hemi} (lateral)", aspect="equal", xticks=[], yticks=[])
        ax.set_axis_off()
    handles = [
        Line2D([], [], ls="", marker="o", color=c, mec="k", label=label)
        for c, label in zip(colors, labels, strict=True)
    ]
    handles += [
        Line2D([], [], ls="", marker=m, color="0.5", mec="k", label=f"{s} value")
        for m, s in (("^", "positive"), ("v", "negative"))
    ]
    if foci:
        axes[0].legend(handles=handles, loc="lower left", fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig


@verbose
@fill_doc
def plot_sources_2d(
    stcs,
    stc_bar=None,
    *,
    subject=None,
    subjects_dir=None,
    labels=None,
    time=None,
    threshold=0.1,
    title=None,
    axes=None,
    size=None,
    verbose=None,
):
    """Plot the subjects' sources and their barycenter with matplotlib.

    The fallback of :func:`plot_group_sources` where no 3D backend can
    start, with the same content: the template's inflated surface as a grey
    point cloud seen from the side of each hemisphere that has something to
    show; each subject's sources on top (one colour per subject, upward
    triangles for positive, downward for negative values, the area growing
    with the absolute amplitude); the barycenter as coloured template
    vertices (red positive, blue negative).

    Parameters
    ----------
    stcs : list of SourceEstimate
        Surface source estimates, each on its subject's source space
        (``stc.subject``) or on the template.
    stc_bar : SourceEstimate | None
        The barycenter, on the template.
    %(viz_template)s
    %(viz_labels)s
    %(viz_time)s
    %(viz_threshold)s
    title : str | None
        The figure title.
    axes : array of Axes | None
        One axes per hemisphere drawn; created if None.
    size : tuple of int | None
        The figure size in hundredths of an inch, when ``axes`` is None
        (default: 5 inches wide per hemisphere drawn, 4 high).
    %(verbose)s

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure.
    """
    _check_params(threshold, "matplotlib")
    stcs = list(stcs)
    subject, subjects_dir = _resolve_template(subject, subjects_dir)
    foci = _group_foci(stcs, subject, subjects_dir, time, threshold)
    labels = _labels(stcs, labels)
    bar = None if stc_bar is None else _bar_values(stc_bar, subject, time)
    return _draw_2d(
        foci, bar, labels, subject, subjects_dir, threshold, title, axes, size
    )
