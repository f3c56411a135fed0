"""tf.data input pipelines: in-memory pixels -> resized, augmented, batched tensors.

Images are decoded once by `emolib.data.load_images` (and cached), so the pipeline
only slices uint8 arrays, resizes, augments on whole batches and prefetches: the
input side stays far faster than a training step (see `make bench`).

Models take raw grayscale pixels (S, S, 1) as float32 in 0..255 and do their own
preprocessing inside the graph; `channels=3` is there for models that want RGB.
"""

from __future__ import annotations

import numpy as np


def augmentation_layers(seed: int = 42, strength: float = 1.0):
    """Train-time augmentation: flip, small rotation, zoom/shift, brightness/contrast.

    Values are for 0..255 pixels; faces are roughly aligned, so transforms are mild.
    """
    import keras

    s = strength
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.04 * s, fill_mode="reflect", seed=seed + 1),  # ~ +-15 degrees
            keras.layers.RandomZoom(0.1 * s, fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomTranslation(0.08 * s, 0.08 * s, fill_mode="reflect", seed=seed + 3),
            keras.layers.RandomBrightness(0.15 * s, value_range=(0, 255), seed=seed + 4),
            keras.layers.RandomContrast(0.2 * s, value_range=(0, 255), seed=seed + 5),
        ],
        name="augment",
    )


def _op_determinism() -> bool:
    """Whether `tf.config.experimental.enable_op_determinism()` is on (no public getter; False if unknown)."""
    try:
        from tensorflow.python.framework import config as tf_config

        return bool(tf_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return False


def _random_map_options() -> dict:
    """`Dataset.map` options for a map of random ops (augmentation, mixup).

    Under op determinism tf.data runs such a map sequentially anyway, by a rewrite that logs a spurious
    NodeDef error (emolib/quiet.py); asking for the sequential map directly gives the same batches.
    (`deterministic` only means something for a parallel map: passing it to the sequential one warns.)
    """
    import tensorflow as tf

    return {} if _op_determinism() else {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}


def make_dataset(
    pixels: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    image_size: int | None = None,
    batch_size: int = 32,
    training: bool = False,
    augment: bool | None = None,
    channels: int = 1,
    seed: int = 42,
    cache: bool = True,
):
    """Build a tf.data.Dataset of (x, y) batches (x only if labels is None).

    pixels: (N, H, W) uint8. training=True shuffles (seeded, reshuffled every epoch)
    and, unless augment=False, augments. Resizing happens once, before the cache.
    """
    import tensorflow as tf

    if augment is None:
        augment = training
    x = pixels[..., None] if pixels.ndim == 3 else pixels
    items = x if labels is None else (x, np.asarray(labels, dtype=np.int32))
    ds = tf.data.Dataset.from_tensor_slices(items)
    size = image_size or x.shape[1]

    def prepare(img, *rest):
        img = tf.cast(img, tf.float32)
        if size != x.shape[1] or x.shape[1] != x.shape[2]:
            img = tf.image.resize(img, (size, size), method="bilinear", antialias=True)
        if channels == 3:
            img = tf.image.grayscale_to_rgb(img)
        return (img, *rest) if rest else img

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training and len(x):
        # Shuffle indices, not images: a shuffle buffer of images (94 MB for 10k faces at 48 px) was
        # allocated and filled anew at every epoch, and on this VM the first batch of an epoch then
        # sometimes waited 9-13 s. The shuffle's order does not depend on what it shuffles, so the
        # same seed gives the same batches as shuffling the images did (tests/data/test_pipeline.py).
        whole = next(iter(ds.batch(len(x))))  # every prepared item, once, in memory
        whole = whole if isinstance(whole, tuple) else (whole,)

        def gather(idx):
            picked = tuple(tf.gather(t, idx) for t in whole)
            return picked if len(picked) > 1 else picked[0]

        ds = tf.data.Dataset.range(len(x)).shuffle(min(len(x), 20_000), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=False).map(gather)
    else:
        if cache:
            ds = ds.cache()
        ds = ds.batch(batch_size, drop_remainder=False)
    if augment:
        aug = augmentation_layers(seed)

        def apply(img, *rest):
            img = tf.clip_by_value(aug(img, training=True), 0.0, 255.0)
            return (img, *rest) if rest else img

        ds = ds.map(apply, **_random_map_options())
    return ds.prefetch(tf.data.AUTOTUNE)


def mixup(ds, *, n_classes: int, alpha: float = 0.2, seed: int = 42):
    """Mixup on a batched (x, y int) dataset: (blended x, soft one-hot y) batches.

    keras.layers.MixUp blends each face with another face of its batch (a shuffle of the batch) by a
    weight drawn from Beta(alpha, alpha) per face, and the one-hot targets by the same weight. Train
    such a dataset with a categorical cross-entropy (`emolib.train.train` picks it from the labels'
    shape); Keras' class weights then weigh each face by its dominant label (the argmax).
    """
    import keras
    import tensorflow as tf

    if not 0 < alpha:
        raise ValueError(f"mixup: alpha must be > 0, got {alpha}")
    layer = keras.layers.MixUp(alpha=alpha, seed=seed)

    def blend(x, y):
        soft = tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), n_classes, dtype=tf.float32)
        out = layer({"images": x, "labels": soft}, training=True)
        return out["images"], out["labels"]

    return ds.map(blend, **_random_map_options()).prefetch(tf.data.AUTOTUNE)


def make_datasets(prepared, *, image_size: int, batch_size: int, seed: int = 42, augment: bool = True):
    """(train, val, test) datasets from an `emolib.data.PreparedData`."""
    tr_x, tr_y = prepared.split("train")
    va_x, va_y = prepared.split("val")
    te_x, te_y = prepared.split("test")
    return (
        make_dataset(
            tr_x, tr_y, image_size=image_size, batch_size=batch_size, training=True, augment=augment, seed=seed
        ),
        make_dataset(va_x, va_y, image_size=image_size, batch_size=batch_size),
        make_dataset(te_x, te_y, image_size=image_size, batch_size=batch_size),
    )


def throughput(ds, steps: int | None = None) -> float:
    """Batches of a dataset per second read end to end (for the input-pipeline benchmark)."""
    import time

    t0 = time.perf_counter()
    n = sum(1 for _ in (ds.take(steps) if steps else ds))
    return n / max(time.perf_counter() - t0, 1e-9)
