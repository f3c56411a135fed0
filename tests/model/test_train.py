"""emolib.train: smoke training, checkpoint/resume, skipping a finished run, helpers.

The data: 3 classes told apart by mean brightness, 32x32 raw 0..255 pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from emolib.config import Stage  # noqa: E402
from emolib.metrics import macro_f1  # noqa: E402
from emolib.models import backbone_of, build_model  # noqa: E402
from emolib.train import (  # noqa: E402
    MacroF1Callback,
    TrainResult,
    distribution_strategy,
    load_state,
    monitor_mode,
    train,
)

SIZE = 32


def _data(n_per_class: int, seed: int, batch: int = 8, shuffle: bool = True):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class).astype("int32")
    base = np.array([50.0, 128.0, 205.0])[y]
    x = base[:, None, None, None] + rng.normal(0, 12, (len(y), SIZE, SIZE, 1))
    x = np.clip(x, 0, 255).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed)
    return ds.batch(batch), x, y


@pytest.fixture(scope="module")
def datasets():
    # 18 steps/epoch: enough for the BatchNorm moving statistics (momentum 0.9) to settle
    train_ds, _, _ = _data(48, seed=1)
    val_ds, xv, yv = _data(12, seed=2, shuffle=False)
    return train_ds, val_ds, xv, yv


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, after_epochs: int):
        super().__init__()
        self.after = after_epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt("simulated interrupt")


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_macro_f1_and_monitor_mode():
    assert macro_f1([0, 1, 2, 2], [0, 1, 2, 2]) == 1.0
    assert macro_f1([0, 0, 1, 1], [0, 0, 0, 0]) == pytest.approx((2 / 3 + 0) / 2)
    assert monitor_mode("val_macro_f1") == "max" and monitor_mode("val_loss") == "min"
    assert distribution_strategy() is not None


def test_smoke_train_resume_and_skip(tmp_path, datasets):
    train_ds, val_ds, xv, yv = datasets
    out = tmp_path / "cnn"
    stages = (Stage("train", "all", 4, 3e-3),)

    keras.utils.set_random_seed(0)
    model = build_model("cnn", (SIZE, SIZE, 1), n_classes=3)
    with pytest.raises(KeyboardInterrupt):
        train(model, train_ds, val_ds, stages, out, patience=10, verbose=0, callbacks=[_Interrupt(2)])
    state = load_state(out)
    assert state["status"] == "running" and state["epochs_done_in_stage"] == 2
    assert len(state["history"]) == 2 and (out / "history.csv").is_file()
    assert not (out / "model.keras").exists()
    assert not list((out / "checkpoint").glob("*.tmp*"))

    seen = _Epochs()
    model2 = build_model("cnn", (SIZE, SIZE, 1), n_classes=3)  # fresh weights: resume must load them
    res = train(
        model2,
        train_ds,
        val_ds,
        stages,
        out,
        patience=10,
        verbose=0,
        callbacks=[seen],
        class_weight={0: 1.0, 1: 1.0, 2: 1.0},
    )
    assert isinstance(res, TrainResult) and res.resumed and not res.skipped
    assert seen.seen == [2, 3]  # continued at initial_epoch 2
    assert res.epochs_per_stage[0]["epochs_run"] == 4
    assert res.epochs_per_stage[0]["name"] == "train"
    h = res.history
    assert list(h["epoch_global"]) == [1, 2, 3, 4] and list(h["epoch"]) == [1, 2, 3, 4]
    assert {"stage", "val_macro_f1", "val_loss", "accuracy", "lr"} <= set(h.columns)
    csv = __import__("pandas").read_csv(out / "history.csv")
    assert len(csv) == 4 and list(csv["epoch_global"]) == [1, 2, 3, 4]

    # beats chance (1/3) on the validation set
    pred = res.model.predict(xv, verbose=0).argmax(1)
    assert (pred == yv).mean() > 0.5, h.to_string()
    assert h["val_macro_f1"].max() > 0.45

    assert (out / "model.keras").is_file()
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["status"] == "done"
    assert not list((out / "checkpoint").glob("*.weights.h5"))

    again = train(build_model("cnn", (SIZE, SIZE, 1), n_classes=3), train_ds, val_ds, stages, out, verbose=0)
    assert again.skipped and len(again.history) == 4
    np.testing.assert_allclose(again.model.predict(xv, verbose=0), res.model.predict(xv, verbose=0), atol=1e-6)

    with pytest.raises(ValueError, match="different schedule"):
        train(build_model("cnn", (SIZE, SIZE, 1)), train_ds, val_ds, (Stage("x", "all", 2, 1e-3),), out, verbose=0)


class _InterruptAtGlobal(keras.callbacks.Callback):
    """Raises after the n-th epoch counted over all fit() calls (stages)."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.count = n, 0

    def on_epoch_end(self, epoch, logs=None):
        self.count += 1
        if self.count == self.n:
            raise KeyboardInterrupt("simulated interrupt")


