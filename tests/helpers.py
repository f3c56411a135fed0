"""Helpers shared by the test modules (imported as `tests.helpers`; fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def kernel_name() -> str:
    """The project's Jupyter kernel (`make setup` registers `emolib`), else the default one."""
    from jupyter_client.kernelspec import KernelSpecManager

    return "emolib" if "emolib" in KernelSpecManager().find_kernel_specs() else "python3"


def run_notebook(name: str, out: str | Path, **params) -> dict:
    """Execute notebooks/<name> with papermill into `out` (a file, or a folder for <stem>.ipynb).

    Runs from the repository root as `make` does; returns the executed notebook as JSON.
    """
    import papermill as pm

    out = Path(out)
    if out.is_dir():
        out = out / f"{Path(name).stem}.ipynb"
    pm.execute_notebook(
        str(NOTEBOOKS / name), str(out), parameters=params, kernel_name=kernel_name(), cwd=str(ROOT), progress_bar=False
    )
    return json.loads(out.read_text(encoding="utf-8"))


def notebook_text(nb: dict) -> str:
    """All outputs and sources of an executed notebook as one string (for `in` checks)."""
    return json.dumps(nb, ensure_ascii=False)
