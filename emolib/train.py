"""Staged training with per-epoch checkpoints, resume, and a full-validation macro-F1.

`train(model, train_ds, val_ds, stages, out_dir)` runs the stages of a schedule
(`config.Profile.schedule(name)`) in order. Per stage: `models.apply_stage`, compile (Adam(lr),
cross-entropy: sparse, or categorical for the soft targets of `pipeline.mixup`; accuracy), fit with
class weights, `MacroF1Callback` (one pass over the whole validation set at each epoch end, logged as
'val_loss', 'val_accuracy' and 'val_macro_f1'), EarlyStopping (restore_best_weights) and ReduceLROnPlateau on
`monitor`.

out_dir layout:
    history.csv              one row per epoch, all stages ('stage', 'epoch', 'epoch_global', 'lr', metrics)
    checkpoint/state.json    progress: status 'running' | 'done', stage index, epochs done in
                             the stage, early-stopping / LR state, history, per-stage summary
    checkpoint/*.weights.h5  model weights of the last epoch and of the stage's best epoch
    model.keras              the final model (written when every stage has finished)

Every file is written atomically (temporary file in the same folder, then os.replace);
the weights alternate between two slots and state.json names the slot that matches it,
so an interrupt at any moment leaves a consistent checkpoint.

Resume: call `train` again with the same out_dir (and the same stages) and a freshly
built model of the same architecture. Finished stages are skipped; the current stage
continues at the next epoch (`initial_epoch`) from the saved weights, with the saved
learning rate and the saved early-stopping / ReduceLROnPlateau counters and best
weights. What is NOT restored: the Adam moments (the optimizer restarts, which is why
the checkpoint is called optimizer-independent), the exact shuffling / augmentation /
dropout random streams, so a resumed run is close to, not bit-identical with, an
uninterrupted one. A finished out_dir (state 'done' and model.keras present) is not
trained again: `train` returns the saved result with `skipped=True`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .config import Stage
from .metrics import macro_f1
from .models import apply_stage
from .runinfo import atomic_path
from .runinfo import atomic_write_text as _atomic_write_text

__all__ = [
    "TrainResult",
    "MacroF1Callback",
    "train",
    "set_seed",
    "distribution_strategy",
    "use_mixed_precision_if_gpu",
    "device_description",
    "monitor_mode",
    "load_state",
    "cosine_lr",
    "loss_for",
]

STATE_VERSION = 1
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.keras"


# --------------------------------------------------------------------------- helpers
def set_seed(seed: int = 42, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow (`keras.utils.set_random_seed`).

    deterministic=True also calls `tf.config.experimental.enable_op_determinism()`:
    repeated runs on the same machine then give the same numbers, at some cost in
    speed (some kernels run slower or single-threaded). It is process-wide and cannot
    be switched off again. On a GPU a few ops have no deterministic kernel (TensorFlow
    raises for them) and results still differ between GPU models, driver / cuDNN
    versions, and between CPU and GPU.
    """
    os.environ["PYTHONHASHSEED"] = str(int(seed))  # only affects subprocesses
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def distribution_strategy():
    """MirroredStrategy when more than one GPU is visible, else the default strategy.

    Build and train the model inside `with strategy.scope():` (or pass
    `strategy=` to `train`, which compiles inside it).
    """
    import tensorflow as tf

    if len(_gpus()) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def device_description() -> str:
    """Where training runs, in words, for the model card ('GPU x1: ...' or 'CPU (n cores)')."""
    gpus = _gpus()
    if gpus:
        import tensorflow as tf

        names = []
        for g in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(g).get("device_name", g.name))
            except Exception:  # details are best-effort
                names.append(g.name)
        return f"GPU x{len(gpus)}: {', '.join(names)}"
    return f"CPU ({os.cpu_count()} cores)"


def use_mixed_precision_if_gpu() -> bool:
    """Set the global 'mixed_float16' policy when a GPU is visible; True if it did.

    Call it before building the model. The models' output layers are float32 (and
    the backbone preprocessing computes in float32), so the softmax stays stable.
    """
    if _gpus():
        keras.mixed_precision.set_global_policy("mixed_float16")
        return True
    return False


