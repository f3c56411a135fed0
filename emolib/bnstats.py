"""Recompute a trained model's BatchNorm statistics exactly, on the training faces, as the model predicts.

During training each BatchNormalization layer keeps its moving mean and variance as an exponential
average over the last batches (momentum `models.BN_MOMENTUM` = 0.9: about the last ten batches), with
dropout on and augmented faces in. At prediction time dropout is off, so the statistics the layer
normalises by are both noisy and gathered under another input distribution ("variance shift",
Li et al., CVPR 2019). `recompute_batchnorm_statistics` replaces them, first layer to last, by the
exact mean and variance of each layer's input over a set of faces with the network in inference
mode (earlier layers already recomputed). The weights are not touched.

Only BatchNorm layers at the top level of a functional model are recomputed: all of the CNNs', and the
head's of a backbone model (`head_bn0` after the pooling, `head_bn1`/`head_bn2` after the 0.5 and 0.4
dropouts, where the variance shift is largest). A nested model's BatchNorm layers (a keras.applications
backbone) keep their statistics: a pretrained backbone runs them in inference mode while it fine-tunes
(`models.build_model_with_info`), so they already are what training normalised by.
`recompute_after_training` is the training notebook's step: it recomputes when it applies, saves
the model, and returns what the model card records (validation macro-F1 before and after).

Measured (README, ablation; `python -m emolib.lever`, rules written before the numbers): validation
macro-F1 +0.015 (with TTA +0.011) on seed 1's `deepcnn`, +0.009 (+0.010) on its mixup twin, +0.003
(+0.003) on the quick CNN; the head alone of a backbone model: +0.022 (+0.021) on ResNet50, +0.015
(+0.013) on MobileNetV2. Recomputing a fine-tuned backbone's own BatchNorm layers instead was much worse
(ResNet50 0.413 -> 0.338, MobileNetV2 0.684 -> 0.253): its weights learned under the frozen statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
from keras import layers


def batchnorm_layers(model: keras.Model) -> list[layers.BatchNormalization]:
    """The top-level BatchNormalization layers of `model`, in graph order (nested models' are not included)."""
    return [lyr for lyr in model.layers if isinstance(lyr, layers.BatchNormalization)]


def nested_batchnorm_counts(model: keras.Model) -> dict[str, int]:
    """{nested model's name: how many BatchNormalization layers it holds}, for those holding any."""

    def count(m: keras.Model) -> int:
        return sum(
            count(lyr) if isinstance(lyr, keras.Model) else isinstance(lyr, layers.BatchNormalization)
            for lyr in m.layers
        )

    counts = {lyr.name: count(lyr) for lyr in model.layers if isinstance(lyr, keras.Model)}
    return {name: n for name, n in counts.items() if n}


def _channel_moments(probe: Callable, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) variance over every axis but the last of probe's output on `images`."""
    total = total_sq = None
    count = 0
    for start in range(0, len(images), batch_size):
        out = np.asarray(probe(images[start : start + batch_size]), dtype=np.float64)
        out = out.reshape(-1, out.shape[-1])
        s, sq = out.sum(axis=0), np.square(out).sum(axis=0)
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
        count += out.shape[0]
    mean = total / count
    return mean, np.maximum(total_sq / count - np.square(mean), 0.0)


def recompute_batchnorm_statistics(
    model: keras.Model, images: np.ndarray, batch_size: int = 256, progress: bool = False
) -> list[str]:
    """Set every top-level BatchNorm layer's moving mean/variance to its input's exact moments on `images`.

    images: the model's input, e.g. raw 0..255 training faces (N, H, W, C) at its input size. Layers
    are done in graph order, each probed in inference mode after the earlier ones were set, so each
    sees what it will see when the model predicts. Returns the names of the layers recomputed.
    """
    if len(images) == 0:
        raise ValueError("recompute_batchnorm_statistics needs at least one image")
    bns = batchnorm_layers(model)
    done = []
    iterator = bns
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(bns, desc="BatchNorm statistics", unit="layer")
    for bn in iterator:
        probe = keras.Model(model.input, bn.input)
        # predict_on_batch: a compiled inference-mode call on any backend, many times faster than eager calls
        mean, var = _channel_moments(probe.predict_on_batch, images, batch_size)
        bn.moving_mean.assign(mean.astype(bn.moving_mean.dtype))
        bn.moving_variance.assign(var.astype(bn.moving_variance.dtype))
        done.append(bn.name)
    return done


def _earlier_moving_score(model_dir: Path, fallback: float | None) -> float | None:
    """The validation macro-F1 with the moving statistics that `model_dir`'s card recorded, else `fallback`."""
    from .modelfolder import ModelDirError, read_card

    try:
        return read_card(model_dir)["batchnorm_statistics"]["val_macro_f1_moving"]
    except (ModelDirError, KeyError, TypeError):
        return fallback


def recompute_after_training(
    model: keras.Model,
    prepared,
    *,
    model_dir: str | Path,
    enabled: bool = True,
    batch_size: int = 256,
    progress: bool = True,
) -> dict:
    """The training notebook's last step: recompute the BatchNorm statistics on the run's training faces.

    prepared: the run's `data.PreparedData` (its 'train' split, no augmentation; its 'val' split to
    show the effect), resized to the model's input side. When it applies (enabled, and the model has
    top-level BatchNorm layers), their statistics are recomputed and the model is saved over
    `model_dir`/model.keras atomically. Idempotent: a second call finds the same statistics and does
    not write.

    Returns the model card's record: {'recomputed': bool, and either 'why' not, or 'layers', 'faces',
    'seconds', 'already_recomputed' (the model held these statistics already; its file is then left
    as it was; 'val_macro_f1_moving' then comes from the card in `model_dir`, which the recomputing call
    wrote), 'val_macro_f1_moving', 'val_macro_f1_recomputed'}; plus 'kept' (which nested model's
    BatchNorm layers were left as trained) for a backbone model.
    """
    if not enabled:
        return {"recomputed": False, "why": "off in this profile (+rawbn)"}
    bns, nested = batchnorm_layers(model), nested_batchnorm_counts(model)
    kept = {}  # the card says which statistics stayed as trained
    if nested:
        kept["kept"] = "; ".join(f"{name}'s {n} BatchNorm layers (nested: as trained)" for name, n in nested.items())
    if not bns:
        why = "the model has no top-level BatchNorm layer" if nested else "the model has no BatchNorm layer"
        return {"recomputed": False, "why": why, **kept}
    from .error_analysis import predict_probs, resize_pixels
    from .metrics import macro_f1
    from .modelfolder import MODEL_FILE
    from .train import save_model_atomically

    x_train, _ = prepared.split("train")
    x_val, y_val = prepared.split("val")

    def val_macro_f1() -> float | None:
        if len(x_val) == 0:
            return None
        pred = predict_probs(model, x_val, batch_size=batch_size).argmax(axis=1)
        return macro_f1(y_val, pred, n_classes=len(prepared.classes))

    stored = [(np.array(bn.moving_mean), np.array(bn.moving_variance)) for bn in bns]
    before = val_macro_f1()
    t0 = time.perf_counter()
    images = resize_pixels(x_train, int(model.input_shape[1]))
    recompute_batchnorm_statistics(model, images, batch_size, progress=progress)
    seconds = time.perf_counter() - t0
    # a model saved by an earlier call already holds these statistics: leave its file (and the
    # prediction caches newer than it) alone
    unchanged = all(
        np.allclose(np.array(bn.moving_mean), mean, rtol=1e-4, atol=1e-6)
        and np.allclose(np.array(bn.moving_variance), var, rtol=1e-4, atol=1e-6)
        for bn, (mean, var) in zip(bns, stored, strict=True)
    )
    if unchanged:  # `before` was measured on these statistics: the recomputing call's card has the moving score
        after, before = before, _earlier_moving_score(Path(model_dir), before)
    else:
        save_model_atomically(model, Path(model_dir) / MODEL_FILE)
        after = val_macro_f1()
    return {
        "recomputed": True,
        "on": "the run's training faces, no augmentation, the network in inference mode",
        "layers": len(bns),
        **kept,
        "faces": int(len(x_train)),
        "seconds": round(seconds, 1),
        "already_recomputed": unchanged,
        "val_macro_f1_moving": before,
        "val_macro_f1_recomputed": after,
    }
