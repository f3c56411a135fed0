"""The rendered report (`reports/report.html`) and its offline prediction playground.

`notebooks/40_report.ipynb` is a thin wrapper around this module: each section function
reads what the pipeline left under `reports/` and returns an `IPython.display.HTML`
(a short note instead when its inputs do not exist yet, so the report renders from any
subset of the pipeline). `make report` executes that notebook with papermill and calls

    python -m emolib.report render --notebook reports/notebooks/40_report.ipynb --out reports/report.html

which is `render_report`: nbconvert's HTMLExporter without the code cells, turned into a
single self-contained file:

* the widget state papermill stored in the notebook metadata stays embedded, and the
  widget renderer (`@jupyter-widgets/html-manager` 1.0.15 `dist/embed.js`, vendored
  under `emolib/static/`) is inlined instead of nbconvert's CDN `<script src=...>`;
* require.js, MathJax and mermaid are not loaded (the report uses none of them);
* every figure is a base64 `data:` image;
* the result is checked: no `<script src="http...">` may remain.

The prediction playground (`playground`) works without a kernel: it is a `widgets.Stack`
of precomputed panels (one per test image; inside each, one per model) switched by a
Dropdown and ToggleButtons joined with `widgets.jslink`, which the static page runs.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

STATIC_DIR = Path(__file__).with_name("static")
TEMPLATES_DIR = Path(__file__).with_name("templates")
WIDGET_JS = STATIC_DIR / "html-manager-1.0.15" / "embed.js"
WIDGET_JS_VERSION = "@jupyter-widgets/html-manager@1.0.15"
WIDGET_JS_SHA256 = "8f6d2d3f856d8595d1841dec3019d99bbe74d331f2a5178c2a33bfec729e3d6a"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
_PUBLIC_PATH_THROW = 'if(!e)throw new Error("Automatic publicPath is not supported in this browser");'
_PUBLIC_PATH_FIX = "if(!e)e=document.baseURI||self.location.href;"

# Figures of the pipeline, grouped for the report (by file-name prefix; anything else
# under reports/figures lands in "Other figures").
FIGURE_GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("eda_",),
    "learning": ("history", "learning", "train_"),
    "comparison": ("comparison", "compare", "accuracy_vs", "significance", "per_class", "per_emotion"),
    "calibration": ("reliability", "calibration", "confidence"),
    "errors": ("confusion", "error", "errors", "misclass", "most_confident"),
    "gradcam": ("gradcam", "grad_cam", "cam_"),
}
EXCLUDED_FIGURES = ("report_screenshot",)


class ReportError(RuntimeError):
    """The report cannot be rendered as asked; the message says why."""


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------


def load_json(path) -> Any | None:
    """The parsed JSON file, or None when it is missing or unreadable."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_csv(path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def model_dirs(reports_dir) -> dict[str, Path]:
    """{name: folder} of `reports/models/<name>/` holding a model card (model.json), sorted.

    The study's order (cnn, vgg16, resnet50, mobilenetv2) first, then any others.
    """
    from .config import MODEL_NAMES

    root = Path(reports_dir) / "models"
    if not root.is_dir():
        return {}
    found = {p.name: p for p in root.iterdir() if p.is_dir() and (p / "model.json").is_file()}
    order = [n for n in MODEL_NAMES if n in found] + sorted(n for n in found if n not in MODEL_NAMES)
    return {n: found[n] for n in order}


def context(reports_dir="reports") -> dict:
    """Everything the report reads, loaded once (missing pieces are None / empty)."""
    reports_dir = Path(reports_dir)
    run = load_json(reports_dir / "run.json") or {}
    checks = load_json(reports_dir / "data_checks.json")
    comparison = load_json(reports_dir / "comparison.json")
    latency = load_json(reports_dir / "bench" / "latency.json")
    models = {}
    for name, d in model_dirs(reports_dir).items():
        models[name] = {
            "dir": d,
            "card": load_json(d / "model.json") or {},
            "metrics": load_json(d / "metrics.json"),
            "history": _read_csv(d / "history.csv") if (d / "history.csv").is_file() else None,
            "has_model": (d / "model.keras").is_file(),
            "test_predictions": d / "test_predictions.csv" if (d / "test_predictions.csv").is_file() else None,
        }
    figures_dir = reports_dir / "figures"
    figures = sorted(p for p in figures_dir.glob("*.png") if p.stem not in EXCLUDED_FIGURES) \
        if figures_dir.is_dir() else []
    synthetic = bool((run.get("data") or {}).get("synthetic") or (checks or {}).get("synthetic")
                     or (comparison or {}).get("synthetic")
                     or any((m["card"] or {}).get("synthetic") for m in models.values()))
    return {"reports_dir": reports_dir, "run": run, "checks": checks, "comparison": comparison,
            "latency": latency, "models": models, "figures": figures, "synthetic": synthetic}


