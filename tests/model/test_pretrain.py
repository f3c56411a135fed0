"""emolib.pretrain (backbones pretrained offline on the classes outside the task) and auxiliary classes.

Smoke profile on the synthetic set (all seven classes): the task angry/sad/surprise leaves
disgust, fear, happy and neutral to pretrain on. One MobileNetV2 backbone is pretrained for the
module (about a minute on a busy 2-core CPU); the other tests reuse its cache entry."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from emolib import config, data, models, pretrain  # noqa: E402 - after the importorskip guards

TASK = "angry,sad,surprise"
OTHERS = ("disgust", "fear", "happy", "neutral")
MODEL = "mobilenetv2"


def _cfg(data_dir, classes=TASK, weights="disjoint", profile="smoke"):
    return config.resolve(profile=profile, classes=classes, data_dir=data_dir, seed=1, weights=weights)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, synthetic_dir):
    """A pretrained-backbone cache holding the module's one pretraining run."""
    root = tmp_path_factory.mktemp("pretrained")
    pre = pretrain.ensure_pretrained(_cfg(synthetic_dir), MODEL, synthetic_dir, cache_dir=root, progress=False)
    return {"dir": root, "first": pre}


def test_pretraining_writes_backbone_weights_and_a_record(cache):
    pre = cache["first"]
    assert pre.reused is False and pre.path.is_file() and pre.path.name == pretrain.BACKBONE_FILE
    assert pre.classes == OTHERS
    info = json.loads((pre.path.parent / pretrain.INFO_FILE).read_text())
    assert info["key"]["pretrain_classes"] == list(OTHERS) and info["key"]["task_classes"] == TASK.split(",")
    assert info["key"]["backbone"] == "MobileNetV2" and info["key"]["input_size"] == 32
    assert info["images"]["train"] > 0 and info["epochs_per_stage"][0]["epochs_run"] == 1
    assert not (pre.path.parent / pretrain.RUN_DIR).exists()  # the resumable run is cleared once done
    assert pre.label == f"fer2013-disjoint:disgust,fear,happy,neutral (cache key {pre.key_id})"
    # The saved weights are a trained backbone's, not a fresh random one's.
    fresh = models.backbone_of(models.build_model(MODEL, (32, 32, 1), 3, weights="none"))
    loaded = models.backbone_of(models.build_model(MODEL, (32, 32, 1), 3, weights=str(pre.path)))
    assert any(not np.allclose(a, b) for a, b in zip(fresh.get_weights(), loaded.get_weights()))


def test_second_call_reuses_the_cache(cache, synthetic_dir):
    pre = cache["first"]
    before = pre.path.stat().st_mtime_ns
    again = pretrain.ensure_pretrained(
        _cfg(synthetic_dir), MODEL, synthetic_dir, cache_dir=cache["dir"], progress=False
    )
    assert again.reused is True and again.key_id == pre.key_id and again.path.stat().st_mtime_ns == before


def test_pretraining_is_reproducible(cache, synthetic_dir, tmp_path):
    """The same key pretrained again from nothing gives the same backbone, to the last bit."""
    again = pretrain.ensure_pretrained(_cfg(synthetic_dir), MODEL, synthetic_dir, cache_dir=tmp_path, progress=False)
    assert again.reused is False and again.key_id == cache["first"].key_id
    first, second = (
        models.backbone_of(models.build_model(MODEL, (32, 32, 1), 3, weights=str(p.path)))
        for p in (cache["first"], again)
    )
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_cache_key_changes_with_classes_and_data(cache, synthetic_dir, tmp_path):
    pre = cache["first"]
    # Other task classes: other pretraining classes, another key (the cached entry is not used for it).
    _, classes, fp, _ = pretrain.pretrain_index(_cfg(synthetic_dir, "angry,sad"), MODEL, synthetic_dir)
    assert "surprise" in classes
    key = pretrain.cache_key(_cfg(synthetic_dir, "angry,sad"), MODEL, classes, fp)
    assert pretrain.key_id(key) != pre.key_id
    assert pretrain._read_entry(cache["dir"] / pre.key_id, key) is None
    # The same classes on changed data (one pretraining face replaced): another fingerprint, another key.
    copy = shutil.copytree(synthetic_dir, tmp_path / "faces")
    victim = min((copy / "train" / "happy").iterdir())
    donor = min((copy / "train" / "fear").iterdir())
    shutil.copyfile(donor, victim)
    _, classes2, fp2, _ = pretrain.pretrain_index(_cfg(copy), MODEL, copy)
    assert classes2 == OTHERS and fp2 != pre.key["data_fingerprint"]
    key2 = pretrain.cache_key(_cfg(copy), MODEL, classes2, fp2)
    assert pretrain.key_id(key2) != pre.key_id and pretrain._read_entry(cache["dir"] / pre.key_id, key2) is None
    # ... and a change of recipe (the quick profile's budget) too.
    quick = pretrain.cache_key(_cfg(synthetic_dir, profile="quick"), MODEL, OTHERS, pre.key["data_fingerprint"])
    assert pretrain.key_id(quick) != pre.key_id


