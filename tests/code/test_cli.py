"""The emolib command line: predict (CSV, summary, exit codes), evaluate, --help."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")
cbook = pytest.importorskip("matplotlib.cbook")

from emolib import cli  # noqa: E402
from emolib import predict as P  # noqa: E402

CLASSES = ["angry", "sad", "surprise"]
HEADER = ["path", "face", "x", "y", "w", "h", "status", "emotion", "confidence", "p_angry", "p_sad", "p_surprise"]


def make_model_dir(path: Path, classes=CLASSES, size: int = 48) -> Path:
    """A tiny stand-in for a trained model: raw pixels in, softmax out, with a card."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 1))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(classes), activation="softmax")(x)
    model = keras.Model(inp, out)
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / "model.keras")
    (path / "model.json").write_text(
        json.dumps({"model_name": "tiny", "classes": list(classes), "input_shape": [size, size, 1]})
    )
    return path


def crop(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48] / 48
    img = rng.uniform(30, 220) + 70 * np.sin(rng.uniform(2, 10) * xx) * np.cos(rng.uniform(2, 10) * yy)
    return np.clip(img + rng.normal(0, 10, (48, 48)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """2 face crops, 1 photo with one face, 1 with three faces, 1 unreadable, 1 non-image."""
    d = tmp_path_factory.mktemp("photos")
    hopper = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    Image.fromarray(crop(1)).save(d / "crop1.png")
    (d / "sub").mkdir()
    Image.fromarray(crop(2)).save(d / "sub" / "crop2.png")
    shutil.copy(hopper, d / "hopper.jpg")
    g = np.asarray(Image.open(hopper).convert("L"))
    canvas = np.full((g.shape[0] + 40, 3 * g.shape[1] + 80), 128, np.uint8)
    for i in range(3):
        x = 20 + i * (g.shape[1] + 20)
        canvas[20 : 20 + g.shape[0], x : x + g.shape[1]] = g
    Image.fromarray(canvas).save(d / "three.png")
    (d / "broken.jpg").write_text("not a jpeg")
    (d / "notes.txt").write_text("hello")
    return d


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_predict_folder_writes_csv(capsys, model_dir, photos, tmp_path):
    out_csv = tmp_path / "out" / "pred.csv"
    code, out, err = run(capsys, "predict", "--model", model_dir, photos, "--csv", out_csv, "--batch-size", "2")
    assert code == 0, err
    with open(out_csv, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER
    body = [dict(zip(HEADER, r)) for r in rows[1:]]
    names = [Path(r["path"]).name for r in body]
    # sorted walk: top-level files first, then sub-folders; one row per face or per file
    assert names == ["broken.jpg", "crop1.png", "hopper.jpg", "three.png", "three.png", "three.png", "crop2.png"]
    broken = body[0]
    assert broken["status"].startswith("unreadable: not an image") and broken["emotion"] == "" and broken["p_sad"] == ""
    c1 = body[1]
    assert c1["status"] == "ok" and c1["face"] == "0" and c1["x"] == "" and c1["emotion"] in CLASSES
    assert sum(float(c1[f"p_{c}"]) for c in CLASSES) == pytest.approx(1, abs=1e-4)
    assert float(c1["confidence"]) == max(float(c1[f"p_{c}"]) for c in CLASSES)
    three = body[3:6]
    assert [r["face"] for r in three] == ["0", "1", "2"]
    assert [int(r["x"]) for r in three] == sorted(int(r["x"]) for r in three)
    assert all(int(r["w"]) > 100 for r in three)
    # the summary
    assert "tiny: 5 file(s), 6 face(s) in 4 file(s), 0 without a face, 1 unreadable" in out
    assert "emotions: " in out and "mean confidence: " in out
    assert "broken.jpg: not an image" in out
    assert "notes.txt: not an image file (extension)" in out
    assert f"wrote {out_csv}" in out
    # the same numbers as the API
    api = P.load_predictor(model_dir).predict_batch(P.iter_image_paths([photos])[0], progress=False)
    assert [r.emotion or "" for r in api] == [r["emotion"] for r in body]
    np.testing.assert_allclose(
        [float(r["p_sad"]) for r in body if r["status"] == "ok"],
        [r.probabilities["sad"] for r in api if r.ok],
        atol=1e-5,
    )


def test_predict_without_csv_prints_rows(capsys, model_dir, photos):
    code, out, _ = run(
        capsys, "predict", "--model", model_dir, photos / "crop1.png", photos / "hopper.jpg", "--faces", "off", "--tta"
    )
    assert code == 0
    assert "crop1.png" in out and "hopper.jpg" in out and "2 face(s) in 2 file(s)" in out


def test_predict_progress_bar_for_long_batches(capsys, model_dir, tmp_path):
    for i in range(25):
        Image.fromarray(crop(100 + i)).save(tmp_path / f"c{i:02d}.png")
    code, out, err = run(capsys, "predict", "--model", model_dir, tmp_path, "--csv", tmp_path / "p.csv")
    assert code == 0 and "25 face(s)" in out
    assert "predict" in err and "img" in err  # tqdm on stderr
    code, _, err = run(capsys, "predict", "--model", model_dir, tmp_path, "--no-progress")
    assert code == 0 and err == ""


def test_predict_no_face_is_not_a_failure(capsys, model_dir, tmp_path):
    Image.fromarray(np.full((300, 400), 200, np.uint8)).save(tmp_path / "wall.png")
    code, out, _ = run(capsys, "predict", "--model", model_dir, tmp_path / "wall.png", "--csv", tmp_path / "p.csv")
    assert code == 0 and "1 without a face" in out
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[1][HEADER.index("status")] == "no_face" and rows[1][HEADER.index("face")] == ""


@pytest.mark.parametrize("case", ["missing", "empty", "only_text", "all_unreadable"])
def test_predict_nothing_to_do_fails(capsys, model_dir, tmp_path, case):
    target = tmp_path / case
    if case != "missing":
        target.mkdir()
    if case == "only_text":
        (target / "a.txt").write_text("x")
    if case == "all_unreadable":
        (target / "a.jpg").write_text("x")
        (target / "b.png").write_bytes(b"")
    code, out, err = run(capsys, "predict", "--model", model_dir, target)
    assert code != 0
    assert "error" in err
    if case == "all_unreadable":
        assert "every file was unreadable" in err and "a.jpg" in out
    else:
        assert "no images to predict" in err and str(target) in err


def test_predict_some_missing_paths_still_work(capsys, model_dir, photos, tmp_path):
    code, out, _ = run(capsys, "predict", "--model", model_dir, photos / "crop1.png", tmp_path / "nope.png")
    assert code == 0 and "nope.png: not found" in out


def test_missing_model_dir(capsys, photos, tmp_path):
    code, _, err = run(capsys, "predict", "--model", tmp_path / "no_model", photos)
    assert code == 1 and "model folder not found" in err


def test_bad_command_lines_exit_2(capsys, model_dir, photos):
    # (predict without --model is valid: the default model, tests/code/test_default_model.py)
    for argv in (
        [],
        ["predict"],
        ["predict", "--model", model_dir, photos, "--faces", "maybe"],
        ["predict", "--model", model_dir, photos, "--batch-size", "0"],
        ["fly"],
    ):
        with pytest.raises(SystemExit) as e:
            cli.main([str(a) for a in argv])
        assert e.value.code == 2
    capsys.readouterr()


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["evaluate", "--help"], ["export", "--help"]])
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: emolib")
    assert {"--help": "predict", "predict": "--csv", "evaluate": "--data", "export": "--quantize"}[argv[0]] in text


def test_evaluate_matches_predict_batch(capsys, model_dir, tmp_path):
    pytest.importorskip("emolib.evaluate", reason="emolib.evaluate (classification_metrics) not importable yet")
    data = tmp_path / "labelled"
    layout = {"Anger": 5, "sadness": 4, "surprise": 3, "happy": 2}  # happy: not a class of the model
    seed = 0
    for folder, n in layout.items():
        (data / folder).mkdir(parents=True)
        for _ in range(n):
            seed += 1
            Image.fromarray(crop(seed)).save(data / folder / f"{seed}.png")
    (data / "sadness" / "bad.png").write_text("x")  # unreadable: reported, not counted
    out_json = tmp_path / "eval.json"
    code, out, err = run(capsys, "evaluate", "--model", model_dir, "--data", data, "--json", out_json)
    assert code == 0, err
    assert "skipped folder 'happy' (2 images)" in out

    predictor = P.load_predictor(model_dir)
    truth, paths = [], []
    for folder, label in [("Anger", 0), ("sadness", 1), ("surprise", 2)]:
        for p in sorted((data / folder).glob("*.png")):
            if p.name != "bad.png":
                paths.append(p)
                truth.append(label)
    rows = predictor.predict_batch(paths, faces="off", progress=False)
    pred = [CLASSES.index(r.emotion) for r in rows]
    acc = float(np.mean(np.array(pred) == np.array(truth)))
    report = json.loads(out_json.read_text())
    assert report["metrics"]["accuracy"] == pytest.approx(acc)
    assert report["accuracy"] == pytest.approx(acc)
    assert report["n_evaluated"] == 12 and report["n_images"] == 13
    assert report["per_class"] == {"angry": 5, "sad": 4, "surprise": 3}
    assert report["ignored_folders"] == {"happy": 2}
    assert [Path(u["path"]).name for u in report["not_usable"]] == ["bad.png"]
    assert f"accuracy: {acc:.4f}" in out and "macro-F1: " in out


def test_evaluate_missing_data(capsys, model_dir, tmp_path):
    code, _, err = run(capsys, "evaluate", "--model", model_dir, "--data", tmp_path / "nope")
    assert code == 1 and "not found" in err