def monitor_mode(monitor: str) -> str:
    """'max' for scores (f1, accuracy, auc, precision, recall), 'min' for losses."""
    m = monitor.lower()
    return "max" if any(k in m for k in ("f1", "acc", "auc", "precision", "recall")) else "min"


class MacroF1Callback(keras.callbacks.Callback):
    """At each epoch end, predict the whole `val_ds` once and log its macro-F1 as `logs[name]`
    (`emolib.metrics.macro_f1` over the model's output classes).

    With `loss_and_accuracy` (what `train` uses) the same pass also logs 'val_loss' and
    'val_accuracy' as Keras' own validation would (Keras' sparse cross-entropy on all outputs plus
    the regularisation penalties; top-1 accuracy over all outputs), so `fit` needs no
    `validation_data`: that second pass over the validation set cost 1.3 s of every 34 s
    `deepcnn` epoch on 2 cores.

    Must come before the callbacks that read the value (EarlyStopping, ...): Keras
    hands the same logs dict to every callback in order. `n_classes`: score only the
    first n outputs (a model trained with auxiliary classes is judged on the task's
    classes: the prediction is the argmax over them, as the saved task model gives it).
    """

    def __init__(
        self, val_ds, name: str = "val_macro_f1", n_classes: int | None = None, loss_and_accuracy: bool = False
    ):
        super().__init__()
        self.val_ds = val_ds
        self.name = name
        self.n_classes = n_classes
        self.loss_and_accuracy = loss_and_accuracy

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        y_true, y_pred, nll, hits = [], [], [], []
        for batch in self.val_ds:
            x, y = batch[0], batch[1]
            p_all = np.asarray(self.model.predict_on_batch(x), dtype=np.float64)
            p = p_all[..., : self.n_classes] if self.n_classes else p_all
            y = np.asarray(y)
            if y.ndim > 1 and y.shape[-1] > 1:  # one-hot labels
                y = y.argmax(-1)
            y = y.reshape(-1).astype(np.int64)
            y_true.append(y)
            y_pred.append(p.argmax(-1).reshape(-1))
            if self.loss_and_accuracy:
                flat = p_all.reshape(len(y), -1)
                nll.append(keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, flat)))
                hits.append(flat.argmax(-1) == y)
        if not y_true:
            return
        if self.loss_and_accuracy:
            penalty = sum(float(keras.ops.convert_to_numpy(w)) for w in self.model.losses)
            logs["val_loss"] = float(np.concatenate(nll).mean()) + penalty
            logs["val_accuracy"] = float(np.concatenate(hits).mean())
        logs[self.name] = macro_f1(
            np.concatenate(y_true), np.concatenate(y_pred), int(self.n_classes or self.model.outputs[0].shape[-1])
        )


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    def __init__(self, *args, initial_state: dict | None = None, initial_best_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._initial_state = initial_state
        self._initial_best_weights = initial_best_weights

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        s = self._initial_state
        if s:
            self.best = s.get("best")
            self.wait = int(s.get("wait", 0))
            self.best_epoch = int(s.get("best_epoch", 0))
            self.best_weights = self._initial_best_weights

    def get_state(self) -> dict:
        return {"best": _py(self.best), "wait": int(self.wait), "best_epoch": int(self.best_epoch)}


class _ResumableReduceLR(keras.callbacks.ReduceLROnPlateau):
    def __init__(self, *args, initial_state: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._initial_state = initial_state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        s = self._initial_state
        if s:
            if s.get("best") is not None:
                self.best = s["best"]
            self.wait = int(s.get("wait", 0))
            self.cooldown_counter = int(s.get("cooldown_counter", 0))

    def get_state(self) -> dict:
        best = None if self.best in (None, np.inf, -np.inf) else _py(self.best)
        return {"best": best, "wait": int(self.wait), "cooldown_counter": int(self.cooldown_counter)}


def _py(v):
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return None if math.isinf(f) else f


def _current_lr(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


# --------------------------------------------------------------------------- files
def _atomic_save_weights(model, path: Path) -> None:
    with atomic_path(path, suffix=".weights.h5") as tmp:  # Keras needs the .weights.h5 ending
        model.save_weights(str(tmp))


def save_model_atomically(model, path: Path) -> None:
    """model.save to a temporary file beside `path`, then renamed over it: never a half-written model."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(str(tmp))


def load_state(out_dir) -> dict | None:
    """The checkpoint state of `out_dir`, or None."""
    p = Path(out_dir) / CHECKPOINT_DIR / STATE_FILE
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def _write_history(out_dir: Path, rows: list[dict]) -> pd.DataFrame:
    df = _history_frame(rows)
    _atomic_write_text(out_dir / HISTORY_FILE, df.to_csv(index=False))
    return df


def _history_frame(rows: list[dict]) -> pd.DataFrame:
    front = ["stage", "stage_index", "epoch", "epoch_global", "lr"]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=front)
    return df[[c for c in front if c in df.columns] + [c for c in df.columns if c not in front]]


def _schedule_signature(stages: Sequence[Stage]) -> list[list]:
    # 'plateau' (the default) is left out so checkpoints written before schedules existed still resume
    return [
        [s.name, s.trainable, int(s.epochs), float(s.learning_rate)]
        + ([s.lr_schedule] if s.lr_schedule != "plateau" else [])
        for s in stages
    ]


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of epoch `epoch` (0-based) of `epochs`: base_lr * (1 + cos(pi * epoch / epochs)) / 2.

    Starts at base_lr and ends near 0 (the last epoch runs at base_lr * (1 - cos(pi/epochs)) / 2).
    A function of the epoch only, so a resumed stage continues on the same curve.
    """
    return float(base_lr) * 0.5 * (1.0 + math.cos(math.pi * int(epoch) / max(int(epochs), 1)))


class _CosineLR(keras.callbacks.Callback):
    """Sets the optimizer's learning rate to `cosine_lr` at the start of every epoch."""

    def __init__(self, base_lr: float, epochs: int):
        super().__init__()
        self.base_lr, self.epochs = float(base_lr), int(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(cosine_lr(self.base_lr, epoch, self.epochs))

    def get_state(self) -> dict:  # stateless: the epoch number is enough to resume
        return {}


# --------------------------------------------------------------------------- train
@dataclass
class TrainResult:
    model: keras.Model
    history: pd.DataFrame
    epochs_per_stage: list[dict]
    wall_time_s: float
    resumed: bool
    skipped: bool = False  # True: out_dir had finished before; nothing was trained
    out_dir: Path | None = None
    state: dict = field(default_factory=dict, repr=False)


class _Checkpointer(keras.callbacks.Callback):
    """Records history and writes the checkpoint after every epoch (runs after ES / LR)."""

    def __init__(self, run: _Run, stage_index: int, stage: Stage, es, rlr):
        super().__init__()
        self.run, self.stage_index, self.stage, self.es, self.rlr = run, stage_index, stage, es, rlr
        self._lr_begin = None

    def on_epoch_begin(self, epoch, logs=None):
        self._lr_begin = _current_lr(self.model)

    def on_epoch_end(self, epoch, logs=None):
        run = self.run
        row = {
            "stage": self.stage.name,
            "stage_index": self.stage_index,
            "epoch": epoch + 1,
            "epoch_global": len(run.history) + 1,
            "lr": self._lr_begin,
        }
        for k, v in (logs or {}).items():
            if k not in row and k != "learning_rate":  # 'lr' is the rate the epoch ran with
                row[k] = _py(v)
        run.history.append(row)
        slot = "a" if run.state.get("last_weights", "").startswith("last_b") else "b"
        last = f"last_{slot}.weights.h5"
        _atomic_save_weights(self.model, run.ckpt / last)
        run.state["last_weights"] = last
        if self.es.best_epoch == epoch:  # this epoch is the stage's best so far
            slot = "a" if run.state.get("best_weights", "").startswith("best_b") else "b"
            best = f"best_{slot}.weights.h5"
            _atomic_save_weights(self.model, run.ckpt / best)
            run.state["best_weights"] = best
        run.state.update(
            {
                "stage_index": self.stage_index,
                "epochs_done_in_stage": epoch + 1,
                "stage_finished": False,
                "lr": _current_lr(self.model),
                "early_stopping": {**self.es.get_state(), "stopped": bool(self.model.stop_training)},
                "reduce_lr": self.rlr.get_state(),
            }
        )
        run.save()


class _Run:
    def __init__(self, out_dir: Path, state: dict, t0: float):
        self.out_dir = out_dir
        self.ckpt = out_dir / CHECKPOINT_DIR
        self.state = state
        self.history: list[dict] = state.setdefault("history", [])
        self.t0 = t0
        self.prior_wall = float(state.get("wall_time_s", 0.0))

    def wall(self) -> float:
        return self.prior_wall + (time.perf_counter() - self.t0)

    def save(self) -> None:
        self.state["history"] = self.history
        self.state["wall_time_s"] = self.wall()
        self.state["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _atomic_write_text(self.ckpt / STATE_FILE, json.dumps(self.state, indent=1, default=_py))
        _write_history(self.out_dir, self.history)

    def forget_weights(self, *keys: str) -> list[Path]:
        """Drop weight files from the state; returns their paths, to delete after `save`."""
        return [self.ckpt / name for name in (self.state.pop(k, None) for k in keys) if name]


def loss_for(train_ds):
    """The cross-entropy that fits the dataset's labels: categorical for soft / one-hot targets
    (rank 2, e.g. `pipeline.mixup`), sparse for class indices."""
    spec = getattr(train_ds, "element_spec", None)
    labels = spec[1] if isinstance(spec, tuple) and len(spec) > 1 else None
    if labels is not None and labels.shape.rank == 2 and labels.shape[-1] != 1:
        return keras.losses.CategoricalCrossentropy()
    return keras.losses.SparseCategoricalCrossentropy()


def one_iterator(train_ds):
    """(data, steps_per_epoch) for `fit` to read the whole stage from one iterator.

    Given a dataset without `steps_per_epoch`, `fit` makes a new iterator over it at every epoch
    start, and on this project's 2-core VM the first batch of an epoch then now and then waited
    9-15 s (README, ablation). Repeating the dataset and telling `fit` the number of batches in
    one pass keeps a single iterator: every epoch still sees each training face once, reshuffled.
    A dataset of unknown or infinite length (or not a tf.data.Dataset) is passed through as it is.
    """
    import tensorflow as tf

    if not isinstance(train_ds, tf.data.Dataset):
        return train_ds, None
    batches = int(train_ds.cardinality())
    if batches <= 0:  # tf.data.UNKNOWN_CARDINALITY (-2), INFINITE_CARDINALITY (-1) or empty
        return train_ds, None
    return train_ds.repeat(), batches


def train(
    model,
    train_ds,
    val_ds,
    stages: Sequence[Stage],
    out_dir,
    class_weight=None,
    patience: int = 4,
    monitor: str = "val_macro_f1",
    seed: int = 42,
    verbose: int = 1,
    callbacks=(),
    strategy=None,
    task_outputs: int | None = None,
) -> TrainResult:
    """Run `stages` in order on `model`, checkpointing every epoch into out_dir; resumable.

    train_ds / val_ds: tf.data.Datasets of (x float32 (B,S,S,1) raw 0..255, y int32 (B,)).
    class_weight: {class index: weight} or None. patience: EarlyStopping patience
    (a stage with lr_schedule 'plateau': ReduceLROnPlateau, factor 0.5 after
    max(1, patience // 2) epochs; 'cosine': the rate follows `cosine_lr`). monitor: the
    metric both watch ('val_macro_f1' by default; mode max for scores, min for losses).
    seed: `keras.utils.set_random_seed(seed)` before training (call `set_seed(seed,
    deterministic=True)` yourself for op determinism). callbacks: extra Keras callbacks,
    run after the checkpoint of each epoch is written (they see 'val_macro_f1').
    strategy: a tf.distribute strategy to compile under (the model must have been built
    in its scope), e.g. `distribution_strategy()`.
    task_outputs: for a model trained with auxiliary classes (the task's classes are its
    first `task_outputs` outputs, val_ds holds task classes only): validation macro-F1 and
    early stopping look at the task's outputs only, and model.keras (and the returned
    model) is `models.task_output_model(model, task_outputs)`. Checkpoints keep the full model.

    Returns a TrainResult; see the module docstring for the out_dir layout and resume.
    """
    stages = tuple(stages)
    if not stages:
        raise ValueError("train: no stages given")
    out_dir = Path(out_dir)
    ckpt = out_dir / CHECKPOINT_DIR
    signature = _schedule_signature(stages)
    state = load_state(out_dir)
    if state is not None and state.get("schedule") != signature:
        raise ValueError(
            f"{out_dir} holds a checkpoint of a different schedule ({state.get('schedule')}) than the "
            f"one given ({signature}); use another out_dir or delete {ckpt}"
        )
    model_path = out_dir / MODEL_FILE
    if state is not None and state.get("status") == "done" and model_path.is_file():
        if verbose:
            print(f"[train] {out_dir}: already finished, loading {model_path} (nothing trained)")
        from . import models as _models  # noqa: F401 - registers the custom layers

        loaded = keras.models.load_model(model_path, safe_mode=True)
        hist_path = out_dir / HISTORY_FILE
        history = pd.read_csv(hist_path) if hist_path.is_file() else _history_frame(state.get("history", []))
        return TrainResult(
            loaded,
            history,
            list(state.get("epochs_per_stage", [])),
            float(state.get("wall_time_s", 0.0)),
            resumed=True,
            skipped=True,
            out_dir=out_dir,
            state=state,
        )

    if state is not None and state.get("status") == "done":
        print(f"[train] {out_dir}: marked done but {model_path} is missing - training again from scratch")
    ckpt.mkdir(parents=True, exist_ok=True)
    set_seed(seed, deterministic=False)
    t0 = time.perf_counter()
    resumed = False
    if (
        state is not None
        and state.get("status") == "running"
        and state.get("last_weights")
        and (ckpt / state["last_weights"]).is_file()
    ):
        model.load_weights(str(ckpt / state["last_weights"]))
        resumed = True
    else:
        state = {
            "version": STATE_VERSION,
            "status": "running",
            "schedule": signature,
            "monitor": monitor,
            "stage_index": 0,
            "epochs_done_in_stage": 0,
            "stage_finished": False,
            "history": [],
            "epochs_per_stage": [],
            "wall_time_s": 0.0,
        }
    run = _Run(out_dir, state, t0)
    mode = monitor_mode(monitor)
    class_weight = None if class_weight is None else {int(k): float(v) for k, v in dict(class_weight).items()}

    start_stage = int(state.get("stage_index", 0))
    for i in range(start_stage, len(stages)):
        stage = stages[i]
        continuing = resumed and i == start_stage and int(state.get("epochs_done_in_stage", 0)) > 0
        done_epochs = int(state.get("epochs_done_in_stage", 0)) if continuing else 0
        lr = float(state.get("lr", stage.learning_rate)) if continuing else float(stage.learning_rate)
        es_state = state.get("early_stopping") if continuing else None
        rlr_state = state.get("reduce_lr") if continuing else None
        if not continuing:
            for stale in run.forget_weights("best_weights"):
                stale.unlink(missing_ok=True)

        trainable, total = apply_stage(model, stage)
        print(
            f"[train] stage {i + 1}/{len(stages)} '{stage.name}' ({stage.trainable}): "
            f"{trainable:,} of {total:,} params trainable, {stage.epochs} epochs, lr {lr:g}"
            + (f" - resuming after epoch {done_epochs}" if continuing else ""),
            flush=True,
        )

        best_weights = None
        if continuing and state.get("best_weights") and (ckpt / state["best_weights"]).is_file():
            model.load_weights(str(ckpt / state["best_weights"]))
            best_weights = model.get_weights()
            model.load_weights(str(ckpt / state["last_weights"]))
        stopped = bool(continuing and (es_state or {}).get("stopped"))

        if stopped or done_epochs >= stage.epochs:
            if best_weights is not None:  # the stage had ended; EarlyStopping would have restored these
                model.set_weights(best_weights)
        else:
            scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
            with scope:
                model.compile(
                    optimizer=keras.optimizers.Adam(learning_rate=lr),
                    loss=loss_for(train_ds),
                    metrics=["accuracy"],
                )
            es = _ResumableEarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=int(patience),
                restore_best_weights=True,
                verbose=int(verbose > 0),
                initial_state=es_state,
                initial_best_weights=best_weights,
            )
            if stage.lr_schedule == "cosine":
                rlr = _CosineLR(stage.learning_rate, stage.epochs)
            else:
                rlr = _ResumableReduceLR(
                    monitor=monitor,
                    mode=mode,
                    factor=0.5,
                    patience=max(1, int(patience) // 2),
                    min_lr=1e-7,
                    verbose=int(verbose > 0),
                    initial_state=rlr_state,
                )
            cks = _Checkpointer(run, i, stage, es, rlr)
            fit_data, steps_per_epoch = one_iterator(train_ds)
            model.fit(
                fit_data,  # validation: MacroF1Callback's single pass logs val_loss/val_accuracy/val_macro_f1
                steps_per_epoch=steps_per_epoch,
                epochs=int(stage.epochs),
                initial_epoch=done_epochs,
                class_weight=class_weight,
                verbose=verbose,
                shuffle=False,
                callbacks=[
                    MacroF1Callback(val_ds, n_classes=task_outputs, loss_and_accuracy=True),
                    es,
                    rlr,
                    cks,
                    *callbacks,
                ],
            )

        rows = [r for r in run.history if r.get("stage_index") == i]
        best_metric = None
        if rows and monitor in rows[0]:
            vals = [r[monitor] for r in rows if r.get(monitor) is not None]
            if vals:
                best_metric = max(vals) if mode == "max" else min(vals)
        run.state["epochs_per_stage"] = [d for d in run.state.get("epochs_per_stage", []) if d["index"] != i]
        run.state["epochs_per_stage"].append(
            {
                "index": i,
                "name": stage.name,
                "trainable": stage.trainable,
                "epochs_run": len(rows),
                "epochs_planned": int(stage.epochs),
                "lr": float(stage.learning_rate),
                "trainable_params": int(trainable),
                "total_params": int(total),
                "early_stopped": len(rows) < int(stage.epochs),
                f"best_{monitor}": best_metric,
            }
        )
        # stage done: the (best-restored) weights become the start of the next stage
        last = "last_a.weights.h5" if run.state.get("last_weights", "").startswith("last_b") else "last_b.weights.h5"
        _atomic_save_weights(model, ckpt / last)
        stale = run.forget_weights("last_weights", "best_weights")
        run.state.update(
            {
                "last_weights": last,
                "stage_index": i + 1,
                "epochs_done_in_stage": 0,
                "stage_finished": True,
                "early_stopping": None,
                "reduce_lr": None,
            }
        )
        run.save()  # the state names the new file before the old ones go
        for path in stale:
            if path.name != last:
                path.unlink(missing_ok=True)

    if task_outputs:
        from .models import task_output_model

        model = task_output_model(model, task_outputs)
    save_model_atomically(model, model_path)
    run.forget_weights("last_weights", "best_weights")
    run.state["status"] = "done"
    run.save()  # model.keras exists before the state says 'done'
    for leftover in ckpt.glob("*.weights.h5"):
        leftover.unlink(missing_ok=True)
    return TrainResult(
        model,
        _history_frame(run.history),
        list(run.state["epochs_per_stage"]),
        run.wall(),
        resumed=resumed,
        skipped=False,
        out_dir=out_dir,
        state=run.state,
    )
