"""Test-time augmentation (TTA): the views of a face whose predictions are averaged.

One definition serves every TTA number: the error analysis's `*_tta.csv`, the comparison's
TTA rows and ensembles, `emolib predict --tta` and the playground. The views are the face
at three scales (as is, zoomed in 10%, zoomed out 10%: the training augmentation's
`RandomZoom(0.1)` range), each also mirrored: 6 forward passes per face.

Chosen on validation (README, ablation table): on `deepcnn`'s validation split the six
views score macro-F1 0.812 as implemented here (0.814 in the grid, which resized with
TensorFlow) against 0.809 for the mirror alone; shifts of 2-4 px, with or
without the mirror, did not beat it. `POLICY` names the views; saved TTA predictions
record it, so a change of views re-runs them instead of reusing stale files.
"""

from __future__ import annotations

import numpy as np

ZOOM = 0.1
SCALES = (1.0, 1.0 + ZOOM, 1.0 - ZOOM)
POLICY = "mirror x zoom 1.0/1.1/0.9"
N_VIEWS = 2 * len(SCALES)


def _zoom_one(img: np.ndarray, scale: float) -> np.ndarray:
    """(S, S) float32 -> (S, S): zoomed in (scale > 1: central crop, upsampled) or out (reflected border)."""
    import cv2  # lazily, as elsewhere in emolib: importing emolib.predict stays light

    s = img.shape[0]
    if scale > 1.0:
        side = int(round(s / scale))
        o = (s - side) // 2
        return cv2.resize(img[o : o + side, o : o + side], (s, s), interpolation=cv2.INTER_LINEAR)
    pad = int(round(s * (1.0 / scale - 1.0) / 2.0))
    # BORDER_REFLECT_101 is numpy's 'reflect', the training augmentation's fill_mode='reflect'
    big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    return cv2.resize(big, (s, s), interpolation=cv2.INTER_AREA)


def zoom(x: np.ndarray, scale: float) -> np.ndarray:
    """(N, S, S, 1) -> (N, S, S, 1) float32, every face zoomed by `scale` about its centre."""
    x = np.asarray(x, dtype=np.float32)
    if scale == 1.0:
        return x
    return np.stack([_zoom_one(np.ascontiguousarray(im[..., 0]), scale) for im in x])[..., None]


def views(x: np.ndarray) -> np.ndarray:
    """(N, S, S, 1) raw pixels -> (N_VIEWS * N, S, S, 1): for each scale the faces, then their mirrors.

    Averaging a model's outputs with `average` gives the TTA prediction.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] != x.shape[2]:
        raise ValueError(f"expected (N, S, S, C) faces, got {x.shape}")
    out = []
    for scale in SCALES:
        z = zoom(x, scale)
        out += [z, z[:, :, ::-1, :]]
    return np.ascontiguousarray(np.concatenate(out))


def average(outputs: np.ndarray, n: int) -> np.ndarray:
    """Outputs for `views(x)` ((N_VIEWS * n, ...)) -> their mean per face ((n, ...))."""
    outputs = np.asarray(outputs)
    if len(outputs) != N_VIEWS * n:
        raise ValueError(f"expected {N_VIEWS * n} rows ({N_VIEWS} views of {n} faces), got {len(outputs)}")
    return outputs.reshape((N_VIEWS, n) + outputs.shape[1:]).mean(axis=0)
