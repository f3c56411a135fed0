"""Per-model evaluation: predictions saved once, `metrics.json`, and the error-analysis views.

`notebooks/20_error_analysis.ipynb` is a thin wrapper around this module. Per model (a
model folder `<reports_dir>/models/<name>/`, `emolib.modelfolder`):

* `predict_splits` runs the model on the validation and test splits;
* `ensure_predictions` writes `val_predictions.csv`, `test_predictions.csv` and their
  test-time-augmentation twins (`*_tta.csv`: mean over the views of `emolib.tta`,
  three scales and their mirrors) once, and reuses them while they are newer than
  `model.keras`, list exactly the images of the prepared splits and (TTA) were made
  with today's views (`tta.json` records them);
* `evaluate_model` computes everything the error analysis reports and writes
  `metrics.json` (schema: `emolib.metrics`);
* `headline_table`, `per_class_frame`, `calibration_table`, `tta_table`, `ci_table`,
  `written_reading` and the galleries are the notebook's views of it.

The test split is only ever used for reporting: the temperature is fitted on validation.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import evaluate
from . import metrics as M
from . import tta as tta_views
from .modelfolder import METRICS_FILE, MODEL_FILE, PREDICTIONS_FILE, load_model, read_card
from .runinfo import atomic_write_json, frame_json, json_safe, now_iso

SPLITS = ("val", "test")
CONFIDENCE_BANDS = (0.6, 0.8)


def _check_classes(card: dict, prepared, model_dir) -> list[str]:
    classes = list(card.get("classes") or [])
    if classes != list(prepared.classes):
        raise ValueError(
            f"{model_dir}: the model was trained on classes {classes}, the data is prepared for "
            f"{list(prepared.classes)}; re-train or pass the same CLASSES"
        )
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

    Pixels are resized to the model's input side; with `tta` the result is the mean over
    `emolib.tta.views` (three scales, each also mirrored).
    """
    size = _input_size(model)
    k = int(model.output_shape[-1])
    fwd = fwd or _forward(model)
    x = resize_pixels(pixels, size)
    out = np.zeros((len(x), k), dtype=np.float64)
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size]
        if tta:  # all views of the chunk in one forward pass
            p = tta_views.average(np.asarray(fwd(tta_views.views(xb)), dtype=np.float64), len(xb))
        else:
            p = np.asarray(fwd(xb), dtype=np.float64)
        out[s : s + len(xb)] = p
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def predict_splits(
    model_dir, prepared, batch_size: int = 256, tta: bool = False, *, model=None, splits: Sequence[str] = SPLITS
) -> dict[str, np.ndarray]:
    """{'val': probs, 'test': probs} of the model in `model_dir` on the prepared splits."""
    model = model if model is not None else load_model(model_dir)
    fwd = _forward(model)
    return {s: predict_probs(model, prepared.split(s)[0], batch_size=batch_size, tta=tta, fwd=fwd) for s in splits}


def prediction_file(model_dir, split: str, tta: bool = False) -> Path:
    """`<model_dir>/<split>_predictions[_tta].csv` (`modelfolder.PREDICTIONS_FILE` for test)."""
    if split == "test" and not tta:
        return Path(model_dir) / PREDICTIONS_FILE
    return Path(model_dir) / f"{split}_predictions{'_tta' if tta else ''}.csv"


TTA_RECORD = "tta.json"  # the views the saved *_tta.csv files were made with


def tta_record_current(model_dir: Path) -> bool:
    """Whether the model folder's saved TTA predictions were made with today's views (`tta.POLICY`)."""
    try:
        return json.loads((model_dir / TTA_RECORD).read_text()).get("views") == tta_views.POLICY
    except (OSError, ValueError, AttributeError):
        return False


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


def ensure_predictions(
    model_dir, prepared, batch_size: int = 256, *, tta: bool = True, force: bool = False, model=None
) -> dict[str, pd.DataFrame]:
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
    card = read_card(model_dir)
    classes = _check_classes(card, prepared, model_dir)
    model_path = model_dir / MODEL_FILE
    out: dict[str, pd.DataFrame] = {}
    fwd = None
    for use_tta in (False, True) if tta else (False,):
        same_views = not use_tta or tta_record_current(model_dir)
        for split in SPLITS:
            key = f"{split}_tta" if use_tta else split
            path = prediction_file(model_dir, split, use_tta)
            paths = prepared.paths(split)
            _, y = prepared.split(split)
            labels = [classes[i] for i in y]
            if not force and same_views and _is_current(path, model_path, paths, labels, classes):
                df = pd.read_csv(path)
                df.attrs["written"] = False
            else:
                if model is None:
                    model = load_model(model_dir, card)
                if fwd is None:
                    fwd = _forward(model)
                probs = predict_probs(model, prepared.split(split)[0], batch_size=batch_size, tta=use_tta, fwd=fwd)
                df = evaluate.predictions_frame(paths, y, probs, classes)
                evaluate.save_predictions(df, path)
                df.attrs["written"] = True
            out[key] = df
        if use_tta and not same_views:
            atomic_write_json(model_dir / TTA_RECORD, {"views": tta_views.POLICY})
    return out


