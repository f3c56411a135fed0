"""Live camera for the playground: webcam frames analysed by the kernel, answers drawn over the video.

`CameraWidget` is an anywidget (its ESM, `emolib/static/camera.js`, ships in this package and
travels in the widget state: no CDN, no extension build). The browser grabs the webcam with
getUserMedia, downscales each frame to at most 320x240, encodes it as JPEG and sends it as a
binary buffer of a custom message; the kernel answers with the faces (box, emotion,
confidence, probabilities), which the browser draws over the video.

Back-pressure: the browser sends the next frame only after the kernel answered the previous
one (one frame in flight), so a slow kernel lowers the frame rate and never builds a queue.
The kernel side (`FrameHandler`) answers every frame exactly once, never raises, and refuses a
frame that arrives while another is being analysed (status 'busy') instead of queueing it.

Frames are decoded in memory (`emolib.uploads.decode_upload`, with its format and pixel
checks) and dropped once answered: nothing is written to disk. The live timeline keeps the
probabilities of the largest face of each answered frame for the last minute (`Timeline`) and
is sent to the browser as a small SVG about once a second.
"""

from __future__ import annotations

import html
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

STATIC = Path(__file__).resolve().parent / "static"
ESM_FILE = STATIC / "camera.js"
FRAME_WIDTH, FRAME_HEIGHT = 320, 240  # what the browser sends at most
MAX_FRAME_BYTES = 2_000_000  # a 320x240 JPEG is ~10-30 kB; this is generous for larger settings
MAX_FRAME_PIXELS = 4_000_000
TIMELINE_S = 60.0  # the live timeline shows the last minute ...
TIMELINE_EVERY_S = 1.0  # ... redrawn about once a second
TIMELINE_GAP_S = 2.0  # no face for longer than this breaks the lines
COLOURS = ("#e53935", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#6d4c41")

STATUS_OK, STATUS_NO_FACE, STATUS_BLANK, STATUS_BUSY = "ok", "no_face", "blank", "busy"

CSS = """
.emolib-camera-bar { display:flex; gap:12px; align-items:center; margin:4px 0; font-size:13px }
.emolib-camera-rate { font-family:monospace; color:#555 }
.emolib-camera-main { display:flex; gap:16px; align-items:flex-start; flex-wrap:wrap }
.emolib-camera-stage { position:relative; width:480px; background:#222; min-height:60px }
.emolib-camera-video { width:480px; display:block }
.emolib-camera-overlay { position:absolute; left:0; top:0; pointer-events:none }
.emolib-camera-faces { min-width:300px }
.emolib-camera-timeline { margin-top:8px }
"""


def _status_message(status: str, n_faces: int) -> str:
    if status == STATUS_OK:
        return f"{n_faces} face(s)"
    return {
        STATUS_NO_FACE: "no face found in the frame",
        STATUS_BLANK: "the frame is blank (camera covered?)",
        STATUS_BUSY: "a frame is already being analysed: this one was dropped",
    }.get(status, status)


def analyse_frame(
    data: bytes, predictor, *, faces: str = "on", max_bytes: int = MAX_FRAME_BYTES, max_pixels: int = MAX_FRAME_PIXELS
) -> dict:
    """One camera frame (JPEG/PNG bytes) -> {"status", "width", "height", "faces": [...], "classes"}.

    Each face is {"box": [x, y, w, h] in pixels of the frame, "emotion", "confidence", "probs": {class: p}}
    (plus "p_other" when the model has an 'other' head; emotion 'other' above its threshold),
    largest first (a face used whole, faces='off', gets the whole frame as its box). status: 'ok',
    'no_face', 'blank' (every face crop near-blank) or 'unreadable: <reason>' (too large, not an
    image, corrupt, ...). Faces are searched for by default ('on'): a webcam frame is no face
    crop. Bad bytes give a status; a missing face detector or a failing model raise, which
    `FrameHandler` turns into an 'error: ...' status.
    """
    from .faces import find_faces
    from .images import near_blank, read_image
    from .uploads import Limits, UploadRefused, decode_upload

    out: dict[str, Any] = {
        "status": STATUS_OK,
        "width": None,
        "height": None,
        "faces": [],
        "classes": list(getattr(predictor, "classes", ())),
    }
    if not isinstance(data, (bytes, bytearray, memoryview)):
        out["status"] = f"unreadable: no frame bytes ({type(data).__name__})"
        return out
    data = bytes(data)
    if len(data) > max_bytes:
        out["status"] = f"unreadable: a frame of {len(data):,} bytes is over the {max_bytes:,} byte limit"
        return out
    try:
        gray = decode_upload("frame", data, Limits(max_file_mb=max_bytes / 1e6, max_pixels=max_pixels))
    except UploadRefused as e:
        out["status"] = f"unreadable: {e.reason}"
        return out
    out["height"], out["width"] = (int(v) for v in gray.shape[:2])
    found = find_faces(gray, faces)
    if not found:
        out["status"] = STATUS_NO_FACE
        return out
    crops = np.stack([read_image(c, mode="L", size=predictor.size) for _, c in found])
    if all(near_blank(c) for c in crops):
        out["status"] = STATUS_BLANK
        return out
    scores = predictor.score_rows(crops)  # with p_other when the model has an 'other' head
    h, w = gray.shape[:2]
    rows = []
    for i, ((box, _), p) in enumerate(zip(found, scores)):
        b = [int(v) for v in box] if box is not None else [0, 0, int(w), int(h)]
        face = predictor.face_result(p, i, b, None)  # 'other' above the head's threshold
        row = {"box": b, "emotion": face.emotion, "confidence": float(face.confidence), "probs": face.probabilities}
        if face.other is not None:
            row["p_other"] = float(face.other)
        rows.append(row)
    out["faces"] = sorted(rows, key=lambda r: -r["box"][2] * r["box"][3])
    return out


class Timeline:
    """The probabilities of the main (largest) face over the last `window_s` seconds, as an SVG.

    `add(t, probs)` with probs None for a frame without a face (it breaks the lines only when
    no face is seen for more than `gap_s`). Times come from the caller's clock (monotonic s).
    """

    def __init__(self, classes: Sequence[str], window_s: float = TIMELINE_S, gap_s: float = TIMELINE_GAP_S):
        self.classes = list(classes)
        self.window_s, self.gap_s = float(window_s), float(gap_s)
        self.points: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, t: float, probs: dict[str, float] | None) -> None:
        if probs is not None:
            self.points.append((float(t), dict(probs)))
        self.trim(t)

    def trim(self, now: float) -> None:
        while self.points and self.points[0][0] < now - self.window_s:
            self.points.popleft()

    def svg(self, now: float, width: int = 480, height: int = 130) -> str:
        """An inline SVG: one line per class (probability 0..1) over [now - window, now], with a legend."""
        self.trim(now)
        left, right, top, bottom = 34, 110, 8, 20
        pw, ph = width - left - right, height - top - bottom

        def xy(t: float, p: float) -> str:
            return f"{left + pw * (1 - (now - t) / self.window_s):.1f},{top + ph * (1 - p):.1f}"

        segments: list[list[tuple[float, dict]]] = []
        for t, probs in self.points:
            if not segments or t - segments[-1][-1][0] > self.gap_s:
                segments.append([])
            segments[-1].append((t, probs))
        parts = [
            f'<svg class="emolib-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="10">',
            f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>',
        ]
        for p in (0.5,):
            parts.append(
                f'<line x1="{left}" x2="{left + pw}" y1="{top + ph * (1 - p)}" y2="{top + ph * (1 - p)}" '
                f'stroke="#ddd"/>'
            )
        parts.append(
            f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">1</text>'
            f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">0</text>'
            f'<text x="{left}" y="{height - 5}">-{self.window_s:g} s</text>'
            f'<text x="{left + pw}" y="{height - 5}" text-anchor="end">now</text>'
        )
        for k, c in enumerate(self.classes):
            colour = COLOURS[k % len(COLOURS)]
            for seg in segments:
                pts = " ".join(xy(t, probs.get(c, 0.0)) for t, probs in seg)
                if len(seg) == 1:
                    x, y = pts.split(",")
                    parts.append(f'<circle cx="{x}" cy="{y}" r="1.5" fill="{colour}"/>')
                else:
                    parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
            parts.append(
                f'<rect x="{left + pw + 10}" y="{top + 4 + 14 * k}" width="10" height="3" fill="{colour}"/>'
                f'<text x="{left + pw + 24}" y="{top + 8 + 14 * k}">{html.escape(c)}</text>'
            )
        if not self.points:
            parts.append(
                f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#888">'
                f"no face in the last {self.window_s:g} s</text>"
            )
        parts.append("</svg>")
        return "".join(parts)


