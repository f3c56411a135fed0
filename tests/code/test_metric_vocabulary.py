"""One metrics vocabulary: error analysis, the comparison and `emolib evaluate --json` use the same keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emolib import metrics
from tests.code.toy_study import copy_reports

LEGACY = ("f1_macro", "precision_macro", "recall_macro", "macro_f1_score", "macro_avg_f1")


def test_metric_functions_follow_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for k in (2, 3, 7):
        y, p = rng.integers(0, k, 200), rng.integers(0, k - 1, 200)  # class k-1 never predicted
        labels = list(range(k))
        assert metrics.accuracy(y, p) == pytest.approx(sk.accuracy_score(y, p))
        assert metrics.balanced_accuracy(y, p, k) == pytest.approx(sk.balanced_accuracy_score(y, p))
        for ours, avg, fn in (
            (metrics.macro_f1, "macro", sk.f1_score),
            (metrics.weighted_f1, "weighted", sk.f1_score),
            (metrics.macro_precision, "macro", sk.precision_score),
            (metrics.macro_recall, "macro", sk.recall_score),
        ):
            assert ours(y, p, k) == pytest.approx(fn(y, p, labels=labels, average=avg, zero_division=0))
    # a class absent from truth and prediction still counts (fixed label set 0..K-1)
    assert metrics.macro_f1([0, 1], [0, 1], n_classes=3) == pytest.approx(2 / 3)
    assert np.isnan(metrics.macro_f1([], []))
    probs = np.array([[0.9, 0.1], [0.4, 0.6]])
    assert metrics.nll(probs, [0, 0]) == pytest.approx(-(np.log(0.9) + np.log(0.4)) / 2)
    assert 0 <= metrics.ece(probs, [0, 0]) <= 1


def test_error_analysis_comparison_and_cli_share_the_metric_keys(toy, tmp_path, capsys):
    from emolib import cli, comparison

    reports = copy_reports(toy, tmp_path)
    table, summary = comparison.comparison_table(
        reports, toy["prepared"], n_boot=50, seed=1, include_reference=False, include_tta=False
    )
    model_dir = reports / "models" / "cnn"
    metrics_json = json.loads((model_dir / "metrics.json").read_text())
    comparison_json = json.loads((reports / "comparison.json").read_text())
    out_json = tmp_path / "eval.json"
    assert (
        cli.main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--data",
                str(toy["data_dir"] / "test"),
                "--faces",
                "off",
                "--no-progress",
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    capsys.readouterr()
    cli_json = json.loads(out_json.read_text())

    shared = set(metrics.SHARED_KEYS)
    ea_keys = set(metrics_json["test"])
    cmp_keys = set(comparison_json["rows"][0]) & (shared | set(metrics.EXTRA_KEYS))
    cli_keys = set(cli_json["metrics"])
    assert shared <= ea_keys and shared <= set(comparison_json["rows"][0]) and shared <= cli_keys
    assert ea_keys & (shared | set(metrics.EXTRA_KEYS)) >= shared
    assert cmp_keys >= shared | {"accuracy_ci_low", "accuracy_ci_high", "macro_f1_ci_low", "macro_f1_ci_high"}
    assert set(metrics_json["test_ci"]) >= {"accuracy", "macro_f1"} and {"accuracy", "macro_f1"} <= set(cli_json)
    for doc in (metrics_json, comparison_json, cli_json):
        assert doc["schema_version"] == metrics.SCHEMA_VERSION
        text = json.dumps(doc)
        assert not [k for k in LEGACY if f'"{k}"' in text]
    # the same numbers under the same key: the comparison row of cnn is metrics.json's test block
    row = next(r for r in comparison_json["rows"] if r["model"] == "cnn")
    for key in shared:
        assert row[key] == pytest.approx(metrics_json["test"][key])


def test_p_values_that_underflowed_do_not_read_as_zero():
    from emolib.metrics import format_p_value

    assert format_p_value(0.0) == "< 2.2e-308"  # an exact test with ~1,500 against ~50 discordant pairs
    assert format_p_value(5e-324) == "< 2.2e-308"  # subnormal: already imprecise
    assert format_p_value(4.45e-12) == "4.45e-12" and format_p_value(0.05) == "0.05"
    assert format_p_value(float("nan")) == ""
