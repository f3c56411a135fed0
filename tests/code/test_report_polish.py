"""The report as a reader sees it: Grad-CAM figures found, no empty headings, numbers formatted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from emolib import report

ROOT = Path(__file__).resolve().parents[2]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
# what the error analysis and the other notebooks write under reports/figures/ (tests/model/test_study_notebooks.py)
PIPELINE_FIGURES = [
    "eda_samples",
    "train_cnn_curves",
    "error_cnn_confusion",
    "error_cnn_confidence",
    "error_cnn_confident_mistakes",
    "error_cnn_reliability",
    "error_cnn_gradcam_errors",
    "error_cnn_gradcam_correct",
    "comparison_significance",
    "comparison_per_class_f1",
]


def _reports(tmp_path, figures=PIPELINE_FIGURES, card=None) -> Path:
    reports = tmp_path / "reports"
    (reports / "figures").mkdir(parents=True)
    for name in figures:
        (reports / "figures" / f"{name}.png").write_bytes(PNG)
    model = reports / "models" / "cnn"
    model.mkdir(parents=True)
    (model / "model.keras").write_bytes(b"stand-in")
    (model / "model.json").write_text(
        json.dumps(
            card
            or {
                "classes": ["angry", "sad", "surprise"],
                "input_shape": [48, 48, 1],
                "weights_used": "none",
                "epochs_total": 40,
                "wall_time_s": 1090.1,
                "params": {"total": 15147075},
            }
        )
    )
    return reports


def _all_sections(ctx) -> str:
    """The report's sections in the notebook's order, each under its notebook heading (as rendered)."""
    nb = json.loads((ROOT / "notebooks" / "40_report.ipynb").read_text())
    html = []
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            html += [
                f"<h{len(m.group(1))}>{m.group(2)}</h{len(m.group(1))}>"
                if (m := re.match(r"(#+) (.*)", line))
                else f"<p>{line}</p>"
                for line in src.splitlines()
                if line.strip()
            ]
        elif m := re.match(r"report\.(\w+)\(ctx\)", src):
            html.append(getattr(report, m.group(1))(ctx).data)
    return "\n".join(html)


def empty_headings(html: str) -> list[str]:
    """Headings followed by nothing (or only by a heading of the same or a higher level) before the next one."""
    found = []
    parts = re.split(r"(<h([1-6])[^>]*>.*?</h\2>)", html, flags=re.DOTALL)
    # parts: [before, heading, level, after, heading, level, after, ...]
    items = [(parts[i], int(parts[i + 1]), parts[i + 2]) for i in range(1, len(parts) - 2, 3)]
    for k, (heading, level, after) in enumerate(items):
        text = re.sub(r"<[^>]+>", "", after).strip()
        has_content = bool(text) or "<img" in after or "<table" in after
        next_level = items[k + 1][1] if k + 1 < len(items) else 0
        if not has_content and (k + 1 == len(items) or next_level <= level):
            found.append(re.sub(r"<[^>]+>", "", heading))
    return found


def test_gradcam_gallery_shows_the_error_analysis_figures(tmp_path):
    ctx = report.context(_reports(tmp_path))
    html = report.gradcam_gallery(ctx).data
    assert "no Grad-CAM figures yet" not in html
    assert "error_cnn_gradcam_errors.png" in html and "error_cnn_gradcam_correct.png" in html
    assert html.count("<img") == 2
    assert report.figure_group("error_cnn_reliability") == "calibration"
    assert report.figure_group("error_cnn_confusion") == "errors"
    assert "gradcam" not in report.error_patterns(ctx).data  # not shown twice


def test_gradcam_gallery_says_so_without_figures(tmp_path):
    ctx = report.context(_reports(tmp_path, figures=["error_cnn_confusion"]))
    assert "no Grad-CAM figures yet" in report.gradcam_gallery(ctx).data


def test_no_empty_headings(tmp_path):
    ctx = report.context(_reports(tmp_path))
    html = _all_sections(ctx)
    assert "Other figures" not in html  # every pipeline figure has a section
    assert empty_headings(html) == []
    ctx = report.context(_reports(tmp_path / "more", figures=PIPELINE_FIGURES + ["something_else"]))
    html = _all_sections(ctx)
    assert "<h2>Other figures</h2>" in html and "something_else.png" in html and empty_headings(html) == []
    assert empty_headings("<h2>A</h2><h2>B</h2><p>x</p>") == ["A"]  # the checker itself can fail


def test_significance_matrix_never_prints_an_underflowed_p_value_as_zero(tmp_path):
    reports = _reports(tmp_path)
    matrix = {
        "cnn": {"cnn": None, "vgg16": 0.0, "deepcnn": 0.3},
        "vgg16": {"cnn": 0.0, "vgg16": None, "deepcnn": 4.45e-12},
    }
    matrix["deepcnn"] = {"cnn": 0.3, "vgg16": 4.45e-12, "deepcnn": None}
    sig = {"matrix_p_holm": matrix, "alpha": 0.05, "test": "exact McNemar"}
    (reports / "comparison.json").write_text(json.dumps({"significance": sig}))
    html = report.comparison(report.context(reports)).data
    assert "&lt; 2.2e-308 *" in html and "4.45e-12 *" in html and ">0.3<" in html
    assert ">0 *<" not in html and ">0<" not in html


def test_empty_reports_folder_still_has_no_empty_heading(tmp_path):
    (tmp_path / "reports").mkdir()
    html = _all_sections(report.context(tmp_path / "reports"))
    assert empty_headings(html) == []
    assert "make bench" in html  # the latency section says how to get the numbers


@pytest.mark.parametrize(
    "value, column, text",
    [
        (1090.1, "training_time_s", "18 min 10 s"),
        (1090.1, "training time (s)", "18 min 10 s"),
        (45.25, "wall_time_s", "45 s"),
        (3.7, "wall_time_s", "3.7 s"),
        (7260, "wall_time_s", "2 h 01 min"),
        (15147075, "parameters", "15,147,075"),
        (15147075.0, "parameters", "15,147,075"),
        (40.0, "epochs", "40"),
        (0.75214, "macro_f1", "0.752"),
        (2688.4, "batch img/s", "2,688"),
        (2688.4, "images_per_s", "2,688"),
        (387.0, "inference_ms_per_image", "387.0"),
        (None, "ece", ""),
        (float("nan"), "ece", ""),
        ("none", "weights", "none"),
        (True, "pass", "True"),
        (1535, "n_test", "1,535"),
    ],
)
def test_format_value(value, column, text):
    assert report.format_value(value, column) == text


def test_tables_print_numbers_for_a_reader(tmp_path):
    df = pd.DataFrame(
        {"model": ["vgg16"], "parameters": [15147075], "training_time_s": [1090.1], "macro_f1": [0.75214]}
    ).set_index("model")
    html = report.table_html(df)
    assert "15,147,075" in html and "18 min 10 s" in html and "0.752" in html
    assert "1090.1" not in html and "15147075" not in html
    # the models table reads the card's epochs_total / wall_time_s (it used to leave both empty)
    html = report.model_results(report.context(_reports(tmp_path))).data
    assert "18 min 10 s" in html and ">40<" in html


def test_models_table_names_the_weights_source_and_fallbacks(tmp_path):
    label = "fer2013-disjoint:disgust,fear,happy,neutral (cache key vgg16-0123456789ab)"
    card = {
        "classes": ["angry", "sad", "surprise"],
        "weights_used": label,
        "epochs_total": 3,
        "wall_time_s": 5.0,
        "weights_notes": ["weights='auto': ImageNet weights unavailable (no network)"],
    }
    html = report.model_results(report.context(_reports(tmp_path, card=card))).data
    assert label in html and "ImageNet weights unavailable" in html
