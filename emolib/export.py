"""Export a trained model directory to TFLite or ONNX, and run the exported file.

TFLite (``tf.lite.TFLiteConverter.from_keras_model``, free batch size):

* ``quantize='none'``    float32, the Keras graph as it is.
* ``quantize='float16'`` float16 weights (``target_spec.supported_types=[tf.float16]``),
  computed in float32: half the size, practically the same outputs. float16 holds
  about 3 significant digits between 6e-5 and 65504; a VGG16 trained from scratch has
  no normalisation inside, its pooled features reach ~1e6, and the converter folds the
  head's BatchNorm into constants of ~1e-8 that float16 rounds away (top-1 agreement
  fell to 38%; dynamic-range int8 too). `quantization_safe_copy` first rescales such a
  model exactly (see there), for float16 and int8.
  Every float16 file is checked against the Keras model before it is written
  (`verify_export`); one that disagrees is an ExportError, never a silent bad file.
  Every TFLite file must also run in this runtime before it is written (XNNPACK
  refuses a full-int8 VGG16, for one).
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

from .modelfolder import CARD_FILE, MODEL_FILE, load_model, read_card, resolve_model_dir
from .predict import iter_image_paths
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


def representative_images(
    data_dir: str | Path, size: int, limit: int = REPRESENTATIVE_LIMIT, seed: int = 0
) -> np.ndarray:
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


def probe_images(size: int, n: int = 64, seed: int = 0) -> np.ndarray:
    """`n` face-sized test inputs (N, size, size, 1) float32 0..255 with varied brightness,
    contrast, smooth structure and noise: a stand-in for real images when none are given."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        img = (
            rng.uniform(20, 235)
            + rng.uniform(0, 100)
            * np.sin(rng.uniform(1, 12) * xx + rng.uniform(0, 6))
            * np.cos(rng.uniform(1, 12) * yy)
            + rng.normal(0, rng.uniform(0, 40), (size, size))
        )
        out.append(np.clip(img, 0, 255))
    return np.stack(out).astype(np.float32)[..., None]


def _is_homogeneous_chain(backbone) -> bool:
    """True when every layer is an input, a Conv2D with ReLU / no activation, or max pooling:
    then scaling a conv's kernel by 1/a scales everything after it by 1/a (ReLU(x/a) = ReLU(x)/a)."""
    import keras

    for layer in backbone.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.MaxPooling2D)):
            continue
        if (
            isinstance(layer, keras.layers.Conv2D)
            and getattr(layer.activation, "__name__", "") in ("relu", "linear")
            and layer.use_bias
        ):
            continue
        return False
    return True


DEAD_FEATURE_VARIANCE = 1e-12  # x median variance: a pooled ReLU channel that never fires


