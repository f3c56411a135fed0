"""Grad-CAM for emolib models, including ImageNet backbones nested as a sub-model.

The models take raw grayscale pixels (B, S, S, 1) in 0..255; the transfer models
nest a keras.applications backbone as a layer named 'backbone' (preprocessing layers
before it, a Dense head after it). Grad-CAM needs the activations of the last
convolutional stage *inside* that backbone, which `model.get_layer(...)` cannot reach
and which Keras 3 will not let one wire as `Model(model.inputs, inner_layer.output)`
(the inner tensor lives in the backbone's own graph). So `gradcam`:

1. finds the target layer by a path such as 'backbone/out_relu' (find_last_conv_layer);
2. builds a tap model for the innermost model that holds it:
   `Model(sub.inputs, [target.output, sub.output])`;
3. re-runs the outer functional graph (keras.models.clone_model with the original,
   shared layers and a call_function) on fresh inputs, calling the tap model where the
   sub-model was called and keeping its extra output; recursion handles deeper nesting;
4. takes the class score before the final softmax when the model ends in a softmax
   Dense / Activation (the Grad-CAM paper uses the pre-softmax score: saturated
   softmax outputs give vanishing gradients), else the probability;
5. weights the target activations by their spatially averaged gradients, applies
   ReLU, upsamples to the input size and scales each map to [0, 1].

TensorFlow / Keras are imported lazily, inside the functions.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

#: Layers that count as "convolutional" when looking for the Grad-CAM target.
_CONV_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
#: Element-wise layers that may follow the last conv and are preferred as the target
#: (MobileNetV2 'out_relu', ResNet50 'conv5_block3_out' after the residual Add).
_FOLLOW_CLASSES = (
    "BatchNormalization",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "Add",
)
_SEP = "/"
_TAP_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------------------
# finding the target layer
# --------------------------------------------------------------------------------------


def _is_model(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs") and callable(getattr(layer, "get_layer", None))


def _output_rank(layer) -> int | None:
    try:
        out = layer.output
    except Exception:  # noqa: BLE001 - shared layers / not built
        return None
    if isinstance(out, (list, tuple)):
        return None
    try:
        return len(out.shape)
    except Exception:  # noqa: BLE001
        return None


def _flatten_layers(model, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """All layers in graph order, recursing into nested models at their position."""
    out = []
    for layer in model.layers:
        path = (*prefix, layer.name)
        if _is_model(layer):
            out.extend(_flatten_layers(layer, path))
        else:
            out.append((path, layer))
    return out


def find_last_conv_layer(model) -> str:
    """Path of the Grad-CAM target layer, reaching inside nested sub-models.

    Returns the last Conv2D / DepthwiseConv2D / SeparableConv2D with a 4-D output, or
    the last of the element-wise layers (BatchNormalization, activation, Add) that
    directly follow it in graph order. Nested names are joined with '/', e.g.
    'backbone/out_relu' for MobileNetV2, 'conv2d_2' for a plain CNN.
    """
    flat = _flatten_layers(model)
    last = None
    for i, (_, layer) in enumerate(flat):
        if type(layer).__name__ in _CONV_CLASSES and _output_rank(layer) == 4:
            last = i
    if last is None:
        raise ValueError(f"model {model.name!r} has no 2-D convolution layer with a 4-D output for Grad-CAM")
    best = last
    prefix = flat[last][0][:-1]
    for j in range(last + 1, len(flat)):
        path, layer = flat[j]
        if path[:-1] != prefix or type(layer).__name__ not in _FOLLOW_CLASSES or _output_rank(layer) != 4:
            break
        best = j
    return _SEP.join(flat[best][0])


def _split_path(layer_path) -> tuple[str, ...]:
    if isinstance(layer_path, str):
        return tuple(p for p in layer_path.split(_SEP) if p)
    return tuple(layer_path)


def _resolve(model, path: tuple[str, ...]):
    """The layer at `path`; raises a clear error when a step is missing."""
    obj = model
    for i, name in enumerate(path):
        try:
            obj = obj.get_layer(name)
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"no layer {_SEP.join(path[: i + 1])!r} in model {model.name!r}") from exc
    return obj


# --------------------------------------------------------------------------------------
# the tap model: inputs -> [target activations, class scores]
# --------------------------------------------------------------------------------------


def _softmax_kind(layer) -> str | None:
    """'dense' / 'activation' when the layer ends in a softmax, else None."""
    import keras

    act = getattr(layer, "activation", None)
    is_softmax = act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"
    if isinstance(layer, keras.layers.Dense) and is_softmax:
        return "dense"
    if isinstance(layer, keras.layers.Softmax) or (isinstance(layer, keras.layers.Activation) and is_softmax):
        return "activation"
    return None


def _pre_softmax_call(layer, kind: str, x):
    """Output of `layer` without its final softmax (shares the layer's weights)."""
    from keras import ops

    if kind == "activation":
        return x
    y = ops.matmul(x, layer.kernel)
    if layer.use_bias:
        y = ops.add(y, layer.bias)
    return y


def _output_layer(model):
    try:
        return model.outputs[0]._keras_history.operation
    except Exception:  # noqa: BLE001
        return model.layers[-1]


def _tap_model(model, path: tuple[str, ...], use_logits: bool):
    """Functional model: model inputs -> [activations at `path`, scores].

    Scores are pre-softmax when `use_logits` and the final layer allows it.
    """
    import keras

    final = _output_layer(model) if use_logits else None
    kind = _softmax_kind(final) if final is not None else None
    target = model.get_layer(path[0])
    if len(path) == 1 and kind is None:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        return keras.Model(inputs, [target.output, model.outputs[0]])
    inner = _tap_model(target, path[1:], use_logits=False) if len(path) > 1 else None
    tap: list = []

    def call_function(layer, *args, **kwargs):
        if inner is not None and layer is target:
            act, out = inner(*args, **kwargs)
            tap.append(act)
            return out
        if kind is not None and layer is final:
            return _pre_softmax_call(layer, kind, *args)
        out = layer(*args, **kwargs)
        if inner is None and layer is target:
            tap.append(out)
        return out

    if isinstance(model, keras.Sequential):
        x = inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
        for layer in model.layers:
            x = call_function(layer, x)
        outputs = x
    else:
        clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call_function)
        inputs = clone.inputs[0] if len(clone.inputs) == 1 else clone.inputs
        outputs = clone.outputs[0]
    if len(tap) != 1:
        raise ValueError(f"layer {_SEP.join(path)!r} is called {len(tap)} times in {model.name!r}; need exactly one")
    return keras.Model(inputs, [tap[0], outputs])


