"""Face detection (OpenCV Haar cascade) and face crops for prediction.

Three modes decide what counts as "the face" of an image:

* ``'off'``  - the whole image is the face (a labelled folder of face crops).
* ``'on'``   - always run the detector; an image without a detected face has none.
* ``'auto'`` - an image that already looks like a face crop (small and roughly square,
  e.g. a FER2013 48x48 crop, see `looks_like_face_crop`) is used whole; any larger photo
  goes through the detector.

The Haar cascade ships inside ``opencv-python-headless`` 4.x (``cv2.data.haarcascades``);
OpenCV 5 wheels no longer do, hence the ``<5`` pin in pyproject.toml.
"""
from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import numpy as np

FaceMode = Literal["auto", "on", "off"]
FACE_MODES: tuple[str, ...] = ("auto", "on", "off")
CASCADE_FILE = "haarcascade_frontalface_default.xml"

# looks_like_face_crop: at most this many pixels on the longer side ...
CROP_MAX_SIDE = 128
# ... and at most this ratio between the longer and the shorter side.
CROP_MAX_ASPECT = 1.25

# Detection parameters (the usual ones for this cascade).
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_SIZE_FRACTION = 0.05  # smallest face: 5% of the shorter image side ...
MIN_SIZE_PX = 24  # ... but never below the cascade's own 24x24 window
DETECT_MAX_SIDE = 1600  # larger photos are downscaled for detection only (boxes map back)


class FaceDetectorUnavailable(RuntimeError):
    """OpenCV or its Haar cascade file is missing."""


class Box(NamedTuple):
    """A face box in pixels of the full image: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


def check_face_mode(faces: str) -> str:
    mode = str(faces).strip().lower()
    if mode not in FACE_MODES:
        raise ValueError(f"faces must be one of {', '.join(FACE_MODES)}; got {faces!r}")
    return mode


@functools.lru_cache(maxsize=1)
def _cascade():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - a dependency of emolib
        raise FaceDetectorUnavailable(
            f"face detection needs OpenCV: pip install 'opencv-python-headless>=4.8,<5' ({e})"
        ) from None
    base = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not base:
        raise FaceDetectorUnavailable(
            "this OpenCV build ships no Haar cascades (cv2.data.haarcascades is missing); "
            "install opencv-python-headless>=4.8,<5 (OpenCV 5 wheels dropped the cascades)"
        )
    path = base + CASCADE_FILE
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise FaceDetectorUnavailable(
            f"cannot load the Haar cascade {path}; install opencv-python-headless>=4.8,<5 "
            "(OpenCV 5 wheels dropped the cascades), or use faces='off' for face crops"
        )
    return classifier


def detector_available() -> bool:
    try:
        _cascade()
    except FaceDetectorUnavailable:
        return False
    return True


def _as_gray_uint8(gray: np.ndarray) -> np.ndarray:
    arr = np.asarray(gray)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise ValueError(f"need a 2-D grayscale image, got shape {arr.shape} (read it with emolib.images.read_image)")
    if arr.dtype != np.uint8:
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def detect_faces(
    gray: np.ndarray,
    *,
    scale_factor: float = SCALE_FACTOR,
    min_neighbors: int = MIN_NEIGHBORS,
    min_size_fraction: float = MIN_SIZE_FRACTION,
    max_side: int = DETECT_MAX_SIDE,
) -> list[Box]:
    """Frontal faces in a grayscale uint8 image, as Boxes sorted left to right.

    The smallest face searched for is `min_size_fraction` of the shorter image side
    (at least 24 px). Photos with a side over `max_side` are downscaled for the search
    only; the boxes are in pixels of the image given.
    """
    import cv2

    img = _as_gray_uint8(gray)
    h, w = img.shape
    scale = 1.0
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    side = min(img.shape)
    min_px = max(MIN_SIZE_PX, int(round(side * min_size_fraction)))
    if min_px > side:
        return []
    found = _cascade().detectMultiScale(
        img, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_px, min_px)
    )
    boxes = []
    for x, y, bw, bh in np.asarray(found, dtype=np.int64).reshape(-1, 4):
        if scale != 1.0:
            x, y, bw, bh = (int(round(v / scale)) for v in (x, y, bw, bh))
        x, y = max(0, int(x)), max(0, int(y))
        bw, bh = min(int(bw), w - x), min(int(bh), h - y)
        if bw > 0 and bh > 0:
            boxes.append(Box(x, y, bw, bh))
    return sorted(boxes, key=lambda b: (b.x, b.y))


def crop_face(gray: np.ndarray, box: Box | tuple[int, int, int, int], margin: float = 0.2) -> np.ndarray:
    """The box grown by `margin` x its width/height on every side, clamped to the image."""
    img = np.asarray(gray)
    x, y, w, h = (int(v) for v in box)
    dx, dy = int(round(w * margin)), int(round(h * margin))
    height, width = img.shape[:2]
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {tuple(box)} lies outside the {width}x{height} image")
    return img[y0:y1, x0:x1]


def looks_like_face_crop(gray: np.ndarray, *, max_side: int = CROP_MAX_SIDE, max_aspect: float = CROP_MAX_ASPECT) -> bool:
    """True for an image that is small (longer side <= 128 px) and roughly square.

    Such an image (a FER2013 48x48 crop, a 100x100 RAF-DB crop) is taken as an
    already-cropped face: the cascade cannot find a face that fills the whole frame.
    """
    h, w = np.asarray(gray).shape[:2]
    if min(h, w) <= 0:
        return False
    return max(h, w) <= max_side and max(h, w) / min(h, w) <= max_aspect


def find_faces(gray: np.ndarray, faces: str = "auto", *, margin: float = 0.2) -> list[tuple[Box | None, np.ndarray]]:
    """(box, crop) per face; box is None where the whole image is used (pass-through).

    An empty list means a face was searched for and none was found.
    """
    mode = check_face_mode(faces)
    if mode == "off" or (mode == "auto" and looks_like_face_crop(gray)):
        return [(None, np.asarray(gray))]
    return [(box, crop_face(gray, box, margin=margin)) for box in detect_faces(gray)]
