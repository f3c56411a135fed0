"""The live prediction playground (`notebooks/50_playground.ipynb`, served by `make playground`
with Voila on 127.0.0.1; it works in JupyterLab too).

Upload one or several photos (or pick test images), choose a model or all of them, and see
the detected faces boxed, the class probabilities per face, the Grad-CAM of each face and,
for a batch, a results table with a CSV download link (a `data:` URI).

Uploads are checked and decoded in memory by `emolib.uploads` (all the limits are there):
nothing is written to disk. Refused and unreadable files get one message each (name and
reason) while the other files of the same upload get their predictions; nothing raises out
of the widget callbacks, so the page stays usable.

Two more tabs (`live_tabs`): **Camera** (the webcam, analysed live by the kernel: `emolib.camera`)
and **Video** (one short clip, its per-track timelines and key frames: `emolib.video`).
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .faces import DEFAULT_DETECTOR, check_detector

MAX_UPLOAD_MB = 10.0  # = uploads.MAX_FILE_MB
MODEL_DIR_ENV = "EMOLIB_MODEL_DIR"
ALL_MODELS = "all models"
DEFAULT_MODEL_NAME = "default model (shipped with emolib)"
ROOT = Path(__file__).resolve().parents[1]


def resolve_model_root(model_dir: str | os.PathLike | None = None) -> Path:
    """The models folder: $EMOLIB_MODEL_DIR, else `model_dir` (relative paths tried from the
    current folder, then from the repository root, since Voila runs in notebooks/)."""
    raw = os.environ.get(MODEL_DIR_ENV) or str(model_dir or "reports/models")
    p = Path(raw).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return ROOT / p if (ROOT / p).exists() else p


def find_models(model_root: str | os.PathLike, *, default: bool = True) -> dict[str, Path]:
    """{name: model dir}: `model_root` itself if it is a model dir, else its trained sub-folders
    (the one order of modelfolder.find_model_dirs). With none there and `default`, the default
    model shipped with emolib, so the playground works right after install."""
    from .backends import default_model_dir
    from .modelfolder import find_model_dirs, is_model_dir

    found = find_model_dirs(model_root)
    if not found and default and is_model_dir(default_model_dir()):
        found = {DEFAULT_MODEL_NAME: default_model_dir()}
    return found


def test_images(model_dirs: dict[str, Path], k: int = 24) -> list[str]:
    """Readable test image paths from the first test_predictions.csv (errors first), at most k."""
    for d in model_dirs.values():
        f = d / "test_predictions.csv"
        if not f.is_file():
            continue
        try:
            df = pd.read_csv(f)
        except (OSError, ValueError):
            continue
        if "path" not in df:
            continue
        if {"true", "predicted"} <= set(df.columns):
            df = df.assign(_err=df["true"] != df["predicted"]).sort_values("_err", ascending=False, kind="stable")
        out = []
        for p in df["path"].astype(str):
            q = Path(p) if Path(p).is_absolute() else (ROOT / p)
            if q.is_file():
                out.append(str(q))
            if len(out) >= k:
                break
        return out
    return []


def uploads(value: Any, max_mb: float = MAX_UPLOAD_MB) -> tuple[list[tuple[str, bytes]], list[str]]:
    """FileUpload value (ipywidgets 8: tuple of dicts name/size/content) -> ([(name, bytes)], problems).

    See `emolib.uploads.check_uploads` (count, per-file and total limits)."""
    from .uploads import Limits, check_uploads

    return check_uploads(value, Limits(max_file_mb=max_mb))


def status_text(status: str) -> str:
    """A status row in words: 'no_face' -> 'no face found'."""
    return {"no_face": "no face found (try Faces: whole image)"}.get(status, status)


def _png(arr: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def boxed_image(gray: np.ndarray, boxes: Sequence, max_side: int = 360) -> np.ndarray:
    """RGB copy of the image with numbered face boxes, scaled to at most max_side."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.asarray(gray, dtype=np.uint8)).convert("RGB")
    scale = min(1.0, max_side / max(img.size)) if max(img.size) > max_side else max(1.0, 144 / max(img.size))
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    draw = ImageDraw.Draw(img)
    for i, b in enumerate(boxes):
        if b is None:
            continue
        x, y, w, h = (v * scale for v in b)
        draw.rectangle([x, y, x + w, y + h], outline=(255, 40, 40), width=2)
        draw.text((x + 3, y + 2), str(i), fill=(255, 255, 0))
    return np.asarray(img)


