"""emolib.comparison: the comparison table and its views, on tiny stand-in models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tests.code.toy_study import copy_reports as _copy_reports


def _exact_mcnemar_p(b: int, c: int) -> float:
    """The two-sided exact binomial p-value, computed here independently of emolib."""
    from scipy import stats

    return 1.0 if b + c == 0 else min(1.0, float(stats.binomtest(b, b + c, 0.5).pvalue))


def test_comparison_table_rows_and_columns(toy, tmp_path):
    from emolib import comparison, reference

    reports = _copy_reports(toy, tmp_path)
    table, summary = comparison.comparison_table(reports, toy["prepared"], n_boot=200, seed=1)
    assert list(table.columns) == list(comparison.COMPARISON_COLUMNS)
    names = table["model"].tolist()
    assert names[:4] == ["cnn", "mobilenetv2", comparison.ENSEMBLE_ALL, comparison.ENSEMBLE_BEST]
    assert {"cnn + TTA", "mobilenetv2 + TTA", comparison.ENSEMBLE_BEST + " + TTA"} <= set(names)
    assert table.loc[table["model"] == comparison.ENSEMBLE_ALL, "members"].item() == "cnn+mobilenetv2"
    ext = table[table["kind"] == "external"]
    if reference.is_available():
        assert ext["model"].tolist() == [comparison.REFERENCE_LABEL]
        assert "not like-for-like" in comparison.REFERENCE_LABEL
        assert summary["reference"]["available"] is True
    else:
        assert len(ext) == 0 and any("reference skipped" in n for n in summary["notes"])
    models = table[table["kind"] == "model"].set_index("model")
    assert (
        (
            models[
                [
                    "accuracy",
                    "macro_precision",
                    "macro_recall",
                    "macro_f1",
                    "balanced_accuracy",
                    "ece",
                    "parameters",
                    "training_time_s",
                    "epochs",
                    "inference_ms_per_image",
                ]
            ].notna()
        )
        .all()
        .all()
    )
    assert (models["accuracy_ci_low"] <= models["accuracy"]).all()
    # a TTA row costs one single pass per view, and the column's description says how many
    from emolib import tta

    with_tta = table[table["kind"] == "model_tta"].set_index("members")["inference_ms_per_image"]
    single = models["inference_ms_per_image"]
    np.testing.assert_allclose(with_tta.loc[single.index], single * tta.N_VIEWS)
    assert f"{tta.N_VIEWS}x the single pass" in comparison.COMPARISON_COLUMNS["inference_ms_per_image"]
    assert (models["accuracy"] <= models["accuracy_ci_high"]).all()
    # files: one stable schema
    csv = pd.read_csv(reports / "comparison.csv")
    assert list(csv.columns) == list(comparison.COMPARISON_COLUMNS) and len(csv) == len(table)
    js = json.loads((reports / "comparison.json").read_text())
    assert js["columns"] == comparison.COMPARISON_COLUMNS and len(js["rows"]) == len(table)
    # every number as computed: the p-values were once rounded to 10 decimals (4.9e-13 -> 0.0)
    pairwise = pd.DataFrame(js["significance"]["pairwise"])
    for r in pairwise.itertuples():
        assert r.p_value == _exact_mcnemar_p(r.b, r.c)
    assert js["rows"][0]["macro_f1"] == float(table["macro_f1"].iloc[0])
    assert (reports / "models" / "mobilenetv2" / "metrics.json").is_file()  # evaluated on the way
    # per-class winners, significance, strengths & weaknesses
    f1 = comparison.per_class_tables(summary)["f1"]
    assert list(f1.index) == ["angry", "sad", "surprise"] and list(f1.columns) == ["cnn", "mobilenetv2", "winner"]
    for _, row in f1.iterrows():
        assert row["winner"] == max(("cnn", "mobilenetv2"), key=lambda n: row[n])
    matrix = comparison.significance_matrix(summary)
    assert list(matrix.index) == ["cnn", "mobilenetv2", comparison.ENSEMBLE_ALL, comparison.ENSEMBLE_BEST]
    assert np.allclose(matrix.values, matrix.values.T, equal_nan=True)
    sw = summary["strengths_weaknesses"]
    assert set(sw) == {"cnn", "mobilenetv2"}
    assert all(any(s.startswith("best emotion") for s in v["strengths"]) for v in sw.values())
    smallest = models["parameters"].astype(float).idxmin()
    assert any(s.startswith("smallest") for s in sw[smallest]["strengths"])
    assert comparison.comparison_reading(table, summary)
    tiny = pd.DataFrame(
        [[np.nan, 0.0, 0.3], [0.0, np.nan, 0.02], [0.3, 0.02, np.nan]], index=list("abc"), columns=list("abc")
    )
    labels = {t.get_text() for t in comparison.plot_significance(tiny).axes[0].texts}
    assert {"<0.001*", "0.300", "0.020*"} <= labels and "0.000*" not in labels  # an underflowed p is not "0"
    for fig in (
        comparison.plot_accuracy_vs_size(table),
        comparison.plot_accuracy_vs_latency(table),
        comparison.plot_significance(matrix),
        comparison.plot_per_class(f1),
    ):
        assert fig.axes


def test_best_subset_is_chosen_on_validation(toy, tmp_path):
    """Validation favours mobilenetv2, test favours cnn: the subset must follow validation."""
    from emolib import comparison, error_analysis, evaluate

    reports = _copy_reports(toy, tmp_path)
    prepared = toy["prepared"]
    classes = list(prepared.classes)
    eye = np.eye(3) * 0.9 + 0.1 / 3
    for name in ("cnn", "mobilenetv2"):
        d = reports / "models" / name
        for split in ("val", "test"):
            _, y = prepared.split(split)
            good = (name == "mobilenetv2") == (split == "val")
            probs = eye[y] if good else eye[(y + 1) % 3]
            for tta in (False, True):
                evaluate.save_predictions(
                    evaluate.predictions_frame(prepared.paths(split), y, probs, classes),
                    error_analysis.prediction_file(d, split, tta),
                )
    table, summary = comparison.comparison_table(reports, prepared, n_boot=100, seed=1, include_reference=False)
    assert summary["best_subset"]["members"] == ["mobilenetv2"] and summary["best_subset"]["chosen_on"] == "val"
    acc = table.set_index("model")["accuracy"]
    assert acc["cnn"] == 1.0 and acc["mobilenetv2"] == 0.0
    assert acc[comparison.ENSEMBLE_BEST] == 0.0  # what validation chose, however it does on test
    assert table.set_index("model").loc[comparison.ENSEMBLE_BEST, "members"] == "mobilenetv2"


def test_frame_json_keeps_every_float_whole():
    from emolib.runinfo import frame_json, to_json

    df = pd.DataFrame({"name": ["a", "b", "c"], "p": [4.943755429761924e-13, 3.0e-60, np.nan], "n": [1, 2, 3]})
    rows = frame_json(df)
    assert rows == [
        {"name": "a", "p": 4.943755429761924e-13, "n": 1},
        {"name": "b", "p": 3.0e-60, "n": 2},
        {"name": "c", "p": None, "n": 3},
    ]
    assert json.loads(to_json(rows)) == rows  # strict JSON, round trip exact
    matrix = pd.DataFrame([[np.nan, 4.9e-13], [4.9e-13, np.nan]], index=["x", "y"], columns=["x", "y"])
    assert frame_json(matrix, orient="index") == {"x": {"x": None, "y": 4.9e-13}, "y": {"x": 4.9e-13, "y": None}}


def test_scatter_labels_do_not_print_over_each_other():
    from emolib import comparison

    # the smoke run's worst case: every model at one accuracy, TTA variants beside their models
    names = ["cnn", "cnn + TTA", "deepcnn", "deepcnn + TTA", "ensemble (all)", "vgg16", "vgg16 + TTA", "mobilenetv2"]
    table = pd.DataFrame(
        {
            "model": names,
            "kind": ["model", "model_tta", "model", "model_tta", "ensemble", "model", "model_tta", "model"],
            "accuracy": [0.333, 0.333, 0.333, 0.330, 0.333, 0.333, 0.333, 0.3],
            "accuracy_ci_low": [0.25] * 8,
            "accuracy_ci_high": [0.42] * 8,
            "inference_ms_per_image": [1.2, 1.25, 3.2, 19.5, 23.0, 10.2, 61.0, 1.19],
        }
    )
    fig = comparison.plot_accuracy_vs_latency(table)
    texts = fig.axes[0].texts
    assert sorted(t.get_text() for t in texts) == sorted(names)  # each point labelled once
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, a in enumerate(boxes):
        assert a.x1 <= fig.axes[0].get_window_extent(renderer).x1 + 1  # none runs off the axes
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