# --------------------------------------------------------------------------------------
# small HTML helpers
# --------------------------------------------------------------------------------------


def _esc(x: Any) -> str:
    return html.escape(str(x))


def note(text: str) -> str:
    """A grey 'skipped' note (HTML)."""
    return f'<p style="color:#666;font-style:italic">&#8505; {_esc(text)}</p>'


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.{digits}f}"
    return str(v)


def table_html(df: pd.DataFrame, *, index: bool = True, float_digits: int = 3) -> str:
    if df is None or not len(df):
        return note("(empty table)")
    return df.to_html(index=index, escape=True, border=0, classes="emolib-table dataframe",
                      float_format=lambda v: f"{v:.{float_digits}f}", na_rep="")


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img_tag(path_or_bytes, *, width: int | None = None, alt: str = "", title: str = "") -> str:
    """An <img> with the PNG embedded as base64 (no file reference survives)."""
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes).read_bytes()
    w = f' width="{int(width)}"' if width else ""
    return (f'<img src="{png_data_uri(bytes(data))}"{w} alt="{_esc(alt)}" title="{_esc(title)}" '
            'style="max-width:100%;image-rendering:auto"/>')


def array_png(arr: np.ndarray, scale: int = 1) -> bytes:
    """PNG bytes of a uint8 (H, W) or (H, W, 3) array, nearest-neighbour upscaled."""
    from PIL import Image

    img = Image.fromarray(np.asarray(arr, dtype=np.uint8))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def prob_bars_html(probs: dict[str, float], *, true: str | None = None, title: str = "") -> str:
    """Horizontal probability bars as inline HTML (one row per class, highest first in bold)."""
    if not probs:
        return note("no probabilities")
    top = max(probs, key=probs.get)
    rows = []
    for c, p in probs.items():
        p = 0.0 if p is None or (isinstance(p, float) and math.isnan(p)) else float(p)
        colour = "#2e7d32" if (true is not None and c == true) else ("#c62828" if c == top else "#607d8b")
        weight = "bold" if c == top else "normal"
        mark = " &#10003;" if true is not None and c == true else ""
        rows.append(
            f'<div style="display:flex;align-items:center;margin:2px 0;font-size:13px">'
            f'<span style="width:90px;font-weight:{weight}">{_esc(c)}{mark}</span>'
            f'<span style="display:inline-block;background:#eceff1;width:180px;height:14px;margin:0 6px">'
            f'<span style="display:block;background:{colour};width:{100 * p:.1f}%;height:14px"></span></span>'
            f'<span style="font-family:monospace">{100 * p:5.1f}%</span></div>')
    head = f'<div style="font-weight:bold;margin-bottom:3px">{_esc(title)}</div>' if title else ""
    return f'<div class="emolib-probs">{head}{"".join(rows)}</div>'


def _display(html_str: str):
    from IPython.display import HTML

    return HTML(html_str)


# --------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------


def banner(ctx: dict):
    from .plots import banner_html

    return _display(banner_html(ctx["synthetic"]))


