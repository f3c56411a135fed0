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
