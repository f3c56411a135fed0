"""Ablation rows from finished runs: one model's validation and test scores on a task, read from
the prediction files its run saved (no model is loaded, nothing is retrained).

    python -m emolib.ablation reports/models/cnn reports-all/models/cnn --task angry,sad,surprise

A model trained on more classes than the task (a 7-class run, or auxiliary classes) is scored two
ways on the task's images (rows whose true class is in the task):

* ``restricted``: its probabilities over the task's classes, renormalised (what a task user gets);
* ``with_other``: its top class over all its classes; a face it puts in a class outside the task
  counts as answered ``other``, wrong for a task face (the cost of an 'other' output, issue 11).

Each model is scored on its own run's validation split: runs with different class sets carve
different validation images from train (``data.split_validation`` stratifies by class), so two
models' validation scores come from different images of the same distribution; the test images
are the same for both. Choose on the validation column, report the test column once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from .config import parse_classes
from .error_analysis import prediction_file

SPLITS = ("val", "test")


def prediction_classes(frame: pd.DataFrame) -> list[str]:
    """The classes of a predictions table (its ``p_<class>`` columns, in order)."""
    return [c[2:] for c in frame.columns if c.startswith("p_")]


def task_scores(frame: pd.DataFrame, task: Sequence[str]) -> dict:
    """Macro-F1 and accuracy of a predictions table on the task's classes (see the module docstring).

    Raises ValueError when the table lacks a probability column for one of the task's classes.
    """
    task = list(task)
    classes = prediction_classes(frame)
    missing = [c for c in task if c not in classes]
    if missing:
        raise ValueError(f"the predictions have no p_ column for {missing} (their classes: {classes})")
    rows = frame[frame["true"].isin(task)]
    y = rows["true"].map({c: i for i, c in enumerate(task)}).to_numpy(dtype=np.int64)
    probs_all = rows[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)
    probs_task = rows[[f"p_{c}" for c in task]].to_numpy(dtype=np.float64)
    pred = probs_task.argmax(1) if len(rows) else np.zeros(0, dtype=np.int64)
    out = {
        "n": len(rows),
        "macro_f1": M.macro_f1(y, pred, len(task)),
        "accuracy": M.accuracy(y, pred),
    }
    extra = [c for c in classes if c not in task]
    if extra:
        top = np.asarray(classes)[probs_all.argmax(1)] if len(rows) else np.zeros(0, dtype=object)
        # index K is the 'other' answer: never a task class, so it lowers the true class's recall; the
        # macro average stays over the K task classes
        k = len(task)
        pred_other = np.where(np.isin(top, task), pred, k)
        out.update(
            macro_f1_with_other=float(M.per_class(y, pred_other, k + 1)["f1"][:k].mean()) if len(rows) else np.nan,
            answered_other=float(np.mean(pred_other == k)) if len(rows) else 0.0,
        )
    return out


def model_row(model_dir: str | Path, task: Sequence[str], *, tta: bool = False) -> dict:
    """Validation and test scores of the run in `model_dir` on `task` (its saved predictions)."""
    model_dir = Path(model_dir)
    row: dict = {"model_dir": str(model_dir)}
    card = model_dir / "model.json"
    if card.is_file():
        info = json.loads(card.read_text(encoding="utf-8"))
        row.update(
            model=info.get("model_name"),
            classes=len(info.get("classes") or []) + len(info.get("aux_classes") or []),
            weights_used=info.get("weights_used"),
            epochs=info.get("epochs_total"),
            train_time_s=info.get("wall_time_s"),
        )
    for split in SPLITS:
        path = prediction_file(model_dir, split, tta)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: run the model's error analysis first (notebook 20, `make evaluate`)"
            )
        for key, value in task_scores(pd.read_csv(path), task).items():
            row[f"{split}_{key}"] = value
    return row


def table(model_dirs: Sequence[str | Path], task: Sequence[str], *, tta: bool = False) -> pd.DataFrame:
    """One `model_row` per model folder."""
    return pd.DataFrame([model_row(d, task, tta=tta) for d in model_dirs])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dirs", nargs="+", help="finished model folders (reports/models/<name>)")
    parser.add_argument("--task", default="angry,sad,surprise", help="the task's classes (default: %(default)s)")
    parser.add_argument("--tta", action="store_true", help="score the TTA predictions (*_tta.csv) instead")
    parser.add_argument("--csv", help="also write the table here")
    args = parser.parse_args(argv)
    try:
        frame = table(args.model_dirs, parse_classes(args.task), tta=args.tta)
    except (FileNotFoundError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(frame.to_string(index=False))
    if args.csv:
        from .runinfo import atomic_write_text

        atomic_write_text(args.csv, frame.to_csv(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