def test_resume_skips_finished_stage(tmp_path, datasets):
    train_ds, val_ds, _, _ = datasets
    small = train_ds.take(3)
    stages = (Stage("a", "all", 1, 1e-3), Stage("b", "all", 2, 1e-3))
    out = tmp_path / "two"
    with pytest.raises(KeyboardInterrupt):
        train(
            build_model("cnn", (SIZE, SIZE, 1)),
            small,
            val_ds,
            stages,
            out,
            verbose=0,
            callbacks=[_InterruptAtGlobal(2)],
        )
    state = load_state(out)
    assert state["stage_index"] == 1 and state["epochs_done_in_stage"] == 1
    seen = _Epochs()
    res = train(build_model("cnn", (SIZE, SIZE, 1)), small, val_ds, stages, out, verbose=0, callbacks=[seen])
    assert res.resumed and seen.seen == [1]  # stage 'a' skipped, 'b' continued at epoch 1
    assert list(res.history["stage"]) == ["a", "b", "b"]
    assert list(res.history["epoch_global"]) == [1, 2, 3] and list(res.history["epoch"]) == [1, 1, 2]
    assert [d["epochs_run"] for d in res.epochs_per_stage] == [1, 2]


def test_two_stage_backbone(tmp_path, datasets):
    train_ds, val_ds, _, _ = datasets
    model = build_model("mobilenetv2", (SIZE, SIZE, 1), n_classes=3)
    bb = backbone_of(model)
    bn = next(lyr for lyr in bb.layers if isinstance(lyr, keras.layers.BatchNormalization))
    moving_before = [np.array(bn.moving_mean), np.array(bn.moving_variance)]
    stages = (Stage("head", "head", 1, 1e-3), Stage("top30", "top:30", 1, 1e-4))
    res = train(model, train_ds.take(2), val_ds, stages, tmp_path / "mnv2", verbose=0, monitor="val_loss")
    assert [d["name"] for d in res.epochs_per_stage] == ["head", "top30"]
    head, top = res.epochs_per_stage
    assert head["trainable_params"] < top["trainable_params"] < top["total_params"]
    assert list(res.history["stage"]) == ["head", "top30"]
    assert list(res.history["epoch_global"]) == [1, 2]
    # the backbone's BatchNorm ran in inference mode: moving statistics untouched
    for a, b in zip(moving_before, (bn.moving_mean, bn.moving_variance)):
        np.testing.assert_array_equal(a, np.array(b))
    loaded = keras.models.load_model(tmp_path / "mnv2" / "model.keras", safe_mode=True)
    assert backbone_of(loaded) is not None


def test_macro_f1_callback_uses_full_validation_set(datasets):
    _, val_ds, xv, yv = datasets
    model = build_model("cnn", (SIZE, SIZE, 1), n_classes=3)
    cb = MacroF1Callback(val_ds)
    cb.set_model(model)
    logs = {}
    cb.on_epoch_end(0, logs)
    want = macro_f1(yv, model.predict(xv, verbose=0).argmax(1))
    assert logs["val_macro_f1"] == pytest.approx(want)


def test_one_validation_pass_logs_what_keras_validation_would(datasets):
    """train() fits without validation_data: the callback's single pass must log Keras' numbers."""
    train_ds, val_ds, _, _ = datasets
    model = build_model("cnn", (SIZE, SIZE, 1), n_classes=3, l2=1e-2)  # a visible L2 penalty
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    model.fit(train_ds.take(2), epochs=1, verbose=0)  # BatchNorm statistics away from their start
    assert sum(float(keras.ops.convert_to_numpy(w)) for w in model.losses) > 0.01
    cb = MacroF1Callback(val_ds, loss_and_accuracy=True)
    cb.set_model(model)
    logs = {}
    cb.on_epoch_end(0, logs)
    want = model.evaluate(val_ds, verbose=0, return_dict=True)
    assert logs["val_loss"] == pytest.approx(want["loss"], rel=1e-5)
    assert logs["val_accuracy"] == pytest.approx(want["accuracy"], abs=1e-6)
    assert "val_macro_f1" in logs
    plain = {}
    only_f1 = MacroF1Callback(val_ds)
    only_f1.set_model(model)
    only_f1.on_epoch_end(0, plain)
    assert set(plain) == {"val_macro_f1"} and plain["val_macro_f1"] == logs["val_macro_f1"]