def probs_of(df: pd.DataFrame, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(y_true indices, probs (N, K)) from a predictions frame."""
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup[str(t)] for t in df["true"]], dtype=np.int64)
    return y, df[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)


def measure_inference_ms(
    model, pixels: np.ndarray, batch_size: int = 256, max_images: int = 2048, repeats: int = 3
) -> float:
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
            np.asarray(fwd(x[s : s + batch_size]))
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best / len(x)


# --------------------------------------------------------------------------------------
# one model: metrics.json
# --------------------------------------------------------------------------------------


def bootstrap_interval(y, pred, metric: str, n_boot: int, seed: int, k: int) -> dict:
    """{point, low, high}: the 95% percentile-bootstrap interval of 'accuracy' or 'macro_f1'
    over the test items (`evaluate.bootstrap_ci`, `n_boot` resamples)."""
    r = evaluate.bootstrap_ci(y, pred, metric, n_resamples=n_boot, seed=seed, n_classes=k)
    return {"point": r["point"], "low": r["low"], "high": r["high"]}


def _epochs(card: dict) -> int | None:
    if card.get("epochs_total") is not None:
        return int(card["epochs_total"])
    stages = card.get("epochs_per_stage") or []
    return int(sum(int(s.get("epochs_run", 0) or 0) for s in stages)) if stages else None


def evaluate_model(
    model_dir, prepared, n_boot: int = 1000, seed: int = 42, *, batch_size: int = 256, write: bool = True, model=None
) -> dict:
    """Evaluate one trained model on the test split and write `<model_dir>/metrics.json`.

    The schema (keys, meanings, version) is documented in one place: `emolib.metrics`.
    Predictions come from `ensure_predictions` (written once, reused afterwards); the
    temperature is fitted on VALIDATION, everything else is measured on test.
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    classes = _check_classes(card, prepared, model_dir)
    k = len(classes)
    if model is None:
        model = load_model(model_dir, card)
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
        "ece_before": M.ece(p_test, y_test),
        "ece_after": M.ece(p_cal, y_test),
        "nll_before": M.nll(p_test, y_test),
        "nll_after": M.nll(p_cal, y_test),
    }
    tta_pred = p_tta.argmax(axis=1)
    tta = {
        "accuracy": M.accuracy(y_test, tta_pred) if len(y_test) else 0.0,
        "macro_f1": M.macro_f1(y_test, tta_pred, k),
        "ece": M.ece(p_tta, y_test),
        "nll": M.nll(p_tta, y_test),
        "views": tta_views.POLICY,
    }
    conf = p_test.max(axis=1)
    errors = {
        "n_errors": int((pred != y_test).sum()),
        "mean_confidence_correct": test.get("mean_confidence_correct"),
        "mean_confidence_incorrect": test.get("mean_confidence_incorrect"),
        "confidence_gap": test.get("confidence_gap"),
        "bands": list(CONFIDENCE_BANDS),
        "by_band": frame_json(evaluate.errors_by_confidence_band(y_test, pred, conf, CONFIDENCE_BANDS)),
        "confusion_patterns": frame_json(evaluate.confusion_patterns(y_test, pred, conf, classes)),
    }
    ms = measure_inference_ms(model, prepared.split("test")[0], batch_size=batch_size)
    metrics = {
        "schema_version": M.SCHEMA_VERSION,
        "model_name": card.get("model_name", model_dir.name),
        "classes": classes,
        "n_val": int(len(y_val)),
        "n_test": int(len(y_test)),
        "test": test,
        "test_ci": {
            "accuracy": bootstrap_interval(y_test, pred, "accuracy", n_boot, seed, k),
            "macro_f1": bootstrap_interval(y_test, pred, "macro_f1", n_boot, seed, k),
            "ci": 0.95,
            "n_boot": int(n_boot),
        },
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
    metrics = json_safe(metrics)
    if write:
        atomic_write_json(model_dir / METRICS_FILE, metrics)
    return metrics


def load_or_evaluate(model_dir, prepared, n_boot: int = 1000, seed: int = 42, **kw) -> dict:
    """metrics.json when it is current (newer than model.keras, same data, classes and n_boot), else evaluate_model."""
    model_dir = Path(model_dir)
    path = model_dir / METRICS_FILE
    if path.is_file() and path.stat().st_mtime >= (model_dir / MODEL_FILE).stat().st_mtime:
        try:
            m = json.loads(path.read_text())
            if (
                m.get("schema_version") == M.SCHEMA_VERSION
                and m.get("data_fingerprint") == prepared.fingerprint
                and m.get("classes") == list(prepared.classes)
                and m.get("test", {}).get("n") == len(prepared.paths("test"))
                and m.get("test_ci", {}).get("n_boot") == n_boot
            ):
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
        (
            "accuracy",
            t["accuracy"],
            ci["accuracy"]["low"],
            ci["accuracy"]["high"],
            b["majority_accuracy"],
            b["chance_accuracy"],
        ),
        (
            "balanced accuracy",
            t["balanced_accuracy"],
            None,
            None,
            1.0 / len(metrics["classes"]),
            1.0 / len(metrics["classes"]),
        ),
        ("macro precision", t["macro_precision"], None, None, None, None),
        ("macro recall", t["macro_recall"], None, None, 1.0 / len(metrics["classes"]), None),
        ("macro F1", t["macro_f1"], ci["macro_f1"]["low"], ci["macro_f1"]["high"], b["majority_macro_f1"], None),
        ("weighted F1", t["weighted_f1"], None, None, None, None),
        ("ECE", t.get("ece"), None, None, None, None),
        ("NLL", t.get("nll"), None, None, None, None),
    ]
    df = pd.DataFrame(
        rows,
        columns=[
            "metric",
            metrics["model_name"],
            "95% CI low",
            "95% CI high",
            f"majority baseline ({b['majority_class']})",
            "chance",
        ],
    )
    return df.set_index("metric")


