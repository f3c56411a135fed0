"""emolib.error_analysis: saved predictions and metrics.json, on tiny stand-in models."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from tests.code.toy_study import copy_reports as _copy_reports


def test_predict_splits_probabilities(toy):
    from emolib import error_analysis

    prepared = toy["prepared"]
    out = error_analysis.predict_splits(toy["reports"] / "models" / "mobilenetv2", prepared, batch_size=16)
    assert set(out) == {"val", "test"}
    for split, probs in out.items():
        assert probs.shape == (len(prepared.paths(split)), 3)
        assert np.allclose(probs.sum(1), 1.0, atol=1e-6) and (probs >= 0).all()
    tta = error_analysis.predict_splits(toy["reports"] / "models" / "mobilenetv2", prepared, tta=True, splits=("test",))
    assert tta["test"].shape == out["test"].shape


def test_ensure_predictions_written_once_then_reused(toy, tmp_path, monkeypatch):
    from emolib import error_analysis, tta

    reports = _copy_reports(toy, tmp_path)
    d = reports / "models" / "cnn"
    prepared = toy["prepared"]
    first = error_analysis.ensure_predictions(d, prepared)
    assert set(first) == {"val", "test", "val_tta", "test_tta"}
    assert all(df.attrs["written"] for df in first.values())
    files = [
        d / f
        for f in ("test_predictions.csv", "val_predictions.csv", "test_predictions_tta.csv", "val_predictions_tta.csv")
    ]
    assert all(f.is_file() for f in files)
    df = pd.read_csv(d / "test_predictions.csv")
    assert list(df.columns) == ["path", "true", "predicted", "confidence", "p_angry", "p_sad", "p_surprise"]
    assert df["path"].tolist() == prepared.paths("test")
    mtimes = [f.stat().st_mtime_ns for f in files]
    second = error_analysis.ensure_predictions(d, prepared)
    assert not any(df.attrs["written"] for df in second.values())
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    pd.testing.assert_frame_equal(second["test"], first["test"], check_exact=False)
    # a newer model invalidates them
    future = time.time() + 5
    os.utime(d / "model.keras", (future, future))
    third = error_analysis.ensure_predictions(d, prepared, tta=False)
    assert third["test"].attrs["written"] and set(third) == {"val", "test"}
    # rows that no longer match the prepared split invalidate them too
    pd.read_csv(d / "val_predictions.csv").iloc[:-1].to_csv(d / "val_predictions.csv", index=False)
    os.utime(d / "val_predictions.csv", (future + 5, future + 5))
    assert error_analysis.ensure_predictions(d, prepared, tta=False)["val"].attrs["written"]
    # TTA files made with other views (or before the views were recorded) are made again
    assert json.loads((d / error_analysis.TTA_RECORD).read_text())["views"] == tta.POLICY
    past = time.time() - 100
    os.utime(d / "model.keras", (past, past))  # every file current again
    assert not any(df.attrs["written"] for df in error_analysis.ensure_predictions(d, prepared).values())
    monkeypatch.setattr(tta, "POLICY", "mirror only")
    changed = error_analysis.ensure_predictions(d, prepared)
    assert changed["val_tta"].attrs["written"] and changed["test_tta"].attrs["written"]
    assert not changed["val"].attrs["written"]
    assert json.loads((d / error_analysis.TTA_RECORD).read_text())["views"] == "mirror only"


def test_evaluate_model_schema(toy, tmp_path):
    from emolib import error_analysis

    reports = _copy_reports(toy, tmp_path)
    d = reports / "models" / "cnn"
    m = error_analysis.evaluate_model(d, toy["prepared"], n_boot=200, seed=1)
    on_disk = json.loads((d / "metrics.json").read_text())
    assert on_disk == m
    assert {
        "model_name",
        "classes",
        "test",
        "test_ci",
        "calibration",
        "tta",
        "errors",
        "inference_ms_per_image",
        "params",
        "training_time_s",
        "epochs",
        "weights_used",
        "synthetic",
        "data_fingerprint",
    } <= set(m)
    assert m["model_name"] == "cnn" and m["classes"] == ["angry", "sad", "surprise"]
    assert m["test"]["n"] == 45 and set(m["test"]["per_class"]) == set(m["classes"])
    for key in ("accuracy", "macro_f1"):
        ci = m["test_ci"][key]
        assert ci["low"] <= ci["point"] <= ci["high"]
    assert m["test_ci"]["accuracy"]["point"] == pytest.approx(m["test"]["accuracy"])
    assert {"ece_before", "ece_after", "nll_before", "nll_after", "temperature"} <= set(m["calibration"])
    assert m["calibration"]["fitted_on"] == "val" and m["calibration"]["temperature"] > 0
    assert {"accuracy", "macro_f1", "ece"} <= set(m["tta"])
    assert {"confidence_gap", "by_band"} <= set(m["errors"])
    assert [r["band"] for r in m["errors"]["by_band"]] == ["<0.6", "0.6-0.8", ">=0.8"]
    assert sum(r["n"] for r in m["errors"]["by_band"]) == 45
    assert m["inference_ms_per_image"] > 0 and m["epochs"] == 4 and m["params"]["total"] > 0
    assert m["synthetic"] is True and m["data_fingerprint"] == toy["prepared"].fingerprint
    text = error_analysis.written_reading(m)
    assert "SYNTHETIC" in text and "majority" in text
    assert list(error_analysis.headline_table(m).index)[:2] == ["accuracy", "balanced accuracy"]


def test_evaluate_refuses_other_classes(toy):
    import dataclasses

    from emolib import error_analysis

    other = dataclasses.replace(toy["prepared"], classes=("angry", "happy", "sad"))
    with pytest.raises(ValueError, match="trained on classes"):
        error_analysis.evaluate_model(toy["reports"] / "models" / "cnn", other, write=False)
