"""The model-folder contract: one discovery order, validated cards, safe and checked loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from emolib import modelfolder as mf  # noqa: E402

CLASSES = ["angry", "sad", "surprise"]


def save_tiny_model(path: Path, n_out: int = 3, channels: int = 1, size: int = 48) -> Path:
    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, channels))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    model = keras.Model(inp, keras.layers.Dense(n_out, activation="softmax")(x))
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / mf.MODEL_FILE)
    return path


def write_card(path: Path, **card) -> None:
    mf.write_card(path, {"model_name": path.name, "classes": CLASSES, "input_shape": [48, 48, 1], **card})


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory) -> Path:
    d = save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
    write_card(d, preprocessing="raw gray 0..255 -> Rescaling(1/255) -> [0, 1]")
    return d


def fake_model_dir(root: Path, name: str, card: bool = True, model: bool = True) -> Path:
    d = root / name
    d.mkdir(parents=True)
    if model:
        (d / mf.MODEL_FILE).write_bytes(b"x")
    if card:
        (d / mf.CARD_FILE).write_text(json.dumps({"classes": CLASSES}))
    return d


def test_find_model_dirs_one_order_custom_names_included(tmp_path):
    for name in ("zeta", "mobilenetv2", "alpha", "cnn"):
        fake_model_dir(tmp_path, name)
    fake_model_dir(tmp_path, "vgg16", card=False)  # unfinished: no card yet
    fake_model_dir(tmp_path, "resnet50", model=False)
    fake_model_dir(tmp_path, ".hidden")
    (tmp_path / "notes.txt").write_text("not a folder")
    assert list(mf.find_model_dirs(tmp_path)) == ["cnn", "mobilenetv2", "alpha", "zeta"]
    assert list(mf.find_model_dirs(tmp_path, names=["zeta", "cnn", "vgg16"])) == ["zeta", "cnn"]
    # A model folder itself, and a missing root
    assert mf.find_model_dirs(tmp_path / "alpha") == {"alpha": tmp_path / "alpha"}
    assert mf.find_model_dirs(tmp_path / "missing") == {}


def test_every_consumer_finds_the_same_models(tmp_path):
    """bench and the playground find model folders through the contract (custom names included)."""
    from emolib import bench, playground

    for name in ("cnn", "my_model"):
        fake_model_dir(tmp_path, name)
    want = mf.find_model_dirs(tmp_path)
    assert list(want) == ["cnn", "my_model"]
    assert bench.find_model_dirs(tmp_path) == want
    assert playground.find_models(tmp_path) == want


def test_resolve_model_dir_errors(tmp_path, good_dir):
    with pytest.raises(mf.ModelDirError, match="not found"):
        mf.resolve_model_dir(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(mf.ModelDirError, match="not a model folder"):
        mf.resolve_model_dir(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(mf.ModelDirError, match="no model.keras"):
        mf.resolve_model_dir(tmp_path / "empty")
    assert mf.resolve_model_dir(good_dir / mf.MODEL_FILE) == good_dir


@pytest.mark.parametrize(
    "card, message",
    [
        (None, "no model.json"),
        ("{not json", "cannot read the model card"),
        ([1, 2], "must be a JSON object"),
        ({"model_name": "x"}, "'classes' must be a list"),
        ({"classes": ["angry"]}, "'classes' must be a list of at least two"),
        ({"classes": ["sad", "sad"]}, "duplicates"),
        ({"classes": CLASSES, "input_shape": [48, 48, 3]}, "not \\[S, S, 1\\]"),
        ({"classes": CLASSES, "preprocessing": "divide by 255 before calling the model"}, "unknown preprocessing"),
    ],
)
def test_read_card_rejects_bad_cards(tmp_path, card, message):
    d = tmp_path / "m"
    d.mkdir()
    if card is not None:
        text = card if isinstance(card, str) else json.dumps(card)
        (d / mf.CARD_FILE).write_text(text)
    with pytest.raises(mf.ModelDirError, match=message):
        mf.read_card(d)


def test_emolib_preprocessing_descriptions_are_accepted(tmp_path):
    from emolib.config import MODEL_NAMES
    from emolib.models import preprocessing_description

    for name in MODEL_NAMES:
        d = tmp_path / name
        d.mkdir()
        (d / mf.CARD_FILE).write_text(
            json.dumps({"classes": CLASSES, "preprocessing": preprocessing_description(name)})
        )
        assert mf.read_card(d)["classes"] == CLASSES


def test_load_model_valid(good_dir):
    model = mf.load_model(good_dir)
    assert model.output_shape[-1] == 3


def test_truncated_model_file_is_reported_as_corrupt_not_missing(tmp_path, good_dir):
    d = tmp_path / "truncated"
    shutil.copytree(good_dir, d)
    data = (d / mf.MODEL_FILE).read_bytes()
    (d / mf.MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(mf.ModelDirError, match="corrupt or truncated") as e:
        mf.load_model(d)
    assert "not found" not in str(e.value).lower()


def test_card_classes_disagree_with_model_outputs(tmp_path, good_dir):
    d = tmp_path / "two"
    shutil.copytree(good_dir, d)
    mf.write_card(d, {"classes": ["angry", "sad"]})
    with pytest.raises(mf.ModelDirError, match="3 outputs but its card lists 2 classes"):
        mf.load_model(d)


def test_model_expecting_rgb_is_refused(tmp_path):
    d = save_tiny_model(tmp_path / "rgb", channels=3)
    mf.write_card(d, {"classes": CLASSES})
    with pytest.raises(mf.ModelDirError, match="expects RGB input"):
        mf.load_model(d)


def test_card_input_size_must_match_the_model(tmp_path, good_dir):
    d = tmp_path / "size"
    shutil.copytree(good_dir, d)
    mf.write_card(d, {"classes": CLASSES, "input_shape": [64, 64, 1]})
    with pytest.raises(mf.ModelDirError, match="card says input"):
        mf.load_model(d)


def test_cli_reports_a_bad_model_folder_in_one_line(tmp_path, good_dir, capsys):
    from emolib.cli import main

    d = tmp_path / "bad"
    shutil.copytree(good_dir, d)
    mf.write_card(d, {"classes": ["angry", "sad"]})
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (48, 48), 128).save(img)
    assert main(["predict", "--model", str(d), str(img)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("emolib predict: error:") and "3 outputs" in err and "Traceback" not in err


def test_model_with_code_inside_is_refused_by_safe_mode(tmp_path):
    """A Lambda layer carries Python code; safe mode refuses to run it, with a clear error."""
    d = tmp_path / "lambda"
    d.mkdir()
    inp = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x)).save(d / mf.MODEL_FILE)
    mf.write_card(d, {"classes": CLASSES})
    with pytest.raises(mf.ModelDirError, match="cannot load the model") as e:
        mf.load_model(d)
    assert "safe_mode" in str(e.value) or "unsafe" in str(e.value).lower()
