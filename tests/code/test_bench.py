"""emolib.bench in quick mode on a tiny synthetic set: the JSON it writes has the promised schema.

No timing assertions: how fast things are is the benchmark's business, not the tests'.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

pytest.importorskip("tensorflow")

from emolib import bench  # noqa: E402

TARGET_KEYS = {"cnn_single_p50_le_5ms", "cnn_speedup_ge_10x", "cnn_batch_ge_2000_ips", "all_models_single_p50_lt_100ms"}
EXPORT_KEYS = {"tflite_float32", "tflite_float16", "tflite_int8_dynamic", "onnx_float32"}


def positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_timing(t: dict) -> None:
    for k in ("p50_ms", "p95_ms", "mean_ms", "runs"):
        assert positive(t[k]), (k, t)
    assert t["p95_ms"] >= t["p50_ms"]


def check_target(t: dict) -> None:
    assert "pass" in t and (t["pass"] is None or isinstance(t["pass"], bool)), t
    assert "threshold" in t and "op" in t


@pytest.fixture(scope="module")
def results(synthetic_dir, tmp_path_factory):
    """One quick run: a CNN stand-in (no trained models in the empty models dir), all exports, the pipeline."""
    tmp = tmp_path_factory.mktemp("bench")
    settings = dataclasses.replace(
        bench.BenchSettings.quick_(),
        warmup=2,
        single_runs=8,
        naive_runs=4,
        batch_images=600,
        export_runs=4,
        agreement_max=200,
        pipeline_batch=16,
        train_steps=2,
        train_warmup_steps=1,
    )
    cwd = tmp / "cwd"
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)  # the pixel cache (data/interim) lands in tmp, not in the repo
        latency, pipeline = bench.run_benchmark(
            tmp / "out", synthetic_dir, models_dir=tmp / "no_models", models=["cnn"], settings=settings
        )
    return tmp / "out", latency, pipeline


def test_files_written_and_match_returned(results):
    out, latency, pipeline = results
    assert json.loads((out / "latency.json").read_text()) == json.loads(json.dumps(latency))
    assert json.loads((out / "pipeline.json").read_text()) == json.loads(json.dumps(pipeline))
    assert not list(out.glob(".*"))  # atomic writes leave no temp files


def test_latency_header_and_stand_in_flag(results):
    _, lat, _ = results
    assert lat["schema"] == bench.SCHEMA_LATENCY
    for k in ("timestamp", "machine", "versions", "tf_threads", "note", "settings", "data", "quick", "cpu_load"):
        assert k in lat, k
    assert positive(lat["cpu_load"]["wall_seconds"])
    assert lat["quick"] is True
    assert "one run on one machine" in lat["note"]
    assert lat["stand_ins"] is True and "UNTRAINED" in lat["stand_in_note"]
    assert lat["data"]["synthetic"] is True and lat["data"]["n_test"] > 0
    assert set(lat["models"]) == {"cnn"}
    assert lat["models"]["cnn"]["untrained_stand_in"] is True
    assert "tensorflow" in lat["versions"] or "tensorflow-cpu" in lat["versions"]


def test_latency_numbers(results):
    _, lat, _ = results
    m = lat["models"]["cnn"]
    assert m["input_size"] == 48 and positive(m["params"])
    check_timing(m["single_image"])
    check_timing(m["naive_baseline"])
    assert positive(m["speedup_p50"])
    assert m["batch"]["batch_size"] == 256
    assert m["batch"]["images"] >= 600 and positive(m["batch"]["images_per_s"])
    assert m["batch"]["images_per_s_best"] >= m["batch"]["images_per_s"]
    assert positive(m["batch"]["images_per_cpu_s"]) and positive(m["batch"]["cpu_over_wall"])


def test_exports(results):
    _, lat, _ = results
    ex = lat["models"]["cnn"]["exports"]
    assert set(ex) == EXPORT_KEYS
    assert not ex["tflite_float32"]["skipped"], ex["tflite_float32"]
    for key, row in ex.items():
        if row["skipped"]:
            assert isinstance(row["skipped"], str) and row["skipped"]
            continue
        assert positive(row["bytes"])
        check_timing(row["single_image"])
        assert 0.0 <= row["agreement"] <= 1.0 and row["n_agreement"] > 0
        if key == "tflite_int8_dynamic":
            assert row["target_agreement"] is None and row["pass"] is None  # reported only
        else:
            assert row["target_agreement"] == pytest.approx(0.995) and isinstance(row["pass"], bool)


def test_latency_targets(results):
    _, lat, _ = results
    assert TARGET_KEYS <= set(lat["targets"])
    for k in TARGET_KEYS:
        assert isinstance(lat["targets"][k]["pass"], bool), k
    for t in lat["targets"].values():
        check_target(t)
    assert "cnn_tflite_float32_agreement_ge_99.5" in lat["targets"]
    assert isinstance(lat["all_targets_pass"], bool)


def test_pipeline(results):
    _, _, p = results
    assert p["schema"] == bench.SCHEMA_PIPELINE
    for k in ("timestamp", "machine", "versions", "note", "cpu_load"):
        assert k in p
    for epoch in ("epoch_cold", "epoch_warm"):
        e = p["pipeline"][epoch]
        assert positive(e["images_per_s"]) and e["images"] == p["pipeline"]["images"] > 0
    assert positive(p["train_step"]["images_per_s"]) and p["train_step"]["steps"] >= 1
    assert positive(p["ratio_pipeline_over_train"])
    t = p["targets"]["pipeline_faster_than_train_step"]
    assert isinstance(t["pass"], bool)
    check_target(t)


def test_report_mentions_stand_ins(results):
    _, lat, p = results
    text = bench.format_report(lat, p)
    assert "UNTRAINED STAND-INS" in text and "untrained stand-in" in text
    assert "SYNTHETIC DATA" in text
    assert "cnn_single_p50_le_5ms" in text and "pipeline_faster_than_train_step" in text


def test_targets_without_cnn_are_undecided():
    t = bench.latency_targets({})
    assert t["cnn_single_p50_le_5ms"]["pass"] is None and t["all_models_single_p50_lt_100ms"]["pass"] is None


def test_trained_model_dirs_are_found(tmp_path):
    (tmp_path / "cnn").mkdir()
    (tmp_path / "cnn" / "model.keras").write_bytes(b"x")
    (tmp_path / "cnn" / "model.json").write_text("{}")
    (tmp_path / "vgg16").mkdir()  # incomplete: ignored
    (tmp_path / "vgg16" / "model.json").write_text("{}")
    assert bench.find_model_dirs(tmp_path) == {"cnn": tmp_path / "cnn"}


def test_cli_rejects_unknown_model(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--data-dir", "x", "--models", "cnn,alexnet"])
    assert e.value.code == 2
    assert "alexnet" in capsys.readouterr().err
