"""doc/api.rst documents every public name, and only public names."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import mne_wasserstein

API_RST = Path(__file__).parents[1] / "doc" / "api.rst"


def _public_modules():
    """The package and its modules and subpackages without a private part."""
    names = ["mne_wasserstein"]
    for info in pkgutil.walk_packages(mne_wasserstein.__path__, "mne_wasserstein."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _documented(text):
    """Return the (module, name) pairs that api.rst documents.

    Names are the entries of ``autosummary`` blocks and the targets of
    ``.. data::``/``.. function::``/``.. class::`` directives, each under
    the last ``.. currentmodule::`` before it.
    """
    entries, module, in_summary = [], None, False
    for line in text.splitlines():
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            module, in_summary = match.group(1), False
        elif match := re.match(r"\.\. (?:data|function|class):: (\w+)", line):
            entries.append((module, match.group(1)))
            in_summary = False
        elif line.startswith(".. autosummary::"):
            in_summary = True
        elif in_summary and (match := re.match(r"   (\w+)$", line)):
            entries.append((module, match.group(1)))
        elif line and not line.startswith(" "):
            in_summary = False
    return entries


def _documented_objects():
    objects = []
    for module, name in _documented(API_RST.read_text()):
        assert module is not None, f"{name} is documented before any currentmodule"
        objects.append(getattr(importlib.import_module(module), name))
    return objects


def test_parser_finds_entries():
    """The parser sees the entries of a known block (so that a test can fail)."""
    text = (
        ".. currentmodule:: mne_wasserstein.solvers\n\n"
        ".. autosummary::\n   :toctree: generated/\n\n   MWE\n   fit_path\n\n"
        "Text\n\n   not_an_entry\n\n"
        ".. currentmodule:: mne_wasserstein.datasets\n\n"
        ".. data:: TEMPLATE\n"
    )
    assert _documented(text) == [
        ("mne_wasserstein.solvers", "MWE"),
        ("mne_wasserstein.solvers", "fit_path"),
        ("mne_wasserstein.datasets", "TEMPLATE"),
    ]


@pytest.mark.parametrize("module_name", _public_modules())
def test_api_lists_every_public_name(module_name):
    """Every name of a public module's __all__ is in api.rst (or re-exported)."""
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    documented = _documented_objects()
    missing = [
        name
        for name in module.__all__
        if not any(getattr(module, name) is obj for obj in documented)
    ]
    assert not missing, f"doc/api.rst misses {module_name}: {', '.join(missing)}"


def test_api_lists_only_public_names():
    """Every entry of api.rst is in the __all__ of its module."""
    private = [
        f"{module}.{name}"
        for module, name in _documented(API_RST.read_text())
        if name not in importlib.import_module(module).__all__
    ]
    assert not private, f"doc/api.rst documents names outside __all__: {private}"
