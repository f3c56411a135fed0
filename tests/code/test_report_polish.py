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
        (40.0, "n_errors", "40"),
        # fractions stay fractions even when a count word is part of the name, or a letter pair looks like one
        (1.0, "share_of_class_errors", "1.000"),
        (0.0, "share_of_all_errors", "0.000"),
        (1.0, "mean_confidence", "1.000"),
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


def test_models_section_shows_the_batchnorm_recompute_and_its_effect(tmp_path):
    record = {
        "recomputed": True,
        "layers": 9,
        "faces": 10196,
        "val_macro_f1_moving": 0.80213,
        "val_macro_f1_recomputed": 0.81742,
    }
    card = {"classes": ["angry", "sad", "surprise"], "weights_used": "none", "batchnorm_statistics": record}
    html = report.model_results(report.context(_reports(tmp_path, card=card))).data
    assert "<h4>BatchNorm statistics</h4>" in html and "recomputed on the training faces" in html
    assert "0.802" in html and "0.817" in html and "10,196" in html
    off = {"recomputed": False, "why": "off in this profile (+rawbn)"}
    frame = report.batchnorm_frame({"cnn": {"card": {"batchnorm_statistics": off}}})
    assert frame.loc["cnn", "statistics"] == "moving averages (off in this profile (+rawbn))"
    head = {**record, "kept": "mobilenetv2's 52 BatchNorm layers (nested: as trained)"}
    frame = report.batchnorm_frame({"mobilenetv2": {"card": {"batchnorm_statistics": head}}})
    assert frame.loc["mobilenetv2", "statistics"] == "head's recomputed on the training faces; backbone's as trained"
    assert report.batchnorm_frame({"cnn": {"card": {"weights_used": "none"}}}) is None  # cards from before the step


@pytest.mark.parametrize(
    "column, label",
    [
        ("share_of_class_errors", "share of class errors"),
        ("ece_before", "ECE before"),
        ("ece", "ECE"),
        ("val_macro_f1", "val macro-F1"),
        ("training_time_s", "training time"),  # the cells say '18 min 10 s'
        ("n_errors", "errors"),
        ("inference_ms_per_image", "inference (ms/image)"),
        ("test accuracy", "test accuracy"),
        ("model", "model"),
    ],
)
def test_header_label(column, label):
    assert report.header_label(column) == label


def test_tables_head_columns_in_words_and_format_by_the_raw_name():
    df = pd.DataFrame(
        {"true": ["sad"], "share_of_class_errors": [1.0], "mean_confidence": [0.4], "wall_time_s": [75.0]}
    )
    html = report.table_html(df, index=False)
    assert "<th>share of class errors</th>" in html and "<th>wall time</th>" in html
    assert ">1.000<" in html and ">1 min 15 s<" in html
    assert "share_of_class_errors" not in html


def test_an_interval_stays_on_one_line_with_its_point(tmp_path):
    reports = _reports(tmp_path)
    row = {"model": "cnn", "kind": "model", "macro_f1": 0.8031, "macro_f1_ci_low": 0.785, "macro_f1_ci_high": 0.822}
    (reports / "comparison.json").write_text(json.dumps({"rows": [row]}))
    html = report.comparison(report.context(reports)).data
    assert "0.803\u00a0[0.785,\u00a00.822]" in html and "macro-F1 [95% CI]" in html


def test_pipeline_stages_table_leaves_out_paths_and_says_when_in_utc():
    stages = {
        "train_cnn": {"finished": "2026-12-01T02:48:06+00:00", "wall_time_s": 15.6, "val_macro_f1": 0.23},
        "evaluate_cnn": {"finished": "2026-12-01T02:54:54+00:00", "metrics": "/tmp/r/models/cnn/metrics.json"},
        "compare": {"finished": "2026-12-01T02:59:02+00:00", "best_subset": ["cnn", "deepcnn"], "models": ["cnn"]},
    }
    st = report.stages_frame(stages)
    assert list(st.index) == ["train_cnn", "evaluate_cnn", "compare"]
    assert "metrics" not in st and "models" not in st
    assert st.loc["train_cnn", "finished (UTC)"] == "2026-12-01 02:48"
    assert st.loc["compare", "best_subset"] == "cnn, deepcnn"
    html = report.table_html(st)
    assert "/tmp/r/models" not in html and ">16 s<" in html


def test_learning_curves_of_one_epoch_mark_their_points():
    hist = pd.DataFrame(
        {"epoch_global": [1], "loss": [1.2], "val_loss": [1.1], "accuracy": [0.4], "val_accuracy": [0.5]}
    )
    fig = report._history_figure("cnn", hist)
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert lines and all(line.get_marker() == "o" for line in lines)  # a one-point line alone draws nothing
    assert list(fig.axes[0].get_xticks()) == [1]  # not 0.95, 0.975, ... around the one epoch
    long = pd.DataFrame({"loss": [1.0] * 60, "accuracy": [0.5] * 60})
    assert all(
        line.get_marker() in (None, "None", "")
        for ax in report._history_figure("cnn", long).axes
        for line in ax.get_lines()
    )


def test_latency_section_of_a_plain_make_all_shows_the_evaluation_timing(tmp_path):
    reports = _reports(tmp_path)
    for name, ms in (("cnn", 1.25), ("deepcnn", 3.2)):
        folder = reports / "models" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.keras").write_bytes(b"stand-in")
        if name != "cnn":
            (folder / "model.json").write_text(json.dumps({"classes": ["a", "b"], "params": {"total": 1208355}}))
        (folder / "metrics.json").write_text(json.dumps({"inference_ms_per_image": ms, "inference_batch_size": 256}))
    ctx = report.context(reports)
    assert ctx["latency"] is None  # no `make bench`
    frame = report.compare_latency_frame(ctx)
    assert list(frame["model"]) == ["cnn", "deepcnn"]  # fastest first
    assert frame["images_per_s"].tolist() == pytest.approx([800.0, 312.5])
    html = report.latency(ctx).data
    assert "inference (ms/image)" in html and ">1.250<" in html and ">800.0<" in html and "1,208,355" in html
    assert "make bench" in html  # still says where single-image latency comes from
    # no timing anywhere: only the note
    assert report.compare_latency_frame(report.context(_reports(tmp_path / "bare"))) is None
