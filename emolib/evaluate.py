"""Evaluation: prediction tables, the metrics dict, error analysis, calibration, significance.

Pure numpy / pandas / scipy (matplotlib and seaborn only inside the plot helpers);
nothing here imports TensorFlow. Each metric itself is one function of `emolib.metrics`
(the vocabulary and schema); `classification_metrics` gathers them under their keys.

Conventions: `y_true` / `y_pred` are integer class indices into `classes`; `probs` is
an (N, K) array of probabilities whose columns follow `classes`; `conf` is the
probability of the predicted class.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from . import metrics as M
from .runinfo import atomic_write_text, json_safe

_EPS = 1e-12

# --------------------------------------------------------------------------------------
# prediction tables
# --------------------------------------------------------------------------------------


def _as_index(y, classes: Sequence[str]) -> np.ndarray:
    """Labels as int indices; accepts indices or class-name strings."""
    arr = np.asarray(y)
    if arr.dtype.kind in "OUS":
        lookup = {c: i for i, c in enumerate(classes)}
        try:
            return np.array([lookup[str(v)] for v in arr], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"label {exc.args[0]!r} is not one of {list(classes)}") from None
    return arr.astype(np.int64)


def predictions_frame(paths, y_true, probs, classes: Sequence[str]) -> pd.DataFrame:
    """One row per image: path, true, predicted, confidence, p_<class>... .

    `y_true` may be indices or class names; `true`/`predicted` are stored as names.
    """
    classes = list(classes)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ValueError(f"probs must be (N, {len(classes)}), got {probs.shape}")
    yt = _as_index(y_true, classes)
    if len(yt) != len(probs) or len(paths) != len(probs):
        raise ValueError(f"length mismatch: {len(paths)} paths, {len(yt)} labels, {len(probs)} prob rows")
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    df = pd.DataFrame(
        {
            "path": [str(p) for p in paths],
            "true": [classes[i] for i in yt],
            "predicted": [classes[i] for i in pred],
            "confidence": probs.max(axis=1) if len(probs) else np.zeros(0),
        }
    )
    for j, c in enumerate(classes):
        df[f"p_{c}"] = probs[:, j]
    return df


def save_predictions(df: pd.DataFrame, path) -> Path:
    """Write a predictions frame to CSV atomically (temporary file + os.replace)."""
    path = Path(path)
    atomic_write_text(path, df.to_csv(index=False))
    return path


def load_predictions(path, classes: Sequence[str]):
    """Read a predictions CSV -> (y_true indices, probs (N, K), df)."""
    classes = list(classes)
    df = pd.read_csv(path)
    cols = [f"p_{c}" for c in classes]
    missing = [c for c in ["true", *cols] if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    y_true = _as_index(df["true"].astype(str).to_numpy(), classes)
    probs = df[cols].to_numpy(dtype=np.float64)
    return y_true, probs, df


# --------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------


def classification_metrics(y_true, y_pred, classes: Sequence[str], probs=None) -> dict:
    """All headline metrics in one JSON-serialisable dict (stable schema: see `emolib.metrics`).

    Keys: n, accuracy, balanced_accuracy, macro_precision, macro_recall, macro_f1,
    weighted_f1, per_class {class: {precision, recall, f1, support}}, confusion_matrix,
    confusion_matrix_normalized, baselines {chance_accuracy, majority_accuracy,
    majority_class, majority_macro_f1}; and when `probs` is given: nll, ece,
    mean_confidence_correct, mean_confidence_incorrect, confidence_gap.
    """
    classes = list(classes)
    k = len(classes)
    yt = _as_index(y_true, classes)
    yp = _as_index(y_pred, classes)
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} items, y_pred {len(yp)}")
    n = int(len(yt))
    pc = M.per_class(yt, yp, k)
    cm = M.confusion_matrix(yt, yp, k)
    row = cm.sum(axis=1, keepdims=True)
    cm_norm = np.divide(cm, row, out=np.zeros(cm.shape, dtype=float), where=row > 0)
    counts = np.bincount(yt, minlength=k)
    majority = int(counts.argmax()) if n else 0
    out = {
        "n": n,
        "accuracy": M.accuracy(yt, yp) if n else 0.0,
        "balanced_accuracy": M.balanced_accuracy(yt, yp, k) if n else 0.0,
        "macro_precision": float(np.mean(pc["precision"])),
        "macro_recall": float(np.mean(pc["recall"])),
        "macro_f1": float(np.mean(pc["f1"])),
        "weighted_f1": M.weighted_f1(yt, yp, k) if n else 0.0,
        "per_class": {
            c: {
                "precision": float(pc["precision"][i]),
                "recall": float(pc["recall"][i]),
                "f1": float(pc["f1"][i]),
                "support": int(pc["support"][i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.astype(int).tolist(),
        "confusion_matrix_normalized": cm_norm.tolist(),
        "baselines": {
            "chance_accuracy": 1.0 / k,
            "majority_accuracy": float(counts[majority] / n) if n else 0.0,
            "majority_class": classes[majority],
            "majority_macro_f1": M.macro_f1(yt, np.full(n, majority), k) if n else 0.0,
        },
    }
    if probs is not None:
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (n, k):
            raise ValueError(f"probs must be ({n}, {k}), got {p.shape}")
        conf = p.max(axis=1)
        correct = yp == yt
        mc = float(conf[correct].mean()) if correct.any() else float("nan")
        mi = float(conf[~correct].mean()) if (~correct).any() else float("nan")
        out.update(
            {
                "nll": M.nll(p, yt),
                "ece": M.ece(p, yt, n_bins=15),
                "mean_confidence_correct": json_safe(mc),
                "mean_confidence_incorrect": json_safe(mi),
                "confidence_gap": json_safe(mc - mi),
            }
        )
    return out


# --------------------------------------------------------------------------------------
# error analysis
# --------------------------------------------------------------------------------------


def confusion_patterns(y_true, y_pred, conf, classes: Sequence[str]) -> pd.DataFrame:
    """Off-diagonal (true -> predicted) pairs with their counts, sorted by count desc.

    share_of_class_errors = count / errors made on that true class;
    mean_confidence = mean confidence of those wrong predictions.
    """
    classes = list(classes)
    yt = _as_index(y_true, classes)
    yp = _as_index(y_pred, classes)
    conf = np.asarray(conf, dtype=np.float64)
    wrong = yt != yp
    cols = ["true", "predicted", "count", "share_of_class_errors", "mean_confidence"]
    if not wrong.any():
        return pd.DataFrame(columns=cols)
    d = pd.DataFrame({"t": yt[wrong], "p": yp[wrong], "c": conf[wrong]})
    g = d.groupby(["t", "p"])["c"].agg(["size", "mean"]).reset_index()
    class_err = d.groupby("t").size()
    res = pd.DataFrame(
        {
            "true": [classes[i] for i in g["t"]],
            "predicted": [classes[i] for i in g["p"]],
            "count": g["size"].astype(int).to_numpy(),
            "share_of_class_errors": (g["size"] / g["t"].map(class_err)).to_numpy(dtype=float),
            "mean_confidence": g["mean"].to_numpy(dtype=float),
        }
    )
    return res.sort_values(["count", "true", "predicted"], ascending=[False, True, True], kind="mergesort").reset_index(
        drop=True
    )


def _band_labels(bands: Sequence[float]) -> list[str]:
    labels = [f"<{bands[0]:g}"]
    labels += [f"{lo:g}-{hi:g}" for lo, hi in zip(bands[:-1], bands[1:])]
    labels.append(f">={bands[-1]:g}")
    return labels


def errors_by_confidence_band(y_true, y_pred, conf, bands: Sequence[float] = (0.6, 0.8)) -> pd.DataFrame:
    """Error counts per confidence band ('<0.6', '0.6-0.8', '>=0.8' by default).

    A band is [lo, hi): 0.6 falls in '0.6-0.8', 0.8 in '>=0.8'.
    Columns: band, n, n_errors, error_rate, share_of_all_errors.
    """
    bands = sorted(float(b) for b in bands)
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    conf = np.asarray(conf, dtype=np.float64)
    wrong = yt != yp
    idx = np.searchsorted(np.asarray(bands), conf, side="right")  # 0..len(bands)
    total_err = int(wrong.sum())
    rows = []
    for b, label in enumerate(_band_labels(bands)):
        m = idx == b
        n = int(m.sum())
        e = int((wrong & m).sum())
        rows.append(
            {
                "band": label,
                "n": n,
                "n_errors": e,
                "error_rate": e / n if n else float("nan"),
                "share_of_all_errors": e / total_err if total_err else 0.0,
            }
        )
    return pd.DataFrame(rows)


def most_confident_errors(df: pd.DataFrame, k: int = 16) -> pd.DataFrame:
    """The k wrong rows of a predictions frame with the highest confidence."""
    wrong = df[df["true"] != df["predicted"]]
    return wrong.sort_values("confidence", ascending=False, kind="mergesort").head(k)


# --------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------


def reliability_table(probs, y_true, n_bins: int = 15) -> pd.DataFrame:
    """Per equal-width bin of max-probability: lower, upper, count, accuracy, confidence.

    Bins are right-closed, (lower, upper]. Empty bins have count 0 and NaN means
    (`emolib.metrics.calibration_bins`; the ECE itself is `emolib.metrics.ece`).
    """
    return pd.DataFrame(M.calibration_bins(probs, y_true, n_bins))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _to_logits(probs_or_logits, from_probs: bool) -> np.ndarray:
    a = np.asarray(probs_or_logits, dtype=np.float64)
    return np.log(np.clip(a, _EPS, 1.0)) if from_probs else a


def apply_temperature(probs, T: float, from_probs: bool = True) -> np.ndarray:
    """softmax(log p / T) (or softmax(logits / T) with from_probs=False)."""
    if T <= 0:
        raise ValueError(f"temperature must be positive, got {T}")
    return _softmax(_to_logits(probs, from_probs) / float(T))


def fit_temperature(probs_or_logits, y_true, from_probs: bool = True, bounds=(0.05, 20.0)) -> float:
    """Temperature T minimising the NLL of softmax(z / T) (fit on the validation split).

    T > 1 softens over-confident predictions, T < 1 sharpens under-confident ones.
    """
    z = _to_logits(probs_or_logits, from_probs)
    y = np.asarray(y_true, dtype=np.int64)
    rows = np.arange(len(y))

    def objective(t: float) -> float:
        s = z / t
        s = s - s.max(axis=1, keepdims=True)
        logp = s[rows, y] - np.log(np.exp(s).sum(axis=1))
        return float(-logp.mean())

    res = optimize.minimize_scalar(objective, bounds=bounds, method="bounded", options={"xatol": 1e-4})
    return float(res.x)


# --------------------------------------------------------------------------------------
# uncertainty and significance
# --------------------------------------------------------------------------------------


def _macro_f1_batched(yt: np.ndarray, yp: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 for each row of (R, N) label arrays (sklearn semantics, zero_division=0).

    Classes absent from both truth and prediction in a resample contribute F1 = 0,
    exactly as sklearn's macro average over the fixed label set does.
    """
    f1s = np.zeros(yt.shape[0])
    for c in range(k):
        t = yt == c
        p = yp == c
        tp = (t & p).sum(axis=1)
        denom = t.sum(axis=1) + p.sum(axis=1)
        f1s += np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1s / k


