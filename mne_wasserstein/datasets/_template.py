"""The offline template subject ``fsaverage5``, built from files in wheels."""

import functools
import json
import os
import shutil
import uuid
from importlib.resources import files
from pathlib import Path

import nibabel as nib
import numpy as np
from mne import read_bem_surfaces, read_trans, write_surface, write_trans
from mne.io import read_fiducials, write_fiducials
from mne.utils import logger, verbose

from .._cache import check_writable
from ..utils import fill_doc, get_data_dir
from ._mesh import _radial_distance

TEMPLATE = "fsaverage5"
# bump when the files written change, so that caches are rebuilt
_TEMPLATE_FORMAT = 1
_MARKER = "mne_wasserstein.json"
_SURFACES = {"white": "white", "pial": "pial", "inflated": "infl", "sphere": "sphere"}
_HEMIS = {"lh": "left", "rh": "right"}
SKULL_THICKNESS = 5.0  # mm, outer skull = inner skull pushed out radially
MIN_SCALP_GAP = 3.0  # mm between outer skull and scalp


def _mne_data(*parts):
    return Path(str(files("mne") / "data")).joinpath(*parts)


def _nilearn_fsaverage5(name, hemi):
    fname = files("nilearn") / "datasets" / "data" / "fsaverage5"
    return Path(str(fname)) / f"{name}_{_HEMIS[hemi]}.gii.gz"


def _read_gifti_mesh(fname):
    img = nib.load(fname)
    rr = img.agg_data("NIFTI_INTENT_POINTSET").astype(np.float64)
    tris = img.agg_data("NIFTI_INTENT_TRIANGLE").astype(np.int32)
    return rr, tris


def _subjects_dir(subjects_dir):
    if subjects_dir is None:
        return check_writable(get_data_dir() / "subjects")
    return check_writable(Path(subjects_dir).expanduser().resolve())


def _is_complete(subject_dir, fmt):
    marker = Path(subject_dir) / _MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("format") == fmt
    except ValueError:
        return False


def _publish(tmp_dir, subject_dir, meta):
    """Move a fully written subject folder into place (safe under races)."""
    (tmp_dir / _MARKER).write_text(json.dumps(meta))
    if subject_dir.exists():  # stale or incomplete: replace it
        shutil.rmtree(subject_dir, ignore_errors=True)
    try:
        os.replace(tmp_dir, subject_dir)
    except OSError:  # another process published it first
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _tmp_dir(subjects_dir, subject):
    tmp = Path(subjects_dir) / f".{subject}.tmp-{uuid.uuid4().hex[:8]}"
    (tmp / "surf").mkdir(parents=True)
    (tmp / "bem").mkdir()
    return tmp


def _template_bem_surfaces():
    """Inner skull, outer skull and scalp (mm) sharing the ico5 triangulation."""
    surfs, tris = _template_bem_cached()
    return {name: rr.copy() for name, rr in surfs.items()}, tris.copy()


@functools.cache
def _template_bem_cached():
    inner = read_bem_surfaces(
        _mne_data("fsaverage", "fsaverage-inner_skull-bem.fif"), verbose=False
    )[0]
    head = read_bem_surfaces(
        _mne_data("fsaverage", "fsaverage-head.fif"), verbose=False
    )[0]
    rr = inner["rr"] * 1e3
    center = rr.mean(axis=0)
    radius = np.linalg.norm(rr - center, axis=1)
    dirs = (rr - center) / radius[:, np.newaxis]
    outer = radius + SKULL_THICKNESS
    scalp = _radial_distance(center, dirs, head["rr"] * 1e3, head["tris"])
    scalp = np.fmax(np.nan_to_num(scalp, nan=0.0), outer + MIN_SCALP_GAP)
    surfs = {
        "inner_skull": rr,
        "outer_skull": center + dirs * outer[:, np.newaxis],
        "outer_skin": center + dirs * scalp[:, np.newaxis],
    }
    return surfs, inner["tris"]


