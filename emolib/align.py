"""Face crops from landmarks that look like FER2013's: eyes level, tight, roughly eyebrows to chin.

The models are trained on FER2013 crops, so a face found in a photo should reach them framed
the same way. Where the eyes and the mouth sit in a FER2013 crop was measured, not guessed:
BlazeFace run on 600 random FER2013 train crops (upscaled to 144 px with a border, 580 found)
put, as a fraction of the crop's side (medians):

* the midpoint of the eyes at x = 0.50, y = 0.39 (`EYE_X`, `EYE_Y`);
* the eyes 0.36 apart (`EYE_DISTANCE`);
* the mouth centre 0.385 below the eye midpoint (`EYE_TO_MOUTH`);
* the eye line within +-5 degrees of level for half of the crops (FER2013 is roughly aligned).

`face_crop` builds the square that puts a detected face's eyes and mouth at those places,
rotated about the eye midpoint so that the eyes are level (``align=True``), and cuts it out
with one affine warp. Pixels beyond the photo's edge repeat the edge (no black corners).
"""

from __future__ import annotations

import math

import numpy as np

EYE_X = 0.50
EYE_Y = 0.39
EYE_DISTANCE = 0.36
EYE_TO_MOUTH = 0.385
# Round-trip check: BlazeFace run the same way on our crops of 150 wild_faces photos found the
# eyes 0.348 apart and the mouth 0.376 below them, ~5% looser than on FER2013 crops (landmarks
# found on a full photo sit a little differently from those found on a small crop): shrink by that.
TIGHTEN = 0.95
MIN_SIDE = 8  # the smallest crop made, in pixels (emolib.images refuses smaller images)


def eye_angle(eye_a, eye_b) -> float:
    """Angle of the eye line in degrees, in image coordinates (y down): positive when the eye on
    the right of the image is lower. The eyes may come in either order."""
    (ax, ay), (bx, by) = sorted([tuple(map(float, eye_a)), tuple(map(float, eye_b))])
    return math.degrees(math.atan2(by - ay, bx - ax))


def crop_geometry(eyes, mouth, *, align: bool = True) -> tuple[tuple[float, float], float, float]:
    """(eye midpoint (x, y), side of the square in pixels, rotation in degrees) for a face.

    The side is the mean of two estimates, from the eye distance and from the eye-to-mouth
    distance, but at least 80% of the larger one: turning the head shrinks the first, nodding
    the second, and neither grows. (The plain larger one made crops ~6% looser than FER2013's.)
    """
    (ax, ay), (bx, by) = sorted([tuple(map(float, e)) for e in eyes])
    mid = ((ax + bx) / 2.0, (ay + by) / 2.0)
    eye_dist = math.hypot(bx - ax, by - ay)
    mouth_dist = math.hypot(float(mouth[0]) - mid[0], float(mouth[1]) - mid[1])
    by_eyes, by_mouth = eye_dist / EYE_DISTANCE, mouth_dist / EYE_TO_MOUTH
    side = max(TIGHTEN * max((by_eyes + by_mouth) / 2.0, 0.8 * max(by_eyes, by_mouth)), float(MIN_SIDE))
    angle = eye_angle((ax, ay), (bx, by)) if align else 0.0
    return mid, side, angle


def face_crop(gray: np.ndarray, eyes, mouth, *, align: bool = True) -> np.ndarray:
    """The FER2013-like square crop (side x side pixels, at the photo's resolution) of one face.

    eyes: the two eye centres (any order), mouth: the mouth centre, in pixels of `gray`.
    With `align` the crop is rotated so that the eyes are level; without, it is upright.
    """
    import cv2

    img = np.ascontiguousarray(np.asarray(gray))
    mid, side, angle = crop_geometry(eyes, mouth, align=align)
    n = max(MIN_SIDE, int(round(side)))
    step = side / n  # source pixels per crop pixel
    t = math.radians(angle)
    cos, sin = math.cos(t), math.sin(t)
    # crop pixel (u, v) -> upright offset from the eye midpoint (du, dv) -> rotated by the eye
    # line's angle -> source pixel. Written as one 2x3 matrix for cv2's inverse-map warp.
    du0, dv0 = -EYE_X * side, -EYE_Y * side
    matrix = np.array(
        [
            [cos * step, -sin * step, mid[0] + cos * du0 - sin * dv0],
            [sin * step, cos * step, mid[1] + sin * du0 + cos * dv0],
        ],
        dtype=np.float64,
    )
    # half a pixel: the centre of crop pixel (u, v) is at u + 0.5 in continuous coordinates
    matrix[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(
        img, matrix, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
