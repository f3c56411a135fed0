"""Export a trained model directory to TFLite or ONNX, and run the exported file.

TFLite (``tf.lite.TFLiteConverter.from_keras_model``, free batch size):

* ``quantize='none'``    float32, the Keras graph as it is.
* ``quantize='float16'`` float16 weights (``target_spec.supported_types=[tf.float16]``),
  computed in float32: half the size, practically the same outputs.
* ``quantize='int8'`` with representative images (`data_dir`, a folder of images or of
  ``<class>/`` folders): full integer quantization, int8 weights *and* activations
  calibrated on up to 200 of those images; the model keeps a float32 input (raw pixels
  0..255) and a float32 softmax output, so callers do not change.
* ``quantize='int8'`` without images: dynamic-range quantization, int8 weights and
  float activations. It needs no calibration data; random noise would calibrate the
  activation ranges on the wrong distribution, so no random dataset is used.

ONNX: Keras 3's ``model.export(path, format='onnx')``, which on the TensorFlow backend
converts with ``tf2onnx`` (``pip install tf2onnx onnx onnxruntime``); float32 only.

`exported_predict(path, x)` runs a ``.tflite`` (LiteRT's ``ai_edge_litert`` interpreter
when installed, else ``tf.lite.Interpreter``) or an ``.onnx`` file (``onnxruntime``) on
raw-pixel inputs (N, S, S, 1), so a benchmark can check agreement with Keras.
"""
from __future__ import annotations

import contextlib
import functools
import io
import warnings
from pathlib import Path

import numpy as np

from .predict import CARD_FILE, MODEL_FILE, _load_keras_model, _read_card, iter_image_paths, resolve_model_dir
from .runinfo import atomic_path

FORMATS: tuple[str, ...] = ("tflite", "onnx")
QUANTIZE: tuple[str, ...] = ("none", "float16", "int8")
REPRESENTATIVE_LIMIT = 200


class ExportError(RuntimeError):
    """An export cannot be done here (a missing converter, a bad option); says what to do."""


def default_out_path(model_dir: str | Path, fmt: str, quantize: str = "none") -> Path:
    """reports/models/<m>/model.tflite, model_float16.tflite, model_int8.tflite, model.onnx."""
    suffix = "" if quantize == "none" else f"_{quantize}"
    return Path(model_dir) / f"model{suffix}.{fmt}"


def representative_images(data_dir: str | Path, size: int, limit: int = REPRESENTATIVE_LIMIT,
                          seed: int = 0) -> np.ndarray:
    """Up to `limit` readable images under `data_dir` (recursive), (N, size, size, 1) float32 0..255.

    Files are spread over the whole (sorted) listing so every class folder contributes.
    Images are used whole (face crops, as in a labelled folder).
    """
    from .images import ImageReadError, read_image

    paths, _ = iter_image_paths([data_dir])
    if not paths:
        raise ExportError(f"{data_dir}: no images found for int8 calibration")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    out = []
    for i in order:
        try:
            out.append(read_image(paths[i], mode="L", size=size))
        except ImageReadError:
            continue
        if len(out) >= limit:
            break
    if not out:
        raise ExportError(f"{data_dir}: none of the {len(paths)} images could be read for int8 calibration")
    return np.stack(out).astype(np.float32)[..., None]


