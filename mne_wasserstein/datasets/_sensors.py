"""Synthetic MEG and EEG sensor arrays built from files that ship with mne."""

import numpy as np
from mne import EvokedArray, Transform, create_info, read_bem_surfaces
from mne.channels import make_dig_montage, make_standard_montage

from ._mesh import _farthest_points, _fit_sphere
from ._template import _mne_data

N_MEG_SITES = 102  # as the Neuromag Vectorview: 1 magnetometer + 2 gradiometers
EEG_MONTAGE = "fsaverage_1005"  # 10-05 positions on fsaverage (mne >= 1.13)
HELMET_GAP = 0.02  # m, between the top of the head and the helmet


def _helmet():
    helmet = read_bem_surfaces(_mne_data("helmets", "306m.fif.gz"), verbose=False)[0]
    return helmet["rr"], helmet["nn"]


def _meg_sites():
    """Sensor sites and outward normals (device frame, m) on the 306m helmet."""
    rr, nn = _helmet()
    idx = _farthest_points(rr, N_MEG_SITES, start=int(np.argmax(rr[:, 2])))
    return rr[idx], nn[idx]


def _tangent_frame(normal):
    ref = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([1.0, 0, 0])
    ex = np.cross(ref, normal)
    ex /= np.linalg.norm(ex)
    return ex, np.cross(normal, ex)


def _meg_channels():
    """Names, types and 12-element locations of the 306 MEG channels."""
    names, types, locs = [], [], []
    for k, (pos, normal) in enumerate(zip(*_meg_sites(), strict=True), start=1):
        ex, ey = _tangent_frame(normal)
        # magnetometer: normal along ez; the two planar gradiometers measure
        # the gradient along their ex, one along each tangent direction
        for suffix, kind, frame in (
            ("1", "mag", (ex, ey, normal)),
            ("2", "grad", (ex, ey, normal)),
            ("3", "grad", (ey, -ex, normal)),
        ):
            names.append(f"MEG{k:03d}{suffix}")
            types.append(kind)
            locs.append(np.concatenate([pos, *frame]))
    return names, types, locs


def _eeg_positions(scale):
    """10-05 electrode and fiducial positions in the head frame (m), scaled."""
    montage = make_standard_montage(EEG_MONTAGE)
    info = create_info(montage.ch_names, 1000.0, "eeg")
    info.set_montage(montage)  # expresses everything in the head frame
    ch_pos = {ch["ch_name"]: ch["loc"][:3] * scale for ch in info["chs"]}
    fids = {d["ident"]: d["r"] * scale for d in info["dig"][:3]}
    return ch_pos, fids


def _dev_head_t(scale, rng):
    """Device->head transform placing a head of this size in the helmet."""
    rr, _ = _helmet()
    helmet_center, helmet_radius = _fit_sphere(rr)
    # sphere fitted to the upper template scalp, in the head frame (m)
    head_center = np.array([-0.0009, 0.0120, 0.0421]) * scale
    head_radius = 0.0964 * scale
    shift = np.array([0.0, 0.0, helmet_radius - head_radius - HELMET_GAP])
    jitter = rng.uniform(-0.003, 0.003, 3)
    angles = np.deg2rad(rng.uniform(-3, 3, 3))
    rot = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = r @ rot
    # head center sits at helmet_center + shift + jitter in the device frame
    trans = np.eye(4)
    trans[:3, :3] = rot
    trans[:3, 3] = head_center - rot @ (helmet_center + shift + jitter)
    return Transform("meg", "head", trans)


def _make_info(modality, scale, rng, sfreq=1000.0):
    """Measurement info of one synthetic subject (head of size ``scale``)."""
    names, types, locs = [], [], []
    if "meg" in modality:
        names, types, locs = _meg_channels()
    if "eeg" in modality:
        ch_pos, fids = _eeg_positions(scale)
        names += list(ch_pos)
        types += ["eeg"] * len(ch_pos)
    info = create_info(names, sfreq, types)
    for ch, loc in zip(info["chs"], locs, strict=False):
        ch["loc"][:] = loc
    if "eeg" in modality:
        montage = make_dig_montage(
            ch_pos=ch_pos, nasion=fids[2], lpa=fids[1], rpa=fids[3], coord_frame="head"
        )
        info.set_montage(montage)
        evoked = EvokedArray(np.zeros((len(names), 1)), info, verbose=False)
        evoked.set_eeg_reference(projection=True, verbose=False)
        info = evoked.info
    info["dev_head_t"] = _dev_head_t(scale, rng) if "meg" in modality else None
    return info