class FrameHandler:
    """The kernel side of the camera: bytes of one frame in, the answer message out; never raises.

    `predictor` is a Predictor (or a callable returning one, called on the first frame, so that
    the model loads only when the camera is used). One frame is analysed at a time: a frame
    arriving while another is in flight (a re-entrant call) is answered 'busy' and dropped, never
    queued. Every answer carries the frame's `seq`, which the browser waits for before sending
    the next frame.
    """

    def __init__(
        self,
        predictor,
        *,
        faces: str = "on",
        clock: Callable[[], float] = time.monotonic,
        timeline_s: float = TIMELINE_S,
        timeline_every_s: float = TIMELINE_EVERY_S,
    ):
        self._predictor = predictor
        self.faces = faces
        self.clock = clock
        self.timeline_s, self.timeline_every_s = timeline_s, timeline_every_s
        self.timeline: Timeline | None = None
        self._last_svg = -float("inf")
        self.busy = False
        self.counts = {"frames": 0, "answered": 0, "busy": 0, "ok": 0}

    @property
    def predictor(self):
        if callable(self._predictor) and not hasattr(self._predictor, "predict_arrays"):
            self._predictor = self._predictor()
        return self._predictor

    @predictor.setter
    def predictor(self, value) -> None:
        """Switch models (the timeline restarts: the classes may differ)."""
        self._predictor, self.timeline, self._last_svg = value, None, -float("inf")

    def handle(self, seq: Any, data: Any) -> dict:
        """The answer {"type": "result", "seq", "status", "message", "faces", "width", "height",
        "classes", "ms", "panel_html"[, "timeline_svg"]} to one frame."""
        self.counts["frames"] += 1
        if self.busy:
            self.counts["busy"] += 1
            return {
                "type": "result",
                "seq": seq,
                "status": STATUS_BUSY,
                "message": _status_message(STATUS_BUSY, 0),
                "faces": [],
                "width": None,
                "height": None,
                "classes": [],
                "ms": 0.0,
                "panel_html": "",
            }
        self.busy = True
        t0 = time.perf_counter()
        try:
            try:
                pred = self.predictor
                res = analyse_frame(data, pred, faces=self.faces)
            except Exception as e:  # noqa: BLE001 - a widget callback must not raise (the page would hang)
                pred = None
                res = {
                    "status": f"error: {type(e).__name__}: {e}",
                    "faces": [],
                    "width": None,
                    "height": None,
                    "classes": [],
                }
            msg = {
                "type": "result",
                "seq": seq,
                **res,
                "message": _status_message(res["status"], len(res["faces"])),
                "ms": round(1000 * (time.perf_counter() - t0), 1),
            }
            msg["panel_html"] = self._panel_html(msg)
            if pred is not None:
                self._timeline_update(pred, msg)
            if msg["status"] == STATUS_OK:
                self.counts["ok"] += 1
            return msg
        finally:
            self.counts["answered"] += 1
            self.busy = False

    def _timeline_update(self, pred, msg: dict) -> None:
        try:
            now = self.clock()
            if self.timeline is None:
                self.timeline = Timeline(list(pred.classes), window_s=self.timeline_s)
            self.timeline.add(now, msg["faces"][0]["probs"] if msg["faces"] else None)
            if now - self._last_svg >= self.timeline_every_s:
                self._last_svg = now
                msg["timeline_svg"] = self.timeline.svg(now)
        except Exception:  # noqa: BLE001 - the timeline is an extra; the boxes still go back
            pass

    @staticmethod
    def _panel_html(msg: dict) -> str:
        from .report import prob_bars_html

        if not msg["faces"]:
            return f'<div class="emolib-camera-none" style="color:#777">{html.escape(msg["message"])}</div>'
        return "".join(
            prob_bars_html(f["probs"], title=f"face {i}: {f['emotion']} ({100 * f['confidence']:.0f}%)")
            for i, f in enumerate(msg["faces"][:4])
        )


