"""Validate the docstrings of the public API with numpydoc."""

import dataclasses
import importlib
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

PUBLIC_MODULES = (
    "mne_wasserstein",
    "mne_wasserstein.averaging",
    "mne_wasserstein.datasets",
    "mne_wasserstein.hrf",
    "mne_wasserstein.inverse",
    "mne_wasserstein.metrics",
    "mne_wasserstein.ot",
    "mne_wasserstein.simulation",
    "mne_wasserstein.solvers",
    "mne_wasserstein.utils",
    "mne_wasserstein.viz",
)
# checks that do not fit this project (as in MNE-Python's own validation):
# GL01/GL02 summary placement, SA01 See Also, EX01 Examples, ES01 extended
# summary, RT02 return name, YD01 yields, GL08 (dataclass __init__)
IGNORED = {"GL01", "GL02", "SA01", "EX01", "ES01", "RT02", "YD01", "GL08", "PR02"}


def _public_objects():
    for mod_name in PUBLIC_MODULES:
        module = importlib.import_module(mod_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{mod_name}.{name}"


@pytest.mark.parametrize("qualname", sorted(_public_objects()))
def test_docstring(qualname):
    result = numpydoc_validate.validate(qualname)
    ignored = set(IGNORED)
    module, name = qualname.rsplit(".", 1)
    if dataclasses.is_dataclass(getattr(importlib.import_module(module), name)):
        ignored.add("PR01")  # result containers: fields documented as Attributes
    errors = [f"{code}: {msg}" for code, msg in result["errors"] if code not in ignored]
    assert not errors, "\n".join(errors)
