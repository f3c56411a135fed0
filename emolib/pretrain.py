"""Offline pretraining of the backbones on the classes outside the task, and the WEIGHTS decision.

Without a network there are no ImageNet weights, and a backbone trained from scratch on a
CPU budget trails the small CNN (README, results). The data has other faces, though: for
angry / sad / surprise, FER2013's training images of disgust, fear, happy and neutral
(16,713 faces, none of them a task image). Pretraining a backbone on those classes gives
the staged transfer-learning schedules (frozen base -> top layers -> ...) non-random
weights to start from, offline.

A pretraining run is an ordinary training run (`emolib.train.train`, so it checkpoints
every epoch and resumes): the backbone plus the usual head, on the other classes' training
faces, for the profile's `pretrain_*` budget (`config.Profile.pretrain_stages`). Only the
backbone's weights are kept, in a cache folder keyed by everything that made them:

    data/interim/pretrained/<model>-<key id>/
        backbone.weights.h5   the backbone's weights (Keras 3 format; loads into models.build_model)
        pretrained.json       written last: the key, classes, image counts, validation result, time
        run/                  the resumable training run while it is in progress (removed when done)

The key (`cache_key`) holds the pretraining classes and the task's classes, the fingerprint
of the pretraining faces (bytes, labels, splits), the backbone, the input size, the recipe
(stages, per-class cap, batch size, patience), the seed and a code version
(`PRETRAIN_VERSION`, bumped when this code changes what it produces, plus the Keras
version). Changing the data or the classes changes the key: the old folder is never used
for it. Faces whose bytes are also a task test image are left out (FER2013 holds such
copies under other labels).

WEIGHTS (`resolve_weights`): 'imagenet', 'none', a weights file, 'disjoint' (pretrained here)
or 'auto': ImageNet if the network allows, else 'disjoint' if the data has other classes,
else random init. Every fallback is a `models.WeightsFallbackWarning` and is recorded in
`info['weights_notes']`, so the model card says what happened; `info['weights_used']` names
the source, e.g. 'fer2013-disjoint:disgust,fear,happy,neutral (cache key vgg16-3f2a...)'.
With CLASSES=all nothing is left to pretrain on: 'disjoint' and 'auto' fall back to random
init with a warning. A pretraining that did not beat guessing on its validation split
(`pretraining_learned`) is not used by 'auto' either (random init, with a warning that says
so); 'disjoint' uses it as asked and warns.

Command line (the Makefile's pretraining step, one file target per backbone):

    python -m emolib.pretrain --model vgg16 --profile quick --classes angry,sad,surprise \\
        --data-dir data/raw/fer2013 --seed 42 --weights auto --out reports/pretrained/vgg16.json
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config
from . import data as data_mod
from .config import RunConfig

__all__ = [
    "PRETRAIN_VERSION",
    "DEFAULT_CACHE_DIR",
    "BACKBONE_FILE",
    "INFO_FILE",
    "PretrainedBackbone",
    "WeightsChoice",
    "NothingToPretrainOn",
    "cache_key",
    "key_id",
    "pretrain_index",
    "ensure_pretrained",
    "resolve_weights",
    "build_model_for_task",
    "source_label",
    "pretraining_learned",
]

PRETRAIN_VERSION = 5  # bump when this module changes what a pretrained backbone is
# 2: no early stopping (the cosine budget runs to its end); VGG16 at a tenth of the learning rate
# 3: seeded with op determinism before the model is built (v2's initial weights were not seeded)
# 4: the backbone pretrains under a linear head (models.build_pretraining_model), not the task head
DEFAULT_CACHE_DIR = Path("data/interim/pretrained")
BACKBONE_FILE = "backbone.weights.h5"
LSUV_FACES = 256  # faces the LSUV init of a backbone without BatchNorm measures its layers on
KERAS_INIT = "keras default"  # pretrained.json's "init" of a backbone with BatchNorm (and of entries before v5)
INFO_FILE = "pretrained.json"
RUN_DIR = "run"
SOURCE_PREFIX = "fer2013-disjoint"  # weights_used of a backbone pretrained here
# A pretrained backbone counts as having learned something only if its validation macro-F1 on the K
# pretraining classes beats 1/K by this margin (guessing scores at most about 1/K: always one class
# or a random guess both stay below it). WEIGHTS=auto does not start from a backbone that did not learn
# (the quick run's first VGG16 and ResNet50 pretraining ended at 0.25 and 0.22 on 4 classes).
MIN_PRETRAIN_MARGIN = 0.05


class NothingToPretrainOn(ValueError):
    """The data has no class outside the task (e.g. CLASSES=all)."""


@dataclass
class PretrainedBackbone:
    """A cached pretrained backbone: where its weights are and what made them."""

    path: Path  # backbone.weights.h5
    key: dict
    key_id: str
    classes: tuple[str, ...]
    info: dict
    reused: bool  # True: found in the cache, nothing trained

    @property
    def label(self) -> str:
        return source_label(self.classes, self.key_id)


@dataclass
class WeightsChoice:
    """What a backbone starts from: `weights` is the argument for `models.build_model_with_info`."""

    requested: str
    kind: str  # imagenet | disjoint | none | file
    weights: str  # 'imagenet', 'none' or a file path
    label: str | None = None  # weights_used to record instead of the file path
    notes: list[str] = field(default_factory=list)  # fallbacks, in words (go into the model card)
    pretrained: PretrainedBackbone | None = None

    def source(self) -> dict:
        """The card's `weights_source`: kind, label, and for a pretrained backbone its cache entry."""
        out = {
            "kind": self.kind,
            "requested": self.requested,
            "weights": self.label or self.weights,
            "notes": list(self.notes),
        }
        if self.pretrained is not None:
            p = self.pretrained
            out.update(
                {
                    "cache_key": p.key_id,
                    "file": str(p.path),
                    "classes": list(p.classes),
                    "reused_from_cache": p.reused,
                    "key": p.key,
                    "pretrain_val_macro_f1": p.info.get("val_macro_f1"),
                    "pretrain_init": p.info.get("init", KERAS_INIT),
                    "pretrain_images": p.info.get("images"),
                }
            )
        return out


