"""emolib.ablation: scores of finished runs on a task, from their saved prediction files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from emolib import ablation, evaluate

TASK = ("angry", "sad", "surprise")
SEVEN = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _frame(classes, true, probs):
    return evaluate.predictions_frame([f"{i}.jpg" for i in range(len(true))], list(true), np.asarray(probs), classes)


def test_a_task_model_scores_like_its_own_metrics():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=60)
    true = rng.integers(0, 3, size=60)
    frame = _frame(TASK, true, probs)
    scores = ablation.task_scores(frame, TASK)
    assert scores["n"] == 60
    assert scores["macro_f1"] == pytest.approx(evaluate.classification_metrics(true, probs.argmax(1), TASK)["macro_f1"])
    assert "macro_f1_with_other" not in scores  # nothing outside the task to answer 'other' with


def test_a_seven_class_model_is_restricted_and_its_other_answers_count_as_errors():
    # four task faces (all right among the task's classes) and one happy face
    probs = np.zeros((5, 7))
    probs[0, SEVEN.index("angry")], probs[0, SEVEN.index("happy")] = 0.6, 0.4
    probs[1, SEVEN.index("sad")], probs[1, SEVEN.index("neutral")] = 0.3, 0.7  # top class outside the task
    probs[2, SEVEN.index("surprise")] = 1.0
    probs[3, SEVEN.index("angry")], probs[3, SEVEN.index("sad")] = 0.2, 0.1  # task share only 0.3
    probs[3, SEVEN.index("fear")] = 0.7
    probs[4, SEVEN.index("happy")] = 1.0
    frame = _frame(SEVEN, ["angry", "sad", "surprise", "angry", "happy"], probs)
    scores = ablation.task_scores(frame, TASK)
    assert scores["n"] == 4  # the happy face is not a task image
    assert scores["accuracy"] == 1.0 and scores["macro_f1"] == 1.0  # restricted: every task face right
    assert scores["answered_other"] == 0.5  # faces 1 and 3 go to neutral / fear
    # with 'other': angry 1 of 2 found (P 1, R 0.5), sad 0 of 1, surprise 1 of 1
    assert scores["macro_f1_with_other"] == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_missing_task_column_is_a_clear_error():
    frame = _frame(("angry", "sad"), [0, 1], [[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(ValueError, match="surprise"):
        ablation.task_scores(frame, TASK)


def test_model_row_reads_the_card_and_both_splits(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for split in ablation.SPLITS:
        true = rng.integers(0, 7, size=40)
        evaluate.save_predictions(
            _frame(SEVEN, true, rng.dirichlet(np.ones(7), size=40)), tmp_path / f"{split}_predictions.csv"
        )
    card = {"model_name": "cnn", "classes": list(SEVEN), "weights_used": "none", "epochs_total": 3, "wall_time_s": 9.5}
    (tmp_path / "model.json").write_text(json.dumps(card))
    row = ablation.model_row(tmp_path, TASK)
    assert row["model"] == "cnn" and row["classes"] == 7 and row["epochs"] == 3
    for split in ablation.SPLITS:
        saved = pd.read_csv(tmp_path / f"{split}_predictions.csv")
        assert row[f"{split}_macro_f1"] == pytest.approx(ablation.task_scores(saved, TASK)["macro_f1"])
        assert 0 <= row[f"{split}_answered_other"] <= 1
    out = tmp_path / "ablation.csv"
    assert ablation.main([str(tmp_path), "--csv", str(out)]) == 0
    assert "val_macro_f1" in capsys.readouterr().out and len(pd.read_csv(out)) == 1


def test_a_run_without_predictions_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit) as exc:
        ablation.main([str(tmp_path)])
    assert exc.value.code == 1
