"""Face tracks across video frames: an IoU tracker with stable ids, and smoothing over time.

Tracking (`IouTracker`). Each track remembers its last box, the time it was seen and a
velocity (pixels per second, damped). When new detections arrive at time t, every track's box
is first moved to where its velocity says it should be at t, then tracks and detections are
paired by the Hungarian algorithm on a cost that is low for a large overlap (IoU) and a small
distance between centres. A pair counts only if the boxes overlap (IoU >= `min_iou`) or their
centres are close: within `max_center_dist` box sizes plus `max_speed` box sizes per second since
the track was last seen (with sparse detections a face moves far between two of them, and a new
track does not know its velocity yet). A detection left unpaired starts a new
track with the next id; a track left unpaired has missed one detection round and is dropped after
more than `max_missed` of them in a row. Predicting with the velocity is what keeps two faces
that cross paths apart: at the crossing both boxes overlap both detections, but each track's
predicted box lies on its own face.

Smoothing (`EmaSmoother`, `ema_alpha`, `smooth_series`). The class probabilities of a track are
an exponential moving average over time: a new frame's probabilities p at time t, dt seconds
after the track's previous ones, update the smoothed s as

    s <- s + alpha * (p - s),   alpha = 1 - exp(-dt / tau)

with the time constant tau in seconds (`smoothing_s`). Because alpha depends on dt rather than on
a frame count, the same tau smooths a 60 fps clip, a 25 fps clip, a clip sampled with --every or
--fps, and a variable-frame-rate clip alike: a change of expression shows after about tau seconds
(63% of the way). tau = 0 turns smoothing off (s = p).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_IOU = 0.2  # boxes of one face on consecutive detections overlap far more than this
MAX_CENTER_DIST = 0.6  # ... or their centres lie within 0.6 box sizes of each other
MAX_SPEED = 2.0  # ... plus this many box sizes per second since the track was last seen (a face moves)
MAX_MISSED = 5  # detection rounds a track may miss in a row before it is dropped
VELOCITY_KEEP = 0.5  # velocity <- keep * old + (1 - keep) * measured: damps detector jitter


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes (0 when either is empty)."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def center_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between the centres of two boxes, in units of a's size (sqrt of its area)."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    d = math.hypot((ax + aw / 2) - (bx + bw / 2), (ay + ah / 2) - (by + bh / 2))
    return d / max(1e-6, math.sqrt(max(aw * ah, 1e-6)))


def ema_alpha(dt: float, tau: float) -> float:
    """Weight of a new observation dt seconds after the last one, for time constant tau seconds."""
    if tau <= 0:
        return 1.0
    return 1.0 - math.exp(-max(0.0, float(dt)) / float(tau))


def smooth_series(times: Sequence[float], probs: np.ndarray, tau: float) -> np.ndarray:
    """The exponential moving average (time constant `tau` s) of probabilities (N, C) seen at `times`."""
    probs = np.asarray(probs, dtype=np.float64)
    out = np.empty_like(probs)
    for i, p in enumerate(probs):
        out[i] = p if i == 0 else out[i - 1] + ema_alpha(times[i] - times[i - 1], tau) * (p - out[i - 1])
    return out


@dataclass
class Track:
    """One face followed over time. `box` is (x, y, w, h) floats at `time_s`."""

    id: int
    box: np.ndarray
    time_s: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # d(x, y, w, h)/dt in px/s
    missed: int = 0  # detection rounds missed in a row
    hits: int = 1  # detections matched, the first included

    def predicted(self, time_s: float) -> np.ndarray:
        """The box moved by the velocity to `time_s` (width and height kept positive)."""
        box = self.box + self.velocity * (time_s - self.time_s)
        box[2:] = np.maximum(box[2:], 1.0)
        return box


class EmaSmoother:
    """The smoothed class probabilities of one track: feed `update(probs, time_s)` in time order."""

    def __init__(self, tau: float):
        self.tau = float(tau)
        self.value: np.ndarray | None = None
        self.time_s: float | None = None

    def update(self, probs: np.ndarray, time_s: float) -> np.ndarray:
        """Feed one frame's probabilities; returns the smoothed probabilities after it."""
        p = np.asarray(probs, dtype=np.float64)
        if self.value is None or self.time_s is None:
            self.value = p.copy()
        else:
            self.value = self.value + ema_alpha(time_s - self.time_s, self.tau) * (p - self.value)
        self.time_s = float(time_s)
        return self.value


class IouTracker:
    """Stable ids for face boxes across frames (see the module docstring for the rules)."""

    def __init__(
        self,
        *,
        min_iou: float = MIN_IOU,
        max_center_dist: float = MAX_CENTER_DIST,
        max_speed: float = MAX_SPEED,
        max_missed: int = MAX_MISSED,
    ):
        self.min_iou = float(min_iou)
        self.max_center_dist = float(max_center_dist)
        self.max_speed = float(max_speed)
        self.max_missed = int(max_missed)
        self.tracks: list[Track] = []
        self.next_id = 1
        self.by_id: dict[int, Track] = {}

    def _cost(self, track: Track, box: np.ndarray, time_s: float) -> float | None:
        """Pairing cost (lower is better), or None when the pair is not plausible."""
        pred = track.predicted(time_s)
        overlap = iou(pred, box)
        dist = center_distance(pred, box)
        reach = self.max_center_dist + self.max_speed * max(0.0, time_s - track.time_s)
        if overlap < self.min_iou and dist > reach:
            return None
        return (1.0 - overlap) + dist

    def update(self, boxes: Sequence[Sequence[float]], time_s: float) -> list[int]:
        """Detections at `time_s` -> the track id of each box, in the order given."""
        from scipy.optimize import linear_sum_assignment

        dets = [np.asarray(b, dtype=np.float64) for b in boxes]
        ids: list[int | None] = [None] * len(dets)
        matched: set[int] = set()
        if self.tracks and dets:
            big = 1e6  # stands for an impossible pair inside the assignment
            cost = np.full((len(self.tracks), len(dets)), big)
            for i, tr in enumerate(self.tracks):
                for j, box in enumerate(dets):
                    c = self._cost(tr, box, time_s)
                    if c is not None:
                        cost[i, j] = c
            for i, j in zip(*linear_sum_assignment(cost)):
                if cost[i, j] >= big:
                    continue
                tr, box = self.tracks[i], dets[j]
                dt = time_s - tr.time_s
                if dt > 0:
                    measured = (box - tr.box) / dt
                    tr.velocity = (
                        measured if tr.hits == 1 else (VELOCITY_KEEP * tr.velocity + (1 - VELOCITY_KEEP) * measured)
                    )
                tr.box, tr.time_s, tr.missed = box, float(time_s), 0
                tr.hits += 1
                ids[j] = tr.id
                matched.add(tr.id)
        kept = []
        for tr in self.tracks:
            if tr.id not in matched:
                tr.missed += 1
            if tr.missed <= self.max_missed:
                kept.append(tr)
            else:
                del self.by_id[tr.id]
        self.tracks = kept
        for j, box in enumerate(dets):
            if ids[j] is None:
                tr = Track(id=self.next_id, box=box, time_s=float(time_s))
                self.next_id += 1
                self.tracks.append(tr)
                self.by_id[tr.id] = tr
                ids[j] = tr.id
        return ids  # type: ignore[return-value]

    def current(self, time_s: float) -> list[tuple[int, np.ndarray]]:
        """(id, predicted box) of the tracks seen at the last detection round, for frames between
        detections; tracks that missed it are coasting and give no box."""
        return [(tr.id, tr.predicted(time_s)) for tr in self.tracks if tr.missed == 0]
