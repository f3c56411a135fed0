"""Emotions in videos: stream frames, sample, detect and track faces, classify, smooth, write.

    >>> from emolib import load_predictor
    >>> from emolib.video import predict_video
    >>> p = load_predictor("reports/models/cnn")
    >>> r = predict_video(p, "clip.mp4", fps=10)          # nothing written: rows, tracks, timelines
    >>> r.status, r.tracks[0]["dominant_emotion"]; fig = r.timeline_figure()
    >>> predict_video(p, "clip.mp4", out_dir="out/clip", annotate=True, keep_rows=False)

Any file OpenCV (FFmpeg) can read works. How a clip goes through:

1. **Streaming.** Frames are decoded one at a time and dropped once used; only the frames of one
   classifier batch (`batch_frames`, 16) wait for their probabilities, and only when annotating.
   Memory stays flat whatever the length (`make bench` measures it on a 10-minute clip). Frames
   not sampled are only grabbed, not converted.
2. **Sampling.** Every frame, every N-th (`every`), or about F per second (`fps`: the first frame at
   or after each 1/F-second step). Times come from the container's timestamps
   (``CAP_PROP_POS_MSEC``), so a variable-frame-rate clip gets true times; where a container gives
   none, frame index / nominal frame rate.
3. **Faces.** The detector (`emolib.faces.detect`, `detector=None` is the library default) runs
   on a copy downscaled to at most `detect_max_side` (640) pixels, on the first sampled frame and
   then whenever `detect_interval_s` (0.2 s) has passed; in between, each face's box follows its
   track's velocity. `emolib.tracking.IouTracker` gives faces stable ids across frames (a new id when
   no track matches, a track dropped after `max_missed` detection rounds without its face).
4. **Classifier.** Crops (20% margin, as for photos) go through `Predictor.score_rows` in
   batches over frames: the class probabilities, plus p_other when the model has an 'other' head.
5. **Smoothing.** Per track, an exponential moving average with time constant `smoothing_s`
   seconds (0.5; 0 = off; see `emolib.tracking`): frame-rate independent. p_other is smoothed with
   the probabilities; a frame's emotion is 'other' when the smoothed p_other reaches the head's
   threshold (as for photos), else the class with the largest smoothed probability.

Outputs (with `out_dir`; each file written to a temp file and renamed, so an interrupted run leaves
no half-written file):

* ``frames.csv`` - one row per face per sampled frame, a ``no_face`` row for a sampled frame
  without one (`video_csv_columns`): emotion, confidence and p_<class> (and p_other with an
  'other' head) are the smoothed values, raw_emotion and raw_p_<class> the frame's own;
* ``tracks.json`` - the clip (status, frame rate, frame count, size, sampling, settings) and one
  summary per track: first/last time, duration, share of time per emotion (each sampled frame
  weighs the time since the previous sampled frame), dominant emotion, mean probabilities;
* ``timeline_track<id>.png`` - smoothed (lines) and raw (dots) probabilities over time per track
  (the `MAX_TIMELINE_PLOTS` longest tracks);
* ``annotated.mp4`` with `annotate` - the sampled frames with boxes, labels and probability bars
  (MPEG-4 part 2, 'mp4v': the codec OpenCV's wheels can write).

Status per file (`VideoResult.status`): ``ok``, ``no_face`` (no face in any sampled frame),
``blank`` (only near-blank face crops), ``no_frames`` (the container holds no frame) or
``unreadable: <reason>`` (missing, not a video, truncated before the first frame, frames over
the `MAX_FRAME_PIXELS` limit, ...). A file that stops decoding part-way keeps what was read and
says so in `VideoResult.note`. Bad input never raises.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import math
import os
import stat
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import faces as _faces
from .images import MAX_PIXELS, ImageReadError, near_blank, read_image
from .predict import OTHER, STATUS_BLANK, STATUS_NO_FACE, STATUS_OK, STATUS_UNREADABLE
from .runinfo import atomic_path, atomic_write_json
from .tracking import MAX_MISSED, EmaSmoother, IouTracker

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".3gp"})
STATUS_NO_FRAMES = "no_frames"
SCHEMA_TRACKS = "emolib.video.tracks/1"

SMOOTHING_S = 0.5  # EMA time constant of the per-track probabilities
DETECT_INTERVAL_S = 0.2  # run the face detector this often; track in between
DETECT_MAX_SIDE = 640  # detection runs on a copy at most this many pixels wide/high
MAX_FRAME_PIXELS = MAX_PIXELS  # larger frames are refused (50 megapixels, as for photos)
FACE_MARGIN = 0.2  # crop margin around a face box, as for photos (emolib.faces.find_faces)
BATCH_FRAMES = 16  # sampled frames whose faces go through the classifier together
ANNOTATE_MAX_SIDE = 1280  # the annotated video is downscaled to this
MAX_TIMELINE_PLOTS = 20  # timeline PNGs for the longest tracks only
FALLBACK_FPS = 30.0  # when a container states no usable frame rate
TIME_EPS = 1e-4  # s: timestamps are milliseconds, so grid comparisons allow this much

FILES = {"frames": "frames.csv", "tracks": "tracks.json", "annotated": "annotated.mp4"}
TIMELINE_FILE = "timeline_track{}.png"
STALE_TEMP_AGE_S = 600  # our temp files older than this in an output folder are leftovers of a killed run


class VideoReadError(ValueError):
    """A video cannot be used; the message says why."""


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def video_csv_columns(classes: Sequence[str], other: bool = False) -> list[str]:
    """frames.csv's header; `other`: the model has an 'other' head (p_other and raw_p_other columns)."""
    scores = [*classes, OTHER] if other else list(classes)
    return (
        ["path", "frame", "time_s", "track", "x", "y", "w", "h", "status", "emotion", "confidence"]
        + [f"p_{c}" for c in scores]
        + ["raw_emotion"]
        + [f"raw_p_{c}" for c in scores]
    )