def _resamples(rng: np.random.Generator, n: int, n_resamples: int):
    """(start, indices (R, n)): the bootstrap's resamples of n items, drawn in chunks of ~2M indices."""
    chunk = max(1, 2_000_000 // n)
    for s in range(0, n_resamples, chunk):
        yield s, rng.integers(0, n, size=(min(chunk, n_resamples - s), n))


def _percentile_interval(point: float, stats_: np.ndarray, ci: float, metric: str) -> dict:
    """{point, low, high, n_resamples, ci, metric}: the percentile interval of the resampled statistics."""
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(stats_, [alpha, 1.0 - alpha])
    return {
        "point": point,
        "low": float(low),
        "high": float(high),
        "n_resamples": int(len(stats_)),
        "ci": float(ci),
        "metric": metric,
    }


def bootstrap_ci(
    y_true,
    y_pred,
    metric: str | Callable = "accuracy",
    n_resamples: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    n_classes: int | None = None,
) -> dict:
    """Percentile bootstrap interval of a metric over test items.

    metric: 'accuracy', 'macro_f1' (over classes 0..K-1, K = n_classes or the largest
    label + 1) or a callable f(y_true, y_pred) -> float (looped, slower).
    Returns {point, low, high, n_resamples, ci, metric}.
    """
    yt = np.asarray(y_true, dtype=np.int64)
    yp = np.asarray(y_pred, dtype=np.int64)
    n = len(yt)
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one item")
    rng = np.random.default_rng(seed)
    k = int(n_classes) if n_classes is not None else int(max(yt.max(), yp.max()) + 1)
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "custom")
    if metric == "accuracy":
        correct = (yt == yp).astype(np.float64)
        point = float(correct.mean())
        stats_ = np.empty(n_resamples)
        for s, idx in _resamples(rng, n, n_resamples):
            stats_[s : s + len(idx)] = correct[idx].mean(axis=1)
    elif metric == "macro_f1":
        point = float(_macro_f1_batched(yt[None], yp[None], k)[0])
        stats_ = np.empty(n_resamples)
        for s, idx in _resamples(rng, n, n_resamples):
            stats_[s : s + len(idx)] = _macro_f1_batched(yt[idx], yp[idx], k)
    elif callable(metric):
        point = float(metric(yt, yp))
        stats_ = np.empty(n_resamples)
        for r in range(n_resamples):
            idx = rng.integers(0, n, size=n)
            stats_[r] = metric(yt[idx], yp[idx])
    else:
        raise ValueError(f"unknown metric {metric!r}: use 'accuracy', 'macro_f1' or a callable")
    return _percentile_interval(point, stats_, ci, name)