def source_label(classes, key_id: str) -> str:
    """'fer2013-disjoint:disgust,fear,happy,neutral (cache key vgg16-3f2a...)'."""
    return f"{SOURCE_PREFIX}:{','.join(classes)} (cache key {key_id})"


# ------------------------------------------------------------------------------ the cache key
def _code_version() -> str:
    import keras

    return f"emolib.pretrain v{PRETRAIN_VERSION}, keras {keras.__version__}"


def cache_key(cfg: RunConfig, model_name: str, classes, fingerprint: str) -> dict:
    """Everything a pretrained backbone depends on; a different key means a different cache folder."""
    from .models import BACKBONES

    profile = cfg.profile.for_model(model_name)
    return {
        "model": model_name,
        "backbone": BACKBONES[model_name][0],
        "input_size": profile.image_size(model_name),
        "pretrain_classes": list(classes),
        "task_classes": list(cfg.classes),
        "data_fingerprint": fingerprint,
        "recipe": profile.pretrain_recipe(),
        "val_fraction": cfg.val_fraction,
        "seed": cfg.seed,
        "code": _code_version(),
    }


def key_id(key: dict) -> str:
    """'<model>-<12 hex digits>': the cache folder's name."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{key['model']}-{digest}"


def pretrain_index(cfg: RunConfig, model_name: str, data_dir) -> tuple:
    """(frame, classes, fingerprint, n_excluded): the pretraining faces, split train/val, subsampled.

    Only the data's training split of the classes outside the task is used; faces whose bytes are
    also a task test image are dropped; validation (for early stopping) is carved from them.
    Raises NothingToPretrainOn when every class of the data is in the task.
    """
    classes = data_mod.other_classes(data_dir, cfg.classes)
    if not classes:
        raise NothingToPretrainOn(
            f"every class of {data_dir} is in the task ({', '.join(cfg.classes)}): "
            "there are no other classes to pretrain on"
        )
    task, _ = data_mod.discover(data_dir, cfg.classes, seed=cfg.seed)
    task_test = set(data_mod.content_hashes(task[task["split"] == "test"]))
    frame, excluded = data_mod.train_faces_of(data_dir, classes, exclude_hashes=task_test, seed=cfg.seed)
    frame = data_mod.split_validation(frame, cfg.val_fraction, cfg.seed)
    fingerprint = data_mod.fingerprint(frame, frame["md5"])
    profile = cfg.profile.for_model(model_name)
    frame = data_mod.subsample(frame, "train", profile.pretrain_max_train_per_class, cfg.seed)
    frame = data_mod.subsample(frame, "val", profile.max_val_per_class, cfg.seed).reset_index(drop=True)
    return frame, classes, fingerprint, excluded


def _read_entry(folder: Path, key: dict) -> dict | None:
    info_path, weights = folder / INFO_FILE, folder / BACKBONE_FILE
    if not (info_path.is_file() and weights.is_file()):
        return None
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if info.get("key") == json.loads(json.dumps(key)) else None


# ------------------------------------------------------------------------------ pretraining
def _epoch_bar(total: int, desc: str, enabled: bool):
    """A Keras callback showing a tqdm bar over the pretraining epochs (Keras' own output is off)."""
    import keras
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total, desc=desc, unit="epoch", disable=not enabled)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.n = epoch + 1  # a resumed run starts past 0
            self.bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("loss", "val_macro_f1") if k in logs})
            self.bar.refresh()

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


