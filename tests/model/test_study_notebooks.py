"""The error-analysis and comparison notebooks run end to end under papermill (smoke profile)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.code import toy_study
from tests.helpers import NOTEBOOKS, run_notebook


def _run(name, out_dir, **params):
    return run_notebook(name, out_dir / f"{name.rsplit('.', 1)[0]}-{params.get('model_name', 'all')}.ipynb", **params)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return {**toy_study.build_toy_study(tmp_path_factory.mktemp("study_nb")), "classes": toy_study.CLASSES}


def _params(toy):
    return dict(
        profile="smoke",
        classes=toy["classes"],
        data_dir=str(toy["data_dir"]),
        seed=1,
        reports_dir=str(toy["reports"]),
        n_boot=200,
    )


def test_notebooks_have_parameters_cell():
    import nbformat

    for name in ("20_error_analysis.ipynb", "30_comparison.ipynb"):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", [])
        assert nb.metadata["kernelspec"]["name"] == "emolib"
        assert all(not c.get("outputs") for c in code)


@pytest.mark.slow
def test_error_analysis_then_comparison_notebooks(toy, tmp_path):
    from emolib import comparison

    reports = toy["reports"]
    nb = _run("20_error_analysis.ipynb", tmp_path, model_name="cnn", **_params(toy))
    text = json.dumps(nb)
    assert "SYNTHETIC DATA" in text
    metrics = json.loads((reports / "models" / "cnn" / "metrics.json").read_text())
    assert metrics["model_name"] == "cnn" and metrics["synthetic"] is True
    for f in ("test_predictions.csv", "val_predictions.csv", "test_predictions_tta.csv"):
        assert (reports / "models" / "cnn" / f).is_file()
    figures = {p.name for p in (reports / "figures").glob("*.png")}
    assert {
        f"error_cnn_{k}.png"
        for k in ("confusion", "confidence", "confident_mistakes", "reliability", "gradcam_errors", "gradcam_correct")
    } <= figures

    nb = _run("30_comparison.ipynb", tmp_path, **_params(toy))
    assert "SYNTHETIC DATA" in json.dumps(nb)
    csv = pd.read_csv(reports / "comparison.csv")
    assert list(csv.columns) == list(comparison.COMPARISON_COLUMNS)
    assert {"cnn", "mobilenetv2", comparison.ENSEMBLE_ALL, comparison.ENSEMBLE_BEST} <= set(csv["model"])
    summary = json.loads((reports / "comparison.json").read_text())
    assert summary["models"] == ["cnn", "mobilenetv2"] and summary["synthetic"] is True
    assert (reports / "models" / "mobilenetv2" / "metrics.json").is_file()
    figures = {p.name for p in (reports / "figures").glob("*.png")}
    assert {
        "comparison_significance.png",
        "comparison_per_class_f1.png",
        "comparison_accuracy_vs_size.png",
        "comparison_accuracy_vs_latency.png",
    } <= figures
    run = json.loads((reports / "run.json").read_text())
    assert {"evaluate_cnn", "compare"} <= set(run["stages"])