def paired_bootstrap_difference(
    y_true,
    pred_a,
    pred_b,
    metric: str = "macro_f1",
    n_resamples: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    n_classes: int | None = None,
) -> dict:
    """Percentile bootstrap interval of metric(B) - metric(A) for two models' predictions on the same
    items: each resample draws the items once and scores both models on them, so the interval
    reflects which items were drawn, not training noise (for that, compare runs of several seeds).

    metric: 'accuracy' or 'macro_f1'. Returns {point, low, high, n_resamples, ci, metric}.
    """
    yt = np.asarray(y_true, dtype=np.int64)
    ya = np.asarray(pred_a, dtype=np.int64)
    yb = np.asarray(pred_b, dtype=np.int64)
    n = len(yt)
    if n == 0 or len(ya) != n or len(yb) != n:
        raise ValueError(
            f"paired_bootstrap_difference needs equal, non-empty label arrays (got {n}, {len(ya)}, {len(yb)})"
        )
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"unknown metric {metric!r}: use 'accuracy' or 'macro_f1'")
    k = int(n_classes) if n_classes is not None else int(max(yt.max(), ya.max(), yb.max()) + 1)

    def score(t, p):
        return (t == p).mean(axis=1) if metric == "accuracy" else _macro_f1_batched(t, p, k)

    point = float(score(yt[None], yb[None])[0] - score(yt[None], ya[None])[0])
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for s, idx in _resamples(rng, n, n_resamples):
        diffs[s : s + len(idx)] = score(yt[idx], yb[idx]) - score(yt[idx], ya[idx])
    return _percentile_interval(point, diffs, ci, metric)


