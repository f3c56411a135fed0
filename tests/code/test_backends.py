"""Backends (Keras, LiteRT), the 'other' head and the release logic, on tiny models (seconds, no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emolib import backends as B
from emolib import release as R
from emolib.predict import OTHER, STATUS_OK, Predictor

CLASSES = ["angry", "sad", "surprise"]
S = 16


def tiny_model(seed: int = 0):
    """A model with the default CNN's layer names that the 'other' head reads (gap, dense128)."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((S, S, 1), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(5, activation="relu", name="dense128")(x)
    out = keras.layers.Dense(len(CLASSES), activation="softmax", name="predictions")(x)
    return keras.Model(inp, out)


def head(bias: float, threshold: float = 0.5) -> dict:
    w = np.linspace(-1, 1, 4 + 5)
    return {"layers": ["gap", "dense128"], "weights": w.tolist(), "bias": bias, "threshold": threshold}


def images(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, S, S, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_other_head_graft_matches_its_formula(model):
    h = head(bias=0.3)
    x = images()
    probs, p_other = B.with_other_head(model, h).predict(x, verbose=0)
    np.testing.assert_allclose(probs, model.predict(x, verbose=0), rtol=1e-6)
    feats = R.hidden_features(model, h["layers"], x)
    np.testing.assert_allclose(p_other[:, 0], R.sigmoid(feats @ np.asarray(h["weights"]) + h["bias"]), rtol=1e-5)


def test_head_with_wrong_width_is_refused(model):
    h = head(0.0)
    h["weights"] = h["weights"][:3]
    with pytest.raises(B.BackendError, match="another model"):
        B.with_other_head(model, h)


@pytest.mark.parametrize("bias, expect_other", [(40.0, True), (-40.0, False)])
def test_predictor_answers_other_and_keeps_the_probabilities(model, bias, expect_other):
    p = Predictor(model, CLASSES, card={"other": head(bias)})
    x = images(3).astype(np.uint8)  # what reading an image gives
    rows = p.predict_batch(list(x[..., 0]), faces="off", progress=False, detect_blank=False)
    probs = p.predict_arrays(x)
    for r, pr in zip(rows, probs):
        assert r.status == STATUS_OK
        assert (r.emotion == OTHER) is expect_other
        assert r.probabilities == pytest.approx(dict(zip(CLASSES, pr.tolist())), abs=1e-6)
        assert r.other is not None
        if expect_other:
            assert r.confidence == pytest.approx(r.other)
        assert r.to_row(CLASSES)["emotion"] == r.emotion
    # switched off, or a card without a head: always one of the classes
    off = Predictor(model, CLASSES, card={"other": head(bias)}, other=False)
    assert all(r.emotion in CLASSES and r.other is None for r in off.predict(x[0, ..., 0], faces="off"))
    assert Predictor(model, CLASSES).other_threshold is None


def test_other_threshold_overrides_the_cards(model):
    """A user's --other-threshold replaces the validated one: p_other is the same, the decision moves."""
    x = images(8).astype(np.uint8)
    card = {"other": head(0.0, threshold=0.999)}
    strict = Predictor(model, CLASSES, card=card)
    scores = [r.other for r in strict.predict_batch(list(x[..., 0]), faces="off", progress=False, detect_blank=False)]
    assert all(s is not None and s < 0.999 for s in scores)
    low = min(scores)
    eager = Predictor(model, CLASSES, card=card, other_threshold=low)
    rows = eager.predict_batch(list(x[..., 0]), faces="off", progress=False, detect_blank=False)
    assert eager.other_threshold == low and strict.other_threshold == 0.999
    assert [r.other for r in rows] == pytest.approx(scores)
    assert all(r.emotion == OTHER for r in rows)  # every face reaches the lowest score
    assert Predictor(model, CLASSES, other_threshold=0.5).other_threshold is None  # no head: nothing to move
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="other_threshold"):
            Predictor(model, CLASSES, card=card, other_threshold=bad)


