"""Provenance and safe writes: atomic files, library versions, `reports/run.json`.

Every artifact goes through `atomic_write_*` (write a temp file in the same folder,
then `os.replace`) so an interrupted run never leaves a half-written file that a
later `make` would take as finished.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import importlib.metadata
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LIBRARIES = (
    "emolib",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "matplotlib",
    "seaborn",
    "pillow",
    "imagehash",
    "opencv-python-headless",
    "papermill",
    "nbconvert",
    "ipywidgets",
)


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it replaces `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())  # the bytes are on disk before the rename makes them visible
    return Path(path)


def json_safe(obj: Any) -> Any:
    """`obj` as strict-JSON values: numpy scalars/arrays -> Python, NaN/inf -> None, Path -> str,
    tuples/sets -> lists (sets sorted when their items allow it), dict keys -> str. The one
    sanitiser: `to_json` and `atomic_write_json` use it, so every artifact is valid JSON."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None:
        if isinstance(obj, np.ndarray):
            obj = obj.tolist()
        elif isinstance(obj, np.generic):
            obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        try:
            obj = sorted(obj)
        except TypeError:
            obj = list(obj)
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def frame_json(df, orient: str = "records"):
    """A DataFrame as JSON values (`df.to_dict(orient)`, then `json_safe`), every float kept whole.

    Not `json.loads(df.to_json())`: pandas writes 10 decimals by default, so a p-value of 4.9e-13
    came back as 0.0 (values below ~1e-16 switch to an exponent, so 3e-60 survived)."""
    return json_safe(df.to_dict(orient=orient))


def to_json(obj: Any) -> str:
    """Strict JSON text (indent 2) of `json_safe(obj)`."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj) + "\n")


def write_if_changed(path: str | Path, text: str) -> bool:
    """Write only when the content differs, so make's timestamps stay meaningful."""
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write_text(path, text)
    return True


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def machine_info() -> dict[str, Any]:
    """Where a run ran: platform, CPU model and count, and TensorFlow's oneDNN setting (see emolib/__init__)."""
    info = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }
    return info


def cpuinfo_field(name: str) -> str | None:
    """The first value of `name` in /proc/cpuinfo (Linux), e.g. 'model name' or 'flags'; None elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor() or None."""
    return cpuinfo_field("model name") or platform.processor() or None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def update_run_json(reports_dir: str | Path, section: str, payload: dict[str, Any]) -> dict:
    """Merge `payload` under `section` of reports/run.json, safely under parallel make -j."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / "run.json"
    with open(reports_dir / ".run.json.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("stages", {})
        if section in ("params", "data", "versions", "machine"):
            data[section] = payload
        else:
            data["stages"][section] = payload
        data["versions"] = library_versions()
        data["machine"] = machine_info()
        data["updated"] = now_iso()
        atomic_write_json(path, data)
    return data
