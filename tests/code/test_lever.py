"""emolib.lever: a lever's verdict from paired runs, read from validation predictions only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emolib import evaluate, lever
from emolib import metrics as M
from emolib import tta as tta_views
from emolib.error_analysis import TTA_RECORD, prediction_file

CLASSES = ("angry", "sad", "surprise")


def _probs(pred, rng):
    """Probabilities whose argmax is `pred` (random otherwise)."""
    p = rng.dirichlet(np.ones(3), size=len(pred)) * 0.3
    p[np.arange(len(pred)), pred] += 1.0
    return p / p.sum(1, keepdims=True)


def _run(folder, y, preds: dict, run_key: dict | None = None, paths=None, seed=0, shuffle=False):
    """A finished run's folder: predictions for each (split, tta) in `preds` (rows in another order when
    `shuffle`), the TTA record `make evaluate` writes, and its run key."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = paths or [f"train/{CLASSES[c]}/{i}.jpg" for i, c in enumerate(y)]
    for (split, tta), pred in preds.items():
        frame = evaluate.predictions_frame(paths, [CLASSES[c] for c in y], _probs(np.asarray(pred), rng), CLASSES)
        if shuffle:
            frame = frame.sample(frac=1.0, random_state=seed)
        evaluate.save_predictions(frame, prediction_file(folder, split, tta))
    (folder / TTA_RECORD).write_text(json.dumps({"views": tta_views.POLICY}))
    if run_key is not None:
        (folder / "run_key.json").write_text(json.dumps(run_key))
    return folder


def _flip(y, n, rng):
    """y with n of its labels changed (a worse model)."""
    pred = y.copy()
    idx = rng.choice(len(y), size=n, replace=False)
    pred[idx] = (pred[idx] + 1) % 3
    return pred


def _one_more_error(y, pred):
    """`pred` with one of its right answers made wrong: its macro-F1 can only fall."""
    worse = pred.copy()
    i = int(np.flatnonzero(pred == y)[0])
    worse[i] = (worse[i] + 1) % 3
    return worse


