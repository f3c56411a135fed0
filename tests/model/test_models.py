"""emolib.models: parameter counts, staged trainable flags, in-graph preprocessing,
save/load with safe_mode, weights options. Backbones are built at 32x32 to stay fast."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from emolib.config import Stage  # noqa: E402
from emolib.models import (  # noqa: E402
    WeightsFallbackWarning,
    WeightsUnavailableError,
    apply_stage,
    backbone_of,
    build_model,
    build_model_with_info,
    count_params,
    head_layers,
)

BACKBONE_PARAMS = {"vgg16": 14_714_688, "resnet50": 23_587_712, "mobilenetv2": 2_257_984}
PREPROCESS = {
    "vgg16": keras.applications.vgg16.preprocess_input,
    "resnet50": keras.applications.resnet50.preprocess_input,
    "mobilenetv2": keras.applications.mobilenet_v2.preprocess_input,
}
VGG_BLOCK5 = 7_079_424
VGG_BLOCK4 = 5_899_776


@pytest.fixture(scope="module")
def backbones():
    return {name: build_model(name, (32, 32, 1), n_classes=3) for name in BACKBONE_PARAMS}


@pytest.fixture(scope="module")
def raw():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, size=(4, 32, 32, 1)).astype("float32")


def _n(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def _head_trainable(model) -> int:
    return sum(_n(layer.trainable_weights) for layer in head_layers(model))


def _bn_trainable(model) -> list[str]:
    bns = [lyr for lyr in backbone_of(model).layers if isinstance(lyr, keras.layers.BatchNormalization)]
    return [lyr.name for lyr in bns if lyr.trainable]


def test_cnn_params_and_output():
    model = build_model("cnn", (48, 48, 1), n_classes=3)
    counts = count_params(model)
    assert 300_000 <= counts["total"] <= 3_500_000
    assert counts["total"] == model.count_params()
    assert backbone_of(model) is None
    p = model.predict(np.full((2, 48, 48, 1), 128.0, "float32"), verbose=0)
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"


@pytest.mark.parametrize("name", sorted(BACKBONE_PARAMS))
def test_backbone_params_and_output(backbones, raw, name):
    model = backbones[name]
    bb = backbone_of(model)
    assert bb is not None and bb.name == "backbone"
    assert bb.count_params() == BACKBONE_PARAMS[name]
    assert model.input_shape == (None, 32, 32, 1)
    p = model.predict(raw, verbose=0)
    assert p.shape == (4, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"


def test_input_size_and_name_checks():
    with pytest.raises(ValueError, match="at least 32"):
        build_model("vgg16", (16, 16, 1))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg19", (48, 48, 1))
    with pytest.raises(ValueError, match="only trainable='all'"):
        apply_stage(build_model("cnn", (32, 32, 1)), Stage("h", "head", 1, 1e-3))


@pytest.mark.parametrize("name", sorted(BACKBONE_PARAMS))
def test_stage_trainable_counts(backbones, name):
    model = backbones[name]
    total = model.count_params()
    head = _head_trainable(model)  # measured with the 'all' flags set at build time

    tr, tot = apply_stage(model, Stage("head", "head", 1, 1e-4))
    assert tot == total
    assert tr == head == count_params(model)["trainable"]
    assert _n(backbone_of(model).trainable_weights) == 0

    tr_all, _ = apply_stage(model, Stage("all", "all", 1, 1e-5))
    assert head < tr_all < total  # backbone BatchNorm gamma/beta stay frozen
    assert not _bn_trainable(model)

    tr_top, _ = apply_stage(model, Stage("top30", "top:30", 1, 1e-5))
    if name == "vgg16":  # VGG16 without top has 19 layers: top:30 is the whole backbone
        assert tr_top == tr_all
    else:
        assert head < tr_top < tr_all
    assert not _bn_trainable(model)

    if name == "vgg16":
        tr5, _ = apply_stage(model, Stage("block5", "blocks:block5", 1, 5e-5))
        assert tr5 == VGG_BLOCK5 + head
        tr45, _ = apply_stage(model, Stage("block4+5", "blocks:block4,block5", 1, 1e-5))
        assert tr45 == VGG_BLOCK5 + VGG_BLOCK4 + head
        with pytest.raises(ValueError, match="no backbone layer"):
            apply_stage(model, Stage("x", "blocks:block9", 1, 1e-5))
    apply_stage(model, "all")


@pytest.mark.parametrize("name", sorted(BACKBONE_PARAMS))
def test_in_graph_preprocessing_matches_keras(backbones, raw, name):
    model = backbones[name]
    sub = keras.Model(model.input, model.get_layer("preprocess").output)
    got = np.asarray(sub(raw))
    want = PREPROCESS[name](np.repeat(raw, 3, axis=-1).copy())
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("name", ["cnn", "mobilenetv2"])
def test_save_load_safe_mode_identical(tmp_path, raw, name):
    model = build_model(name, (32, 32, 1), n_classes=3)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(raw, verbose=0), model.predict(raw, verbose=0), atol=1e-6)
    if name != "cnn":
        assert backbone_of(loaded) is not None


def test_imagenet_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached weights file
    t0 = time.perf_counter()
    try:
        build_model("vgg16", (32, 32, 1), weights="imagenet")
    except WeightsUnavailableError as e:
        assert "weights" in str(e).lower()
    else:
        pytest.skip("ImageNet weights were obtained (network or cache present)")
    assert time.perf_counter() - t0 < 30


def test_auto_falls_back_with_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, info = build_model_with_info("mobilenetv2", (32, 32, 1), weights="auto")
    if info["weights_used"] == "imagenet":
        pytest.skip("ImageNet weights were obtained (network or cache present)")
    assert info["weights_used"] == "none"
    assert info["weights_requested"] == "auto"
    assert "tf" in info["preprocessing"]
    assert any(issubclass(w.category, WeightsFallbackWarning) for w in caught)


def test_missing_local_weights_path():
    with pytest.raises(FileNotFoundError, match="not found"):
        build_model("resnet50", (32, 32, 1), weights="/nonexistent/resnet50.weights.h5")
    with pytest.raises(WeightsUnavailableError):
        build_model("resnet50", (32, 32, 1), weights="/nonexistent/resnet50.h5")


def test_local_weights_file_loads(tmp_path, backbones):
    bb = backbone_of(backbones["mobilenetv2"])
    path = tmp_path / "mnv2_backbone.weights.h5"
    bb.save_weights(path)
    model, info = build_model_with_info("mobilenetv2", (48, 48, 1), weights=str(path))
    assert info["weights_used"] == str(path.resolve())
    for a, b in zip(bb.get_weights(), backbone_of(model).get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["cnn", "deepcnn"])
def test_the_projects_cnns_ignore_weights(name):
    model, info = build_model_with_info(name, (48, 48, 1), weights="imagenet")
    assert info["weights_used"] == "none" and info["backbone"] is None
    assert model.name == name


def test_deepcnn_is_the_deeper_cnn_with_the_heads_layers():
    """Twice the convolutions of the CNN, no backbone, and the layers the 'other' head reads."""
    from emolib.release import OTHER_LAYERS

    cnn, deep = build_model("cnn", (48, 48, 1), 3), build_model("deepcnn", (48, 48, 1), 3)
    convs = [sum(isinstance(lyr, keras.layers.Conv2D) for lyr in m.layers) for m in (cnn, deep)]
    assert convs == [4, 8]
    assert cnn.count_params() < deep.count_params() <= 3_500_000 and backbone_of(deep) is None
    assert all(deep.get_layer(name) is not None for name in OTHER_LAYERS)
    p = deep.predict(np.full((2, 48, 48, 1), 128.0, "float32"), verbose=0)
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="at least"):
        build_model("deepcnn", (4, 4, 1), 3)


def test_legacy_h5_backbone_file_loads(tmp_path, backbones):
    bb = backbone_of(backbones["vgg16"])
    path = tmp_path / "vgg16_backbone.h5"
    bb.save(path)  # legacy HDF5, like the files keras.applications downloads
    model, info = build_model_with_info("vgg16", (48, 48, 1), weights=str(path))
    assert info["weights_used"] == str(path.resolve())
    for a, b in zip(bb.get_weights(), backbone_of(model).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_mixed_precision_output_float32():
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = build_model("mobilenetv2", (32, 32, 1))
        cnn = build_model("cnn", (32, 32, 1))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.output.dtype == "float32" and cnn.output.dtype == "float32"
    assert model.get_layer("preprocess").compute_dtype == "float32"


def test_scratch_backbone_learns_its_batchnorm_statistics():
    """A randomly initialised backbone must train its BatchNorm (inference-mode BN is for pretrained ones)."""
    import keras
    import numpy as np

    from emolib import config, models

    model = models.build_model("mobilenetv2", (32, 32, 1), 3, weights="none")
    stage = config.get_profile("smoke").scratch_schedule("mobilenetv2")[0]
    trainable, total = models.apply_stage(model, stage)
    bn = [lyr for lyr in model.get_layer("backbone").layers if isinstance(lyr, keras.layers.BatchNormalization)]
    assert all(lyr.trainable for lyr in bn)
    assert all(lyr.momentum == models.BN_MOMENTUM for lyr in bn)  # statistics keep up with a short run
    assert trainable > models.apply_stage(models.build_model("mobilenetv2", (32, 32, 1), 3), "all")[0]
    before = np.array(bn[0].moving_mean)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 32, 32, 1)).astype("float32") * 255
    model.fit(x, np.zeros(8, dtype="int32"), verbose=0)
    assert not np.allclose(before, np.array(bn[0].moving_mean))
