"""The input checks shared by the layers (mne_wasserstein._validation)."""

import mne
import numpy as np
import pytest

from mne_wasserstein._validation import (
    check_channel_names,
    check_list,
    check_positive,
)


def _evoked():
    info = mne.create_info(["EEG 001"], 100.0, "eeg")
    return mne.EvokedArray(np.zeros((1, 3)), info)


def test_check_positive():
    assert check_positive(2, "gamma") == 2.0
    assert isinstance(check_positive(np.float32(0.5), "gamma"), float)
    for bad in (0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="gamma must be a positive finite"):
            check_positive(bad, "gamma")
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        check_positive("large", "gamma")


def test_check_list():
    a, b = _evoked(), _evoked()
    for items in ([a, b], (a, b), iter([a, b])):
        out = check_list(items, "evokeds", mne.Evoked)
        assert isinstance(out, list) and out[0] is a and out[1] is b
    with pytest.raises(TypeError, match=r"list of Evoked \(one per subject\), got one"):
        check_list(a, "evokeds", mne.Evoked)
    with pytest.raises(TypeError, match="list of Evoked .*, got int"):
        check_list(3, "evokeds", mne.Evoked)
    with pytest.raises(ValueError, match="evokeds is empty"):
        check_list([], "evokeds", mne.Evoked)
    with pytest.raises(
        TypeError, match=r"evokeds\[1\] must be an Evoked, got str; hint"
    ):
        check_list([a, "b"], "evokeds", mne.Evoked, hint="; hint")


def test_check_channel_names():
    check_channel_names(["a", "b"], ["a", "b"], "whitener", "s0")
    with pytest.raises(
        ValueError, match=r"Subject s0: .*same order \(first difference: 'b' != 'a'\)"
    ):
        check_channel_names(["b", "a"], ["a", "b"], "whitener", "s0")
    with pytest.raises(ValueError, match="the whitener has 1 channels, the data 2"):
        check_channel_names(["a"], ["a", "b"], "whitener", "s0")