def quantization_safe_copy(model) -> tuple[object, list[str]]:
    """An exactly equivalent copy of `model` whose weights survive float16 or int8 storage, and what changed.

    The case it handles is the one the four models meet: a backbone without
    normalisation (VGG16 trained from scratch) whose pooled features are huge (~1e6) and
    spread over orders of magnitude, feeding the head's first BatchNorm ('head_bn0') with
    moving variances from ~1e-13 (dead channels) to ~1e14. The converter folds that
    BatchNorm, gamma / sqrt(var) per feature, into constants and into the next Dense
    weights: float16 cannot hold ~1e-8, and one int8 scale per output cannot hold
    weights whose rows differ by 1e3 (float16 fell to 38% agreement, dynamic-range int8
    too). Working from the input side, the copy:

    1. divides the pooled features by s = 2**k, k chosen so their median variance is ~1:
       each of the L convolutions' kernels by a_l = m_l * r (m_l its largest |weight|,
       so every kernel ends with the same range) and its bias by a_1 * ... * a_l;
    2. divides each live feature by its own standard deviation: that output channel of
       the last convolution (kernel column and bias) and that feature's BatchNorm mean
       and variance;
    3. gives dead features (moving variance < 1e-12 x the median: a ReLU channel that
       never fired) mean 0 and variance 1, with beta taking their constant output.

    Steps 1 and 2 are exact for a ReLU / max-pool chain (ReLU(x / a) = ReLU(x) / a, per
    channel too), step 3 for features that are exactly zero, as dead ones are. The copy
    computes the same function up to float32 rounding. Models that need nothing, or that
    are not such a chain, come back as they are, with an empty list; `verify_export`
    still checks float16 files, `make bench` reports int8 agreement.
    """
    import math

    import keras

    from .models import backbone_of

    backbone = backbone_of(model)
    bn = next((layer for layer in model.layers if layer.name == "head_bn0"), None)
    if backbone is None or bn is None:
        return model, []
    gamma, beta, mean, var = (w.astype(np.float64) for w in bn.get_weights())
    dead = var < DEAD_FEATURE_VARIANCE * np.median(var)
    live_sd = np.sqrt(var[~dead]) if (~dead).any() else np.ones(1)
    k = round(math.log2(max(float(np.median(live_sd)), 1.0)))
    spread = float(live_sd.max() / max(live_sd.min(), 1e-30))
    if (k < 4 and spread < 2**8 and not dead.any()) or not _is_homogeneous_chain(backbone):
        return model, []  # features within ~16x of unit scale and of each other need nothing
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    s = 2.0**k
    convs = [layer for layer in backbone_of(copy).layers if isinstance(layer, keras.layers.Conv2D)]
    peaks = [max(float(np.abs(layer.get_weights()[0]).max()), 1e-30) for layer in convs]
    log_r = (math.log(s) - sum(math.log(m) for m in peaks)) / len(convs)
    scale = 1.0
    for layer, peak in zip(convs, peaks):  # step 1
        a = peak * math.exp(log_r)
        scale *= a
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel / a, bias / scale])
    mean, var, eps = mean / s, var / s**2, bn.epsilon / s**2
    beta = np.where(dead, beta - gamma * mean / np.sqrt(var + eps), beta)  # step 3
    mean, var = np.where(dead, 0.0, mean), np.where(dead, 1.0, var)
    per_feature = np.where(dead, 1.0, np.sqrt(var))  # step 2
    kernel, bias = convs[-1].get_weights()
    convs[-1].set_weights([(kernel / per_feature).astype(kernel.dtype), (bias / per_feature).astype(bias.dtype)])
    bn_copy = copy.get_layer("head_bn0")
    bn_copy.set_weights([w.astype(np.float32) for w in (gamma, beta, mean / per_feature, var / per_feature**2)])
    bn_copy.epsilon = eps
    return copy, [
        f"backbone features rescaled for quantization (an exact reparametrisation of {len(convs)} "
        f"convolutions and head_bn0: 2^-{k} overall, per-feature spread {spread:.3g}x evened out, "
        f"{int(dead.sum())} dead features neutralised)"
    ]


def tflite_bytes(model, quantize: str = "none", representative: np.ndarray | None = None) -> tuple[bytes, str]:
    """Convert a Keras model with input (S, S, 1); returns (flatbuffer, description of the quantization).

    The flatbuffer keeps a free batch size (resize the input tensor to run N images).
    """
    import tensorflow as tf

    if quantize not in QUANTIZE:
        raise ExportError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    # from_keras_model (a SavedModel underneath): from_concrete_functions on a Keras 3
    # model gives a flatbuffer with garbage weights in TF 2.21.
    changes = []
    if quantize != "none":
        model, changes = quantization_safe_copy(model)
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
            return converter.convert(), how + "".join(f"; {c}" for c in changes)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"TFLite conversion failed ({type(e).__name__}: {e})") from e


def onnx_converter_missing() -> str | None:
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
    return onnx_converter_missing() is None


def export_onnx_file(model, out_path: str | Path, opset: int | None = None) -> Path:
    """Keras 3 model.export(format='onnx') (tf2onnx underneath), written atomically."""
    problem = onnx_converter_missing()
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