def provenance(ctx: dict):
    """Run parameters, data provenance and library versions (reports/run.json)."""
    run = ctx["run"]
    if not run:
        return _display(note("reports/run.json not found: run `make all` (the EDA notebook writes it)."))
    params = dict(run.get("params") or {})
    profile = params.pop("profile", None)
    rows = []
    if isinstance(profile, dict):
        rows.append(("profile", f"{profile.get('name')}: {profile.get('description', '')}"))
    elif profile:
        rows.append(("profile", profile))
    for k, v in params.items():
        rows.append((k, ", ".join(map(str, v)) if isinstance(v, list) else v))
    data = run.get("data") or {}
    for k in ("data_dir", "layout", "fingerprint", "synthetic"):
        if k in data:
            rows.append((f"data: {k}", data[k]))
    rows.append(("last update", run.get("updated", "")))
    out = [table_html(pd.DataFrame(rows, columns=["parameter", "value"]).set_index("parameter"))]
    counts = data.get("counts")
    if isinstance(counts, dict) and counts:
        out += ["<h4>Images per split and class</h4>", table_html(pd.DataFrame(counts).fillna(0).astype(int))]
    stages = run.get("stages") or {}
    if stages:
        st = pd.DataFrame(stages).T
        out += ["<h4>Pipeline stages</h4>", table_html(st)]
    versions = run.get("versions") or {}
    machine = run.get("machine") or {}
    if versions:
        v = ", ".join(f"{k} {val}" for k, val in versions.items())
        m = ", ".join(f"{k}: {val}" for k, val in machine.items())
        out.append(f'<p style="font-size:12px;color:#444"><b>Versions:</b> {_esc(v)}<br/><b>Machine:</b> {_esc(m)}</p>')
    return _display("".join(out))


def data_checks(ctx: dict):
    """The data checks table (reports/data_checks.json) and the EDA figures."""
    checks = ctx["checks"]
    out = []
    if not checks:
        out.append(note("reports/data_checks.json not found: the EDA notebook (make eda) writes it."))
    else:
        try:
            from .checks import summary_table

            out.append(table_html(summary_table(checks)))
        except (KeyError, TypeError) as e:
            out.append(note(f"data checks in an unexpected format ({e}); raw keys: {sorted(checks)}"))
        n = checks.get("n_images")
        if n is not None:
            out.append(f"<p>{_esc(n)} images checked in {_esc(checks.get('data_dir', '?'))} "
                       f"(classes checked: {_esc(', '.join(checks.get('classes_checked', []) or []))}).</p>")
    out.append(figures_html(ctx, "data", width=520))
    return _display("".join(out))


