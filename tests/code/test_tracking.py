"""emolib.tracking: stable track ids on synthetic moving boxes, and smoothing over time."""

from __future__ import annotations

import numpy as np
import pytest

from emolib import tracking

FPS = 30.0


def run(tracker, frames):
    """Feed a list of box lists (one per frame); returns the ids given per frame."""
    return [tracker.update(boxes, i / FPS) for i, boxes in enumerate(frames)]


def test_iou_and_distance():
    assert tracking.iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert tracking.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert tracking.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert tracking.center_distance((0, 0, 10, 10), (10, 0, 10, 10)) == pytest.approx(1.0)


def test_two_faces_moving_smoothly_keep_their_ids():
    rng = np.random.default_rng(0)
    frames = []
    for i in range(60):
        a = (20 + 3 * i, 40 + 10 * np.sin(i / 8), 50, 50)
        b = (300 - 2 * i, 200 + 10 * np.cos(i / 9), 60, 60)
        frames.append([np.add(a, rng.normal(0, 1.5, 4)), np.add(b, rng.normal(0, 1.5, 4))])
    ids = run(tracking.IouTracker(), frames)
    assert all(f == [1, 2] for f in ids), ids


@pytest.mark.parametrize("hidden", [0, 4])
def test_two_faces_crossing_paths_keep_their_ids(hidden):
    """Face 1 moves right, face 2 left, at the same height: they overlap fully at the crossing.
    With `hidden` > 0 the face behind is not detected for that many frames around the crossing."""
    rng = np.random.default_rng(1)
    frames, truth = [], []
    for i in range(50):
        a = np.array([10 + 6 * i, 100, 50, 50]) + rng.normal(0, 1.0, 4)
        b = np.array([310 - 6 * i, 104, 50, 50]) + rng.normal(0, 1.0, 4)
        near_crossing = abs(i - 25) < hidden / 2 + 0.5 and hidden
        boxes, who = ([a], ["a"]) if near_crossing else ([a, b], ["a", "b"])
        order = rng.permutation(len(boxes))  # the detector's order means nothing
        frames.append([boxes[k] for k in order])
        truth.append([who[k] for k in order])
    ids = run(tracking.IouTracker(), frames)
    name_of: dict[int, str] = {}
    for f_ids, f_who in zip(ids, truth):
        for track_id, who in zip(f_ids, f_who):
            assert name_of.setdefault(track_id, who) == who, (ids, truth)
    assert sorted(name_of) == [1, 2]  # no track lost and restarted


def test_new_track_when_no_match_and_dropped_after_missed_rounds():
    tr = tracking.IouTracker(max_missed=2)
    assert tr.update([(0, 0, 40, 40)], 0.0) == [1]
    assert tr.update([(1, 0, 40, 40), (200, 200, 40, 40)], 0.1) == [1, 2]  # far away: a new face
    assert [t.id for t in tr.tracks] == [1, 2]
    tr.update([], 0.2)
    tr.update([], 0.3)
    assert [t.id for t in tr.tracks] == [1, 2]  # missed twice: still kept (coasting)
    assert tr.current(0.3) == []  # ... but coasting tracks give no box
    tr.update([], 0.4)
    assert tr.tracks == []  # missed three times: dropped
    assert tr.update([(0, 0, 40, 40)], 0.5) == [3]  # ids are never reused


def test_current_moves_boxes_with_velocity():
    tr = tracking.IouTracker()
    tr.update([(0, 0, 40, 40)], 0.0)
    tr.update([(10, 0, 40, 40)], 0.1)  # 100 px/s to the right
    [(track_id, box)] = tr.current(0.15)
    assert track_id == 1 and box[0] == pytest.approx(15.0)


def test_ema_is_frame_rate_independent():
    tau = 0.5
    # a step from class 0 to class 1 at t = 1 s, seen at 10 fps and at 50 fps
    out = {}
    for fps in (10, 50):
        t = np.arange(0, 3, 1 / fps)
        p = np.where((t >= 1)[:, None], [0.0, 1.0], [1.0, 0.0])
        s = tracking.smooth_series(t, p, tau)
        out[fps] = s[np.searchsorted(t, 1.5 - 1e-9) - 0, 1]  # class-1 share half a second after the step
    assert out[10] == pytest.approx(out[50], abs=0.06)
    assert out[10] == pytest.approx(1 - np.exp(-0.5 / tau), abs=0.1)
    assert tracking.ema_alpha(0.1, 0) == 1.0  # tau 0: no smoothing


def test_smoothing_changes_labels_less_often_than_raw_frames():
    """Noisy frames around a face that is 'a' for 4 s then 'b' for 4 s: argmax of the raw
    probabilities flickers; the smoothed label changes (close to) once."""
    rng = np.random.default_rng(3)
    t = np.arange(0, 8, 1 / 30)
    base = np.where((t < 4)[:, None], [0.55, 0.30, 0.15], [0.30, 0.55, 0.15])
    noisy = np.clip(base + rng.normal(0, 0.15, base.shape), 1e-3, None)
    noisy /= noisy.sum(1, keepdims=True)
    raw_changes = int(np.sum(np.diff(noisy.argmax(1)) != 0))
    ema = tracking.EmaSmoother(tau=0.5)
    smoothed = np.array([ema.update(p, ti) for ti, p in zip(t, noisy)])
    smooth_changes = int(np.sum(np.diff(smoothed.argmax(1)) != 0))
    assert raw_changes > 20
    assert smooth_changes <= 3 < raw_changes
    assert np.allclose(smoothed, tracking.smooth_series(t, noisy, 0.5))
    assert smoothed[-1].argmax() == 1 and smoothed[int(3.9 * 30)].argmax() == 0
