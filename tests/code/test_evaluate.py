"""emolib.evaluate against small hand-computed cases (numbers derived in comments)."""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
import pandas as pd
import pytest

from emolib import evaluate as ev
from emolib import metrics

CLASSES = ["angry", "sad", "surprise"]

# A small 3-class case used by several tests.
#   index:   0  1  2  3  4  5  6  7  8  9
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])
# Confusion matrix (rows = true, cols = predicted):
#   angry    [2, 1, 1]   4 items
#   sad      [1, 2, 0]   3 items
#   surprise [0, 1, 2]   3 items
# correct = 2 + 2 + 2 = 6 of 10 -> accuracy 0.6
# precision: angry 2/(2+1+0)=2/3, sad 2/(1+2+1)=1/2, surprise 2/(1+0+2)=2/3
# recall:    angry 2/4=1/2,       sad 2/3,           surprise 2/3
# f1:        angry 2*(2/3*1/2)/(2/3+1/2) = (2/3)/(7/6) = 4/7
#            sad   2*(1/2*2/3)/(1/2+2/3) = (2/3)/(7/6) = 4/7
#            surprise 2/3
# macro P = (2/3+1/2+2/3)/3 = (11/6)/3 = 11/18
# macro R = balanced accuracy = (1/2+2/3+2/3)/3 = 11/18
# macro F1 = (4/7+4/7+2/3)/3 = (24/21+14/21)/3 = 38/63
# weighted F1 = (4*4/7 + 3*4/7 + 3*2/3)/10 = (16/7+12/7+2)/10 = (28/7+2)/10 = 0.6
# majority class angry (4/10): majority_accuracy 0.4; majority macro F1: angry
#   P=0.4, R=1 -> F1 = 0.8/1.4 = 4/7, others 0 -> 4/21