def _decide(scores: np.ndarray, n_classes: int, threshold: float | None) -> int:
    """The label index of a score vector (probabilities [+ p_other]): n_classes means 'other'."""
    if threshold is not None and len(scores) > n_classes and scores[n_classes] >= threshold:
        return n_classes
    return int(np.argmax(scores[:n_classes]))


# -- opening and reading -------------------------------------------------------------------
def _cv2():
    # FFmpeg prints its own complaints about damaged files ("moov atom not found") straight to
    # stderr; each file gets a clear status instead. Read when the first capture opens.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    return cv2


def check_video_file(path: Path) -> None:
    """A VideoReadError unless `path` is a non-empty readable regular file (links followed)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise VideoReadError("broken symbolic link" if path.is_symlink() else "file not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise VideoReadError("symbolic link loop") from None
        raise VideoReadError(f"cannot access the file ({e.strerror or e})") from None
    except ValueError as e:  # an embedded NUL
        raise VideoReadError(f"not a valid file name ({e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoReadError("is a folder, not a video")
    if not stat.S_ISREG(st.st_mode):  # a pipe would block, a device might never end
        raise VideoReadError("not a regular file (a pipe, device or socket)")
    if st.st_size == 0:
        raise VideoReadError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise VideoReadError("permission denied (the file is not readable)")


@dataclass
class VideoInfo:
    """What the container says: frame rate and frame count are None when it does not say."""

    fps: float | None
    frame_count: int | None
    width: int
    height: int

    def to_dict(self) -> dict:
        return {"fps": self.fps, "frame_count": self.frame_count, "width": self.width, "height": self.height}


def open_video(path: str | os.PathLike):
    """(cv2.VideoCapture, VideoInfo) for a readable video; VideoReadError otherwise."""
    cv2 = _cv2()
    path = Path(path)
    check_video_file(path)
    try:
        cap = cv2.VideoCapture(os.fsdecode(path), cv2.CAP_ANY)
    except Exception as e:  # noqa: BLE001 - e.g. a name OpenCV cannot pass on
        raise VideoReadError(f"OpenCV cannot open it ({type(e).__name__}: {e})") from None
    if not cap.isOpened():
        cap.release()
        raise VideoReadError(
            "not a video OpenCV can open (not a video file, damaged or truncated, or a codec this OpenCV build lacks)"
        )
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    info = VideoInfo(
        fps=float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else None,
        frame_count=int(count) if math.isfinite(count) and count > 0 else None,
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    if info.width * info.height > MAX_FRAME_PIXELS:
        cap.release()
        raise VideoReadError(f"{info.width}x{info.height} frames are over the {MAX_FRAME_PIXELS:,}-pixel limit")
    return cap, info


class FrameSampler:
    """Iterate (index, time_s, BGR frame) over the sampled frames of an open capture.

    Counters after (or during) iteration: `frames_read` (decoded or grabbed), `frames_sampled`,
    `container_times` / `fallback_times` (frames timed by the container / by index and frame rate),
    `retrieve_errors` (sampled frames that could not be converted, skipped).
    """

    def __init__(
        self,
        cap,
        nominal_fps: float | None,
        *,
        every: int | None = None,
        fps: float | None = None,
        on_frame: Callable[[], None] | None = None,
    ):
        self.cap = cap
        self.nominal_fps = nominal_fps or FALLBACK_FPS
        self.every = every
        self.step = 1.0 / fps if fps else None
        self.on_frame = on_frame
        self.frames_read = self.frames_sampled = 0
        self.container_times = self.fallback_times = self.retrieve_errors = 0

    def _time(self, index: int, prev: float) -> float:
        ms = self.cap.get(_cv2().CAP_PROP_POS_MSEC)
        if ms is not None and math.isfinite(ms) and ms >= 0 and (index == 0 or ms / 1000.0 > prev):
            self.container_times += 1
            return ms / 1000.0
        self.fallback_times += 1  # no timestamp, or one that goes backwards
        t = index / self.nominal_fps
        return t if t > prev else prev + 1.0 / self.nominal_fps

    def _take(self, index: int, t: float) -> bool:
        if self.step is None:
            return index % (self.every or 1) == 0
        if self.next_t is None or t >= self.next_t - TIME_EPS:
            base = t if self.next_t is None else self.next_t
            # the next 1/F step after t (a gap in the clip skips the steps inside it)
            self.next_t = base + self.step * (math.floor((t + TIME_EPS - base) / self.step) + 1)
            return True
        return False

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        self.next_t: float | None = None
        prev = -math.inf
        index = -1
        while self.cap.grab():
            index += 1
            self.frames_read = index + 1
            t = self._time(index, prev)
            prev = t
            if self.on_frame is not None:
                self.on_frame()
            if not self._take(index, t):
                continue
            ok, frame = self.cap.retrieve()
            if not ok or frame is None:
                self.retrieve_errors += 1
                continue
            self.frames_sampled += 1
            yield index, t, frame


# -- results -------------------------------------------------------------------------------
@dataclass
class _TrackStats:
    """Everything kept per track: its smoother, summary sums and the timeline (compact arrays)."""

    smoother: EmaSmoother
    n_classes: int  # labels: the classes, plus 'other' with an 'other' head
    first_s: float = math.inf
    last_s: float = -math.inf
    frames: int = 0
    blank_frames: int = 0
    seconds: float = 0.0
    time_per_class: np.ndarray = None  # type: ignore[assignment]
    prob_time: np.ndarray = None  # type: ignore[assignment]  # sum of smoothed p * dt
    times: array = field(default_factory=lambda: array("d"))
    smoothed: array = field(default_factory=lambda: array("f"))
    raw: array = field(default_factory=lambda: array("f"))

    def __post_init__(self):
        self.time_per_class = np.zeros(self.n_classes)
        self.prob_time = np.zeros(self.n_classes)

    def seen(self, t: float) -> None:
        self.first_s, self.last_s = min(self.first_s, t), max(self.last_s, t)

    def add(self, t: float, dt: float, raw: np.ndarray, smoothed: np.ndarray, label: int) -> None:
        """One classified frame: raw and smoothed scores, `label` the index of its decided label."""
        self.seen(t)
        self.frames += 1
        self.seconds += dt
        self.time_per_class[label] += dt
        self.prob_time += smoothed * dt
        self.times.append(t)
        self.smoothed.extend(np.asarray(smoothed, dtype=np.float32).tolist())
        self.raw.extend(np.asarray(raw, dtype=np.float32).tolist())

    def summary(self, track_id: int, classes: Sequence[str]) -> dict:
        share = self.time_per_class / self.seconds if self.seconds > 0 else self.time_per_class
        mean = self.prob_time / self.seconds if self.seconds > 0 else self.prob_time
        return {
            "track": track_id,
            "first_s": round(self.first_s, 4),
            "last_s": round(self.last_s, 4),
            "duration_s": round(self.last_s - self.first_s, 4),
            "frames": self.frames,
            "blank_frames": self.blank_frames,
            "seconds_classified": round(self.seconds, 4),
            "emotion_share": {c: float(v) for c, v in zip(classes, share)},
            "dominant_emotion": classes[int(np.argmax(self.time_per_class))] if self.frames else None,
            "mean_probabilities": {c: float(v) for c, v in zip(classes, mean)},
        }


@dataclass
class VideoResult:
    """What `predict_video` found in one file.

    rows: the frames.csv rows as dicts (empty with keep_rows=False); tracks: one summary dict per
    track (see the module docstring); timelines: {track id: {'time_s': (N,), 'smoothed': (N, L),
    'raw': (N, L)}} over the L `labels`; written: {'frames'|'tracks'|'annotated'|'timeline_<id>': path} of the files
    written (empty without out_dir).
    """

    path: str
    status: str
    classes: tuple[str, ...]
    info: VideoInfo | None = None
    other_threshold: float | None = None  # the model's 'other' head: p_other >= it -> 'other'; None: no head
    frames_read: int = 0
    frames_sampled: int = 0
    rows: list[dict] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)
    timelines: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    written: dict[str, Path] = field(default_factory=dict)
    note: str | None = None
    settings: dict = field(default_factory=dict)
    timestamps: str | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def labels(self) -> tuple[str, ...]:
        """What a frame can be labelled: the classes, plus 'other' with an 'other' head (the timelines'
        and summaries' columns)."""
        return (*self.classes, OTHER) if self.other_threshold is not None else self.classes

    def summary(self) -> dict:
        """The tracks.json content (strict-JSON-able)."""
        return {
            "schema": SCHEMA_TRACKS,
            "path": self.path,
            "status": self.status,
            "note": self.note,
            "classes": list(self.classes),
            "other_threshold": self.other_threshold,
            "video": self.info.to_dict() if self.info else None,
            "frames_read": self.frames_read,
            "frames_sampled": self.frames_sampled,
            "timestamps": self.timestamps,
            "settings": self.settings,
            "elapsed_s": round(self.elapsed_s, 3),
            "frames_per_s": round(self.frames_read / self.elapsed_s, 2) if self.elapsed_s > 0 else None,
            "tracks": self.tracks,
            "files": {k: Path(v).name for k, v in self.written.items() if k != "tracks"},
        }

    def timeline_figure(self, track: int | None = None, max_tracks: int = MAX_TIMELINE_PLOTS):
        """A matplotlib Figure of the smoothed (lines) and raw (dots) probabilities over time, one
        panel per track (`track`: just that one; otherwise the `max_tracks` longest)."""
        from matplotlib.figure import Figure

        if track is not None:
            if track not in self.timelines:
                raise KeyError(f"no track {track} in {self.path} (tracks: {sorted(self.timelines)})")
            ids = [track]
        else:
            longest = sorted(self.tracks, key=lambda s: -s["seconds_classified"])[:max_tracks]
            ids = sorted(s["track"] for s in longest)
        height = 0.8 + 1.9 * max(1, len(ids))
        fig = Figure(figsize=(8, height))  # fixed margins: constrained layout costs ~0.7 s a figure
        fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.45 / height, bottom=0.45 / height, hspace=0.35)
        axes = fig.subplots(max(1, len(ids)), 1, squeeze=False, sharex=True)[:, 0]
        if not ids:
            axes[0].text(0.5, 0.5, f"{Path(self.path).name}: {self.status}", ha="center", va="center")
            axes[0].set_axis_off()
            return fig
        labels = self.labels
        colors = [f"C{i}" if c != OTHER else "0.45" for i, c in enumerate(labels)]
        for ax, tid in zip(axes, ids):
            tl = self.timelines[tid]
            t = tl["time_s"]
            smoothed, raw = _with_gaps(t, tl["smoothed"]), tl["raw"]
            t_gaps = _with_gaps(t, t[:, None])[:, 0]
            for k, c in enumerate(labels):
                ax.plot(t_gaps, smoothed[:, k], color=colors[k], lw=1.6, label=c, ls="--" if c == OTHER else "-")
                ax.scatter(t, raw[:, k], color=colors[k], s=4, alpha=0.3, linewidths=0)
            summary = next((s for s in self.tracks if s["track"] == tid), {})
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel("probability")
            ax.set_title(
                f"track {tid}: {summary.get('dominant_emotion')} "
                f"({summary.get('first_s', 0):.1f}-{summary.get('last_s', 0):.1f} s)",
                fontsize=9,
                loc="left",
            )
        axes[0].legend(loc="upper right", fontsize=8, ncol=len(labels))
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(
            f"{Path(self.path).name}: smoothed (lines, tau {self.settings.get('smoothing_s')} s) "
            "and per-frame (dots) probabilities",
            fontsize=9,
        )
        return fig


