"""The default model shipped in ``emolib/assets/default_model/``: build it, check it, install it.

`make release-model DATA_DIR=/path/to/fer2013` does three things:

1. trains the quick profile's CNN with the pinned recipe (`RECIPE`: angry/sad/surprise, seed 42)
   through the training and error-analysis notebooks, exactly as ``make all PROFILE=quick``
   does, into ``$(REPORTS)/release/models/cnn``;
2. ``python -m emolib.release build`` turns that model folder into a release candidate:
   ``model.keras`` without optimizer state, the "other" head (`fit_other_head`), a float32
   ``model.tflite`` with the head as a second output (checked against Keras on the test
   split), and ``model.json`` = the training card + the error analysis's test metrics + the
   head + the release checks;
3. compares the candidate with the shipped model on the FER2013 test split (`compare_predictions`)
   and installs it (`install`, an atomic swap of the folder) only if they agree:
   top-1 agreement >= `MIN_AGREEMENT` (99.5%) between the two Keras models. Bit-identical
   weights are reported too: with op determinism on the same CPU and library versions the
   retrained weights are expected to be identical, but another CPU or TensorFlow build may
   change the last bits, which is why agreement, not identity, is the criterion.
   ``RELEASE_REPLACE=1`` (``--replace``) installs the candidate whatever the comparison says.

The "other" head (issue 11): a logistic regression on the model's hidden features (the
``gap`` and ``dense128`` layer outputs) that tells the task's classes (angry/sad/surprise)
from FER2013's other classes (disgust/fear/happy/neutral), fitted on FER2013 train, its
threshold chosen on the validation split (never on test): the threshold that rejects the
most other-class faces while costing at most `MAX_VAL_F1_COST` of the 3-class validation
macro-F1. The test split and the wild-faces photos only measure it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .backends import TFLITE_FILE, default_model_dir, sha256_file
from .modelfolder import CARD_FILE, METRICS_FILE, MODEL_FILE, read_card

RECIPE = {
    "model_name": "cnn",
    # '+rawbn': the shipped model (29 November) predates the BatchNorm recompute after training
    # (emolib.bnstats), so its recipe keeps the moving statistics and a retrain still reproduces it
    "profile": "quick+rawbn",
    "classes": ["angry", "sad", "surprise"],
    "seed": 42,
    "weights": "auto",
}
OTHER_CLASSES = ["disgust", "fear", "happy", "neutral"]  # FER2013's classes outside the task
OTHER_LAYERS = ["gap", "dense128"]  # hidden features the 'other' head reads
MAX_VAL_F1_COST = 0.008  # the most 3-class validation macro-F1 the 'other' threshold may cost
# Stricter budgets the card lists too (head['tradeoff']): a user who wants more faces answered 'other'
# picks one of those thresholds (`emolib predict --other-threshold T`) and sees what it costs.
TRADEOFF_MAX_COSTS = (MAX_VAL_F1_COST, 0.02, 0.05, 0.1, 0.2)
MIN_AGREEMENT = 0.995  # top-1 agreement on FER2013 test between the shipped and a retrained model
MAX_BYTES = 5_000_000  # model.keras + model.tflite + model.json
FER2013_LAYOUT = "DATA_DIR/train/<class>/*.jpg and DATA_DIR/test/<class>/*.jpg with all seven FER2013 classes"


class ReleaseError(RuntimeError):
    """The release cannot go on; the message says why and what to do."""


# -- data ----------------------------------------------------------------------------------
def check_data_dir(data_dir: str | Path | None) -> Path:
    """The FER2013 folder (Kaggle layout, all seven classes); ReleaseError with the fix otherwise."""
    from .config import FER2013_CLASSES

    hint = "make release-model DATA_DIR=/path/to/fer2013 (" + FER2013_LAYOUT + "; `make data` downloads it)"
    if not data_dir:
        raise ReleaseError(f"no FER2013 folder given: {hint}")
    root = Path(data_dir)
    if not root.is_dir():
        raise ReleaseError(f"{root}: FER2013 not found; {hint}")
    missing = [
        f"{split}/{c}" for split in ("train", "test") for c in FER2013_CLASSES if not (root / split / c).is_dir()
    ]
    if missing:
        raise ReleaseError(
            f"{root}: not the FER2013 Kaggle layout, missing {', '.join(missing[:6])}"
            f"{' ...' if len(missing) > 6 else ''}; {hint}"
        )
    return root


@functools.lru_cache(maxsize=2)
def _prepared(data_dir: Path, classes: tuple[str, ...]) -> object:
    """data.prepare for the recipe's profile and seed (the training notebook's splits); cached."""
    import dataclasses

    from . import config, data

    cfg = config.resolve(
        profile=RECIPE["profile"], classes=",".join(classes), data_dir=str(data_dir), seed=RECIPE["seed"]
    )
    cfg = dataclasses.replace(cfg, profile=cfg.profile.for_model(RECIPE["model_name"]))
    return data.prepare(cfg, data_dir=data_dir, progress=True)


# -- the 'other' head ------------------------------------------------------------------------
def hidden_features(model, layers, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The named layers' outputs of `model` on raw pixels x (N, S, S[, 1]), concatenated: (N, F)."""
    import keras

    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in layers])
    out = sub.predict(
        np.asarray(x, np.float32).reshape(len(x), *model.input_shape[1:]), batch_size=batch_size, verbose=0
    )
    out = out if isinstance(out, (list, tuple)) else [out]
    return np.concatenate([np.asarray(o, np.float32).reshape(len(x), -1) for o in out], axis=1)