def ensure_pretrained(
    cfg: RunConfig,
    model_name: str,
    data_dir,
    *,
    cache_dir=DEFAULT_CACHE_DIR,
    progress: bool = True,
    verbose: bool = True,
) -> PretrainedBackbone:
    """The pretrained backbone for this run, from the cache or trained now (resuming an interrupted run).

    cfg: the task's RunConfig (its profile gives the recipe; per-model overrides are applied here).
    data_dir: the resolved data folder. Raises NothingToPretrainOn when the data has no other class.
    """
    from . import models, pipeline, train
    from .runinfo import atomic_path, atomic_write_json, library_versions, now_iso

    data_dir = Path(data_dir)
    frame, classes, fingerprint, excluded = pretrain_index(cfg, model_name, data_dir)
    key = cache_key(cfg, model_name, classes, fingerprint)
    kid = key_id(key)
    folder = Path(cache_dir) / kid
    info = _read_entry(folder, key)
    if info is not None:
        if verbose:
            print(f"[pretrain] {model_name}: reusing the backbone pretrained on {', '.join(classes)} ({folder})")
        return PretrainedBackbone(folder / BACKBONE_FILE, key, kid, tuple(classes), info, reused=True)

    profile = cfg.profile.for_model(model_name)
    size = profile.image_size(model_name)
    stages = profile.pretrain_stages()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "key.json", key)  # what the folder is for, readable while it trains
    if verbose:
        counts = frame[frame["split"] == "train"]["label"].value_counts().reindex(list(classes)).fillna(0)
        print(
            f"[pretrain] {model_name}: pretraining the {key['backbone']} backbone at {size}x{size} on "
            f"{', '.join(f'{c} {int(n):,}' for c, n in counts.items())} training faces "
            f"({excluded} left out: also task test images), {stages[0].epochs} epoch(s) -> {folder}",
            flush=True,
        )
    t0 = time.perf_counter()
    # Seeded, with op determinism, before the model is built: its initial weights come from the seed
    # too, so a pretraining gives the same backbone run after run (v2 built the model unseeded: the
    # same cache key gave VGG16 validation macro-F1 0.175 in one run and 0.279 in another).
    train.set_seed(cfg.seed, deterministic=True)
    pixels, ok, _problems = data_mod.load_images(frame, size, progress=progress)
    frame, pixels = frame[ok].reset_index(drop=True), pixels[ok]
    frame["y"] = frame["label"].map({c: i for i, c in enumerate(classes)}).astype("int32")
    tr, va = (frame["split"] == "train").to_numpy(), (frame["split"] == "val").to_numpy()
    train_ds = pipeline.make_dataset(
        pixels[tr],
        frame.loc[tr, "y"].to_numpy(),
        image_size=size,
        batch_size=profile.batch_size,
        training=True,
        augment=True,
        seed=cfg.seed,
    )
    val_ds = pipeline.make_dataset(
        pixels[va], frame.loc[va, "y"].to_numpy(), image_size=size, batch_size=profile.batch_size
    )
    model = models.build_pretraining_model(model_name, (size, size, 1), n_classes=len(classes))
    # A backbone without BatchNorm (VGG16) did not learn from Keras' default init on the quick budget
    # (validation macro-F1 0.191 on 4 classes); scaled layer by layer on real faces it does (README).
    init = KERAS_INIT
    if not models.has_batchnorm(model):
        train_rows = np.flatnonzero(tr)  # index the faces, rather than copy the training pixels again
        picked = np.sort(np.random.default_rng(cfg.seed).permutation(len(train_rows))[:LSUV_FACES])
        models.lsuv_init(model, pixels[train_rows[picked]], seed=cfg.seed)
        init = f"LSUV (orthogonal, unit variance per convolution) on {len(picked)} training faces"
    bar = _epoch_bar(sum(s.epochs for s in stages), f"pretrain {model_name}", progress)
    result = train.train(
        model,
        train_ds,
        val_ds,
        stages,
        folder / RUN_DIR,
        class_weight=data_mod.class_weights(frame.loc[tr, "label"], classes),
        # No early stopping: the cosine budget runs to its end. Stopping on a from-scratch backbone's noisy
        # validation score ended the first quick MobileNetV2 pretraining at epoch 9 of 15, before the rate
        # had decayed; the best validation epoch's weights are still the ones kept.
        patience=max(s.epochs for s in stages) + 1,
        seed=cfg.seed,
        verbose=0,
        callbacks=[bar],
    )
    weights_path = folder / BACKBONE_FILE
    with atomic_path(weights_path, suffix=".weights.h5") as tmp:
        models.backbone_of(result.model).save_weights(str(tmp))
    best = [r.get("best_val_macro_f1") for r in result.epochs_per_stage]
    info = {
        "key": key,
        "key_id": kid,
        "label": source_label(classes, kid),
        "classes": list(classes),
        "images": {"train": int(tr.sum()), "val": int(va.sum()), "left_out_as_task_test_copies": int(excluded)},
        "init": init,
        "epochs_per_stage": result.epochs_per_stage,
        "val_macro_f1": best[-1] if best else None,
        "wall_time_s": round(result.wall_time_s, 1),
        "total_time_s": round(time.perf_counter() - t0, 1),
        "data_dir": str(data_dir),
        "created": now_iso(),
        "versions": library_versions(),
    }
    atomic_write_json(folder / INFO_FILE, info)  # last: marks the entry complete
    shutil.rmtree(folder / RUN_DIR, ignore_errors=True)  # the full model and checkpoints are not needed again
    if verbose:
        print(
            f"[pretrain] {model_name}: done in {info['total_time_s']:.0f} s, validation macro-F1 on the "
            f"pretraining classes {info['val_macro_f1']}",
            flush=True,
        )
    return PretrainedBackbone(weights_path, key, kid, tuple(classes), info, reused=False)


