"""emolib.tta: the views every TTA number averages over."""

import numpy as np
import pytest

from emolib import tta


def _square(side: int, size: int = 48) -> np.ndarray:
    """A bright centred square on black, (1, size, size, 1)."""
    img = np.zeros((size, size), np.float32)
    o = (size - side) // 2
    img[o : o + side, o : o + side] = 200.0
    return img[None, ..., None]


def _bright_width(img: np.ndarray) -> int:
    """Columns of the middle row brighter than half the square's value."""
    row = img[img.shape[0] // 2, :, 0]
    return int((row > 100).sum())


def test_views_are_the_face_its_mirror_and_two_zooms():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(5, 48, 48, 1)).astype(np.float32)
    v = tta.views(x)
    assert v.shape == (tta.N_VIEWS * 5, 48, 48, 1) and v.dtype == np.float32
    np.testing.assert_array_equal(v[:5], x)  # scale 1.0 first
    np.testing.assert_array_equal(v[5:10], x[:, :, ::-1])  # then its mirror
    for k in range(1, len(tta.SCALES)):  # every scale is followed by its own mirror
        np.testing.assert_array_equal(v[10 * k + 5 : 10 * k + 10], v[10 * k : 10 * k + 5, :, ::-1])
    assert not np.allclose(v[10:15], x)  # the zooms do change the faces


def test_zoom_in_enlarges_and_zoom_out_shrinks_about_the_centre():
    sq = _square(20)
    assert _bright_width(sq[0]) == 20
    zin, zout = tta.zoom(sq, 1.1)[0], tta.zoom(sq, 0.9)[0]
    assert 21 <= _bright_width(zin) <= 23  # 20 * 1.1
    assert 17 <= _bright_width(zout) <= 19  # 20 * 0.9
    for z in (zin, zout):  # still centred: symmetric about the middle
        row = z[24, :, 0]
        assert np.flatnonzero(row > 100)[0] + np.flatnonzero(row > 100)[-1] in (46, 47, 48)
    flat = np.full((2, 32, 32, 1), 77.0, np.float32)  # a flat face stays flat at any size
    for s in tta.SCALES:
        np.testing.assert_allclose(tta.zoom(flat, s), flat, atol=1e-3)


def test_average_is_the_mean_per_face_and_checks_its_input():
    n, k = 3, 4
    outs = np.arange(tta.N_VIEWS * n * k, dtype=np.float64).reshape(tta.N_VIEWS * n, k)
    avg = tta.average(outs, n)
    assert avg.shape == (n, k)
    np.testing.assert_allclose(avg[1], np.mean([outs[v * n + 1] for v in range(tta.N_VIEWS)], axis=0))
    with pytest.raises(ValueError, match="views"):
        tta.average(outs[:-1], n)
    with pytest.raises(ValueError, match="faces"):
        tta.views(np.zeros((2, 48, 40, 1), np.float32))
