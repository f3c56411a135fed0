"""emolib.video and `emolib predict` on videos: rows per sampled frame, sampling, tracks, bad files,
atomic outputs. Clips are generated here (matplotlib's grace_hopper.jpg moved across a canvas),
tiny and short, so the file needs no data and runs in well under a minute."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
keras = pytest.importorskip("keras")
cbook = pytest.importorskip("matplotlib.cbook")

from emolib import cli, video  # noqa: E402
from emolib.predict import iter_image_paths  # noqa: E402

FPS = 30.0
FACE_W = 110  # Haar finds grace_hopper reliably at this width on a 320x240 canvas


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    img = cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return cv2.resize(img, (FACE_W, round(FACE_W * img.shape[0] / img.shape[1])), interpolation=cv2.INTER_AREA)


def write_clip(path: Path, frames, fps: float = FPS, fourcc: str = "mp4v") -> Path:
    frames = list(frames)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def canvas(size=(320, 240), value=90) -> np.ndarray:
    return np.full((size[1], size[0], 3), value, np.uint8)


def paste(frame: np.ndarray, face: np.ndarray, x: int, y: int) -> None:
    fh, fw = face.shape[:2]
    frame[y : y + fh, x : x + fw] = face


def two_face_frames(hopper, n=30):
    """Two faces moving smoothly towards each other (not overlapping); returns frames and
    the left face's x per frame."""
    frames, xs = [], []
    for i in range(n):
        f = canvas()
        xa, xb = 2 + 2 * i, 320 - FACE_W - 2 - 2 * i
        paste(f, hopper, xa, 2 + i // 3)
        paste(f, hopper[:, ::-1], xb, 20 - i // 3)
        frames.append(f)
        xs.append(xa)
    return frames, xs


@pytest.fixture(scope="module")
def one_face_clip(tmp_path_factory, hopper) -> Path:
    frames = []
    for i in range(30):
        f = canvas()
        paste(f, hopper, 20 + 4 * i, 10 + int(8 * math.sin(i / 5)))
        frames.append(f)
    return write_clip(tmp_path_factory.mktemp("clips") / "one.mp4", frames)


@pytest.fixture(scope="module")
def noise_clip(tmp_path_factory) -> Path:
    """No face: 30 frames of smooth noise at 160x120."""
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (9, 9), 3) for _ in range(30)]
    return write_clip(tmp_path_factory.mktemp("clips") / "noise.mp4", frames)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if ".tmp-" in p.name]