# ------------------------------------------------------------------------------ the WEIGHTS decision
def pretraining_learned(info: dict) -> tuple[bool, str]:
    """(learned, why): did a pretraining run (its pretrained.json `info`) beat guessing on validation?"""
    k = len(info.get("classes") or ())
    score = info.get("val_macro_f1")
    if not k or score is None:
        return False, "the pretraining recorded no validation macro-F1"
    bar = 1.0 / k + MIN_PRETRAIN_MARGIN
    verdict = "learned" if score >= bar else "did NOT learn"
    why = (
        f"pretraining on {', '.join(info['classes'])} {verdict} within its budget "
        f"(validation macro-F1 {score:.3f}; guessing among {k} classes scores at most ~{1 / k:.3f}, "
        f"the bar is {bar:.3f})"
    )
    return score >= bar, why


def _imagenet_error(model_name: str, image_size: int) -> str | None:
    """None when the ImageNet weights can be had (cache or network), else why not (a seam for tests)."""
    from . import models

    return models.imagenet_unavailable(model_name, image_size)


def _fallback(choice: WeightsChoice, text: str) -> None:
    from .models import WeightsFallbackWarning

    warnings.warn(text, WeightsFallbackWarning, stacklevel=3)
    choice.notes.append(text)


def resolve_weights(
    cfg: RunConfig,
    model_name: str,
    data_dir,
    *,
    cache_dir=DEFAULT_CACHE_DIR,
    progress: bool = True,
    verbose: bool = True,
) -> WeightsChoice:
    """Decide what `model_name` starts from under WEIGHTS=cfg.weights (see the module docstring).

    For 'disjoint' (and 'auto' offline) the backbone is pretrained now when the cache lacks it (the
    Makefile's pretraining step normally did it before). The CNNs always start from random init.
    """
    requested = "auto" if cfg.weights is None else str(cfg.weights)
    key = requested.strip().lower()
    if model_name in config.CUSTOM_MODELS or key in ("none", "random", ""):
        return WeightsChoice(requested, "none", "none")
    if key == "imagenet":
        return WeightsChoice(requested, "imagenet", "imagenet")
    if key not in ("auto", "disjoint"):
        return WeightsChoice(requested, "file", requested)
    choice = WeightsChoice(requested, "none", "none")
    if key == "auto":
        size = cfg.profile.for_model(model_name).image_size(model_name)
        error = _imagenet_error(model_name, size)
        if error is None:
            return WeightsChoice(requested, "imagenet", "imagenet")
        _fallback(
            choice,
            f"weights='auto': ImageNet weights unavailable ({error.split('. ')[0]}); "
            "trying a backbone pretrained offline on the data's other classes",
        )
    try:
        pre = ensure_pretrained(cfg, model_name, data_dir, cache_dir=cache_dir, progress=progress, verbose=verbose)
    except NothingToPretrainOn as e:
        _fallback(
            choice,
            f"weights={requested!r}: {e}; the {model_name} backbone starts from RANDOM INIT "
            "(trained end to end from scratch)",
        )
        return choice
    learned, why = pretraining_learned(pre.info)
    if not learned and key == "auto":
        # a backbone that learned nothing is not a transfer source: saying it started from it would be fake
        _fallback(
            choice,
            f"weights='auto': {why} (cache key {pre.key_id}); the {model_name} backbone starts from "
            "RANDOM INIT (trained end to end from scratch)",
        )
        return choice
    if not learned:
        _fallback(choice, f"weights='disjoint': {why}; used as asked (WEIGHTS=auto would start from random init)")
    choice.kind, choice.weights, choice.label, choice.pretrained = "disjoint", str(pre.path), pre.label, pre
    return choice


