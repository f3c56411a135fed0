import numpy as np

from emolib import pipeline


def _pixels(n=40, size=48):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.integers(0, 3, n).astype(np.int32)


def test_eval_dataset_is_ordered_raw_pixels():
    x, y = _pixels()
    batches = list(pipeline.make_dataset(x, y, batch_size=16))
    xb = np.concatenate([b[0].numpy() for b in batches])
    yb = np.concatenate([b[1].numpy() for b in batches])
    assert xb.shape == (40, 48, 48, 1) and xb.dtype == np.float32
    np.testing.assert_array_equal(xb[..., 0], x.astype(np.float32))
    np.testing.assert_array_equal(yb, y)


def test_resize_and_rgb():
    x, y = _pixels(8)
    xb, _ = next(iter(pipeline.make_dataset(x, y, image_size=32, channels=3, batch_size=8)))
    assert xb.shape == (8, 32, 32, 3)
    assert 0 <= float(xb.numpy().min()) and float(xb.numpy().max()) <= 255


def test_training_dataset_shuffles_and_augments_within_range():
    x, y = _pixels()
    ds = pipeline.make_dataset(x, y, batch_size=40, training=True, seed=1)
    xb, yb = next(iter(ds))
    xb, yb = xb.numpy(), yb.numpy()
    assert sorted(yb.tolist()) == sorted(y.tolist())  # same items
    assert not np.array_equal(yb, y)  # shuffled
    assert xb.min() >= 0 and xb.max() <= 255
    assert not np.allclose(np.sort(xb.ravel()), np.sort(x.astype(np.float32).ravel()))  # augmented


def test_unlabelled_dataset_yields_images_only():
    x, _ = _pixels(5)
    xb = next(iter(pipeline.make_dataset(x, batch_size=5)))
    assert xb.shape == (5, 48, 48, 1)


def test_training_batches_are_those_of_shuffling_the_images_themselves():
    """The pipeline shuffles indices; the batches must be what shuffling the images gave (same seed),
    every epoch, so a run's numbers do not depend on that speed-up."""
    import tensorflow as tf

    x, y = _pixels(n=150, size=20)
    ds = pipeline.make_dataset(x, y, image_size=16, batch_size=32, training=True, augment=False, seed=7)

    def resized(img, label):
        return tf.image.resize(tf.cast(img, tf.float32), (16, 16), method="bilinear", antialias=True), label

    reference = (
        tf.data.Dataset.from_tensor_slices((x[..., None], y))
        .map(resized)
        .shuffle(150, seed=7, reshuffle_each_iteration=True)
        .batch(32)
    )
    tf.random.set_seed(3)
    ours = [(a.numpy(), b.numpy()) for _ in range(2) for a, b in ds]
    tf.random.set_seed(3)
    theirs = [(a.numpy(), b.numpy()) for _ in range(2) for a, b in reference]
    assert len(ours) == len(theirs) == 10  # 5 batches (the last one short) x 2 epochs
    for (xa, ya), (xb, yb) in zip(ours, theirs):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(ours[0][1], ours[5][1])  # reshuffled each epoch
    assert not np.array_equal(ours[0][1], y[:32])  # shuffled at all
