"""Predictor: inputs of every kind, bad files in a batch, single == batch, TTA."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")
cbook = pytest.importorskip("matplotlib.cbook")

from emolib import predict as P  # noqa: E402
from emolib.images import read_image  # noqa: E402
from tests.helpers import CLASSES, face_crop, make_model_dir  # noqa: E402, F401 - shared stand-ins


@pytest.fixture(scope="module")
def hopper_path() -> str:
    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, hopper_path) -> tuple[Path, dict[str, str]]:
    """Good and bad files side by side; expected status per file name ('ok*' = ok)."""
    d = tmp_path_factory.mktemp("mixed")
    expect = {}
    Image.fromarray(face_crop(1)).save(d / "a_gray.png")
    expect["a_gray.png"] = "ok"
    shutil.copy(hopper_path, d / "b_hopper.jpg")
    expect["b_hopper.jpg"] = "ok"
    buf = io.BytesIO()
    Image.fromarray(face_crop(2)).save(buf, "JPEG", quality=90)
    (d / "c_corrupt.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    expect["c_corrupt.jpg"] = "unreadable"
    (d / "d_text.jpg").write_text("this is not a picture\n")
    expect["d_text.jpg"] = "unreadable"
    rgba = np.dstack([face_crop(3)] * 3 + [np.full((48, 48), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "e_rgba.png")
    expect["e_rgba.png"] = "ok"
    Image.fromarray(face_crop(4).astype(np.uint16) * 257).save(d / "f_16bit.png")
    expect["f_16bit.png"] = "ok"
    Image.fromarray(face_crop(5)).convert("CMYK").save(d / "g_cmyk.jpg")
    expect["g_cmyk.jpg"] = "ok"
    Image.fromarray(face_crop(6)).convert("P").save(d / "h_palette.gif")
    expect["h_palette.gif"] = "ok"
    Image.fromarray(face_crop(7)[:4, :4]).save(d / "i_tiny.png")
    expect["i_tiny.png"] = "unreadable"
    # 10000x10000 1-bit: a few KiB on disk, 100 megapixels decoded -> refused as a bomb.
    Image.new("1", (10_000, 10_000)).save(d / "j_bomb.png", optimize=True)
    expect["j_bomb.png"] = "unreadable"
    Image.fromarray(np.full((300, 400), 210, np.uint8)).save(d / "k_blank_photo.png")
    expect["k_blank_photo.png"] = "no_face"
    (d / "notes.txt").write_text("skipped: not an image extension")
    return d, expect


def test_card_and_input(predictor):
    assert predictor.classes == tuple(CLASSES)
    assert predictor.size == 48
    assert predictor.model_name == "tiny"


def test_missing_model_dir_and_files(tmp_path, model_dir):
    with pytest.raises(P.ModelDirError, match="not found"):
        P.load_predictor(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(P.ModelDirError, match="model.keras"):
        P.load_predictor(tmp_path / "empty")
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(model_dir / "model.keras", half / "model.keras")
    with pytest.raises(P.ModelDirError, match="model.json"):
        P.load_predictor(half)
    (half / "model.json").write_text(json.dumps({"classes": ["angry", "sad"]}))  # 3 outputs, 2 classes
    with pytest.raises(P.ModelDirError, match="3 outputs"):
        P.load_predictor(half)
    (half / "model.keras").write_bytes(b"garbage")
    with pytest.raises(P.ModelDirError, match="corrupt or truncated"):
        P.load_predictor(half)
    # The path of model.keras itself is accepted too.
    assert P.load_predictor(model_dir / "model.keras").classes == tuple(CLASSES)


def test_every_input_kind_gives_the_same_answer(predictor, tmp_path):
    crop = face_crop(11)
    path = tmp_path / "crop.png"
    Image.fromarray(crop).save(path)
    results = [
        predictor.predict(path),
        predictor.predict(str(path)),
        predictor.predict(Image.open(path)),
        predictor.predict(path.read_bytes()),
        predictor.predict(crop),
        predictor.predict(crop.astype(np.float32) / 255.0),  # floats in 0..1
        predictor.predict(np.dstack([crop] * 3)),  # RGB array
    ]
    ref = results[0][0]
    assert ref.status == "ok" and ref.face == 0 and ref.box is None  # 48x48: used whole
    assert ref.emotion in CLASSES and ref.confidence == max(ref.probabilities.values())
    assert sum(ref.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    for res in results[1:]:
        [r] = res
        assert r.emotion == ref.emotion
        np.testing.assert_allclose(list(r.probabilities.values()), list(ref.probabilities.values()), atol=2e-3)


def test_photo_detects_faces_and_modes(predictor, hopper_path):
    [r] = predictor.predict(hopper_path)
    assert r.status == "ok" and r.box is not None and r.path == hopper_path
    [whole] = predictor.predict(hopper_path, faces="off")
    assert whole.box is None and whole.status == "ok"
    gray = read_image(hopper_path)
    canvas = np.full((gray.shape[0] + 40, 2 * gray.shape[1] + 60), 128, np.uint8)
    canvas[20:-20, 20 : 20 + gray.shape[1]] = gray
    canvas[20:-20, 40 + gray.shape[1] : 40 + 2 * gray.shape[1]] = gray
    two = predictor.predict(canvas)
    assert [t.face for t in two] == [0, 1] and two[0].box[0] < two[1].box[0]
    # The same face twice: the same prediction.
    np.testing.assert_allclose(list(two[0].probabilities.values()), list(two[1].probabilities.values()), atol=0.02)
    with pytest.raises(ValueError):
        predictor.predict(hopper_path, faces="sometimes")


def test_no_face_and_unreadable_rows(predictor, tmp_path):
    [r] = predictor.predict(np.full((48, 48), 128, np.uint8), faces="on")
    assert r.status == "no_face" and r.emotion is None and r.probabilities == {} and r.face is None
    [r] = predictor.predict(np.full((400, 300), 128, np.uint8))  # auto: a photo without a face
    assert r.status == "no_face"
    [r] = predictor.predict(tmp_path / "missing.png")
    assert r.status == "unreadable: file not found"
    [r] = predictor.predict(b"not an image")
    assert r.status.startswith("unreadable: not an image file")


def test_batch_with_bad_files_never_aborts(predictor, mixed_folder):
    folder, expect = mixed_folder
    paths, skipped = P.iter_image_paths([folder])
    assert [p.name for p in paths] == sorted(expect)
    assert [(p.name, why) for p, why in skipped] == [("notes.txt", "not an image file (extension)")]
    rows = predictor.predict_batch(paths, batch_size=3, progress=False)
    by_name = {Path(r.path).name: r for r in rows}
    assert len(rows) == len(expect)  # one face per good file here
    for name, status in expect.items():
        got = by_name[name].status
        assert got.split(":")[0] == status, (name, got)
        if status == "unreadable":
            assert len(got) > len("unreadable: ") and str(folder) not in got  # a reason, without the path
    assert "too small" in by_name["i_tiny.png"].status
    assert "bomb" in by_name["j_bomb.png"].status
    assert "corrupt or truncated" in by_name["c_corrupt.jpg"].status
    assert by_name["b_hopper.jpg"].box is not None and by_name["a_gray.png"].box is None


def test_single_equals_batch(predictor, mixed_folder, hopper_path):
    folder, _ = mixed_folder
    paths, _ = P.iter_image_paths([folder, hopper_path])
    for bs in (1, 4, 64):
        rows = predictor.predict_batch(paths, batch_size=bs, progress=False)
        single = [r for p in paths for r in predictor.predict(p)]
        assert [(r.path, r.face, r.box, r.status) for r in rows] == [(r.path, r.face, r.box, r.status) for r in single]
        for a, b in zip(rows, single):
            if a.ok:
                np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5)


def test_batch_of_arrays_and_progress(predictor, capsys):
    crops = [face_crop(i) for i in range(25)]
    rows = predictor.predict_batch(crops, batch_size=8, progress=True)
    assert len(rows) == 25 and all(r.ok for r in rows)
    assert rows[3].path == "<ndarray #3>"
    ref = predictor.predict_arrays(np.stack(crops))
    np.testing.assert_allclose([list(r.probabilities.values()) for r in rows], ref, atol=1e-5)
    assert "predict" in capsys.readouterr().err  # the tqdm bar, on stderr


def test_tta_is_the_mean_over_the_views(model_dir):
    from emolib import tta as T

    plain = P.load_predictor(model_dir)
    tta = P.load_predictor(model_dir, tta=True)
    crop = face_crop(21)
    [r] = tta.predict(crop)
    assert crop.shape == (plain.size, plain.size)  # used as it is, no resizing
    each = plain.predict_arrays(T.views(crop[None, ..., None].astype(np.float32)))
    assert each.shape == (T.N_VIEWS, len(plain.classes))
    assert np.abs(each[0] - each[1]).max() > 1e-5  # the mirror does change this asymmetric crop
    assert np.abs(each[0] - each[2]).max() > 1e-5  # and so does the zoom
    np.testing.assert_allclose(each[0], plain.predict_arrays(crop[None])[0], atol=1e-6)
    np.testing.assert_allclose(list(r.probabilities.values()), each.mean(axis=0), atol=1e-5)
    [b] = tta.predict_batch([crop], progress=False)
    np.testing.assert_allclose(list(b.probabilities.values()), each.mean(axis=0), atol=1e-5)


def test_iter_image_paths(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ["b/deep/z.png", "b/a.JPG", "c.png", "readme.md", ".DS_Store", ".hidden/x.png"]:
        (tmp_path / name).write_bytes(b"x")
    images, skipped = P.iter_image_paths(
        [tmp_path, tmp_path / "c.png", tmp_path / "missing.png", tmp_path / "readme.md"]
    )
    rel = [p.relative_to(tmp_path).as_posix() for p in images]
    assert rel == ["c.png", "b/a.JPG", "b/deep/z.png", "readme.md"]  # no duplicates; explicit files kept
    reasons = {p.name: why for p, why in skipped}
    assert reasons == {
        ".DS_Store": "hidden file",
        "readme.md": "not an image file (extension)",
        "missing.png": "not found",
    }


def test_face_result_row():
    r = P.FaceResult(
        face=1,
        box=(1, 2, 3, 4),
        emotion="sad",
        confidence=0.5,
        probabilities={"angry": 0.2, "sad": 0.5, "surprise": 0.3},
        path="x.png",
    )
    assert r.to_row(CLASSES) == {
        "path": "x.png",
        "face": 1,
        "x": 1,
        "y": 2,
        "w": 3,
        "h": 4,
        "status": "ok",
        "emotion": "sad",
        "confidence": 0.5,
        "p_angry": 0.2,
        "p_sad": 0.5,
        "p_surprise": 0.3,
    }
    assert P.csv_columns(CLASSES)[:9] == ["path", "face", "x", "y", "w", "h", "status", "emotion", "confidence"]
