"""The camera's kernel side (emolib.camera), the video checks (emolib.uploads) and the playground's
video analysis (emolib.playground.analyse_video), without a browser (see tests/browser for that)."""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest

from emolib import camera as C
from emolib import uploads as U
from emolib.predict import Predictor
from tests.clips import face_frames, hopper_path, write_mp4

CLASSES = ("angry", "sad", "surprise")


class FakePredictor:
    """Predictor's interface for the camera (classes, size, score_rows, face_result); fixed scores.
    With `p_other` it has an 'other' head (threshold 0.5) that gives every face that p_other."""

    classes, size = CLASSES, 48
    face_result = Predictor.face_result  # the real decision ('other' above the threshold)

    def __init__(self, hook=None, p_other: float | None = None):
        self.calls, self.hook, self.p_other = 0, hook, p_other
        self.other_threshold = None if p_other is None else 0.5

    def predict_arrays(self, x):
        x = np.asarray(x)
        assert x.shape[1:3] == (self.size, self.size), x.shape
        self.calls += 1
        if self.hook:
            self.hook()
        return np.tile(np.array([[0.1, 0.7, 0.2]], np.float32), (len(x), 1))

    def score_rows(self, x):
        probs = self.predict_arrays(x)
        return probs if self.p_other is None else np.concatenate([probs, np.full((len(probs), 1), self.p_other)], 1)


def jpeg(arr, quality=85) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    """A 320x240 webcam-like frame with Grace Hopper's face, as the browser sends it."""
    from PIL import Image

    frame = face_frames([hopper_path()], 1, size=(640, 480))[0]
    return jpeg(np.asarray(Image.fromarray(frame).resize((320, 240))))


@pytest.mark.parametrize("p_other, emotion", [(0.9, "other"), (0.2, "sad")])
def test_a_camera_face_can_be_other(face_jpeg, p_other, emotion):
    """With an 'other' head the camera answers 'other' above its threshold and keeps the probabilities."""
    out = C.analyse_frame(face_jpeg, FakePredictor(p_other=p_other))
    face = out["faces"][0]
    assert face["emotion"] == emotion and face["p_other"] == pytest.approx(p_other)
    assert face["probs"] == pytest.approx(dict(zip(CLASSES, [0.1, 0.7, 0.2])))
    assert face["confidence"] == pytest.approx(p_other if emotion == "other" else 0.7)


def test_face_frame_gives_boxes_labels_and_probabilities(face_jpeg):
    h = C.FrameHandler(FakePredictor())
    msg = h.handle(7, face_jpeg)
    assert msg["type"] == "result" and msg["seq"] == 7
    assert msg["status"] == "ok", msg["status"]
    assert (msg["width"], msg["height"]) == (320, 240)
    assert len(msg["faces"]) == 1
    face = msg["faces"][0]
    x, y, w, hh = face["box"]
    assert 0 <= x and 0 <= y and x + w <= 320 and y + hh <= 240 and w >= 40
    assert face["emotion"] == "sad" and face["confidence"] == pytest.approx(0.7)
    assert set(face["probs"]) == set(CLASSES) and sum(face["probs"].values()) == pytest.approx(1.0)
    assert msg["message"] == "1 face(s)"
    assert 'class="emolib-probs"' in msg["panel_html"] and "face 0: sad (70%)" in msg["panel_html"]
    assert msg["timeline_svg"].startswith('<svg class="emolib-timeline"')
    import json

    json.dumps(msg)  # the answer travels as JSON: plain types only