def tflite_bytes(model, quantize: str = "none", representative: np.ndarray | None = None) -> tuple[bytes, str]:
    """Convert a Keras model with input (S, S, 1); returns (flatbuffer, description of the quantization).

    The flatbuffer keeps a free batch size (resize the input tensor to run N images).
    """
    import tensorflow as tf

    if quantize not in QUANTIZE:
        raise ExportError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    # from_keras_model (a SavedModel underneath): from_concrete_functions on a Keras 3
    # model gives a flatbuffer with garbage weights in TF 2.21.
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "none":
        how = "float32"
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        how = "float16 weights, float32 compute"
    elif representative is None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        how = "int8 dynamic-range (int8 weights, float activations; no calibration data)"
    else:
        reps = np.asarray(representative, dtype=np.float32)

        def gen():
            for img in reps:
                yield [img[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        how = f"full int8 (weights and activations, calibrated on {len(reps)} images; float32 input/output)"
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # Keras prints the temporary SavedModel's signature; the converter warns about
            # input statistics that a float32-input model does not use.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            return converter.convert(), how
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"TFLite conversion failed ({type(e).__name__}: {e})") from e


def _onnx_converter_missing() -> str | None:
    """None when the ONNX export can run here, else what to install."""
    missing = []
    for mod, pkg in (("tf2onnx", "tf2onnx"), ("onnx", "onnx")):
        try:
            __import__(mod)
        except Exception:  # noqa: BLE001 - broken installs count as missing
            missing.append(pkg)
    if missing:
        return f"ONNX export needs {' and '.join(missing)}: pip install tf2onnx onnx onnxruntime"
    return None


def onnx_available() -> bool:
    return _onnx_converter_missing() is None


def export_onnx_file(model, out_path: str | Path, opset: int | None = None) -> Path:
    """Keras 3 model.export(format='onnx') (tf2onnx underneath), written atomically."""
    problem = _onnx_converter_missing()
    if problem:
        raise ExportError(problem)
    size = int(model.input_shape[1])
    model(np.zeros((1, size, size, 1), np.float32), training=False)  # a loaded model must be called once
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            model.export(str(tmp), format="onnx", verbose=False, opset_version=opset)
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"ONNX conversion failed ({type(e).__name__}: {e})") from e
    return out_path


def export_model(model_dir: str | Path, fmt: str = "tflite", quantize: str = "none",
                 out: str | Path | None = None, data_dir: str | Path | None = None) -> dict:
    """Export `model_dir`'s model.keras; returns {'path', 'format', 'quantize', 'how', 'bytes', 'classes'}."""
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {FORMATS}, got {fmt!r}")
    if quantize not in QUANTIZE:
        raise ExportError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    if fmt == "onnx" and quantize != "none":
        raise ExportError("--quantize applies to TFLite only; ONNX is exported as float32 "
                          "(quantize it afterwards with onnxruntime.quantization if needed)")
    mdir = resolve_model_dir(model_dir)
    card = _read_card(mdir)
    model = _load_keras_model(mdir / MODEL_FILE)
    out_path = Path(out) if out is not None else default_out_path(mdir, fmt, quantize)
    if fmt == "tflite":
        reps = None
        if quantize == "int8" and data_dir is not None:
            reps = representative_images(data_dir, int(model.input_shape[1]))
        data, how = tflite_bytes(model, quantize, reps)
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(data)
    else:
        export_onnx_file(model, out_path)
        how = "float32 (Keras model.export via tf2onnx)"
    return {"path": str(out_path), "format": fmt, "quantize": quantize, "how": how,
            "bytes": out_path.stat().st_size, "classes": list(card["classes"]),
            "source": str(mdir / MODEL_FILE), "card": str(mdir / CARD_FILE)}


# -- running exported files ------------------------------------------------------------
def _tflite_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # the maintained LiteRT runtime

        return Interpreter
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter


@functools.lru_cache(maxsize=8)
def _tflite_runner(path: str, mtime_ns: int):
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that LiteRT replaces it
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        interp = _tflite_interpreter_class()(model_path=path)
    interp.allocate_tensors()
    return interp


@functools.lru_cache(maxsize=8)
def _onnx_session(path: str, mtime_ns: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("running an .onnx file needs onnxruntime: pip install onnxruntime") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def exported_predict(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Probabilities (N, classes) of an exported .tflite or .onnx model on raw pixels (N, S, S[, 1])."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such exported model")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if path.suffix == ".onnx":
        sess = _onnx_session(*key)
        return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0], dtype=np.float32)
    if path.suffix != ".tflite":
        raise ExportError(f"{path}: unknown exported format (need .tflite or .onnx)")
    interp = _tflite_runner(*key)
    inp = interp.get_input_details()[0]
    outd = interp.get_output_details()[0]
    if tuple(inp["shape"]) != x.shape:
        interp.resize_tensor_input(inp["index"], list(x.shape), strict=False)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        outd = interp.get_output_details()[0]
    xin = x
    if inp["dtype"] != np.float32:  # an int8-input model: quantize with its own scale
        scale, zero = inp["quantization"]
        xin = np.clip(np.round(x / scale + zero), np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max).astype(inp["dtype"])
    interp.set_tensor(inp["index"], xin)
    interp.invoke()
    y = interp.get_tensor(outd["index"])
    if outd["dtype"] != np.float32:
        scale, zero = outd["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return np.asarray(y, dtype=np.float32)