@pytest.fixture
def pair(tmp_path):
    """A baseline and a lever run on the same 300 validation images (the lever's rows in another
    order): the lever makes 20 fewer errors with TTA and one more without it. No test predictions exist."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    base = {("val", False): _flip(y, 60, rng), ("val", True): _flip(y, 60, rng)}
    lev = {("val", False): _one_more_error(y, base[("val", False)]), ("val", True): _flip(y, 40, rng)}
    a = _run(tmp_path / "base", y, base, {"seed": 1, "profile": "quick"})
    b = _run(tmp_path / "lever", y, lev, {"seed": 1, "profile": "quick", "mixup_alpha": 0.2}, shuffle=True)
    return a, b, y, base, lev


def test_paired_bootstrap_difference_is_the_change_and_brackets_it():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=500)
    a, b = _flip(y, 150, rng), _flip(y, 100, rng)
    d = evaluate.paired_bootstrap_difference(y, a, b, "macro_f1", n_resamples=500, n_classes=3)
    assert d["point"] == pytest.approx(M.macro_f1(y, b, 3) - M.macro_f1(y, a, 3))
    assert d["low"] < d["point"] < d["high"]
    assert d["low"] > 0  # 50 fewer errors in 500 is beyond the draw of the items
    acc = evaluate.paired_bootstrap_difference(y, a, b, "accuracy", n_resamples=200)
    assert acc["point"] == pytest.approx(0.1)
    same = evaluate.paired_bootstrap_difference(y, a, a, n_resamples=100)
    assert same["point"] == same["low"] == same["high"] == 0.0
    with pytest.raises(ValueError, match="equal"):
        evaluate.paired_bootstrap_difference(y, a[:-1], b)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.paired_bootstrap_difference(y, a, b, "auc")


def test_compare_pair_scores_both_runs_on_the_same_images_whatever_their_row_order(pair):
    a, b, y, base, lev = pair
    r = lever.compare_pair(a, b, "val", ["plain", "tta"], n_boot=300)
    for score, tta in (("plain", False), ("tta", True)):
        assert r[score]["n"] == 300
        assert r[score]["baseline"] == pytest.approx(M.macro_f1(y, base[("val", tta)], 3))
        assert r[score]["lever"] == pytest.approx(M.macro_f1(y, lev[("val", tta)], 3))
        assert r[score]["change"] == pytest.approx(r[score]["lever"] - r[score]["baseline"])
    assert r["tta"]["change"] > 0.05 and -0.005 < r["plain"]["change"] < 0


def test_runs_on_other_images_or_labels_are_not_a_pair(tmp_path, pair):
    a, _, y, base, _ = pair
    other = _run(tmp_path / "other", y, base, paths=[f"x/{i}.jpg" for i in range(len(y))])
    with pytest.raises(ValueError, match="different val images"):
        lever.compare_pair(a, other, "val", ["plain"])
    relabelled = _run(
        tmp_path / "relabelled", (y + 1) % 3, base, paths=[f"train/{CLASSES[c]}/{i}.jpg" for i, c in enumerate(y)]
    )
    with pytest.raises(ValueError, match="label the same val images differently"):
        lever.compare_pair(a, relabelled, "val", ["plain"])
    twice = _run(tmp_path / "twice", y, base, paths=[f"train/{CLASSES[c]}/{i // 2}.jpg" for i, c in enumerate(y)])
    with pytest.raises(ValueError, match="list an image twice"):
        lever.compare_pair(twice, a, "val", ["plain"])
    frame = evaluate.predictions_frame(["0.jpg"], ["angry"], np.array([[0.5, 0.5]]), ("angry", "sad"))
    two_class = tmp_path / "two_class"
    evaluate.save_predictions(frame, prediction_file(two_class, "val"))
    with pytest.raises(ValueError, match="different classes"):
        lever.compare_pair(a, two_class, "val", ["plain"])


def test_tta_predictions_made_with_other_views_are_refused(pair):
    a, b, *_ = pair
    (b / TTA_RECORD).write_text(json.dumps({"views": "mirror only"}))
    with pytest.raises(ValueError, match="other TTA views"):
        lever.compare_pair(a, b, "val", ["tta"])
    assert lever.compare_pair(a, b, "val", ["plain"], n_boot=50)["plain"]["n"] == 300  # plain is unaffected


def test_a_file_that_is_not_a_predictions_table_is_a_clear_error(pair):
    a, b, *_ = pair
    prediction_file(b, "val").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="not a predictions table"):
        lever.compare_pair(a, b, "val", ["plain"])


def test_requirements_parse_and_judge_the_mean_change():
    r = lever.parse_requirement(" tta >= 0.005 ")
    assert (r.score, r.op, r.threshold) == ("tta", ">=", 0.005)
    assert lever.parse_requirement("plain>=-5e-3").threshold == -0.005
    for bad in ("tta>0.005", "auc>=0.1", "tta>=", "plain==0"):
        with pytest.raises(ValueError, match="bad requirement"):
            lever.parse_requirement(bad)
    with pytest.raises(ValueError, match="bad requirement"):
        lever.Requirement("tta", ">", 0.0)  # built directly, not parsed: still checked
    pairs = [
        {"plain": {"change": 0.01}, "tta": {"change": 0.002}},
        {"plain": {"change": -0.004}, "tta": {"change": 0.010}},
    ]
    v = lever.decide(pairs, [lever.parse_requirement("tta>=0.005"), lever.parse_requirement("plain>=-0.005")])
    assert v["mean_change"] == pytest.approx({"plain": 0.003, "tta": 0.006})
    assert v["adopt"] is True
    assert lever.decide(pairs, [lever.parse_requirement("tta>=0.007")])["adopt"] is False
    assert lever.decide(pairs, [])["adopt"] is None


def test_cli_decides_on_validation_without_opening_test(pair, tmp_path, capsys, monkeypatch):
    a, b, y, *_ = pair
    rng = np.random.default_rng(3)
    for folder in (a, b):  # test predictions exist, and must not be read
        _run(folder, y, {("test", False): _flip(y, 30, rng), ("test", True): _flip(y, 30, rng)}, seed=4)
    read = []
    real = lever._predictions
    monkeypatch.setattr(lever, "_predictions", lambda d, split, tta: read.append(split) or real(d, split, tta))
    out = tmp_path / "verdict.json"
    rule = ["--require", "tta>=0.005", "--require", "plain>=-0.005"]
    assert lever.main(["--baseline", str(a), "--lever", str(b), *rule, "--json", str(out), "--n-boot", "200"]) == 0
    text = capsys.readouterr().out
    assert "verdict: ADOPT" in text
    assert "mixup_alpha" in text  # what the lever changed, from the run keys
    assert set(read) == {"val"}
    assert "test" not in json.loads(out.read_text())
    saved = json.loads(out.read_text())
    assert saved["adopt"] is True and [c["holds"] for c in saved["checks"]] == [True, True]
    # a stricter rule on the plain score drops it
    assert lever.main(["--baseline", str(a), "--lever", str(b), "--require", "plain>=0", "--n-boot", "200"]) == 0
    assert "verdict: DROP" in capsys.readouterr().out
    assert set(read) == {"val"}


def test_cli_shows_test_after_the_verdict_and_keeps_the_verdict_if_test_is_missing(pair, tmp_path, capsys):
    a, b, y, base, lev = pair
    rng = np.random.default_rng(5)
    out = tmp_path / "verdict.json"
    with pytest.raises(SystemExit) as e:  # asked, but the runs have no test predictions: a clear error
        lever.main(["--baseline", str(a), "--lever", str(b), "--show-test", "--scores", "plain", "--json", str(out)])
    assert e.value.code == 1
    assert "test_predictions.csv is missing" in capsys.readouterr().err
    assert "adopt" in json.loads(out.read_text())  # the verdict was written before the test read failed
    _run(a, y, {("test", False): _flip(y, 30, rng)}, seed=1)
    _run(b, y, {("test", False): _flip(y, 30, rng)}, seed=2)
    assert (
        lever.main(["--baseline", str(a), "--lever", str(b), "--show-test", "--scores", "plain", "--n-boot", "100"])
        == 0
    )
    text = capsys.readouterr().out
    assert text.index("verdict:") < text.index("test, for the record")


def test_cli_refuses_unpaired_or_unknown_input(pair, capsys):
    a, b, *_ = pair
    for argv, message in (
        (["--baseline", str(a), str(a), "--lever", str(b)], "give them in pairs"),
        (["--baseline", str(a), "--lever", str(b), "--scores", "auc"], "unknown score"),
        (["--baseline", str(a), "--lever", str(b), "--require", "tta>0"], "bad requirement"),
        (["--baseline", str(a), "--lever", str(b), "--n-boot", "0"], "--n-boot must be at least 1"),
        (["--baseline", str(a), "--lever", str(a.parent / "missing")], "is missing"),
    ):
        with pytest.raises(SystemExit) as e:
            lever.main(argv)
        assert e.value.code == 1
        assert message in capsys.readouterr().err
