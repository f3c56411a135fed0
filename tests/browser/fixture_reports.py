"""A tiny reports/ folder for the browser tests: two stand-in models trained for seconds on
a synthetic dataset, with the files the pipeline writes (model.keras, model.json,
history.csv, test_predictions.csv, run.json, comparison.json, bench/latency.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLASSES = ("angry", "sad", "surprise")


def _tiny_cnn(seed: int, n_classes: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((48, 48, 1))
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.Conv2D(6, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(8, 3, activation="relu", padding="same", name="last_conv")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_tiny_reports(root: Path, *, models=("cnn", "mobilenetv2"), epochs=(3, 1)) -> Path:
    """Write <root>/reports (returned) and <root>/data (the synthetic images it points at)."""
    import pandas as pd

    from emolib.images import read_image
    from emolib.synthetic import make_synthetic_dataset

    root = Path(root)
    data = make_synthetic_dataset(root / "data", classes=CLASSES, train_per_class=40, test_per_class=8, seed=3)
    reports = root / "reports"
    (reports / "models").mkdir(parents=True, exist_ok=True)

    def load(split):
        paths, ys = [], []
        for k, c in enumerate(CLASSES):
            for p in sorted((data / split / c).glob("*.png")):
                paths.append(str(p.resolve()))
                ys.append(k)
        x = np.stack([read_image(p, mode="L", size=48) for p in paths]).astype(np.float32)[..., None]
        return paths, x, np.array(ys)

    _, x_tr, y_tr = load("train")
    paths, x_te, y_te = load("test")
    rows = []
    for i, (name, ep) in enumerate(zip(models, epochs)):
        d = reports / "models" / name
        d.mkdir(parents=True, exist_ok=True)
        model = _tiny_cnn(i, len(CLASSES))
        h = model.fit(x_tr, y_tr, epochs=ep, batch_size=32, verbose=0, validation_split=0.2)
        model.save(d / "model.keras")
        hist = pd.DataFrame(h.history)
        hist.insert(0, "epoch_global", np.arange(1, len(hist) + 1))
        hist.insert(0, "stage_index", 0)
        hist.to_csv(d / "history.csv", index=False)
        (d / "model.json").write_text(
            json.dumps(
                {
                    "model_name": name,
                    "classes": list(CLASSES),
                    "input_shape": [48, 48, 1],
                    "epochs": ep,
                    "weights_used": "none",
                    "training_time_s": 1.0,
                    "synthetic": True,
                }
            )
        )
        probs = model.predict(x_te, verbose=0)
        pred = probs.argmax(1)
        df = pd.DataFrame(
            {
                "path": paths,
                "true": [CLASSES[k] for k in y_te],
                "predicted": [CLASSES[k] for k in pred],
                "confidence": probs.max(1),
            }
        )
        for k, c in enumerate(CLASSES):
            df[f"p_{c}"] = probs[:, k]
        df.to_csv(d / "test_predictions.csv", index=False)
        acc = float((pred == y_te).mean())
        rows.append(
            {
                "model": name,
                "kind": "model",
                "accuracy": acc,
                "accuracy_ci_low": max(0, acc - 0.1),
                "accuracy_ci_high": min(1, acc + 0.1),
                "macro_f1": acc,
                "macro_f1_ci_low": max(0, acc - 0.1),
                "macro_f1_ci_high": min(1, acc + 0.1),
                "ece": 0.1,
                "note": "tiny stand-in model",
            }
        )
    a, b = models[0], models[1]
    (reports / "comparison.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "models": list(models),
                "classes": list(CLASSES),
                "synthetic": True,
                "significance": {
                    "test": "exact McNemar, Holm-adjusted",
                    "alpha": 0.05,
                    "matrix_p_holm": {a: {a: None, b: 0.5}, b: {a: 0.5, b: None}},
                },
                "per_class": {"f1": {c: {a: 0.5, b: 0.4, "winner": a} for c in CLASSES}},
                "notes": [],
            }
        )
    )
    (reports / "bench").mkdir(exist_ok=True)
    (reports / "bench" / "latency.json").write_text(
        json.dumps({"rows": [{"model": m, "batch_size": 1, "ms_per_image": 1.5} for m in models], "device": "cpu"})
    )
    (reports / "run.json").write_text(
        json.dumps(
            {
                "params": {
                    "profile": {"name": "smoke", "description": "tests"},
                    "classes": list(CLASSES),
                    "data_dir": str(data),
                    "seed": 0,
                },
                "data": {"data_dir": str(data), "synthetic": True, "fingerprint": "test"},
                "versions": {"python": "3"},
                "updated": "now",
            }
        )
    )
    return reports
