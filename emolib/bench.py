"""Benchmarks: prediction latency and throughput, exported models, the input pipeline.

    python -m emolib.bench --out reports/bench --data-dir DATA_DIR [--models-dir reports/models] [--quick]

writes, atomically, measured in one run on one machine:

* ``latency.json`` - per model (the trained model dirs under ``--models-dir``, or
  untrained stand-ins of every architecture when there are none: latency does not
  depend on training):

  - ``single_image``: end to end, one image FILE read from disk, preprocessed and
    classified by ``Predictor.predict(path, faces='off')`` (p50 / p95 in ms, after warm-up);
  - ``naive_baseline``: the same files read the same way, then ``model.predict(x[None])``
    per image (what the seed's app did), and ``speedup_p50`` = naive p50 / single p50;
  - ``batch``: ``Predictor.predict_arrays`` at batch 256, images/s;
  - ``exports``: TFLite float32 / float16 / int8 (dynamic range) and ONNX: file size,
    single-image p50 via ``exported_predict`` and top-1 agreement with Keras on the
    test split (target >= 99.5% for the float exports; int8 reported only);
  - ``targets``: pass/fail booleans (CNN p50 <= 5 ms and >= 10x the naive baseline,
    CNN batch >= 2,000 images/s, every model's p50 < 100 ms, float export agreement).

* ``pipeline.json`` - the tf.data training pipeline (`emolib.pipeline.make_dataset`,
  augmenting) in images/s over an epoch of the training split against the CNN's
  training step (``model.fit``) on the same batches: the pipeline must be faster.

Timing uses ``time.perf_counter`` after warm-up runs; TensorFlow's intra/inter-op
thread pools keep their defaults unless ``--intra-op-threads`` / ``--inter-op-threads``
say otherwise (both recorded). Numbers are only comparable within one run on one
machine; other processes on the machine (e.g. a training run) slow them down.
``--quick`` repeats less and exports only the CNN (for tests and a first look).
``main`` then runs `emolib.bench_video` (``video.json``: frames per second and memory on video)
and `emolib.bench_train` (``train_step.json``: the CNNs' train step with TensorFlow's oneDNN on and off).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import bench_faces
from .config import DEFAULT_CLASSES, MODEL_NAMES
from .modelfolder import MODEL_FILE, find_model_dirs, read_card, write_card
from .runinfo import atomic_write_json, library_versions, machine_info, now_iso

SCHEMA_LATENCY = "emolib.bench.latency/1"
SCHEMA_PIPELINE = "emolib.bench.pipeline/1"
STAND_IN_SIZES = {"cnn": 48, "vgg16": 48, "resnet50": 48, "mobilenetv2": 48}
STAND_IN_NOTE = (
    "UNTRAINED STAND-INS: no trained model directories were found, so each architecture was "
    "built with random weights (models.build_model(..., weights='none')). Latency and "
    "throughput do not depend on training; export agreement on untrained (near-uniform) "
    "outputs is not representative of a trained model."
)
ONE_RUN_NOTE = (
    "All numbers come from one run on one machine (see 'machine'); they are comparable with "
    "each other, not with other machines or runs. Other processes running at the same time "
    "(e.g. a training run) slow them down."
)

# Targets on a 2-core CPU.
TARGET_CNN_P50_MS = 5.0
TARGET_CNN_SPEEDUP = 10.0
TARGET_CNN_BATCH_IPS = 2000.0
TARGET_ALL_P50_MS = 100.0
TARGET_FLOAT_AGREEMENT = 0.995
EXPORT_VARIANTS: tuple[tuple[str, str, str], ...] = (
    # (key, format, quantize)
    ("tflite_float32", "tflite", "none"),
    ("tflite_float16", "tflite", "float16"),
    ("tflite_int8_dynamic", "tflite", "int8"),
    ("onnx_float32", "onnx", "none"),
)


@dataclass(frozen=True)
class BenchSettings:
    """How much to measure. `full()` for `make bench`, `quick()` for tests and a first look."""

    quick: bool
    warmup: int  # untimed calls before each timed series
    single_runs: int  # timed single-image calls (Predictor.predict)
    naive_runs: int  # timed model.predict calls
    batch_size: int  # predict_arrays batch
    batch_images: int  # images per throughput measurement (tiled from the test split if fewer)
    export_runs: int  # timed exported_predict single-image calls
    agreement_max: int  # test images for export agreement (all of them up to this many)
    export_models: tuple[str, ...] | None  # None: every benchmarked model
    pipeline_batch: int  # make_dataset batch size
    pipeline_image_size: int
    train_steps: int  # timed model.fit steps
    train_warmup_steps: int
    naive_warmup: int = 3
    batch_repeats: int = 1  # timed predict_arrays passes over batch_images; the median is reported
    backbone_batch_images: int | None = None  # fewer images for the slow backbones (quick mode); None: batch_images

    @classmethod
    def full(cls) -> BenchSettings:
        return cls(
            quick=False,
            warmup=20,
            single_runs=200,
            naive_runs=200,
            batch_size=256,
            batch_images=2048,
            export_runs=200,
            agreement_max=2000,
            export_models=None,
            pipeline_batch=64,
            pipeline_image_size=48,
            train_steps=40,
            train_warmup_steps=3,
            batch_repeats=3,
        )

    @classmethod
    def quick_(cls) -> BenchSettings:
        return cls(
            quick=True,
            warmup=5,
            single_runs=40,
            naive_runs=20,
            batch_size=256,
            batch_images=2048,
            export_runs=40,
            agreement_max=1000,
            export_models=("cnn",),
            pipeline_batch=64,
            pipeline_image_size=48,
            train_steps=12,
            train_warmup_steps=2,
            batch_repeats=1,
            backbone_batch_images=512,
        )


# ------------------------------------------------------------------------ helpers
def configure_threads(intra_op: int = 0, inter_op: int = 0) -> dict:
    """Set TF's thread pools (0 = TensorFlow's default); returns what is in effect."""
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialised: keep what is there
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra_op))
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter_op))
    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        "note": "0 means TensorFlow's default (one thread per core)",
    }


def timed(fn: Callable[[int], Any], runs: int, warmup: int) -> dict:
    """Call fn(i) `warmup` times untimed, then `runs` times timed; ms percentiles."""
    for i in range(warmup):
        fn(i)
    times = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        t0 = time.perf_counter()
        fn(i)
        times[i] = time.perf_counter() - t0
    ms = times * 1000.0
    return {
        "runs": int(runs),
        "warmup": int(warmup),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
    }


def _target(value: float | None, threshold: float, op: str, what: str) -> dict:
    if value is None:
        return {
            "pass": None,
            "value": None,
            "threshold": threshold,
            "op": op,
            "what": what,
            "reason": "not measured (model absent)",
        }
    ok = {"<=": value <= threshold, "<": value < threshold, ">=": value >= threshold, ">": value > threshold}[op]
    return {"pass": bool(ok), "value": float(value), "threshold": float(threshold), "op": op, "what": what}


def make_stand_ins(
    root: str | Path, names: Sequence[str] = MODEL_NAMES, classes: Sequence[str] = DEFAULT_CLASSES, seed: int = 0
) -> dict[str, Path]:
    """Untrained model dirs (model.keras + model.json) of each architecture under `root`."""
    import keras

    from . import models

    out = {}
    for name in names:
        size = STAND_IN_SIZES[name]
        keras.utils.set_random_seed(seed)
        model = models.build_model(name, (size, size, 1), len(classes), weights="none")
        d = Path(root) / name
        d.mkdir(parents=True, exist_ok=True)
        model.save(d / MODEL_FILE)
        write_card(
            d,
            {
                "model_name": name,
                "classes": list(classes),
                "input_shape": [size, size, 1],
                "untrained_stand_in": True,
                "weights": "none (random init)",
            },
        )
        out[name] = d
        keras.backend.clear_session()
    return out


@dataclass
class BenchData:
    """Test (and train) arrays and image files to benchmark with."""

    data_dir: str
    synthetic: bool
    generated: bool  # a temporary synthetic set made because the data dir was missing
    classes: tuple[str, ...]
    test_pixels: np.ndarray  # (N, 48, 48) uint8
    test_labels: np.ndarray
    train_pixels: np.ndarray
    train_labels: np.ndarray
    test_files: list[str]  # image files on disk for the end-to-end latency

    def describe(self) -> dict:
        return {
            "data_dir": self.data_dir,
            "synthetic": self.synthetic,
            "generated_temporary_synthetic": self.generated,
            "classes": list(self.classes),
            "n_test": int(len(self.test_pixels)),
            "n_train": int(len(self.train_pixels)),
            "n_test_files_for_latency": len(self.test_files),
            "image_size": int(self.test_pixels.shape[1]) if len(self.test_pixels) else None,
        }


def load_bench_data(
    data_dir: str | Path,
    classes: Sequence[str],
    workdir: str | Path,
    size: int = 48,
    max_files: int = 200,
    progress: bool = False,
) -> BenchData:
    """Prepare the data dir's splits with emolib.data (a temporary synthetic set when it is missing)."""
    from . import config, data, synthetic

    data_dir = Path(data_dir)
    generated = False
    if not data_dir.exists():
        print(
            f"bench: data folder {data_dir} not found; generating a small SYNTHETIC set in a temporary folder",
            file=sys.stderr,
        )
        data_dir = synthetic.make_synthetic_dataset(
            Path(workdir) / "synthetic", classes=tuple(classes), train_per_class=60, test_per_class=20, seed=0
        )
        generated = True
    cfg = config.resolve(profile="quick", classes=list(classes), data_dir=data_dir)
    prep = data.prepare(cfg, size=size, progress=progress, data_dir=data_dir)
    te_x, te_y = prep.split("test")
    tr_x, tr_y = prep.split("train")
    paths = [p for p in prep.paths("test")]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(paths))[:max_files]
    files = [paths[i] for i in order]
    if not all(Path(f).is_file() for f in files):
        # e.g. the CSV layout: no files on disk, so write the test images as PNGs.
        from PIL import Image

        folder = Path(workdir) / "test_files"
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for k, i in enumerate(order):
            p = folder / f"test_{k:04d}.png"
            Image.fromarray(te_x[i]).save(p)
            files.append(str(p))
    return BenchData(
        data_dir=str(data_dir),
        synthetic=bool(prep.synthetic or generated),
        generated=generated,
        classes=tuple(prep.classes),
        test_pixels=te_x,
        test_labels=te_y,
        train_pixels=tr_x,
        train_labels=tr_y,
        test_files=files,
    )