def fit_logistic(
    features: np.ndarray, is_other: np.ndarray, c: float = 0.1, seed: int = 42
) -> tuple[np.ndarray, float]:
    """Weights and bias of p_other = sigmoid(features . w + b): a class-balanced logistic regression on
    standardised features, the standardisation folded into w and b (one Dense layer at inference)."""
    from sklearn.linear_model import LogisticRegression

    mean, std = features.mean(0), features.std(0)
    std = np.where(std > 1e-6, std, 1.0)
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    lr.fit((features - mean) / std, np.asarray(is_other, dtype=int))
    w = lr.coef_[0] / std
    b = float(lr.intercept_[0] - np.sum(lr.coef_[0] * mean / std))
    return w.astype(np.float32), b


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def macro_f1_with_other(
    y_true: np.ndarray, probs: np.ndarray, p_other: np.ndarray | None, threshold: float | None, n_classes: int
) -> float:
    """Macro-F1 over the task's classes when faces with p_other >= threshold are answered 'other' (wrong
    for a task-class face: it lowers that class's recall)."""
    from sklearn.metrics import f1_score

    pred = np.asarray(probs).argmax(1)
    if p_other is not None and threshold is not None:
        pred = np.where(np.asarray(p_other) >= threshold, -1, pred)
    return float(f1_score(y_true, pred, labels=list(range(n_classes)), average="macro", zero_division=0))