def test_cosine_lr_curve():
    from emolib.train import cosine_lr

    rates = [cosine_lr(1e-3, e, 40) for e in range(40)]
    assert rates[0] == pytest.approx(1e-3) and rates[20] == pytest.approx(5e-4)
    assert all(a > b for a, b in zip(rates, rates[1:]))  # strictly decreasing
    assert 0 < rates[-1] < 1e-5


def test_cosine_stage_follows_curve_and_resumes_on_it(tmp_path, datasets):
    from emolib.train import cosine_lr

    train_ds, val_ds, _, _ = datasets
    small = train_ds.take(3)
    stages = (Stage("train", "all", 5, 2e-3, "cosine"),)
    out = tmp_path / "cos"
    with pytest.raises(KeyboardInterrupt):
        train(
            build_model("cnn", (SIZE, SIZE, 1), n_classes=3),
            small,
            val_ds,
            stages,
            out,
            patience=10,
            verbose=0,
            callbacks=[_Interrupt(2)],
        )
    res = train(build_model("cnn", (SIZE, SIZE, 1), n_classes=3), small, val_ds, stages, out, patience=10, verbose=0)
    assert res.resumed and len(res.history) == 5
    np.testing.assert_allclose(res.history["lr"], [cosine_lr(2e-3, e, 5) for e in range(5)], rtol=1e-5)
    with pytest.raises(ValueError, match="lr_schedule"):
        train(
            build_model("cnn", (SIZE, SIZE, 1)),
            small,
            val_ds,
            (Stage("x", "all", 1, 1e-3, "linear"),),
            tmp_path / "bad",
            verbose=0,
        )
    # the plain schedule is another run: its checkpoint is not mistaken for this one
    with pytest.raises(ValueError, match="different schedule"):
        train(build_model("cnn", (SIZE, SIZE, 1)), small, val_ds, (Stage("train", "all", 5, 2e-3),), out, verbose=0)


def test_one_iterator_repeats_a_finite_dataset_and_keeps_the_epoch_length():
    from emolib.train import one_iterator

    ds, _, _ = _data(5, seed=3, batch=4)  # 15 faces: 4 batches, the last one short
    data, steps = one_iterator(ds)
    assert steps == 4
    two_epochs = [int(b[1].shape[0]) for b in data.take(2 * steps)]
    assert two_epochs == [4, 4, 4, 3, 4, 4, 4, 3]  # each epoch: every face once
    unknown = ds.filter(lambda x, y: True)  # cardinality unknown: left to Keras as it is
    assert one_iterator(unknown) == (unknown, None)
    assert one_iterator(ds.repeat())[1] is None
    arrays = (np.zeros((4, SIZE, SIZE, 1)), np.zeros(4))
    assert one_iterator(arrays) == (arrays, None)


def test_training_sees_every_batch_once_per_epoch(tmp_path, datasets):
    train_ds, val_ds, _, _ = datasets
    n_batches = int(train_ds.cardinality())

    class _Batches(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.per_epoch = []

        def on_epoch_begin(self, epoch, logs=None):
            self.per_epoch.append(0)

        def on_train_batch_end(self, batch, logs=None):
            self.per_epoch[-1] += 1

    counter = _Batches()
    model = build_model("cnn", (SIZE, SIZE, 1), 3)
    train(model, train_ds, val_ds, (Stage("train", "all", 3, 1e-3),), tmp_path, verbose=0, callbacks=[counter])
    assert counter.per_epoch == [n_batches] * 3


def test_mixup_targets_train_with_the_categorical_loss_and_class_weights(tmp_path, datasets):
    from emolib.pipeline import mixup
    from emolib.train import loss_for

    train_ds, val_ds, xv, yv = datasets
    mixed = mixup(train_ds, n_classes=3, alpha=0.2, seed=0)
    assert isinstance(loss_for(mixed), keras.losses.CategoricalCrossentropy)
    assert isinstance(loss_for(train_ds), keras.losses.SparseCategoricalCrossentropy)
    keras.utils.set_random_seed(0)
    model = build_model("cnn", (SIZE, SIZE, 1), 3)
    stages = (Stage("train", "all", 6, 1e-3, "cosine"),)
    result = train(
        model, mixed, val_ds, stages, tmp_path / "m", class_weight={0: 2.0, 1: 1.0, 2: 1.0}, patience=10, verbose=0
    )
    assert result.model.loss.__class__.__name__ == "CategoricalCrossentropy"
    assert np.isfinite(result.history["loss"]).all()
    # the brightness classes are easy: blended targets still teach them (guessing one class scores 0.17)
    probs = result.model.predict(xv, verbose=0)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert macro_f1(yv, probs.argmax(1), 3) > 0.5