def build_model_for_task(
    cfg: RunConfig,
    model_name: str,
    data_dir,
    *,
    input_shape,
    n_classes: int,
    cache_dir=DEFAULT_CACHE_DIR,
    progress: bool = True,
):
    """`models.build_model_with_info` after `resolve_weights`; info also holds weights_source and
    weights_notes (what the model card records about where the backbone's weights came from)."""
    from . import models

    choice = resolve_weights(cfg, model_name, data_dir, cache_dir=cache_dir, progress=progress)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", models.WeightsFallbackWarning)  # decided (and warned) above
        model, info = models.build_model_with_info(
            model_name, input_shape=input_shape, n_classes=n_classes, weights=choice.weights, weights_label=choice.label
        )
    info["weights_requested"] = choice.requested
    info["weights_source"] = choice.source()
    info["weights_notes"] = list(choice.notes)
    return model, info


# ------------------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    """The Makefile's pretraining step: make sure the backbone is pretrained (if this run needs it) and write
    a small JSON record of the decision to --out (always rewritten: it is make's file target)."""
    import argparse

    from .runinfo import atomic_write_json, now_iso

    parser = argparse.ArgumentParser(prog="python -m emolib.pretrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=config.MODEL_NAMES)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--classes", default=",".join(config.DEFAULT_CLASSES))
    parser.add_argument("--data-dir", default=config.DEFAULT_DATA_DIR)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--weights", default="auto")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    parser.add_argument("--out", required=True, help="where to write the record (JSON)")
    args = parser.parse_args(argv)
    try:
        cfg = config.resolve(
            profile=args.profile, classes=args.classes, data_dir=args.data_dir, seed=args.seed, weights=args.weights
        )
        data_dir = data_mod.resolve_data_dir(cfg.data_dir, profile=cfg.profile, seed=cfg.seed)
    except (ValueError, data_mod.DataError) as e:
        parser.exit(2, f"error: {e}\n")
    from .models import WeightsFallbackWarning

    with warnings.catch_warnings(record=True) as caught:
        # Only the weights decision is always shown; other warnings keep their usual filters (a
        # library's DeprecationWarning raised per batch would otherwise print thousands of times).
        warnings.simplefilter("always", WeightsFallbackWarning)
        choice = resolve_weights(cfg, args.model, data_dir, cache_dir=args.cache_dir)
    for w in caught:
        if issubclass(w.category, WeightsFallbackWarning):
            print(f"[pretrain] WARNING: {w.message}", flush=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    record = {"model": args.model, "weights_requested": args.weights, "created": now_iso(), **choice.source()}
    record.pop("key", None)
    atomic_write_json(args.out, record)
    what = {
        "disjoint": f"pretrained backbone {choice.label}",
        "imagenet": "ImageNet weights: nothing to pretrain",
        "none": "random init" + (" (see the warning above)" if choice.notes else ": nothing to pretrain"),
        "file": f"weights file {choice.weights}: nothing to pretrain",
    }
    print(f"[pretrain] {args.model}: {what[choice.kind]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
