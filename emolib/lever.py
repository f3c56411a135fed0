"""Decide whether to adopt a lever from paired runs, on validation only.

    python -m emolib.lever --baseline reports/seed1/models/deepcnn \\
        --lever reports/seed1_mixup/models/deepcnn --require "tta>=0.005" --require "plain>=-0.005"

A pair is two finished runs that differ only in the lever: the same seed, classes and data, so the
same validation images (checked: both runs' validation predictions must list the same images with
the same labels). Several pairs, one per seed, are given in order: ``--baseline A1 A2 --lever B1 B2``.

Each pair gets the change in validation macro-F1 (lever minus baseline) without TTA (``plain``) and
with it (``tta``), each with a 95% paired-bootstrap interval over the validation images. That
interval covers which images were drawn, not training noise: a second seed measures the latter.

The rule is written down before the runs end, as ``--require "<score><op><threshold>"`` on the mean
change over the pairs (``plain`` or ``tta``; ``>=`` or ``<=``). The lever is adopted when every
requirement holds. Test predictions are not opened unless ``--show-test`` is given, and then only
after the verdict is printed: choose on validation, report test once.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import evaluate
from . import metrics as M
from . import tta as tta_views
from .ablation import prediction_classes
from .error_analysis import prediction_file, tta_record_current
from .modelfolder import RUN_KEY_FILE
from .runinfo import atomic_write_json

SCORES = {"plain": False, "tta": True}  # score name -> read the TTA predictions


@dataclass(frozen=True)
class Requirement:
    """`score op threshold` on the mean change of validation macro-F1 over the pairs."""

    score: str
    op: str
    threshold: float

    def __post_init__(self):
        if self.score not in SCORES or self.op not in (">=", "<="):
            raise ValueError(f"bad requirement {self.score} {self.op}: score one of {sorted(SCORES)}, op >= or <=")

    def holds(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def __str__(self) -> str:
        return f"{self.score} {self.op} {self.threshold:+.4f}"


def parse_requirement(text: str) -> Requirement:
    """'tta>=0.005' -> Requirement('tta', '>=', 0.005). Raises ValueError on anything else."""
    m = re.fullmatch(r"\s*(\w+)\s*(>=|<=)\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*", text)
    if not m or m.group(1) not in SCORES:
        raise ValueError(
            f"bad requirement {text!r}: write <score><op><number>, score one of {sorted(SCORES)}, op >= or <="
        )
    return Requirement(m.group(1), m.group(2), float(m.group(3)))


def _predictions(model_dir: Path, split: str, tta: bool) -> pd.DataFrame:
    path = prediction_file(model_dir, split, tta)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: finish the run and its evaluation first (`make evaluate`)")
    if tta and not tta_record_current(model_dir):
        raise ValueError(
            f"{path} was made with other TTA views than today's ({tta_views.POLICY}): rerun `make evaluate`"
        )
    frame = pd.read_csv(path)
    missing = [c for c in ("path", "true") if c not in frame.columns]
    if missing or not prediction_classes(frame):
        raise ValueError(f"{path} is not a predictions table: no {missing or 'p_<class>'} column(s)")
    return frame


def paired_labels(
    baseline: pd.DataFrame, lever: pd.DataFrame, split: str = "val"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(y, pred_baseline, pred_lever, classes) of two prediction tables of one split, aligned by path.
    Raises ValueError unless both list the same images with the same labels and classes."""
    classes = prediction_classes(baseline)
    if prediction_classes(lever) != classes:
        raise ValueError(f"the runs predict different classes: {classes} against {prediction_classes(lever)}")
    for name, frame in (("baseline", baseline), ("lever's run", lever)):
        if frame["path"].duplicated().any():
            raise ValueError(f"the {name}'s {split} predictions list an image twice: not one split's predictions")
    a, b = set(baseline["path"]), set(lever["path"])
    if a != b:
        raise ValueError(
            f"the runs saw different {split} images ({len(a - b)} only in the baseline, {len(b - a)} only in the "
            "lever's run): pair runs of the same seed, classes and data"
        )
    merged = baseline.merge(lever, on="path", suffixes=("_a", "_b"))
    if not (merged["true_a"] == merged["true_b"]).all():
        raise ValueError(f"the runs label the same {split} images differently: not a pair")
    unknown = sorted(set(merged["true_a"]) - set(classes))
    if unknown:
        raise ValueError(f"true labels {unknown} are not among the predicted classes {classes}")
    y = merged["true_a"].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64)
    pred_a = merged[[f"p_{c}_a" for c in classes]].to_numpy().argmax(1)
    pred_b = merged[[f"p_{c}_b" for c in classes]].to_numpy().argmax(1)
    return y, pred_a, pred_b, classes


