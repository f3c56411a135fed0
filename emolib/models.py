"""The models: the seed's custom CNN and three ImageNet backbones with the same head, and the
project's deeper CNN (`deepcnn`, issue 10).

Conventions (other modules rely on them):

* Every model takes RAW grayscale pixels: input (S, S, 1), float32 in 0..255.
  Everything else happens inside the graph, with serializable layers only (no
  Lambda), so a saved `.keras` file loads with `load_model(path, safe_mode=True)`
  and never needs an outside preprocessing step:
  - cnn, deepcnn: `Rescaling(1/255)`;
  - backbones: `BackbonePreprocess` (gray -> RGB by repeating the channel, then the
    backbone's `keras.applications.<x>.preprocess_input` equivalent: 'caffe' for
    VGG16/ResNet50, 'tf' for MobileNetV2).
* The backbone is nested as a sub-model named 'backbone' and called with
  `training=False`, so its BatchNorm layers stay in inference mode (and
  `apply_stage` keeps them non-trainable) during fine-tuning.
* The output layer is always float32 (safe under a 'mixed_float16' policy).

Public API: `build_model`, `build_model_with_info`, `apply_stage`, `count_params`,
`task_output_model`, `BackbonePreprocess`, `WeightsUnavailableError`, `WeightsFileNotFoundError`.
Which weights a backbone starts from ('auto', 'disjoint': pretrained offline on the
classes outside the task) is decided in `emolib.pretrain`; this module builds from
'imagenet', 'none' or a weights file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from pathlib import Path

import keras
from keras import layers, ops

from .config import CUSTOM_MODELS, MODEL_NAMES, Stage

__all__ = [
    "BACKBONES",
    "BackbonePreprocess",
    "WeightsUnavailableError",
    "WeightsFileNotFoundError",
    "WeightsFallbackWarning",
    "build_model",
    "build_pretraining_model",
    "build_model_with_info",
    "apply_stage",
    "count_params",
    "head_layers",
    "backbone_of",
    "preprocessing_description",
    "task_output_model",
    "imagenet_unavailable",
]

# ImageNet channel means in BGR order, as keras.applications 'caffe' mode uses them.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# name -> (keras.applications constructor name, preprocess mode, minimum input side)
BACKBONES: dict[str, tuple[str, str, int]] = {
    "vgg16": ("VGG16", "caffe", 32),
    "resnet50": ("ResNet50", "caffe", 32),
    "mobilenetv2": ("MobileNetV2", "tf", 32),
}
CNN_MIN_SIZE = 8  # three 2x2 poolings
# Momentum of the BatchNorm layers this module adds (CNN and head; the backbones keep
# theirs). Keras' default 0.99 needs hundreds of steps before the moving statistics
# used at inference match the data, so smoke/quick runs on a few hundred images
# predicted one class at validation; 0.9 (PyTorch's default) adapts in ~30 steps.
BN_MOMENTUM = 0.9
DOWNLOAD_SOCKET_TIMEOUT_S = 20.0  # per socket operation: an unreachable host fails fast


class WeightsUnavailableError(RuntimeError):
    """The requested backbone weights cannot be obtained (no network, missing or bad file)."""


class WeightsFileNotFoundError(WeightsUnavailableError, FileNotFoundError):
    """`weights` names a local file that does not exist."""


class WeightsFallbackWarning(UserWarning):
    """weights='auto' could not get ImageNet weights and fell back to random init."""


# --------------------------------------------------------------------------- layers
@keras.saving.register_keras_serializable(package="emolib")
class BackbonePreprocess(layers.Layer):
    """Raw 0..255 gray (or RGB) pixels -> the input a keras.applications backbone expects.

    mode 'caffe' (VGG16, ResNet50): RGB -> BGR, subtract the ImageNet means
    [103.939, 116.779, 123.68]; mode 'tf' (MobileNetV2): x / 127.5 - 1;
    mode 'torch': x / 255, then ImageNet mean/std normalisation.
    A one-channel input is repeated to three channels first. Computes in float32
    whatever the global dtype policy is.
    """

    MODES = ("caffe", "tf", "torch")

    def __init__(self, mode: str = "caffe", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"BackbonePreprocess: unknown mode {mode!r}; choose one of {self.MODES}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if x.shape[-1] == 1:
            x = ops.concatenate([x, x, x], axis=-1)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)  # RGB -> BGR
            return x - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        mean = ops.convert_to_tensor((0.485, 0.456, 0.406), dtype=self.compute_dtype)
        std = ops.convert_to_tensor((0.229, 0.224, 0.225), dtype=self.compute_dtype)
        return (x / 255.0 - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


def preprocessing_description(name: str) -> str:
    """A one-line description of the in-graph preprocessing of model `name`."""
    name = _check_name(name)
    if name in CUSTOM_MODELS:
        return "raw gray 0..255 -> Rescaling(1/255) -> [0, 1]"
    mode = BACKBONES[name][1]
    if mode == "caffe":
        return (
            "raw gray 0..255 -> repeat to RGB -> 'caffe' (RGB->BGR, subtract ImageNet means "
            "B,G,R = 103.939, 116.779, 123.68), as keras.applications."
            f"{'vgg16' if name == 'vgg16' else 'resnet50'}.preprocess_input"
        )
    return (
        "raw gray 0..255 -> repeat to RGB -> 'tf' (x / 127.5 - 1, range [-1, 1]), "
        "as keras.applications.mobilenet_v2.preprocess_input"
    )


# --------------------------------------------------------------------------- build
def _check_name(name: str) -> str:
    key = str(name).strip().lower().replace("_", "").replace("-", "")
    if key not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
    return key


def _check_shape(name: str, input_shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (S, S, 1) raw grayscale (or (S, S, 3)), got {input_shape}")
    h, w, _ = shape
    minimum = CNN_MIN_SIZE if name in CUSTOM_MODELS else BACKBONES[name][2]
    if h < minimum or w < minimum:
        raise ValueError(f"{name}: input must be at least {minimum}x{minimum}, got {h}x{w}")
    return shape


def _reg(l2: float):
    return keras.regularizers.L2(l2) if l2 else None


def _build_cnn(input_shape, n_classes: int, l2: float) -> keras.Model:
    inp = keras.Input(shape=input_shape, dtype="float32", name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inp)
    for i, filters in enumerate((32, 64, 128, 256), start=1):
        x = layers.Conv2D(filters, 3, padding="same", kernel_regularizer=_reg(l2), name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
        if i < 4:
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
            x = layers.Dropout(0.25, name=f"block{i}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(256, activation="relu", kernel_regularizer=_reg(l2), name="dense256")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="dense256_bn")(x)
    x = layers.Dropout(0.5, name="dense256_dropout")(x)
    x = layers.Dense(128, activation="relu", kernel_regularizer=_reg(l2), name="dense128")(x)
    x = layers.Dropout(0.3, name="dense128_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inp, out, name="cnn")


# The deeper CNN is the project's own design (issue 10). The CNN underfits on FER2013 (its training
# accuracy under augmentation and dropout ends below its validation accuracy, 0.73 vs 0.75), so this
# one doubles the convolutions per block (VGG-style pairs, 8 in all, ~1.2M parameters) and
# regularises less: dropout 0.2 after each block, L2 at a tenth of the CNN's. On 2 cores its train
# step measured 373 images/s against the CNN's 742 (batch 64, 48x48).
DEEP_CNN_WIDTHS = (32, 64, 128, 256)
DEEP_CNN_L2_SCALE = 0.1


def _build_deep_cnn(input_shape, n_classes: int, l2: float) -> keras.Model:
    inp = keras.Input(shape=input_shape, dtype="float32", name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inp)
    for i, filters in enumerate(DEEP_CNN_WIDTHS, start=1):
        for j in (1, 2):
            x = layers.Conv2D(
                filters, 3, padding="same", use_bias=False, kernel_regularizer=_reg(l2), name=f"block{i}_conv{j}"
            )(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn{j}")(x)
            x = layers.ReLU(name=f"block{i}_relu{j}")(x)
        if i < len(DEEP_CNN_WIDTHS):
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
            x = layers.Dropout(0.2, name=f"block{i}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.4, name="gap_dropout")(x)
    # 'gap' and 'dense128' as in the CNN: the 'other' head (emolib.release) reads those two layers
    x = layers.Dense(128, activation="relu", kernel_regularizer=_reg(l2), name="dense128")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="dense128_bn")(x)
    x = layers.Dropout(0.3, name="dense128_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inp, out, name="deepcnn")


@contextlib.contextmanager
def _quiet_application_warnings():
    with warnings.catch_warnings():
        # MobileNetV2 with ImageNet weights at a size other than 96..224 loads the 224
        # weights (convolutions do not depend on the input size) and says so each time.
        warnings.filterwarnings("ignore", message=r".*input_shape.* is undefined or non-square.*")
        warnings.filterwarnings("ignore", message=r".*usually expects 1 or 3 input channels.*")
        yield


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _application(name: str, shape3, weights):
    ctor = getattr(keras.applications, BACKBONES[name][0])
    with _quiet_application_warnings():
        return ctor(include_top=False, weights=weights, input_shape=shape3, name="backbone")


def _imagenet_backbone(name: str, shape3) -> keras.Model:
    try:
        with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
            return _application(name, shape3, "imagenet")
    except Exception as e:  # keras.utils.get_file raises a bare Exception on fetch failure
        cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
        raise WeightsUnavailableError(
            f"{name}: cannot get the ImageNet weights ({type(e).__name__}: {e}). Probably no network: "
            f"put the Keras 'notop' weights file for {BACKBONES[name][0]} into {cache} (Keras looks "
            "there before downloading), or pass weights='<path to a local .h5/.weights.h5 file>', "
            "or weights='none' / 'auto' to train from random init."
        ) from e


def imagenet_unavailable(name: str, image_size: int) -> str | None:
    """None when the ImageNet weights of backbone `name` can be had (Keras cache or network), else why not.

    emolib.pretrain asks this for WEIGHTS=auto before falling back to other weights.
    """
    try:
        _imagenet_backbone(_check_name(name), (int(image_size), int(image_size), 3))
    except WeightsUnavailableError as e:
        return str(e)
    return None


def _load_local_weights(name: str, backbone: keras.Model, path: Path) -> None:
    p = str(path)
    if p.endswith(".weights.h5") or p.endswith(".weights.json"):
        try:  # Keras 3 weights file saved from a backbone of the same architecture
            backbone.load_weights(p)
        except Exception as e:  # noqa: BLE001
            raise WeightsUnavailableError(
                f"{name}: cannot load the weights file {p} into the backbone ({type(e).__name__}: {e}); "
                f"it must hold weights saved from a keras.applications {BACKBONES[name][0]} "
                "(include_top=False) backbone"
            ) from e
    elif p.endswith(".h5") or p.endswith(".hdf5"):
        try:  # legacy HDF5, e.g. the file keras.applications downloads; topological order
            backbone.load_weights(p)
            return
        except Exception as first:  # noqa: BLE001 - e.g. a file with the top layers: match by name
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    backbone.load_weights(p, by_name=True, skip_mismatch=True)
            except Exception as e:  # noqa: BLE001
                raise WeightsUnavailableError(
                    f"{name}: cannot load the HDF5 weights file {p} into the backbone "
                    f"({type(first).__name__}: {first}; by name: {type(e).__name__}: {e})"
                ) from e
            skipped = [str(w.message) for w in caught]
            warnings.warn(
                f"{name}: loaded {p} by layer name (the file's topology differs from the backbone"
                + (f"; {len(skipped)} mismatch warning(s), first: {skipped[0][:200]}" if skipped else "")
                + ")",
                stacklevel=3,
            )
    else:
        raise WeightsUnavailableError(
            f"{name}: unsupported weights file {p}; expected a .weights.h5 (Keras 3) or .h5 (legacy) file"
        )


def _random_backbone(name: str, shape3) -> keras.Model:
    """A keras.applications backbone with random weights, its BatchNorm set up to learn in short runs."""
    backbone = _application(name, shape3, None)
    # keras.applications' BatchNorm momentum (0.99, MobileNetV2 0.999) suits ImageNet-length
    # runs; a from-scratch run of a few hundred steps an epoch would predict with moving
    # statistics that have not caught up yet (validation collapses to one class).
    for lyr in backbone.layers:
        if isinstance(lyr, layers.BatchNormalization):
            lyr.momentum = BN_MOMENTUM
    return backbone


def build_pretraining_model(name: str, input_shape, n_classes: int) -> keras.Model:
    """A random backbone under a linear softmax head, for pretraining the backbone (emolib.pretrain).

    Only the backbone's weights are kept afterwards, so the head can be whatever lets a random
    backbone learn. It is not the task model's head: under that head (three Dense layers with
    dropout and BatchNorm) a random MobileNetV2 stayed at guessing level on the training faces
    themselves (train accuracy 0.30 after 3 epochs on 4 classes), while under GAP -> Dense it
    fitted them (0.47) and beat guessing on validation. Same preprocessing and input as the task model.
    """
    name = _check_name(name)
    if name not in BACKBONES:
        raise ValueError(f"{name!r} has no keras.applications backbone to pretrain")
    shape = _check_shape(name, input_shape)
    inp = keras.Input(shape=shape, dtype="float32", name="pixels")
    x = BackbonePreprocess(BACKBONES[name][1], name="preprocess")(inp)
    x = _random_backbone(name, shape[:2] + (3,))(x)
    x = layers.GlobalAveragePooling2D(name="head_gap")(x)
    out = layers.Dense(int(n_classes), activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inp, out, name=f"{name}_pretraining")  # built trainable: every layer learns


def has_batchnorm(model: keras.Model) -> bool:
    """Whether any layer of `model` (nested models included) is a BatchNormalization."""
    return any(
        isinstance(lyr, layers.BatchNormalization) or (isinstance(lyr, keras.Model) and has_batchnorm(lyr))
        for lyr in model.layers
    )


def lsuv_init(model: keras.Model, pixels, *, seed: int = 42, tolerance: float = 0.05, max_rounds: int = 5) -> list:
    """Layer-sequential unit-variance init (Mishkin & Matas, "All you need is a good init", 2016).

    For a deep plain network without BatchNorm (VGG16) trained from random weights: every Conv2D
    of the backbone, first to last, gets an orthogonal kernel, then is rescaled until its output's
    standard deviation on `pixels` (raw 0..255 faces, (N, H, W) or (N, H, W, 1)) is 1. Keras'
    default Glorot init shrinks a ReLU signal at every one of VGG16's 13 convolutions, and He init
    fed the 'caffe' preprocessing's +-128 inputs blows it up (pretraining loss 11); from either
    start the quick pretraining stayed at guessing level. `model` holds a BackbonePreprocess layer
    and a 'backbone' sub-model (`build_pretraining_model`). Returns each convolution's output
    standard deviation before its last rescaling (the init's log).
    """
    import numpy as np

    backbone = backbone_of(model)
    preprocess = next(lyr for lyr in model.layers if isinstance(lyr, BackbonePreprocess))
    x = np.asarray(pixels, dtype="float32")
    x = x[..., None] if x.ndim == 3 else x
    inputs = preprocess(x)
    orthogonal = keras.initializers.Orthogonal(seed=seed)
    log = []
    for lyr in backbone.layers:
        if not isinstance(lyr, layers.Conv2D):
            continue
        lyr.kernel.assign(orthogonal(lyr.kernel.shape))
        if lyr.use_bias:
            lyr.bias.assign(ops.zeros_like(lyr.bias))
        upto = keras.Model(backbone.input, lyr.output)
        for _ in range(max_rounds):
            std = float(ops.std(upto(inputs)))
            lyr.kernel.assign(lyr.kernel / max(std, 1e-8))
            if abs(std - 1.0) < tolerance:
                break
        log.append((lyr.name, std))
    return log


def build_model_with_info(
    name: str,
    input_shape=(48, 48, 1),
    n_classes: int = 3,
    weights: str = "none",
    l2: float = 1e-3,
    weights_label: str | None = None,
) -> tuple[keras.Model, dict]:
    """Build model `name` (uncompiled) and say which weights it got.

    weights: 'imagenet' (download via Keras; `WeightsUnavailableError` when it cannot),
    'none' (random init), 'auto' (ImageNet if obtainable, otherwise a
    `WeightsFallbackWarning` and random init), or a path to a local .h5/.weights.h5
    file holding the backbone's weights. Ignored for 'cnn' and 'deepcnn' (always random init).

    Returns (model, info) with info keys weights_requested, weights_used ('imagenet',
    'none' or the resolved file path), backbone (keras.applications name or None),
    preprocessing (a description of the in-graph preprocessing), input_shape, n_classes.
    weights_label: when a weights file is loaded, what to call it in weights_used instead
    of its path (e.g. 'fer2013-disjoint:disgust,fear,... (cache key ...)'); the path is
    then kept in info['weights_file'].
    """
    name = _check_name(name)
    shape = _check_shape(name, input_shape)
    n_classes = int(n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    requested = "none" if weights is None else str(weights)
    info = {
        "weights_requested": requested,
        "weights_used": "none",
        "backbone": None,
        "preprocessing": preprocessing_description(name),
        "input_shape": list(shape),
        "n_classes": n_classes,
        "model": name,
    }
    if name == "cnn":
        return _build_cnn(shape, n_classes, l2), info
    if name == "deepcnn":
        return _build_deep_cnn(shape, n_classes, l2 * DEEP_CNN_L2_SCALE), info

    info["backbone"] = BACKBONES[name][0]
    shape3 = shape[:2] + (3,)
    key = requested.strip().lower()
    backbone = None
    if key == "imagenet":
        backbone = _imagenet_backbone(name, shape3)
        info["weights_used"] = "imagenet"
    elif key == "auto":
        try:
            backbone = _imagenet_backbone(name, shape3)
            info["weights_used"] = "imagenet"
        except WeightsUnavailableError as e:
            warnings.warn(
                f"weights='auto': ImageNet weights unavailable, using RANDOM INIT instead. {e}",
                WeightsFallbackWarning,
                stacklevel=2,
            )
            backbone = None
    elif key not in ("none", "random", ""):
        path = Path(requested).expanduser()
        if not path.is_file():
            raise WeightsFileNotFoundError(
                f"{name}: weights file {requested!r} not found (weights must be 'imagenet', 'none', "
                "'auto' or the path of an existing .h5/.weights.h5 file; 'disjoint' is resolved into a "
                "pretrained backbone's file by emolib.pretrain.build_model_for_task)"
            )
        backbone = _application(name, shape3, None)
        _load_local_weights(name, backbone, path)
        info["weights_used"] = str(path.resolve())
        if weights_label:
            info["weights_used"], info["weights_file"] = str(weights_label), str(path.resolve())
    if backbone is None:
        backbone = _random_backbone(name, shape3)

    inp = keras.Input(shape=shape, dtype="float32", name="pixels")
    x = BackbonePreprocess(BACKBONES[name][1], name="preprocess")(inp)
    # A pretrained backbone's BatchNorm stays in inference mode (fine-tuning must not wreck
    # its statistics); a random one must learn them, so it follows the training phase.
    pretrained = info["weights_used"] != "none"
    x = backbone(x, training=False if pretrained else None)
    x = layers.GlobalAveragePooling2D(name="head_gap")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="head_bn0")(x)
    for i, (units, rate) in enumerate(((512, 0.5), (256, 0.4), (128, 0.3)), start=1):
        x = layers.Dense(units, activation="relu", kernel_regularizer=_reg(l2), name=f"head_dense{units}")(x)
        x = layers.Dropout(rate, name=f"head_dropout{units}")(x)
        if i < 3:
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"head_bn{i}")(x)
    out = layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(x)
    model = keras.Model(inp, out, name=name)
    apply_stage(model, "all" if pretrained else "scratch")
    return model, info


def build_model(
    name: str, input_shape=(48, 48, 1), n_classes: int = 3, weights: str = "none", l2: float = 1e-3
) -> keras.Model:
    """Build model `name` (uncompiled); see `build_model_with_info` for the arguments."""
    return build_model_with_info(name, input_shape, n_classes, weights, l2)[0]


def task_output_model(model: keras.Model, n_task: int) -> keras.Model:
    """The same network answering only its first `n_task` classes, renormalised.

    A model trained with auxiliary classes (the task's classes first, then the others) has
    a softmax over all of them. The returned model shares every layer up to the output and
    replaces the 'predictions' Dense by one with the first `n_task` units of its kernel and
    bias: softmax over the task's logits only, i.e. p_i / sum of the task's p_j, so its
    probabilities sum to 1 and predict, evaluate and export see an ordinary
    `n_task`-class model. The model itself is returned when it has `n_task` outputs already.
    """
    n_task = int(n_task)
    full = model.get_layer("predictions")
    n_all = int(full.units)
    if n_task == n_all:
        return model
    if not 2 <= n_task < n_all:
        raise ValueError(f"task_output_model: need 2 <= n_task < {n_all} outputs, got {n_task}")
    kernel, bias = full.get_weights()
    out_layer = layers.Dense(n_task, activation="softmax", dtype="float32", name="predictions")
    out = out_layer(full.input)
    out_layer.set_weights([kernel[:, :n_task], bias[:n_task]])
    return keras.Model(model.inputs, out, name=model.name)


# --------------------------------------------------------------------------- stages
def backbone_of(model: keras.Model):
    """The nested 'backbone' sub-model, or None (the CNN)."""
    try:
        return model.get_layer("backbone")
    except ValueError:
        return None


def head_layers(model: keras.Model) -> list:
    """The model's own layers other than the input, the preprocessing and the backbone."""
    return [
        lyr
        for lyr in model.layers
        if lyr.name != "backbone" and not isinstance(lyr, (layers.InputLayer, BackbonePreprocess))
    ]


def _n_params(weights) -> int:
    total = 0
    for w in weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n
    return total


def count_params(model: keras.Model) -> dict:
    """{'total', 'trainable', 'non_trainable'} parameter counts under the current flags."""
    trainable = _n_params(model.trainable_weights)
    total = _n_params(model.weights)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def apply_stage(model: keras.Model, stage: Stage | str) -> tuple[int, int]:
    """Set the trainable flags for a stage; returns (trainable_params, total_params).

    'all': everything but backbone BatchNorm; 'scratch': everything (a backbone that
    starts from random weights, built to run its BatchNorm in training mode); 'head': backbone frozen;
    'top:N': the last N layers of the backbone; 'blocks:p1,p2': backbone layers whose name starts with one of the
    prefixes (VGG16 'block5', ResNet50 'conv5', MobileNetV2 'block_16'). The head is
    always trainable and BatchNorm layers inside the backbone are never trainable (they
    also run in inference mode, see build_model). Recompile the model afterwards.
    """
    spec = stage.trainable if isinstance(stage, Stage) else str(stage)
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    backbone = backbone_of(model)
    model.trainable = True  # recursive in Keras 3: every layer (and variable) trainable
    if kind == "scratch":  # a randomly initialised network: everything learns, backbone BN included
        counts = count_params(model)
        return counts["trainable"], counts["total"]
    if backbone is None:
        if kind != "all":
            raise ValueError(f"model {model.name!r} has no backbone: only trainable='all' applies, got {spec!r}")
    else:
        blayers = backbone.layers
        if kind == "all":
            selected = set(range(len(blayers)))
        elif kind == "head":
            selected = set()
        elif kind == "top":
            try:
                n = int(arg)
            except ValueError:
                raise ValueError(f"trainable {spec!r}: expected 'top:N' with an integer N") from None
            if n < 1:
                raise ValueError(f"trainable {spec!r}: N must be >= 1")
            selected = set(range(max(0, len(blayers) - n), len(blayers)))
        elif kind == "blocks":
            prefixes = tuple(p.strip() for p in arg.split(",") if p.strip())
            if not prefixes:
                raise ValueError(f"trainable {spec!r}: expected 'blocks:prefix1,prefix2'")
            selected = {i for i, lyr in enumerate(blayers) if lyr.name.startswith(prefixes)}
            missing = [p for p in prefixes if not any(lyr.name.startswith(p) for lyr in blayers)]
            if missing:
                raise ValueError(f"trainable {spec!r}: no backbone layer name starts with {missing}")
        else:
            raise ValueError(f"unknown trainable spec {spec!r}; use 'all', 'head', 'top:N' or 'blocks:a,b'")
        # Every backbone layer gets its flag explicitly, whatever the previous stage left: in Keras 3
        # `backbone.trainable = False` alone did not undo a previous 'top:N' (the notebook's stage plan
        # applies every stage before training, so the 'head' stage then trained the top layers too).
        # (The backbone's own flag first: setting it is recursive and would overwrite the layers'.)
        backbone.trainable = bool(selected)
        for i, lyr in enumerate(blayers):
            lyr.trainable = i in selected and not isinstance(lyr, layers.BatchNormalization)
    counts = count_params(model)
    return counts["trainable"], counts["total"]