def _with_gaps(t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` with a NaN row wherever the track was not seen for a while, so lines break there."""
    if len(t) < 3:
        return values
    dt = np.diff(t)
    gap = dt > max(1.0, 3 * float(np.median(dt)))
    if not gap.any():
        return values
    out = values.astype(np.float64)
    return np.insert(out, np.nonzero(gap)[0] + 1, np.nan, axis=0)


# -- drawing -------------------------------------------------------------------------------
_PALETTE = [(76, 114, 255), (68, 187, 99), (255, 153, 51), (204, 102, 255), (0, 204, 204), (255, 102, 178)]


def draw_faces(frame: np.ndarray, faces: list[dict], classes: Sequence[str], scale: float = 1.0) -> np.ndarray:
    """Boxes, '#id emotion confidence' labels and one small probability bar per class, drawn in place.

    faces: dicts with 'track', 'box' (x, y, w, h in the original frame), 'probs' (smoothed scores,
    one per label of `classes`, or None for a blank crop) and optionally 'label' (the index of the
    decided label; default the largest score); `scale` maps original pixels to `frame`'s.
    """
    cv2 = _cv2()
    font, fh, fw = cv2.FONT_HERSHEY_SIMPLEX, frame.shape[0], frame.shape[1]
    for f in faces:
        x, y, w, h = (int(round(v * scale)) for v in f["box"])
        color = _PALETTE[f["track"] % len(_PALETTE)]
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, 2)
        probs = f["probs"]
        k = int(np.argmax(probs)) if probs is not None and f.get("label") is None else f.get("label")
        label = f"#{f['track']} " + ("blank" if probs is None else f"{classes[k]} {float(probs[k]):.0%}")
        (tw, th), _ = cv2.getTextSize(label, font, 0.45, 1)
        ty = y - 4 if y - th - 6 >= 0 else y + h + th + 4
        cv2.rectangle(frame, (x, ty - th - 3), (x + tw + 4, ty + 3), color, -1)
        cv2.putText(frame, label, (x + 2, ty), font, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        if probs is None:
            continue
        bar_w, bar_h = max(40, w // 2), 7
        bx = min(max(0, x), max(0, fw - bar_w - 30))
        by = y + h + 4 if y + h + 4 + bar_h * len(classes) < fh else max(0, y + 2)
        for k, c in enumerate(classes):
            yk = by + k * (bar_h + 2)
            cv2.rectangle(frame, (bx + 28, yk), (bx + 28 + bar_w, yk + bar_h), (40, 40, 40), -1)
            cv2.rectangle(frame, (bx + 28, yk), (bx + 28 + int(bar_w * float(probs[k])), yk + bar_h), color, -1)
            cv2.putText(frame, c[:3], (bx, yk + bar_h), font, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


# -- the run -------------------------------------------------------------------------------
def _shown(path: Any) -> str:
    """A path as one line of UTF-8 text (undecodable bytes and control characters escaped)."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _fmt(v: Any, digits: int = 6) -> Any:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}"
    return v


def _int_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int] | None:
    """The box rounded and clamped to the frame, or None when nothing of it is inside."""
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = min(width, int(round(box[0] + box[2]))), min(height, int(round(box[1] + box[3])))
    return (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


def _detect(gray: np.ndarray, detector: Any) -> list[tuple[int, int, int, int]]:
    """Face boxes from emolib.faces (the library default detector when `detector` is None).

    Boxes only: the crops are cut later from the tracked boxes, so `find_faces`' aligned crops
    would be computed and thrown away on every detection frame.
    """
    return [tuple(face.box) for face in _faces.detect(gray, detector or _faces.DEFAULT_DETECTOR)]


def _remove_stale_temps(folder: Path) -> None:
    """Temp files (runinfo.atomic_path's '.<name>.tmp-*') that a killed run left in `folder`."""
    now = time.time()
    for p in folder.glob(".*.tmp-*"):
        with contextlib.suppress(OSError):
            if p.is_file() and now - p.stat().st_mtime > STALE_TEMP_AGE_S:
                p.unlink()


class _Run:
    """One clip: per-frame work in `frame`, classifier batches and outputs in `flush`."""

    def __init__(
        self,
        predictor,
        path: str,
        settings: dict,
        *,
        detector,
        keep_rows: bool,
        csv_writer,
        annotate_writer_factory,
        nominal_interval: float,
        batch_frames: int,
    ):
        self.p = predictor
        self.classes = tuple(predictor.classes)
        self.threshold = getattr(predictor, "other_threshold", None)
        self.labels = (*self.classes, OTHER) if self.threshold is not None else self.classes
        self.path = path
        self.shown = _shown(path)
        self.s = settings
        self.detector = detector
        self.keep_rows = keep_rows
        self.csv = csv_writer
        self.make_writer = annotate_writer_factory  # None: no annotated video
        self.writer = None
        self.batch_frames = batch_frames
        self.tracker = IouTracker(max_missed=settings["max_missed"])
        self.stats: dict[int, _TrackStats] = {}
        self.pending: list[dict] = []
        self.rows: list[dict] = []
        self.last_detect: float | None = None
        self.prev_t: float | None = None
        self.nominal_interval = nominal_interval
        self.n_ok = self.n_blank = 0

    def frame(self, index: int, t: float, bgr: np.ndarray) -> None:
        cv2 = _cv2()
        height, width = bgr.shape[:2]
        dt = self.nominal_interval if self.prev_t is None else t - self.prev_t
        self.prev_t = t
        if self.last_detect is None or t - self.last_detect >= self.s["detect_interval_s"] - TIME_EPS:
            scale = min(1.0, self.s["detect_max_side"] / max(height, width))
            small = (
                bgr
                if scale == 1.0
                else cv2.resize(
                    bgr, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
                )
            )
            boxes = [
                np.asarray(b, dtype=np.float64) / scale
                for b in _detect(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), self.detector)
            ]
            now = list(zip(self.tracker.update(boxes, t), boxes))
            self.last_detect = t
        else:
            now = self.tracker.current(t)
        found = []
        for track_id, box in sorted(now, key=lambda tb: (tb[1][0], tb[0])):
            ibox = _int_box(box, width, height)
            if ibox is None:
                continue
            crop = cv2.cvtColor(_faces.crop_face(bgr, ibox, margin=FACE_MARGIN), cv2.COLOR_BGR2GRAY)
            try:
                pixels = read_image(crop, mode="L", size=self.p.size)
            except ImageReadError:  # a sliver at the frame's edge
                continue
            found.append({"track": track_id, "box": ibox, "pixels": pixels, "blank": bool(near_blank(pixels))})
        shown = None
        if self.make_writer is not None:
            a = min(1.0, ANNOTATE_MAX_SIDE / max(height, width))
            shown = (
                bgr
                if a == 1.0
                else cv2.resize(bgr, (round(width * a), round(height * a)), interpolation=cv2.INTER_AREA),
                a,
            )
        self.pending.append({"index": index, "t": t, "dt": dt, "faces": found, "shown": shown})
        if len(self.pending) >= self.batch_frames:
            self.flush()

    def flush(self) -> None:
        crops = [f["pixels"] for fr in self.pending for f in fr["faces"] if not f["blank"]]
        scores = self.p.score_rows(np.stack(crops)) if crops else np.zeros((0, len(self.labels)))
        k = 0
        for fr in self.pending:
            if not fr["faces"]:
                self._emit(fr, None, STATUS_NO_FACE, None, None)
            for f in fr["faces"]:
                st = self.stats.get(f["track"])
                if st is None:
                    st = self.stats[f["track"]] = _TrackStats(EmaSmoother(self.s["smoothing_s"]), len(self.labels))
                if f["blank"]:
                    st.seen(fr["t"])
                    st.blank_frames += 1
                    f["probs"] = None
                    self.n_blank += 1
                    self._emit(fr, f, STATUS_BLANK, None, None)
                    continue
                raw = scores[k]
                k += 1
                smoothed = st.smoother.update(raw, fr["t"])
                f["label"] = _decide(smoothed, len(self.classes), self.threshold)
                st.add(fr["t"], fr["dt"], raw, smoothed, f["label"])
                f["probs"] = smoothed
                self.n_ok += 1
                self._emit(fr, f, STATUS_OK, raw, smoothed)
            if fr["shown"] is not None:
                image, a = fr["shown"]
                image = draw_faces(image, fr["faces"], self.labels, a)  # the frame is not used after this
                if self.writer is None:
                    self.writer = self.make_writer(image.shape[1], image.shape[0])
                self.writer.write(image)
        self.pending.clear()

    def _emit(self, fr: dict, f: dict | None, status: str, raw, smoothed) -> None:
        row: dict[str, Any] = {
            "path": self.shown,
            "frame": fr["index"],
            "time_s": round(fr["t"], 4),
            "track": f["track"] if f else None,
        }
        x, y, w, h = f["box"] if f else (None,) * 4
        row.update(x=x, y=y, w=w, h=h, status=status)
        n = len(self.classes)
        if smoothed is not None:
            k = f["label"]  # decided once in flush (the track's statistics and the drawing use it too)
            row.update(emotion=self.labels[k], confidence=float(smoothed[k]))
        else:
            row.update(emotion=None, confidence=None)
        for i, c in enumerate(self.labels):
            row[f"p_{c}"] = float(smoothed[i]) if smoothed is not None else None
        row["raw_emotion"] = self.labels[_decide(raw, n, self.threshold)] if raw is not None else None
        for i, c in enumerate(self.labels):
            row[f"raw_p_{c}"] = float(raw[i]) if raw is not None else None
        if self.csv is not None:
            self.csv.writerow([_fmt(v, 4 if key == "time_s" else 6) for key, v in row.items()])
        if self.keep_rows:
            self.rows.append(row)

    def tracks_and_timelines(self) -> tuple[list[dict], dict[int, dict[str, np.ndarray]]]:
        c = len(self.labels)
        tracks, timelines = [], {}
        for tid in sorted(self.stats):
            st = self.stats[tid]
            if not st.frames:  # only blank crops: nothing to summarise beyond the count
                continue
            tracks.append(st.summary(tid, self.labels))
            timelines[tid] = {
                "time_s": np.frombuffer(st.times, dtype=np.float64).copy(),
                "smoothed": np.frombuffer(st.smoothed, dtype=np.float32).reshape(-1, c).copy(),
                "raw": np.frombuffer(st.raw, dtype=np.float32).reshape(-1, c).copy(),
            }
        return tracks, timelines


def _check_options(every, fps, smoothing_s, detect_interval_s, detect_max_side, annotate, out_dir) -> None:
    if every is not None and fps is not None:
        raise ValueError("give every or fps, not both")
    if every is not None and (int(every) != every or every < 1):
        raise ValueError(f"every must be a whole number >= 1, got {every!r}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be > 0, got {fps!r}")
    if not (math.isfinite(smoothing_s) and smoothing_s >= 0):
        raise ValueError(f"smoothing_s must be >= 0 seconds, got {smoothing_s!r}")
    if not (math.isfinite(detect_interval_s) and detect_interval_s >= 0):
        raise ValueError(f"detect_interval_s must be >= 0 seconds, got {detect_interval_s!r}")
    if int(detect_max_side) < 64:
        raise ValueError(f"detect_max_side must be at least 64 pixels, got {detect_max_side!r}")
    if annotate and out_dir is None:
        raise ValueError("annotate=True needs an out_dir to write annotated.mp4 into")


def predict_video(
    predictor,
    path: str | os.PathLike,
    *,
    every: int | None = None,
    fps: float | None = None,
    detector: Any = None,
    smoothing_s: float = SMOOTHING_S,
    out_dir: str | os.PathLike | None = None,
    annotate: bool = False,
    timeline: bool = True,
    detect_interval_s: float = DETECT_INTERVAL_S,
    detect_max_side: int = DETECT_MAX_SIDE,
    max_missed: int = MAX_MISSED,
    keep_rows: bool = True,
    batch_frames: int = BATCH_FRAMES,
    progress: bool = False,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    """Emotions of the faces in one video file (see the module docstring for the steps and outputs).

    every / fps: sample every N-th frame / about F frames per second (default: every frame).
    detector: passed on to `emolib.faces.detect` (None: the library default).
    smoothing_s: EMA time constant of each track's probabilities (0: none).
    out_dir: write frames.csv, tracks.json, timeline_track<id>.png (with `timeline`) and, with
        `annotate`, annotated.mp4 there, atomically; None writes nothing.
    keep_rows: keep the per-frame rows in `VideoResult.rows` (False for long clips written to a CSV).
    progress: a tqdm bar over decoded frames; on_progress(frames_read, frame_count or None) is
        called for every decoded frame (e.g. for a widget).
    Bad input gives a VideoResult with its status, never an exception; wrong arguments raise ValueError,
    an output that cannot be written OSError (leaving no partial file).
    """
    _check_options(every, fps, smoothing_s, detect_interval_s, detect_max_side, annotate, out_dir)
    t0 = time.perf_counter()
    classes = tuple(predictor.classes)
    settings = {
        "every": every,
        "fps": fps,
        "smoothing_s": float(smoothing_s),
        "detect_interval_s": float(detect_interval_s),
        "detect_max_side": int(detect_max_side),
        "max_missed": int(max_missed),
        "detector": None if detector is None else str(detector),
        "model": getattr(predictor, "model_name", None),
    }
    threshold = getattr(predictor, "other_threshold", None)
    result = VideoResult(
        path=_shown(path), status=STATUS_OK, classes=classes, settings=settings, other_threshold=threshold
    )
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(out)
    cap = None
    try:
        try:
            cap, info = open_video(path)
        except VideoReadError as e:
            result.status = f"{STATUS_UNREADABLE}: {e}"
            info = None
        result.info = info
        # Outputs go to temp files that replace the real ones only when the with-block ends without
        # an exception; on any exception (Ctrl-C included) the temp files are removed.
        with contextlib.ExitStack() as stack:
            csv_writer = None
            if out is not None:
                csv_tmp = stack.enter_context(atomic_path(out / FILES["frames"]))
                fh = stack.enter_context(open(csv_tmp, "w", encoding="utf-8", newline=""))
                stack.callback(lambda: (fh.flush(), os.fsync(fh.fileno())))
                csv_writer = csv.writer(fh, lineterminator="\n")
                csv_writer.writerow(video_csv_columns(classes, other=threshold is not None))
                result.written["frames"] = out / FILES["frames"]
            writer_factory = None
            if annotate and info is not None:

                def writer_factory(width: int, height: int):
                    """The annotated video's writer, made at the first annotated frame (none without frames)."""
                    cv2 = _cv2()
                    tmp = stack.enter_context(atomic_path(out / FILES["annotated"]))
                    rate = fps if fps else (info.fps or FALLBACK_FPS) / (every or 1)
                    w = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(rate), (width, height))
                    if not w.isOpened():
                        raise OSError(errno.EIO, f"OpenCV cannot write an mp4v video to {tmp}")
                    stack.callback(w.release)  # runs before the temp file is renamed (or removed)
                    result.written["annotated"] = out / FILES["annotated"]
                    return w

            if info is not None:
                _process(
                    result,
                    cap,
                    info,
                    predictor,
                    settings,
                    csv_writer=csv_writer,
                    writer_factory=writer_factory,
                    detector=detector,
                    keep_rows=keep_rows,
                    batch_frames=batch_frames,
                    progress=progress,
                    on_progress=on_progress,
                )
            _status_row(result, csv_writer, keep_rows)
    finally:
        if cap is not None:
            cap.release()
    if out is not None and timeline:
        _write_timelines(result, out)
    result.elapsed_s = time.perf_counter() - t0
    if out is not None:  # written last: its presence says the clip's outputs are complete
        result.written["tracks"] = out / FILES["tracks"]
        atomic_write_json(out / FILES["tracks"], result.summary())
    return result


def _process(
    result: VideoResult,
    cap,
    info: VideoInfo,
    predictor,
    settings: dict,
    *,
    csv_writer,
    writer_factory,
    detector,
    keep_rows: bool,
    batch_frames: int,
    progress: bool,
    on_progress,
) -> None:
    """The frame loop: fills `result` (status, counts, rows, tracks, timelines, note)."""
    cv2 = _cv2()
    every, fps = settings["every"], settings["fps"]
    nominal = (1.0 / fps) if fps else (every or 1) / (info.fps or FALLBACK_FPS)
    run = _Run(
        predictor,
        result.path,
        settings,
        detector=detector,
        keep_rows=keep_rows,
        csv_writer=csv_writer,
        annotate_writer_factory=writer_factory,
        nominal_interval=nominal,
        batch_frames=max(1, int(batch_frames)),
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=info.frame_count, desc=Path(result.path).name[:30], unit="frame", leave=False, mininterval=0.5)

    def on_frame() -> None:
        if bar is not None:
            bar.update(1)
        if on_progress is not None:
            on_progress(sampler.frames_read, info.frame_count)

    sampler = FrameSampler(cap, info.fps, every=every, fps=fps, on_frame=on_frame)
    try:
        for index, t, frame in sampler:
            run.frame(index, t, frame)
        run.flush()
    except cv2.error as e:  # a decoder failure OpenCV raises instead of returning False
        run.flush()
        result.note = f"decoding failed after {sampler.frames_read} frames ({' '.join(str(e).split())[:200]})"
    finally:
        if bar is not None:
            bar.close()
    result.frames_read, result.frames_sampled = sampler.frames_read, sampler.frames_sampled
    result.rows = run.rows
    result.tracks, result.timelines = run.tracks_and_timelines()
    result.timestamps = (
        "container"
        if not sampler.fallback_times
        else "frame index / frame rate"
        if sampler.container_times <= 1
        else "mixed"
    )
    if not sampler.frames_read and not info.frame_count:
        result.status = STATUS_NO_FRAMES
    elif not sampler.frames_read:
        result.status = (
            f"{STATUS_UNREADABLE}: the container announces {info.frame_count} frames but none could be "
            "decoded (damaged file or a codec this OpenCV lacks)"
        )
    elif not sampler.frames_sampled:
        result.status = f"{STATUS_UNREADABLE}: no frame could be decoded"
    else:
        result.status = STATUS_OK if run.n_ok else STATUS_BLANK if run.n_blank else STATUS_NO_FACE
    expected = info.frame_count
    if result.note is None and expected and sampler.frames_read < expected - max(2, 0.01 * expected):
        result.note = (
            f"decoding stopped after {sampler.frames_read} of the {expected} frames the container "
            "announces (truncated or damaged file?); the results cover the frames read"
        )
    if sampler.retrieve_errors:
        skipped = f"{sampler.retrieve_errors} damaged frame(s) skipped"
        result.note = f"{result.note}; {skipped}" if result.note else skipped


def _status_row(result: VideoResult, csv_writer, keep_rows: bool) -> None:
    """The one row of a file without frames (unreadable, no_frames); no_face frames have their own."""
    if result.status in (STATUS_OK, STATUS_NO_FACE, STATUS_BLANK):
        return
    row = {c: None for c in video_csv_columns(result.classes, other=result.other_threshold is not None)}
    row.update(path=result.path, status=result.status)
    if csv_writer is not None:
        csv_writer.writerow([_fmt(v) for v in row.values()])
    if keep_rows:
        result.rows.append(row)


def _write_timelines(result: VideoResult, out: Path) -> None:
    """timeline_track<id>.png for the longest tracks; older timeline PNGs of this clip are removed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    longest = sorted(result.tracks, key=lambda s: -s["seconds_classified"])[:MAX_TIMELINE_PLOTS]
    names = set()
    for summary in sorted(longest, key=lambda s: s["track"]):
        tid = summary["track"]
        target = out / TIMELINE_FILE.format(tid)
        fig = result.timeline_figure(track=tid)
        FigureCanvasAgg(fig)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        result.written[f"timeline_{tid}"] = target
        names.add(target.name)
    for old in out.glob(TIMELINE_FILE.format("*")):  # a re-run with fewer tracks
        if old.name not in names:
            old.unlink(missing_ok=True)