def _history_figure(name: str, hist: pd.DataFrame, synthetic: bool = False):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = hist["epoch_global"] if "epoch_global" in hist else np.arange(1, len(hist) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for col, style in ((key, "-"), (f"val_{key}", "--")):
            if col in hist:
                ax.plot(x, hist[col], style, label=col)
        if key == "accuracy" and "val_macro_f1" in hist:
            ax.plot(x, hist["val_macro_f1"], ":", label="val_macro_f1")
        ax.set(title=f"{name}: {key}", xlabel="epoch")
        ax.legend(fontsize=8)
    if "stage_index" in hist and hist["stage_index"].nunique() > 1:
        for b in x[hist["stage_index"].diff().fillna(0) != 0]:
            for ax in axes:
                ax.axvline(b - 0.5, color="grey", lw=0.8)
    if synthetic:
        from .plots import SYNTHETIC_STAMP

        fig.text(0.5, 0.5, SYNTHETIC_STAMP, ha="center", va="center", fontsize=18, color="red", alpha=0.25,
                 rotation=15, transform=fig.transFigure)
    fig.tight_layout()
    return fig



def model_results(ctx: dict):
    """Per model: the model card, headline test metrics and learning curves."""
    models = ctx["models"]
    if not models:
        return _display(note("No trained model yet (reports/models/<model>/model.json): run `make train`."))
    rows = []
    for name, m in models.items():
        card, met = m["card"], m["metrics"] or {}
        test = met.get("test") or {}
        ci = met.get("test_ci") or {}
        acc_ci = ci.get("accuracy") or {}
        f1_ci = ci.get("macro_f1") or {}
        rows.append({
            "model": name,
            "weights": card.get("weights_used", met.get("weights_used", "")),
            "input": "x".join(map(str, (card.get("input_shape") or [])[:2])),
            "epochs": card.get("epochs", met.get("epochs")),
            "training time (s)": card.get("training_time_s", met.get("training_time_s")),
            "test accuracy": _with_ci(test.get("accuracy"), acc_ci),
            "test macro-F1": _with_ci(test.get("macro_f1", test.get("macro_f1_score")), f1_ci),
            "ECE": _fmt((met.get("calibration") or {}).get("ece_before", test.get("ece"))),
            "metrics.json": "yes" if m["metrics"] else "not yet (make evaluate)",
        })
    out = ["<h3>Models</h3>", table_html(pd.DataFrame(rows).set_index("model"))]
    for name, m in models.items():
        out.append(f"<h4>{_esc(name)}: learning curves</h4>")
        hist = m["history"]
        if hist is None or not len(hist):
            out.append(note(f"no history.csv for {name}"))
            continue
        out.append(img_tag(figure_png(_history_figure(name, hist, ctx["synthetic"])), width=760, alt=f"{name} learning curves"))
    out.append(figures_html(ctx, "learning", width=760))
    return _display("".join(out))


def _with_ci(point, ci: dict) -> str:
    if point is None and not ci:
        return ""
    point = ci.get("point", point)
    s = _fmt(point)
    if ci.get("low") is not None and ci.get("high") is not None:
        s += f" [{_fmt(ci['low'])}, {_fmt(ci['high'])}]"
    return s


def comparison(ctx: dict):
    """The comparison table with 95% intervals, the significance matrix and per-emotion winners."""
    comp = ctx["comparison"]
    if not comp:
        return _display(note("reports/comparison.json not found: run `make compare` (needs evaluated models)."))
    out = []
    rows = pd.DataFrame(comp.get("rows") or [])
    if len(rows):
        t = pd.DataFrame({"model": rows["model"]})
        if "kind" in rows:
            t["kind"] = rows["kind"]
        for metric in ("accuracy", "f1_macro"):
            if metric in rows:
                lo, hi = rows.get(f"{metric}_ci_low"), rows.get(f"{metric}_ci_high")
                t[f"{metric} [95% CI]"] = [
                    _fmt(p) + (f" [{_fmt(a)}, {_fmt(b)}]" if a is not None and b is not None and not pd.isna(a)
                               and not pd.isna(b) else "")
                    for p, a, b in zip(rows[metric], lo if lo is not None else [None] * len(rows),
                                       hi if hi is not None else [None] * len(rows))]
        for c in ("balanced_accuracy", "ece", "nll", "parameters", "inference_ms_per_image", "training_time_s"):
            if c in rows:
                t[c] = rows[c]
        out += ["<h3>Comparison on the test split</h3>", table_html(t.set_index("model"))]
        if "note" in rows:
            notes = "".join(f"<li><b>{_esc(m)}</b>: {_esc(n)}</li>" for m, n in zip(rows["model"], rows["note"]) if n)
            out.append(f'<details><summary>How each row was made</summary><ul style="font-size:12px">{notes}</ul></details>')
    sig = (comp.get("significance") or {})
    matrix = sig.get("matrix_p_holm") or {}
    if matrix:
        m = pd.DataFrame(matrix).T
        m = m.reindex(columns=m.index).astype(float)
        alpha = sig.get("alpha", 0.05)
        styled = m.map(lambda v: "" if pd.isna(v) else (f"{v:.3g} *" if v < alpha else f"{v:.3g}"))
        out += [f"<h4>Significance: {_esc(sig.get('test', 'pairwise test'))} (* p &lt; {alpha})</h4>",
                table_html(styled)]
    else:
        out.append(note("no significance matrix (fewer than two models compared)"))
    per_class = comp.get("per_class") or {}
    if per_class.get("f1"):
        f1 = pd.DataFrame(per_class["f1"]).T
        out += ["<h4>Per-emotion F1 and winner</h4>", table_html(f1)]
    sw = comp.get("strengths_weaknesses") or {}
    if sw:
        items = "".join(
            f"<li><b>{_esc(n)}</b>: strengths: {_esc('; '.join(v.get('strengths', [])) or '-')}; "
            f"weaknesses: {_esc('; '.join(v.get('weaknesses', [])) or '-')}</li>" for n, v in sw.items())
        out.append(f"<h4>Strengths and weaknesses</h4><ul>{items}</ul>")
    for n in comp.get("notes") or []:
        out.append(note(n))
    out.append(figures_html(ctx, "comparison", width=620))
    return _display("".join(out))


def calibration(ctx: dict):
    """Calibration per model (metrics.json) and the reliability figures."""
    rows = []
    for name, m in ctx["models"].items():
        cal = (m["metrics"] or {}).get("calibration") or {}
        if cal:
            rows.append({"model": name, **{k: cal.get(k) for k in
                                           ("temperature", "ece_before", "ece_after", "nll_before", "nll_after")}})
    out = []
    if rows:
        out += ["<p>Temperature fitted on the validation split; ECE and NLL on test.</p>",
                table_html(pd.DataFrame(rows).set_index("model"))]
    else:
        out.append(note("no calibration results yet (metrics.json from `make evaluate`)"))
    out.append(figures_html(ctx, "calibration", width=460))
    return _display("".join(out))


def error_patterns(ctx: dict):
    """Most frequent confusions and errors by confidence band per model, then the error figures."""
    out = []
    for name, m in ctx["models"].items():
        err = (m["metrics"] or {}).get("errors") or {}
        if not err:
            continue
        out.append(f"<h4>{_esc(name)}: {_esc(err.get('n_errors', '?'))} test errors</h4>")
        if err.get("confusion_patterns"):
            out.append(table_html(pd.DataFrame(err["confusion_patterns"]).head(8), index=False))
        if err.get("by_band"):
            out.append(table_html(pd.DataFrame(err["by_band"]), index=False))
    if not out:
        out.append(note("no error analysis yet (metrics.json from `make evaluate`)"))
    out.append(figures_html(ctx, "errors", width=560))
    return _display("".join(out))


def gradcam_gallery(ctx: dict):
    return _display(figures_html(ctx, "gradcam", width=760, empty="no Grad-CAM figures yet (make evaluate)"))


def latency(ctx: dict):
    """The latency table of `make bench` (reports/bench/latency.json), whatever its exact shape."""
    lat = ctx["latency"]
    if not lat:
        return _display(note("reports/bench/latency.json not found: run `make bench`."))
    models = lat.get("models") if isinstance(lat, dict) else None
    if isinstance(models, dict) and models and all("single_image" in m for m in models.values()):
        from .bench import export_table, latency_table  # the schema `make bench` writes

        targets = lat.get("targets", {})
        rows = "".join(f"<li>{'PASS' if t.get('pass') else ('n/a' if t.get('pass') is None else 'FAIL')}: "
                       f"{_esc(t.get('what', k))} (measured {_esc(t.get('value'))})</li>" for k, t in targets.items())
        head = (f"<p style='font-size:12px'>{_esc(lat.get('note', ''))} Machine: "
                f"{_esc((lat.get('machine') or {}).get('platform', ''))}, {_esc(lat.get('timestamp', ''))}.</p>")
        return _display(table_html(latency_table(lat), index=False, float_digits=2) + "<h4>Exported models</h4>"
                        + table_html(export_table(lat), index=False, float_digits=4) + "<h4>Targets</h4><ul>"
                        + rows + "</ul>" + head)
    df = latency_frame(lat)
    extra = ""
    if isinstance(lat, dict):
        meta = {k: v for k, v in lat.items() if not isinstance(v, (list, dict))}
        if meta:
            extra = "<p style='font-size:12px'>" + _esc(", ".join(f"{k}: {v}" for k, v in meta.items())) + "</p>"
    return _display(table_html(df, index=False) + extra)


def latency_frame(lat: Any) -> pd.DataFrame:
    if isinstance(lat, list):
        return pd.json_normalize(lat)
    if isinstance(lat, dict):
        for key in ("rows", "results", "models", "latency", "records"):
            v = lat.get(key)
            if isinstance(v, list):
                return pd.json_normalize(v)
            if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
                return pd.json_normalize([{"model": k, **x} for k, x in v.items()])
        if lat and all(isinstance(x, dict) for x in lat.values()):
            return pd.json_normalize([{"name": k, **x} for k, x in lat.items()])
        return pd.DataFrame([{"key": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else v}
                             for k, v in lat.items()])
    return pd.DataFrame({"value": [lat]})


def figure_group(name: str) -> str:
    stem = name.lower()
    for group, prefixes in FIGURE_GROUPS.items():
        if any(stem.startswith(p) or f"_{p}" in stem for p in prefixes):
            return group
    return "other"


def figures_html(ctx: dict, group: str, width: int = 600, empty: str | None = None) -> str:
    """The PNGs of reports/figures in one group, embedded as base64 <img>."""
    figs = [p for p in ctx["figures"] if figure_group(p.stem) == group]
    if not figs:
        return note(empty) if empty else ""
    parts = []
    for p in figs:
        parts.append(f'<figure style="display:inline-block;margin:6px;vertical-align:top">{img_tag(p, width=width, alt=p.stem)}'
                     f'<figcaption style="font-size:11px;color:#555">{_esc(p.name)}</figcaption></figure>')
    return "<div>" + "".join(parts) + "</div>"


def other_figures(ctx: dict):
    return _display(figures_html(ctx, "other", width=520))


# --------------------------------------------------------------------------------------
# the offline prediction playground
# --------------------------------------------------------------------------------------


def _resolve_image_path(path: str, reports_dir: Path) -> Path | None:
    p = Path(path)
    candidates = [p] if p.is_absolute() else [p, reports_dir.parent / p, Path(__file__).resolve().parents[1] / p]
    for c in candidates:
        if c.is_file():
            return c
    return None


def pick_playground_images(preds: dict[str, pd.DataFrame], classes: Sequence[str], n: int = 12, seed: int = 0,
                           error_share: float = 0.5) -> list[str]:
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


def playground_data(reports_dir="reports", n_images: int = 12, seed: int = 0, gradcam: bool = True,
                    models: Iterable[str] | None = None) -> dict:
    """Precompute everything the static playground shows.

    Returns {"models": [...], "classes": [...], "items": [{"path", "name", "true", "image_png",
    "per_model": {model: {"probs", "predicted", "confidence", "cam_png" | None}}}], "notes": [...]}.
    Probabilities come from each model's test_predictions.csv (the numbers the report's
    tables are computed from); Grad-CAM is computed here when model.keras loads.
    """
    from .images import read_image

    reports_dir = Path(reports_dir)
    notes: list[str] = []
    dirs = model_dirs(reports_dir)
    if models is not None:
        dirs = {k: v for k, v in dirs.items() if k in set(models)}
    preds: dict[str, pd.DataFrame] = {}
    classes: list[str] | None = None
    for name, d in dirs.items():
        f = d / "test_predictions.csv"
        card = load_json(d / "model.json") or {}
        if not f.is_file():
            notes.append(f"{name}: no test_predictions.csv (make evaluate), not in the playground")
            continue
        df = _read_csv(f)
        cls = list(card.get("classes") or [c[2:] for c in df.columns if c.startswith("p_")])
        if classes is None:
            classes = cls
        elif cls != classes:
            notes.append(f"{name}: classes {cls} differ from {classes}, left out")
            continue
        if df is None or not {"path", "true", "predicted"} <= set(df.columns):
            notes.append(f"{name}: test_predictions.csv lacks path/true/predicted columns, left out")
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
        real = _resolve_image_path(p, reports_dir)
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
            per_model[name] = {"probs": probs, "predicted": str(row["predicted"]),
                               "confidence": float(row.get("confidence", max(probs.values()))), "cam_png": None}
        items.append({"path": p, "name": Path(p).name, "true": true, "gray": gray,
                      "image_png": array_png(_to_display(gray), scale=1), "per_model": per_model})
    if len(items) < len(paths) and not items:
        notes.append("the test images listed in test_predictions.csv are not readable from here")
    if gradcam and items:
        _add_gradcams(items, {n: dirs[n] for n in preds}, classes, notes)
    for it in items:
        it.pop("gray", None)
    return {"models": list(preds), "classes": classes, "items": items, "notes": notes}


def _to_display(gray: np.ndarray, size: int = 144) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.asarray(gray, dtype=np.uint8))
    img = img.resize((size, size), Image.BICUBIC) if img.width != img.height or img.width < size else img
    return np.asarray(img)