def arrays_at(pixels: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S, 1) float32 raw pixels from (N, s, s) uint8, resized when s != S."""
    x = np.asarray(pixels, dtype=np.float32)[..., None]
    if x.shape[1] != size:
        import tensorflow as tf

        x = np.clip(tf.image.resize(x, (size, size), method="bilinear", antialias=True).numpy(), 0, 255)
    return x.astype(np.float32)


# --------------------------------------------------------------------- measurements
def bench_single(predictor, files: Sequence[str], s: BenchSettings) -> dict:
    """End-to-end single image: Predictor.predict(path, faces='off') on files from disk."""
    n = len(files)

    def run(i):
        # detect_blank=False: a dataset's near-blank image must still be timed like the others
        rows = predictor.predict(files[i % n], faces="off", detect_blank=False)
        if not rows or not rows[0].ok:
            raise RuntimeError(f"prediction failed for {files[i % n]}: {rows[0].status if rows else 'no rows'}")

    out = timed(run, s.single_runs, s.warmup)
    out["what"] = "Predictor.predict(path, faces='off'): read the file, decode, grayscale, resize, one forward pass"
    out["distinct_files"] = n
    return out


def bench_naive(predictor, files: Sequence[str], s: BenchSettings) -> dict:
    """The seed's way: read the same file, then keras model.predict(x[None]) per image."""
    from .images import read_image

    model, size, n = predictor.model, predictor.size, len(files)

    def run(i):
        x = read_image(files[i % n], mode="L", size=size).astype(np.float32)[..., None]
        model.predict(x[None], verbose=0)

    out = timed(run, s.naive_runs, s.naive_warmup)
    out["what"] = "read_image(path) then keras model.predict(x[None], verbose=0) per image"
    out["distinct_files"] = n
    return out