def _write_subject_files(
    subject_dir, subject, meshes, bem_rr, bem_tris, trans, fiducials, head
):
    """Write one FreeSurfer-style subject (all coordinates in mm, MRI frame)."""
    for (hemi, kind), (rr, tris) in meshes.items():
        write_surface(subject_dir / "surf" / f"{hemi}.{kind}", rr, tris, overwrite=True)
    bem = subject_dir / "bem"
    for name, rr in bem_rr.items():
        write_surface(bem / f"{name}.surf", rr, bem_tris, overwrite=True)
    write_trans(bem / f"{subject}-trans.fif", trans, overwrite=True, verbose=False)
    write_fiducials(
        bem / f"{subject}-fiducials.fif",
        fiducials,
        coord_frame="mri",
        overwrite=True,
        verbose=False,
    )
    # the scalp as a BEM-like surface for plotting (mne.viz.plot_alignment)
    head_rr, head_tris = head
    write_surface(bem / f"{subject}-head.surf", head_rr, head_tris, overwrite=True)


def _template_fiducials():
    fids, _ = read_fiducials(
        _mne_data("fsaverage", "fsaverage-fiducials.fif"), verbose=False
    )
    return fids


def _template_head():
    head = read_bem_surfaces(
        _mne_data("fsaverage", "fsaverage-head.fif"), verbose=False
    )[0]
    return head["rr"] * 1e3, head["tris"]


def _template_meshes():
    meshes = {}
    for hemi in _HEMIS:
        for kind, name in _SURFACES.items():
            meshes[(hemi, kind)] = _read_gifti_mesh(_nilearn_fsaverage5(name, hemi))
        # the template is registered to itself
        meshes[(hemi, "sphere.reg")] = meshes[(hemi, "sphere")]
    return meshes


@fill_doc
@verbose
def make_template(subjects_dir=None, *, verbose=None):
    """Write the offline template subject ``fsaverage5``.

    The subject is assembled from files that ship inside installed wheels, so
    nothing is downloaded:

    - ``surf/{lh,rh}.{white,pial,inflated,sphere,sphere.reg}``: the fsaverage5
      meshes (10242 vertices per hemisphere, icosahedron 5 topology) of
      nilearn; ``sphere.reg`` equals ``sphere`` since the template is
      registered to itself;
    - ``bem/inner_skull.surf``: the fsaverage inner skull of mne (ico5
      topology); ``bem/outer_skull.surf``: the inner skull pushed out radially
      by 5 mm (fsaverage ships no outer skull); ``bem/outer_skin.surf``: the
      fsaverage scalp sampled radially on the same triangulation (at least
      3 mm outside the outer skull), so that :func:`mne.make_bem_model` with
      ``ico=4`` (or lower) works for one- and three-layer models;
    - ``bem/fsaverage5-trans.fif`` (head<->MRI), ``bem/fsaverage5-fiducials.fif``
      and ``bem/fsaverage5-head.surf`` (the full scalp, for plotting).

    The result is cached: a second call returns at once.

    Parameters
    ----------
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    subjects_dir : Path
        The subjects folder that contains ``fsaverage5``.
    """
    subjects_dir = _subjects_dir(subjects_dir)
    subject_dir = subjects_dir / TEMPLATE
    if _is_complete(subject_dir, _TEMPLATE_FORMAT):
        logger.info(f"Using the cached template {subject_dir}")
        return subjects_dir
    logger.info(f"Writing the template subject {TEMPLATE} to {subjects_dir}")
    tmp = _tmp_dir(subjects_dir, TEMPLATE)
    try:
        bem_rr, bem_tris = _template_bem_surfaces()
        trans = read_trans(_mne_data("fsaverage", "fsaverage-trans.fif"))
        _write_subject_files(
            tmp,
            TEMPLATE,
            _template_meshes(),
            bem_rr,
            bem_tris,
            trans,
            _template_fiducials(),
            _template_head(),
        )
        _publish(tmp, subject_dir, {"format": _TEMPLATE_FORMAT, "scale": 1.0})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return subjects_dir
