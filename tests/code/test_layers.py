"""The package docstring's layers are real: no module imports from a layer below its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import emolib

PACKAGE = Path(emolib.__file__).parent
LAYERS = ("core", "data", "model", "analysis", "delivery")


def documented_layers() -> dict[str, int]:
    """{module: layer index} read from emolib/__init__.py's docstring (a block per layer)."""
    blocks: dict[int, str] = {}
    layer = None
    for line in emolib.__doc__.splitlines():
        head = line.split(" ", 1)[0]
        if head in LAYERS:
            layer = LAYERS.index(head)
            line = line[len(head) :]
        if layer is not None:
            blocks[layer] = blocks.get(layer, "") + " " + line
    out = {}
    for layer, text in blocks.items():
        while re.search(r"\([^()]*\)", text):  # drop the explanations in parentheses
            text = re.sub(r"\([^()]*\)", "", text)
        for name in re.findall(r"[a-z_]+", text):
            if (PACKAGE / f"{name}.py").is_file():
                out.setdefault(name, layer)
    return out


def emolib_imports(path: Path) -> set[str]:
    """The emolib modules `path` imports, at any level of the file (function-level imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1 or base.startswith("emolib"):
                base = base.removeprefix("emolib").lstrip(".")
                if base:
                    found.add(base.split(".")[0])
                else:  # from . import x, y
                    found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("emolib."))
    return {m for m in found if (PACKAGE / f"{m}.py").is_file()}


def test_every_module_is_in_the_docstring():
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert modules - set(documented_layers()) == set()


def test_no_module_imports_from_a_lower_layer():
    layer = documented_layers()
    wrong = [
        f"{m} ({LAYERS[layer[m]]}) imports {dep} ({LAYERS[layer[dep]]})"
        for m in layer
        for dep in emolib_imports(PACKAGE / f"{m}.py")
        if dep in layer and layer[dep] > layer[m]
    ]
    assert wrong == []
