"""The report's sections (`reports/report.html`).

`notebooks/40_report.ipynb` is a thin wrapper around this module: each section function
reads what the pipeline left under `reports/` and returns an `IPython.display.HTML`
(a short note instead when its inputs do not exist yet, so the report renders from any
subset of the pipeline). The small HTML helpers (`note`, `table_html`, `img_tag`,
`array_png`, `prob_bars_html`, ...) are public: the offline playground uses them too.

Elsewhere: rendering the executed notebook into one self-contained HTML file is
`emolib.render` (`python -m emolib.render --notebook ... --out ...`); the kernel-free
prediction playground at the end of the report is `emolib.playground.offline_playground`.
Metric keys read here are the ones documented in `emolib.metrics`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .metrics import format_p_value
from .modelfolder import CARD_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, PREDICTIONS_FILE, find_model_dirs

# Figures of the pipeline, grouped for the report by the words of their file names (anything
# else under reports/figures lands in "Other figures"). The first group that matches wins, so
# the most specific come first: the error analysis writes error_<model>_gradcam_errors.png and
# error_<model>_reliability.png, which belong to the Grad-CAM and calibration sections, not
# to "errors" (the Grad-CAM gallery once said "no Grad-CAM figures yet" beside them).
FIGURE_GROUPS: dict[str, tuple[str, ...]] = {
    "gradcam": ("gradcam", "grad_cam", "cam_"),
    "calibration": ("reliability", "calibration", "confidence"),
    "data": ("eda_",),
    "learning": ("history", "learning", "train_"),
    "comparison": ("comparison", "compare", "accuracy_vs", "significance", "per_class", "per_emotion"),
    "errors": ("confusion", "error", "errors", "misclass", "most_confident"),
}
EXCLUDED_FIGURES = ("report_screenshot",)


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


def context(reports_dir="reports") -> dict:
    """Everything the report reads, loaded once (missing pieces are None / empty)."""
    reports_dir = Path(reports_dir)
    run = load_json(reports_dir / "run.json") or {}
    checks = load_json(reports_dir / "data_checks.json")
    comparison = load_json(reports_dir / "comparison.json")
    latency = load_json(reports_dir / "bench" / "latency.json")
    models = {}
    for name, d in find_model_dirs(reports_dir / "models").items():
        models[name] = {
            "dir": d,
            "card": load_json(d / CARD_FILE) or {},
            "metrics": load_json(d / METRICS_FILE),
            "history": _read_csv(d / HISTORY_FILE) if (d / HISTORY_FILE).is_file() else None,
            "has_model": (d / MODEL_FILE).is_file(),
            "test_predictions": d / PREDICTIONS_FILE if (d / PREDICTIONS_FILE).is_file() else None,
        }
    figures_dir = reports_dir / "figures"
    figures = (
        sorted(p for p in figures_dir.glob("*.png") if p.stem not in EXCLUDED_FIGURES) if figures_dir.is_dir() else []
    )
    synthetic = bool(
        (run.get("data") or {}).get("synthetic")
        or (checks or {}).get("synthetic")
        or (comparison or {}).get("synthetic")
        or any((m["card"] or {}).get("synthetic") for m in models.values())
    )
    return {
        "reports_dir": reports_dir,
        "run": run,
        "checks": checks,
        "comparison": comparison,
        "latency": latency,
        "models": models,
        "figures": figures,
        "synthetic": synthetic,
    }


# --------------------------------------------------------------------------------------
# small HTML helpers
# --------------------------------------------------------------------------------------


def _esc(x: Any) -> str:
    return html.escape(str(x))


def note(text: str) -> str:
    """A grey 'skipped' note (HTML)."""
    return f'<p style="color:#666;font-style:italic">&#8505; {_esc(text)}</p>'


def format_duration(seconds: float) -> str:
    """Seconds for a reader: '3.7 s', '45 s', '18 min 10 s', '1 h 02 min'."""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    total = round(seconds)
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def _is_duration(column: str) -> bool:
    c = str(column).lower()
    if "per_s" in c or "/s" in c:  # a rate (images per second), not a duration
        return False
    return c.endswith(("_s", "(s)")) or "wall" in c or c in ("time", "seconds")


# The words of a column name (split on anything but letters and digits) that make a whole float a
# count, and those that make it a fraction whatever else the name says: 'share_of_class_errors'
# and 'mean_confidence' once printed 1.0 as '1' because 'errors' and 'n_' matched inside them.
_COUNT_WORDS = frozenset(
    {"n", "count", "epoch", "epochs", "param", "params", "parameters", "support", "images", "errors", "size"}
)
_FRACTION_WORDS = frozenset({"share", "rate", "per", "mean", "fraction", "ratio", "confidence", "accuracy", "f1"})


def _words(column: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", str(column).lower()) if w]


def _is_count(column: str) -> bool:
    words = set(_words(column))
    return bool(words & _COUNT_WORDS) and not words & _FRACTION_WORDS


# Abbreviations a header spells in capitals; 'macro f1' reads 'macro-F1' as everywhere in the README.
_HEADER_WORDS = {"ece": "ECE", "nll": "NLL", "f1": "F1", "ci": "CI", "tta": "TTA"}
_HEADER_NAMES = {"inference_ms_per_image": "inference (ms/image)", "images_per_s": "images/s"}


def header_label(column: Any) -> Any:
    """A column name as a paper's table heads it: 'share_of_class_errors' -> 'share of class errors',
    'ece_before' -> 'ECE before', 'training_time_s' -> 'training time' (its cells carry the unit),
    'macro_f1' -> 'macro-F1'. Anything that is not a snake_case name is left as it is."""
    if not isinstance(column, str) or " " in column or ("_" not in column and column not in _HEADER_WORDS):
        return column
    if column in _HEADER_NAMES:
        return _HEADER_NAMES[column]
    words = column.split("_")
    if words[0] == "n" and len(words) > 1:  # 'n_errors': the cells are counts of errors
        words = words[1:]
    if _is_duration(column) and words[-1] == "s":
        words = words[:-1]
    text = " ".join(_HEADER_WORDS.get(w, w) for w in words if w)
    return text.replace("macro F1", "macro-F1")


def format_value(v: Any, column: str = "", digits: int = 3) -> str:
    """One number (or anything) as a table shows it; the one formatting rule of every report table.

    Durations (a column named '..._s', '... (s)', 'wall...'): '18 min 10 s'. Whole numbers (and
    whole floats in count columns: epochs, parameters, ...): thousands separators ('15,147,075').
    Other floats: `digits` decimals below 100, one decimal
    from 100, none with separators from 1,000 ('1,090'). Missing values: ''. Text: as it is.
    """
    if v is None or isinstance(v, (bool, str)):
        return "" if v is None else str(v)
    if isinstance(v, (np.integer, np.floating)):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return "" if math.isnan(v) else str(v)
    if not isinstance(v, (int, float)):
        return str(v)
    if _is_duration(column):
        return format_duration(v)
    if isinstance(v, int) or (float(v).is_integer() and (abs(v) >= 1000 or _is_count(column))):
        return f"{int(v):,}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def _fmt(v: Any, digits: int = 3) -> str:
    return format_value(v, digits=digits)


def readable(df: pd.DataFrame, float_digits: int = 3) -> pd.DataFrame:
    """`df` with every number turned into text by `format_value` (column-aware)."""
    out = df.copy()
    for col in out.columns:
        out[col] = [format_value(v, str(col), float_digits) for v in df[col]]
    return out


def table_html(df: pd.DataFrame, *, index: bool = True, float_digits: int = 3) -> str:
    """A table for the report, numbers formatted for a reader (`format_value`)."""
    if df is None or not len(df):
        return note("(empty table)")
    shown = readable(df, float_digits)  # formatted by the raw names, which say what a column holds
    shown.columns = [header_label(c) for c in shown.columns]
    shown.index.name = header_label(shown.index.name)
    return shown.to_html(index=index, escape=True, border=0, classes="emolib-table dataframe", na_rep="")


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img_tag(path_or_bytes, *, width: int | None = None, alt: str = "", title: str = "") -> str:
    """An <img> with the PNG embedded as base64 (no file reference survives)."""
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes).read_bytes()
    w = f' width="{int(width)}"' if width else ""
    return (
        f'<img src="{png_data_uri(bytes(data))}"{w} alt="{_esc(alt)}" title="{_esc(title)}" '
        'style="max-width:100%;image-rendering:auto"/>'
    )


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
            f'<span style="font-family:monospace">{100 * p:5.1f}%</span></div>'
        )
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
    rows.append(("last update (UTC)", utc_minute(run.get("updated"))))
    out = [table_html(pd.DataFrame(rows, columns=["parameter", "value"]).set_index("parameter"))]
    counts = data.get("counts")
    if isinstance(counts, dict) and counts:
        out += ["<h4>Images per split and class</h4>", table_html(pd.DataFrame(counts).fillna(0).astype(int))]
    stages = run.get("stages") or {}
    if stages:
        out += ["<h4>Pipeline stages</h4>", table_html(stages_frame(stages))]
    versions = run.get("versions") or {}
    machine = run.get("machine") or {}
    if versions:
        v = ", ".join(f"{k} {val}" for k, val in versions.items())
        m = ", ".join(f"{k}: {val}" for k, val in machine.items())
        out.append(f'<p style="font-size:12px;color:#444"><b>Versions:</b> {_esc(v)}<br/><b>Machine:</b> {_esc(m)}</p>')
    return _display("".join(out))


# run.json's stage records hold file paths too ('metrics', 'comparison'); the table leaves them out
# (they pushed it past the page's width) and shows the rest in this order.
STAGE_COLUMNS = (
    "finished",
    "wall_time_s",
    "device",
    "weights_used",
    "val_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "best_subset",
)


def utc_minute(timestamp: Any) -> str:
    """An ISO time stamp ('2026-12-01T02:48:06+00:00') as 'YYYY-MM-DD HH:MM' in UTC; '' if unreadable."""
    when = pd.to_datetime(timestamp, errors="coerce", utc=True) if timestamp else pd.NaT
    return "" if pd.isna(when) else when.strftime("%Y-%m-%d %H:%M")


def stages_frame(stages: dict) -> pd.DataFrame:
    """The pipeline stages of run.json as a table: one row per stage, finished as 'YYYY-MM-DD HH:MM'
    (UTC), lists joined, file paths left out."""
    st = pd.DataFrame(stages).T
    st = st[[c for c in STAGE_COLUMNS if c in st.columns]].copy()
    st.index.name = "stage"
    if "finished" in st:
        st["finished"] = [utc_minute(t) for t in st["finished"]]
        st = st.rename(columns={"finished": "finished (UTC)"})
    for col in st.columns:
        st[col] = [", ".join(map(str, v)) if isinstance(v, list) else v for v in st[col]]
    return st


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
            out.append(
                f"<p>{_esc(n)} images checked in {_esc(checks.get('data_dir', '?'))} "
                f"(classes checked: {_esc(', '.join(checks.get('classes_checked', []) or []))}).</p>"
            )
    out.append(figures_html(ctx, "data", width=520))
    return _display("".join(out))


def _history_figure(name: str, hist: pd.DataFrame, synthetic: bool = False):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    x = hist["epoch_global"] if "epoch_global" in hist else np.arange(1, len(hist) + 1)
    # a line through one or a few epochs draws nothing a reader can see: mark the points
    marker = "o" if len(hist) <= 15 else None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for col, style in ((key, "-"), (f"val_{key}", "--")):
            if col in hist:
                ax.plot(x, hist[col], style, marker=marker, ms=4, label=col)
        if key == "accuracy" and "val_macro_f1" in hist:
            ax.plot(x, hist["val_macro_f1"], ":", marker=marker, ms=4, label="val_macro_f1")
        ax.set(title=f"{name}: {key}", xlabel="epoch")
        epochs = sorted(set(np.asarray(x).tolist()))
        if len(epochs) <= 10:  # ticks at the epochs themselves (a locator puts 0.95, 0.975, ... around one)
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    if "stage_index" in hist and hist["stage_index"].nunique() > 1:
        for b in x[hist["stage_index"].diff().fillna(0) != 0]:
            for ax in axes:
                ax.axvline(b - 0.5, color="grey", lw=0.8)
    if synthetic:
        from .plots import stamp_synthetic

        stamp_synthetic(fig)
    fig.tight_layout()
    return fig


def batchnorm_frame(models: dict) -> pd.DataFrame | None:
    """Per model whose card has a `batchnorm_statistics` record (emolib.bnstats): whether the BatchNorm
    statistics were recomputed after training, and validation macro-F1 before and after. None when no
    card has one (models trained before the step existed)."""
    rows = {}
    for name, m in models.items():
        rec = (m.get("card") or {}).get("batchnorm_statistics")
        if not rec:
            continue
        done = bool(rec.get("recomputed"))
        statistics = "recomputed on the training faces" if done else f"moving averages ({rec.get('why', '')})"
        if done and rec.get("kept"):  # a backbone model: its head recomputed, the backbone's as trained
            statistics = "head's recomputed on the training faces; backbone's as trained"
        rows[name] = {
            "statistics": statistics,
            "val macro-F1, moving": rec.get("val_macro_f1_moving"),
            "val macro-F1, recomputed": rec.get("val_macro_f1_recomputed"),
            "faces": rec.get("faces"),
        }
    if not rows:
        return None
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame


def model_results(ctx: dict):
    """Per model: the model card, headline test metrics and learning curves."""
    models = ctx["models"]
    if not models:
        return _display(note(f"No trained model yet (reports/models/<model>/{CARD_FILE}): run `make train`."))
    rows = []
    for name, m in models.items():
        card, met = m["card"], m["metrics"] or {}
        test = met.get("test") or {}
        ci = met.get("test_ci") or {}
        acc_ci = ci.get("accuracy") or {}
        f1_ci = ci.get("macro_f1") or {}
        rows.append(
            {
                "model": name,
                "weights": card.get("weights_used", met.get("weights_used", "")),
                "input": "x".join(map(str, (card.get("input_shape") or [])[:2])),
                "epochs": _first(card.get("epochs"), card.get("epochs_total"), met.get("epochs")),
                "training_time_s": _first(
                    card.get("training_time_s"), card.get("wall_time_s"), met.get("training_time_s")
                ),
                "test accuracy": _with_ci(test.get("accuracy"), acc_ci),
                "test macro-F1": _with_ci(test.get("macro_f1"), f1_ci),
                "ECE": _fmt((met.get("calibration") or {}).get("ece_before", test.get("ece"))),
                METRICS_FILE: "yes" if m["metrics"] else "not yet (make evaluate)",
            }
        )
    out = ["<h3>Models</h3>", table_html(pd.DataFrame(rows).set_index("model"))]
    bn = batchnorm_frame(models)
    if bn is not None:
        out += [
            "<h4>BatchNorm statistics</h4>",
            "<p>After training, the training notebook recomputes the top-level BatchNorm statistics (the "
            "CNNs', and the head's of a backbone model) exactly on the run's training faces, with the network in "
            "inference mode; a pretrained backbone's own BatchNorm layers ran in inference mode while it "
            "fine-tuned and keep their statistics (<code>emolib.bnstats</code>; "
            "<code>+rawbn</code> keeps the moving averages). The learning curves below show the moving "
            "averages training kept. Validation macro-F1 with each:</p>",
            table_html(bn),
        ]
    for name, m in models.items():
        out.append(f"<h4>{_esc(name)}: learning curves</h4>")
        hist = m["history"]
        if hist is None or not len(hist):
            out.append(note(f"no {HISTORY_FILE} for {name}"))
            continue
        out.append(
            img_tag(figure_png(_history_figure(name, hist, ctx["synthetic"])), width=760, alt=f"{name} learning curves")
        )
    drawn = {f"train_{name}_curves" for name, m in models.items() if m["history"] is not None and len(m["history"])}
    out.append(figures_html(ctx, "learning", width=760, skip=drawn))  # no second copy of the same curves
    notes = [(name, m["card"].get("weights_notes")) for name, m in models.items() if m["card"].get("weights_notes")]
    if notes:
        out.append(
            "<h4>Weights: fallbacks</h4><ul>"
            + "".join(f"<li><b>{_esc(n)}</b>: {_esc(' '.join(t))}</li>" for n, t in notes)
            + "</ul>"
        )
    return _display("".join(out))


def _first(*values):
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)


def _point_with_interval(point, low, high) -> str:
    """'0.803 [0.785, 0.822]' with no-break spaces, so a narrow column never splits it over three lines."""
    s = _fmt(point)
    if low is not None and high is not None and not pd.isna(low) and not pd.isna(high):
        s += f"\u00a0[{_fmt(low)},\u00a0{_fmt(high)}]"
    return s


def _with_ci(point, ci: dict) -> str:
    if point is None and not ci:
        return ""
    return _point_with_interval(ci.get("point", point), ci.get("low"), ci.get("high"))


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
        for metric in ("accuracy", "macro_f1"):
            if metric in rows:
                lo, hi = rows.get(f"{metric}_ci_low"), rows.get(f"{metric}_ci_high")
                t[f"{header_label(metric)} [95% CI]"] = [
                    _point_with_interval(p, a, b)
                    for p, a, b in zip(
                        rows[metric],
                        lo if lo is not None else [None] * len(rows),
                        hi if hi is not None else [None] * len(rows),
                    )
                ]
        for c in ("balanced_accuracy", "ece", "nll", "parameters", "inference_ms_per_image", "training_time_s"):
            if c in rows:
                t[c] = rows[c]
        out += ["<h3>Comparison on the test split</h3>", table_html(t.set_index("model"))]
        if "note" in rows:
            notes = "".join(f"<li><b>{_esc(m)}</b>: {_esc(n)}</li>" for m, n in zip(rows["model"], rows["note"]) if n)
            out.append(
                f'<details><summary>How each row was made</summary><ul style="font-size:12px">{notes}</ul></details>'
            )
    sig = comp.get("significance") or {}
    matrix = sig.get("matrix_p_holm") or {}
    if matrix:
        m = pd.DataFrame(matrix).T
        m = m.reindex(columns=m.index).astype(float)
        alpha = sig.get("alpha", 0.05)
        styled = m.map(lambda v: "" if pd.isna(v) else format_p_value(v) + (" *" if v < alpha else ""))
        out += [
            f"<h4>Significance: {_esc(sig.get('test', 'pairwise test'))} (* p &lt; {alpha})</h4>",
            table_html(styled),
        ]
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
            f"weaknesses: {_esc('; '.join(v.get('weaknesses', [])) or '-')}</li>"
            for n, v in sw.items()
        )
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
            rows.append(
                {
                    "model": name,
                    **{k: cal.get(k) for k in ("temperature", "ece_before", "ece_after", "nll_before", "nll_after")},
                }
            )
    out = []
    if rows:
        out += [
            "<p>Temperature fitted on the validation split; ECE and NLL on test.</p>",
            table_html(pd.DataFrame(rows).set_index("model")),
        ]
    else:
        out.append(note(f"no calibration results yet ({METRICS_FILE} from `make evaluate`)"))
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
        out.append(note(f"no error analysis yet ({METRICS_FILE} from `make evaluate`)"))
    out.append(figures_html(ctx, "errors", width=560))
    return _display("".join(out))


def gradcam_gallery(ctx: dict):
    return _display(figures_html(ctx, "gradcam", width=760, empty="no Grad-CAM figures yet (make evaluate)"))


def latency(ctx: dict):
    """The latency table of `make bench` (reports/bench/latency.json), whatever its exact shape."""
    lat = ctx["latency"]
    if not lat:
        measured = compare_latency_frame(ctx)
        bench_note = note(
            "Single-image latency, exported models and their targets come from `make bench` (not part of "
            "`make all`): run it, then `make report`, and its numbers appear here."
        )
        if measured is None:
            return _display(bench_note)
        return _display(
            "<p>The batch inference time that <code>make evaluate</code> measured for each model on the test images "
            "(network only, inputs already resized; the best of 3 timed passes on this machine's CPU or GPU).</p>"
            + table_html(measured, index=False)
            + bench_note
        )
    models = lat.get("models") if isinstance(lat, dict) else None
    if isinstance(models, dict) and models and all("single_image" in m for m in models.values()):
        from .bench import export_table, latency_table  # the schema `make bench` writes

        targets = lat.get("targets", {})
        rows = "".join(
            f"<li>{'PASS' if t.get('pass') else ('n/a' if t.get('pass') is None else 'FAIL')}: "
            f"{_esc(t.get('what', k))} (measured {_esc(t.get('value'))})</li>"
            for k, t in targets.items()
        )
        head = (
            f"<p style='font-size:12px'>{_esc(lat.get('note', ''))} Machine: "
            f"{_esc((lat.get('machine') or {}).get('platform', ''))}, {_esc(lat.get('timestamp', ''))}.</p>"
        )
        return _display(
            table_html(latency_table(lat), index=False, float_digits=2)
            + "<h4>Exported models</h4>"
            + table_html(export_table(lat), index=False, float_digits=4)
            + "<h4>Targets</h4><ul>"
            + rows
            + "</ul>"
            + head
        )
    df = latency_frame(lat)
    extra = ""
    if isinstance(lat, dict):
        meta = {k: v for k, v in lat.items() if not isinstance(v, (list, dict))}
        if meta:
            extra = "<p style='font-size:12px'>" + _esc(", ".join(f"{k}: {v}" for k, v in meta.items())) + "</p>"
    return _display(table_html(df, index=False) + extra)


def compare_latency_frame(ctx: dict) -> pd.DataFrame | None:
    """Each trained model's batch inference time per test image from its metrics.json (`make evaluate`),
    fastest first, with images per second and parameters; None when no model has one."""
    rows = []
    for name, m in (ctx.get("models") or {}).items():
        met = m["metrics"] or {}
        ms = met.get("inference_ms_per_image")
        if ms is None or pd.isna(ms) or ms <= 0:
            continue
        params = m["card"].get("params")
        rows.append(
            {
                "model": name,
                "batch": met.get("inference_batch_size"),
                "inference_ms_per_image": float(ms),
                "images_per_s": 1000.0 / float(ms),
                "parameters": params.get("total") if isinstance(params, dict) else None,
            }
        )
    if not rows:
        return None
    return pd.DataFrame(rows).sort_values("inference_ms_per_image").reset_index(drop=True)


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
        return pd.DataFrame(
            [{"key": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else v} for k, v in lat.items()]
        )
    return pd.DataFrame({"value": [lat]})


def figure_group(name: str) -> str:
    stem = name.lower()
    for group, prefixes in FIGURE_GROUPS.items():
        if any(stem.startswith(p) or f"_{p}" in stem for p in prefixes):
            return group
    return "other"


def figures_html(ctx: dict, group: str, width: int = 600, empty: str | None = None, skip=()) -> str:
    """The PNGs of reports/figures in one group (but those named in `skip`), embedded as base64 <img>."""
    figs = [p for p in ctx["figures"] if figure_group(p.stem) == group and p.stem not in set(skip)]
    if not figs:
        return note(empty) if empty else ""
    parts = []
    for p in figs:
        parts.append(
            f'<figure style="display:inline-block;margin:6px;vertical-align:top">{img_tag(p, width=width, alt=p.stem)}'
            f'<figcaption style="font-size:11px;color:#555">{_esc(p.name)}</figcaption></figure>'
        )
    return "<div>" + "".join(parts) + "</div>"


def other_figures(ctx: dict):
    """Figures no section claimed, under their own heading; nothing at all (not even the heading)
    when there are none, so the report never shows an empty section."""
    body = figures_html(ctx, "other", width=520)
    return _display(f"<h2>Other figures</h2>{body}" if body else "")
