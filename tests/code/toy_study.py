"""Tiny stand-in models for the error-analysis and comparison tests (and their notebooks).

One definition, used by tests/code/conftest.py (the `toy` fixture) and
tests/model/test_study_notebooks.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

CLASSES = "angry,sad,surprise"
NAMES = ("cnn", "mobilenetv2")


def build_toy_study(root: Path, names=NAMES, epochs: int = 4) -> dict:
    """A synthetic dataset, its prepared splits (smoke profile) and tiny trained models
    under root/reports/models/<name>/ with model.keras, history.csv and model.json.
    The architectures are stand-ins: the study code must not care."""
    import keras

    from emolib import config, data, error_analysis
    from emolib.synthetic import make_synthetic_dataset

    data_dir = make_synthetic_dataset(
        root / "faces", classes=config.parse_classes(CLASSES), train_per_class=40, test_per_class=15, seed=3
    )
    reports = root / "reports"
    cfg = config.resolve(profile="smoke", classes=CLASSES, data_dir=data_dir, seed=1, reports_dir=reports)
    prepared = data.prepare(cfg, progress=False)
    tr_x, tr_y = prepared.split("train")
    for i, name in enumerate(names):
        keras.utils.set_random_seed(10 + i)
        size = 48 if i == 0 else 32  # different input sizes, as cnn and the backbones have
        model = keras.Sequential(
            [
                keras.Input((size, size, 1)),
                keras.layers.Rescaling(1 / 255.0),
                keras.layers.Conv2D(8 + 4 * i, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(16, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(len(prepared.classes), activation="softmax"),
            ],
            name=name,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        t0 = time.time()
        hist = model.fit(error_analysis.resize_pixels(tr_x, size), tr_y, epochs=epochs, batch_size=32, verbose=0)
        wall = time.time() - t0
        out = reports / "models" / name
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "model.keras")
        pd.DataFrame(hist.history).assign(epoch=range(1, epochs + 1)).to_csv(out / "history.csv", index=False)
        n = int(model.count_params())
        card = {
            "model_name": name,
            "classes": list(prepared.classes),
            "input_shape": [size, size, 1],
            "weights_used": "none",
            "params": {"total": n, "trainable": n},
            "epochs_per_stage": [{"name": "train", "epochs_run": epochs, "learning_rate": 1e-2, "trainable_params": n}],
            "wall_time_s": round(wall, 2),
            "seed": 1,
            "data_fingerprint": prepared.fingerprint,
            "profile": "smoke",
            "val_metrics": {},
            "synthetic": True,
        }
        (out / "model.json").write_text(json.dumps(card))
    return {"data_dir": data_dir, "reports": reports, "cfg": cfg, "prepared": prepared}


def copy_reports(toy, tmp_path) -> Path:
    """A private copy of the toy reports folder (tests that write files use it)."""
    import shutil

    dst = tmp_path / "reports"
    shutil.copytree(toy["reports"], dst)
    return dst
