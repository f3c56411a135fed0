import numpy as np
import pytest

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


def test_mixup_blends_faces_and_targets_alike():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 48, 48), dtype=np.uint8)
    labels = np.arange(48) % 3
    plain = pipeline.make_dataset(pixels, labels, batch_size=16)  # ordered, so both passes see the same batches
    mixed = pipeline.mixup(plain, n_classes=3, alpha=0.2, seed=3)
    assert mixed.element_spec[1].shape.as_list() == [None, 3]  # soft targets
    blended_any = False
    for (x, y), (mx, my) in zip(plain, mixed, strict=True):
        x, y, mx, my = x.numpy(), y.numpy(), mx.numpy(), my.numpy()
        np.testing.assert_allclose(my.sum(1), 1.0, atol=1e-5)
        assert my.min() >= 0 and mx.min() >= 0 and mx.max() <= 255
        # each target is w * own + (1 - w) * partner's one-hot; the image blend uses the same w
        own = tf.one_hot(y, 3).numpy()
        w = (my * own).sum(1)  # the own class's share (>= w: the partner may share the class)
        assert np.all(w >= 0) and np.all(w <= 1 + 1e-6)
        for i in range(len(x)):
            if not 0.05 < w[i] < 0.95:  # the same class (w 1), or too little of one face to solve for it
                continue
            # a partner of another class: find it among the batch's faces by solving the blend
            partner = (mx[i] - w[i] * x[i]) / (1 - w[i])
            assert np.min([np.abs(partner - x[j]).max() for j in range(len(x))]) < 0.5
            blended_any = True
    assert blended_any
    with pytest.raises(ValueError, match="alpha"):
        pipeline.mixup(plain, n_classes=3, alpha=0.0)


def test_mixup_is_seeded():
    pixels = np.random.default_rng(1).integers(0, 256, (32, 48, 48), dtype=np.uint8)
    labels = np.arange(32) % 3

    def first(seed):
        ds = pipeline.make_dataset(pixels, labels, batch_size=16)
        return next(iter(pipeline.mixup(ds, n_classes=3, alpha=0.2, seed=seed)))[1].numpy()

    np.testing.assert_array_equal(first(5), first(5))
    assert not np.array_equal(first(5), first(6))
