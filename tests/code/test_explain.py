"""Grad-CAM: target-layer search (nested backbones), localisation on a planted patch."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from emolib import explain  # noqa: E402

SIZE = 24


def _patch_data(n: int, seed: int):
    """Class 1: a bright 5x5 patch at a random spot inside the top-left quadrant.

    Class 0: the same noise without a patch. Background is dim noise (0..90).
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 90, (n, SIZE, SIZE, 1)).astype("float32")
    y = (np.arange(n) % 2).astype("int64")
    for i in np.flatnonzero(y == 1):
        r, c = rng.integers(1, SIZE // 2 - 5, 2)
        x[i, r : r + 5, c : c + 5, 0] = 255.0
    return x, y


def _plain_cnn():
    inp = keras.Input((SIZE, SIZE, 1))
    h = keras.layers.Rescaling(1 / 255.0)(inp)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(h)
    h = keras.layers.GlobalMaxPooling2D()(h)
    out = keras.layers.Dense(2, activation="softmax")(h)
    return keras.Model(inp, out)


def _nested_mobilenet(n_classes: int = 3):
    inp = keras.Input((32, 32, 1))
    h = keras.layers.Concatenate(name="to_rgb")([inp, inp, inp])
    h = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(h)
    backbone = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, name="backbone")
    h = backbone(h, training=False)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(n_classes, activation="softmax")(h)
    return keras.Model(inp, out, name="wrapped")


def test_find_last_conv_layer_plain_and_nested():
    assert explain.find_last_conv_layer(_plain_cnn()) == "conv_b"
    assert explain.find_last_conv_layer(_nested_mobilenet()) == "backbone/out_relu"
    with pytest.raises(ValueError):
        explain.find_last_conv_layer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_gradcam_localises_planted_patch():
    keras.utils.set_random_seed(0)
    x, y = _patch_data(320, seed=0)
    model = _plain_cnn()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    xt, yt = _patch_data(40, seed=1)
    acc = float(np.mean(model.predict(xt, verbose=0).argmax(1) == yt))
    assert acc >= 0.9, acc
    pos = xt[yt == 1][:12]
    heat = explain.gradcam(model, pos, class_index=1)
    assert heat.shape == (len(pos), SIZE, SIZE)
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    hits = 0
    for img, hm in zip(pos, heat):
        r, c = np.unravel_index(np.argmax(hm), hm.shape)
        hits += int(r < SIZE // 2 and c < SIZE // 2)
        # the peak sits on (or right next to) the patch itself
        pr, pc = np.argwhere(img[..., 0] == 255.0).mean(axis=0)
        assert abs(r - pr) <= 4 and abs(c - pc) <= 4
    assert hits == len(pos)
    # predicted-class default equals explicit class 1 for these (correctly classified) images
    assert np.allclose(explain.gradcam(model, pos[:3]), heat[:3], atol=1e-5)
    # (B, H, W) input without the channel axis works too
    assert explain.gradcam(model, pos[:2, ..., 0], class_index=1).shape == (2, SIZE, SIZE)


def test_gradcam_nested_mobilenet_wrapper():
    keras.utils.set_random_seed(0)
    model = _nested_mobilenet()
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 1)).astype("float32")
    heat = explain.gradcam(model, images)
    assert heat.shape == (3, 32, 32)
    assert heat.dtype == np.float32 and np.isfinite(heat).all()
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    # an earlier, spatially resolved layer inside the backbone, per-image classes
    heat2 = explain.gradcam(model, images, class_index=[0, 1, 2], layer="backbone/block_3_expand_relu")
    assert heat2.shape == (3, 32, 32) and heat2.min() >= 0.0 and heat2.max() <= 1.0
    # the tap model reproduces the model's predictions (pre-softmax scores -> same softmax)
    tap = explain.build_gradcam_model(model)
    act, scores = tap(images)
    assert act.shape[-1] == 1280
    assert np.allclose(
        keras.ops.convert_to_numpy(keras.ops.softmax(scores)), model.predict(images, verbose=0), atol=1e-5
    )
    with pytest.raises(ValueError):
        explain.gradcam(model, images, layer="backbone/no_such_layer")


def test_overlay_and_gallery(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.full((48, 48), 128, np.uint8)
    hm = np.zeros((12, 12), np.float32)
    hm[0, 0] = 1.0
    rgb = explain.overlay(img, hm, alpha=0.4)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    # alpha 0 -> the grayscale image; jet at 0 is dark blue, so a cold pixel gains blue
    assert (explain.overlay(img, hm, alpha=0.0) == 128).all()
    assert rgb[-1, -1, 2] > rgb[-1, -1, 0]
    fig = explain.plot_gradcam_gallery(
        [img, img, img], [hm, hm, hm], titles=["a", "b", "c"], ncols=2, save=tmp_path / "g.png"
    )
    assert isinstance(fig, matplotlib.figure.Figure) and (tmp_path / "g.png").exists()
    plt.close(fig)