def mcnemar_exact(y_true, pred_a, pred_b) -> dict:
    """Exact McNemar test on paired predictions of two models on the same items.

    b = A right & B wrong, c = A wrong & B right; p-value = two-sided exact binomial
    test of b ~ Binomial(b + c, 0.5) (1.0 when there are no discordant pairs).
    statistic = min(b, c) (the convention of statsmodels' exact test).
    """
    yt = np.asarray(y_true)
    ra = np.asarray(pred_a) == yt
    rb = np.asarray(pred_b) == yt
    b = int((ra & ~rb).sum())
    c = int((~ra & rb).sum())
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": min(p, 1.0)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as the input)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="mergesort")
    adj_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adj = np.empty(m)
    adj[order] = adj_sorted
    return adj.tolist()


def pairwise_mcnemar(y_true, preds: Mapping[str, Sequence[int]], alpha: float = 0.05) -> pd.DataFrame:
    """Exact McNemar for every pair of models, Holm-adjusted across the pairs.

    Columns: model_a, model_b, b, c, p_value, p_holm, significant (p_holm < alpha).
    """
    names = list(preds)
    rows = []
    for a, b_ in itertools.combinations(names, 2):
        r = mcnemar_exact(y_true, preds[a], preds[b_])
        rows.append({"model_a": a, "model_b": b_, "b": r["b"], "c": r["c"], "p_value": r["p_value"]})
    df = pd.DataFrame(rows, columns=["model_a", "model_b", "b", "c", "p_value"])
    df["p_holm"] = holm(df["p_value"].tolist()) if len(df) else []
    df["significant"] = df["p_holm"] < alpha
    return df


