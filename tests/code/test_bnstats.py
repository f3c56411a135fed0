"""emolib.bnstats: BatchNorm statistics recomputed exactly, in inference mode, layer by layer."""

import json

import keras
import numpy as np
import pytest
from keras import layers

from emolib import bnstats


def _net(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6, 6, 1))
    x = layers.Conv2D(4, 3, padding="same", name="conv1")(inp)
    x = layers.BatchNormalization(momentum=0.9, name="bn1")(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.5, name="drop")(x)
    x = layers.Conv2D(3, 3, padding="same", name="conv2")(x)
    x = layers.BatchNormalization(momentum=0.9, name="bn2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(2, activation="softmax")(x)
    return keras.Model(inp, out)


def _images(n: int = 40, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 6, 6, 1)).astype("float32")


def _assert_exact_moments(model: keras.Model, names, x: np.ndarray) -> None:
    """Each named BatchNorm layer holds the mean and variance of its input on `x`, in inference mode."""
    for name in names:
        bn = model.get_layer(name)
        seen = np.asarray(keras.Model(model.input, bn.input)(x, training=False), dtype=np.float64)
        seen = seen.reshape(-1, seen.shape[-1])
        np.testing.assert_allclose(np.asarray(bn.moving_mean), seen.mean(axis=0), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(np.asarray(bn.moving_variance), seen.var(axis=0), rtol=1e-4, atol=1e-3)


def test_each_layer_gets_its_input_moments_in_inference_mode():
    model, x = _net(), _images()
    done = bnstats.recompute_batchnorm_statistics(model, x, batch_size=7)  # batches that do not divide 40
    assert done == ["bn1", "bn2"]
    _assert_exact_moments(model, done, x)


def test_later_layers_see_the_earlier_layers_recomputed():
    # bn2's input depends on bn1's statistics: recomputing bn2 before bn1 would give other moments
    model, x = _net(), _images()
    bn1 = model.get_layer("bn1")
    bn1.moving_mean.assign(np.full(4, 50.0, "float32"))  # far from the truth: bn2's input shifts
    stale = np.asarray(keras.Model(model.input, model.get_layer("bn2").input)(x, training=False)).mean(axis=(0, 1, 2))
    bnstats.recompute_batchnorm_statistics(model, x)
    assert not np.allclose(np.asarray(model.get_layer("bn2").moving_mean), stale, atol=1e-2)


def test_weights_other_than_the_statistics_are_untouched_and_predictions_follow():
    model, x = _net(), _images()
    before = {w.path: np.array(w) for w in model.weights}
    p_before = np.asarray(model(x, training=False))
    bnstats.recompute_batchnorm_statistics(model, x)
    changed = {w.path for w in model.weights if not np.array_equal(np.array(w), before[w.path])}
    assert changed == {f"{b}/moving_{s}" for b in ("bn1", "bn2") for s in ("mean", "variance")}
    p_after = np.asarray(model(x, training=False))
    assert not np.allclose(p_before, p_after)
    np.testing.assert_allclose(p_after.sum(axis=1), 1.0, rtol=1e-5)


def _backbone_model(seed: int = 0) -> keras.Model:
    """A backbone model's layout: a nested net called in inference mode, then a head with BatchNorm after dropout."""
    inner = _net(seed)
    backbone = keras.Model(inner.input, inner.get_layer("bn2").output, name="backbone")
    inp = keras.Input((6, 6, 1))
    x = layers.GlobalAveragePooling2D()(backbone(inp, training=False))
    x = layers.BatchNormalization(momentum=0.9, name="head_bn0")(x)
    x = layers.Dense(5, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.BatchNormalization(momentum=0.9, name="head_bn1")(x)
    return keras.Model(inp, layers.Dense(2, activation="softmax")(x))


def test_a_backbone_model_gets_its_head_recomputed_and_its_nested_statistics_kept():
    model, x = _backbone_model(), _images()
    nested_before = {w.path: np.array(w) for w in model.get_layer("backbone").weights}
    assert bnstats.nested_batchnorm_counts(model) == {"backbone": 2}
    assert bnstats.recompute_batchnorm_statistics(model, x) == ["head_bn0", "head_bn1"]
    _assert_exact_moments(model, ("head_bn0", "head_bn1"), x)
    for w in model.get_layer("backbone").weights:
        np.testing.assert_array_equal(np.array(w), nested_before[w.path])


def test_refuses_empty_input():
    with pytest.raises(ValueError, match="at least one image"):
        bnstats.recompute_batchnorm_statistics(_net(), _images()[:0])


class _Prepared:
    """The two splits and the classes of a data.PreparedData, as recompute_after_training reads them."""

    classes = ("a", "b")

    def __init__(self):
        rng = np.random.default_rng(3)
        self._splits = {
            s: (rng.integers(0, 256, (n, 6, 6), dtype=np.uint8), rng.integers(0, 2, n))
            for s, n in (("train", 30), ("val", 12))
        }

    def split(self, name):
        return self._splits[name]


def test_after_training_saves_once_and_records_the_effect(tmp_path):
    model, path = _net(), tmp_path / "model.keras"  # the file recompute_after_training writes in model_dir
    record = bnstats.recompute_after_training(model, _Prepared(), model_dir=tmp_path, progress=False)
    assert record["recomputed"] is True and record["layers"] == 2 and record["faces"] == 30
    assert record["already_recomputed"] is False and path.is_file()
    assert 0 <= record["val_macro_f1_moving"] <= 1 and 0 <= record["val_macro_f1_recomputed"] <= 1
    saved = keras.models.load_model(path)
    np.testing.assert_allclose(
        np.asarray(saved.get_layer("bn1").moving_mean), np.asarray(model.get_layer("bn1").moving_mean)
    )
    first = path.stat().st_mtime_ns
    card = {
        "classes": ["a", "b"],
        "batchnorm_statistics": {**record, "val_macro_f1_moving": 0.123},
    }  # 0.123: no 12-face split gives it
    (tmp_path / "model.json").write_text(json.dumps(card))  # the card the notebook wrote after the first call
    again = bnstats.recompute_after_training(model, _Prepared(), model_dir=tmp_path, progress=False)
    assert again["already_recomputed"] is True and path.stat().st_mtime_ns == first  # idempotent: no rewrite
    # the second call measured recomputed statistics only: the card keeps the first call's moving score
    assert again["val_macro_f1_moving"] == 0.123
    (tmp_path / "model.json").unlink()  # no card: the score it measured, on the recomputed statistics
    third = bnstats.recompute_after_training(model, _Prepared(), model_dir=tmp_path, progress=False)
    assert third["val_macro_f1_moving"] == third["val_macro_f1_recomputed"]


def test_after_training_on_a_backbone_model_records_the_kept_statistics(tmp_path):
    record = bnstats.recompute_after_training(_backbone_model(), _Prepared(), model_dir=tmp_path, progress=False)
    assert record["recomputed"] is True and record["layers"] == 2
    assert record["kept"] == "backbone's 2 BatchNorm layers (nested: as trained)"
    assert (tmp_path / "model.keras").is_file()


def test_after_training_says_why_it_did_nothing(tmp_path):
    path = tmp_path / "model.keras"
    off = bnstats.recompute_after_training(_net(), _Prepared(), model_dir=tmp_path, enabled=False)
    assert off == {"recomputed": False, "why": "off in this profile (+rawbn)"}
    inp = keras.Input((6, 6, 1))
    only_nested = bnstats.recompute_after_training(keras.Model(inp, _net()(inp)), _Prepared(), model_dir=tmp_path)
    assert only_nested["recomputed"] is False and "no top-level BatchNorm" in only_nested["why"]
    assert "2 BatchNorm layers" in only_nested["kept"]
    plain = keras.Sequential([keras.Input((6, 6, 1)), layers.Flatten(), layers.Dense(2, activation="softmax")])
    assert "no BatchNorm" in bnstats.recompute_after_training(plain, _Prepared(), model_dir=tmp_path)["why"]
    assert not path.exists()