def build_gradcam_model(model, layer=None, use_logits: bool = True):
    """The (cached on the model) tap model used by `gradcam`."""
    path = _split_path(layer if layer is not None else find_last_conv_layer(model))
    _resolve(model, path)
    # Cached outside the model: an attribute on it would be walked (and saved) by
    # model.save().
    try:
        cache = _TAP_CACHE.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no caching
        cache = {}
    key = (path, bool(use_logits))
    if key not in cache:
        cache[key] = _tap_model(model, path, use_logits)
    return cache[key]


# --------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------


def gradcam(model, images, class_index=None, layer=None, use_logits: bool = True, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM heatmaps (B, H, W) in [0, 1] at the input resolution.

    images: (B, H, W) or (B, H, W, C) raw pixels as the model expects them (0..255).
    class_index: None (predicted class), an int for every image, or one int per image.
    layer: target layer path (default: find_last_conv_layer(model)).
    use_logits: differentiate the pre-softmax score when the model ends in softmax.
    Each map is scaled so its maximum is 1; a map with no positive evidence is all 0.
    """
    import tensorflow as tf

    x = np.asarray(images, dtype=np.float32)
    in_rank = len(model.inputs[0].shape)
    if x.ndim == in_rank - 1:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"expected (B, H, W[, C]) images, got shape {np.shape(images)}")
    n, h, w = x.shape[:3]
    if class_index is None:
        idx = None
    else:
        idx = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (n,))
    tap = build_gradcam_model(model, layer, use_logits)
    heat = np.zeros((n, h, w), dtype=np.float32)
    for s in range(0, n, batch_size):
        xb = tf.convert_to_tensor(x[s : s + batch_size])
        with tf.GradientTape() as tape:
            act, scores = tap(xb, training=False)
            if idx is None:
                cls = tf.argmax(scores, axis=1, output_type=tf.int64)
            else:
                cls = tf.constant(idx[s : s + batch_size])
            score = tf.gather(scores, cls, axis=1, batch_dims=1)
        grads = tape.gradient(score, act)
        if grads is None:
            raise RuntimeError("Grad-CAM: the class score does not depend on the target layer")
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * act, axis=-1))[..., None]
        cam = tf.image.resize(cam, (h, w), method="bilinear")[..., 0].numpy()
        mx = cam.reshape(len(cam), -1).max(axis=1)
        cam = np.where(mx[:, None, None] > 0, cam / np.where(mx > 0, mx, 1.0)[:, None, None], 0.0)
        heat[s : s + len(cam)] = np.clip(cam, 0.0, 1.0)
    return heat


# --------------------------------------------------------------------------------------
# display
# --------------------------------------------------------------------------------------


def _resize_map(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if heatmap.shape == shape:
        return heatmap
    from PIL import Image

    img = Image.fromarray(heatmap.astype(np.float32), mode="F").resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def overlay(image_gray_uint8, heatmap, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap (colour-mapped with 'jet') over a grayscale image -> RGB uint8.

    The heatmap is resized to the image when their sizes differ.
    """
    from matplotlib import colormaps

    img = np.asarray(image_gray_uint8)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 3:
        rgb = img.astype(np.float32)
    elif img.ndim == 2:
        rgb = np.repeat(img[..., None], 3, axis=-1).astype(np.float32)
    else:
        raise ValueError(f"expected a (H, W) grayscale image, got shape {img.shape}")
    if img.dtype != np.uint8 and rgb.max() <= 1.0:
        rgb = rgb * 255.0
    hm = np.clip(_resize_map(np.asarray(heatmap, dtype=np.float32), rgb.shape[:2]), 0.0, 1.0)
    colour = colormaps[cmap](hm)[..., :3] * 255.0
    out = (1.0 - alpha) * rgb + alpha * colour
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def plot_gradcam_gallery(
    images,
    heatmaps,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    alpha: float = 0.4,
    save=None,
    cell_size: float = 2.2,
):
    """Grid of Grad-CAM overlays; returns the Figure (saved when `save` is a path)."""
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = max(1, min(ncols, n)) if n else 1
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_size * ncols, cell_size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        img = np.asarray(images[i])
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        ax.imshow(overlay(img, heatmaps[i], alpha=alpha))
        if titles is not None and i < len(titles):
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    if save is not None:
        from pathlib import Path

        Path(save).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save, dpi=150, bbox_inches="tight")
    return fig