def test_classification_metrics_hand_case():
    m = ev.classification_metrics(Y_TRUE, Y_PRED, CLASSES)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["balanced_accuracy"] == pytest.approx(11 / 18)
    assert m["macro_precision"] == pytest.approx(11 / 18)
    assert m["macro_recall"] == pytest.approx(11 / 18)
    assert m["macro_f1"] == pytest.approx(38 / 63)
    assert m["weighted_f1"] == pytest.approx(0.6)
    assert m["per_class"]["angry"] == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7, "support": 4})
    assert m["per_class"]["sad"] == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3})
    assert m["per_class"]["surprise"]["f1"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    assert np.allclose(m["confusion_matrix_normalized"], [[0.5, 0.25, 0.25], [1 / 3, 2 / 3, 0], [0, 1 / 3, 2 / 3]])
    b = m["baselines"]
    assert b["chance_accuracy"] == pytest.approx(1 / 3)
    assert b["majority_accuracy"] == pytest.approx(0.4)
    assert b["majority_class"] == "angry"
    assert b["majority_macro_f1"] == pytest.approx(4 / 21)
    assert "nll" not in m and "ece" not in m
    json.dumps(m)  # serialisable


def test_classification_metrics_schema_and_prob_keys():
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1]])
    y = np.array([0, 0])
    m = ev.classification_metrics(y, probs.argmax(1), ["a", "b", "c"], probs=probs)
    # nll = -(ln 0.8 + ln 0.3)/2 ; conf correct 0.8, incorrect 0.6, gap 0.2
    assert m["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.3)) / 2)
    assert m["mean_confidence_correct"] == pytest.approx(0.8)
    assert m["mean_confidence_incorrect"] == pytest.approx(0.6)
    assert m["confidence_gap"] == pytest.approx(0.2)
    # ECE (15 bins): 0.8 in bin (11/15, 12/15], acc 1 -> |1-0.8| ; 0.6 in (8/15, 9/15], acc 0 -> 0.6
    assert m["ece"] == pytest.approx(0.5 * 0.2 + 0.5 * 0.6)
    keys = {
        "n",
        "accuracy",
        "balanced_accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "weighted_f1",
        "per_class",
        "confusion_matrix",
        "confusion_matrix_normalized",
        "baselines",
        "nll",
        "ece",
        "mean_confidence_correct",
        "mean_confidence_incorrect",
        "confidence_gap",
    }
    assert set(m) == keys
    assert set(m["baselines"]) == {"chance_accuracy", "majority_accuracy", "majority_class", "majority_macro_f1"}
    # class 'b'/'c' never appear: zero_division=0, no warnings/NaNs
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # all correct -> no incorrect confidence: None (valid JSON), not NaN
    m2 = ev.classification_metrics([0], [0], ["a", "b"], probs=[[0.9, 0.1]])
    assert m2["mean_confidence_incorrect"] is None and m2["confidence_gap"] is None
    json.dumps(m2, allow_nan=False)


def test_predictions_frame_roundtrip(tmp_path):
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    df = ev.predictions_frame(["a.jpg", "b.jpg"], [0, 1], probs, CLASSES)
    assert ev.predictions_frame(["a.jpg", "b.jpg"], ["angry", "sad"], probs, CLASSES).equals(df)
    assert list(df.columns) == ["path", "true", "predicted", "confidence", "p_angry", "p_sad", "p_surprise"]
    assert df["predicted"].tolist() == ["angry", "surprise"]
    assert df["true"].tolist() == ["angry", "sad"]
    assert df["confidence"].tolist() == pytest.approx([0.7, 0.6])
    out = ev.save_predictions(df, tmp_path / "sub" / "pred.csv")
    assert out.exists() and not list(out.parent.glob("*.tmp"))
    y, p, df2 = ev.load_predictions(out, CLASSES)
    assert y.tolist() == [0, 1]
    assert np.allclose(p, probs)
    assert df2["path"].tolist() == ["a.jpg", "b.jpg"]


def test_confusion_patterns():
    conf = np.array([0.9, 0.8, 0.7, 0.5, 0.9, 0.6, 0.55, 0.9, 0.9, 0.65])
    # errors: idx2 angry->sad (0.7), idx3 angry->surprise (0.5), idx6 sad->angry (0.55), idx9 surprise->sad (0.65)
    cp = ev.confusion_patterns(Y_TRUE, Y_PRED, conf, CLASSES)
    assert list(cp.columns) == ["true", "predicted", "count", "share_of_class_errors", "mean_confidence"]
    assert cp["count"].sum() == 4 and len(cp) == 4
    row = cp[(cp["true"] == "angry") & (cp["predicted"] == "sad")].iloc[0]
    assert row["count"] == 1 and row["share_of_class_errors"] == pytest.approx(0.5)  # angry has 2 errors
    assert row["mean_confidence"] == pytest.approx(0.7)
    row = cp[(cp["true"] == "sad")].iloc[0]
    assert row["share_of_class_errors"] == pytest.approx(1.0)
    # sorted by count desc
    y = np.array([0, 0, 0, 1])
    p = np.array([1, 1, 2, 0])
    cp2 = ev.confusion_patterns(y, p, np.ones(4), CLASSES)
    assert cp2.iloc[0][["true", "predicted", "count"]].tolist() == ["angry", "sad", 2]
    assert cp2.iloc[0]["share_of_class_errors"] == pytest.approx(2 / 3)


def test_errors_by_confidence_band():
    y_true = np.array([0, 0, 0, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    conf = np.array([0.40, 0.50, 0.60, 0.70, 0.79, 0.80, 0.95, 0.99])
    # <0.6 : 0.40(err) 0.50        -> n 2, errors 1
    # 0.6-0.8: 0.60(err) 0.70 0.79(err) -> n 3, errors 2   (0.6 inclusive, 0.8 exclusive)
    # >=0.8: 0.80 0.95 0.99(err)   -> n 3, errors 1 ; total errors 4
    t = ev.errors_by_confidence_band(y_true, y_pred, conf)
    assert t["band"].tolist() == ["<0.6", "0.6-0.8", ">=0.8"]
    assert t["n"].tolist() == [2, 3, 3]
    assert t["n_errors"].tolist() == [1, 2, 1]
    assert t["error_rate"].tolist() == pytest.approx([0.5, 2 / 3, 1 / 3])
    assert t["share_of_all_errors"].tolist() == pytest.approx([0.25, 0.5, 0.25])


def test_most_confident_errors():
    df = pd.DataFrame(
        {
            "path": list("abcd"),
            "true": ["x", "x", "y", "y"],
            "predicted": ["y", "x", "x", "x"],
            "confidence": [0.6, 0.99, 0.9, 0.7],
        }
    )
    top = ev.most_confident_errors(df, 2)
    assert top["path"].tolist() == ["c", "d"]


def test_ece_worked_example():
    # 5 samples, 5 bins of width 0.2 (bins right-closed: (0.6, 0.8], (0.8, 1.0]):
    #  conf 0.9 correct, 0.95 wrong, 0.85 correct -> bin (0.8,1]: n=3, acc 2/3, conf 0.9
    #  conf 0.7 correct, 0.65 wrong               -> bin (0.6,0.8]: n=2, acc 1/2, conf 0.675
    # ECE = 3/5*|2/3-0.9| + 2/5*|0.5-0.675| = 0.6*0.233333 + 0.4*0.175 = 0.14 + 0.07 = 0.21
    probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.15, 0.85], [0.7, 0.3], [0.35, 0.65]])
    y = np.array([0, 1, 1, 0, 0])
    assert metrics.ece(probs, y, n_bins=5) == pytest.approx(0.21)
    t = ev.reliability_table(probs, y, n_bins=5)
    assert list(t.columns) == ["lower", "upper", "count", "accuracy", "confidence"]
    assert t["count"].tolist() == [0, 0, 0, 2, 3]
    assert t.iloc[4]["accuracy"] == pytest.approx(2 / 3) and t.iloc[4]["confidence"] == pytest.approx(0.9)
    assert t.iloc[3]["confidence"] == pytest.approx(0.675)
    # perfectly calibrated toy: conf 0.75 in a bin where 3/4 are right -> ECE 0
    p = np.array([[0.75, 0.25]] * 4)
    assert metrics.ece(p, np.array([0, 0, 0, 1])) == pytest.approx(0.0)