def _add_gradcams(items: list[dict], dirs: dict[str, Path], classes: Sequence[str], notes: list[str]) -> None:
    from .explain import gradcam, overlay
    from .images import read_image
    from .predict import ModelDirError, load_predictor

    for name, d in dirs.items():
        if not (d / "model.keras").is_file():
            notes.append(f"{name}: no model.keras, no Grad-CAM")
            continue
        try:
            pred = load_predictor(d)
        except ModelDirError as e:
            notes.append(f"{name}: Grad-CAM skipped ({e})")
            continue
        try:
            x = np.stack([read_image(it["gray"], mode="L", size=pred.size) for it in items]).astype(np.float32)
            idx = [classes.index(it["per_model"][name]["predicted"]) if it["per_model"][name]["predicted"] in classes
                   else 0 for it in items]
            maps = gradcam(pred.model, x[..., None], class_index=idx)
        except Exception as e:  # noqa: BLE001 - Grad-CAM is an extra; the panel still shows probabilities
            notes.append(f"{name}: Grad-CAM failed ({type(e).__name__}: {e})")
            continue
        for it, xi, hm in zip(items, x, maps):
            disp = _to_display(xi.astype(np.uint8))
            it["per_model"][name]["cam_png"] = array_png(overlay(disp, hm), scale=1)