def mcnemar_matrix(pairwise: pd.DataFrame, value: str = "p_holm") -> pd.DataFrame:
    """Square symmetric model x model matrix of `value` from a pairwise_mcnemar table."""
    names = list(dict.fromkeys([*pairwise["model_a"], *pairwise["model_b"]]))
    m = pd.DataFrame(np.nan, index=names, columns=names)
    for _, r in pairwise.iterrows():
        m.loc[r["model_a"], r["model_b"]] = r[value]
        m.loc[r["model_b"], r["model_a"]] = r[value]
    return m


# --------------------------------------------------------------------------------------
# ensembles
# --------------------------------------------------------------------------------------


def ensemble_probs(list_of_probs: Sequence, weights: Sequence[float] | None = None) -> np.ndarray:
    """Soft voting: (weighted) mean of probability arrays, rows renormalised."""
    arrs = [np.asarray(p, dtype=np.float64) for p in list_of_probs]
    if not arrs:
        raise ValueError("ensemble_probs needs at least one probability array")
    shape = arrs[0].shape
    if any(a.shape != shape for a in arrs):
        raise ValueError(f"probability arrays differ in shape: {[a.shape for a in arrs]}")
    w = np.ones(len(arrs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(arrs) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"bad weights {weights!r}")
    out = np.tensordot(w / w.sum(), np.stack(arrs), axes=1)
    return out / out.sum(axis=1, keepdims=True)


def best_subset(val_probs: Mapping[str, object], y_val, metric: str | Callable = "macro_f1") -> list[str]:
    """Non-empty subset of models whose soft vote scores best on the VALIDATION split.

    Exhaustive over all 2^M - 1 subsets; ties go to the smaller subset, then to the
    earlier one in insertion order. metric: 'macro_f1', 'accuracy', or a callable
    f(y_true, y_pred) -> float (higher is better).
    """
    names = list(val_probs)
    if not names:
        raise ValueError("best_subset needs at least one model")
    y = np.asarray(y_val, dtype=np.int64)
    k = np.asarray(val_probs[names[0]]).shape[1]
    if metric == "macro_f1":
        score = lambda yp: M.macro_f1(y, yp, k)  # noqa: E731
    elif metric == "accuracy":
        score = lambda yp: float(np.mean(yp == y))  # noqa: E731
    elif callable(metric):
        score = lambda yp: float(metric(y, yp))  # noqa: E731
    else:
        raise ValueError(f"unknown metric {metric!r}")
    best, best_score = None, -np.inf
    for size in range(1, len(names) + 1):
        for subset in itertools.combinations(names, size):
            s = score(ensemble_probs([val_probs[n] for n in subset]).argmax(axis=1))
            if s > best_score + 1e-12:
                best, best_score = list(subset), s
    return best


# --------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------


def _save(fig, save: str | os.PathLike | None):
    if save is not None:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save, dpi=150, bbox_inches="tight")
    return fig


