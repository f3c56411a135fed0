"""The training notebook end to end (smoke profile), model cards, stale-run protection, determinism."""

import dataclasses
import json

import numpy as np
import pytest

from emolib import config, modelcard
from tests.helpers import notebook_text, run_notebook


@pytest.mark.slow
def test_training_notebook_writes_a_complete_model_dir(tmp_path, synthetic_dir):
    reports = tmp_path / "reports"
    params = dict(
        profile="smoke+sqrtweights+mixup",  # profile modifiers reach the training cell (class weights, mixup)
        classes="angry,sad,surprise",
        data_dir=str(synthetic_dir),
        seed=1,
        reports_dir=str(reports),
        model_name="cnn",
        weights="auto",
    )
    nb = run_notebook("10_train.ipynb", tmp_path, **params)
    out = reports / "models" / "cnn"
    assert {"model.keras", "model.json", "history.csv", "run_key.json"} <= {p.name for p in out.iterdir()}
    card = json.loads((out / "model.json").read_text())
    assert card["classes"] == ["angry", "sad", "surprise"] and card["input_shape"] == [48, 48, 1]
    assert card["weights_used"] == "none" and card["synthetic"] is True and card["profile"] == "smoke+sqrtweights+mixup"
    assert "class weights (balanced ** 0.5)" in notebook_text(nb) and "mixup: alpha 0.2" in notebook_text(nb)
    key = json.loads((out / "run_key.json").read_text())
    assert key["class_weight_power"] == 0.5 and key["mixup_alpha"] == 0.2
    assert card["class_weight_power"] == 0.5 and list(card["class_weights"]) == card["classes"]
    assert card["mixup_alpha"] == 0.2
    assert card["epochs_total"] == 1 and card["params"]["total"] > 300_000
    assert 0 <= card["val_metrics"]["macro_f1"] <= 1
    bn = card["batchnorm_statistics"]  # recomputed on the training faces after training (emolib.bnstats)
    assert bn["recomputed"] is True and bn["layers"] == 5 and bn["already_recomputed"] is False
    assert bn["val_macro_f1_recomputed"] == pytest.approx(card["val_metrics"]["macro_f1"])
    first = (out / "model.keras").stat().st_mtime_ns
    # A second run with the same parameters resumes/skips: the finished model is not retrained.
    run_notebook("10_train.ipynb", tmp_path, **params)
    assert (out / "model.keras").stat().st_mtime_ns == first
    assert json.loads((out / "model.json").read_text())["batchnorm_statistics"]["already_recomputed"] is True


def test_a_run_for_other_data_is_cleared(tmp_path):
    cfg = config.resolve(profile="smoke", data_dir=tmp_path)
    key = modelcard.run_key(model_name="cnn", cfg=cfg, image_size=48, data_fingerprint="aaa", weights_used="none")
    out = tmp_path / "m"
    assert modelcard.prepare_out_dir(out, key) is False
    (out / "model.keras").write_text("trained on aaa")
    assert modelcard.prepare_out_dir(out, key) is False and (out / "model.keras").exists()
    other = dict(key, data_fingerprint="bbb")
    assert modelcard.prepare_out_dir(out, other) is True and not (out / "model.keras").exists()
    (out / "model.keras").write_text("trained on bbb")
    longer = modelcard.run_key(
        model_name="cnn",
        cfg=cfg,
        image_size=48,
        data_fingerprint="bbb",
        weights_used="none",
        stages=config.get_profile("full").schedule("cnn"),
    )
    assert modelcard.prepare_out_dir(out, longer) is True  # another schedule: start over
    (out / "model.keras").write_text("trained with early stopping")
    to_the_end = modelcard.run_key(
        model_name="cnn",
        cfg=dataclasses.replace(cfg, profile=config.get_profile("smoke+fixed").for_model("cnn")),
        image_size=48,
        data_fingerprint="bbb",
        weights_used="none",
        stages=config.get_profile("full").schedule("cnn"),
    )
    to_the_end["profile"] = longer["profile"]  # only the patience differs
    assert modelcard.prepare_out_dir(out, to_the_end) is True  # another early stopping: start over
    (out / "model.keras").write_text("trained by an older training loop")
    older_loop = dict(to_the_end, train_loop_version=config.TRAIN_LOOP_VERSION - 1)
    assert modelcard.prepare_out_dir(out, older_loop) is True  # other batches from the same seed
    balanced = dict(key, data_fingerprint="bbb")
    assert modelcard.prepare_out_dir(out, balanced) is True
    (out / "model.keras").write_text("trained with the balanced class weights")
    sqrt_cfg = dataclasses.replace(cfg, profile=config.get_profile("smoke+sqrtweights"))
    tempered = modelcard.run_key(
        model_name="cnn", cfg=sqrt_cfg, image_size=48, data_fingerprint="bbb", weights_used="none"
    )
    assert tempered.pop("class_weight_power") == 0.5 and "class_weight_power" not in balanced  # older keys valid
    assert dict(tempered, profile="smoke") == balanced  # the profile's name aside, only the class weights differ
    assert modelcard.prepare_out_dir(out, dict(tempered, class_weight_power=0.5)) is True  # start over
    # all seven classes temper the weights without a modifier; the balanced modifier keeps the seed's rule
    seven = {
        mod: modelcard.run_key(
            model_name="cnn",
            cfg=config.resolve(profile=f"smoke{mod}", classes="all", data_dir=tmp_path),
            image_size=48,
            data_fingerprint="bbb",
            weights_used="none",
        )
        for mod in ("", "+balancedweights")
    }
    assert seven[""]["class_weight_power"] == 0.5 and "class_weight_power" not in seven["+balancedweights"]
    mixup_cfg = dataclasses.replace(cfg, profile=config.get_profile("smoke+mixup"))
    mixed = modelcard.run_key(
        model_name="cnn", cfg=mixup_cfg, image_size=48, data_fingerprint="bbb", weights_used="none"
    )
    assert mixed.pop("mixup_alpha") == 0.2 and "mixup_alpha" not in balanced
    assert dict(mixed, profile="smoke") == balanced  # only mixup differs
    assert modelcard.prepare_out_dir(out, dict(mixed, mixup_alpha=0.2)) is True  # start over


@pytest.mark.slow
def test_same_seed_same_validation_metrics(tmp_path, synthetic_dir):
    """Op determinism on CPU: two runs with one seed give the same history, to the last bit."""
    from emolib import data, models, pipeline, train

    cfg = config.resolve(profile="smoke", data_dir=synthetic_dir, seed=5)
    prepared = data.prepare(cfg, progress=False)
    histories = []
    for run in range(2):
        train.set_seed(5, deterministic=True)
        model = models.build_model("cnn", (48, 48, 1), 3)
        tr, va, _ = pipeline.make_datasets(prepared, image_size=48, batch_size=32, seed=5)
        result = train.train(model, tr, va, cfg.profile.schedule("cnn"), tmp_path / f"run{run}", seed=5, verbose=0)
        histories.append(result.history[["loss", "val_loss", "val_macro_f1"]].to_numpy())
    np.testing.assert_array_equal(histories[0], histories[1])