def _item_label(i: int, it: dict) -> str:
    wrong = [m for m, r in it["per_model"].items() if r["predicted"] != it["true"]]
    tag = ("errors: " + ", ".join(wrong)) if wrong else "all correct"
    return f"{i + 1:02d} · true {it['true']} · {tag}"


def _model_panel_html(it: dict, model: str) -> str:
    r = it["per_model"][model]
    ok = r["predicted"] == it["true"]
    verdict = (f'<span style="color:{"#2e7d32" if ok else "#c62828"};font-weight:bold">'
               f'{_esc(model)} predicts {_esc(r["predicted"])} ({100 * r["confidence"]:.1f}%) '
               f'{"&#10003; correct" if ok else "&#10007; wrong"}</span>')
    cam = (f'<figure style="margin:0 0 0 14px">{img_tag(r["cam_png"], width=144, alt="Grad-CAM")}'
           f'<figcaption style="font-size:11px">Grad-CAM ({_esc(model)}, predicted class)</figcaption></figure>'
           if r.get("cam_png") else '<div style="margin-left:14px;font-size:11px;color:#777">no Grad-CAM</div>')
    return (f'<div style="display:flex;align-items:flex-start">'
            f'<div>{verdict}{prob_bars_html(r["probs"], true=it["true"], title=f"{model}: class probabilities")}</div>'
            f'{cam}</div>')


