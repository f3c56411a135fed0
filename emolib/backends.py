"""What runs the network for a Predictor: Keras (TensorFlow) or LiteRT (no TensorFlow).

Both backends take raw grayscale pixels (N, S, S, 1) float32 0..255 and return
``(probs, other)``: the class probabilities (N, C) and, when the model folder has an
"other" head (see below), the probability (N,) that the face shows none of the model's
classes; ``other`` is None without a head.

* `KerasBackend` runs ``model.keras`` through one cached ``tf.function``. It imports
  TensorFlow and Keras (~4 s and ~700 MB on a 2-core CPU), works for every trained model
  folder, and is what Grad-CAM needs.
* `LiteRTBackend` runs a float32 ``model.tflite`` with LiteRT (``ai-edge-litert``) and
  never imports TensorFlow: the default model answers ``emolib predict photo.jpg`` in well
  under a second. It is used only for a ``.tflite`` that the model card vouches for (the
  card's ``tflite`` entry: file name, SHA-256, agreement with Keras measured at release),
  so a stale export next to a retrained ``model.keras`` is never picked up by accident.

The "other" head (issue 11: a happy face shown to an angry/sad/surprise model) is a
logistic regression on the model's own hidden features, stored in the card:

    "other": {"layers": ["gap", "dense128"],   # layer outputs, concatenated, that it reads
              "weights": [...], "bias": b,      # p_other = sigmoid(features . weights + bias)
              "threshold": t, ...}              # a face is 'other' when p_other >= t

Standardisation is folded into weights and bias, so the head is one Dense(1, sigmoid)
layer: `with_other_head` grafts it onto the Keras model (a second output), and the
default model's ``model.tflite`` carries the same second output, so both backends give
the same answer. This module imports neither TensorFlow nor Keras at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default_model"
TFLITE_FILE = "model.tflite"
BACKENDS = ("auto", "keras", "litert")


class BackendError(RuntimeError):
    """A backend cannot run this model folder; the message says why and what to do."""


def default_model_dir() -> Path:
    """The model folder shipped inside the package (emolib/assets/default_model)."""
    return DEFAULT_MODEL_DIR


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def litert_available() -> bool:
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def vouched_tflite(model_dir: str | Path, card: dict) -> Path | None:
    """The model folder's .tflite when the card vouches for it (entry 'tflite', matching SHA-256), else None."""
    entry = card.get("tflite")
    if not isinstance(entry, dict) or not entry.get("file") or not entry.get("sha256"):
        return None
    path = Path(model_dir) / str(entry["file"])
    if not path.is_file() or sha256_file(path) != entry["sha256"]:
        return None
    return path


def other_head(card: dict) -> dict | None:
    """The card's 'other' head when it is well-formed, else None."""
    head = card.get("other")
    if not isinstance(head, dict):
        return None
    keys = {"layers", "weights", "bias", "threshold"}
    if not keys <= set(head) or not head["layers"] or not head["weights"]:
        return None
    return head


# -- Keras -------------------------------------------------------------------------------
def with_other_head(model, head: dict):
    """A Keras model with two outputs: the model's probabilities and p_other (N, 1).

    The head reads the named layers' outputs (concatenated, in order) of `model`'s graph.
    """
    import keras

    feats = [model.get_layer(name).output for name in head["layers"]]
    x = feats[0] if len(feats) == 1 else keras.layers.Concatenate(name="other_features")(feats)
    w = np.asarray(head["weights"], dtype=np.float32).reshape(-1, 1)
    if int(x.shape[-1]) != len(w):
        raise BackendError(
            f"the 'other' head has {len(w)} weights but layers {head['layers']} give "
            f"{int(x.shape[-1])} features; the card belongs to another model"
        )
    dense = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="other")
    p_other = dense(x)
    dense.set_weights([w, np.asarray([head["bias"]], dtype=np.float32)])
    return keras.Model(model.inputs, [model.outputs[0], p_other], name=f"{model.name}_with_other")