@pytest.mark.parametrize(
    "data, status",
    [
        (b"", "unreadable: empty file (0 bytes)"),
        (b"garbage" * 10, "unreadable: not an image file"),
        (None, "unreadable: no frame bytes (NoneType)"),
        ("a string", "unreadable: no frame bytes (str)"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 200, "unreadable:"),  # a JPEG header and nothing else
        (b"\xff" * (C.MAX_FRAME_BYTES + 1), "unreadable: a frame of 2,000,001 bytes is over the 2,000,000 byte limit"),
    ],
)
def test_bad_bytes_give_a_status_and_never_raise(data, status):
    pred = FakePredictor()
    msg = C.FrameHandler(pred).handle(1, data)
    assert msg["seq"] == 1 and msg["faces"] == []
    assert msg["status"].startswith(status), msg["status"]
    assert pred.calls == 0


def test_truncated_jpeg_and_bomb_header(face_jpeg):
    from tests.helpers import header_only_png

    h = C.FrameHandler(FakePredictor())
    assert h.handle(1, face_jpeg[: len(face_jpeg) // 3])["status"].startswith("unreadable: corrupt or truncated")
    msg = h.handle(2, header_only_png(20_000, 20_000))
    assert msg["status"].startswith("unreadable: refused as a possible decompression bomb"), msg["status"]


def test_frame_without_a_face_and_blank_frame():
    rng = np.random.default_rng(0)
    h = C.FrameHandler(FakePredictor())
    assert h.handle(1, jpeg(rng.integers(0, 255, (240, 320, 3))))["status"] == "no_face"
    msg = h.handle(2, jpeg(np.full((240, 320), 128)))
    assert msg["status"] == "no_face" and msg["message"] == "no face found in the frame"
    assert "no face found" in msg["panel_html"]
    # a face crop used whole (faces='off') that is flat: 'blank', not a prediction
    blank = C.analyse_frame(jpeg(np.full((64, 64), 90)), FakePredictor(), faces="off")
    assert blank["status"] == "blank"


def test_a_failing_model_gives_an_error_status_and_the_next_frame_works(face_jpeg):
    def boom():
        raise RuntimeError("model exploded")

    h = C.FrameHandler(FakePredictor(hook=boom))
    msg = h.handle(1, face_jpeg)
    assert msg["status"] == "error: RuntimeError: model exploded" and msg["faces"] == []
    assert not h.busy
    h.predictor = FakePredictor()
    assert h.handle(2, face_jpeg)["status"] == "ok"


def test_one_frame_in_flight_a_second_one_is_dropped_not_queued(face_jpeg):
    """A frame arriving while another is analysed (a re-entrant call) is answered 'busy' at once."""
    inner = []
    h = None

    def reenter():
        inner.append(h.handle(2, face_jpeg))

    pred = FakePredictor(hook=reenter)
    h = C.FrameHandler(pred)
    outer = h.handle(1, face_jpeg)
    assert outer["seq"] == 1 and outer["status"] == "ok"
    assert [m["seq"] for m in inner] == [2] and inner[0]["status"] == "busy" and inner[0]["faces"] == []
    assert pred.calls == 1  # the busy frame never reached the model
    assert h.counts == {"frames": 2, "answered": 1, "busy": 1, "ok": 1}
    pred.hook = None
    assert h.handle(3, face_jpeg)["status"] == "ok" and not h.busy


def test_every_frame_is_answered_once_with_its_seq(face_jpeg):
    h = C.FrameHandler(FakePredictor())
    seqs = [1, 2, 3, "x", None, 10]
    answers = [h.handle(s, face_jpeg if i % 2 else b"junk") for i, s in enumerate(seqs)]
    assert [a["seq"] for a in answers] == seqs
    assert h.counts["answered"] == len(seqs)


def test_the_model_loads_on_the_first_frame_and_can_be_switched(face_jpeg):
    loads = []

    def load():
        loads.append(1)
        return FakePredictor()

    h = C.FrameHandler(load)
    assert loads == []
    h.handle(1, face_jpeg)
    h.handle(2, face_jpeg)
    assert loads == [1]
    assert h.timeline is not None
    h.predictor = load
    assert h.timeline is None  # a new model may have other classes: the timeline restarts
    h.handle(3, face_jpeg)
    assert loads == [1, 1]


def test_timeline_svg_about_once_a_second_over_the_last_minute(face_jpeg):
    now = [100.0]
    h = C.FrameHandler(FakePredictor(), clock=lambda: now[0])
    svgs = []
    for _ in range(25):  # 5 frames per second for 5 s
        svgs.append("timeline_svg" in h.handle(0, face_jpeg))
        now[0] += 0.2
    assert 4 <= sum(svgs) <= 6
    tl = h.timeline
    assert len(tl.points) == 25
    now[0] += 61
    svg = tl.svg(now[0])
    assert len(tl.points) == 0 and "no face in the last 60 s" in svg


def test_timeline_lines_break_over_gaps():
    tl = C.Timeline(CLASSES, window_s=60, gap_s=2)
    p = {"angry": 0.2, "sad": 0.5, "surprise": 0.3}
    for t in (0, 0.5, 1, 1.5, 10, 10.5):  # two runs of frames with faces, 8.5 s apart
        tl.add(t, p)
    tl.add(11, None)  # a frame without a face adds no point
    svg = tl.svg(11)
    assert svg.count("<polyline") == 2 * len(CLASSES)
    for c in CLASSES:
        assert f">{c}</text>" in svg
    assert "<circle" not in svg
    tl.add(20, {"angry": 1.0, "sad": 0.0, "surprise": 0.0})  # a lone point: a dot per class
    assert tl.svg(20).count("<circle") == len(CLASSES)


def test_camera_widget_answers_frames_by_message(face_jpeg, monkeypatch):
    pytest.importorskip("anywidget")
    sent = []
    cam = C.camera_widget(C.FrameHandler(FakePredictor()))
    monkeypatch.setattr(cam, "send", lambda content, buffers=None: sent.append(content))
    cam._on_frame(cam, {"type": "frame", "seq": 5}, [memoryview(face_jpeg)])
    cam._on_frame(cam, {"type": "other"}, [])  # not a frame: ignored
    cam._on_frame(cam, {"type": "frame", "seq": 6}, [])  # no buffer: a status, not an exception
    assert [(m["seq"], m["status"]) for m in sent] == [(5, "ok"), (6, "unreadable: empty file (0 bytes)")]
    assert (cam.width, cam.height) == (C.FRAME_WIDTH, C.FRAME_HEIGHT)


def test_the_esm_ships_in_the_package_and_loads_nothing_from_the_network():
    js = C.ESM_FILE.read_text(encoding="utf-8")
    assert "getUserMedia" in js and "export default" in js
    import re

    assert not re.search(r"^\s*import\s|\bimport\s*\(|\bfetch\s*\(|XMLHttpRequest|src\s*=\s*[\"']http", js, re.M)
    # back-pressure: a frame is sent only when none is in flight, and the answer clears it
    assert "if (!running || inFlight !== null) return;" in js
    assert "msg.seq !== inFlight" in js


# -- videos -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hopper_mp4(tmp_path_factory):
    frames = face_frames([hopper_path()], 20, size=(320, 240), face_height=200)
    return write_mp4(tmp_path_factory.mktemp("clip") / "hopper.mp4", frames, fps=10)


def test_sniff_video_containers():
    assert U.sniff_video(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20) == "MP4"
    assert U.sniff_video(b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 20) == "MOV"
    assert U.sniff_video(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01B\x82\x84webm") == "WebM"
    assert U.sniff_video(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01B\x82\x88matroska") == "MKV"
    assert U.sniff_video(b"RIFF\x00\x00\x00\x00AVI LIST") == "AVI"
    for other in (b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"ftyp"):
        assert U.sniff_video(other) is None


def test_check_video_upload_limits(hopper_mp4):
    data = hopper_mp4.read_bytes()
    assert U.check_video_upload([{"name": "a/b/clip.mp4", "content": data}]) == ("clip.mp4", data, "MP4")
    refusals = {
        "big.mp4": (data[:12] + b"\x00" * 50_000_000, "big.mp4: 50.0 MB is over the 50 MB limit for a video"),
        "notes.mp4": (b"just some text" * 10, "notes.mp4: not a video file (or not one of MP4, MOV, WebM, MKV, AVI)"),
        "empty.mp4": (b"", "empty.mp4: empty file (0 bytes)"),
    }
    for name, (content, message) in refusals.items():
        with pytest.raises(U.UploadRefused) as e:
            U.check_video_upload([{"name": name, "content": content}])
        assert str(e.value) == message
    with pytest.raises(U.UploadRefused, match="no file received"):
        U.check_video_upload(())


def test_probe_video(hopper_mp4, tmp_path):
    info = U.probe_video(str(hopper_mp4), "clip.mp4")
    assert (info.frames, info.fps, info.width, info.height) == (20, 10.0, 320, 240) and info.seconds == 2.0
    with pytest.raises(U.UploadRefused, match=r"clip.mp4: 2 s long; the limit is 1 s"):
        U.probe_video(str(hopper_mp4), "clip.mp4", U.VideoLimits(max_seconds=1))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 5000)
    with pytest.raises(U.UploadRefused, match="bad.mp4: corrupt video"):
        U.probe_video(str(bad), "bad.mp4")


class FakeVideoResult:
    def __init__(self, rows):
        self.rows = rows
        self.tracks = [
            {
                "track": 0,
                "duration_s": 1.8,
                "dominant_emotion": "sad",
                "emotion_share": {"angry": 0.0, "sad": 1.0, "surprise": 0.0},
            }
        ]
        self.status, self.note = "ok", None

    def timeline_figure(self, track):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 2))
        ax.plot([r["time_s"] for r in self.rows], [r["p_sad"] for r in self.rows])
        return fig


@pytest.fixture
def fake_video(monkeypatch):
    """A stand-in emolib.video.predict_video: one face per frame, as the real one's rows look."""
    calls = []

    def predict_video(
        predictor, path, *, every=None, fps=None, detector=None, smoothing_s=1.0, out_dir=None, annotate=False
    ):
        from pathlib import Path

        assert Path(path).is_file() and out_dir is None and not annotate
        calls.append({"path": str(path), "fps": fps})
        rows = [
            {
                "path": str(path),
                "frame": f,
                "time_s": f / 10,
                "track": 0,
                "x": 100,
                "y": 30,
                "w": 120,
                "h": 120,
                "status": "ok",
                "emotion": "sad",
                "confidence": 0.6 + f / 100,
                "p_angry": 0.2,
                "p_sad": 0.6,
                "p_surprise": 0.2,
            }
            for f in range(0, 20, 2)
        ]
        return FakeVideoResult(rows)

    mod = types.ModuleType("emolib.video")
    mod.predict_video = predict_video
    monkeypatch.setitem(sys.modules, "emolib.video", mod)
    return calls


def test_analyse_video_timelines_and_key_frames_temp_file_removed(hopper_mp4, fake_video, tmp_path, monkeypatch):
    import tempfile

    from emolib.playground import analyse_video, video_html

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    res = analyse_video("clip.mp4", hopper_mp4.read_bytes(), "MP4", FakePredictor())
    assert fake_video[0]["path"].startswith(str(tmp_path / "tmp")) and fake_video[0]["fps"] == 5.0
    assert fake_video[0]["path"].endswith("/clip.mp4")
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary copy is gone
    assert len(res["timelines"]) == 1 and res["timelines"][0][1].startswith("data:image/png;base64,")
    assert 1 <= len(res["frames"]) <= 4
    assert 18 in [f for f, _, _ in res["frames"]]  # the most confident frame of track 0
    page = video_html(res)
    assert {r["path"] for r in res["rows"]} == {"clip.mp4"}  # not the temporary file's name
    for part in (
        "clip.mp4</b>: 320x240, 2.0 s at 10.0 fps, 1 face track(s)",
        "emolib-video-tracks",
        "<th>sad share</th>",
        "<td>100%</td>",
        "emolib-video-timeline",
        "emolib-video-frames",
        "video_predictions.csv",
    ):
        assert part in page


def test_analyse_video_removes_the_temp_file_on_errors(fake_video, tmp_path, monkeypatch):
    import tempfile

    from emolib.playground import analyse_video

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(U.UploadRefused, match="corrupt video"):
        analyse_video("bad.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 5000, "MP4", FakePredictor())
    assert list(tmp_path.iterdir()) == []


# -- the playground's tabs, with a real (tiny) model ------------------------------------


def _walk(x):
    yield x
    for c in getattr(x, "children", ()):
        yield from _walk(c)


def test_playground_camera_and_video_tabs(model_dir, face_jpeg, hopper_mp4, fake_video, tmp_path, monkeypatch):
    """app(): tabs Photos / Camera / Video; a frame sent to the camera widget gets the real model's answer,
    a video upload gets its timeline and key frames, a non-video a message; no file is left behind."""
    pytest.importorskip("anywidget")
    import tempfile

    import ipywidgets as w

    from emolib import playground
    from tests.helpers import entry

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ui = playground.app(model_dir)
    assert isinstance(ui, w.Tab) and ui.titles == ("Photos", "Camera", "Video")
    cam = next(x for x in _walk(ui.children[1]) if isinstance(x, C._widget_class()))
    sent = []
    monkeypatch.setattr(cam, "send", lambda content, buffers=None: sent.append(content))
    cam._on_frame(cam, {"type": "frame", "seq": 1}, [face_jpeg])
    assert sent[0]["status"] == "ok" and len(sent[0]["faces"]) == 1, sent[0]["status"]
    assert sent[0]["classes"] == list(sent[0]["faces"][0]["probs"])
    upload = next(x for x in _walk(ui.children[2]) if isinstance(x, w.FileUpload))
    out = next(x for x in _walk(ui.children[2]) if "emolib-video-output" in x._dom_classes)
    upload.value = [entry("clip.mp4", hopper_mp4.read_bytes(), "video/mp4")]
    assert "emolib-video-timeline" in out.value and "emolib-video-frames" in out.value
    assert upload.value == ()  # the bytes are dropped
    upload.value = [entry("notes.mp4", b"no video here" * 10, "video/mp4")]
    status = [x for x in ui.children[2].children if isinstance(x, w.HTML)][-2]
    assert "notes.mp4: not a video file" in status.value and out.value == ""
    assert [p for p in tmp_path.iterdir() if not p.name.startswith("__autograph")] == []


def test_video_tab_without_emolib_video(model_dir, monkeypatch):
    import ipywidgets as w

    from emolib import playground

    monkeypatch.setitem(sys.modules, "emolib.video", None)  # import fails, as before emolib.video exists
    ui = playground.app(model_dir)
    assert isinstance(ui.children[2], w.HTML) and "Video support is not installed" in ui.children[2].value
    with pytest.raises(ImportError, match="video support is not installed"):
        playground.analyse_video("a.mp4", b"", "MP4", FakePredictor())


@pytest.mark.parametrize("name", ["..", "../../etc/x.mp4", "<script>.mp4", "a\nb.webm", ".mp4", "é ü (1).mov"])
def test_the_temporary_copy_stays_in_its_folder_whatever_the_name(name, hopper_mp4, fake_video, tmp_path, monkeypatch):
    import tempfile
    from pathlib import Path

    from emolib.playground import analyse_video

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    analyse_video(U.clean_name(name), hopper_mp4.read_bytes(), "MP4", FakePredictor())
    written = Path(fake_video[0]["path"])
    assert written.parent.parent == tmp_path and written.suffix == ".mp4" and written.name.count("/") == 0
    assert list(tmp_path.iterdir()) == []
