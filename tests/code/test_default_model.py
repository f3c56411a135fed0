"""The default model shipped in emolib/assets/default_model: contents, start-up without TensorFlow,
LiteRT against Keras, and the 'other' answer on real data (FER2013, wild faces; skipped when absent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emolib
from emolib.backends import TFLITE_FILE, default_model_dir, sha256_file
from emolib.modelfolder import CARD_FILE, MODEL_FILE, read_card

ROOT = Path(__file__).resolve().parents[2]
WILD = Path(os.environ.get("EMOLIB_WILD_FACES", ROOT.parent / "shared" / "data" / "wild_faces"))
DEFAULT = default_model_dir()
CLASSES = ["angry", "sad", "surprise"]

pytestmark = pytest.mark.skipif(not (DEFAULT / MODEL_FILE).is_file(), reason=f"no default model in {DEFAULT}")


def child(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )


@pytest.fixture(scope="module")
def card() -> dict:
    return read_card(DEFAULT)


@pytest.fixture(scope="module")
def crops(real_fer2013_or_none) -> np.ndarray:
    """A few 48x48 faces: FER2013 test crops of each task class when present, else generated faces."""
    from emolib.images import read_image

    if real_fer2013_or_none is not None:
        paths = [p for c in CLASSES for p in sorted((real_fer2013_or_none / "test" / c).glob("*.jpg"))[:4]]
        return np.stack([read_image(p, mode="L", size=48) for p in paths])
    from emolib.synthetic import render_faces

    return render_faces(CLASSES * 4, seed=0)


@pytest.fixture(scope="module")
def real_fer2013_or_none():
    from tests.conftest import REAL_FER2013

    return REAL_FER2013 if (REAL_FER2013 / "test").is_dir() else None


def test_the_shipped_folder_is_small_complete_and_documented(card):
    files = [DEFAULT / f for f in (MODEL_FILE, TFLITE_FILE, CARD_FILE)]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) <= 5_000_000
    assert card["classes"] == CLASSES and card["model_name"] == "cnn"
    # 'quick' before the BatchNorm recompute existed: the same recipe as release.RECIPE's 'quick+rawbn'
    assert card["profile"] in ("quick", "quick+rawbn") and card["seed"] == 42 and not card["synthetic"]
    assert card["data_fingerprint"] and "FER2013" in card["data"] and "quick" in card["recipe"]
    tm = card["test_metrics"]
    assert {"accuracy", "macro_f1", "per_class"} <= set(tm) and set(tm["per_class"]) >= set(CLASSES)
    assert card["tflite"]["sha256"] == sha256_file(DEFAULT / TFLITE_FILE)
    assert card["tflite"]["agreement_top1"] >= 0.995
    other = card["other"]
    assert "validation" in other["threshold_chosen_on"] and 0 < other["threshold"] < 1


def test_the_package_data_and_gitignore_keep_it():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"assets/default_model/*"' in text
    ignored = subprocess.run(["git", "check-ignore", "-q", str(DEFAULT / MODEL_FILE)], cwd=ROOT)
    assert ignored.returncode == 1, "the default model must not be git-ignored"


def test_load_predictor_without_a_folder_is_the_default_model_on_litert():
    p = emolib.load_predictor()
    assert p.backend.name == "litert" and p.model_dir == DEFAULT and p.other_threshold is not None


def test_module_imports_do_not_import_tensorflow():
    code = (
        "import sys, emolib, emolib.predict, emolib.faces, emolib.images, emolib.modelfolder, emolib.cli, "
        "emolib.backends\nprint(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = child(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_default_model_prediction_leaves_tensorflow_out(crops, tmp_path):
    from PIL import Image

    path = tmp_path / "face.png"
    Image.fromarray(crops[0]).save(path)
    code = (
        "import sys\nfrom emolib.cli import main\nrc = main(['predict', sys.argv[1], '--no-progress'])\n"
        "print('RC', rc, 'TF', 'tensorflow' in sys.modules, 'KERAS', 'keras' in sys.modules)"
    )
    out = child(code, str(path))
    assert out.returncode == 0, out.stderr
    assert "RC 0 TF False KERAS False" in out.stdout
    # said once on stderr, which model answered
    assert out.stderr.count("no --model given: using the default model") == 1


def test_litert_gives_the_keras_labels_and_probabilities(crops):
    from emolib.predict import load_predictor

    lite, keras_p = load_predictor(), load_predictor(backend="keras")
    for tta in (False, True):
        (pl, ol), (pk, ok) = lite.predict_scores(crops, tta=tta), keras_p.predict_scores(crops, tta=tta)
        np.testing.assert_array_equal(pl.argmax(1), pk.argmax(1))
        np.testing.assert_allclose(pl, pk, atol=1e-4)
        np.testing.assert_allclose(ol, ok, atol=1e-4)
    a = [(r.emotion, round(r.confidence, 3)) for r in lite.predict_batch(list(crops), progress=False)]
    b = [(r.emotion, round(r.confidence, 3)) for r in keras_p.predict_batch(list(crops), progress=False)]
    assert [e for e, _ in a] == [e for e, _ in b]


@pytest.mark.realdata
def test_other_on_fer2013_test_costs_what_the_card_says(real_fer2013, card):
    """3-class test macro-F1 with and without 'other' answers, measured here with LiteRT."""
    from emolib.images import read_image
    from emolib.predict import load_predictor
    from emolib.release import macro_f1_with_other

    paths, ys = [], []
    for i, c in enumerate(CLASSES):
        files = sorted((real_fer2013 / "test" / c).glob("*.jpg"))
        paths += files
        ys += [i] * len(files)
    x = np.stack([read_image(p, mode="L", size=48) for p in paths])
    p = load_predictor()
    probs, other = p.predict_scores(x, batch_size=256)
    y = np.asarray(ys)
    with_other = macro_f1_with_other(y, probs, other, p.other_threshold, 3)
    without = macro_f1_with_other(y, probs, None, None, 3)
    print(f"FER2013 test macro-F1 {without:.4f} -> {with_other:.4f} with 'other' (cost {without - with_other:.4f})")
    assert without == pytest.approx(card["test_metrics"]["macro_f1"], abs=0.002)
    assert without - with_other == pytest.approx(card["other"]["test"]["cost"], abs=0.002)
    # TTA: what `emolib predict --tta` does now (emolib.tta's views) scores what the card says
    from emolib import tta as T

    assert card["test_metrics"]["tta"]["views"] == T.POLICY
    probs_tta, _ = p.predict_scores(x, batch_size=256, tta=True)
    with_tta = macro_f1_with_other(y, probs_tta, None, None, 3)
    print(f"FER2013 test macro-F1 with TTA {with_tta:.4f}")
    assert with_tta == pytest.approx(card["test_metrics"]["tta"]["macro_f1"], abs=0.002)


@pytest.mark.realdata
def test_wild_faces_share_not_labelled_a_task_class(card):
    """The real photos (all happy or neutral): share of detected faces answered 'other', as the card says."""
    if not (WILD / "happy").is_dir():
        pytest.skip(f"wild faces not found at {WILD} (set EMOLIB_WILD_FACES)")
    from emolib.predict import iter_image_paths, load_predictor

    p = load_predictor()
    paths, _ = iter_image_paths([WILD / "happy", WILD / "neutral"])
    ok = [r for r in p.predict_batch([str(q) for q in paths], progress=False) if r.ok]
    share = sum(r.emotion == "other" for r in ok) / len(ok)
    print(f"wild faces: {share:.1%} of {len(ok)} detected faces answered 'other'")
    recorded = card["other"].get("wild_faces", {}).get("share_not_task")
    if recorded is not None:
        assert share == pytest.approx(recorded, abs=0.02)
    assert share > 0.2  # the head does something on real photos (without it the share is 0)
    # the trade-off's wild-faces shares, recomputed from the same faces' p_other
    scores = np.array([r.other for r in ok])
    for row in card["other"]["wild_faces"]["share_by_threshold"]:
        assert np.mean(scores >= row["threshold"]) == pytest.approx(row["share_not_task"], abs=0.02)


def test_the_cards_tradeoff_moves_one_way(card):
    """Looser validation budgets: lower thresholds, more faces of both kinds answered 'other'; the first
    row is the shipped threshold."""
    rows = card["other"]["tradeoff"]
    assert rows[0]["threshold"] == card["other"]["threshold"] and len(rows) >= 3
    for a, b in zip(rows, rows[1:]):
        assert b["max_val_cost"] > a["max_val_cost"] and b["threshold"] <= a["threshold"]
        assert b["test_others_rejected"] >= a["test_others_rejected"] and b["test_cost"] >= a["test_cost"] - 0.005
    for r in rows:
        assert r["val_cost"] <= r["max_val_cost"] + 1e-9


def test_other_threshold_reaches_the_command_line(tmp_path, crops, capsys):
    """--other-threshold moves the default model's decision; a value outside (0, 1] is a usage error."""
    import csv

    from PIL import Image

    from emolib import cli

    paths = []
    for i, crop in enumerate(crops[:4]):
        paths.append(tmp_path / f"face{i}.png")
        Image.fromarray(crop[..., 0] if crop.ndim == 3 else crop).save(paths[-1])

    def emotions(*extra):
        out = tmp_path / f"pred{len(extra)}.csv"
        assert cli.main(["predict", *map(str, paths), "--faces", "off", "--csv", str(out), *extra]) == 0
        with open(out, newline="") as f:
            return [row["emotion"] for row in csv.DictReader(f)]

    assert emotions("--other-threshold", "1e-9") == ["other"] * 4  # every p_other reaches it
    assert emotions("--other-threshold", "1").count("other") < 4  # the threshold moved the decision
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", str(paths[0]), "--other-threshold", "1.5"])
    assert e.value.code == 2 and "(0, 1]" in capsys.readouterr().err


def test_the_live_playground_falls_back_to_the_default_model(tmp_path, crops):
    from emolib import playground
    from emolib.predict import load_predictor

    assert playground.find_models(tmp_path) == {playground.DEFAULT_MODEL_NAME: DEFAULT}
    assert playground.find_models(tmp_path, default=False) == {}
    # the playground's per-image analysis, Grad-CAM included (the Keras model is loaded on demand)
    out = playground.analyse("face", crops[0], {"default": load_predictor()}, cam=True)
    face = out["faces"][0]["default"]
    assert out["status"] == "ok" and face["result"].emotion in CLASSES and face["cam"] is not None