def test_fine_tuning_starts_from_the_cached_backbone(cache, synthetic_dir, monkeypatch):
    monkeypatch.setattr(pretrain, "MIN_PRETRAIN_MARGIN", -1.0)  # one smoke epoch need not beat guessing
    pre = cache["first"]
    model, info = pretrain.build_model_for_task(
        _cfg(synthetic_dir),
        MODEL,
        synthetic_dir,
        input_shape=(32, 32, 1),
        n_classes=3,
        cache_dir=cache["dir"],
        progress=False,
    )
    assert info["weights_used"] == pre.label and info["weights_file"] == str(pre.path.resolve())
    assert info["weights_source"]["kind"] == "disjoint" and info["weights_source"]["reused_from_cache"] is True
    assert info["weights_source"]["pretrain_init"] == "keras default"  # MobileNetV2: BatchNorm, no LSUV
    assert info["weights_notes"] == []
    reference = models.backbone_of(models.build_model(MODEL, (32, 32, 1), 3, weights="none"))
    reference.load_weights(str(pre.path))
    for a, b in zip(models.backbone_of(model).get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_auto_prefers_imagenet_then_disjoint(cache, synthetic_dir, monkeypatch):
    cfg = _cfg(synthetic_dir, weights="auto")
    monkeypatch.setattr(pretrain, "MIN_PRETRAIN_MARGIN", -1.0)  # whatever one smoke epoch learned counts here
    monkeypatch.setattr(pretrain, "_imagenet_error", lambda name, size: None)
    assert pretrain.resolve_weights(cfg, MODEL, synthetic_dir, cache_dir=cache["dir"]).kind == "imagenet"
    monkeypatch.setattr(pretrain, "_imagenet_error", lambda name, size: "no network. Details")
    with pytest.warns(models.WeightsFallbackWarning, match="ImageNet weights unavailable"):
        choice = pretrain.resolve_weights(cfg, MODEL, synthetic_dir, cache_dir=cache["dir"], progress=False)
    assert choice.kind == "disjoint" and choice.label == cache["first"].label
    assert "no network" in choice.notes[0]
    assert pretrain.resolve_weights(cfg, "cnn", synthetic_dir).kind == "none"  # the CNN has no backbone


def test_pretraining_that_did_not_learn_is_not_used_by_auto(cache, synthetic_dir, monkeypatch):
    """A backbone whose pretraining ended at guessing level is no transfer source: 'auto' starts from random
    init and says why; 'disjoint' uses it as asked, with a warning."""
    score = cache["first"].info["val_macro_f1"]
    monkeypatch.setattr(pretrain, "_imagenet_error", lambda name, size: "no network. Details")
    monkeypatch.setattr(pretrain, "MIN_PRETRAIN_MARGIN", 1.0)  # a bar no run can pass: 1/4 + 1
    with pytest.warns(models.WeightsFallbackWarning, match="did NOT learn"):
        auto = pretrain.resolve_weights(
            _cfg(synthetic_dir, weights="auto"), MODEL, synthetic_dir, cache_dir=cache["dir"], progress=False
        )
    assert auto.kind == "none" and auto.weights == "none" and auto.pretrained is None
    assert f"{score:.3f}" in auto.notes[-1] and "RANDOM INIT" in auto.notes[-1]
    assert cache["first"].key_id in auto.notes[-1]  # which cached run was refused
    with pytest.warns(models.WeightsFallbackWarning, match="used as asked"):
        asked = pretrain.resolve_weights(_cfg(synthetic_dir), MODEL, synthetic_dir, cache_dir=cache["dir"])
    assert asked.kind == "disjoint" and asked.label == cache["first"].label


def test_pretraining_learned_compares_with_guessing(monkeypatch):
    monkeypatch.setattr(pretrain, "MIN_PRETRAIN_MARGIN", 0.05)
    four = ["disgust", "fear", "happy", "neutral"]
    assert pretrain.pretraining_learned({"classes": four, "val_macro_f1": 0.2498})[0] is False  # VGG16, quick
    assert pretrain.pretraining_learned({"classes": four, "val_macro_f1": 0.31})[0] is True
    assert pretrain.pretraining_learned({"classes": four[:2], "val_macro_f1": 0.52})[0] is False  # 1/2 + 0.05
    learned, why = pretrain.pretraining_learned({"classes": four, "val_macro_f1": None})
    assert learned is False and "no validation" in why


def test_all_classes_leave_nothing_to_pretrain_on(synthetic_dir, tmp_path):
    cfg = _cfg(synthetic_dir, classes="all")
    with pytest.warns(models.WeightsFallbackWarning, match="no other classes to pretrain on"):
        _, info = pretrain.build_model_for_task(
            cfg, MODEL, synthetic_dir, input_shape=(32, 32, 1), n_classes=7, cache_dir=tmp_path
        )
    assert info["weights_used"] == "none" and info["weights_source"]["kind"] == "none"
    assert "RANDOM INIT" in info["weights_notes"][0]
    assert not any(tmp_path.iterdir())  # nothing was pretrained


def test_command_line_writes_the_record(cache, synthetic_dir, tmp_path, capsys):
    out = tmp_path / "pretrained" / f"{MODEL}.json"
    rc = pretrain.main(
        [
            "--model",
            MODEL,
            "--profile",
            "smoke",
            "--classes",
            TASK,
            "--data-dir",
            str(synthetic_dir),
            "--seed",
            "1",
            "--weights",
            "disjoint",
            "--cache-dir",
            str(cache["dir"]),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    record = json.loads(out.read_text())
    assert record["kind"] == "disjoint" and record["weights"] == cache["first"].label
    assert record["reused_from_cache"] is True
    pretrain.main(
        [
            "--model",
            MODEL,
            "--profile",
            "smoke",
            "--data-dir",
            str(synthetic_dir),
            "--weights",
            "none",
            "--out",
            str(out),
        ]
    )
    assert json.loads(out.read_text())["kind"] == "none" and "nothing to pretrain" in capsys.readouterr().out


@pytest.mark.slow
def test_training_notebook_fine_tunes_from_the_pretrained_backbone(cache, synthetic_dir, tmp_path):
    from ..helpers import run_notebook

    reports = tmp_path / "reports"
    run_notebook(
        "10_train.ipynb",
        tmp_path,
        profile="smoke",
        classes=TASK,
        data_dir=str(synthetic_dir),
        seed=1,
        reports_dir=str(reports),
        model_name=MODEL,
        weights="disjoint",
        pretrain_cache=str(cache["dir"]),
    )
    card = json.loads((reports / "models" / MODEL / "model.json").read_text())
    assert card["weights_used"] == cache["first"].label
    assert card["weights_source"]["cache_key"] == cache["first"].key_id
    # the seed's staged schedule (frozen base, then the top layers), not the from-scratch stage
    assert [s["name"] for s in card["stages"]] == ["head", "top30"]
    assert card["epochs_per_stage"][0]["trainable_params"] < card["epochs_per_stage"][1]["trainable_params"]


# ------------------------------------------------------------------------------ auxiliary classes
def test_aux_classes_keep_the_task_splits(synthetic_dir):
    cfg = config.resolve(profile="smoke+aux", classes=TASK, data_dir=synthetic_dir, seed=1)
    assert cfg.profile.aux_classes is True and cfg.profile.name == "smoke+aux"
    plain = data.prepare(config.resolve(profile="smoke", classes=TASK, data_dir=synthetic_dir, seed=1), progress=False)
    aux = data.prepare(cfg, progress=False)
    assert aux.aux_classes == OTHERS and aux.train_classes == tuple(TASK.split(",")) + OTHERS
    assert aux.fingerprint == plain.fingerprint and aux.aux_fingerprint
    for split in ("val", "test"):
        assert aux.paths(split) == plain.paths(split)
    _, y = aux.split("train")
    assert set(y) == set(range(7)) and len(aux.class_weights()) == 7
    with pytest.raises(ValueError, match="unknown profile modifier"):
        config.get_profile("smoke+nope")


def test_model_trained_with_aux_classes_predicts_only_the_task(synthetic_dir, tmp_path):
    from emolib import modelfolder, pipeline, train

    cfg = config.resolve(profile="smoke+aux", classes=TASK, data_dir=synthetic_dir, seed=1)
    prepared = data.prepare(cfg, progress=False)
    model = models.build_model("cnn", (48, 48, 1), n_classes=len(prepared.train_classes))
    train_ds, val_ds, _ = pipeline.make_datasets(prepared, image_size=48, batch_size=32, seed=1)
    result = train.train(
        model,
        train_ds,
        val_ds,
        cfg.profile.schedule("cnn"),
        tmp_path,
        verbose=0,
        class_weight=prepared.class_weights(),
        task_outputs=3,
    )
    assert 0 <= result.history["val_macro_f1"].iloc[-1] <= 1
    saved = modelfolder.load_model(tmp_path, card={"classes": TASK.split(",")})  # checked: 3 outputs
    x, _ = prepared.split("test")
    x = x[..., None].astype("float32")
    probs = saved.predict(x, verbose=0)
    assert probs.shape == (len(x), 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # the task model is the trained network's softmax over the task's classes, renormalised
    full = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    np.testing.assert_allclose(probs, full[:, :3] / full[:, :3].sum(1, keepdims=True), atol=1e-4)


def test_task_output_model_rejects_bad_sizes():
    model = models.build_model("cnn", (48, 48, 1), n_classes=7)
    assert models.task_output_model(model, 7) is model
    with pytest.raises(ValueError, match="n_task"):
        models.task_output_model(model, 1)


def test_stage_flags_do_not_depend_on_the_previous_stage():
    """The training notebook applies every stage to show the plan before training: 'head' after 'top:30'
    must freeze the backbone again (it used to leave the top 30 layers trainable)."""
    model = models.build_model(MODEL, (32, 32, 1), 3, weights="none")
    head, top = config.get_profile("smoke").schedule(MODEL)
    first = [models.apply_stage(model, s) for s in (head, top)]
    again = [models.apply_stage(model, s) for s in (head, top)]
    assert first == again and first[0][0] < first[1][0]
    assert models.apply_stage(model, head) == first[0]


def test_pretraining_budgets_per_profile():
    smoke, quick, full = (config.get_profile(n) for n in ("smoke", "quick", "full"))
    assert smoke.pretrain_epochs == 1 and smoke.pretrain_max_train_per_class == 32
    for name, budget in config.QUICK_PRETRAIN_BUDGET.items():
        p = quick.for_model(name)
        assert (p.pretrain_epochs, p.pretrain_max_train_per_class) == (
            budget["pretrain_epochs"],
            budget["pretrain_max_train_per_class"],
        )
        assert full.for_model(name).pretrain_epochs > p.pretrain_epochs
        assert p.pretrain_stages()[0].trainable == "scratch"
        assert p.pretrain_recipe()["early_stopping"] is None  # the cosine budget runs to its end
    # VGG16 (no BatchNorm) pretrains at a tenth of the rate in every profile that pretrains it for real
    assert quick.for_model("vgg16").pretrain_learning_rate == full.for_model("vgg16").pretrain_learning_rate == 1e-4
    assert quick.for_model("resnet50").pretrain_learning_rate == 1e-3


def test_main_prints_the_weights_decision_not_library_noise(tmp_path, synthetic_dir, monkeypatch, capsys):
    """`make pretrain` shows each weights fallback once; a DeprecationWarning raised per batch by a
    library must not be printed thousands of times (it keeps Python's usual filters)."""
    import warnings

    real = pretrain.resolve_weights

    def noisy(cfg, model_name, data_dir, cache_dir=None):
        for _ in range(50):
            warnings.warn("__array__ implementation doesn't accept a copy keyword", DeprecationWarning, stacklevel=1)
        warnings.warn("weights='auto': ImageNet weights unavailable", models.WeightsFallbackWarning, stacklevel=1)
        return real(cfg, model_name, data_dir, cache_dir=cache_dir)

    monkeypatch.setattr(pretrain, "resolve_weights", noisy)
    args = ["--model", "mobilenetv2", "--profile", "smoke", "--data-dir", str(synthetic_dir), "--weights", "none"]
    assert pretrain.main([*args, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "rec.json")]) == 0
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert text.count("[pretrain] WARNING") == 1 and "copy keyword" not in text


def test_pretraining_model_is_the_backbone_under_a_linear_head():
    # The task head (three Dense layers with dropout and BatchNorm) kept a random backbone at guessing
    # level; the pretraining model puts only GAP -> softmax on it, and its backbone is the task model's.
    pre = models.build_pretraining_model(MODEL, (32, 32, 1), 4)
    assert [type(lyr).__name__ for lyr in models.head_layers(pre)] == ["GlobalAveragePooling2D", "Dense"]
    assert pre.output_shape == (None, 4) and pre.get_layer("predictions").activation.__name__ == "softmax"
    backbone = models.backbone_of(pre)
    assert all(w.trainable for w in pre.weights if "moving" not in w.path)  # everything learns, BN included
    task = models.backbone_of(models.build_model(MODEL, (32, 32, 1), 3, weights="none"))
    assert [w.shape for w in backbone.weights] == [w.shape for w in task.weights]
    with pytest.raises(ValueError, match="no keras.applications backbone"):
        models.build_pretraining_model("cnn", (48, 48, 1), 4)


def test_lsuv_init_gives_every_convolution_unit_variance_on_faces():
    # VGG16 has no BatchNorm; from Keras' default init its quick pretraining stayed at guessing level.
    pre = models.build_pretraining_model("vgg16", (32, 32, 1), 4)
    assert not models.has_batchnorm(pre)
    assert models.has_batchnorm(models.build_pretraining_model(MODEL, (32, 32, 1), 4))
    faces = np.random.default_rng(0).integers(0, 256, (16, 32, 32), dtype=np.uint8)
    before = [w.numpy().copy() for w in pre.weights]
    log = models.lsuv_init(pre, faces, seed=3)
    backbone = models.backbone_of(pre)
    convs = [lyr for lyr in backbone.layers if isinstance(lyr, keras.layers.Conv2D)]
    assert [name for name, _ in log] == [c.name for c in convs] and len(convs) == 13
    inputs = pre.get_layer("preprocess")(faces[..., None].astype("float32"))
    for conv in convs:  # measured now, after every later layer was set: each output has std ~1
        std = float(np.std(keras.Model(backbone.input, conv.output)(inputs)))
        assert abs(std - 1.0) < 0.1, (conv.name, std)
    # only the backbone's convolutions changed; the head is left as built
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, pre.weights)]
    assert any(changed) and not changed[-1] and not changed[-2]


def test_vgg16_pretraining_records_its_lsuv_init(cache, synthetic_dir, tmp_path):
    pre = pretrain.ensure_pretrained(_cfg(synthetic_dir), "vgg16", synthetic_dir, cache_dir=tmp_path, progress=False)
    assert pre.info["init"].startswith("LSUV") and pre.path.exists()
    assert cache["first"].info["init"] == "keras default"  # MobileNetV2 has BatchNorm: Keras' init