def test_temperature_scaling_overconfident():
    rng = np.random.default_rng(0)
    n, k = 600, 3
    y = rng.integers(0, k, n)
    # true model: correct with prob ~0.7; reported probs are sharpened (over-confident)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.5
    over = ev.apply_temperature(ev._softmax(logits), 0.25)  # sharpen x4
    T = ev.fit_temperature(over, y)
    assert T > 1.5
    after = ev.apply_temperature(over, T)
    assert metrics.nll(after, y) < metrics.nll(over, y)
    assert metrics.ece(after, y) < metrics.ece(over, y)
    assert np.allclose(after.sum(1), 1) and (after.argmax(1) == over.argmax(1)).all()
    # logits path gives the same temperature
    T2 = ev.fit_temperature(logits / 0.25, y, from_probs=False)
    assert T2 == pytest.approx(T, rel=1e-2)
    assert np.allclose(ev.apply_temperature(np.array([[0.5, 0.5]]), 3.0), 0.5)
    with pytest.raises(ValueError):
        ev.apply_temperature(over, 0)


def test_mcnemar_matches_statsmodels():
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    a = np.where(rng.random(200) < 0.7, y, (y + 1) % 3)
    b = np.where(rng.random(200) < 0.6, y, (y + 2) % 3)
    r = ev.mcnemar_exact(y, a, b)
    ra, rb = a == y, b == y
    assert r["b"] == int((ra & ~rb).sum()) and r["c"] == int((~ra & rb).sum())
    table = [[int((ra & rb).sum()), r["b"]], [r["c"], int((~ra & ~rb).sum())]]
    ref = mcnemar(table, exact=True)
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert r["statistic"] == pytest.approx(ref.statistic)
    # tiny hand case: b=5, c=0 -> p = 2 * 0.5**5 = 0.0625
    y = np.zeros(5, int)
    r = ev.mcnemar_exact(y, y, np.ones(5, int))
    assert (r["b"], r["c"]) == (5, 0) and r["p_value"] == pytest.approx(0.0625)
    # identical predictions: no discordant pairs -> p = 1
    assert ev.mcnemar_exact(y, y, y)["p_value"] == 1.0


def test_holm_hand_example():
    # p = [0.01, 0.04, 0.03, 0.005], m = 4; sorted 0.005, 0.01, 0.03, 0.04
    # 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, 1*0.04=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert ev.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # [0.3, 0.9]: 2*0.3 = 0.6, then max(0.6, 1*0.9) = 0.9 ; [0.6, 0.7]: 2*0.6 = 1.2 -> capped at 1, then 1
    assert ev.holm([0.3, 0.9]) == pytest.approx([0.6, 0.9])
    assert ev.holm([0.7, 0.6]) == pytest.approx([1.0, 1.0])
    assert ev.holm([]) == []
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(3).random(7) / 10
    assert ev.holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist())


