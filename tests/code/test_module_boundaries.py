"""Module boundaries: no emolib module reaches into another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "emolib"
KNOWN: set[str] = set()  # none left; an entry here would be a documented exception


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _emolib_module(node: ast.ImportFrom, current: str) -> str | None:
    """The emolib module an ImportFrom reads from ('' for the package itself), or None for other packages."""
    if node.level:
        return node.module or ""
    if node.module == "emolib":
        return ""
    if node.module and node.module.startswith("emolib."):
        return node.module[len("emolib.") :]
    return None


def private_imports(path: Path) -> list[str]:
    """`from .x import _y`, and `x._y` where x is an emolib module bound by an import, in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _emolib_module(node, path.stem)
            if source is None:
                continue
            for alias in node.names:
                if source == "":  # from . import x [as y]: x is a module
                    modules.add(alias.asname or alias.name)
                elif _is_private(alias.name):
                    problems.append(f"{path.name}:{node.lineno}: from {'.' * node.level}{source} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("emolib.") and alias.asname:
                    modules.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _is_private(node.attr)
        ):
            problems.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    return problems


def test_no_module_imports_a_private_name_of_another():
    problems = [
        p
        for f in sorted(PACKAGE.glob("*.py"))
        for p in private_imports(f)
        if f"{p.split(':')[0]}: {p.split(': ', 1)[1]}" not in KNOWN
    ]
    assert not problems, "private names used across emolib modules:\n" + "\n".join(problems)


def test_the_checker_sees_both_forms(tmp_path):
    f = tmp_path / "mod.py"
    f.write_text(
        "from .evaluate import _macro_f1, classification_metrics\nfrom . import evaluate as ev\n"
        "from emolib.report import __doc__\nx = ev._json_float(1.0)\ny = ev.nll\n"
    )
    assert private_imports(f) == ["mod.py:1: from .evaluate import _macro_f1", "mod.py:4: ev._json_float"]


# Private attributes read through another object (`pred._prepare(...)`): allowed only where the
# attribute is emolib's own marker on a third-party object.
OWN_MARKERS = {"fig._emolib_stamped"}


def test_no_private_attribute_of_another_object_is_used():
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and _is_private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id not in ("self", "cls")
                and f"{node.value.id}.{node.attr}" not in OWN_MARKERS
            ):
                found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert found == []