def analyse(
    name: str,
    source: Any,
    predictors: dict,
    *,
    faces: str = "auto",
    cam: bool = True,
    detector: str = DEFAULT_DETECTOR,
    align: bool = True,
) -> dict:
    """Run every predictor on one image: {"name", "gray", "boxes", "status", "faces": [{model: FaceResult, cam}]}.

    detector, align: as in `emolib.predict.Predictor.predict`."""
    from .explain import gradcam, overlay
    from .images import ImageReadError, read_image

    try:
        gray = read_image(source, mode="L")
    except ImageReadError as e:
        return {"name": name, "status": f"unreadable: {e}", "gray": None, "boxes": [], "faces": []}
    per_face: list[dict] = []
    boxes: list = []
    status = "ok"
    for mname, pred in predictors.items():
        crops, bad = pred.prepare_faces(
            gray, faces, name, detector=detector, align=align
        )  # the crops predict() would use
        if bad is not None:
            status = bad.status
            continue
        probs = pred.score_rows(np.stack([c for _, c in crops]))  # with p_other when the model has a head
        if not boxes:
            boxes = [b for b, _ in crops]
        while len(per_face) < len(crops):
            per_face.append({})
        maps = None
        if cam:
            try:
                maps = gradcam(pred.model, np.stack([c for _, c in crops]).astype(np.float32)[..., None])
            except Exception:  # noqa: BLE001 - Grad-CAM is an extra
                maps = None
        for i, ((box, crop), p) in enumerate(zip(crops, probs)):
            res = pred.face_result(p, i, box, name)
            per_face[i][mname] = {
                "result": res,
                "cam": overlay(crop, maps[i]) if maps is not None else None,
                "crop": crop,
            }
    return {"name": name, "status": status if not per_face else "ok", "gray": gray, "boxes": boxes, "faces": per_face}


def result_rows(analysis: dict) -> list[dict]:
    rows = []
    if not analysis["faces"]:
        rows.append({"file": analysis["name"], "face": None, "model": None, "status": analysis["status"]})
    for i, face in enumerate(analysis["faces"]):
        for mname, r in face.items():
            res = r["result"]
            box = res.box or (None, None, None, None)
            rows.append(
                {
                    "file": analysis["name"],
                    "face": i,
                    "model": mname,
                    "x": box[0],
                    "y": box[1],
                    "w": box[2],
                    "h": box[3],
                    "status": res.status,
                    "emotion": res.emotion,
                    "confidence": round(res.confidence, 4),
                    **{f"p_{c}": round(v, 4) for c, v in res.probabilities.items()},
                }
            )
    return rows


def analysis_html(analysis: dict) -> str:
    """One image: boxed faces, then per face and model the probability bars and Grad-CAM."""
    from .report import prob_bars_html

    esc = html.escape
    if analysis["gray"] is None:
        reason = esc(status_text(analysis["status"]))
        return f'<div class="emolib-result"><b>{esc(analysis["name"])}</b>: {reason}</div>'
    parts = [
        f'<div class="emolib-result" style="border-top:1px solid #ccc;padding:8px 0">'
        f'<div style="font-weight:bold">{esc(analysis["name"])}: {len(analysis["faces"])} face(s)'
        f"{'' if analysis['faces'] else ' (' + esc(status_text(analysis['status'])) + ')'}</div>"
        f'<img src="{_png(boxed_image(analysis["gray"], analysis["boxes"]))}" style="max-width:360px"/>'
    ]
    for i, face in enumerate(analysis["faces"]):
        parts.append(f'<div style="margin:6px 0 0 0"><b>face {i}</b><div style="display:flex;flex-wrap:wrap">')
        for mname, r in face.items():
            res = r["result"]
            title = f"{mname}: {res.emotion} ({100 * res.confidence:.1f}%)"
            cam = (
                f'<img src="{_png(r["cam"])}" width="120" title="Grad-CAM {esc(mname)}"/>'
                if r["cam"] is not None
                else ""
            )
            parts.append(
                f'<div style="margin:4px 18px 4px 0;display:flex;align-items:flex-start">'
                f"<div>{prob_bars_html(res.probabilities, title=title)}</div>"
                f'<div style="margin-left:6px;font-size:11px">{cam}<br/>Grad-CAM</div></div>'
            )
        parts.append("</div></div>")
    parts.append("</div>")
    return "".join(parts)


def csv_link(rows: list[dict], filename: str = "predictions.csv") -> str:
    data = pd.DataFrame(rows).to_csv(index=False).encode("utf-8")
    uri = "data:text/csv;base64," + base64.b64encode(data).decode("ascii")
    return f'<a download="{html.escape(filename)}" href="{uri}" class="emolib-csv">Download the results (CSV)</a>'