# -- rows, sampling, summary ---------------------------------------------------------------
def test_rows_match_sampled_frames_and_csv(predictor, one_face_clip, tmp_path):
    r = video.predict_video(predictor, one_face_clip, out_dir=tmp_path / "out")
    assert r.status == "ok" and r.frames_read == r.frames_sampled == 30
    frames = [row["frame"] for row in r.rows]
    assert sorted(set(frames)) == list(range(30))  # every sampled frame has a row
    assert len(r.rows) == 30  # one face: one row per frame (face or no_face)
    assert all(row["status"] in ("ok", "no_face") for row in r.rows)
    assert sum(row["status"] == "ok" for row in r.rows) >= 25
    assert [row["time_s"] for row in r.rows] == pytest.approx([i / FPS for i in range(30)], abs=1e-3)
    rows = read_csv(tmp_path / "out" / "frames.csv")
    assert list(rows[0]) == video.video_csv_columns(predictor.classes)
    assert [int(x["frame"]) for x in rows] == frames
    ok = [x for x in rows if x["status"] == "ok"]
    assert all(x["emotion"] in predictor.classes for x in ok)
    assert all(sum(float(x[f"p_{c}"]) for c in predictor.classes) == pytest.approx(1, abs=1e-4) for x in ok)
    # one track; its shares of time add up to one and the dominant emotion is the largest share
    [t] = r.tracks
    assert t["track"] == 1 and sum(t["emotion_share"].values()) == pytest.approx(1)
    assert t["dominant_emotion"] == max(t["emotion_share"], key=t["emotion_share"].get)
    assert t["duration_s"] == pytest.approx(t["last_s"] - t["first_s"])
    summary = json.loads((tmp_path / "out" / "tracks.json").read_text())
    assert summary["status"] == "ok" and summary["frames_sampled"] == 30 and summary["tracks"][0]["track"] == 1
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"frames.csv", "tracks.json", "timeline_track1.png"}
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("bias, all_other", [(40.0, True), (-40.0, False)])
def test_an_other_head_labels_video_frames_other(predictor, one_face_clip, tmp_path, bias, all_other):
    """With an 'other' head, p_other is smoothed with the probabilities, written as a column, and a
    frame is 'other' when it reaches the threshold; summaries and timelines get an 'other' label."""
    from emolib.predict import OTHER, Predictor

    feat = predictor.model.layers[-2]  # the pooled features before the output
    head = {"layers": [feat.name], "weights": [0.0] * int(feat.output.shape[-1]), "bias": bias, "threshold": 0.5}
    p = Predictor(predictor.model, predictor.classes, card={"other": head})
    out = tmp_path / "out"
    r = video.predict_video(p, one_face_clip, out_dir=out, annotate=True)
    rows = read_csv(out / "frames.csv")
    assert list(rows[0]) == video.video_csv_columns(p.classes, other=True)
    ok = [x for x in rows if x["status"] == "ok"]
    assert ok and all((x["emotion"] == OTHER) is all_other for x in ok)
    assert all(float(x["p_other"]) == pytest.approx(float(all_other), abs=1e-6) for x in ok)
    assert all(sum(float(x[f"p_{c}"]) for c in p.classes) == pytest.approx(1, abs=1e-4) for x in ok)
    t = r.tracks[0]
    assert t["emotion_share"][OTHER] == pytest.approx(float(all_other)) and sum(t["emotion_share"].values()) == 1
    assert (t["dominant_emotion"] == OTHER) is all_other
    assert r.labels == (*p.classes, OTHER) and r.timelines[t["track"]]["smoothed"].shape[1] == len(r.labels)
    assert json.loads((out / "tracks.json").read_text())["other_threshold"] == 0.5
    assert (out / "annotated.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    "every, fps, expected",
    [
        (1, None, list(range(30))),
        (3, None, list(range(0, 30, 3))),
        (7, None, [0, 7, 14, 21, 28]),
        (None, 10.0, list(range(0, 30, 3))),
        (None, 7.5, list(range(0, 30, 4))),
        (None, 100.0, list(range(30))),  # more than the clip has: every frame, once
    ],
)
def test_every_and_fps_sample_the_right_frames(predictor, noise_clip, every, fps, expected):
    r = video.predict_video(predictor, noise_clip, every=every, fps=fps)
    assert r.status == "no_face" and r.frames_read == 30
    assert [row["frame"] for row in r.rows] == expected  # one no_face row per sampled frame
    assert all(row["status"] == "no_face" and row["track"] is None for row in r.rows)


class FakeCapture:
    """A capture with given timestamps (ms; None: the container has none)."""

    def __init__(self, times_ms):
        self.times, self.i = list(times_ms), -1

    def grab(self):
        self.i += 1
        return self.i < len(self.times)

    def retrieve(self):
        return True, np.zeros((8, 8, 3), np.uint8)

    def get(self, prop):
        assert prop == cv2.CAP_PROP_POS_MSEC
        t = self.times[self.i]
        return -1.0 if t is None else float(t)


def test_variable_frame_rate_uses_container_timestamps():
    times = [0, 10, 20, 100, 110, 190, 300, 900]
    s = video.FrameSampler(FakeCapture(times), 30.0, fps=10.0)
    got = [(i, round(t, 3)) for i, t, _ in s]
    # about 10 per second: the first frame at or after each 0.1 s step; the gap skips steps
    assert got == [(0, 0.0), (3, 0.1), (6, 0.3), (7, 0.9)]
    assert s.container_times == len(times) and s.fallback_times == 0