def per_class_frame(metrics: dict) -> pd.DataFrame:
    return pd.DataFrame(metrics["test"]["per_class"]).T[["precision", "recall", "f1", "support"]]


def calibration_table(metrics: dict) -> pd.DataFrame:
    c = metrics["calibration"]
    return pd.DataFrame(
        {"before": [c["ece_before"], c["nll_before"]], "after temperature": [c["ece_after"], c["nll_after"]]},
        index=["ECE", "NLL"],
    )


def tta_table(metrics: dict) -> pd.DataFrame:
    t, a = metrics["test"], metrics["tta"]
    return pd.DataFrame(
        {
            "TTA off": [t["accuracy"], t["macro_f1"], t["ece"], t["nll"]],
            "TTA on (3 scales x mirror)": [a["accuracy"], a["macro_f1"], a["ece"], a["nll"]],
        },
        index=["accuracy", "macro F1", "ECE", "NLL"],
    )


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
        + (
            f"the model is {above:.3f} above the majority baseline in accuracy"
            + (
                " (its CI lower end is above it)."
                if ci["accuracy"]["low"] > b["majority_accuracy"]
                else " (but its CI reaches down to it)."
            )
            if above > 0
            else f"the model does **not** beat the majority baseline in accuracy ({above:+.3f})."
        )
    )
    lines.append(
        f"* Best recognised emotion: **{best}** (F1 {pc[best]['f1']:.3f}); hardest: **{worst}** "
        f"(F1 {pc[worst]['f1']:.3f}, recall {pc[worst]['recall']:.3f})."
    )
    patterns = err.get("confusion_patterns") or []
    if patterns:
        p = patterns[0]
        lines.append(
            f"* The most frequent confusion is **{p['true']} → {p['predicted']}** ({p['count']} images, "
            f"{p['share_of_class_errors']:.0%} of the errors on {p['true']})."
        )
    if err.get("confidence_gap") is not None:
        bands = {r["band"]: r for r in err["by_band"]}
        hi = bands.get(f">={CONFIDENCE_BANDS[-1]:g}")
        lines.append(
            f"* Correct predictions average confidence {err['mean_confidence_correct']:.3f}, wrong ones "
            f"{err['mean_confidence_incorrect']:.3f} (gap {err['confidence_gap']:.3f})"
            + (
                f"; {hi['share_of_all_errors']:.0%} of the errors are made with confidence ≥ {CONFIDENCE_BANDS[-1]:g}."
                if hi
                else "."
            )
        )
    direction = "over-confident (T > 1 softens it)" if cal["temperature"] > 1 else "under-confident (T < 1 sharpens it)"
    if cal["temperature"] >= 19.9 or cal["temperature"] <= 0.051:
        direction += ", at the edge of the search range"
    lines.append(
        f"* Calibration: the temperature fitted on validation is {cal['temperature']:.2f}, i.e. the model is "
        f"{direction}; test ECE goes {cal['ece_before']:.3f} → {cal['ece_after']:.3f} and NLL "
        f"{cal['nll_before']:.3f} → {cal['nll_after']:.3f}"
        + (" (scaling helped)." if cal["nll_after"] < cal["nll_before"] else " (scaling did not help on test).")
    )
    d_acc, d_f1 = tta["accuracy"] - t["accuracy"], tta["macro_f1"] - t["macro_f1"]
    lines.append(
        f"* Test-time augmentation (3 scales x mirror, {tta_views.N_VIEWS} views) changes accuracy by "
        f"{d_acc:+.3f} and macro-F1 by {d_f1:+.3f}"
        + (
            " — within the bootstrap interval, so no clear effect."
            if abs(d_acc) < (ci["accuracy"]["high"] - ci["accuracy"]["low"]) / 2
            else "."
        )
    )
    lines.append(
        f"* Inference costs {metrics['inference_ms_per_image']:.2f} ms per image in batches of "
        f"{metrics.get('inference_batch_size', 256)} on this machine."
    )
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
            out += (
                ok[ok["true"] == c]
                .sort_values("confidence", ascending=False, kind="mergesort")
                .head(per)
                .index.tolist()
            )
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


def gradcam_gallery(
    model, pixels: np.ndarray, titles: Sequence[str], class_index=None, ncols: int = 4, title: str = ""
):
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