def _summary_html(it: dict, models: Sequence[str]) -> str:
    rows = "".join(
        f'<tr><td>{_esc(m)}</td><td style="color:{"#2e7d32" if r["predicted"] == it["true"] else "#c62828"}">'
        f'{_esc(r["predicted"])}</td><td>{100 * r["confidence"]:.1f}%</td></tr>'
        for m, r in ((m, it["per_model"][m]) for m in models))
    return (f'<div style="font-size:12px"><div style="font-weight:bold">all models</div>'
            f'<table class="emolib-table"><tr><th>model</th><th>predicted</th><th>conf.</th></tr>{rows}</table></div>')


def playground(reports_dir="reports", n_images: int = 12, seed: int = 0, gradcam: bool = True, data: dict | None = None):
    """The kernel-free prediction playground: an ipywidgets tree, or an HTML note when nothing is there.

    Dropdown (image) --jslink--> outer Stack (one panel per image);
    ToggleButtons (model) --jslink--> inner Stack of each panel (one per model).
    """
    import ipywidgets as w

    data = data if data is not None else playground_data(reports_dir, n_images=n_images, seed=seed, gradcam=gradcam)
    items, models = data["items"], data["models"]
    notes_html = "".join(note(n) for n in data["notes"])
    if not items:
        return _display(note("No playground: needs models with test_predictions.csv whose test images are "
                             "readable (make evaluate).") + notes_html)
    image_dd = w.Dropdown(options=[(_item_label(i, it), i) for i, it in enumerate(items)], index=0,
                          description="Test image", layout=w.Layout(width="520px"),
                          style={"description_width": "90px"})
    model_tb = w.ToggleButtons(options=list(models), index=0, description="Model",
                               style={"description_width": "90px", "button_width": "110px"})
    panels = []
    for it in items:
        left = w.HTML(f'<div style="margin-right:14px">{img_tag(it["image_png"], width=144, alt=it["name"])}'
                      f'<div style="font-size:13px"><b>true: {_esc(it["true"])}</b></div>'
                      f'<div style="font-size:10px;color:#777;max-width:150px;word-break:break-all">{_esc(it["name"])}</div>'
                      f'</div>')
        inner = w.Stack([w.HTML(_model_panel_html(it, m)) for m in models], selected_index=0)
        w.jslink((model_tb, "index"), (inner, "selected_index"))
        summary = w.HTML(f'<div style="margin-left:18px">{_summary_html(it, models)}</div>')
        panels.append(w.HBox([left, inner, summary], layout=w.Layout(align_items="flex-start", padding="6px")))
    outer = w.Stack(panels, selected_index=0)
    w.jslink((image_dd, "index"), (outer, "selected_index"))
    head = w.HTML('<div style="font-size:12px;color:#444">Precomputed on the test split (about half of the '
                  'images are errors of at least one model). Probabilities are the ones of each model\'s '
                  'test_predictions.csv; Grad-CAM for the predicted class. No kernel needed.</div>' + notes_html)
    box = w.VBox([head, image_dd, model_tb, outer], layout=w.Layout(border="1px solid #ccc", padding="8px"))
    box.add_class("emolib-playground")
    return box