def export_model(
    model_dir: str | Path,
    fmt: str = "tflite",
    quantize: str = "none",
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> dict:
    """Export `model_dir`'s model.keras; returns {'path', 'format', 'quantize', 'how', 'bytes', 'classes'}."""
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {FORMATS}, got {fmt!r}")
    if quantize not in QUANTIZE:
        raise ExportError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    if fmt == "onnx" and quantize != "none":
        raise ExportError(
            "--quantize applies to TFLite only; ONNX is exported as float32 "
            "(quantize it afterwards with onnxruntime.quantization if needed)"
        )
    mdir = resolve_model_dir(model_dir)
    card = read_card(mdir)
    model = load_model(mdir, card)
    out_path = Path(out) if out is not None else default_out_path(mdir, fmt, quantize)
    if fmt == "tflite":
        reps = None
        if quantize == "int8" and data_dir is not None:
            reps = representative_images(data_dir, int(model.input_shape[1]))
        data, how = tflite_bytes(model, quantize, reps)
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(data)
            # The file only lands if it runs here and computes what the Keras model does: float16
            # closely; calibrated int8 roughly, on the real images it was given; others just run.
            calibrated = quantize == "int8" and reps is not None
            verify_export(
                model,
                tmp,
                data_dir=data_dir,
                compare=quantize == "float16" or calibrated,
                **({"min_agreement": 0.9, "max_prob_diff": 1.0} if calibrated else {}),
            )
    else:
        export_onnx_file(model, out_path)
        how = "float32 (Keras model.export via tf2onnx)"
    return {
        "path": str(out_path),
        "format": fmt,
        "quantize": quantize,
        "how": how,
        "bytes": out_path.stat().st_size,
        "classes": list(card["classes"]),
        "source": str(mdir / MODEL_FILE),
        "card": str(mdir / CARD_FILE),
    }


def verify_export(
    model,
    path: str | Path,
    data_dir: str | Path | None = None,
    n: int = 64,
    min_agreement: float = 0.98,
    max_prob_diff: float = 0.1,
    compare: bool = True,
) -> dict:
    """Run the exported file and the Keras model on `n` images; ExportError if the file does not
    run in this runtime, gives non-finite outputs, or (compare=True) disagrees with Keras.

    Images come from `data_dir` when given, else from `probe_images`. The thresholds
    catch a broken conversion (float16 overflow or underflow), not the last decimal:
    a sound float16 export agrees on ~100% with probabilities within ~1e-3. int8 files
    are close, not identical: export_model compares calibrated ones at a looser 90%
    and only runs dynamic-range ones (`make bench` reports their agreement).
    Returns {'n', 'agreement', 'max_prob_diff'}.
    """
    size = int(model.input_shape[1])
    x = None
    if data_dir is not None:
        with contextlib.suppress(ExportError):
            x = representative_images(data_dir, size, limit=n, seed=1)
    if x is None:
        x = probe_images(size, n)
    # an eager call, not model.predict: no tf.function to trace for each freshly loaded model
    ref = np.concatenate(
        [np.asarray(model(x[i : i + 64], training=False), dtype=np.float32) for i in range(0, len(x), 64)]
    )
    try:
        got = exported_predict(path, x)
    except Exception as e:  # noqa: BLE001 - e.g. XNNPACK refusing an op of a full-int8 VGG16
        raise ExportError(
            f"the converted model does not run in the TFLite runtime here "
            f"({type(e).__name__}: {' '.join(str(e).split())[:300]}); the file was not "
            f"written. Try another --quantize option."
        ) from e
    if not np.isfinite(got).all():
        raise ExportError("the exported model gives non-finite outputs; the file was not written")
    if not compare:
        return {"n": int(len(x)), "agreement": None, "max_prob_diff": None}
    result = {
        "n": int(len(x)),
        "agreement": float(np.mean(ref.argmax(1) == got.argmax(1))),
        "max_prob_diff": float(np.abs(ref - got).max()),
    }
    if result["agreement"] < min_agreement or not result["max_prob_diff"] <= max_prob_diff:
        raise ExportError(
            f"the exported model disagrees with the Keras model on {result['n']} check images "
            f"(top-1 agreement {result['agreement']:.1%}, max |difference in probability| "
            f"{result['max_prob_diff']:.3g}); the file was not written. Export with another --quantize "
            f"option (none keeps float32), and please report the model this happened with."
        )
    return result


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
        xin = np.clip(np.round(x / scale + zero), np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max).astype(
            inp["dtype"]
        )
    interp.set_tensor(inp["index"], xin)
    interp.invoke()
    y = interp.get_tensor(outd["index"])
    if outd["dtype"] != np.float32:
        scale, zero = outd["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return np.asarray(y, dtype=np.float32)