class KerasBackend:
    """model.keras (plus the card's 'other' head, if any) through one cached tf.function."""

    name = "keras"

    def __init__(self, model, head: dict | None = None):
        import tensorflow as tf

        self.model = model
        self.size = int(model.input_shape[1])
        self.has_other = head is not None
        graph = with_other_head(model, head) if head is not None else model

        @tf.function(
            input_signature=[tf.TensorSpec([None, self.size, self.size, 1], tf.float32)], reduce_retracing=True
        )
        def _forward(x):
            return graph(x, training=False)

        self._forward = _forward

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self._forward(x)
        if self.has_other:
            return np.asarray(out[0], dtype=np.float32), np.asarray(out[1], dtype=np.float32)[:, 0]
        return np.asarray(out, dtype=np.float32), None


# -- LiteRT ------------------------------------------------------------------------------
@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence file descriptor 2 (C++ log lines bypass sys.stderr); failures still raise Python exceptions."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (e.g. an embedded interpreter): nothing to silence
        yield
        return
    try:
        sys.stderr.flush()
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LiteRTBackend:
    """A float32 .tflite with one input (N, S, S, 1) and outputs (N, C) [and (N, 1) p_other].

    Outputs are told apart by width (C >= 2 classes against 1), whatever order the converter
    gave them. The interpreter is resized only when the batch size changes.
    """

    name = "litert"

    def __init__(self, path: str | Path, n_classes: int, threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise BackendError("the LiteRT backend needs ai-edge-litert: pip install 'ai-edge-litert>=2.3'") from None
        self.path = Path(path)
        self.n_classes = int(n_classes)
        threads = threads or min(4, os.cpu_count() or 1)
        try:
            self._interp = Interpreter(model_path=str(self.path), num_threads=threads)
            with _native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self._interp.allocate_tensors()
        except Exception as e:  # noqa: BLE001 - a damaged file becomes one clear message
            raise BackendError(f"{self.path}: LiteRT cannot load it ({type(e).__name__}: {e})") from e
        inp = self._interp.get_input_details()
        if len(inp) != 1 or len(inp[0]["shape"]) != 4 or inp[0]["dtype"] != np.float32:
            raise BackendError(f"{self.path}: expected one float32 input (N, S, S, 1), got {inp}")
        self.size = int(inp[0]["shape"][1])
        self._batch = int(inp[0]["shape"][0])
        self._locate_outputs()
        self.has_other = self._other_index is not None

    def _locate_outputs(self) -> None:
        self._input_index = self._interp.get_input_details()[0]["index"]
        self._probs_index = self._other_index = None
        for d in self._interp.get_output_details():
            width = int(d["shape"][-1])
            if width == self.n_classes:
                self._probs_index = d["index"]
            elif width == 1:
                self._other_index = d["index"]
        if self._probs_index is None:
            raise BackendError(f"{self.path}: no output with {self.n_classes} class probabilities")

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) != self._batch:
            self._interp.resize_tensor_input(self._input_index, list(x.shape), strict=False)
            self._interp.allocate_tensors()
            self._batch = len(x)
            self._locate_outputs()
        self._interp.set_tensor(self._input_index, x)
        self._interp.invoke()
        probs = np.array(self._interp.get_tensor(self._probs_index), dtype=np.float32)
        other = None
        if self._other_index is not None:
            other = np.array(self._interp.get_tensor(self._other_index), dtype=np.float32).reshape(-1)
        return probs, other


def choose(backend: str, model_dir: Path, card: dict) -> tuple[str, Path | None]:
    """('keras' | 'litert', the .tflite for LiteRT). 'auto' takes LiteRT when the card vouches for a .tflite
    and ai-edge-litert is installed, else Keras."""
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "keras":
        return "keras", None
    tfl = vouched_tflite(model_dir, card)
    if backend == "litert":
        if tfl is None:
            raise BackendError(
                f"{model_dir}: no {TFLITE_FILE} vouched for by the model card (entry 'tflite' "
                "with its SHA-256; written by `make release-model`); use backend='keras'"
            )
        return "litert", tfl
    return ("litert", tfl) if tfl is not None and litert_available() else ("keras", None)


def describe(backend: Any) -> str:
    return getattr(backend, "name", type(backend).__name__)