def test_threshold_tradeoff_rows_follow_their_budgets():
    rng = np.random.default_rng(1)

    def split(n_task, n_others):
        y = rng.integers(0, 3, n_task)
        probs = np.eye(3)[y] * 0.6 + 0.4 / 3
        wrong = rng.random(n_task) < 0.25
        probs[wrong] = np.roll(probs[wrong], 1, axis=1)
        return y, probs, rng.beta(2, 5, n_task), rng.beta(5, 2, n_others)

    val, test = split(600, 900), split(500, 700)
    rows = R.threshold_tradeoff(val, test, max_costs=(0.008, 0.05, 0.2))
    assert [r["max_val_cost"] for r in rows] == [0.008, 0.05, 0.2]
    first = R.choose_threshold(*val, max_cost=0.008)
    assert rows[0]["threshold"] == first["threshold"] and rows[0]["val_others_rejected"] == first["others_rejected"]
    for r in rows:
        assert r["val_cost"] <= r["max_val_cost"] + 1e-12
        assert r["test_cost"] == pytest.approx(
            R.macro_f1_with_other(test[0], test[1], None, None, 3)
            - R.macro_f1_with_other(test[0], test[1], test[2], r["threshold"], 3)
        )
        assert r["test_others_rejected"] == pytest.approx(np.mean(test[3] >= r["threshold"]))
    # a looser budget: a lower threshold, more faces of both kinds answered 'other'
    for a, b in zip(rows, rows[1:]):
        assert b["threshold"] <= a["threshold"]
        assert (
            b["test_others_rejected"] >= a["test_others_rejected"]
            and b["test_task_rejected"] >= a["test_task_rejected"]
        )
    assert rows[-1]["test_others_rejected"] > rows[0]["test_others_rejected"]


def test_the_csv_says_other_with_status_ok(model):
    from emolib.cli import _csv_text

    p = Predictor(model, CLASSES, card={"other": head(40.0)})
    rows = p.predict_batch([images(1)[0, ..., 0].astype(np.uint8)], faces="off", progress=False, detect_blank=False)
    lines = _csv_text(rows, CLASSES).splitlines()
    row = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert row["status"] == "ok" and row["emotion"] == "other" and all(row[f"p_{c}"] for c in CLASSES)


def _release_folder(tmp_path, model, h):
    """A model folder whose card vouches for a float32 .tflite with the head as a second output."""
    from emolib import export
    from emolib.modelfolder import write_card

    d = tmp_path / "m"
    d.mkdir()
    model.save(d / "model.keras")
    flat, _ = export.tflite_bytes(B.with_other_head(model, h), "none")
    (d / B.TFLITE_FILE).write_bytes(flat)
    write_card(
        d,
        {
            "model_name": "tiny",
            "classes": CLASSES,
            "input_shape": [S, S, 1],
            "other": h,
            "tflite": {"file": B.TFLITE_FILE, "sha256": B.sha256_file(d / B.TFLITE_FILE)},
        },
    )
    return d


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory, model):
    return _release_folder(tmp_path_factory.mktemp("rel"), model, head(0.2, threshold=0.6))


@pytest.mark.parametrize("tta", [False, True])
def test_litert_and_keras_backends_agree(release_dir, tta):
    from emolib.predict import load_predictor

    lite = load_predictor(release_dir, tta=tta)  # auto: the vouched .tflite
    keras_p = load_predictor(release_dir, tta=tta, backend="keras")
    assert lite.backend.name == "litert" and keras_p.backend.name == "keras"
    x = images(7, seed=3).astype(np.uint8).astype(np.float32)
    (pl, ol), (pk, ok) = lite.predict_scores(x, batch_size=4), keras_p.predict_scores(x, batch_size=4)
    np.testing.assert_allclose(pl, pk, atol=1e-5)
    np.testing.assert_allclose(ol, ok, atol=1e-5)
    one = x[0, ..., 0].astype(np.uint8)
    a, b = lite.predict(one, faces="off")[0], keras_p.predict(one, faces="off")[0]
    assert a.emotion == b.emotion and a.confidence == pytest.approx(b.confidence, abs=1e-5)
    assert lite.model is not None  # Grad-CAM and the benchmarks still get the Keras model, loaded on demand


def test_a_tflite_the_card_does_not_vouch_for_is_not_used(release_dir, tmp_path):
    from emolib.predict import load_predictor

    card = json.loads((release_dir / "model.json").read_text())
    assert B.choose("auto", release_dir, card)[0] == "litert"
    card["tflite"]["sha256"] = "0" * 64  # e.g. a retrained model.keras next to an old export
    assert B.vouched_tflite(release_dir, card) is None
    assert B.choose("auto", release_dir, card) == ("keras", None)
    with pytest.raises(B.BackendError, match="vouched"):
        B.choose("litert", release_dir, card)
    with pytest.raises(B.BackendError, match="backend must be"):
        B.choose("onnx", release_dir, card)
    from emolib.modelfolder import ModelDirError

    with pytest.raises(ModelDirError, match="not found"):
        load_predictor(tmp_path / "missing")


