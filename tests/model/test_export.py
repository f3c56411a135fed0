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
    """Random-ish raw-pixel 48x48 images: varied brightness, contrast, texture and noise."""
    return ex.probe_images(48, n, seed)


def save_model_dir(model, path: Path, name: str) -> Path:
    """A model directory as training leaves it: model.keras and a minimal model card."""
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / "model.keras")
    (path / "model.json").write_text(
        json.dumps({"model_name": name, "classes": CLASSES, "input_shape": list(model.input_shape[1:])})
    )
    return path


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
    return save_model_dir(model, path, "tiny")


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
    code = cli.main(
        ["export", "--model", str(model_dir), "--format", "tflite", "--quantize", "float16", "--check", "16"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (model_dir / "model_float16.tflite").is_file()  # the default output path
    assert "agreement with Keras on 16 random images: top-1 100.0%" in out
    code = cli.main(["export", "--model", str(tmp_path / "nope"), "--format", "tflite"])
    assert code == 1 and "not found" in capsys.readouterr().err


def unnormalised_vgg16_dir(path: Path) -> Path:
    """A VGG16 shaped like one trained from scratch: no normalisation inside, pooled features
    ~1e6 and a head BatchNorm whose moving statistics match them (variances ~1e12: the case
    that broke float16 exports). The scale sits in the last convolution; the rest is random init."""
    from emolib import models

    keras.utils.set_random_seed(0)
    model = models.build_model("vgg16", input_shape=(32, 32, 1), n_classes=3, weights="none")
    last = model.get_layer("backbone").get_layer("block5_conv3")
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 1e8, bias * 1e8])
    feats = keras.Model(model.input, model.get_layer("head_gap").output).predict(
        ex.probe_images(32, 128, seed=5), verbose=0
    )
    assert np.median(feats.std(0)) > 1e5, "the stand-in should have huge features"
    bn = model.get_layer("head_bn0")
    gamma, beta, _, _ = bn.get_weights()
    # a variance floor keeps near-constant features from dominating after normalisation
    bn.set_weights([gamma, beta, feats.mean(0), feats.var(0) + (0.1 * np.median(feats.std(0))) ** 2])
    dense = model.get_layer("predictions")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 5, bias])  # confident, varied predictions make agreement a real test
    return save_model_dir(model, path, "vgg16")


@pytest.fixture(scope="module")
def vgg_dir(tmp_path_factory) -> Path:
    return unnormalised_vgg16_dir(tmp_path_factory.mktemp("vgg") / "vgg16")