# --------------------------------------------------------------------------------------
# rendering the executed notebook into one self-contained HTML file
# --------------------------------------------------------------------------------------


def widget_renderer_js() -> str:
    """The vendored html-manager embed bundle, checked, made safe to inline in a <script>."""
    if not WIDGET_JS.is_file():
        raise ReportError(f"{WIDGET_JS} is missing: the widget renderer ({WIDGET_JS_VERSION}) ships with emolib")
    data = WIDGET_JS.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WIDGET_JS_SHA256:
        raise ReportError(f"{WIDGET_JS}: sha256 {digest} is not the vendored {WIDGET_JS_VERSION} ({WIDGET_JS_SHA256})")
    js = data.decode("utf-8")
    if js.count(_PUBLIC_PATH_THROW) != 1:
        raise ReportError(f"{WIDGET_JS}: webpack public-path code not found; cannot inline it")
    js = js.replace(_PUBLIC_PATH_THROW, _PUBLIC_PATH_FIX)
    # keep the HTML parser from ending the <script> early
    return js.replace("</script", "<\\/script").replace("<!--", "<\\!--")


_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\ssrc\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)
_EXTERNAL_LINK = re.compile(r"<link[^>]*\shref\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)
_EXTERNAL_IMG = re.compile(r"<img[^>]*\ssrc\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)


def check_self_contained(html_text: str) -> list[str]:
    """Problems that would make the page need the network (empty list when none)."""
    problems = []
    for rx, what in ((_EXTERNAL_SCRIPT, "<script src> from the network"), (_EXTERNAL_LINK, "<link href> to the network"),
                     (_EXTERNAL_IMG, "<img src> from the network")):
        for m in rx.finditer(html_text):
            problems.append(f"{what}: {html_text[m.start():m.start() + 160]!r}")
    if "cdn.jsdelivr.net/npm/@jupyter-widgets" in html_text:
        problems.append("the CDN widget renderer is still referenced")
    return problems


def _has_widget_views(nb) -> bool:
    return any(WIDGET_VIEW_MIME in (o.get("data") or {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


def render_report(executed_ipynb, out_html, *, title: str | None = None) -> Path:
    """Convert an executed report notebook into one self-contained HTML file (no code cells).

    Raises ReportError when widgets were displayed but their state is not in the notebook
    metadata (they would render as empty placeholders), or when anything would still be
    fetched from the network.
    """
    import nbformat
    from nbconvert import HTMLExporter

    from .runinfo import atomic_write_text

    nb = nbformat.read(str(executed_ipynb), as_version=4)
    has_views = _has_widget_views(nb)
    state = (nb.metadata.get("widgets") or {}).get(WIDGET_STATE_MIME)
    if has_views and not state:
        raise ReportError(f"{executed_ipynb}: widgets were displayed but nb.metadata.widgets has no "
                          f"{WIDGET_STATE_MIME}: execute it with papermill/nbclient (store_widget_state)")
    if title:
        nb.metadata["title"] = title
    for cell in nb.cells:  # library log lines on stderr are not part of the report
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATES_DIR)],
                            template_file="emolib_report.html.j2", exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True)
    resources = {"emolib_widget_js": widget_renderer_js() if state else ""}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    problems = check_self_contained(body)
    if problems:
        raise ReportError("the report is not self-contained:\n  " + "\n  ".join(problems[:10]))
    out = Path(out_html)
    atomic_write_text(out, body)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m emolib.report render --notebook X.ipynb --out report.html`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m emolib.report")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="executed report notebook -> self-contained HTML")
    r.add_argument("--notebook", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--title", default="Facial emotion recognition: report")
    args = parser.parse_args(argv)
    try:
        out = render_report(args.notebook, args.out, title=args.title)
    except (ReportError, FileNotFoundError) as e:
        parser.exit(1, f"error: {e}\n")
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({size:.1f} MB, self-contained)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