def test_frames_without_timestamps_use_index_and_frame_rate():
    s = video.FrameSampler(FakeCapture([0, None, None, None]), 25.0)
    assert [round(t, 3) for _, t, _ in s] == [0.0, 0.04, 0.08, 0.12]
    assert s.fallback_times == 3


def test_ema_makes_labels_steadier_than_frames(predictor, one_face_clip):
    """Smoothing: the smoothed label changes no more often than the raw one, and equals it with tau 0."""
    raw = video.predict_video(predictor, one_face_clip, smoothing_s=0.0)
    assert all(r["emotion"] == r["raw_emotion"] for r in raw.rows if r["status"] == "ok")
    smooth = video.predict_video(predictor, one_face_clip, smoothing_s=1.0)

    def changes(rows, key):
        labels = [r[key] for r in rows if r["status"] == "ok"]
        return sum(a != b for a, b in zip(labels, labels[1:]))

    assert changes(smooth.rows, "emotion") <= changes(smooth.rows, "raw_emotion")


# -- tracking in clips ---------------------------------------------------------------------
def test_two_faces_keep_stable_track_ids(predictor, hopper, tmp_path):
    frames, left_x = two_face_frames(hopper)
    clip = write_clip(tmp_path / "two.mp4", frames)
    r = video.predict_video(predictor, clip)
    ok = [row for row in r.rows if row["status"] == "ok"]
    assert len(r.tracks) == 2, r.tracks
    assert len(ok) >= 2 * 30 - 4
    for row in ok:  # the face on the left is always the same track
        on_left = abs(row["x"] - left_x[row["frame"]]) < abs(row["x"] - (320 - FACE_W - left_x[row["frame"]]))
        assert row["track"] == (1 if on_left else 2), row


def test_crossing_faces_keep_their_ids_between_detections(predictor, hopper, tmp_path, monkeypatch):
    """Two faces cross paths (the one behind hidden at the crossing). The detector is replaced by the
    true boxes, run every 3rd frame; in between the tracker carries the boxes."""
    n, fh = 40, hopper.shape[0]
    truth = {}
    frames = []
    for i in range(n):
        f = canvas((480, 240))
        xa, xb = 10 + 9 * i, 480 - FACE_W - 10 - 9 * i
        paste(f, hopper[:, ::-1], xb, 30)
        paste(f, hopper, xa, 20)  # in front
        frames.append(f)
        hidden = abs(xa - xb) < FACE_W // 2
        truth[i] = [("a", (xa, 20, FACE_W, fh))] + ([] if hidden else [("b", (xb, 30, FACE_W, fh))])
    clip = write_clip(tmp_path / "cross.mp4", frames)
    current = {"frame": 0}
    real_frame = video._Run.frame

    def frame(self, index, t, bgr):
        current["frame"] = index
        return real_frame(self, index, t, bgr)

    monkeypatch.setattr(video._Run, "frame", frame)
    monkeypatch.setattr(video, "_detect", lambda gray, detector: [b for _, b in truth[current["frame"]]])
    r = video.predict_video(predictor, clip, detect_interval_s=0.1, max_missed=3)
    face_of: dict[int, str] = {}
    for row in r.rows:
        if row["status"] != "ok":
            continue
        boxes = truth[row["frame"]]
        who = min(boxes, key=lambda wb: abs(wb[1][0] - row["x"]))[0] if len(boxes) > 1 else None
        if who is not None and min(abs(b[0] - row["x"]) for _, b in boxes) < 15:
            assert face_of.setdefault(row["track"], who) == who, (row, face_of)
    assert sorted(face_of) == [1, 2]
    assert len(r.tracks) == 2