def test_pairwise_mcnemar_and_matrix():
    y = np.zeros(30, int)
    preds = {"a": np.zeros(30, int), "b": np.r_[np.ones(12, int), np.zeros(18, int)], "c": np.zeros(30, int)}
    t = ev.pairwise_mcnemar(y, preds)
    assert list(t.columns) == ["model_a", "model_b", "b", "c", "p_value", "p_holm", "significant"]
    assert t[["model_a", "model_b"]].values.tolist() == [["a", "b"], ["a", "c"], ["b", "c"]]
    ab = t.iloc[0]
    # a right & b wrong on 12 items: p = 2 * 0.5**12 = 0.00048828125 ; Holm x3 (smallest of 3)
    assert (ab["b"], ab["c"]) == (12, 0)
    assert ab["p_value"] == pytest.approx(2 * 0.5**12)
    assert ab["p_holm"] == pytest.approx(3 * 2 * 0.5**12) and bool(ab["significant"])
    assert t.iloc[1]["p_value"] == 1.0 and not bool(t.iloc[1]["significant"])
    m = ev.mcnemar_matrix(t)
    assert m.shape == (3, 3) and m.loc["b", "a"] == m.loc["a", "b"] and np.isnan(m.loc["a", "a"])


def test_bootstrap_ci_properties_and_speed():
    rng = np.random.default_rng(0)
    n = 3500
    y = rng.integers(0, 3, n)
    yp = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    t0 = time.perf_counter()
    r1 = ev.bootstrap_ci(y, yp, "accuracy", n_resamples=1000, seed=0)
    r2 = ev.bootstrap_ci(y, yp, "macro_f1", n_resamples=1000, seed=0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 8, elapsed  # both metrics, 1000 resamples of 3.5k, on a busy 2-core box
    for r in (r1, r2):
        assert r["low"] <= r["point"] <= r["high"]
        assert r["high"] - r["low"] < 0.06
        assert r["n_resamples"] == 1000
    assert r1["point"] == pytest.approx(np.mean(y == yp))
    from sklearn.metrics import f1_score

    assert r2["point"] == pytest.approx(f1_score(y, yp, average="macro"))
    assert ev.bootstrap_ci(y, yp, "macro_f1", n_resamples=1000, seed=0) == r2
    other = ev.bootstrap_ci(y, yp, "macro_f1", n_resamples=1000, seed=1)
    assert (other["low"], other["high"]) != (r2["low"], r2["high"])
    # the vectorised macro-F1 agrees with sklearn on resamples, absent classes included
    yt = np.array([[0, 0, 1, 1], [0, 0, 0, 0]])
    ypp = np.array([[0, 1, 1, 1], [0, 0, 1, 0]])
    for a, b in zip(yt, ypp):
        assert ev._macro_f1_batched(a[None], b[None], 3)[0] == pytest.approx(
            f1_score(a, b, labels=[0, 1, 2], average="macro", zero_division=0)
        )
    # callable metric
    r3 = ev.bootstrap_ci(y[:200], yp[:200], lambda a, b: float(np.mean(a == b)), n_resamples=50, seed=0)
    assert r3["low"] <= r3["point"] <= r3["high"]


def test_ensemble_and_best_subset():
    p1 = np.array([[0.9, 0.1], [0.2, 0.8]])
    p2 = np.array([[0.5, 0.5], [0.6, 0.4]])
    assert np.allclose(ev.ensemble_probs([p1, p2]), [[0.7, 0.3], [0.4, 0.6]])
    # weights 3:1 -> 0.75*p1 + 0.25*p2
    assert np.allclose(ev.ensemble_probs([p1, p2], [3, 1]), [[0.8, 0.2], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    good = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.45, 0.55]])
    bad = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    helper = np.array([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4], [0.4, 0.6]])
    assert ev.best_subset({"bad": bad, "good": good}, y) == ["good"]
    assert ev.best_subset({"good": good, "helper": helper}, y, metric="accuracy") == ["good"]  # tie -> smaller


def test_plots_return_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    y = np.array([0, 1, 0, 0])
    cm = ev.classification_metrics(y, probs.argmax(1), CLASSES)["confusion_matrix"]
    f1 = ev.plot_confusion(cm, CLASSES, normalized=True, title="t", save=tmp_path / "cm.png")
    f2 = ev.plot_reliability(probs, y, n_bins=5, probs_after=ev.apply_temperature(probs, 2), save=tmp_path / "r.png")
    f3 = ev.plot_confidence_hist([0.9, 0.7], [0.4, 0.6], save=tmp_path / "h.png")
    for f, name in [(f1, "cm.png"), (f2, "r.png"), (f3, "h.png")]:
        assert isinstance(f, matplotlib.figure.Figure) and (tmp_path / name).stat().st_size > 0
        plt.close(f)


def test_no_tensorflow_import():
    import subprocess

    code = "import sys, emolib.evaluate; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