def key_differences(baseline_dir: Path, lever_dir: Path) -> dict | None:
    """{field: [baseline value, lever value]} for the run-key fields that differ (what the lever changed);
    None when either run has no readable run key."""

    def read(d: Path) -> dict | None:
        try:
            return json.loads((d / RUN_KEY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    a, b = read(baseline_dir), read(lever_dir)
    if a is None or b is None:
        return None
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def compare_pair(baseline_dir, lever_dir, split: str, scores: Sequence[str], n_boot: int = 2000, seed: int = 0) -> dict:
    """One pair's macro-F1 on `split` for each score in `scores`: baseline, lever, change and its interval."""
    baseline_dir, lever_dir = Path(baseline_dir), Path(lever_dir)
    out: dict = {"baseline": str(baseline_dir), "lever": str(lever_dir), "split": split}
    for name in scores:
        use_tta = SCORES[name]
        y, pa, pb, classes = paired_labels(
            _predictions(baseline_dir, split, use_tta), _predictions(lever_dir, split, use_tta), split
        )
        diff = evaluate.paired_bootstrap_difference(
            y, pa, pb, "macro_f1", n_resamples=n_boot, seed=seed, n_classes=len(classes)
        )
        out[name] = {
            "n": int(len(y)),
            "baseline": M.macro_f1(y, pa, len(classes)),
            "lever": M.macro_f1(y, pb, len(classes)),
            "change": diff["point"],
            "low": diff["low"],
            "high": diff["high"],
        }
    return out


def decide(pairs: Sequence[dict], requirements: Sequence[Requirement]) -> dict:
    """{mean_change: {score: mean over pairs}, checks: [...], adopt: bool | None (None: no requirement)}."""
    mean_change = {s: float(np.mean([p[s]["change"] for p in pairs])) for s in SCORES if all(s in p for p in pairs)}
    checks = [
        {"requirement": str(r), "mean_change": mean_change[r.score], "holds": r.holds(mean_change[r.score])}
        for r in requirements
    ]
    return {"mean_change": mean_change, "checks": checks, "adopt": all(c["holds"] for c in checks) if checks else None}


def _print_pairs(pairs: Sequence[dict], scores: Sequence[str], title: str) -> None:
    print(title)
    for i, p in enumerate(pairs, 1):
        print(f"  pair {i}: {p['baseline']}  vs  {p['lever']}")
        for s in scores:
            r = p[s]
            print(
                f"    {s:<5} macro-F1 {r['baseline']:.4f} -> {r['lever']:.4f}  change {r['change']:+.4f} "
                f"[{r['low']:+.4f}, {r['high']:+.4f}]  (n={r['n']})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.lever", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", nargs="+", required=True, help="finished model folders without the lever")
    parser.add_argument("--lever", nargs="+", required=True, help="the same runs with the lever, in the same order")
    parser.add_argument("--require", action="append", default=[], help='the rule, e.g. "tta>=0.005" (repeatable)')
    parser.add_argument(
        "--scores", default="plain,tta", help="which validation scores to compare (default: %(default)s)"
    )
    parser.add_argument(
        "--show-test", action="store_true", help="after the verdict, print the test changes for the record"
    )
    parser.add_argument("--json", help="also write the comparison and verdict here")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.n_boot < 1:
            raise ValueError(f"--n-boot must be at least 1 (got {args.n_boot})")
        if len(args.baseline) != len(args.lever):
            raise ValueError(f"{len(args.baseline)} baseline runs but {len(args.lever)} lever runs: give them in pairs")
        requirements = [parse_requirement(t) for t in args.require]
        scores = [s.strip() for s in args.scores.split(",") if s.strip()]
        unknown = [s for s in scores if s not in SCORES]
        if unknown:
            raise ValueError(f"unknown score(s) {unknown}: use {sorted(SCORES)}")
        scores = sorted(set(scores) | {r.score for r in requirements}, key=list(SCORES).index)
        pairs = [compare_pair(a, b, "val", scores, n_boot=args.n_boot) for a, b in zip(args.baseline, args.lever)]
    except (FileNotFoundError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")
    for a, b in zip(args.baseline, args.lever):
        diff = key_differences(Path(a), Path(b))
        shown = "a run key is missing" if diff is None else (diff or "none: is this really a lever?")
        print(f"run-key fields that differ ({a} vs {b}): {shown}")
    _print_pairs(pairs, scores, "validation (the decision reads only these):")
    verdict = decide(pairs, requirements)
    for c in verdict["checks"]:
        print(f"  mean change {c['mean_change']:+.4f}: {c['requirement']} {'holds' if c['holds'] else 'FAILS'}")
    print(
        {True: "verdict: ADOPT", False: "verdict: DROP", None: "verdict: none (no --require given)"}[verdict["adopt"]]
    )
    result = {"validation": pairs, "requirements": [str(r) for r in requirements], **verdict}
    if args.json:  # the verdict is kept even if the test read below fails
        atomic_write_json(args.json, result)
    if args.show_test:
        try:
            tests = [compare_pair(a, b, "test", scores, n_boot=args.n_boot) for a, b in zip(args.baseline, args.lever)]
        except (FileNotFoundError, ValueError) as e:
            parser.exit(1, f"error: {e}\n")
        _print_pairs(tests, scores, "test, for the record (not part of the decision):")
        result["test"] = tests
        if args.json:
            atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