def test_detection_runs_on_a_downscaled_copy(predictor, one_face_clip, monkeypatch):
    shapes = []
    real = video._detect
    monkeypatch.setattr(video, "_detect", lambda gray, det: shapes.append(gray.shape) or real(gray, det))
    r = video.predict_video(predictor, one_face_clip, detect_max_side=160, detect_interval_s=0)
    assert shapes and all(max(s) <= 160 for s in shapes) and len(shapes) == 30  # interval 0: every frame
    ok = [row for row in r.rows if row["status"] == "ok"]
    assert ok and all(row["w"] > 32 for row in ok)  # full-frame pixels (a downscaled box would be ~23)


# -- bad input and outputs -------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory, one_face_clip, noise_clip) -> Path:
    d = tmp_path_factory.mktemp("bad")
    data = one_face_clip.read_bytes()
    (d / "good.mp4").write_bytes(data)
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is lost
    (d / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (d / "notes.mov").write_text("not a video\n" * 20)
    w = cv2.VideoWriter(str(d / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (160, 120))
    w.release()  # a container without a frame
    avi = write_clip(d / "full.avi", [cv2.resize(f, (160, 120)) for f in [canvas()] * 20], fourcc="MJPG")
    avi_bytes = avi.read_bytes()
    avi.unlink()
    (d / "cut.avi").write_bytes(avi_bytes[: len(avi_bytes) // 2])  # frames until the cut
    (d / "empty.mkv").write_bytes(b"")
    return d


EXPECTED = {
    "good": "ok",
    "truncated": "unreadable",
    "random": "unreadable",
    "notes": "unreadable",
    "zero": "no_frames",
    "cut": "no_face",
    "empty": "unreadable",
}


def test_every_bad_video_gets_its_status_and_the_batch_goes_on(capsys, model_dir, bad_folder, tmp_path):
    out = tmp_path / "out"
    rc = cli.main(["predict", "--model", str(model_dir), str(bad_folder), "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    for stem, status in EXPECTED.items():
        summary = json.loads((out / stem / "tracks.json").read_text())
        assert summary["status"].split(":")[0] == status, (stem, summary)
        rows = read_csv(out / stem / "frames.csv")
        assert rows and all(r["status"].split(":")[0] in (status, "ok", "no_face") for r in rows)
    cut = json.loads((out / "cut" / "tracks.json").read_text())
    assert 0 < cut["frames_read"] < 20 and "truncated" in cut["note"]
    assert "empty file" in json.loads((out / "empty" / "tracks.json").read_text())["status"]
    assert "videos not processed (4)" in printed
    assert no_temp_files(out)


def test_only_unreadable_videos_fail_the_command(capsys, model_dir, bad_folder, tmp_path):
    rc = cli.main(
        [
            "predict",
            "--model",
            str(model_dir),
            str(bad_folder / "random.mp4"),
            str(bad_folder / "notes.mov"),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert rc == 1
    assert "nothing could be processed" in capsys.readouterr().err


def test_cli_mixed_folder_and_options(capsys, model_dir, one_face_clip, hopper, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "clip.MP4").write_bytes(one_face_clip.read_bytes())
    cv2.imwrite(str(d / "photo.png"), cv2.copyMakeBorder(hopper, 60, 60, 60, 60, cv2.BORDER_CONSTANT, value=(90,) * 3))
    found, _ = iter_image_paths([d], videos=True)
    assert sorted(p.name for p in found) == ["clip.MP4", "photo.png"]
    assert [p.name for p in iter_image_paths([d])[0]] == ["photo.png"]  # photo-only callers see no videos
    csv_path = tmp_path / "res" / "photos.csv"
    rc = cli.main(
        [
            "predict",
            "--model",
            str(model_dir),
            str(d),
            "--csv",
            str(csv_path),
            "--every",
            "2",
            "--annotate",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert [r["path"] for r in read_csv(csv_path)] == [str(d / "photo.png")]  # the photo CSV keeps photos
    clip_dir = tmp_path / "res" / "emolib_video" / "clip"  # default: emolib_video/ next to --csv
    rows = read_csv(clip_dir / "frames.csv")
    assert sorted({int(r["frame"]) for r in rows}) == list(range(0, 30, 2))
    cap = cv2.VideoCapture(str(clip_dir / "annotated.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 15 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 320
    assert no_temp_files(tmp_path)


def test_cli_bad_video_options_exit_2(capsys, model_dir, one_face_clip):
    for extra in (["--every", "0"], ["--fps", "-1"], ["--smoothing", "nan"], ["--every", "2", "--fps", "3"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["predict", "--model", str(model_dir), str(one_face_clip), *extra])
        assert e.value.code == 2


def test_interrupted_run_leaves_no_partial_output(predictor, one_face_clip, tmp_path, monkeypatch):
    out = tmp_path / "out"
    done = video.predict_video(predictor, one_face_clip, out_dir=out, annotate=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) >= {"frames.csv", "tracks.json", "annotated.mp4"}
    calls = {"n": 0}
    real = predictor.score_rows

    def dies(x, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # after the first batch has been written to the temp files
            raise KeyboardInterrupt
        return real(x, **kw)

    monkeypatch.setattr(predictor, "score_rows", dies)
    with pytest.raises(KeyboardInterrupt):
        video.predict_video(predictor, one_face_clip, out_dir=out, annotate=True, smoothing_s=0.1, batch_frames=4)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the finished outputs, untouched
    assert no_temp_files(out) and done.ok
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        calls["n"] = 0
        video.predict_video(predictor, one_face_clip, out_dir=fresh, annotate=True, batch_frames=4)
    assert list(fresh.iterdir()) == []


def test_api_writes_nothing_without_out_dir(predictor, one_face_clip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    r = video.predict_video(predictor, str(one_face_clip), on_progress=lambda i, n: seen.append((i, n)))
    assert list(tmp_path.iterdir()) == [] and r.written == {}
    assert seen[-1] == (30, 30) and len(seen) == 30
    fig = r.timeline_figure()
    assert len(fig.axes) == len(r.tracks) == 1
    tl = r.timelines[1]
    assert tl["smoothed"].shape == tl["raw"].shape == (len(tl["time_s"]), len(predictor.classes))
    with pytest.raises(ValueError):
        video.predict_video(predictor, one_face_clip, annotate=True)  # where would it go?
    with pytest.raises(ValueError):
        video.predict_video(predictor, one_face_clip, every=2, fps=5)


def test_frames_over_the_pixel_limit_are_refused(predictor, noise_clip, monkeypatch):
    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 100 * 100)
    r = video.predict_video(predictor, noise_clip)
    assert r.status.startswith("unreadable: 160x120 frames are over the 10,000-pixel limit")
    assert len(r.rows) == 1 and r.rows[0]["frame"] is None


def test_bench_video_writes_its_row(tmp_path, monkeypatch):
    """`make bench`'s video row on tiny clips: the JSON has the promised keys (no timing assertions)."""
    from emolib import bench_video

    monkeypatch.setattr(bench_video, "SIZE", (320, 240))
    monkeypatch.setattr(bench_video, "QUICK_SPEED_SECONDS", 1.0)
    monkeypatch.setattr(bench_video, "QUICK_MEMORY_SECONDS", 2.0)
    r = bench_video.run_video_bench(tmp_path / "bench", tmp_path / "no_models", quick=True)
    assert json.loads((tmp_path / "bench" / "video.json").read_text()) == json.loads(json.dumps(r))
    assert r["untrained_stand_in"] and r["speed"]["frames"] == 30 and r["memory"]["frames"] == 60
    assert r["speed"]["status"] == "ok" and r["speed"]["frames_with_a_face"] > 0
    for key in ("rss_start_mb", "rss_middle_mb", "rss_end_mb", "rss_peak_mb"):
        assert r["memory"][key] > 0
    assert set(r["targets"]) == {"video_ge_30_fps", "video_memory_flat"}
    assert all(isinstance(t["pass"], bool) for t in r["targets"].values())
    assert not list((tmp_path / "bench").glob(".*"))
