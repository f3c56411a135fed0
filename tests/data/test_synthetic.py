"""The synthetic face generator: shapes, determinism, dataset layout, and that the
classes are learnable but not trivially so."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolib import synthetic
from emolib.config import DEFAULT_CLASSES, FER2013_CLASSES
from emolib.synthetic import (
    SYNTHETIC_BANNER,
    is_synthetic,
    make_synthetic_dataset,
    render_face,
    render_faces,
    render_photo,
)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- single faces -----------------------------------------------------------
@pytest.mark.parametrize("emotion", FER2013_CLASSES)
def test_every_fer2013_class_renders(emotion):
    img = render_face(emotion, np.random.default_rng(0))
    assert img.shape == (48, 48) and img.dtype == np.uint8
    # A drawn face, not a blank or saturated frame.
    assert img.std() > 10


@pytest.mark.parametrize("size", [16, 48, 64])
def test_size(size):
    assert render_face("happy", np.random.default_rng(1), size=size).shape == (size, size)


def test_same_rng_state_same_face_different_state_different_face():
    a = render_face("sad", np.random.default_rng(7))
    b = render_face("sad", np.random.default_rng(7))
    c = render_face("sad", np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_aliases_accepted_unknown_emotion_raises():
    assert render_face("Happiness", np.random.default_rng(0)).shape == (48, 48)
    with pytest.raises(ValueError, match=r"unknown emotion 'bored'.*angry, disgust"):
        render_face("bored", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown emotion"):
        render_faces(["happy", "contempt"])


def test_render_faces_batch():
    batch = render_faces(list(FER2013_CLASSES), seed=3, size=32)
    assert batch.shape == (7, 32, 32) and batch.dtype == np.uint8
    assert np.array_equal(batch, render_faces(list(FER2013_CLASSES), seed=3, size=32))
    assert not np.array_equal(batch, render_faces(list(FER2013_CLASSES), seed=4, size=32))
    assert render_faces([], seed=0, size=32).shape == (0, 32, 32)


def test_render_photo_boxes():
    img, boxes = render_photo(["happy", "sad", "surprise"], np.random.default_rng(0), canvas=(320, 240))
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    assert len(boxes) == 3
    for x, y, w, h in boxes:
        assert 0 <= x and 0 <= y and x + w <= 320 and y + h <= 240
        assert w >= 16 and h > w  # a face oval is taller than wide
    # Boxes do not overlap (one face per grid cell).
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1 :]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1
    img2, boxes2 = render_photo(["happy", "sad", "surprise"], np.random.default_rng(0), canvas=(320, 240))
    assert np.array_equal(img, img2) and boxes == boxes2


# --- datasets on disk -------------------------------------------------------
SMALL = dict(train_per_class=4, test_per_class=2, size=32)


def test_dataset_layout_counts_and_marker(tmp_path):
    root = make_synthetic_dataset(tmp_path / "syn", seed=0, **SMALL)
    assert root == tmp_path / "syn"
    for split, n in (("train", 4), ("test", 2)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(DEFAULT_CLASSES)
        for cls in DEFAULT_CLASSES:
            files = sorted((root / split / cls).glob("*.png"))
            assert len(files) == n
            assert all(f.name.startswith(f"{cls}_") for f in files)
            with Image.open(files[0]) as im:
                assert im.mode == "L" and im.size == (32, 32)
    assert is_synthetic(root) and is_synthetic(root / "train")
    assert not is_synthetic(tmp_path)
    assert SYNTHETIC_BANNER in (root / "SYNTHETIC.txt").read_text(encoding="utf-8")
    params = json.loads((root / "SYNTHETIC.json").read_text(encoding="utf-8"))
    assert params["classes"] == list(DEFAULT_CLASSES) and params["seed"] == 0
    # No temporary folders left next to the dataset.
    assert [p.name for p in tmp_path.iterdir()] == ["syn"]


def test_dataset_deterministic_per_seed(tmp_path):
    a = _digests(make_synthetic_dataset(tmp_path / "a", seed=5, **SMALL))
    b = _digests(make_synthetic_dataset(tmp_path / "b", seed=5, **SMALL))
    c = _digests(make_synthetic_dataset(tmp_path / "c", seed=6, **SMALL))
    assert a == b
    images = [k for k in a if k.endswith(".png")]
    assert all(a[k] != c[k] for k in images)


def test_train_and_test_images_differ(tmp_path):
    root = make_synthetic_dataset(tmp_path / "syn", classes=("happy", "sad"), **SMALL)
    d = _digests(root)
    train = {v for k, v in d.items() if k.startswith("train")}
    test = {v for k, v in d.items() if k.startswith("test")}
    assert len(train) == 8 and len(test) == 4 and not train & test


def test_idempotent_second_call_writes_nothing(tmp_path):
    root = make_synthetic_dataset(tmp_path / "syn", seed=1, **SMALL)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    inode = root.stat().st_ino
    assert make_synthetic_dataset(tmp_path / "syn", seed=1, **SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    assert root.stat().st_ino == inode


def test_other_parameters_regenerate(tmp_path):
    root = make_synthetic_dataset(tmp_path / "syn", seed=1, **SMALL)
    make_synthetic_dataset(root, seed=1, train_per_class=3, test_per_class=1, size=32)
    assert len(list((root / "train" / "angry").glob("*.png"))) == 3
    assert json.loads((root / "SYNTHETIC.json").read_text())["train_per_class"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]


def test_incomplete_dataset_is_regenerated(tmp_path):
    root = make_synthetic_dataset(tmp_path / "syn", seed=1, **SMALL)
    next((root / "train" / "sad").glob("*.png")).unlink()
    make_synthetic_dataset(root, seed=1, **SMALL)
    assert len(list((root / "train" / "sad").glob("*.png"))) == 4


def test_imbalance(tmp_path):
    root = make_synthetic_dataset(tmp_path / "syn", imbalance={"sad": 0.5, "Surprised": 2}, **SMALL)
    counts = {c: len(list((root / "train" / c).glob("*.png"))) for c in DEFAULT_CLASSES}
    assert counts == {"angry": 4, "sad": 2, "surprise": 8}
    assert all(len(list((root / "test" / c).glob("*.png"))) == 2 for c in DEFAULT_CLASSES)
    with pytest.raises(ValueError, match="not one of the classes"):
        make_synthetic_dataset(tmp_path / "bad", imbalance={"happy": 2}, **SMALL)


def test_unknown_class_raises(tmp_path):
    with pytest.raises(ValueError, match="unknown emotion"):
        make_synthetic_dataset(tmp_path / "syn", classes=("angry", "bored"), **SMALL)
    assert not (tmp_path / "syn").exists()


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    real = tmp_path / "real"
    (real / "train" / "angry").mkdir(parents=True)
    (real / "train" / "angry" / "face.png").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="not an emolib synthetic dataset"):
        make_synthetic_dataset(real, **SMALL)
    assert (real / "train" / "angry" / "face.png").read_bytes() == b"not ours"


def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = {"n": 0}
    write = synthetic._write_png

    def flaky(arr, path):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        write(arr, path)

    monkeypatch.setattr(synthetic, "_write_png", flaky)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset(tmp_path / "syn", **SMALL)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(synthetic, "_write_png", write)
    root = make_synthetic_dataset(tmp_path / "syn", **SMALL)
    assert is_synthetic(root)


# --- learnable, but not trivial --------------------------------------------
def test_classes_learnable_but_not_trivial():
    """Raw-pixel logistic regression beats chance (1/3) clearly; a nearest-class-mean
    template does not solve it (pose, identity and lighting vary).
    Measured over seeds 0-2: LR 0.67-0.75, nearest mean 0.33-0.40."""
    from sklearn.linear_model import LogisticRegression

    classes = ("angry", "sad", "surprise")
    x_train = render_faces([c for c in classes for _ in range(100)], seed=0).reshape(300, -1) / 255.0
    x_test = render_faces([c for c in classes for _ in range(50)], seed=1000).reshape(150, -1) / 255.0
    y_train, y_test = np.repeat(np.arange(3), 100), np.repeat(np.arange(3), 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings do not matter here
        clf = LogisticRegression(C=0.1, max_iter=200).fit(x_train, y_train)
    assert clf.score(x_test, y_test) > 0.5

    means = np.stack([x_train[y_train == k].mean(0) for k in range(3)])
    nearest = np.argmin(((x_test[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y_test).mean() < 0.9
