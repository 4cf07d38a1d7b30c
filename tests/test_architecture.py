"""doc/architecture.rst stays true: its names exist and its call tree is real."""

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).parents[1] / "doc" / "architecture.rst"
NAME = re.compile(r"mne_wasserstein(?:\.\w+)+")


def _resolve(dotted):
    """Import the longest module prefix of ``dotted``, then get attributes."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _call_tree():
    """Return (caller, callee) pairs of the page's call tree."""
    text = PAGE.read_text()
    block = text.split(".. code-block:: text", 1)[1].split("\n\n", 2)[1]
    stack, edges = [], []
    for line in block.splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.strip()
        del stack[depth - 2 :]
        if stack:
            edges.append((stack[-1], name))
        stack.append(name)
    return edges


def test_every_name_on_the_page_exists():
    names = sorted(set(NAME.findall(PAGE.read_text())))
    assert len(names) > 20
    for dotted in names:
        _resolve(dotted)  # raises if it does not exist


@pytest.mark.parametrize("caller, callee", _call_tree())
def test_call_tree_matches_the_code(caller, callee):
    source = inspect.getsource(_resolve(caller))
    short = callee.rsplit(".", 1)[1]
    # a call, a method call, or a function passed on (functools.partial)
    assert re.search(rf"\b{short}\b", source), f"{caller} does not call {short}"


def test_page_is_in_the_docs():
    index = (PAGE.parent / "index.rst").read_text()
    assert "architecture" in index


MAX_LINES = 80  # doc/architecture.rst, "Long functions"


def _code_lines(node, lines):
    """Lines of code of a function: no docstring, blank or comment lines."""
    body = node.body
    doc = set()
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            doc = set(range(first.lineno, first.end_lineno + 1))
    return sum(
        1
        for number in range(node.lineno, node.end_lineno + 1)
        if number not in doc
        and lines[number - 1].strip()
        and not lines[number - 1].strip().startswith("#")
    )


def test_no_function_is_longer_than_the_limit():
    package = Path(__file__).parents[1] / "mne_wasserstein"
    long = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(node, lines)
                if n > MAX_LINES:
                    long.append(f"{path.relative_to(package)}::{node.name} ({n})")
    # the exceptions are listed, with a reason, on the architecture page
    listed = PAGE.read_text().split("Long functions", 1)[1]
    assert [name for name in long if name.split(" ")[0] not in listed] == []