def _anywidget():
    try:
        import anywidget
    except ImportError as e:  # a core dependency; a clear message if an old environment lacks it
        raise ImportError(f"the camera needs anywidget: pip install 'anywidget>=0.9,<0.12' ({e})") from None
    return anywidget


def camera_widget(handler: FrameHandler, **traits):
    """A CameraWidget wired to `handler` (see the module docstring)."""
    return _widget_class()(handler=handler, **traits)


_WIDGET_CLASS = None


def _widget_class():
    """CameraWidget, built on first use so that importing emolib.camera needs no anywidget."""
    global _WIDGET_CLASS
    if _WIDGET_CLASS is not None:
        return _WIDGET_CLASS
    import traitlets as t

    anywidget = _anywidget()

    class CameraWidget(anywidget.AnyWidget):
        """The webcam widget; frames arrive as custom messages {type: 'frame', seq} with one JPEG buffer."""

        _esm = ESM_FILE
        _css = CSS
        width = t.Int(FRAME_WIDTH).tag(sync=True)
        height = t.Int(FRAME_HEIGHT).tag(sync=True)
        quality = t.Float(0.8).tag(sync=True)  # JPEG quality in the browser
        max_fps = t.Float(15.0).tag(sync=True)  # never more frames than this, even from a fast kernel
        timeout_s = t.Float(30.0).tag(sync=True)  # the first frame loads the model: be patient

        def __init__(self, handler: FrameHandler, **kwargs):
            super().__init__(**kwargs)
            self.handler = handler
            self.on_msg(self._on_frame)

        def _on_frame(self, _widget, content, buffers) -> None:
            if not isinstance(content, dict) or content.get("type") != "frame":
                return
            data = bytes(buffers[0]) if buffers else b""
            answer = self.handler.handle(content.get("seq"), data)
            try:
                self.send(answer)
            except Exception:  # noqa: BLE001 - the page went away; its watchdog copes with a lost answer
                pass

    _WIDGET_CLASS = CameraWidget
    return CameraWidget
