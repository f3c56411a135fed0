"""Loaders on every layout, bad input, split determinism, class weights, pixels."""

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from emolib import config, data

THREE = ("angry", "sad", "surprise")


def test_split_folder_layout(synthetic_dir):
    frame, report = data.discover(synthetic_dir, THREE)
    assert report.layout.startswith("split class folders")
    assert report.synthetic
    assert set(frame["label"]) == set(THREE)
    assert (frame["split"] == "train").sum() == 60 and (frame["split"] == "test").sum() == 24
    assert "train/happy" in report.ignored_classes  # other classes are reported, not loaded


def test_class_names_are_normalised_from_folders(tmp_path, synthetic_dir):
    root = tmp_path / "d"
    for split in ("train", "test"):
        for src, dst in (("angry", "Anger"), ("sad", "SADNESS"), ("surprise", "surprised")):
            shutil.copytree(synthetic_dir / split / src, root / split / dst)
    frame, _ = data.discover(root, THREE)
    assert sorted(frame["label"].unique()) == list(THREE)


def test_single_folder_is_split_stratified_and_seeded(tmp_path, synthetic_dir):
    root = tmp_path / "flat"
    for c in THREE:
        shutil.copytree(synthetic_dir / "train" / c, root / c)
    a, rep = data.discover(root, THREE, seed=1)
    b, _ = data.discover(root, THREE, seed=1)
    c, _ = data.discover(root, THREE, seed=2)
    assert "one folder" in rep.layout
    pd.testing.assert_frame_equal(a, b)
    test_paths = lambda f: set(f.loc[f["split"] == "test", "path"])  # noqa: E731
    assert test_paths(a) != test_paths(c)
    assert (a[a["split"] == "test"]["label"].value_counts() == 4).all()


def test_fer2013_csv_layout(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for _i, (emotion, usage) in enumerate(
        [
            (0, "Training"),
            (4, "Training"),
            (5, "Training"),
            (0, "PublicTest"),
            (4, "PublicTest"),
            (5, "PrivateTest"),
            (5, "PublicTest"),
            (3, "Training"),
        ]
    ):
        rows.append({"emotion": emotion, "pixels": " ".join(map(str, rng.integers(0, 255, 48 * 48))), "Usage": usage})
    csv = tmp_path / "fer2013.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    frame, rep = data.discover(tmp_path, THREE)
    assert rep.layout == "fer2013.csv"
    assert len(frame) == 6  # happy not chosen, PrivateTest is not the test split here
    assert dict(frame.groupby("split").size()) == {"test": 3, "train": 3}
    pixels, ok, problems = data.load_images(frame, 48, cache_dir=None, progress=False)
    assert ok.all() and not problems and pixels.shape == (6, 48, 48)


def test_missing_data_dir_says_how_to_get_data(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="msambare/fer2013"):
        data.discover(tmp_path / "nope", THREE)
    with pytest.raises(data.DataNotFoundError, match="DATA_DIR"):
        data.resolve_data_dir(tmp_path / "typo")


def test_unknown_and_empty_classes_fail_clearly(tmp_path, synthetic_dir):
    with pytest.raises(data.DataError, match="no images for class"):
        data.discover(synthetic_dir, ("angry", "contempt"))
    root = tmp_path / "d"
    shutil.copytree(synthetic_dir, root)
    for f in (root / "train" / "sad").iterdir():
        f.unlink()
    with pytest.raises(data.DataError, match="sad"):
        data.discover(root, THREE)


def test_non_images_and_corrupt_files_are_listed_not_fatal(tmp_path, synthetic_dir):
    root = tmp_path / "d"
    shutil.copytree(synthetic_dir, root)
    (root / "train" / "angry" / "notes.txt").write_text("hello")
    (root / "train" / "angry" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    Image.new("RGBA", (64, 64), (10, 20, 30, 128)).save(root / "train" / "sad" / "rgba.png")
    frame, report = data.discover(root, THREE)
    assert [s["path"].endswith("notes.txt") for s in report.skipped_files] == [True]
    pixels, ok, problems = data.load_images(frame, 48, cache_dir=None, progress=False)
    assert (~ok).sum() == 1 and problems[0]["path"].endswith("broken.jpg")
    assert ok[frame["path"].str.endswith("rgba.png").to_numpy()].all()


def test_validation_split_is_deterministic_and_never_touches_test(synthetic_dir):
    frame, _ = data.discover(synthetic_dir, THREE)
    a = data.split_validation(frame, 0.25, seed=7)
    b = data.split_validation(frame, 0.25, seed=7)
    c = data.split_validation(frame, 0.25, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])
    assert (a.loc[frame["split"] == "test", "split"] == "test").all()
    assert (a[a["split"] == "val"]["label"].value_counts() == 5).all()


def test_cross_split_duplicates_can_be_dropped_from_train(synthetic_dir):
    frame, _ = data.discover(synthetic_dir, THREE)
    hashes = pd.Series([f"h{i}" for i in range(len(frame))], index=frame.index)
    first_train, first_test = frame.index[frame["split"] == "train"][0], frame.index[frame["split"] == "test"][0]
    hashes[first_train] = hashes[first_test]
    out = data.split_validation(frame, 0.2, seed=1, exclude_hashes={hashes[first_test]}, hashes=hashes)
    assert len(out) == len(frame) - 1 and frame.at[first_train, "path"] not in set(out["path"])


def test_class_weights_follow_the_seed_formula():
    labels = ["angry"] * 20 + ["sad"] * 61 + ["surprise"] * 19
    w = data.class_weights(labels, THREE)
    assert w == pytest.approx({0: 100 / 60, 1: 100 / 183, 2: 100 / 57})
    assert [round(v, 2) for v in w.values()] == [1.67, 0.55, 1.75]  # the seed reports 1.65/0.55/1.75
    with pytest.raises(data.DataError):
        data.class_weights(["angry", "sad"], THREE)


def test_class_weights_can_be_tempered():
    labels = ["angry"] * 20 + ["sad"] * 61 + ["surprise"] * 19
    balanced = data.class_weights(labels, THREE)
    tempered = data.class_weights(labels, THREE, power=0.5)
    assert tempered == pytest.approx({i: w**0.5 for i, w in balanced.items()})
    assert tempered[2] < balanced[2] and tempered[1] > balanced[1]  # rare classes weigh less, common more
    assert data.class_weights(labels, THREE, power=0) == {0: 1.0, 1: 1.0, 2: 1.0}
    with pytest.raises(ValueError, match="power"):
        data.class_weights(labels, THREE, power=2)


def test_pixel_cache_round_trips(tmp_path, synthetic_dir):
    frame, _ = data.discover(synthetic_dir, THREE)
    a = data.load_images(frame, 32, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("pixels-*.npz"))) == 1
    b = data.load_images(frame, 32, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (len(frame), 32, 32)


def test_prepare_smoke_profile(synthetic_dir):
    cfg = config.resolve(profile="smoke", classes="angry,sad,surprise", data_dir=synthetic_dir, seed=3)
    p = data.prepare(cfg, progress=False)
    assert set(p.frame["split"]) == {"train", "val", "test"}
    x, y = p.split("train")
    assert x.dtype == np.uint8 and x.shape[1:] == (48, 48) and set(y) == {0, 1, 2}
    assert len(p.fingerprint) == 16 and p.synthetic
    assert data.prepare(cfg, progress=False).fingerprint == p.fingerprint


def test_available_classes(synthetic_dir):
    assert data.available_classes(synthetic_dir) == config.FER2013_CLASSES
