"""Helpers shared by the test modules (imported as `tests.helpers`; fixtures live in conftest.py)."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CLASSES = ["angry", "sad", "surprise"]

# TensorFlow's autograph writes the converted source of a tf.function it traces (the predictor's
# forward pass: once per model, not per upload) to the temp folder, and deletes it at exit.
AUTOGRAPH = "__autograph_generated_file"


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


# -- stand-ins shared by the test modules ----------------------------------------------------
def make_model_dir(path: Path, classes=CLASSES, size: int = 48) -> Path:
    """A tiny stand-in for a trained model: raw pixels in, softmax out, with a card."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(classes), activation="softmax")(x)
    model = keras.Model(inp, out)
    k, b = model.layers[-1].get_weights()
    model.layers[-1].set_weights([k * 4, b])  # decisive outputs, not near-uniform ones
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / "model.keras")
    (path / "model.json").write_text(
        json.dumps({"model_name": "tiny", "classes": list(classes), "input_shape": [size, size, 1]})
    )
    return path


def face_crop(seed: int = 0, size: int = 48) -> np.ndarray:
    """A smooth, asymmetric 48x48 'face crop' (a flip changes it)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 120 + 80 * np.sin(6 * xx + seed) * np.cos(3 * yy) + 60 * xx + rng.normal(0, 8, (size, size))
    return np.clip(img, 0, 255).astype(np.uint8)


def header_only_png(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header claims width x height 8-bit gray pixels (a decompression bomb
    as far as any reader that trusts the header is concerned)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def entry(name: str, content: bytes, type_: str = "image/png") -> dict:
    """One file as ipywidgets 8's FileUpload gives it (content is a memoryview)."""
    return {
        "name": name,
        "type": type_,
        "size": len(content),
        "content": memoryview(content),
        "last_modified": datetime(2024, 1, 1, tzinfo=timezone.utc),
    }


def upload_widgets(ui):
    """(FileUpload, output HTML, status HTML) of the live playground's Photos tab."""
    import ipywidgets as w

    def walk(x):
        yield x
        for c in getattr(x, "children", ()):
            yield from walk(c)

    found = list(walk(ui))
    upload = next(x for x in found if isinstance(x, w.FileUpload))
    out = next(x for x in found if "emolib-output" in x._dom_classes)
    panel = next(x for x in found if out in getattr(x, "children", ()))  # the Photos tab
    status = [x for x in panel.children if isinstance(x, w.HTML)][-2]  # status, then out
    return upload, out, status