def choose_threshold(
    y_task: np.ndarray,
    probs_task: np.ndarray,
    p_task: np.ndarray,
    p_others: np.ndarray,
    max_cost: float = MAX_VAL_F1_COST,
) -> dict:
    """The lowest threshold (most other-class faces rejected) whose 3-class macro-F1 cost on these
    (validation) faces is at most `max_cost`. Returns threshold, cost, macro-F1 with and without, and the
    share of task and of other-class faces answered 'other'."""
    n_classes = probs_task.shape[1]
    base = macro_f1_with_other(y_task, probs_task, None, None, n_classes)
    # candidates: every distinct score of either group (plus 'never'), from strict to lenient
    cands = np.unique(np.concatenate([p_task, p_others, [np.inf]]))[::-1]
    best = {"threshold": float(np.inf), "macro_f1": base, "cost": 0.0}
    for t in cands[:: max(1, len(cands) // 2000)]:  # at most ~2,000 steps: finer than the data can tell
        f1 = macro_f1_with_other(y_task, probs_task, p_task, t, n_classes)
        if base - f1 <= max_cost:
            best = {"threshold": float(t), "macro_f1": f1, "cost": base - f1}
        else:
            break  # the cost only grows as the threshold falls
    t = best["threshold"]
    return {
        **best,
        "macro_f1_without": base,
        "max_cost": max_cost,
        "task_rejected": float(np.mean(p_task >= t)),
        "others_rejected": float(np.mean(p_others >= t)),
        "n_task": int(len(p_task)),
        "n_others": int(len(p_others)),
    }


def fit_other_head(model, data_dir: Path, *, layers=OTHER_LAYERS, max_cost: float = MAX_VAL_F1_COST) -> dict:
    """The card's 'other' entry for `model` (see the module docstring), with validation and test numbers."""
    task = _prepared(data_dir, tuple(RECIPE["classes"]))
    others = _prepared(data_dir, tuple(OTHER_CLASSES))
    feats = {
        (g, s): hidden_features(model, layers, (task if g == "task" else others).split(s)[0])
        for g in ("task", "others")
        for s in ("train", "val", "test")
    }
    x_train = np.concatenate([feats["task", "train"], feats["others", "train"]])
    y_train = np.concatenate([np.zeros(len(feats["task", "train"])), np.ones(len(feats["others", "train"]))])
    w, b = fit_logistic(x_train, y_train, seed=RECIPE["seed"])

    def scores(group, split):
        return sigmoid(feats[group, split] @ w + b)

    def probs(split):
        return model.predict(task.split(split)[0][..., None].astype(np.float32), batch_size=512, verbose=0)

    val = choose_threshold(task.split("val")[1], probs("val"), scores("task", "val"), scores("others", "val"), max_cost)
    t = val["threshold"]
    y_test, p_test = task.split("test")[1], probs("test")
    n = len(RECIPE["classes"])
    others_test = scores("others", "test")
    test = {
        "macro_f1": macro_f1_with_other(y_test, p_test, scores("task", "test"), t, n),
        "macro_f1_without": macro_f1_with_other(y_test, p_test, None, None, n),
        "task_rejected": float(np.mean(scores("task", "test") >= t)),
        "others_rejected": float(np.mean(others_test >= t)),
        "others_rejected_per_class": {
            c: float(np.mean(others_test[others.split("test")[1] == i] >= t)) for i, c in enumerate(OTHER_CLASSES)
        },
    }
    test["cost"] = test["macro_f1_without"] - test["macro_f1"]
    tradeoff = threshold_tradeoff(
        (task.split("val")[1], probs("val"), scores("task", "val"), scores("others", "val")),
        (y_test, p_test, scores("task", "test"), others_test),
    )
    return {
        "what": "p_other = sigmoid(concat(layer outputs) . weights + bias): the face shows none of the classes "
        "when p_other >= threshold; emolib then answers emotion 'other' and keeps the class probabilities",
        "layers": list(layers),
        "weights": [float(v) for v in w],
        "bias": float(b),
        "threshold": t,
        "fitted_on": f"FER2013 train ({len(feats['task', 'train'])} {'/'.join(RECIPE['classes'])} faces against "
        f"{len(feats['others', 'train'])} {'/'.join(OTHER_CLASSES)} faces), class-balanced logistic "
        "regression (C=0.1) on standardised features",
        "threshold_chosen_on": f"validation: the lowest threshold costing at most {max_cost} of the 3-class macro-F1",
        "validation": val,
        "test": test,
        "tradeoff": tradeoff,
    }


def threshold_tradeoff(val: tuple, test: tuple, max_costs=TRADEOFF_MAX_COSTS) -> list[dict]:
    """One row per validation budget in `max_costs`: the threshold `choose_threshold` picks on validation
    for it, and what that threshold does on test (macro-F1 cost, shares of task and other-class faces
    answered 'other'). val and test: (y_task, probs_task, p_other of task faces, p_other of other faces)."""
    y_test, probs_test, p_task_test, p_others_test = test
    n = probs_test.shape[1]
    base = macro_f1_with_other(y_test, probs_test, None, None, n)
    rows = []
    for max_cost in max_costs:
        v = choose_threshold(*val, max_cost=max_cost)
        t = v["threshold"]
        rows.append(
            {
                "max_val_cost": float(max_cost),
                "threshold": t,
                "val_cost": v["cost"],
                "val_others_rejected": v["others_rejected"],
                "test_cost": base - macro_f1_with_other(y_test, probs_test, p_task_test, t, n),
                "test_task_rejected": float(np.mean(p_task_test >= t)),
                "test_others_rejected": float(np.mean(p_others_test >= t)),
            }
        )
    return rows


# -- building a candidate ----------------------------------------------------------------------
def _metrics_summary(metrics: dict) -> dict:
    """The error analysis's test metrics (metrics.json) that the card repeats."""
    keep = (
        "n",
        "accuracy",
        "balanced_accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "ece",
        "nll",
        "per_class",
        "confusion_matrix",
    )
    m = metrics.get("test", {})
    out = {k: m[k] for k in keep if k in m}
    ci = metrics.get("test_ci") or {}
    for k in ("accuracy", "macro_f1"):
        if isinstance(ci.get(k), dict):
            out[f"{k}_ci_low"], out[f"{k}_ci_high"] = ci[k].get("low"), ci[k].get("high")
    if isinstance(metrics.get("tta"), dict):
        out["tta"] = metrics["tta"]
    out["source"] = "metrics.json of the error analysis (notebooks/20_error_analysis.ipynb), FER2013 PublicTest"
    return out


def check_recipe(card: dict) -> None:
    """The trained card must match RECIPE and come from real data."""
    wrong = {k: card.get(k) for k in ("model_name", "profile", "classes", "seed") if card.get(k) != RECIPE[k]}
    if wrong or card.get("synthetic"):
        raise ReleaseError(
            f"the trained model is not the release recipe {RECIPE} "
            f"(differs in {wrong or 'synthetic data'}); "
            "train it with `make release-model DATA_DIR=...`"
        )


def build_candidate(
    trained_dir: str | Path, data_dir: str | Path, out_dir: str | Path, wild_dir: str | Path | None = None
) -> dict:
    """Write model.keras, model.tflite and model.json of a release candidate into out_dir; returns the card."""
    from . import export
    from .backends import with_other_head
    from .modelfolder import load_model, write_card
    from .runinfo import library_versions, now_iso

    trained_dir, data_dir, out_dir = Path(trained_dir), check_data_dir(data_dir), Path(out_dir)
    card = read_card(trained_dir)
    check_recipe(card)
    metrics_path = trained_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise ReleaseError(f"{metrics_path}: missing; run the error analysis first (make evaluate MODELS=cnn ...)")
    model = load_model(trained_dir, card)  # uncompiled: saved without optimizer state (a third of the size)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_FILE)
    print("fitting the 'other' head on FER2013 train, threshold on validation ...", file=sys.stderr)
    head = fit_other_head(model, data_dir)
    # float32 TFLite with p_other as a second output; its agreement with Keras on the test split
    graph = with_other_head(model, head)
    flat, how = export.tflite_bytes(graph, "none")
    (out_dir / TFLITE_FILE).write_bytes(flat)
    tfl = tflite_agreement(
        graph, out_dir / TFLITE_FILE, _prepared(data_dir, tuple(RECIPE["classes"])).split("test")[0], head["threshold"]
    )
    card = {
        **card,
        "test_metrics": _metrics_summary(json.loads(metrics_path.read_text(encoding="utf-8"))),
        "data": f"FER2013 (Kaggle msambare/fer2013 image folders): train split for training (15% of it, "
        f"stratified with seed {RECIPE['seed']}, for validation), PublicTest for the test metrics; "
        f"fingerprint {card.get('data_fingerprint')}",
        "recipe": f"make release-model: profile {card.get('profile')}, {card.get('epochs_total')} epochs, "
        f"schedule {card.get('stages')}, seed {card.get('seed')}, op determinism on CPU",
        "other": head,
        "tflite": {"file": TFLITE_FILE, "sha256": sha256_file(out_dir / TFLITE_FILE), "how": how, **tfl},
        "release": {"created": now_iso(), "versions": library_versions(), "built_from": str(trained_dir)},
    }
    write_card(out_dir, card)
    if wild_dir:
        card["other"]["wild_faces"] = wild_faces_check(out_dir, wild_dir)
        write_card(out_dir, card)
    size = sum((out_dir / f).stat().st_size for f in (MODEL_FILE, TFLITE_FILE, CARD_FILE))
    if size > MAX_BYTES:
        raise ReleaseError(f"{out_dir}: the release is {size / 1e6:.2f} MB, over the {MAX_BYTES / 1e6:.0f} MB budget")
    return card


def tflite_agreement(graph, tflite_path: Path, x: np.ndarray, threshold: float) -> dict:
    """Top-1 agreement (with 'other' decisions) and largest probability difference of the .tflite against Keras."""
    from .backends import LiteRTBackend

    x = np.asarray(x, np.float32)[..., None]
    kp, ko = graph.predict(x, batch_size=512, verbose=0)
    run = LiteRTBackend(tflite_path, kp.shape[1])
    tp, to = zip(*(run.run(x[i : i + 256]) for i in range(0, len(x), 256)))
    tp, to, ko = np.concatenate(tp), np.concatenate(to), ko[:, 0]
    k_label = np.where(ko >= threshold, -1, kp.argmax(1))
    t_label = np.where(to >= threshold, -1, tp.argmax(1))
    return {
        "n_checked": int(len(x)),
        "agreement_top1": float(np.mean(kp.argmax(1) == tp.argmax(1))),
        "agreement_with_other": float(np.mean(k_label == t_label)),
        "max_prob_diff": float(max(np.abs(kp - tp).max(), np.abs(ko - to).max())),
        "checked_on": "FER2013 test (angry/sad/surprise), against the Keras model with the same head",
    }


def wild_faces_check(model_dir: Path, wild_dir: str | Path) -> dict:
    """Share of the wild-faces photos' faces (all happy or neutral) not labelled one of the task's classes."""
    from .predict import iter_image_paths, load_predictor

    pred = load_predictor(model_dir)
    out = {}
    p_other = []  # of every detected face, for the shares at the trade-off thresholds
    for label in ("happy", "neutral"):
        paths, _ = iter_image_paths([Path(wild_dir) / label])
        rows = pred.predict_batch([str(p) for p in paths], progress=False)
        ok = [r for r in rows if r.ok]
        p_other += [r.other for r in ok if r.other is not None]
        out[label] = {
            "photos": len(paths),
            "faces": len(ok),
            "no_face": sum(r.status == "no_face" for r in rows),
            "other": sum(r.emotion == "other" for r in ok),
            "task_labels": {c: sum(r.emotion == c for r in ok) for c in pred.classes},
        }
    faces = sum(v["faces"] for v in out.values())
    other = sum(v["other"] for v in out.values())
    out["share_not_task"] = other / faces if faces else None
    rows = (pred.card.get("other") or {}).get("tradeoff") or []
    if p_other and len(p_other) == faces:
        scores = np.asarray(p_other, dtype=np.float64)
        out["share_by_threshold"] = [
            {
                "threshold": r["threshold"],
                "max_val_cost": r["max_val_cost"],
                "share_not_task": float(np.mean(scores >= r["threshold"])),
            }
            for r in rows
        ]
    from .faces import DEFAULT_DETECTOR

    out["what"] = (
        f"emolib predict (faces=auto: {DEFAULT_DETECTOR} detection and alignment on the photos, "
        f"{pred.backend.name} backend); share of the detected faces answered 'other'"
    )
    return out


# -- comparing and installing ----------------------------------------------------------------------
def compare_predictions(old: np.ndarray, new: np.ndarray, min_agreement: float = MIN_AGREEMENT) -> dict:
    """Top-1 agreement and largest probability difference between two (N, C) probability arrays."""
    old, new = np.asarray(old, np.float64), np.asarray(new, np.float64)
    if old.shape != new.shape:
        return {
            "n": int(len(new)),
            "agreement": 0.0,
            "max_prob_diff": None,
            "identical": False,
            "pass": False,
            "why": f"different output shapes {old.shape} and {new.shape}",
        }
    agree = float(np.mean(old.argmax(1) == new.argmax(1))) if len(old) else 1.0
    diff = float(np.abs(old - new).max()) if len(old) else 0.0
    return {
        "n": int(len(old)),
        "agreement": agree,
        "max_prob_diff": diff,
        "identical": bool(np.array_equal(old, new)),
        "min_agreement": min_agreement,
        "pass": bool(agree >= min_agreement),
    }


def weights_identical(model_a, model_b) -> bool:
    """True when both models have the same weights, bit for bit."""
    wa, wb = model_a.get_weights(), model_b.get_weights()
    return len(wa) == len(wb) and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(wa, wb))


def compare_models(shipped_dir: Path, candidate_dir: Path, x: np.ndarray, min_agreement: float = MIN_AGREEMENT) -> dict:
    """compare_predictions of the two folders' Keras models on x, plus whether their weights are identical."""
    from .modelfolder import load_model

    a, b = load_model(shipped_dir), load_model(candidate_dir)
    x = np.asarray(x, np.float32).reshape(len(x), *a.input_shape[1:])
    out = compare_predictions(
        a.predict(x, batch_size=512, verbose=0), b.predict(x, batch_size=512, verbose=0), min_agreement
    )
    out["weights_identical"] = weights_identical(a, b)
    return out


def install(candidate_dir: str | Path, target_dir: str | Path) -> Path:
    """Replace target_dir by a copy of candidate_dir, atomically as far as folders allow.

    The copy is made beside the target first; then two renames (old out, new in) that cannot
    fail half-way on one file system: a crash between them leaves the old folder as
    '.<name>.old-*' next to the target, never a half-written model.
    """
    candidate_dir, target_dir = Path(candidate_dir), Path(target_dir)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.new-", dir=target_dir.parent))
    for f in (MODEL_FILE, TFLITE_FILE, CARD_FILE):
        if (candidate_dir / f).is_file():
            shutil.copy2(candidate_dir / f, staging / f)
    os.chmod(staging, 0o755)
    old = None
    if target_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.old-", dir=target_dir.parent))
        os.rmdir(old)
        os.rename(target_dir, old)
    try:
        os.rename(staging, target_dir)
    except OSError:
        if old is not None:
            os.rename(old, target_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target_dir


def release(trained_dir, data_dir, *, target_dir=None, work_dir=None, wild_dir=None, replace: bool = False) -> dict:
    """Build a candidate from trained_dir, compare it with the shipped model, install it if it passes (or replace)."""
    target_dir = Path(target_dir or default_model_dir())
    work_dir = Path(work_dir or Path(trained_dir).parent.parent / "release_candidate")
    if work_dir.exists():
        shutil.rmtree(work_dir)
    card = build_candidate(trained_dir, data_dir, work_dir, wild_dir=wild_dir)
    x_test = _prepared(Path(data_dir), tuple(RECIPE["classes"])).split("test")[0]
    shipped = (target_dir / MODEL_FILE).is_file()
    cmp = compare_models(target_dir, work_dir, x_test) if shipped else {"pass": False, "why": "nothing shipped yet"}
    cmp["shipped"] = str(target_dir)
    print(
        json.dumps(
            {
                "comparison": cmp,
                "other_validation": card["other"]["validation"],
                "other_test": card["other"]["test"],
                "wild_faces": card["other"].get("wild_faces"),
                "tflite": {k: v for k, v in card["tflite"].items() if k != "sha256"},
            },
            indent=1,
            default=str,
        )
    )
    if cmp["pass"] or replace:
        install(work_dir, target_dir)
        print(f"installed the release in {target_dir}" + ("" if cmp["pass"] else " (RELEASE_REPLACE=1)"))
    else:
        raise ReleaseError(
            f"the retrained model does not reproduce the shipped one (top-1 agreement {cmp.get('agreement', 0):.2%} "
            f"< {MIN_AGREEMENT:.1%} on the FER2013 test split{'; ' + cmp['why'] if 'why' in cmp else ''}); nothing "
            f"was installed. The candidate is in {work_dir}; RELEASE_REPLACE=1 installs it anyway"
        )
    return cmp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.release", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check-data", help="check that DATA_DIR is FER2013 in the Kaggle layout")
    c.add_argument("--data-dir", default=None)
    b = sub.add_parser("build", help="build, compare and install the default model from a trained model folder")
    b.add_argument("--trained", required=True, help="the trained model folder (with metrics.json)")
    b.add_argument("--data-dir", default=None)
    b.add_argument("--wild-dir", default=None, help="wild-faces photos (happy/, neutral/) to measure 'other' on")
    b.add_argument("--target", default=None, help="where to install (default: emolib/assets/default_model)")
    b.add_argument("--replace", action="store_true", help="install even if it does not reproduce the shipped model")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.command == "check-data":
            print(f"FER2013 found at {check_data_dir(args.data_dir)}")
        else:
            release(args.trained, args.data_dir, target_dir=args.target, wild_dir=args.wild_dir, replace=args.replace)
    except ReleaseError as e:
        print(f"release-model: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
