"""The metrics vocabulary: one function and one key per metric, and the artifact schema.

Plain numpy (no TensorFlow, no scikit-learn); every module that scores predictions calls
these (the training callback, `evaluate.classification_metrics`, the error analysis, the
comparison and `emolib evaluate`). The numbers are scikit-learn's definitions with a fixed
label set 0..K-1 and `zero_division=0`: a class with no true and no predicted item has
precision, recall and F1 0 and still counts in the macro averages.

Conventions: `y_true` / `y_pred` are integer class indices 0..K-1 (K = `n_classes`, or the
largest label + 1 when it is not given); `probs` is an (N, K) array of probabilities.
Label metrics of an empty input are NaN; `ece` and `nll` of an empty input are 0.

Schema (the one place it is documented; `SCHEMA` below holds the key meanings)
------------------------------------------------------------------------------
One key per metric, the same in every artifact: `accuracy`, `balanced_accuracy`,
`macro_precision`, `macro_recall`, `macro_f1`, `weighted_f1`, `ece`, `nll`, and for the 95%
bootstrap intervals `accuracy_ci_low/high`, `macro_f1_ci_low/high` (flat tables) or
`{"accuracy"|"macro_f1": {point, low, high}}` (nested). Training history keeps its Keras
column name `val_macro_f1` (the macro-F1 on the validation split, per epoch).

`<model dir>/metrics.json` (error analysis, `emolib.error_analysis.evaluate_model`):
  schema_version, model_name, classes, n_val, n_test
  test: `evaluate.classification_metrics` on test: n, the metric keys above, per_class
        {class: {precision, recall, f1, support}}, confusion_matrix(_normalized),
        baselines {chance_accuracy, majority_accuracy, majority_class, majority_macro_f1},
        mean_confidence_correct / _incorrect, confidence_gap
  test_ci: {accuracy: {point, low, high}, macro_f1: {point, low, high}, ci, n_boot}
  calibration: {temperature (fitted on VALIDATION), fitted_on, ece_before, ece_after,
                nll_before, nll_after} (on test)
  tta: {accuracy, macro_f1, ece, nll, views} (test, mean over `emolib.tta.views`: 3 scales x mirror;
       views names them, absent in files made with the mirror alone)
  errors: {n_errors, mean_confidence_correct, mean_confidence_incorrect, confidence_gap,
           bands, by_band [{band, n, n_errors, error_rate, share_of_all_errors}],
           confusion_patterns [{true, predicted, count, share_of_class_errors, mean_confidence}]}
  inference_ms_per_image, inference_batch_size, params, training_time_s, epochs,
  weights_used, input_shape, synthetic, data_fingerprint, data_fingerprint_of_training,
  seed, created

`reports/comparison.csv` / `comparison.json` (`emolib.comparison.comparison_table`): one row
per model, ensemble, TTA variant and the external reference, columns
`comparison.COMPARISON_COLUMNS` (its metric columns are the keys above); the JSON adds
schema_version, per_class {f1|precision|recall: {class: {model: value, winner}}},
significance, ranks, strengths_weaknesses, best_subset, reference, notes.

`emolib evaluate --json`: schema_version, model and data fields, `accuracy`, `macro_f1`, and
`metrics` (the same `classification_metrics` dict as metrics.json's `test`).
"""

from __future__ import annotations

import numpy as np

#: Version of the artifact schema above (metrics.json, comparison.json, `emolib evaluate --json`).
#: 2: one key per metric (comparison's f1_macro/precision_macro/recall_macro became macro_*).
SCHEMA_VERSION = 2

#: The metric keys every scored artifact shares, with their meaning.
SCHEMA: dict[str, str] = {
    "accuracy": "share of items whose predicted class is the true class",
    "balanced_accuracy": "mean per-class recall over the classes present in y_true",
    "macro_precision": "precision, unweighted mean over the K classes",
    "macro_recall": "recall, unweighted mean over the K classes",
    "macro_f1": "F1, unweighted mean over the K classes",
    "ece": "expected calibration error of the max probability, 15 equal-width bins",
    "nll": "mean negative log-likelihood of the true class",
}
#: Keys that only some artifacts carry.
EXTRA_KEYS: dict[str, str] = {
    "weighted_f1": "F1 averaged with the class supports as weights",
    "accuracy_ci_low": "95% percentile-bootstrap interval of the accuracy, lower end",
    "accuracy_ci_high": "... upper end",
    "macro_f1_ci_low": "95% percentile-bootstrap interval of the macro-F1, lower end",
    "macro_f1_ci_high": "... upper end",
}
SHARED_KEYS = tuple(SCHEMA)

_EPS = 1e-12