# -- release logic -----------------------------------------------------------------------------
def test_compare_predictions():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=1000)
    same = R.compare_predictions(p, p.copy())
    assert same["pass"] and same["identical"] and same["agreement"] == 1.0 and same["max_prob_diff"] == 0.0
    flipped = p.copy()
    flipped[:4] = flipped[:4, ::-1]  # 4 rows (at most) change their top-1: >= 99.6% agreement
    near = R.compare_predictions(p, flipped)
    assert near["pass"] and not near["identical"] and near["agreement"] >= 0.996
    far = p.copy()
    far[:20] = far[:20, ::-1]
    changed = int(np.sum(far.argmax(1) != p.argmax(1)))
    res = R.compare_predictions(p, far)
    assert res["agreement"] == pytest.approx(1 - changed / 1000) and res["pass"] is (changed <= 5)
    assert not R.compare_predictions(p, p[:, :2])["pass"]


def test_weights_identical_and_compare_models(tmp_path, model):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, m in ((a, model), (b, tiny_model(seed=0))):
        d.mkdir()
        m.save(d / "model.keras")
        (d / "model.json").write_text(json.dumps({"classes": CLASSES}))
    x = images(50)[..., 0]
    same = R.compare_models(a, b, x)
    assert same["weights_identical"] and same["identical"] and same["pass"]
    other = tiny_model(seed=1)
    assert not R.weights_identical(model, other)
    other.save(b / "model.keras")
    assert not R.compare_models(a, b, x)["weights_identical"]


def test_install_swaps_the_folder(tmp_path):
    target, cand = tmp_path / "assets" / "default_model", tmp_path / "cand"
    for d, tag in ((target, "old"), (cand, "new")):
        d.mkdir(parents=True)
        for f in ("model.keras", "model.tflite", "model.json"):
            (d / f).write_text(tag)
    (cand / "scratch.txt").write_text("not part of a release")
    R.install(cand, target)
    assert sorted(p.name for p in target.iterdir()) == ["model.json", "model.keras", "model.tflite"]
    assert (target / "model.keras").read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["default_model"]  # no staging or old copies left


def test_choose_threshold_respects_the_validation_budget():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    probs = np.eye(3)[y] * 0.6 + 0.4 / 3  # a perfect classifier...
    wrong = rng.random(600) < 0.2
    probs[wrong] = np.roll(probs[wrong], 1, axis=1)  # ...that misses 20%
    p_task = rng.beta(2, 5, 600)
    p_others = rng.beta(5, 2, 900)
    for budget in (0.0, 0.01, 0.05):
        ch = R.choose_threshold(y, probs, p_task, p_others, budget)
        assert ch["cost"] <= budget + 1e-12
        assert ch["macro_f1"] == pytest.approx(R.macro_f1_with_other(y, probs, p_task, ch["threshold"], 3))
    loose = R.choose_threshold(y, probs, p_task, p_others, 0.05)
    tight = R.choose_threshold(y, probs, p_task, p_others, 0.0)
    assert loose["others_rejected"] > tight["others_rejected"]


def test_fit_logistic_folds_the_standardisation():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (200, 3)), rng.normal(2, 1, (200, 3))]) * [1, 100, 0.01]
    y = np.r_[np.zeros(200), np.ones(200)]
    w, b = R.fit_logistic(x, y, c=1.0)
    assert np.mean((R.sigmoid(x @ w + b) >= 0.5) == y) > 0.85


def test_release_needs_fer2013(tmp_path):
    with pytest.raises(R.ReleaseError, match="DATA_DIR="):
        R.check_data_dir(None)
    with pytest.raises(R.ReleaseError, match="not found"):
        R.check_data_dir(tmp_path / "nope")
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(R.ReleaseError, match="missing train/angry"):
        R.check_data_dir(tmp_path)
    assert R.main(["check-data", "--data-dir", str(tmp_path / "nope")]) == 1
    with pytest.raises(R.ReleaseError, match="recipe"):
        R.check_recipe({"model_name": "cnn", "profile": "smoke", "classes": CLASSES, "seed": 42})


def test_a_card_whose_head_does_not_fit_is_a_model_folder_error(tmp_path, model):
    from emolib.modelfolder import ModelDirError
    from emolib.predict import load_predictor

    h = head(0.0)
    h["weights"] = h["weights"][:3]
    model.save(tmp_path / "model.keras")
    (tmp_path / "model.json").write_text(json.dumps({"classes": CLASSES, "other": h}))
    with pytest.raises(ModelDirError, match="another model"):
        load_predictor(tmp_path)
    assert load_predictor(tmp_path, other=False).other_threshold is None
