"""The layer rules of the package: private names stay in their package, and
the array-only layers load no MNE-Python.

Privacy rule, checked on every import statement of the package (an ``ast``
walk, imports inside functions included):

- The unit of privacy is the package: a folder with an ``__init__.py``. A
  name with one leading underscore (not a dunder) is private.
- A private *name* (``_x``, defined in ``pkg/mod.py`` or ``pkg/_mod.py``) is
  imported only by the modules of that same folder ``pkg``: not by its
  subpackages, not by its parent. What two packages share is a public name.
- A private *module* or subpackage (``pkg/_mod.py``) is internal to ``pkg``
  and importable from ``pkg`` and its subpackages, for its public names.
  The private modules at the top of the package (``_logging``, ``_docs``,
  ``_warnings``, ``_validation``, ``_estimator``...) are thus the shared
  infrastructure of every layer, and ``ot/_backend.py`` is internal to
  ``ot`` (the other layers use what ``mne_wasserstein.ot`` exports).

Inside one folder the rule does not look: its modules share helpers, best
through a private module (``solvers/_base.py``, ``solvers/_multitask.py``).
The tests are outside the rule: they test private units directly.
"""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mne_wasserstein

PACKAGE_DIR = Path(mne_wasserstein.__file__).parent


def _is_private(part):
    return part.startswith("_") and not part.startswith("__")


class _Tree:
    """The modules of a package folder, by dotted name."""

    def __init__(self, package_dir):
        self.name = package_dir.name
        self.root = package_dir.parent
        self.packages, self.modules = set(), {}
        for path in sorted(package_dir.rglob("*.py")):
            parts = list(path.relative_to(self.root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
                self.packages.add(".".join(parts))
            self.modules[".".join(parts)] = path

    def package_of(self, module):
        """The package holding ``module`` (itself for a package)."""
        return module if module in self.packages else module.rpartition(".")[0]

    def imported_paths(self, module):
        """Yield ``(line, dotted path)`` for each name or module imported."""
        path, here = self.modules[module], self.package_of(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                for alias in node.names:
                    yield node.lineno, f"{source}.{alias.name}"

    def violations(self):
        """Return the imports that break the privacy rule, as messages."""
        found = []
        for module in sorted(self.modules):
            importer = self.package_of(module)
            for line, dotted in self.imported_paths(module):
                parts = dotted.split(".")
                if parts[0] != self.name:
                    continue
                for k in range(1, len(parts)):
                    if not _is_private(parts[k]):
                        continue
                    prefix = ".".join(parts[:k])
                    target = f"{prefix}.{parts[k]}"
                    if target in self.modules:  # a private module or package
                        owner = prefix
                        allowed = importer == owner or importer.startswith(owner + ".")
                    else:  # a private name, owned by the folder that defines it
                        owner = self.package_of(prefix)
                        allowed = importer == owner
                    message = (
                        f"{self.modules[module]}:{line}: {module} imports "
                        f"{target}, private to {owner}"
                    )
                    if not allowed and message not in found:
                        found.append(message)
        return found


def test_rule_finds_violations(tmp_path):
    """The check flags each kind of crossing, and only those (so it can fail)."""
    files = {
        "pkg/__init__.py": "",
        "pkg/_infra.py": "def helper(): pass\ndef _secret(): pass\n",
        "pkg/top.py": "from .sub.mod import _x\nfrom .sub._impl import f\n",
        "pkg/sub/__init__.py": "from ._impl import _y\n",
        "pkg/sub/_impl.py": "def _y(): pass\ndef f(): pass\n",
        "pkg/sub/mod.py": textwrap.dedent(
            """\
            from .._infra import helper
            from pkg._infra import _secret
            from ._impl import _y
            from . import _impl
            import pkg.other._hidden

            def _x():
                from ..top import _late
            """
        ),
        "pkg/other/__init__.py": "",
        "pkg/other/_hidden.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = _Tree(tmp_path / "pkg").violations()
    flagged = sorted(message.split(" imports ")[1].split(",")[0] for message in found)
    assert flagged == [
        "pkg._infra._secret",  # a private name of the parent package
        "pkg.other._hidden",  # a private module of a sibling package
        "pkg.sub._impl",  # a private module of a subpackage, imported by top
        "pkg.sub.mod._x",  # a private name of a subpackage
        "pkg.top._late",  # inside a function, a private name of the parent
    ], found


def test_no_private_name_crosses_packages():
    found = _Tree(PACKAGE_DIR).violations()
    assert not found, "private names imported across packages:\n" + "\n".join(found)


@pytest.mark.parametrize("layer", ["ot", "solvers", "hrf"])
def test_array_layers_import_without_mne(layer):
    """``ot``, ``solvers`` and ``hrf`` import with MNE-Python unavailable."""
    code = textwrap.dedent(
        f"""\
        import sys
        sys.modules["mne"] = None  # importing mne now raises ImportError
        import mne_wasserstein.{layer}
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PACKAGE_DIR.parent,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
