"""Every odd input either reads as a clean uint8 image or fails with ImageReadError."""

import io

import numpy as np
import pytest
from PIL import Image

from emolib import images


def _save(tmp_path, name, img, **kw):
    p = tmp_path / name
    img.save(p, **kw)
    return p


def test_modes_are_converted(tmp_path):
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent -> white
    assert images.read_image(_save(tmp_path, "a.png", rgba)).min() == 255
    cmyk = Image.new("CMYK", (20, 20), (0, 0, 0, 255))
    assert images.read_image(_save(tmp_path, "c.jpg", cmyk)).mean() < 30
    pal = Image.new("P", (20, 20))
    assert images.read_image(_save(tmp_path, "p.gif", pal)).shape == (20, 20)
    arr16 = np.full((20, 20), 65535, dtype=np.uint16)
    assert images.read_image(_save(tmp_path, "d.png", Image.fromarray(arr16))).min() == 255
    rgb = images.read_image(_save(tmp_path, "r.png", Image.new("L", (20, 10), 7)), mode="RGB")
    assert rgb.shape == (10, 20, 3) and rgb.dtype == np.uint8


def test_sixteen_bit_keeps_its_brightness_scale(tmp_path):
    arr16 = np.linspace(0, 65535, 400).reshape(20, 20).astype(np.uint16)
    out = images.read_image(_save(tmp_path, "g.png", Image.fromarray(arr16)))
    assert out.min() == 0 and out.max() == 255


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"", "empty"),
        (b"this is text, not an image", "not an image"),
    ],
)
def test_non_images_fail_clearly(tmp_path, payload, reason):
    p = tmp_path / "x.jpg"
    p.write_bytes(payload)
    with pytest.raises(images.ImageReadError, match=reason):
        images.read_image(p)


def test_truncated_jpeg_fails_clearly(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "JPEG")
    p = tmp_path / "t.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(images.ImageReadError, match="corrupt or truncated"):
        images.read_image(p)


def test_missing_tiny_and_huge(tmp_path, monkeypatch):
    with pytest.raises(images.ImageReadError, match="not found"):
        images.read_image(tmp_path / "nope.png")
    with pytest.raises(images.ImageReadError, match="too small"):
        images.read_image(_save(tmp_path, "tiny.png", Image.new("L", (4, 4))))
    big = _save(tmp_path, "big.png", Image.new("1", (3000, 3000)))  # small file, many pixels
    with pytest.raises(images.ImageReadError, match="decompression bomb"):
        images.read_image(big, max_pixels=1_000_000)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("L", (40, 20), 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    p = tmp_path / "o.jpg"
    img.save(p, exif=exif)
    assert images.read_image(p).shape == (40, 20)


def test_arrays_and_resizing():
    a = np.random.default_rng(0).random((30, 30))  # floats in 0..1
    out = images.read_image(a, size=48)
    assert out.shape == (48, 48) and out.dtype == np.uint8 and out.max() > 200
    with pytest.raises(images.ImageReadError):
        images.read_image(np.zeros((5, 5, 7)))
