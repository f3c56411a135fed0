"""TFLite (float32, float16, int8) and ONNX exports agree with the Keras model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from emolib import cli  # noqa: E402
from emolib import export as ex  # noqa: E402
from emolib.predict import load_predictor  # noqa: E402

CLASSES = ["angry", "sad", "surprise"]
AGREEMENT = 0.995


def random_faces(n: int, seed: int = 0) -> np.ndarray:
    """Random-ish raw-pixel images: varied brightness, contrast, texture and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48] / 48
    out = []
    for _ in range(n):
        img = (rng.uniform(20, 235)
               + rng.uniform(0, 100) * np.sin(rng.uniform(1, 12) * xx + rng.uniform(0, 6)) * np.cos(rng.uniform(1, 12) * yy)
               + rng.normal(0, rng.uniform(0, 40), (48, 48)))
        out.append(np.clip(img, 0, 255))
    return np.stack(out).astype(np.float32)[..., None]


def make_model_dir(path: Path) -> Path:
    """A tiny conv net whose output bias is centred so that all classes occur on random_faces."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    feats = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(CLASSES), activation="softmax")(feats)
    model = keras.Model(inp, out)
    f = keras.Model(inp, feats)(random_faces(64, seed=99)).numpy()
    kernel, _ = model.layers[-1].get_weights()
    kernel = kernel * 6 / (f.std(0, keepdims=True).T + 1e-3)
    logits = f @ kernel
    model.layers[-1].set_weights([kernel, -np.median(logits, axis=0)])
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / "model.keras")
    (path / "model.json").write_text(json.dumps({"model_name": "tiny", "classes": CLASSES, "input_shape": [48, 48, 1]}))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("export") / "tiny")


@pytest.fixture(scope="module")
def inputs_and_reference(model_dir):
    x = random_faces(200, seed=1)
    ref = load_predictor(model_dir).predict_arrays(x)
    assert len(np.unique(ref.argmax(1))) >= 2, "the stand-in model should not predict one class only"
    return x, ref


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("calib")
    for i, img in enumerate(random_faces(40, seed=2)):
        sub = d / CLASSES[i % 3]
        sub.mkdir(exist_ok=True)
        Image.fromarray(img[..., 0].astype(np.uint8)).save(sub / f"{i}.png")
    return d


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


@pytest.mark.parametrize("quantize", ["none", "float16"])
def test_tflite_float_agrees(model_dir, inputs_and_reference, quantize, tmp_path):
    x, ref = inputs_and_reference
    info = ex.export_model(model_dir, "tflite", quantize, out=tmp_path / f"m_{quantize}.tflite")
    assert Path(info["path"]).stat().st_size == info["bytes"] > 0
    got = ex.exported_predict(info["path"], x)
    assert got.shape == ref.shape
    assert agreement(ref, got) >= AGREEMENT
    np.testing.assert_allclose(got, ref, atol=1e-5 if quantize == "none" else 2e-2)
    # a free batch size: one image, then many again
    np.testing.assert_allclose(ex.exported_predict(info["path"], x[:1]), got[:1], atol=1e-5)
    np.testing.assert_allclose(ex.exported_predict(info["path"], x[:7]), got[:7], atol=1e-5)


def test_tflite_int8_runs(model_dir, inputs_and_reference, calibration_dir, tmp_path):
    x, ref = inputs_and_reference
    dyn = ex.export_model(model_dir, "tflite", "int8", out=tmp_path / "dyn.tflite")
    assert "dynamic-range" in dyn["how"]
    full = ex.export_model(model_dir, "tflite", "int8", out=tmp_path / "full.tflite", data_dir=calibration_dir)
    assert "full int8" in full["how"] and "40 images" in full["how"]
    for info in (dyn, full):
        got = ex.exported_predict(info["path"], x)
        assert got.shape == ref.shape and np.isfinite(got).all()
        np.testing.assert_allclose(got.sum(1), 1.0, atol=0.02)
        assert agreement(ref, got) >= 0.8  # quantized: close, not identical


def test_onnx_agrees(model_dir, inputs_and_reference, tmp_path):
    if not ex.onnx_available():
        pytest.skip("ONNX export needs tf2onnx and onnx (pip install tf2onnx onnx onnxruntime)")
    pytest.importorskip("onnxruntime", reason="running the .onnx file needs onnxruntime")
    x, ref = inputs_and_reference
    info = ex.export_model(model_dir, "onnx", out=tmp_path / "m.onnx")
    got = ex.exported_predict(info["path"], x)
    assert agreement(ref, got) >= AGREEMENT
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_export_errors(model_dir, tmp_path):
    with pytest.raises(ex.ExportError, match="TFLite only"):
        ex.export_model(model_dir, "onnx", "int8")
    with pytest.raises(ex.ExportError, match="format"):
        ex.export_model(model_dir, "coreml")
    with pytest.raises(FileNotFoundError):
        ex.exported_predict(tmp_path / "none.tflite", np.zeros((1, 48, 48, 1)))


def test_cli_export(capsys, model_dir, tmp_path):
    code = cli.main(["export", "--model", str(model_dir), "--format", "tflite", "--quantize", "float16", "--check", "16"])
    out = capsys.readouterr().out
    assert code == 0
    assert (model_dir / "model_float16.tflite").is_file()  # the default output path
    assert "agreement with Keras on 16 random images: top-1 100.0%" in out
    code = cli.main(["export", "--model", str(tmp_path / "nope"), "--format", "tflite"])
    assert code == 1 and "not found" in capsys.readouterr().err
