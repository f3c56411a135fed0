"""The model-folder contract: one place that knows what a trained model folder holds.

A model folder (``reports/models/<name>/``, or any folder a user points at) holds:

    model.keras            the Keras model: input (None, S, S, 1) float32 raw grayscale pixels
                           0..255, all preprocessing inside the graph, softmax output
    model.json             the model card: ``classes`` in output order (required), ``input_shape``,
                           ``preprocessing``, weights, recipe, validation metrics (see modelcard.py)
    history.csv            training history, one row per epoch
    metrics.json           test metrics written by the error analysis
    test_predictions.csv   test-split probabilities, saved once per model
    run_key.json, checkpoint/   what the training run was for, and its resumable state

Everything that finds, reads, validates or loads model folders goes through this module:
`find_model_dirs` (one order everywhere), `resolve_model_dir`, `read_card`, `write_card`,
`load_model`. Problems raise `ModelDirError` with a message that says what to do.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from .config import MODEL_NAMES

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "test_predictions.csv"
RUN_KEY_FILE = "run_key.json"

# Every emolib model takes raw grayscale pixels and does its own preprocessing in the graph;
# the card's `preprocessing` says so by starting with this (models.preprocessing_description).
RAW_INPUT_PREFIX = "raw gray 0..255"


class ModelDirError(FileNotFoundError):
    """A model folder is missing, incomplete, inconsistent or unreadable; the message says which."""


def is_model_dir(path: str | Path) -> bool:
    """True when `path` holds both model.keras and model.json (a finished training run)."""
    path = Path(path)
    return (path / MODEL_FILE).is_file() and (path / CARD_FILE).is_file()


def find_model_dirs(root: str | Path, names=None) -> dict[str, Path]:
    """{name: folder} of the trained model folders under `root`, in the one order used everywhere.

    `root` is a folder of model folders (``reports/models``) or a model folder itself. Order: the
    study's models (config.MODEL_NAMES: cnn, vgg16, resnet50, mobilenetv2) first, then any other
    names sorted. `names` keeps only those names (in that order). A missing root gives {}.
    """
    root = Path(root)
    if is_model_dir(root):
        found = {root.name: root}
    elif root.is_dir():
        found = {d.name: d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and is_model_dir(d)}
    else:
        found = {}
    order = (
        names
        if names is not None
        else [*[n for n in MODEL_NAMES if n in found], *sorted(set(found) - set(MODEL_NAMES))]
    )
    return {n: found[n] for n in order if n in found}


def resolve_model_dir(model_dir: str | Path) -> Path:
    """The model folder, accepting the path of its model.keras too; clear errors otherwise."""
    path = Path(model_dir)
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    if not path.exists():
        raise ModelDirError(
            f"{path}: model folder not found (train one first, e.g. `make train` -> reports/models/cnn)"
        )
    if not path.is_dir():
        raise ModelDirError(f"{path}: not a model folder (expected a folder with {MODEL_FILE} and {CARD_FILE})")
    if not (path / MODEL_FILE).is_file():
        raise ModelDirError(f"{path}: no {MODEL_FILE} in the model folder (training did not finish?)")
    return path


def read_card(model_dir: str | Path) -> dict:
    """The validated model card of `model_dir`.

    Checks: the card exists and is a JSON object; `classes` is a list of at least two distinct
    names; `input_shape`, when given, is (S, S, 1); `preprocessing`, when given, says the model
    takes raw grayscale pixels (all emolib models do their preprocessing inside the graph).
    """
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise ModelDirError(
            f"{Path(model_dir)}: no {CARD_FILE} (the model card with the class names in output order); "
            "a model folder needs both model.keras and model.json"
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelDirError(f"{path}: cannot read the model card ({e})") from None
    if not isinstance(card, dict):
        raise ModelDirError(f"{path}: the model card must be a JSON object, got {type(card).__name__}")
    classes = card.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise ModelDirError(f"{path}: 'classes' must be a list of at least two class names, got {classes!r}")
    if len(set(classes)) != len(classes):
        raise ModelDirError(f"{path}: 'classes' has duplicates: {classes}")
    shape = card.get("input_shape")
    if shape is not None:
        ok = isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) for v in shape)
        if not ok or shape[0] != shape[1] or shape[2] != 1:
            raise ModelDirError(
                f"{path}: input_shape {shape!r} is not [S, S, 1]; emolib models take square grayscale face crops"
            )
    pre = card.get("preprocessing")
    if pre is not None and not (isinstance(pre, str) and pre.startswith(RAW_INPUT_PREFIX)):
        raise ModelDirError(
            f"{path}: unknown preprocessing {pre!r}; emolib feeds every model raw grayscale pixels 0..255 and "
            f"expects all preprocessing inside the graph (cards say '{RAW_INPUT_PREFIX} -> ...'). Wrap the model "
            "so that it takes raw pixels, then describe that in the card"
        )
    return card


def write_card(model_dir: str | Path, card: dict) -> Path:
    """Write the model card atomically (it is written last: it marks a finished model)."""
    from .runinfo import atomic_write_json

    return atomic_write_json(Path(model_dir) / CARD_FILE, card)


def _check_archive(path: Path) -> None:
    """A .keras file is a zip archive; a truncated copy must not be reported as 'file not found'."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ModelDirError(
            f"{path}: corrupt or truncated model file ({type(e).__name__}: {e}); copy it again or re-train"
        ) from None
    if bad is not None or not {"config.json", "model.weights.h5"} <= names:
        raise ModelDirError(
            f"{path}: corrupt or incomplete model file (damaged member {bad!r}, members {sorted(names)}); "
            "copy it again or re-train"
        )


def check_model_matches_card(model, card: dict, where: str | Path = "model") -> int:
    """The model's input side S, after checking it against the card; ModelDirError otherwise."""
    shape = tuple(model.input_shape)
    if len(shape) == 4 and shape[3] == 3:
        raise ModelDirError(
            f"{where}: the model expects RGB input {shape}; emolib models take raw grayscale pixels (None, S, S, 1) "
            "and convert to RGB inside the graph if their backbone needs it"
        )
    if len(shape) != 4 or shape[3] != 1 or shape[1] is None or shape[1] != shape[2]:
        raise ModelDirError(f"{where}: model input shape {shape} is not (None, S, S, 1)")
    classes = list(card.get("classes") or [])
    outputs = model.output_shape[-1]
    if outputs != len(classes):
        raise ModelDirError(
            f"{where}: the model has {outputs} outputs but its card lists {len(classes)} classes {classes}; "
            "the card belongs to another model"
        )
    card_shape = card.get("input_shape")
    if card_shape is not None and list(card_shape[:2]) != [shape[1], shape[2]]:
        raise ModelDirError(f"{where}: the card says input {card_shape}, the model takes {list(shape[1:])}")
    return int(shape[1])


def load_model(model_dir: str | Path, card: dict | None = None):
    """Load model.keras with Keras safe mode (no code from the file runs), checked against the card.

    Returns the uncompiled Keras model. Raises ModelDirError for a missing, truncated or corrupt
    file, a model Keras refuses, or one that disagrees with its card (classes, input shape, RGB).
    """
    import keras

    from . import models  # noqa: F401 - registers emolib's custom layers for deserialisation

    path = resolve_model_dir(model_dir)
    card = read_card(path) if card is None else card
    model_file = path / MODEL_FILE
    _check_archive(model_file)
    try:
        model = keras.models.load_model(model_file, safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001 - any loader failure becomes one clear message
        raise ModelDirError(f"{model_file}: cannot load the model ({type(e).__name__}: {e})") from e
    check_model_matches_card(model, card, model_file)
    return model