def test_quantization_safe_copy_is_exact(vgg_dir):
    model = keras.models.load_model(vgg_dir / "model.keras", safe_mode=True)
    safe, changes = ex.quantization_safe_copy(model)
    assert changes and "head_bn0" in changes[0]
    assert safe is not model
    x = ex.probe_images(32, 64, seed=6)
    ref = model.predict(x, verbose=0)
    assert len(np.unique(ref.argmax(1))) >= 2
    np.testing.assert_allclose(safe.predict(x, verbose=0), ref, atol=1e-3)  # exact up to float32 rounding
    # the features the head sees now have about unit scale
    feats = keras.Model(safe.input, safe.get_layer("head_gap").output).predict(x, verbose=0)
    assert 0.01 < np.median(feats.std(0)) < 100
    kernels = [
        np.abs(layer.get_weights()[0]).max()
        for layer in safe.get_layer("backbone").layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    # the 1e8 is spread out: every kernel but the last (scaled per output feature) has the same range
    assert max(kernels) < 1 and np.ptp(kernels[:-1]) < 1e-3 * max(kernels)
    # a model that needs nothing comes back untouched
    tiny = keras.models.load_model(make_model_dir(vgg_dir.parent / "tiny") / "model.keras")
    same, none = ex.quantization_safe_copy(tiny)
    assert same is tiny and none == []


def test_float16_export_of_unnormalised_backbone_agrees(vgg_dir, tmp_path):
    info = ex.export_model(vgg_dir, "tflite", "float16", out=tmp_path / "f16.tflite")
    assert "rescaled" in info["how"]
    model = keras.models.load_model(vgg_dir / "model.keras", safe_mode=True)
    x = ex.probe_images(32, 200, seed=7)
    ref = model.predict(x, verbose=0)
    got = ex.exported_predict(info["path"], x)
    assert agreement(ref, got) >= AGREEMENT
    np.testing.assert_allclose(got, ref, atol=2e-2)


def test_broken_float16_export_is_refused(vgg_dir, tmp_path, monkeypatch):
    # without the rescaling the converter's float16 constants underflow: the check must refuse the file
    monkeypatch.setattr(ex, "quantization_safe_copy", lambda model: (model, []))
    out = tmp_path / "bad.tflite"
    with pytest.raises(ex.ExportError, match="disagrees with the Keras model"):
        ex.export_model(vgg_dir, "tflite", "float16", out=out)
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written left behind


def test_export_that_does_not_run_here_is_refused(model_dir, calibration_dir, tmp_path, monkeypatch):
    # as XNNPACK does for a full-int8 VGG16 ("failed to prepare"): the file must not be left behind
    def runtime_refuses(path, x):
        raise RuntimeError("failed to create XNNPACK runtime")

    monkeypatch.setattr(ex, "exported_predict", runtime_refuses)
    out = tmp_path / "int8.tflite"
    with pytest.raises(ex.ExportError, match="does not run in the TFLite runtime"):
        ex.export_model(model_dir, "tflite", "int8", out=out, data_dir=calibration_dir)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_int8_export_of_unnormalised_backbone_is_rescaled_too(vgg_dir, tmp_path):
    info = ex.export_model(vgg_dir, "tflite", "int8", out=tmp_path / "dyn.tflite")
    assert "dynamic-range" in info["how"] and "rescaled" in info["how"]
    model = keras.models.load_model(vgg_dir / "model.keras", safe_mode=True)
    x = ex.probe_images(32, 200, seed=8)
    # a random backbone has small margins, so int8 noise flips some; the real VGG16 is measured by make bench
    assert agreement(model.predict(x, verbose=0), ex.exported_predict(info["path"], x)) >= 0.9


def test_dead_features_are_neutralised_exactly(vgg_dir):
    # a channel of the last convolution that never fires: pooled feature 0, moving variance ~1e-13
    model = keras.models.load_model(vgg_dir / "model.keras", safe_mode=True)
    last = model.get_layer("backbone").get_layer("block5_conv3")
    kernel, bias = last.get_weights()
    kernel[..., :5], bias[:5] = 0.0, -1.0
    last.set_weights([kernel, bias])
    bn = model.get_layer("head_bn0")
    gamma, beta, mean, var = bn.get_weights()
    mean[:5], var[:5] = 1e-9, 1e-13
    bn.set_weights([gamma, beta, mean, var])
    safe, changes = ex.quantization_safe_copy(model)
    assert "5 dead features" in changes[0]
    _, _, safe_mean, safe_var = safe.get_layer("head_bn0").get_weights()
    assert np.all(safe_var[:5] == 1.0) and np.all(safe_mean[:5] == 0.0)
    x = ex.probe_images(32, 64, seed=9)
    np.testing.assert_allclose(safe.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-3)


def test_calibrated_int8_export_that_disagrees_is_refused(model_dir, calibration_dir, tmp_path, monkeypatch):
    real = ex.exported_predict

    def constant_class(path, x):  # what the broken full-int8 VGG16 did: (nearly) one class for everything
        p = np.zeros_like(real(path, x))
        p[:, 0] = 1.0
        return p

    monkeypatch.setattr(ex, "exported_predict", constant_class)
    out = tmp_path / "full.tflite"
    with pytest.raises(ex.ExportError, match="disagrees with the Keras model"):
        ex.export_model(model_dir, "tflite", "int8", out=out, data_dir=calibration_dir)
    assert not out.exists()
