"""emolib.study: saved predictions, metrics.json and the comparison table, on tiny stand-in models."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CLASSES = "angry,sad,surprise"
NAMES = ("cnn", "mobilenetv2")


def build_toy_study(root: Path, names=NAMES, epochs: int = 4) -> dict:
    """A synthetic dataset, its prepared splits (smoke profile) and tiny trained models
    under root/reports/models/<name>/ with model.keras, history.csv and model.json.
    The architectures are stand-ins: the study code must not care."""
    import keras

    from emolib import config, data, study
    from emolib.synthetic import make_synthetic_dataset

    data_dir = make_synthetic_dataset(root / "faces", classes=config.parse_classes(CLASSES), train_per_class=40,
                                      test_per_class=15, seed=3)
    reports = root / "reports"
    cfg = config.resolve(profile="smoke", classes=CLASSES, data_dir=data_dir, seed=1, reports_dir=reports)
    prepared = data.prepare(cfg, progress=False)
    tr_x, tr_y = prepared.split("train")
    for i, name in enumerate(names):
        keras.utils.set_random_seed(10 + i)
        size = 48 if i == 0 else 32  # different input sizes, as cnn and the backbones have
        model = keras.Sequential([
            keras.Input((size, size, 1)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8 + 4 * i, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(prepared.classes), activation="softmax"),
        ], name=name)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        t0 = time.time()
        hist = model.fit(study.resize_pixels(tr_x, size), tr_y, epochs=epochs, batch_size=32, verbose=0)
        wall = time.time() - t0
        out = reports / "models" / name
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "model.keras")
        pd.DataFrame(hist.history).assign(epoch=range(1, epochs + 1)).to_csv(out / "history.csv", index=False)
        n = int(model.count_params())
        card = {"model_name": name, "classes": list(prepared.classes), "input_shape": [size, size, 1],
                "weights_used": "none", "params": {"total": n, "trainable": n},
                "epochs_per_stage": [{"name": "train", "epochs_run": epochs, "learning_rate": 1e-2,
                                      "trainable_params": n}],
                "wall_time_s": round(wall, 2), "seed": 1, "data_fingerprint": prepared.fingerprint,
                "profile": "smoke", "val_metrics": {}, "synthetic": True}
        (out / "model.json").write_text(json.dumps(card))
    return {"data_dir": data_dir, "reports": reports, "cfg": cfg, "prepared": prepared}


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    return build_toy_study(tmp_path_factory.mktemp("study"))


def _copy_reports(toy, tmp_path) -> Path:
    dst = tmp_path / "reports"
    shutil.copytree(toy["reports"], dst)
    return dst


def test_predict_splits_probabilities(toy):
    from emolib import study

    prepared = toy["prepared"]
    out = study.predict_splits(toy["reports"] / "models" / "mobilenetv2", prepared, batch_size=16)
    assert set(out) == {"val", "test"}
    for split, probs in out.items():
        assert probs.shape == (len(prepared.paths(split)), 3)
        assert np.allclose(probs.sum(1), 1.0, atol=1e-6) and (probs >= 0).all()
    tta = study.predict_splits(toy["reports"] / "models" / "mobilenetv2", prepared, tta=True, splits=("test",))
    assert tta["test"].shape == out["test"].shape


def test_ensure_predictions_written_once_then_reused(toy, tmp_path):
    from emolib import study

    reports = _copy_reports(toy, tmp_path)
    d = reports / "models" / "cnn"
    prepared = toy["prepared"]
    first = study.ensure_predictions(d, prepared)
    assert set(first) == {"val", "test", "val_tta", "test_tta"}
    assert all(df.attrs["written"] for df in first.values())
    files = [d / f for f in ("test_predictions.csv", "val_predictions.csv", "test_predictions_tta.csv",
                             "val_predictions_tta.csv")]
    assert all(f.is_file() for f in files)
    df = pd.read_csv(d / "test_predictions.csv")
    assert list(df.columns) == ["path", "true", "predicted", "confidence", "p_angry", "p_sad", "p_surprise"]
    assert df["path"].tolist() == prepared.paths("test")
    mtimes = [f.stat().st_mtime_ns for f in files]
    second = study.ensure_predictions(d, prepared)
    assert not any(df.attrs["written"] for df in second.values())
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    pd.testing.assert_frame_equal(second["test"], first["test"], check_exact=False)
    # a newer model invalidates them
    future = time.time() + 5
    os.utime(d / "model.keras", (future, future))
    third = study.ensure_predictions(d, prepared, tta=False)
    assert third["test"].attrs["written"] and set(third) == {"val", "test"}
    # rows that no longer match the prepared split invalidate them too
    pd.read_csv(d / "val_predictions.csv").iloc[:-1].to_csv(d / "val_predictions.csv", index=False)
    os.utime(d / "val_predictions.csv", (future + 5, future + 5))
    assert study.ensure_predictions(d, prepared, tta=False)["val"].attrs["written"]


def test_evaluate_model_schema(toy, tmp_path):
    from emolib import study

    reports = _copy_reports(toy, tmp_path)
    d = reports / "models" / "cnn"
    m = study.evaluate_model(d, toy["prepared"], n_boot=200, seed=1)
    on_disk = json.loads((d / "metrics.json").read_text())
    assert on_disk == m
    assert {"model_name", "classes", "test", "test_ci", "calibration", "tta", "errors", "inference_ms_per_image",
            "params", "training_time_s", "epochs", "weights_used", "synthetic", "data_fingerprint"} <= set(m)
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
    text = study.written_reading(m)
    assert "SYNTHETIC" in text and "majority" in text
    assert list(study.headline_table(m).index)[:2] == ["accuracy", "balanced accuracy"]


def test_evaluate_refuses_other_classes(toy):
    import dataclasses

    from emolib import study

    other = dataclasses.replace(toy["prepared"], classes=("angry", "happy", "sad"))
    with pytest.raises(ValueError, match="trained on classes"):
        study.evaluate_model(toy["reports"] / "models" / "cnn", other, write=False)


def test_comparison_table_rows_and_columns(toy, tmp_path):
    from emolib import reference, study

    reports = _copy_reports(toy, tmp_path)
    table, summary = study.comparison_table(reports, toy["prepared"], n_boot=200, seed=1)
    assert list(table.columns) == list(study.COMPARISON_COLUMNS)
    names = table["model"].tolist()
    assert names[:4] == ["cnn", "mobilenetv2", study.ENSEMBLE_ALL, study.ENSEMBLE_BEST]
    assert {"cnn + TTA", "mobilenetv2 + TTA", study.ENSEMBLE_BEST + " + TTA"} <= set(names)
    assert table.loc[table["model"] == study.ENSEMBLE_ALL, "members"].item() == "cnn+mobilenetv2"
    ext = table[table["kind"] == "external"]
    if reference.is_available():
        assert ext["model"].tolist() == [study.REFERENCE_LABEL] and "not like-for-like" in study.REFERENCE_LABEL
        assert summary["reference"]["available"] is True
    else:
        assert len(ext) == 0 and any("reference skipped" in n for n in summary["notes"])
    models = table[table["kind"] == "model"].set_index("model")
    assert (models[["accuracy", "precision_macro", "recall_macro", "f1_macro", "balanced_accuracy", "ece",
                    "parameters", "training_time_s", "epochs", "inference_ms_per_image"]].notna()).all().all()
    assert (models["accuracy_ci_low"] <= models["accuracy"]).all() and (models["accuracy"] <= models["accuracy_ci_high"]).all()
    # files: one stable schema
    csv = pd.read_csv(reports / "comparison.csv")
    assert list(csv.columns) == list(study.COMPARISON_COLUMNS) and len(csv) == len(table)
    js = json.loads((reports / "comparison.json").read_text())
    assert js["columns"] == study.COMPARISON_COLUMNS and len(js["rows"]) == len(table)
    assert (reports / "models" / "mobilenetv2" / "metrics.json").is_file()  # evaluated on the way
    # per-class winners, significance, strengths & weaknesses
    f1 = study.per_class_tables(summary)["f1"]
    assert list(f1.index) == ["angry", "sad", "surprise"] and list(f1.columns) == ["cnn", "mobilenetv2", "winner"]
    for c, row in f1.iterrows():
        assert row["winner"] == max(("cnn", "mobilenetv2"), key=lambda n: row[n])
    matrix = study.significance_matrix(summary)
    assert list(matrix.index) == ["cnn", "mobilenetv2", study.ENSEMBLE_ALL, study.ENSEMBLE_BEST]
    assert np.allclose(matrix.values, matrix.values.T, equal_nan=True)
    sw = summary["strengths_weaknesses"]
    assert set(sw) == {"cnn", "mobilenetv2"}
    assert all(any(s.startswith("best emotion") for s in v["strengths"]) for v in sw.values())
    smallest = models["parameters"].astype(float).idxmin()
    assert any(s.startswith("smallest") for s in sw[smallest]["strengths"])
    assert study.comparison_reading(table, summary)
    for fig in (study.plot_accuracy_vs_size(table), study.plot_accuracy_vs_latency(table),
                study.plot_significance(matrix), study.plot_per_class(f1)):
        assert fig.axes


def test_best_subset_is_chosen_on_validation(toy, tmp_path):
    """Validation favours mobilenetv2, test favours cnn: the subset must follow validation."""
    from emolib import evaluate, study

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
                evaluate.save_predictions(evaluate.predictions_frame(prepared.paths(split), y, probs, classes),
                                          study.prediction_file(d, split, tta))
    table, summary = study.comparison_table(reports, prepared, n_boot=100, seed=1, include_reference=False)
    assert summary["best_subset"]["members"] == ["mobilenetv2"] and summary["best_subset"]["chosen_on"] == "val"
    acc = table.set_index("model")["accuracy"]
    assert acc["cnn"] == 1.0 and acc["mobilenetv2"] == 0.0
    assert acc[study.ENSEMBLE_BEST] == 0.0  # what validation chose, however it does on test
    assert table.set_index("model").loc[study.ENSEMBLE_BEST, "members"] == "mobilenetv2"
