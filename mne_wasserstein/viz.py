"""Plots: source locations on the template (matplotlib, no 3D backend)."""

import numpy as np
from mne import read_surface

__all__ = ["plot_sources_2d"]

_HEMIS = ("lh", "rh")


def plot_sources_2d(
    coefs,
    src_ref,
    *,
    subjects_dir,
    subject,
    labels=None,
    surface="inflated",
    title=None,
    axes=None,
):
    """Plot active sources on lateral views of the template (matplotlib).

    A light, offline alternative to :meth:`mne.SourceEstimate.plot` for
    figures in reports and tests: the template ``surface`` is drawn as a point
    cloud seen from the side of each hemisphere, and the non-zero entries of
    each coefficient vector are drawn on top (marker area proportional to the
    amplitude, red for positive, blue for negative values).

    Parameters
    ----------
    coefs : array, shape (n_sets, n_sources) | list of array
        Coefficient vectors in template source order (lh then rh).
    src_ref : SourceSpaces
        The template source space.
    subjects_dir : path-like
        The subjects folder.
    subject : str
        The template subject.
    labels : list of str | None
        A legend entry per coefficient set.
    surface : str
        The surface to draw on.
    title : str | None
        The figure title.
    axes : array of Axes | None
        Two axes (lh, rh); created if None.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure.
    """
    import matplotlib.pyplot as plt

    coefs = np.atleast_2d(np.asarray(coefs, float))
    n_total = sum(s["nuse"] for s in src_ref)
    if coefs.shape[1] != n_total:
        raise ValueError(
            f"coefs must have {n_total} columns (the template sources), "
            f"got {coefs.shape[1]}"
        )
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    else:
        fig = axes[0].figure
    markers = ["o", "X", "s", "^", "D", "v"]
    scale = np.abs(coefs).max() or 1.0
    offset = 0
    for ax, hemi, s in zip(axes, _HEMIS, src_ref, strict=True):
        rr, _ = read_surface(f"{subjects_dir}/{subject}/surf/{hemi}.{surface}")
        # lateral view: looking along -x for lh, +x for rh
        flip = 1.0 if hemi == "lh" else -1.0
        ax.scatter(flip * -rr[:, 1], rr[:, 2], s=1, c="0.85", linewidths=0)
        pos = rr[s["vertno"]]
        for k, coef in enumerate(coefs):
            x = coef[offset : offset + s["nuse"]]
            act = np.flatnonzero(x)
            ax.scatter(
                flip * -pos[act, 1],
                pos[act, 2],
                s=20 + 200 * np.abs(x[act]) / scale,
                c=np.where(x[act] > 0, "tab:red", "tab:blue"),
                marker=markers[k % len(markers)],
                edgecolors="k",
                linewidths=0.5,
                label=None if labels is None else labels[k],
            )
        offset += s["nuse"]
        ax.set(title=f"{hemi} (lateral)", aspect="equal", xticks=[], yticks=[])
    if labels is not None:
        axes[0].legend(loc="lower left", fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig
