"""The train-step benchmark (TensorFlow's oneDNN on and off) and emolib's oneDNN default."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from emolib import bench_train

X86 = platform.machine().lower() in ("x86_64", "amd64")


def _child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


@pytest.mark.skipif(not X86, reason="emolib sets TensorFlow's oneDNN choice on x86 only")
def test_importing_emolib_first_turns_tensorflows_onednn_kernels_on_unless_the_user_chose():
    code = (
        "import os, emolib, tensorflow\n"
        "from tensorflow.python.util import _pywrap_util_port as p\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), p.IsMklEnabled())"
    )
    unset = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True)
    assert unset.stdout.split() == ["1", "True"], unset.stderr[-1500:]
    chosen = subprocess.run(
        [sys.executable, "-c", code], env=_child_env(TF_ENABLE_ONEDNN_OPTS="0"), capture_output=True, text=True
    )
    assert chosen.stdout.split() == ["0", "False"], chosen.stderr[-1500:]  # the user's value is kept


@pytest.mark.skipif(not X86, reason="oneDNN's on/off switch is measured on x86")
def test_train_step_benchmark_measures_both_settings_and_writes_its_json(tmp_path):
    report = bench_train.run(tmp_path, models=("cnn",), repeats=1, steps=2, batch=16, warmup=1, progress=False)
    saved = json.loads((tmp_path / "train_step.json").read_text())
    assert saved["schema"] == bench_train.SCHEMA and saved["results"].keys() == {"cnn"}
    cnn = saved["results"]["cnn"]
    for key, effective in (("onednn_on", True), ("onednn_off", False)):
        (run,) = cnn[key]["runs"]
        assert run["images"] == 32 and run["seconds"] > 0 and cnn[key]["median_images_per_s"] > 0
        assert run["onednn_effective"] is effective  # the child really ran with that setting
    ratio = cnn["onednn_on"]["median_images_per_s"] / cnn["onednn_off"]["median_images_per_s"]
    assert cnn["speedup_on_over_off"] == pytest.approx(ratio)
    target = saved["targets"]["cnn_emolib_setting_not_slower"]
    assert target["pass"] == (target["value"] >= 1.0) and target["value"] == pytest.approx(ratio)
    assert saved["machine"]["tf_enable_onednn_opts"] == os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    assert "avx512_vnni" in saved["machine"]["cpu_flags"]
    assert "cnn" in bench_train.format_report(report)


def test_a_failing_child_is_reported_with_its_error():
    with pytest.raises(RuntimeError, match="no_such_model"):
        bench_train.measure("no_such_model", "1", steps=1, batch=2, warmup=1)


def test_the_command_refuses_unknown_models(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_train.main(["--models", "vgg16"])
    assert exc.value.code == 2 and "models must be among" in capsys.readouterr().err