def app(
    model_dir: str | os.PathLike | None = None,
    *,
    max_upload_mb: float = MAX_UPLOAD_MB,
    faces: str = "auto",
    max_files: int | None = None,
    max_total_mb: float | None = None,
    detector: str = DEFAULT_DETECTOR,
):
    """Build the playground UI (ipywidgets). Upload limits: see `emolib.uploads` (defaults there)."""
    import ipywidgets as w

    from . import uploads as U
    from .predict import load_predictor

    limits = U.Limits(
        max_file_mb=max_upload_mb, max_files=max_files or U.MAX_FILES, max_total_mb=max_total_mb or U.MAX_TOTAL_MB
    )

    root = resolve_model_root(model_dir)
    dirs = find_models(root)
    if not dirs:
        return w.HTML(
            f"<b>No trained model under {html.escape(str(root))}</b> (a folder with model.keras and "
            f"model.json, or folders of them). Run <code>make train</code>, or set {MODEL_DIR_ENV}."
        )
    cache: dict[str, Any] = {}

    def predictor(name):
        if name not in cache:
            cache[name] = load_predictor(dirs[name])
        return cache[name]

    upload = w.FileUpload(accept="image/*", multiple=True, description="Upload photos")
    upload.add_class("emolib-upload")
    model_dd = w.Dropdown(
        options=[ALL_MODELS, *dirs], value=ALL_MODELS if len(dirs) > 1 else next(iter(dirs)), description="Model"
    )
    faces_dd = w.Dropdown(
        options=[("find faces (auto)", "auto"), ("always search", "on"), ("whole image", "off")],
        value=faces,
        description="Faces",
    )
    detector_dd = w.Dropdown(
        options=[("BlazeFace, aligned", "blazeface"), ("Haar cascade", "haar")],
        value=check_detector(detector),
        description="Detector",
    )
    samples = test_images(dirs)
    picker = w.SelectMultiple(options=[(Path(p).name, p) for p in samples], rows=6, description="Test images")
    run_btn = w.Button(description="Predict selected test images", layout=w.Layout(width="260px"))
    gradcam_cb = w.Checkbox(value=True, description="Grad-CAM")
    status = w.HTML()
    out = w.HTML()
    out.add_class("emolib-output")

    def problems_html(problems: list[str]) -> str:
        return "".join(f'<div class="emolib-problem" style="color:#c62828">{html.escape(p)}</div>' for p in problems)

    def run(items: list[tuple[str, Any]], problems: list[str]):
        """items: (name, bytes of an upload | path of a test image). One bad item never stops the others."""
        names = list(dirs) if model_dd.value == ALL_MODELS else [model_dd.value]
        status.value = "<i>predicting...</i>"
        try:
            preds = {n: predictor(n) for n in names}
        except Exception as e:  # noqa: BLE001 - ModelDirError, or a model file Keras cannot load
            out.value = problems_html(problems)
            status.value = f'<span class="emolib-problem" style="color:#c62828">{html.escape(str(e))}</span>'
            return
        problems = list(problems)
        blocks, rows, n_ok = [], [], 0
        for name, src in items:
            try:
                if isinstance(src, (bytes, bytearray)):
                    src = U.decode_upload(name, bytes(src), limits)
                a = analyse(name, src, preds, faces=faces_dd.value, cam=gradcam_cb.value, detector=detector_dd.value)
                block = analysis_html(a)
            except U.UploadRefused as e:
                problems.append(str(e))
                rows.append({"file": name, "face": None, "model": None, "status": f"refused: {e.reason}"})
                continue
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                problems.append(f"{name}: could not be analysed ({type(e).__name__}: {e})")
                rows.append({"file": name, "face": None, "model": None, "status": f"error: {type(e).__name__}"})
                continue
            if a["faces"]:
                n_ok += 1
            else:
                problems.append(f"{name}: {status_text(a['status'])}")
            blocks.append(block)
            rows += result_rows(a)
        table = ""
        if rows:
            df = pd.DataFrame(rows).astype(object)
            df = df.where(df.notna(), "")
            table = (
                f"<h4>Results ({n_ok} of {len(items)} image(s) with a prediction)</h4>"
                + df.to_html(index=False, border=0, classes="emolib-table", na_rep="")
                + csv_link(rows)
            )
        out.value = problems_html(problems) + table + "".join(blocks)
        status.value = (
            f"done: {n_ok} of {len(items)} image(s) with a prediction, {len(problems)} message(s); "
            f"model(s): {', '.join(names)}"
        )

    def guarded(fn, what: str):
        """A widget callback that never raises (in Voila a traceback would replace the answer)."""

        def callback(*args):
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001
                status.value = (
                    f'<span class="emolib-problem" style="color:#c62828">{html.escape(what)} failed: '
                    f"{html.escape(type(e).__name__)}: {html.escape(str(e))}</span>"
                )

        return callback

    def on_upload(change):
        if not change["new"]:
            return  # the value cleared below
        try:
            items, problems = U.check_uploads(change["new"], limits)
            run(items, problems)
        finally:
            upload.value = ()  # drop the bytes (kept in the widget otherwise) and re-arm the button

    def on_upload_error(change):
        if change["new"]:
            status.value = (
                f'<span class="emolib-problem" style="color:#c62828">the browser could not read the '
                f"files: {html.escape(str(change['new']))}</span>"
            )

    def on_run(_):
        run([(Path(p).name, p) for p in picker.value], [] if picker.value else ["select test images first"])

    upload.observe(guarded(on_upload, "the upload"), names="value")
    upload.observe(guarded(on_upload_error, "the upload"), names="error")
    run_btn.on_click(guarded(on_run, "the prediction"))
    head = w.HTML(
        f"<div style='font-size:12px;color:#444'>Models from <code>{html.escape(str(root))}</code>: "
        f"{', '.join(dirs)}. Photos are decoded in memory (never stored): "
        f"{html.escape(limits.describe())}.</div>"
    )
    controls = w.HBox([model_dd, faces_dd, detector_dd, gradcam_cb])
    pick = w.HBox([picker, run_btn]) if samples else w.HTML("<i>(no readable test images listed)</i>")
    photos = w.VBox([head, controls, upload, pick, status, out])
    return live_tabs(photos, dirs, predictor)  # + the camera and video modes (section below)


