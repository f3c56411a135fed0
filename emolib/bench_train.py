"""Training-speed benchmark: the CNNs' train step with TensorFlow's oneDNN kernels on and off.

`make bench` calls `run` (from `emolib.bench.main`), which writes ``reports/bench/train_step.json``;
``python -m emolib.bench_train`` runs it alone. TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, at
import, and when it is unset turns oneDNN on only on CPUs with AVX512-VNNI, AVX512-BF16 or AMX. So
a run on an older x86 CPU (this project's Skylake VMs, for one) trained on other kernels than a
run on a newer one, and more slowly. Importing emolib sets it to 1 on x86 (`emolib/__init__.py`);
this benchmark measures what that buys, setting by setting, each measurement in a fresh process.

Each child builds the model (`emolib.models.build_model`, random init), compiles it as training
does (Adam, sparse cross-entropy), fits a few warm-up batches (tracing), then times `fit` over
`steps` batches of random 48x48 pixels held in memory: the step alone, no input pipeline, no
augmentation (speed does not depend on the pixels). The settings alternate within each repeat so
a slow patch of a shared VM hits both; the medians are compared. One target: the setting emolib
uses is at least as fast as the other, for every model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from .runinfo import atomic_write_json, cpuinfo_field, library_versions, machine_info, now_iso

SCHEMA = "emolib.bench.train_step/1"
MODELS = ("cnn", "deepcnn")
SETTINGS = ("1", "0")  # TF_ENABLE_ONEDNN_OPTS; emolib's choice first
EMOLIB_SETTING = "1"
RESULT_MARKER = "EMOLIB_TRAIN_STEP"

CHILD = """
import json, sys, time
import numpy as np
import keras
from emolib import models
name, steps, batch, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
keras.utils.set_random_seed(0)
model = models.build_model(name, (48, 48, 1), 3, weights="none")
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, ((steps + warmup) * batch, 48, 48, 1)).astype("float32")
y = (np.arange(len(x)) % 3).astype("int32")
model.fit(x[: warmup * batch], y[: warmup * batch], batch_size=batch, epochs=1, verbose=0, shuffle=False)
t0 = time.perf_counter()
model.fit(x[warmup * batch :], y[warmup * batch :], batch_size=batch, epochs=1, verbose=0, shuffle=False)
dt = time.perf_counter() - t0
try:  # whether TensorFlow really runs oneDNN's kernels in this process (a private API: None if gone)
    from tensorflow.python.util import _pywrap_util_port
    effective = bool(_pywrap_util_port.IsMklEnabled())
except (ImportError, AttributeError):
    effective = None
print("%s %s" % ({marker!r}, json.dumps({{"seconds": dt, "images": steps * batch, "onednn_effective": effective}})))
"""


def measure(model: str, onednn: str, steps: int, batch: int, warmup: int, timeout: float = 900) -> dict:
    """One fresh process: train-step images/s of `model` with TF_ENABLE_ONEDNN_OPTS=onednn."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2"}
    code = CHILD.format(marker=RESULT_MARKER)
    proc = subprocess.run(
        [sys.executable, "-c", code, model, str(steps), str(batch), str(warmup)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            got = json.loads(line[len(RESULT_MARKER) :])
            return {**got, "images_per_s": got["images"] / max(got["seconds"], 1e-9)}
    raise RuntimeError(f"bench_train: the {model} child (oneDNN {onednn}) failed:\n{proc.stderr[-2000:]}")


def cpu_flags() -> dict[str, bool]:
    """The CPU features TensorFlow's oneDNN default depends on (Linux /proc/cpuinfo; empty elsewhere)."""
    flags = cpuinfo_field("flags")
    if flags is None:
        return {}
    have = set(flags.split())
    return {f: f in have for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "avx_vnni")}


def run(
    out: str | Path,
    *,
    models=MODELS,
    repeats: int = 3,
    steps: int = 30,
    batch: int = 64,
    warmup: int = 3,
    progress: bool = True,
) -> dict:
    """Measure every (model, setting) `repeats` times, alternating; write out/train_step.json."""
    runs: dict[str, dict[str, list[dict]]] = {m: {s: [] for s in SETTINGS} for m in models}
    for r in range(repeats):
        for model in models:
            for setting in SETTINGS:
                got = measure(model, setting, steps, batch, warmup)
                runs[model][setting].append(got)
                if progress:
                    print(
                        f"bench_train: repeat {r + 1}/{repeats} {model} oneDNN {setting}: "
                        f"{got['images_per_s']:.0f} images/s",
                        file=sys.stderr,
                        flush=True,
                    )
    results, targets = {}, {}
    for model, by_setting in runs.items():
        med = {s: statistics.median(x["images_per_s"] for x in by_setting[s]) for s in SETTINGS}
        speedup = med["1"] / max(med["0"], 1e-9)  # emolib's setting ("1") over the other
        results[model] = {
            "onednn_on": {"runs": by_setting["1"], "median_images_per_s": med["1"]},
            "onednn_off": {"runs": by_setting["0"], "median_images_per_s": med["0"]},
            "speedup_on_over_off": speedup,
        }
        targets[f"{model}_emolib_setting_not_slower"] = {
            "pass": bool(speedup >= 1.0),
            "value": float(speedup),
            "threshold": 1.0,
            "op": ">=",
            "what": f"{model} train-step median images/s, TF_ENABLE_ONEDNN_OPTS={EMOLIB_SETTING} over the other",
        }
    report = {
        "schema": SCHEMA,
        "timestamp": now_iso(),
        "what": "model.fit images/s on in-memory 48x48 batches (Adam, sparse CE), each in a fresh process",
        "settings": {"repeats": repeats, "steps": steps, "batch_size": batch, "warmup_steps": warmup},
        "emolib_setting": EMOLIB_SETTING,
        "machine": {**machine_info(), "cpu_flags": cpu_flags()},
        "versions": library_versions(),
        "results": results,
        "targets": targets,
        "note": "one run on a shared VM; the medians of alternating measurements, not a controlled lab",
    }
    atomic_write_json(Path(out) / "train_step.json", report)
    return report


def format_report(report: dict) -> str:
    lines = ["train step, images/s (median; TF_ENABLE_ONEDNN_OPTS=1 / =0):"]
    for model, r in report["results"].items():
        lines.append(
            f"  {model:8s} {r['onednn_on']['median_images_per_s']:7.0f} / {r['onednn_off']['median_images_per_s']:7.0f}"
            f"  ({r['speedup_on_over_off']:.2f}x)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.bench_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/bench", help="folder for train_step.json")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of: " + ", ".join(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed batches per measurement")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in names if m not in MODELS]
    if bad or args.repeats < 1 or args.steps < 1:
        parser.exit(2, f"error: models must be among {list(MODELS)}, repeats and steps >= 1\n")
    report = run(args.out, models=names, repeats=args.repeats, steps=args.steps)
    print(format_report(report))
    print(f"wrote {Path(args.out) / 'train_step.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