def _labels(y_true, y_pred, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    yt = np.asarray(y_true, dtype=np.int64).ravel()
    yp = np.asarray(y_pred, dtype=np.int64).ravel()
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} items, y_pred {len(yp)}")
    k = int(max(yt.max(), yp.max()) + 1) if len(yt) else 0
    if n_classes is not None:
        k = max(k, int(n_classes))
    return yt, yp, k


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class."""
    yt, yp, k = _labels(y_true, y_pred, n_classes)
    return np.bincount(yt * k + yp, minlength=k * k).reshape(k, k)


def _divide(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def per_class(y_true, y_pred, n_classes: int | None = None) -> dict[str, np.ndarray]:
    """{precision, recall, f1, support}: arrays of length K (0 where undefined)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm)
    true_sum, pred_sum = cm.sum(axis=1), cm.sum(axis=0)
    return {
        "precision": _divide(tp, pred_sum),
        "recall": _divide(tp, true_sum),
        "f1": _divide(2 * tp, true_sum + pred_sum),
        "support": true_sum.astype(np.int64),
    }


def accuracy(y_true, y_pred) -> float:
    """Share of correct predictions (NaN for no items)."""
    yt, yp, _ = _labels(y_true, y_pred, None)
    return float(np.mean(yt == yp)) if len(yt) else float("nan")


def balanced_accuracy(y_true, y_pred, n_classes: int | None = None) -> float:
    """Mean recall over the classes present in y_true (scikit-learn's definition)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    row = cm.sum(axis=1)
    present = row > 0
    return float(np.mean(np.diag(cm)[present] / row[present])) if present.any() else float("nan")


def _macro(name: str, y_true, y_pred, n_classes: int | None) -> float:
    yt, _, _ = _labels(y_true, y_pred, n_classes)
    return float(np.mean(per_class(y_true, y_pred, n_classes)[name])) if len(yt) else float("nan")


def macro_precision(y_true, y_pred, n_classes: int | None = None) -> float:
    """Precision, unweighted mean over the K classes."""
    return _macro("precision", y_true, y_pred, n_classes)


def macro_recall(y_true, y_pred, n_classes: int | None = None) -> float:
    """Recall, unweighted mean over the K classes."""
    return _macro("recall", y_true, y_pred, n_classes)


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """F1, unweighted mean over the K classes (a class absent from truth and prediction counts 0)."""
    return _macro("f1", y_true, y_pred, n_classes)


def weighted_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """F1 averaged with the class supports as weights."""
    pc = per_class(y_true, y_pred, n_classes)
    total = pc["support"].sum()
    return float(np.average(pc["f1"], weights=pc["support"])) if total else float("nan")


def calibration_bins(probs, y_true, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-width bins of the max probability: {lower, upper, count, accuracy, confidence}.

    Bin b is (b/n, (b+1)/n] (bin 0 also holds 0); empty bins have NaN means.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    conf = p.max(axis=1) if len(p) else np.zeros(0)
    correct = (p.argmax(axis=1) == y).astype(float) if len(p) else np.zeros(0)
    b = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    sum_acc = np.bincount(b, weights=correct, minlength=n_bins)
    sum_conf = np.bincount(b, weights=conf, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, sum_acc / np.maximum(count, 1), np.nan)
        mconf = np.where(count > 0, sum_conf / np.maximum(count, 1), np.nan)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {"lower": edges[:-1], "upper": edges[1:], "count": count.astype(int), "accuracy": acc, "confidence": mconf}


def ece(probs, y_true, n_bins: int = 15) -> float:
    """Expected calibration error: sum_b (n_b / N) * |accuracy_b - confidence_b| (0 for no items)."""
    t = calibration_bins(probs, y_true, n_bins)
    n = t["count"].sum()
    if n == 0:
        return 0.0
    m = t["count"] > 0
    return float(np.sum(t["count"][m] / n * np.abs(t["accuracy"][m] - t["confidence"][m])))


def nll(probs, y_true) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-12; 0 for no items)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0)))) if len(y) else 0.0


# The smallest normal float64. An exact p-value below it (e.g. McNemar with ~1,500 against ~50
# discordant faces) underflows to 0.0, which must not read as "p = 0".
P_VALUE_FLOOR = float(np.finfo(np.float64).tiny)


def format_p_value(p: float) -> str:
    """A p-value as people read it: 3 significant digits, '< 2.2e-308' where float64 underflowed ('' for NaN)."""
    p = float(p)
    if np.isnan(p):
        return ""
    return f"< {P_VALUE_FLOOR:.2g}" if p < P_VALUE_FLOOR else f"{p:.3g}"


def p_value_phrase(p: float) -> str:
    """'p = 4.45e-12', or 'p < 2.2e-308' where float64 underflowed (for sentences)."""
    text = format_p_value(p)
    return f"p {text}" if float(p) < P_VALUE_FLOOR else f"p = {text}"