# ======================================================================================
# Camera and video modes of the live playground: tabs next to the photos (`live_tabs`).
#
# Camera: `emolib.camera` (an anywidget; frames analysed in memory, one in flight).
# Video: one short clip per upload, checked by `emolib.uploads` (size, container sniffed
# from the bytes, duration), written into a TemporaryDirectory that is removed once
# `emolib.video.predict_video` has run, then shown as the per-track timelines and a few key
# frames with boxes and labels.
# ======================================================================================

VIDEO_SAMPLE_FPS = 5.0  # frames analysed per second of video (the live timeline needs no more)
VIDEO_KEY_FRAMES = 4
VIDEO_MAX_TRACKS = 4  # timeline figures shown (the table lists every track)


def live_tabs(photos, dirs: dict[str, Path], load, *, default: str | None = None):
    """Tabs 'Photos' (the given panel), 'Camera' and 'Video'; `load(name)` gives a (cached) Predictor."""
    import ipywidgets as w

    default = default if default in dirs else next(iter(dirs))
    tabs = w.Tab(
        children=[photos, camera_panel(dirs, load, default), video_panel(dirs, load, default)],
        titles=("Photos", "Camera", "Video"),
    )
    tabs.add_class("emolib-modes")
    return tabs


def _model_dropdown(dirs: dict[str, Path], default: str):
    import ipywidgets as w

    return w.Dropdown(options=list(dirs), value=default, description="Model")


def camera_panel(dirs: dict[str, Path], load, default: str):
    """The camera mode: a model choice and the webcam widget (`emolib.camera.CameraWidget`)."""
    import ipywidgets as w

    from .camera import FRAME_HEIGHT, FRAME_WIDTH, TIMELINE_S, FrameHandler, camera_widget

    model_dd = _model_dropdown(dirs, default)
    handler = FrameHandler(lambda: load(model_dd.value))  # the model loads on the first frame

    def on_model(change):
        handler.predictor = lambda: load(change["new"])

    model_dd.observe(on_model, names="value")
    try:
        cam = camera_widget(handler)
    except ImportError as e:
        return w.HTML(f'<div class="emolib-problem" style="color:#c62828">{html.escape(str(e))}</div>')
    cam.add_class("emolib-camera-widget")
    head = w.HTML(
        f"<div style='font-size:12px;color:#444'>Start the camera: each frame (at most "
        f"{FRAME_WIDTH}x{FRAME_HEIGHT}, JPEG) goes to the kernel, the next one only once the kernel "
        f"answered; faces come back boxed with their emotion and probabilities. Frames are analysed in "
        f"memory and never stored. The timeline shows the largest face over the last "
        f"{TIMELINE_S:g} s.</div>"
    )
    return w.VBox([head, model_dd, cam])


def _video_support():
    """emolib.video.predict_video, or None where this installation lacks it."""
    try:
        from .video import predict_video
    except ImportError:
        return None
    return predict_video


def video_panel(dirs: dict[str, Path], load, default: str, limits=None):
    """The video mode: upload one short clip, see its per-track timelines and key frames."""
    import ipywidgets as w

    from . import uploads as U

    limits = limits or U.VideoLimits()
    if _video_support() is None:
        return w.HTML(
            '<div class="emolib-problem emolib-video-missing" style="color:#c62828">Video support is '
            "not installed (this emolib has no <code>emolib.video</code>).</div>"
        )
    model_dd = _model_dropdown(dirs, default)
    upload = w.FileUpload(accept="video/*,.mp4,.mov,.webm,.mkv,.avi", multiple=False, description="Upload a video")
    upload.add_class("emolib-video-upload")
    status = w.HTML()
    out = w.HTML()
    out.add_class("emolib-video-output")

    def on_upload(change):
        if not change["new"]:
            return  # the value cleared below
        status.value = "<i>analysing the video...</i>"
        try:
            name, data, container = U.check_video_upload(change["new"], limits)
            res = analyse_video(name, data, container, load(model_dd.value), limits)
            out.value = video_html(res)
            status.value = (
                f"done: {html.escape(name)}, {len(res['rows'])} face row(s) in "
                f"{res['info'].seconds:.1f} s of video, {len(res['tracks'])} track(s)"
            )
        except U.UploadRefused as e:
            out.value = ""
            status.value = f'<span class="emolib-problem" style="color:#c62828">{html.escape(str(e))}</span>'
        except Exception as e:  # noqa: BLE001 - a callback must not raise; the page stays usable
            out.value = ""
            status.value = (
                f'<span class="emolib-problem" style="color:#c62828">the video could not be analysed: '
                f"{html.escape(type(e).__name__)}: {html.escape(str(e))}</span>"
            )
        finally:
            upload.value = ()  # drop the bytes and re-arm the button

    upload.observe(on_upload, names="value")
    head = w.HTML(
        f"<div style='font-size:12px;color:#444'>Upload {html.escape(limits.describe())}. It is "
        f"analysed at {VIDEO_SAMPLE_FPS:g} frames per second from a temporary file that is removed "
        f"right after.</div>"
    )
    return w.VBox([head, model_dd, upload, status, out])