def bench_batch(predictor, x: np.ndarray, s: BenchSettings, n_images: int | None = None) -> dict:
    """predict_arrays throughput at batch s.batch_size over n_images (default s.batch_images), median of repeats."""
    n_images = int(n_images or s.batch_images)
    reps = int(np.ceil(n_images / max(len(x), 1)))
    xs = np.concatenate([x] * reps)[:n_images] if reps > 1 else x[:n_images]
    predictor.predict_arrays(xs[: s.batch_size * 2], batch_size=s.batch_size)  # warm-up (both batch shapes)
    predictor.predict_arrays(xs[: s.batch_size // 2 or 1], batch_size=s.batch_size)
    secs, cpus = [], []
    for _ in range(max(1, s.batch_repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        predictor.predict_arrays(xs, batch_size=s.batch_size)
        secs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    ips = [len(xs) / max(dt, 1e-9) for dt in secs]
    return {
        "batch_size": s.batch_size,
        "images": int(len(xs)),
        "repeats": len(secs),
        "seconds": float(np.median(secs)),
        "images_per_s": float(np.median(ips)),
        "images_per_s_best": float(max(ips)),
        "distinct_images": int(min(len(x), len(xs))),
        # CPU time of this process (all threads): less sensitive to other processes than wall time
        "images_per_cpu_s": float(len(xs) / max(float(np.median(cpus)), 1e-9)),
        "cpu_over_wall": float(np.median(cpus) / max(float(np.median(secs)), 1e-9)),
        "what": "Predictor.predict_arrays on in-memory (N, S, S, 1) raw pixels; median of the repeats",
    }


def bench_exports(
    model_dir: Path,
    predictor,
    x_eval: np.ndarray,
    s: BenchSettings,
    workdir: Path,
    keras_top1: np.ndarray | None = None,
) -> dict:
    """Export to each variant in a temp folder; size, single-image p50 and top-1 agreement with Keras."""
    from . import export as ex

    out: dict[str, dict] = {}
    if keras_top1 is None:
        keras_top1 = predictor.predict_arrays(x_eval, batch_size=256).argmax(1)
    one = x_eval[:1]
    for key, fmt, quant in EXPORT_VARIANTS:
        is_float = quant in ("none", "float16")
        row: dict[str, Any] = {
            "format": fmt,
            "quantize": quant,
            "skipped": None,
            "target_agreement": TARGET_FLOAT_AGREEMENT if is_float else None,
        }
        if fmt == "onnx" and not ex.onnx_available():
            row["skipped"] = ex.onnx_converter_missing()
            out[key] = row
            continue
        path = workdir / f"{model_dir.name}_{key}.{fmt}"
        try:
            t0 = time.perf_counter()
            info = ex.export_model(model_dir, fmt, quant, out=path, data_dir=None)
            row["export_seconds"] = float(time.perf_counter() - t0)
            row["how"] = info["how"]
            row["bytes"] = int(info["bytes"])
            row["mb"] = round(info["bytes"] / 1e6, 3)
            lat = timed(lambda i, path=path: ex.exported_predict(path, one), s.export_runs, s.warmup)
            row["single_image"] = {k: lat[k] for k in ("runs", "warmup", "p50_ms", "p95_ms", "mean_ms")}
            row["single_image"]["what"] = "exported_predict(path, x[None]) on a preprocessed (1, S, S, 1) array"
            preds = np.concatenate([ex.exported_predict(path, x_eval[i : i + 256]) for i in range(0, len(x_eval), 256)])
            agree = float(np.mean(preds.argmax(1) == keras_top1))
            row["agreement"] = agree
            row["n_agreement"] = int(len(x_eval))
            row["pass"] = bool(agree >= TARGET_FLOAT_AGREEMENT) if is_float else None
        except Exception as e:  # noqa: BLE001 - one failing converter must not stop the benchmark
            row["skipped"] = f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"
        finally:
            with contextlib.suppress(OSError):
                if path.exists():
                    path.unlink()
        out[key] = row
    return out


def bench_model(
    name: str, model_dir: Path, bench_data: BenchData, s: BenchSettings, workdir: Path, stand_in: bool, exports: bool
) -> dict:
    from .predict import load_predictor

    predictor = load_predictor(model_dir)
    size = predictor.size
    x_test = arrays_at(bench_data.test_pixels, size)
    res: dict[str, Any] = {
        "model_dir": str(model_dir),
        "untrained_stand_in": bool(stand_in),
        "input_size": size,
        "classes": list(predictor.classes),
        "params": int(predictor.model.count_params()),
    }
    res["single_image"] = bench_single(predictor, bench_data.test_files, s)
    res["naive_baseline"] = bench_naive(predictor, bench_data.test_files, s)
    res["speedup_p50"] = res["naive_baseline"]["p50_ms"] / max(res["single_image"]["p50_ms"], 1e-9)
    res["batch"] = bench_batch(predictor, x_test, s, None if name == "cnn" else s.backbone_batch_images)
    if exports:
        x_eval = x_test[: s.agreement_max]
        res["exports"] = bench_exports(Path(model_dir), predictor, x_eval, s, workdir)
    else:
        res["exports"] = {"skipped": "exports only for " + ", ".join(s.export_models or ()) + " in --quick mode"}
    import keras

    del predictor
    keras.backend.clear_session()
    return res


def latency_targets(models: dict[str, dict]) -> dict[str, dict]:
    cnn = models.get("cnn")
    t = {
        "cnn_single_p50_le_5ms": _target(
            cnn["single_image"]["p50_ms"] if cnn else None,
            TARGET_CNN_P50_MS,
            "<=",
            "CNN single-image end-to-end p50 (ms)",
        ),
        "cnn_speedup_ge_10x": _target(
            cnn["speedup_p50"] if cnn else None,
            TARGET_CNN_SPEEDUP,
            ">=",
            "CNN naive model.predict p50 / Predictor.predict p50",
        ),
        "cnn_batch_ge_2000_ips": _target(
            cnn["batch"]["images_per_s"] if cnn else None,
            TARGET_CNN_BATCH_IPS,
            ">=",
            f"CNN predict_arrays images/s at batch 256, "
            f"{cnn['input_size'] if cnn else 48}x{cnn['input_size'] if cnn else 48}",
        ),
    }
    worst = max((m["single_image"]["p50_ms"] for m in models.values()), default=None)
    t["all_models_single_p50_lt_100ms"] = _target(
        worst, TARGET_ALL_P50_MS, "<", "slowest model's single-image end-to-end p50 (ms)"
    )
    t["all_models_single_p50_lt_100ms"]["models"] = list(models)
    for name, m in models.items():
        ex = m.get("exports", {})
        for key, row in ex.items():
            if isinstance(row, dict) and row.get("target_agreement") is not None:
                if row.get("skipped"):
                    t[f"{name}_{key}_agreement_ge_99.5"] = {
                        "pass": None,
                        "reason": row["skipped"],
                        "threshold": TARGET_FLOAT_AGREEMENT,
                        "op": ">=",
                    }
                else:
                    t[f"{name}_{key}_agreement_ge_99.5"] = _target(
                        row["agreement"], TARGET_FLOAT_AGREEMENT, ">=", f"{name} {key} top-1 agreement with Keras"
                    )
    return t


def run_latency(
    model_dirs: dict[str, Path], bench_data: BenchData, s: BenchSettings, workdir: Path, stand_ins: bool
) -> dict:
    models: dict[str, dict] = {}
    exports_for = set(model_dirs) if s.export_models is None else set(s.export_models)
    for name, d in model_dirs.items():
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        models[name] = bench_model(name, d, bench_data, s, workdir, stand_ins, name in exports_for)
    targets = latency_targets(models)
    decided = [v["pass"] for v in targets.values() if v["pass"] is not None]
    return {"models": models, "targets": targets, "all_targets_pass": bool(decided) and all(decided)}


def run_pipeline(bench_data: BenchData, s: BenchSettings, seed: int = 42) -> dict:
    """tf.data training pipeline images/s over an epoch vs the CNN's model.fit images/s on the same batches."""
    import keras
    import tensorflow as tf

    from . import models
    from .pipeline import make_dataset

    x, y = bench_data.train_pixels, bench_data.train_labels
    n = len(x)
    ds = make_dataset(x, y, image_size=s.pipeline_image_size, batch_size=s.pipeline_batch, training=True, seed=seed)

    def epoch() -> tuple[float, int, list]:
        got, keep = 0, []
        t0 = time.perf_counter()
        for bx, by in ds:
            got += int(bx.shape[0])
            if len(keep) < s.train_steps + s.train_warmup_steps:
                keep.append((bx.numpy(), by.numpy()))
        return time.perf_counter() - t0, got, keep

    cold_dt, cold_n, batches = epoch()  # the first epoch also fills the cache
    warm_dt, warm_n, _ = epoch()
    pipe = {
        "what": "emolib.pipeline.make_dataset(train pixels, labels, training=True): shuffle, batch, augment, prefetch",
        "images": n,
        "batch_size": s.pipeline_batch,
        "image_size": s.pipeline_image_size,
        "epoch_cold": {"seconds": float(cold_dt), "images": cold_n, "images_per_s": float(cold_n / max(cold_dt, 1e-9))},
        "epoch_warm": {"seconds": float(warm_dt), "images": warm_n, "images_per_s": float(warm_n / max(warm_dt, 1e-9))},
    }
    # The same batches, already in memory, so fit measures the training step only.
    keras.utils.set_random_seed(seed)
    model = models.build_model(
        "cnn", (s.pipeline_image_size, s.pipeline_image_size, 1), len(bench_data.classes), weights="none"
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    warm = batches[: s.train_warmup_steps]
    timed_batches = batches[s.train_warmup_steps :] or batches

    # Materialise the batches as one in-memory dataset of tensors.
    def mem_ds(bs):
        return tf.data.Dataset.from_tensor_slices(
            (np.concatenate([b[0] for b in bs]), np.concatenate([b[1] for b in bs]))
        ).batch(s.pipeline_batch)

    model.fit(mem_ds(warm or batches[:1]), epochs=1, verbose=0, shuffle=False)  # trace and compile the train step
    timed_ds = mem_ds(timed_batches).cache()
    for _ in timed_ds:  # fill the cache: the timed fit reads memory only
        pass
    images = int(sum(len(b[1]) for b in timed_batches))
    t0 = time.perf_counter()
    model.fit(timed_ds, epochs=1, verbose=0, shuffle=False)
    dt = time.perf_counter() - t0
    train = {
        "what": "CNN model.fit (Adam, sparse CE) on pipeline batches held in memory",
        "model": "cnn",
        "steps": len(timed_batches),
        "warmup_steps": len(warm),
        "images": images,
        "seconds": float(dt),
        "images_per_s": float(images / max(dt, 1e-9)),
    }
    del model
    keras.backend.clear_session()
    ratio = pipe["epoch_warm"]["images_per_s"] / train["images_per_s"]
    ratio_cold = pipe["epoch_cold"]["images_per_s"] / train["images_per_s"]
    return {
        "pipeline": pipe,
        "train_step": train,
        "ratio_pipeline_over_train": float(ratio),
        "ratio_cold_epoch_over_train": float(ratio_cold),
        "targets": {
            "pipeline_faster_than_train_step": {
                "pass": bool(ratio > 1.0),
                "value": float(ratio),
                "threshold": 1.0,
                "op": ">",
                "what": "pipeline images/s (steady-state epoch) / training-step images/s",
            },
            "pipeline_cold_epoch_faster_than_train_step": {
                "pass": bool(ratio_cold > 1.0),
                "value": float(ratio_cold),
                "threshold": 1.0,
                "op": ">",
                "what": "pipeline images/s (first epoch, fills the cache) / training-step images/s",
            },
        },
        "note": "measured in isolation, one after the other; during training both share the same cores",
    }


# ----------------------------------------------------------------------- reporting
def latency_table(result: dict) -> Any:
    import pandas as pd

    rows = []
    for name, m in result["models"].items():
        rows.append(
            {
                "model": name + (" (untrained stand-in)" if m.get("untrained_stand_in") else ""),
                "size": m["input_size"],
                "p50 ms": m["single_image"]["p50_ms"],
                "p95 ms": m["single_image"]["p95_ms"],
                "naive p50 ms": m["naive_baseline"]["p50_ms"],
                "naive p95 ms": m["naive_baseline"]["p95_ms"],
                "speed-up": m["speedup_p50"],
                "batch img/s": m["batch"]["images_per_s"],
                "img/CPU-s": m["batch"].get("images_per_cpu_s"),
            }
        )
    return pd.DataFrame(rows)


def export_table(result: dict) -> Any:
    import pandas as pd

    rows = []
    for name, m in result["models"].items():
        for key, row in m.get("exports", {}).items():
            if not isinstance(row, dict):
                continue
            rows.append(
                {
                    "model": name,
                    "export": key,
                    "MB": row.get("mb"),
                    "p50 ms": row.get("single_image", {}).get("p50_ms"),
                    "agreement": row.get("agreement"),
                    "pass": row.get("pass") if row.get("target_agreement") else "(reported only)",
                    "skipped": row.get("skipped") or "",
                }
            )
    return pd.DataFrame(rows)


def format_report(latency: dict, pipeline: dict | None) -> str:
    lines = ["", "=" * 78, f"emolib benchmark  {latency['timestamp']}  ({'quick' if latency['quick'] else 'full'})"]
    if latency.get("stand_ins"):
        lines.append("*** " + STAND_IN_NOTE + " ***")
    if latency["data"].get("synthetic"):
        lines.append("*** SYNTHETIC DATA ***")
    lines.append(ONE_RUN_NOTE)
    lines.append(
        f"machine: {latency['machine']}  TF threads: intra={latency['tf_threads']['intra_op']} "
        f"inter={latency['tf_threads']['inter_op']} (0 = default)"
    )
    load = latency.get("cpu_load") or {}
    if load.get("load_average_start"):
        lines.append(
            f"load average at start {load['load_average_start']}, at end {load['load_average_end']} "
            f"on {load['cpu_count']} cores; this process used {load['process_cpu_seconds']} s CPU "
            f"in {load['wall_seconds']} s wall"
        )
    lines += [
        "",
        "Single-image end to end (file -> Predictor.predict) vs naive model.predict; batch 256 throughput:",
        latency_table(latency).to_string(index=False, float_format=lambda v: f"{v:,.2f}"),
    ]
    et = export_table(latency)
    if len(et):
        lines += [
            "",
            "Exported models (single-image p50 via exported_predict; top-1 agreement with Keras):",
            et.to_string(index=False, float_format=lambda v: f"{v:,.4f}"),
        ]
    if pipeline is not None:
        p = pipeline
        lines += [
            "",
            "Input pipeline vs training step (images/s):",
            f"  tf.data pipeline: {p['pipeline']['epoch_warm']['images_per_s']:,.0f} (steady epoch), "
            f"{p['pipeline']['epoch_cold']['images_per_s']:,.0f} (first epoch)",
            f"  CNN train step:   {p['train_step']['images_per_s']:,.0f}   ratio {p['ratio_pipeline_over_train']:.1f}x",
        ]
    lines += ["", "Targets:"]
    targets = dict(latency["targets"])
    if pipeline is not None:
        targets.update(pipeline["targets"])
    for k, v in targets.items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[v["pass"]]
        val = v.get("value")
        lines.append(
            f"  [{verdict}] {k}"
            + (f": {val:,.4g} {v.get('op')} {v.get('threshold')}" if val is not None else f" ({v.get('reason', '')})")
        )
    lines.append("=" * 78)
    return "\n".join(lines)


class _Load:
    """How busy the machine was while we measured: load averages and our share of the CPU."""

    def __init__(self):
        self.load_start = _loadavg()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def record(self) -> dict:
        wall, cpu = time.perf_counter() - self.wall0, time.process_time() - self.cpu0
        return {
            "load_average_start": self.load_start,
            "load_average_end": _loadavg(),
            "cpu_count": os.cpu_count(),
            "wall_seconds": round(wall, 2),
            "process_cpu_seconds": round(cpu, 2),
            "note": "load averages (1, 5, 15 min) above the core count mean other processes competed for "
            "the CPU while this ran",
        }


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _header(s: BenchSettings, threads: dict) -> dict:
    return {
        "timestamp": now_iso(),
        "quick": s.quick,
        "settings": dataclasses.asdict(s),
        "note": ONE_RUN_NOTE,
        "machine": machine_info(),
        "versions": library_versions(),
        "tf_threads": threads,
        "timer": "time.perf_counter, after warm-up calls",
    }


def run_benchmark(
    out: str | Path,
    data_dir: str | Path,
    models_dir: str | Path = "reports/models",
    quick: bool = False,
    models: Sequence[str] | None = None,
    settings: BenchSettings | None = None,
    pipeline: bool = True,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    progress: bool = False,
) -> tuple[dict, dict | None]:
    """Run everything, write out/latency.json and out/pipeline.json; returns both dicts."""
    threads = configure_threads(intra_op_threads, inter_op_threads)
    s = settings or (BenchSettings.quick_() if quick else BenchSettings.full())
    names = tuple(models) if models else MODEL_NAMES
    out = Path(out)
    work = Path(tempfile.mkdtemp(prefix="emolib-bench-"))
    try:
        found = find_model_dirs(models_dir, names)
        stand_ins = not found
        classes: Sequence[str] = DEFAULT_CLASSES
        if found:
            classes = read_card(next(iter(found.values())))["classes"]
        else:
            print(
                f"bench: no trained model under {models_dir}; building untrained stand-ins of "
                f"{', '.join(names)} (latency does not depend on training)",
                file=sys.stderr,
            )
            found = make_stand_ins(work / "stand_ins", names, classes)
        bench_data = load_bench_data(data_dir, classes, work, progress=progress)
        header = _header(s, threads)
        (work / "exports").mkdir()
        load = _Load()
        lat = run_latency(found, bench_data, s, work / "exports", stand_ins)
        latency = {
            "schema": SCHEMA_LATENCY,
            **header,
            "data": bench_data.describe(),
            "models_dir": str(models_dir),
            "stand_ins": stand_ins,
            "stand_in_note": STAND_IN_NOTE if stand_ins else None,
            **lat,
            "cpu_load": load.record(),
        }
        atomic_write_json(out / "latency.json", latency)
        pipe = None
        if pipeline:
            print("bench: input pipeline ...", file=sys.stderr, flush=True)
            load = _Load()
            p = run_pipeline(bench_data, s)
            pipe = {
                "schema": SCHEMA_PIPELINE,
                **_header(s, threads),
                "data": bench_data.describe(),
                **p,
                "cpu_load": load.record(),
            }
            atomic_write_json(out / "pipeline.json", pipe)
        return latency, pipe
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/bench", help="folder for latency.json and pipeline.json")
    parser.add_argument(
        "--data-dir",
        required=True,
        help="dataset folder (or fer2013.csv); a missing one gives a temporary synthetic set",
    )
    parser.add_argument("--models-dir", default="reports/models")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma list of models to benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, CNN-only exports")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline benchmark")
    parser.add_argument("--intra-op-threads", type=int, default=0, help="0 = TensorFlow's default")
    parser.add_argument("--inter-op-threads", type=int, default=0, help="0 = TensorFlow's default")
    parser.add_argument(
        "--wild-dir",
        default=None,
        help="real photos for the face-detection benchmark (faces.json; "
        "default: ../shared/data/wild_faces beside the repo)",
    )
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in names if m not in MODEL_NAMES]
    if bad:
        parser.exit(2, f"error: unknown model(s) {bad}; choose from {list(MODEL_NAMES)}\n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    latency, pipe = run_benchmark(
        args.out,
        args.data_dir,
        args.models_dir,
        quick=args.quick,
        models=names,
        pipeline=not args.no_pipeline,
        intra_op_threads=args.intra_op_threads,
        inter_op_threads=args.inter_op_threads,
        progress=True,
    )
    print(format_report(latency, pipe))
    bench_faces.bench_step(args.out, args.wild_dir, quick=args.quick)  # faces.json: detectors on real photos
    from . import bench_startup  # emolib predict with the default model as a whole process -> startup.json

    print(bench_startup.format_report(bench_startup.run(args.out, args.data_dir)))
    print(f"\nwrote {Path(args.out) / 'latency.json'}" + (f" and {Path(args.out) / 'pipeline.json'}" if pipe else ""))
    from .bench_video import run_video_bench  # the video row: reports/bench/video.json

    run_video_bench(args.out, args.models_dir, quick=args.quick, progress=True)
    from . import bench_train  # the CNNs' train step, TensorFlow's oneDNN on and off -> train_step.json

    print(bench_train.format_report(bench_train.run(args.out, repeats=1 if args.quick else 3)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
