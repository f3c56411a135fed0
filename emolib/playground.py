"""The live prediction playground (`notebooks/50_playground.ipynb`, served by `make playground`
with Voila on 127.0.0.1; it works in JupyterLab too).

Upload one or several photos (or pick test images), choose a model or all of them, and see
the detected faces boxed, the class probabilities per face, the Grad-CAM of each face and,
for a batch, a results table with a CSV download link (a `data:` URI).

Uploads are decoded from memory (`emolib.images.read_image` accepts bytes): nothing is
written to disk. Each file is limited to `max_upload_mb` (10 MB by default); larger files
and files that are not images are reported and skipped, never fatal.
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

MAX_UPLOAD_MB = 10.0
MODEL_DIR_ENV = "EMOLIB_MODEL_DIR"
ALL_MODELS = "all models"
ROOT = Path(__file__).resolve().parents[1]


def resolve_model_root(model_dir: str | os.PathLike | None = None) -> Path:
    """The models folder: $EMOLIB_MODEL_DIR, else `model_dir` (relative paths tried from the
    current folder, then from the repository root, since Voila runs in notebooks/)."""
    raw = os.environ.get(MODEL_DIR_ENV) or str(model_dir or "reports/models")
    p = Path(raw).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return ROOT / p if (ROOT / p).exists() else p


def find_models(model_root: str | os.PathLike) -> dict[str, Path]:
    """{name: model dir}: `model_root` itself if it is a model dir, else its trained sub-folders
    (the one order of modelfolder.find_model_dirs)."""
    from .modelfolder import find_model_dirs

    return find_model_dirs(model_root)


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
    """FileUpload value (ipywidgets 8: tuple of dicts name/size/content) -> ([(name, bytes)], problems)."""
    items, problems = [], []
    for f in value or ():
        name = str(f.get("name", "upload"))
        size = int(f.get("size") or len(f.get("content", b"")))
        if size > max_mb * 1e6:
            problems.append(f"{name}: {size / 1e6:.1f} MB is over the {max_mb:g} MB limit, skipped")
            continue
        items.append((name, bytes(f["content"])))
    return items, problems


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


def analyse(name: str, source: Any, predictors: dict, *, faces: str = "auto", cam: bool = True) -> dict:
    """Run every predictor on one image: {"name", "gray", "boxes", "status", "faces": [{model: FaceResult, cam}]}."""
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
        crops, bad = pred._prepare(gray, faces, name)  # the crops predict() would use
        if bad is not None:
            status = bad.status
            continue
        probs = pred.predict_arrays(np.stack([c for _, c in crops]))
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
            res = pred._result(p, i, box, name)
            per_face[i][mname] = {"result": res, "cam": overlay(crop, maps[i]) if maps is not None else None,
                                  "crop": crop}
    return {"name": name, "status": status if not per_face else "ok", "gray": gray, "boxes": boxes,
            "faces": per_face}


def result_rows(analysis: dict) -> list[dict]:
    rows = []
    if not analysis["faces"]:
        rows.append({"file": analysis["name"], "face": None, "model": None, "status": analysis["status"]})
    for i, face in enumerate(analysis["faces"]):
        for mname, r in face.items():
            res = r["result"]
            box = res.box or (None, None, None, None)
            rows.append({"file": analysis["name"], "face": i, "model": mname, "x": box[0], "y": box[1],
                         "w": box[2], "h": box[3], "status": res.status, "emotion": res.emotion,
                         "confidence": round(res.confidence, 4),
                         **{f"p_{c}": round(v, 4) for c, v in res.probabilities.items()}})
    return rows


def analysis_html(analysis: dict) -> str:
    """One image: boxed faces, then per face and model the probability bars and Grad-CAM."""
    from .report import prob_bars_html

    esc = html.escape
    if analysis["gray"] is None:
        return f'<div class="emolib-result"><b>{esc(analysis["name"])}</b>: {esc(analysis["status"])}</div>'
    parts = [f'<div class="emolib-result" style="border-top:1px solid #ccc;padding:8px 0">'
             f'<div style="font-weight:bold">{esc(analysis["name"])}: {len(analysis["faces"])} face(s)'
             f'{"" if analysis["faces"] else " (" + esc(analysis["status"]) + ")"}</div>'
             f'<img src="{_png(boxed_image(analysis["gray"], analysis["boxes"]))}" style="max-width:360px"/>']
    for i, face in enumerate(analysis["faces"]):
        parts.append(f'<div style="margin:6px 0 0 0"><b>face {i}</b><div style="display:flex;flex-wrap:wrap">')
        for mname, r in face.items():
            res = r["result"]
            cam = (f'<img src="{_png(r["cam"])}" width="120" title="Grad-CAM {esc(mname)}"/>'
                   if r["cam"] is not None else "")
            parts.append(f'<div style="margin:4px 18px 4px 0;display:flex;align-items:flex-start">'
                         f'<div>{prob_bars_html(res.probabilities, title=f"{mname}: {res.emotion} ({100 * res.confidence:.1f}%)")}</div>'
                         f'<div style="margin-left:6px;font-size:11px">{cam}<br/>Grad-CAM</div></div>')
        parts.append("</div></div>")
    parts.append("</div>")
    return "".join(parts)


def csv_link(rows: list[dict], filename: str = "predictions.csv") -> str:
    data = pd.DataFrame(rows).to_csv(index=False).encode("utf-8")
    uri = "data:text/csv;base64," + base64.b64encode(data).decode("ascii")
    return f'<a download="{html.escape(filename)}" href="{uri}" class="emolib-csv">Download the results (CSV)</a>'


def app(model_dir: str | os.PathLike | None = None, *, max_upload_mb: float = MAX_UPLOAD_MB, faces: str = "auto"):
    """Build the playground UI (ipywidgets)."""
    import ipywidgets as w

    from .modelfolder import ModelDirError
    from .predict import load_predictor

    root = resolve_model_root(model_dir)
    dirs = find_models(root)
    if not dirs:
        return w.HTML(f"<b>No trained model under {html.escape(str(root))}</b> (a folder with model.keras and "
                      f"model.json, or folders of them). Run <code>make train</code>, or set {MODEL_DIR_ENV}.")
    cache: dict[str, Any] = {}

    def predictor(name):
        if name not in cache:
            cache[name] = load_predictor(dirs[name])
        return cache[name]

    upload = w.FileUpload(accept="image/*", multiple=True, description="Upload photos")
    upload.add_class("emolib-upload")
    model_dd = w.Dropdown(options=[ALL_MODELS, *dirs], value=ALL_MODELS if len(dirs) > 1 else next(iter(dirs)),
                          description="Model")
    faces_dd = w.Dropdown(options=[("find faces (auto)", "auto"), ("always search", "on"), ("whole image", "off")],
                          value=faces, description="Faces")
    samples = test_images(dirs)
    picker = w.SelectMultiple(options=[(Path(p).name, p) for p in samples], rows=6, description="Test images")
    run_btn = w.Button(description="Predict selected test images", layout=w.Layout(width="260px"))
    gradcam_cb = w.Checkbox(value=True, description="Grad-CAM")
    status = w.HTML()
    out = w.HTML()
    out.add_class("emolib-output")

    def run(items: list[tuple[str, Any]], problems: list[str]):
        names = list(dirs) if model_dd.value == ALL_MODELS else [model_dd.value]
        status.value = "<i>predicting...</i>"
        try:
            preds = {n: predictor(n) for n in names}
        except ModelDirError as e:
            status.value = f'<span style="color:#c62828">{html.escape(str(e))}</span>'
            return
        blocks, rows = [], []
        for name, src in items:
            a = analyse(name, src, preds, faces=faces_dd.value, cam=gradcam_cb.value)
            blocks.append(analysis_html(a))
            rows += result_rows(a)
        table = ""
        if rows:
            df = pd.DataFrame(rows).astype(object)
            df = df.where(df.notna(), "")
            table = (f"<h4>Results ({len(items)} image(s))</h4>"
                     + df.to_html(index=False, border=0, classes="emolib-table", na_rep="") + csv_link(rows))
        warn = "".join(f'<div style="color:#c62828">{html.escape(p)}</div>' for p in problems)
        out.value = warn + table + "".join(blocks)
        status.value = f"done: {len(items)} image(s), model(s): {', '.join(names)}"

    def on_upload(change):
        items, problems = uploads(change["new"], max_upload_mb)
        if items or problems:
            run(items, problems)

    def on_run(_):
        run([(Path(p).name, p) for p in picker.value], [] if picker.value else ["select test images first"])

    upload.observe(on_upload, names="value")
    run_btn.on_click(on_run)
    head = w.HTML(f"<div style='font-size:12px;color:#444'>Models from <code>{html.escape(str(root))}</code>: "
                  f"{', '.join(dirs)}. Photos are decoded in memory (never stored), at most "
                  f"{max_upload_mb:g} MB each.</div>")
    controls = w.HBox([model_dd, faces_dd, gradcam_cb])
    pick = w.HBox([picker, run_btn]) if samples else w.HTML("<i>(no readable test images listed)</i>")
    return w.VBox([head, controls, upload, pick, status, out])