def analyse_video(name: str, data: bytes, container: str, predictor, limits=None) -> dict:
    """Run `emolib.video.predict_video` on the clip's bytes: {"name", "info", "rows", "tracks",
    "timelines": [(track, png data URI)], "frames": [(frame, time_s, png data URI)]}.

    The bytes go into a TemporaryDirectory, removed when this returns or raises.
    UploadRefused for a clip that does not decode or is too long; ImportError without emolib.video.
    """
    import tempfile

    from . import uploads as U

    predict_video = _video_support()
    if predict_video is None:
        raise ImportError("video support is not installed (this emolib has no emolib.video)")
    limits = limits or U.VideoLimits()
    with tempfile.TemporaryDirectory(prefix="emolib-video-") as tmp:
        # the upload's own name (figure titles show it), reduced to harmless characters
        stem = re.sub(r"[^\w .()-]", "_", Path(name).stem)[:80].strip(" .") or "upload"
        path = Path(tmp) / f"{stem}{U.VIDEO_SUFFIX.get(container, '.mp4')}"
        path.write_bytes(data)
        info = U.probe_video(str(path), name, limits)
        fps = VIDEO_SAMPLE_FPS if info.fps > VIDEO_SAMPLE_FPS else None
        result = predict_video(predictor, path, fps=fps, out_dir=None, annotate=False)
        # the rows name the temporary file: give them the upload's name instead
        rows = [{**r, "path": name} if "path" in r else r for r in result.rows]
        tracks = list(result.tracks)
        frames = key_frames(path, rows, VIDEO_KEY_FRAMES)
    timelines = []
    longest = sorted(tracks, key=lambda s: -float(s.get("seconds_classified", s.get("duration_s")) or 0))
    for summary in sorted(longest[:VIDEO_MAX_TRACKS], key=lambda s: s["track"]):
        try:
            timelines.append((summary["track"], _figure_png(result.timeline_figure(summary["track"]))))
        except Exception:  # noqa: BLE001 - one figure failing leaves the others and the table
            continue
    status, note = str(getattr(result, "status", "ok")), getattr(result, "note", None)
    return {
        "name": name,
        "info": info,
        "rows": rows,
        "tracks": tracks,
        "timelines": timelines,
        "frames": frames,
        "status": status,
        "note": note,
    }