def plot_confusion(cm, classes: Sequence[str], normalized: bool = True, title: str | None = None, save=None, ax=None):
    """Heatmap of a confusion matrix (counts; row-normalised when `normalized`)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    cm = np.asarray(cm, dtype=float)
    if normalized:
        row = cm.sum(axis=1, keepdims=True)
        data = np.divide(cm, row, out=np.zeros_like(cm), where=row > 0)
        fmt, vmax = ".2f", 1.0
    else:
        data, fmt, vmax = cm, ".0f", None
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.1 * len(classes) + 1.8))
    else:
        fig = ax.figure
    sns.heatmap(
        data,
        annot=True,
        fmt=fmt,
        cmap="Blues",
        vmin=0,
        vmax=vmax,
        xticklabels=classes,
        yticklabels=classes,
        square=True,
        cbar=True,
        ax=ax,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalized else "confusion matrix (counts)"))
    fig.tight_layout()
    return _save(fig, save)


def plot_reliability(
    probs,
    y_true,
    n_bins: int = 15,
    title: str | None = None,
    probs_after=None,
    save=None,
    labels=("before", "after temperature"),
):
    """Reliability diagram (accuracy vs confidence per bin), optionally before/after."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    series = [(probs, labels[0], "tab:red")]
    if probs_after is not None:
        series.append((probs_after, labels[1], "tab:blue"))
    width = 1.0 / n_bins
    for i, (p, lab, color) in enumerate(series):
        t = reliability_table(p, y_true, n_bins)
        ece = M.ece(p, y_true, n_bins)
        t = t[t["count"] > 0]
        centres = (t["lower"] + t["upper"]) / 2
        ax.bar(
            centres,
            t["accuracy"],
            width=width * (0.9 if len(series) == 1 else 0.45),
            align="center" if len(series) == 1 else ("edge" if i else "center"),
            alpha=0.55,
            color=color,
            edgecolor=color,
            label=f"{lab} (ECE {ece:.3f})",
        )
        ax.plot(t["confidence"], t["accuracy"], marker="o", ms=3, color=color, lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _save(fig, save)


def plot_confidence_hist(correct_conf, incorrect_conf, title: str | None = None, bins: int = 20, save=None):
    """Overlaid histograms of the confidence of correct and wrong predictions."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.linspace(0, 1, bins + 1)
    ax.hist(
        np.asarray(correct_conf),
        bins=edges,
        alpha=0.6,
        color="tab:green",
        label=f"correct (n={len(correct_conf)})",
        density=True,
    )
    ax.hist(
        np.asarray(incorrect_conf),
        bins=edges,
        alpha=0.6,
        color="tab:red",
        label=f"incorrect (n={len(incorrect_conf)})",
        density=True,
    )
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("density")
    ax.set_title(title or "confidence of correct vs incorrect predictions")
    ax.legend()
    fig.tight_layout()
    return _save(fig, save)
