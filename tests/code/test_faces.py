"""Face detection on a real photo (matplotlib's grace_hopper.jpg), crops and face modes."""
from __future__ import annotations

import numpy as np
import pytest

from emolib import faces
from emolib.images import read_image

cbook = pytest.importorskip("matplotlib.cbook")


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    """A real face photo that ships with matplotlib (600x512), as grayscale uint8."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return read_image(path, mode="L")


def side_by_side(face: np.ndarray, n: int, gap: int = 40) -> tuple[np.ndarray, list[int]]:
    h, w = face.shape
    canvas = np.full((h + 2 * gap, n * (w + gap) + gap), 128, np.uint8)
    lefts = []
    for i in range(n):
        x = gap + i * (w + gap)
        canvas[gap:gap + h, x:x + w] = face
        lefts.append(x)
    return canvas, lefts


def test_detector_is_available():
    assert faces.detector_available()


def test_one_face_in_grace_hopper(hopper):
    boxes = faces.detect_faces(hopper)
    assert len(boxes) == 1
    b = boxes[0]
    assert isinstance(b, faces.Box)
    # The face sits in the upper middle of the portrait.
    cx, cy = b.x + b.w / 2, b.y + b.h / 2
    assert 150 < cx < 400 and 100 < cy < 350
    assert 120 < b.w < 350 and b.w == b.h


@pytest.mark.parametrize("n", [2, 3])
def test_several_faces_left_to_right(hopper, n):
    canvas, lefts = side_by_side(hopper, n)
    boxes = faces.detect_faces(canvas)
    assert len(boxes) == n
    assert [b.x for b in boxes] == sorted(b.x for b in boxes)
    for box, left in zip(boxes, lefts):  # each box lies inside its own copy
        assert left <= box.x and box.x + box.w <= left + hopper.shape[1]


def test_large_photo_downscaled_for_detection_maps_boxes_back(hopper):
    full = faces.detect_faces(hopper)[0]
    small = faces.detect_faces(hopper, max_side=300)
    assert len(small) == 1
    b = small[0]
    # Boxes are in the original image's pixels: close to the full-resolution box.
    assert abs(b.x - full.x) < 25 and abs(b.y - full.y) < 25 and abs(b.w - full.w) < 40


def test_no_face_in_blank_or_noise():
    assert faces.detect_faces(np.full((300, 400), 200, np.uint8)) == []
    # An image smaller than the smallest face searched for.
    assert faces.detect_faces(np.zeros((20, 20), np.uint8)) == []


def test_crop_face_margin_and_clamping():
    img = np.arange(100 * 80, dtype=np.uint32).reshape(100, 80).astype(np.uint8)
    crop = faces.crop_face(img, faces.Box(20, 30, 20, 20), margin=0.2)
    assert crop.shape == (28, 28)  # 4 px on every side
    assert np.array_equal(crop, img[26:54, 16:44])
    corner = faces.crop_face(img, faces.Box(0, 0, 30, 30), margin=0.5)
    assert corner.shape == (45, 45)  # clamped at the top-left
    edge = faces.crop_face(img, (60, 90, 20, 10), margin=0.2)
    assert edge.shape == (100 - 88, 80 - 56)  # clamped at the bottom-right
    assert np.array_equal(faces.crop_face(img, (10, 10, 20, 20), margin=0), img[10:30, 10:30])


def test_looks_like_face_crop():
    assert faces.looks_like_face_crop(np.zeros((48, 48), np.uint8))
    assert faces.looks_like_face_crop(np.zeros((100, 90), np.uint8))
    assert not faces.looks_like_face_crop(np.zeros((600, 512), np.uint8))  # a photo
    assert not faces.looks_like_face_crop(np.zeros((48, 120), np.uint8))  # a strip, not a crop
    assert not faces.looks_like_face_crop(np.zeros((200, 200), np.uint8))


def test_auto_passes_small_crops_through_without_detection(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("detector must not run on a 48x48 crop under faces='auto'")

    monkeypatch.setattr(faces, "detect_faces", boom)
    crop = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    [(box, face)] = faces.find_faces(crop, "auto")
    assert box is None and np.array_equal(face, crop)


def test_find_faces_modes(hopper):
    [(box, whole)] = faces.find_faces(hopper, "off")
    assert box is None and whole.shape == hopper.shape
    [(box, crop)] = faces.find_faces(hopper, "auto")  # a photo: detection
    assert box is not None and crop.shape[0] > box.h  # with the margin
    [(box_on, _)] = faces.find_faces(hopper, "on")
    assert box_on == box
    assert faces.find_faces(np.full((48, 48), 128, np.uint8), "on") == []  # 'on' searches even crops
    with pytest.raises(ValueError, match="auto, on, off"):
        faces.find_faces(hopper, "maybe")