def _figure_png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pick_key_frames(rows: list[dict], k: int) -> list[int]:
    """Up to k frame indices: each track's most confident frame, then frames spread over the clip."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("frame") is not None]
    best: dict[Any, dict] = {}
    for r in ok:
        t = r.get("track")
        if t not in best or (r.get("confidence") or 0) > (best[t].get("confidence") or 0):
            best[t] = r
    chosen = sorted({int(r["frame"]) for r in best.values()})[:k]
    with_faces = sorted({int(r["frame"]) for r in ok}) or sorted(
        {int(r["frame"]) for r in rows if r.get("frame") is not None}
    )
    spread = np.linspace(0, len(with_faces) - 1, num=min(k, len(with_faces))).round().astype(int)
    for i in spread if with_faces else ():
        if len(chosen) < k and with_faces[i] not in chosen:
            chosen.append(with_faces[i])
    return sorted(chosen)


def key_frames(path, rows: list[dict], k: int = VIDEO_KEY_FRAMES, max_side: int = 240) -> list[tuple[int, float, str]]:
    """(frame, time_s, PNG data URI) of up to k frames of the video, with every face row's box and label drawn."""
    import cv2
    from PIL import Image, ImageDraw

    wanted = _pick_key_frames(rows, k)
    by_frame: dict[int, list[dict]] = {}
    for r in rows:
        if r.get("frame") is not None:
            by_frame.setdefault(int(r["frame"]), []).append(r)
    out = []
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        for target in wanted:
            while i < target and cap.grab():  # sequential: exact on every codec, cheap for a short clip
                i += 1
            ok, frame = cap.read()
            i += 1
            if not ok:
                break
            img = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            draw = ImageDraw.Draw(img)
            time_s = None
            for r in by_frame.get(target, []):
                time_s = r.get("time_s", time_s)
                if r.get("status") != "ok" or r.get("x") is None:
                    continue
                x, y, w, h = (float(r[c]) for c in ("x", "y", "w", "h"))
                draw.rectangle([x, y, x + w, y + h], outline=(255, 40, 40), width=max(2, img.width // 200))
                label = f"{r.get('track')}: {r.get('emotion')} {100 * float(r.get('confidence') or 0):.0f}%"
                draw.rectangle([x, max(0, y - 14), x + 7 * len(label), max(14, y)], fill=(255, 40, 40))
                draw.text((x + 2, max(0, y - 13)), label, fill=(255, 255, 255))
            img.thumbnail((max_side, max_side))
            out.append((target, float(time_s) if time_s is not None else float("nan"), _png(np.asarray(img))))
    finally:
        cap.release()
    return out


def _flat(summary: dict) -> dict:
    """A track summary as one short table row: scalars, and the share of time per emotion as
    '<emotion> share' percentages (other per-class dicts, e.g. mean probabilities, left out)."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if not isinstance(v, dict):
            out[k] = v
        elif "share" in k:
            out.update({f"{c} share": f"{100 * float(x):.0f}%" for c, x in v.items()})
    return out


def video_html(res: dict) -> str:
    """The video result: the track table, each track's timeline figure, the key frames and a CSV link."""
    esc = html.escape
    info = res["info"]
    parts = [
        f'<div class="emolib-video-result"><b>{esc(res["name"])}</b>: {info.width}x{info.height}, '
        f"{info.seconds:.1f} s at {info.fps:.1f} fps, {len(res['tracks'])} face track(s)</div>"
    ]
    if res.get("status", "ok") != "ok":
        said = {"no_face": "no face found in the video", "blank": "only blank face crops in the video"}
        parts.append(
            f'<div class="emolib-problem" style="color:#c62828">{esc(said.get(res["status"], res["status"]))}</div>'
        )
    if res.get("note"):
        parts.append(f'<div style="color:#777;font-size:12px">{esc(str(res["note"]))}</div>')
    if res["tracks"]:
        df = pd.DataFrame([_flat(t) for t in res["tracks"]]).round(3).astype(object)
        table = df.where(df.notna(), "").to_html(index=False, border=0, classes="emolib-table emolib-video-tracks")
        parts.append(table)
    elif res.get("status", "ok") == "ok":
        parts.append('<div class="emolib-problem" style="color:#c62828">no face found in the video</div>')
    for track, png in res["timelines"]:
        parts.append(
            f'<figure class="emolib-video-timeline" style="margin:6px 0"><img src="{png}" '
            f'style="max-width:640px"/><figcaption style="font-size:11px">track {esc(str(track))}: '
            f"probabilities over time</figcaption></figure>"
        )
    if res["frames"]:
        parts.append('<div class="emolib-video-frames" style="display:flex;flex-wrap:wrap;gap:8px">')
        for frame, t, png in res["frames"]:
            when = f"{t:.1f} s" if t == t else f"frame {frame}"
            parts.append(
                f'<figure style="margin:0"><img src="{png}"/><figcaption style="font-size:11px">{when}'
                f"</figcaption></figure>"
            )
        parts.append("</div>")
    if res["rows"]:
        parts.append(csv_link(res["rows"], "video_predictions.csv"))
    return "".join(parts)


# ======================================================================================
# The offline playground of the rendered report (moved here from emolib.report)
#
# `offline_playground` works without a kernel: it is a `widgets.Stack` of precomputed
# panels (one per test image; inside each, one per model) switched by a Dropdown and
# ToggleButtons joined with `widgets.jslink`, which the static page
# (`emolib.render.render_report`) runs from the embedded widget state. Its data come
# from each model's test_predictions.csv (`playground_data`); Grad-CAM is precomputed.
# ======================================================================================


def _offline_esc(x: Any) -> str:
    return html.escape(str(x))


def _offline_html(html_str: str):
    from IPython.display import HTML

    return HTML(html_str)


def _offline_image_path(path: str, reports_dir: Path) -> Path | None:
    p = Path(path)
    candidates = [p] if p.is_absolute() else [p, reports_dir.parent / p, Path(__file__).resolve().parents[1] / p]
    for c in candidates:
        if c.is_file():
            return c
    return None


def pick_playground_images(
    preds: dict[str, pd.DataFrame], classes: Sequence[str], n: int = 12, seed: int = 0, error_share: float = 0.5
) -> list[str]:
    """Test image paths for the playground: about `error_share` errors (of any model), the rest correct,
    spread over the true classes; deterministic."""
    names = list(preds)
    common = None
    for df in preds.values():
        s = set(df["path"])
        common = s if common is None else common & s
    if not common:
        return []
    base = preds[names[0]].set_index("path").loc[sorted(common)]
    wrong_any = pd.Series(False, index=base.index)
    for df in preds.values():
        d = df.drop_duplicates("path").set_index("path").loc[base.index]
        wrong_any |= d["true"].astype(str) != d["predicted"].astype(str)
    rng = np.random.default_rng(seed)
    n_err = min(int(round(n * error_share)), int(wrong_any.sum()))
    chosen: list[str] = []
    for pool, k in ((base.index[wrong_any.to_numpy()], n_err), (base.index[~wrong_any.to_numpy()], n - n_err)):
        pool = list(pool)
        by_class = {c: [p for p in pool if str(base.loc[p, "true"]) == c] for c in classes}
        for lst in by_class.values():
            rng.shuffle(lst)
        picked: list[str] = []
        while len(picked) < k and any(by_class.values()):
            for c in classes:
                if by_class[c] and len(picked) < k:
                    picked.append(by_class[c].pop())
        chosen += picked
    if len(chosen) < n:  # top up from whatever is left
        rest = [p for p in base.index if p not in chosen]
        rng.shuffle(rest)
        chosen += rest[: n - len(chosen)]
    return chosen


def playground_data(
    reports_dir="reports", n_images: int = 12, seed: int = 0, gradcam: bool = True, models: Sequence[str] | None = None
) -> dict:
    """Precompute everything the static playground shows.

    Returns {"models": [...], "classes": [...], "items": [{"path", "name", "true", "image_png",
    "per_model": {model: {"probs", "predicted", "confidence", "cam_png" | None}}}], "notes": [...]}.
    Probabilities come from each model's test_predictions.csv (the numbers the report's
    tables are computed from); Grad-CAM is computed here when model.keras loads.
    """
    from .images import read_image
    from .modelfolder import CARD_FILE, PREDICTIONS_FILE, find_model_dirs
    from .report import array_png, load_json

    reports_dir = Path(reports_dir)
    notes: list[str] = []
    dirs = find_model_dirs(reports_dir / "models")
    if models is not None:
        dirs = {k: v for k, v in dirs.items() if k in set(models)}
    preds: dict[str, pd.DataFrame] = {}
    classes: list[str] | None = None
    for name, d in dirs.items():
        f = d / PREDICTIONS_FILE
        card = load_json(d / CARD_FILE) or {}
        if not f.is_file():
            notes.append(f"{name}: no {PREDICTIONS_FILE} (make evaluate), not in the playground")
            continue
        try:
            df = pd.read_csv(f)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            df = None
        cls = list(card.get("classes") or ([c[2:] for c in df.columns if c.startswith("p_")] if df is not None else []))
        if classes is None:
            classes = cls
        elif cls != classes:
            notes.append(f"{name}: classes {cls} differ from {classes}, left out")
            continue
        if df is None or not {"path", "true", "predicted"} <= set(df.columns):
            notes.append(f"{name}: {PREDICTIONS_FILE} lacks path/true/predicted columns, left out")
            continue
        df = df.copy()
        df["path"] = df["path"].astype(str)
        preds[name] = df
    if not preds:
        return {"models": [], "classes": classes or [], "items": [], "notes": notes}
    # keep only rows whose image is readable here
    paths = pick_playground_images(preds, classes, n=n_images * 3, seed=seed)
    items = []
    for p in paths:
        if len(items) >= n_images:
            break
        real = _offline_image_path(p, reports_dir)
        if real is None:
            continue
        try:
            gray = read_image(real, mode="L")
        except Exception:  # noqa: BLE001 - an unreadable image is skipped
            continue
        per_model = {}
        true = None
        for name, df in preds.items():
            row = df[df["path"] == p].iloc[0]
            true = str(row["true"])
            probs = {c: float(row.get(f"p_{c}", float("nan"))) for c in classes}
            per_model[name] = {
                "probs": probs,
                "predicted": str(row["predicted"]),
                "confidence": float(row.get("confidence", max(probs.values()))),
                "cam_png": None,
            }
        items.append(
            {
                "path": p,
                "name": Path(p).name,
                "true": true,
                "gray": gray,
                "image_png": array_png(_offline_display_image(gray), scale=1),
                "per_model": per_model,
            }
        )
    if len(items) < len(paths) and not items:
        notes.append(f"the test images listed in {PREDICTIONS_FILE} are not readable from here")
    if gradcam and items:
        _offline_gradcams(items, {n: dirs[n] for n in preds}, classes, notes)
    for it in items:
        it.pop("gray", None)
    return {"models": list(preds), "classes": classes, "items": items, "notes": notes}


def _offline_display_image(gray: np.ndarray, size: int = 144) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.asarray(gray, dtype=np.uint8))
    img = img.resize((size, size), Image.BICUBIC) if img.width != img.height or img.width < size else img
    return np.asarray(img)


def _offline_gradcams(items: list[dict], dirs: dict[str, Path], classes: Sequence[str], notes: list[str]) -> None:
    from .explain import gradcam, overlay
    from .images import read_image
    from .modelfolder import MODEL_FILE, ModelDirError
    from .predict import load_predictor
    from .report import array_png

    for name, d in dirs.items():
        if not (d / MODEL_FILE).is_file():
            notes.append(f"{name}: no {MODEL_FILE}, no Grad-CAM")
            continue
        try:
            pred = load_predictor(d)
        except ModelDirError as e:
            notes.append(f"{name}: Grad-CAM skipped ({e})")
            continue
        try:
            x = np.stack([read_image(it["gray"], mode="L", size=pred.size) for it in items]).astype(np.float32)
            idx = [
                classes.index(it["per_model"][name]["predicted"])
                if it["per_model"][name]["predicted"] in classes
                else 0
                for it in items
            ]
            maps = gradcam(pred.model, x[..., None], class_index=idx)
        except Exception as e:  # noqa: BLE001 - Grad-CAM is an extra; the panel still shows probabilities
            notes.append(f"{name}: Grad-CAM failed ({type(e).__name__}: {e})")
            continue
        for it, xi, hm in zip(items, x, maps):
            disp = _offline_display_image(xi.astype(np.uint8))
            it["per_model"][name]["cam_png"] = array_png(overlay(disp, hm), scale=1)


def _offline_item_label(i: int, it: dict) -> str:
    wrong = [m for m, r in it["per_model"].items() if r["predicted"] != it["true"]]
    tag = ("errors: " + ", ".join(wrong)) if wrong else "all correct"
    return f"{i + 1:02d} · true {it['true']} · {tag}"


def _offline_model_panel_html(it: dict, model: str) -> str:
    from .report import img_tag, prob_bars_html

    r = it["per_model"][model]
    ok = r["predicted"] == it["true"]
    verdict = (
        f'<span style="color:{"#2e7d32" if ok else "#c62828"};font-weight:bold">'
        f"{_offline_esc(model)} predicts {_offline_esc(r['predicted'])} ({100 * r['confidence']:.1f}%) "
        f"{'&#10003; correct' if ok else '&#10007; wrong'}</span>"
    )
    cam = (
        f'<figure style="margin:0 0 0 14px">{img_tag(r["cam_png"], width=144, alt="Grad-CAM")}'
        f'<figcaption style="font-size:11px">Grad-CAM ({_offline_esc(model)}, predicted class)</figcaption></figure>'
        if r.get("cam_png")
        else '<div style="margin-left:14px;font-size:11px;color:#777">no Grad-CAM</div>'
    )
    return (
        f'<div style="display:flex;align-items:flex-start">'
        f"<div>{verdict}{prob_bars_html(r['probs'], true=it['true'], title=f'{model}: class probabilities')}</div>"
        f"{cam}</div>"
    )


def _offline_summary_html(it: dict, models: Sequence[str]) -> str:
    rows = "".join(
        f'<tr><td>{_offline_esc(m)}</td><td style="color:{"#2e7d32" if r["predicted"] == it["true"] else "#c62828"}">'
        f"{_offline_esc(r['predicted'])}</td><td>{100 * r['confidence']:.1f}%</td></tr>"
        for m, r in ((m, it["per_model"][m]) for m in models)
    )
    return (
        f'<div style="font-size:12px"><div style="font-weight:bold">all models</div>'
        f'<table class="emolib-table"><tr><th>model</th><th>predicted</th><th>conf.</th></tr>{rows}</table></div>'
    )


def offline_playground(
    reports_dir="reports", n_images: int = 12, seed: int = 0, gradcam: bool = True, data: dict | None = None
):
    """The kernel-free prediction playground: an ipywidgets tree, or an HTML note when nothing is there.

    Dropdown (image) --jslink--> outer Stack (one panel per image);
    ToggleButtons (model) --jslink--> inner Stack of each panel (one per model).
    """
    import ipywidgets as w

    from .modelfolder import PREDICTIONS_FILE
    from .report import img_tag, note

    data = data if data is not None else playground_data(reports_dir, n_images=n_images, seed=seed, gradcam=gradcam)
    items, models = data["items"], data["models"]
    notes_html = "".join(note(n) for n in data["notes"])
    if not items:
        return _offline_html(
            note(f"No playground: needs models with {PREDICTIONS_FILE} whose test images are readable (make evaluate).")
            + notes_html
        )
    image_dd = w.Dropdown(
        options=[(_offline_item_label(i, it), i) for i, it in enumerate(items)],
        index=0,
        description="Test image",
        layout=w.Layout(width="520px"),
        style={"description_width": "90px"},
    )
    model_tb = w.ToggleButtons(
        options=list(models), index=0, description="Model", style={"description_width": "90px", "button_width": "110px"}
    )
    panels = []
    for it in items:
        left = w.HTML(
            f'<div style="margin-right:14px">{img_tag(it["image_png"], width=144, alt=it["name"])}'
            f'<div style="font-size:13px"><b>true: {_offline_esc(it["true"])}</b></div>'
            '<div style="font-size:10px;color:#777;max-width:150px;word-break:break-all">'
            f"{_offline_esc(it['name'])}</div>"
            f"</div>"
        )
        inner = w.Stack([w.HTML(_offline_model_panel_html(it, m)) for m in models], selected_index=0)
        w.jslink((model_tb, "index"), (inner, "selected_index"))
        summary = w.HTML(f'<div style="margin-left:18px">{_offline_summary_html(it, models)}</div>')
        panels.append(w.HBox([left, inner, summary], layout=w.Layout(align_items="flex-start", padding="6px")))
    outer = w.Stack(panels, selected_index=0)
    w.jslink((image_dd, "index"), (outer, "selected_index"))
    head = w.HTML(
        '<div style="font-size:12px;color:#444">Precomputed on the test split (about half of the '
        "images are errors of at least one model). Probabilities are the ones of each model's "
        f"{PREDICTIONS_FILE}; Grad-CAM for the predicted class. No kernel needed.</div>" + notes_html
    )
    box = w.VBox([head, image_dd, model_tb, outer], layout=w.Layout(border="1px solid #ccc", padding="8px"))
    box.add_class("emolib-playground")
    return box
