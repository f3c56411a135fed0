"""Procedurally generated faces, so the whole pipeline runs offline without FER2013.

Nothing here is a real face. Each image is drawn with PIL from a handful of
geometric parameters (brows, eyes, mouth, a few wrinkles) that follow the
expression, on top of random identity, pose, lighting, noise and occlusion, so
that the classes are learnable but not trivially separable. Numbers measured on
this data say nothing about real emotion recognition; `SYNTHETIC_BANNER` is the
text notebooks and reports print to say so.

Public API:

- `render_face(emotion, rng, size=48)`: one (size, size) uint8 grayscale face.
- `render_faces(emotions, seed=0, size=48)`: a batch, (N, size, size) uint8.
- `render_photo(emotions, rng, canvas=(320, 240))`: an RGB "photo" with faces at
  known boxes, for face-detection tests.
- `make_synthetic_dataset(root, ...)`: a FER2013-style class-folder dataset on disk.
- `is_synthetic(data_dir)`: whether a folder holds such a generated dataset.

Numpy and PIL only (no TensorFlow), so tests and data checks import it cheaply.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .config import DEFAULT_CLASSES, FER2013_CLASSES, normalise_class_name

__all__ = [
    "SYNTHETIC_BANNER",
    "GENERATOR_VERSION",
    "MARKER_JSON",
    "MARKER_TXT",
    "render_face",
    "render_faces",
    "render_photo",
    "make_synthetic_dataset",
    "is_synthetic",
    "read_synthetic_params",
]

SYNTHETIC_BANNER = (
    "SYNTHETIC DATA — procedurally generated faces, not FER2013; numbers here say "
    "nothing about real emotion recognition. Put FER2013 in data/raw/fer2013 (see README) "
    "to run on real data."
)
# Bump when the drawing changes, so an old cached dataset is regenerated.
GENERATOR_VERSION = 1
MARKER_JSON = "SYNTHETIC.json"
MARKER_TXT = "SYNTHETIC.txt"
SPLITS = ("train", "test")

# Supersampling factor: draw at 4x, then downsample, for antialiased edges.
_SS = 4

# ---------------------------------------------------------------------------
# Expression parameters
# ---------------------------------------------------------------------------
# Every expression is a set of offsets from the neutral face, in face units (the
# face half-width is 1, y points down, so a negative dy raises a feature).
# A sample's offsets are `intensity * target + jitter`; low intensities make
# deliberately ambiguous samples.
_PARAM_NAMES = (
    "brow_in_dy",  # inner brow corner height (+ = lower)
    "brow_out_dy",  # outer brow corner height
    "brow_arch",  # extra lift in the middle of the brow
    "brow_in_dx",  # inner corners pulled toward the centre
    "brow_asym",  # one brow lower than the other (disgust)
    "eye_open",  # eye opening, as a change of the neutral opening (+0.6 = 1.6x)
    "eye_droop",  # outer eye corner lowered (sad)
    "lid_slant",  # inner part of the upper lid lowered (angry glare)
    "mouth_curve",  # mouth-corner height relative to the centre (- = smile)
    "mouth_w",  # mouth width change (+0.2 = 1.2x)
    "mouth_open",  # gap between the lips
    "mouth_dy",  # whole mouth moved down (dropped jaw)
    "mouth_round",  # opening shape: - = flatter/stretched, + = rounder
    "mouth_upper",  # share of the opening above the mouth line (- = D-shaped grin)
    "lip_raise",  # upper lip raised on one side (disgust)
    "corner_asym",  # one mouth corner raised (disgust sneer)
    "lip_th",  # lip thickness change (- = pressed thin lips)
    "cheeks",  # raised cheeks, nasolabial folds (happy)
    "nose_wrinkle",  # wrinkled nose bridge (disgust)
    "glabella",  # vertical frown lines between the brows (angry)
    "forehead",  # horizontal forehead lines (surprise, fear)
    "teeth",  # teeth visible in the opening
)

_TARGETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "angry": dict(
        brow_in_dy=0.16,
        brow_out_dy=-0.06,
        brow_in_dx=0.06,
        brow_arch=-0.04,
        eye_open=-0.45,
        lid_slant=0.04,
        mouth_curve=0.05,
        mouth_w=-0.22,
        lip_th=-0.6,
        glabella=1.0,
    ),
    "disgust": dict(
        brow_in_dy=0.09,
        brow_out_dy=0.02,
        brow_asym=0.09,
        brow_in_dx=0.03,
        eye_open=-0.35,
        mouth_curve=0.08,
        mouth_w=-0.05,
        lip_raise=0.2,
        corner_asym=0.12,
        mouth_upper=0.3,
        lip_th=0.3,
        nose_wrinkle=1.0,
        teeth=0.6,
    ),
    "fear": dict(
        brow_in_dy=-0.17,
        brow_out_dy=-0.05,
        brow_in_dx=0.05,
        brow_arch=-0.04,
        eye_open=0.65,
        mouth_open=0.10,
        mouth_w=0.28,
        mouth_curve=0.05,
        mouth_round=-0.3,
        forehead=0.7,
        teeth=0.5,
    ),
    "happy": dict(
        brow_in_dy=-0.03,
        brow_out_dy=-0.02,
        eye_open=-0.3,
        mouth_curve=-0.2,
        mouth_w=0.3,
        mouth_open=0.09,
        mouth_upper=-0.3,
        cheeks=1.0,
        teeth=1.0,
    ),
    "sad": dict(
        brow_in_dy=-0.13,
        brow_out_dy=0.06,
        brow_arch=-0.04,
        brow_in_dx=0.02,
        eye_open=-0.25,
        eye_droop=0.06,
        mouth_curve=0.14,
        mouth_w=-0.1,
        lip_th=0.2,
    ),
    "surprise": dict(
        brow_in_dy=-0.2,
        brow_out_dy=-0.17,
        brow_arch=0.08,
        eye_open=0.75,
        mouth_open=0.34,
        mouth_w=-0.5,
        mouth_dy=0.05,
        mouth_round=0.1,
        forehead=1.0,
    ),
}
assert set(_TARGETS) == set(FER2013_CLASSES)

# Per-sample jitter of each parameter (individual resting face, imprecise acting).
_JITTER = dict(
    brow_in_dy=0.03,
    brow_out_dy=0.03,
    brow_arch=0.02,
    brow_in_dx=0.015,
    brow_asym=0.015,
    eye_open=0.12,
    eye_droop=0.015,
    lid_slant=0.01,
    mouth_curve=0.035,
    mouth_w=0.08,
    mouth_open=0.015,
    mouth_dy=0.02,
    mouth_round=0.05,
    mouth_upper=0.05,
    lip_raise=0.01,
    corner_asym=0.015,
    lip_th=0.15,
    cheeks=0.1,
    nose_wrinkle=0.1,
    glabella=0.1,
    forehead=0.15,
    teeth=0.1,
)


def _check_emotion(emotion: str) -> str:
    name = normalise_class_name(str(emotion))
    if name not in _TARGETS:
        raise ValueError(
            f"unknown emotion {emotion!r}: the synthetic generator draws only the FER2013 "
            f"classes {', '.join(FER2013_CLASSES)}"
        )
    return name


def _sample_spec(emotion: str, rng: np.random.Generator, *, occlusion_prob: float) -> dict:
    """Draw every random choice of one face up front, so drawing is a pure function."""
    target = _TARGETS[emotion]
    # Mostly clear expressions, with a tail of weak (ambiguous) ones.
    intensity = 0.2 + 0.8 * float(rng.beta(2.0, 1.1))
    jitter = rng.normal(0.0, 1.0, size=len(_PARAM_NAMES))
    expr = {name: intensity * target.get(name, 0.0) + _JITTER[name] * float(j) for name, j in zip(_PARAM_NAMES, jitter)}
    # Non-negative quantities: wrinkles, openings, visible teeth.
    for name in ("mouth_open", "lip_raise", "cheeks", "nose_wrinkle", "glabella", "forehead", "teeth"):
        expr[name] = max(0.0, expr[name])
    side = 1.0 if rng.random() < 0.5 else -1.0  # which side a one-sided expression uses

    skin = float(rng.uniform(105, 205))
    hair_style = int(rng.integers(0, 4))  # 0 bald/short, 1 cap of hair, 2 fringe, 3 long
    spec = dict(
        emotion=emotion,
        intensity=intensity,
        expr=expr,
        side=side,
        # identity
        face_w=float(rng.uniform(0.9, 1.1)),
        face_h=float(rng.uniform(1.22, 1.42)),
        chin=float(rng.uniform(0.05, 0.22)),
        skin=skin,
        hair=float(rng.choice([rng.uniform(10, 70), rng.uniform(120, 190)], p=[0.8, 0.2])),
        hair_style=hair_style,
        hairline=float(rng.uniform(-1.05, -0.8)),
        brow_tone=float(rng.uniform(0.2, 0.5)),
        brow_th=float(rng.uniform(0.06, 0.1)),
        brow_y=float(rng.uniform(-0.5, -0.4)),
        eye_y=float(rng.uniform(-0.2, -0.1)),
        eye_dx=float(rng.uniform(0.34, 0.42)),
        eye_hw=float(rng.uniform(0.16, 0.21)),
        eye_hh=float(rng.uniform(0.08, 0.1)),
        iris_r=float(rng.uniform(0.07, 0.095)),
        iris=float(rng.uniform(20, 100)),
        gaze=(float(rng.normal(0, 0.025)), float(rng.normal(0, 0.012))),
        nose_len=float(rng.uniform(0.35, 0.5)),
        nose_w=float(rng.uniform(0.09, 0.14)),
        mouth_y=float(rng.uniform(0.55, 0.68)),
        mouth_hw=float(rng.uniform(0.28, 0.37)),
        lip_tone=float(rng.uniform(0.65, 0.85)),
        background=float(rng.uniform(15, 235)),
        # pose
        angle=float(rng.uniform(-15, 15)),
        shift=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))),
        scale=float(rng.uniform(0.86, 1.08)),
        blur=float(rng.uniform(0.0, 2.5)),
        # lighting and noise, applied after downsampling
        light_dir=float(rng.uniform(0, 2 * math.pi)),
        light_strength=float(rng.uniform(0.0, 0.4)),
        contrast=float(rng.uniform(0.65, 1.2)),
        brightness=float(rng.uniform(-30, 30)),
        noise=float(rng.uniform(0.0, 9.0)),
    )
    spec["occlusion"] = _sample_occlusion(rng) if rng.random() < occlusion_prob else None
    return spec


def _sample_occlusion(rng: np.random.Generator) -> dict:
    kind = str(rng.choice(["glasses", "sunglasses", "hand", "bar", "rect"], p=[0.25, 0.15, 0.2, 0.2, 0.2]))
    occ: dict = dict(kind=kind, tone=float(rng.uniform(0, 255)))
    if kind in ("glasses", "sunglasses"):
        occ.update(tone=float(rng.uniform(5, 60)), width=float(rng.uniform(0.025, 0.05)))
    elif kind == "hand":
        occ.update(
            x=float(rng.uniform(-0.6, 0.6)),
            y=float(rng.uniform(0.45, 0.95)),
            rx=float(rng.uniform(0.3, 0.5)),
            ry=float(rng.uniform(0.25, 0.4)),
            tone_scale=float(rng.uniform(0.9, 1.1)),
        )
    elif kind == "bar":
        occ.update(
            vertical=bool(rng.random() < 0.3),
            pos=float(rng.uniform(0.15, 0.85)),
            thick=float(rng.uniform(0.07, 0.16)),
        )
    else:
        w, h = rng.uniform(0.15, 0.35, size=2)
        occ.update(x0=float(rng.uniform(0, 1 - w)), y0=float(rng.uniform(0, 1 - h)), w=float(w), h=float(h))
    return occ


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------
class _Pen:
    """Draws in face units (half-width 1, y down) onto a pixel canvas.

    Rotation, scale and shift live in one transform, so every feature follows the
    head pose. An optional mask receives the head silhouette (for compositing).
    """

    def __init__(
        self, img: Image.Image, cx: float, cy: float, unit: float, angle_deg: float, mask: Image.Image | None = None
    ):
        self.draw = ImageDraw.Draw(img)
        self.mask = ImageDraw.Draw(mask) if mask is not None else None
        self.cx, self.cy, self.unit = cx, cy, unit
        a = math.radians(angle_deg)
        self.cos, self.sin = math.cos(a), math.sin(a)

    def pts(self, xs, ys) -> list[tuple[float, float]]:
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        px = self.cx + self.unit * (self.cos * xs - self.sin * ys)
        py = self.cy + self.unit * (self.sin * xs + self.cos * ys)
        return list(zip(px.tolist(), py.tolist()))

    def poly(self, xs, ys, fill, silhouette: bool = False) -> None:
        p = self.pts(xs, ys)
        self.draw.polygon(p, fill=_tone(fill))
        if silhouette and self.mask is not None:
            self.mask.polygon(p, fill=255)

    def ellipse(self, x, y, rx, ry, fill, silhouette: bool = False, n: int = 48) -> None:
        t = np.linspace(0, 2 * math.pi, n, endpoint=False)
        self.poly(x + rx * np.cos(t), y + ry * np.sin(t), fill, silhouette)

    def line(self, xs, ys, fill, width: float) -> None:
        w = max(1, int(round(width * self.unit)))
        self.draw.line(self.pts(xs, ys), fill=_tone(fill), width=w, joint="curve")

    def band(self, xs, ys, th_a: float, th_b: float, fill) -> None:
        """A stroke whose thickness tapers from th_a to th_b (brows, folds)."""
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        dx, dy = np.gradient(xs), np.gradient(ys)
        norm = np.hypot(dx, dy) + 1e-9
        nx, ny = -dy / norm, dx / norm
        th = np.linspace(th_a, th_b, len(xs)) / 2
        self.poly(np.r_[xs + nx * th, (xs - nx * th)[::-1]], np.r_[ys + ny * th, (ys - ny * th)[::-1]], fill)


def _tone(v: float) -> int:
    return int(min(255, max(0, round(v))))


def _draw_head(pen: _Pen, s: dict) -> dict:
    """Draw one face; returns the face-oval extents in face units (for boxes)."""
    e = s["expr"]
    skin, hair = s["skin"], s["hair"]
    fw, fh = s["face_w"], s["face_h"]
    t = np.linspace(0, 2 * math.pi, 96, endpoint=False)

    # Neck and ears go under the face oval.
    pen.poly([-0.45, 0.45, 0.55, -0.55], [0.6 * fh, 0.6 * fh, 2.2, 2.2], skin * 0.8, silhouette=True)
    if s["hair_style"] == 3:  # long hair falls behind the face
        hx = np.linspace(-1.2 * fw, 1.2 * fw, 24)
        pen.poly(
            np.r_[hx, hx[::-1]],
            np.r_[np.full_like(hx, -0.4), (1.15 + 0.15 * np.cos(hx * 1.3))[::-1]],
            hair,
            silhouette=True,
        )
    for sx in (-1, 1):
        pen.ellipse(sx * 0.98 * fw, -0.05, 0.13, 0.24, skin * 0.88, silhouette=True)
    if s["hair_style"] in (1, 2, 3):
        pen.ellipse(0, -0.3 * fh, 1.07 * fw, 0.85 * fh, hair, silhouette=True)

    # Egg-shaped face oval: narrower towards the chin.
    lower = np.clip(np.sin(t), 0, 1)
    ox = fw * np.cos(t) * (1 - s["chin"] * lower**2)
    oy = fh * np.sin(t)
    pen.poly(ox, oy, skin, silhouette=True)
    # Soft side shading gives the oval some volume once blurred and downsampled.
    for sx in (-1, 1):
        pen.band(
            sx * fw * 0.93 * np.cos(np.linspace(-1.1, 1.1, 12)),
            fh * 0.8 * np.sin(np.linspace(-1.1, 1.1, 12)),
            0.05,
            0.05,
            skin * 0.9,
        )

    if s["hair_style"] == 2:  # fringe over the forehead
        fx = np.linspace(-fw, fw, 24)
        top = -fh * np.sqrt(np.clip(1 - (fx / fw) ** 2, 0, 1))
        pen.poly(np.r_[fx, fx[::-1]], np.r_[top - 0.05, (s["hairline"] + 0.08 * np.cos(fx * 3))[::-1]], hair)
    elif s["hair_style"] in (1, 3):
        fx = np.linspace(-fw, fw, 24)
        top = -fh * np.sqrt(np.clip(1 - (fx / fw) ** 2, 0, 1))
        hl = s["hairline"] - 0.12 + 0.25 * (fx / fw) ** 2
        pen.poly(np.r_[fx, fx[::-1]], np.r_[top - 0.05, np.minimum(hl, 0.0)[::-1]], hair)

    brow_col = min(hair, skin) * 0.3 + skin * s["brow_tone"] * 0.7 if hair < skin else skin * s["brow_tone"]
    line_col = skin * 0.72  # wrinkles and folds

    # Forehead lines (surprise, fear): faint horizontal arcs.
    if e["forehead"] > 0.15:
        for k in range(3):
            fx = np.linspace(-0.45, 0.45, 16)
            fy = s["brow_y"] - 0.2 - 0.11 * k + 0.06 * (fx / 0.45) ** 2 + min(0, e["brow_in_dy"]) * 0.5
            pen.line(fx, fy, skin - (skin - line_col) * min(1.0, e["forehead"]), 0.018)

    # Eyes.
    open_f = max(0.25, 1.0 + e["eye_open"])
    for sx in (-1, 1):
        cx, cy = sx * s["eye_dx"], s["eye_y"]
        hw = s["eye_hw"]
        hh_up = s["eye_hh"] * open_f
        hh_lo = s["eye_hh"] * 0.75 * min(open_f, 1.3)
        u = np.linspace(0, math.pi, 24)
        outer = (1 - np.cos(u)) / 2 if sx > 0 else (1 + np.cos(u)) / 2  # 0 inner corner -> 1 outer
        ex = cx + hw * np.cos(u)
        droop = e["eye_droop"] * outer
        up_y = cy - hh_up * np.sin(u) + droop + e["lid_slant"] * (1 - outer) * np.sin(u)
        lo_y = cy + hh_lo * np.sin(u) + droop
        # Eye socket shadow, then the white, the iris, the pupil.
        pen.ellipse(cx, cy - 0.02, hw * 1.25, s["eye_hh"] * 1.9, skin * 0.88)
        pen.poly(np.r_[ex, ex[::-1]], np.r_[up_y, lo_y[::-1]], min(250, skin + 50))
        ix, iy = cx + s["gaze"][0], cy + s["gaze"][1] + droop.mean() * 0.5
        pen.ellipse(ix, iy, s["iris_r"], s["iris_r"], s["iris"])
        pen.ellipse(ix, iy, s["iris_r"] * 0.45, s["iris_r"] * 0.45, 8)
        # Lids cover whatever of the iris falls outside the eye opening.
        pen.poly(np.r_[ex, ex[::-1]], np.r_[up_y, np.full_like(up_y, cy - 0.3)], skin * 0.92)
        pen.poly(np.r_[ex, ex[::-1]], np.r_[lo_y, np.full_like(lo_y, cy + 0.25)], skin)
        pen.line(ex, up_y, skin * 0.3, 0.03)  # lash line
        pen.line(ex, lo_y, skin * 0.75, 0.012)
        if e["cheeks"] > 0.2:  # smiling eyes: lower lid pushed up by the cheek
            pen.line(ex[4:-4], lo_y[4:-4] + 0.06, skin * 0.8, 0.015 * min(1.0, e["cheeks"]) + 0.005)

    # Brows: tapered strokes from the inner to the outer corner.
    for sx in (-1, 1):
        asym = e["brow_asym"] * (1 if sx == s["side"] else -0.3)
        tt = np.linspace(0, 1, 16)
        xi = 0.14 - e["brow_in_dx"]
        xo = 0.66
        yi = s["brow_y"] + e["brow_in_dy"] + asym
        yo = s["brow_y"] + 0.02 + e["brow_out_dy"] + asym * 0.6
        bx = sx * (xi + (xo - xi) * tt)
        by = yi + (yo - yi) * tt - (0.05 + e["brow_arch"]) * 4 * tt * (1 - tt)
        pen.band(bx, by, s["brow_th"] * 1.2, s["brow_th"] * 0.55, brow_col)

    # Frown lines between the brows (angry).
    if e["glabella"] > 0.15:
        g = min(1.0, e["glabella"])
        for sx in (-1, 1):
            pen.line(
                [sx * 0.06, sx * 0.08], [s["brow_y"] + 0.02, s["brow_y"] + 0.2], skin - (skin - line_col) * g, 0.02
            )

    # Nose: a shadowed side, the tip and nostrils.
    nl, nw = s["nose_len"], s["nose_w"]
    ny0 = s["eye_y"] + 0.05
    tip = ny0 + nl
    pen.band([-nw * 0.6, -nw * 0.8, -nw * 1.1], [ny0, tip - 0.12, tip - 0.02], 0.025, 0.045, skin * 0.82)
    pen.ellipse(0, tip - 0.02, nw * 0.8, 0.06, min(250, skin * 1.06))
    for sx in (-1, 1):
        pen.ellipse(sx * nw * 0.6, tip + 0.02, nw * 0.35, 0.025, skin * 0.45)
    pen.line(
        np.linspace(-nw * 1.1, nw * 1.1, 9), tip + 0.045 - 0.03 * np.cos(np.linspace(-1.4, 1.4, 9)), skin * 0.7, 0.015
    )
    if e["nose_wrinkle"] > 0.15:  # disgust: creases across the bridge
        c = skin - (skin - skin * 0.6) * min(1.0, e["nose_wrinkle"])
        for k in range(3):
            yk = ny0 + 0.04 + 0.055 * k
            pen.line([-0.11, -0.04, 0.04, 0.11], [yk + 0.02, yk, yk, yk + 0.02], c, 0.016)
        for sx in (-1, 1):
            pen.line([sx * nw * 1.2, sx * nw * 1.6], [tip - 0.12, tip + 0.02], c, 0.018)

    # Cheeks and nasolabial folds (happy).
    if e["cheeks"] > 0.15:
        c = min(1.0, e["cheeks"])
        for sx in (-1, 1):
            pen.ellipse(sx * 0.52, 0.2, 0.22, 0.14, min(250, skin * (1 + 0.1 * c)))
            fy = np.linspace(tip - 0.05, s["mouth_y"] + 0.05, 10)
            fx = sx * (nw * 1.5 + 0.25 * np.sin(np.linspace(0, 1.3, 10)))
            pen.band(fx, fy, 0.02 * c + 0.01, 0.012, skin - (skin - line_col) * c)

    _draw_mouth(pen, s)
    _draw_face_occlusion(pen, s)
    return dict(x0=-fw, x1=fw, y0=-fh, y1=fh)


def _draw_mouth(pen: _Pen, s: dict) -> None:
    e = s["expr"]
    skin = s["skin"]
    my = s["mouth_y"] + e["mouth_dy"]
    hw = s["mouth_hw"] * max(0.3, 1.0 + e["mouth_w"])
    r = np.linspace(-1, 1, 41)  # position along the mouth, corner to corner
    x = r * hw
    side_r = np.clip(s["side"] * r, 0, 1)
    base = my + e["mouth_curve"] * r**2 - e["corner_asym"] * side_r**2
    env = np.clip(1 - r**2, 0, 1) ** max(0.15, 0.5 + e["mouth_round"])
    gap = e["mouth_open"] * env
    up_frac = float(np.clip(0.5 + e["mouth_upper"], 0.05, 0.95))
    upper = base - gap * up_frac - e["lip_raise"] * env * np.clip(side_r * 1.6, 0, 1)
    lower = base + gap * (1 - up_frac)
    lip = max(0.3, 1.0 + e["lip_th"])
    lip_col = skin * s["lip_tone"]

    # Lip masses: upper lip above the opening, a fuller lower lip below.
    pen.poly(np.r_[x, x[::-1]], np.r_[upper - 0.05 * lip * env**0.5, upper[::-1]], lip_col)
    pen.poly(np.r_[x, x[::-1]], np.r_[lower, (lower + 0.075 * lip * env**0.5)[::-1]], lip_col)
    if (upper < lower - 0.01).any():
        pen.poly(np.r_[x, x[::-1]], np.r_[upper, lower[::-1]], 25)
        if e["teeth"] > 0.2:  # teeth: a light band along the upper edge of the opening
            band = np.minimum(upper + 0.06 * min(1.0, e["teeth"]), lower)
            pen.poly(np.r_[x, x[::-1]], np.r_[upper, band[::-1]], 225)
    pen.line(x, (upper + lower) / 2 if e["mouth_open"] < 0.02 else upper, skin * 0.35, 0.02)
    # Shadow under the lower lip.
    pen.line(x[10:-10], lower[10:-10] + 0.1 * lip + 0.02, skin * 0.88, 0.03)


def _draw_face_occlusion(pen: _Pen, s: dict) -> None:
    """Occluders that move with the head (glasses, a hand); image-space ones come later."""
    occ = s["occlusion"]
    if not occ:
        return
    if occ["kind"] in ("glasses", "sunglasses"):
        for sx in (-1, 1):
            cx, cy = sx * s["eye_dx"], s["eye_y"]
            rx, ry = s["eye_hw"] * 1.45, 0.17
            t = np.linspace(0, 2 * math.pi, 40)
            xs, ys = cx + rx * np.cos(t), cy + ry * np.sin(t)
            if occ["kind"] == "sunglasses":
                pen.poly(xs, ys, occ["tone"])
            pen.line(xs, ys, occ["tone"], occ["width"])
        pen.line(
            [-s["eye_dx"] + s["eye_hw"] * 1.45, s["eye_dx"] - s["eye_hw"] * 1.45],
            [s["eye_y"] - 0.05, s["eye_y"] - 0.05],
            occ["tone"],
            occ["width"],
        )
        for sx in (-1, 1):
            pen.line(
                [sx * (s["eye_dx"] + s["eye_hw"] * 1.45), sx * 1.0 * s["face_w"]],
                [s["eye_y"] - 0.05, s["eye_y"] - 0.1],
                occ["tone"],
                occ["width"],
            )
    elif occ["kind"] == "hand":
        tone = s["skin"] * occ["tone_scale"]
        pen.ellipse(occ["x"], occ["y"], occ["rx"], occ["ry"], tone)
        pen.poly(
            [occ["x"] - occ["rx"] * 0.8, occ["x"] + occ["rx"] * 0.8, occ["x"] + occ["rx"], occ["x"] - occ["rx"]],
            [occ["y"], occ["y"], 2.5, 2.5],
            tone,
        )
        for k in (-1, 0, 1):  # finger gaps
            fx = occ["x"] + k * occ["rx"] * 0.4
            pen.line([fx, fx], [occ["y"] - occ["ry"] * 0.7, occ["y"] + occ["ry"] * 0.3], tone * 0.8, 0.015)


def _draw_image_occlusion(img: Image.Image, s: dict) -> None:
    occ = s["occlusion"]
    if not occ or occ["kind"] not in ("bar", "rect"):
        return
    w, h = img.size
    d = ImageDraw.Draw(img)
    if occ["kind"] == "bar":
        a, b = (occ["pos"] - occ["thick"] / 2), (occ["pos"] + occ["thick"] / 2)
        box = (a * w, 0, b * w, h) if occ["vertical"] else (0, a * h, w, b * h)
    else:
        box = (occ["x0"] * w, occ["y0"] * h, (occ["x0"] + occ["w"]) * w, (occ["y0"] + occ["h"]) * h)
    d.rectangle(box, fill=_tone(occ["tone"]))


def _light_and_noise(arr: np.ndarray, s: dict, rng_noise: np.ndarray) -> np.ndarray:
    """Lighting gradient, global contrast/brightness and sensor noise on a float image."""
    h, w = arr.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    g = (np.cos(s["light_dir"]) * (xx / max(1, w - 1) - 0.5) + np.sin(s["light_dir"]) * (yy / max(1, h - 1) - 0.5)) * 2
    gain = 1.0 + s["light_strength"] * g
    if arr.ndim == 3:
        gain = gain[:, :, None]
    out = arr * gain
    mean = float(out.mean())
    out = (out - mean) * s["contrast"] + mean + s["brightness"]
    out = out + s["noise"] * rng_noise
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_face(emotion: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """One procedurally drawn face, a (size, size) uint8 grayscale array.

    The brows, eyes and mouth follow `emotion` (one of the 7 FER2013 classes; aliases
    such as 'happiness' are accepted). Identity, pose, lighting, noise, occlusion and
    expression intensity are drawn from `rng`, so the same generator state always
    gives the same image. Raises ValueError for an unknown emotion.
    """
    emotion = _check_emotion(emotion)
    size = int(size)
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    s = _sample_spec(emotion, rng, occlusion_prob=0.25)
    noise = rng.standard_normal((size, size))
    big = size * _SS
    img = Image.new("L", (big, big), _tone(s["background"]))
    unit = 0.36 * big * s["scale"]
    cx = big / 2 + s["shift"][0] * big
    cy = big / 2 + 0.02 * big + s["shift"][1] * big
    _draw_head(_Pen(img, cx, cy, unit, s["angle"]), s)
    _draw_image_occlusion(img, s)
    if s["blur"] > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(s["blur"]))
    small = img.resize((size, size), Image.Resampling.BOX)
    return _light_and_noise(np.asarray(small, dtype=np.float64), s, noise)


def render_faces(emotions: Sequence[str], seed: int = 0, size: int = 48) -> np.ndarray:
    """A batch of faces, (N, size, size) uint8, one per emotion, from one seeded generator."""
    rng = np.random.default_rng(seed)
    if len(emotions) == 0:
        return np.zeros((0, size, size), dtype=np.uint8)
    return np.stack([render_face(e, rng, size) for e in emotions])


def render_photo(
    emotions: Sequence[str],
    rng: np.random.Generator,
    canvas: tuple[int, int] = (320, 240),
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A larger RGB "photo" with one face per emotion on a textured background.

    Returns (image, boxes): image is (height, width, 3) uint8 for canvas=(width,
    height); boxes are (x, y, w, h) of each face oval (forehead to chin, cheek to
    cheek; hair, ears and neck excluded) in pixels, in the order of `emotions`, as a face detector
    reports them. Faces are upright-ish (±10°), unoccluded and do not overlap (one
    per cell of a grid); if they would be under 16 pixels wide, ValueError is raised.
    """
    emotions = [_check_emotion(e) for e in emotions]
    width, height = int(canvas[0]), int(canvas[1])
    # Textured background: smooth blotches plus a few stripes (a room, a wall).
    base = rng.uniform(50, 210) + rng.uniform(-25, 25, size=3)
    # Mostly shared between channels, so the texture is muted rather than confetti.
    low = rng.normal(0, 1, size=(height // 16 + 2, width // 16 + 2, 1)) + 0.3 * rng.normal(
        0, 1, size=(height // 16 + 2, width // 16 + 2, 3)
    )
    blot = (
        np.asarray(
            Image.fromarray(np.uint8(np.clip(128 + 40 * low, 0, 255))).resize((width, height), Image.BICUBIC),
            dtype=np.float64,
        )
        - 128
    )
    bg = np.clip(base + blot + rng.normal(0, 6, size=(height, width, 3)), 0, 255).astype(np.uint8)
    photo = Image.fromarray(bg, "RGB")
    d = ImageDraw.Draw(photo)
    for _ in range(int(rng.integers(0, 4))):
        x0 = float(rng.uniform(0, width))
        d.rectangle(
            (x0, 0, x0 + float(rng.uniform(5, 30)), height), fill=tuple(int(v) for v in rng.uniform(30, 230, 3))
        )

    n = len(emotions)
    # One face per grid cell, at a random size and spot inside it: faces never overlap.
    cols = max(1, min(n, round(math.sqrt(n * width / height)))) if n else 1
    rows = math.ceil(n / cols) if n else 1
    cell_w, cell_h = width / cols, height / rows
    boxes: list[tuple[int, int, int, int]] = []
    for i, emotion in enumerate(emotions):
        s = _sample_spec(emotion, rng, occlusion_prob=0.0)
        s["angle"] = float(np.clip(s["angle"], -10, 10))
        aspect = s["face_h"] / s["face_w"] * 1.35  # tile height / face width
        fw_px = float(rng.uniform(0.6, 0.95)) * min(cell_w / 1.5, cell_h / aspect)
        if fw_px < 16:
            raise ValueError(f"cannot fit {n} faces of at least 16 pixels on a {width}x{height} canvas")
        unit = fw_px / (2 * s["face_w"])
        tile_w, tile_h = fw_px * 1.5, fw_px * aspect
        tx = (i % cols) * cell_w + float(rng.uniform(0, max(0.0, cell_w - tile_w)))
        ty = (i // cols) * cell_h + float(rng.uniform(0, max(0.0, cell_h - tile_h)))
        # Draw the face at 4x in a tile with a silhouette mask, tint it to skin colour.
        bw, bh = int(math.ceil(tile_w)) * _SS, int(math.ceil(tile_h)) * _SS
        gray = Image.new("L", (bw, bh), 0)
        mask = Image.new("L", (bw, bh), 0)
        cxp, cyp = bw / 2, bh / 2 - 0.05 * bh
        pen = _Pen(gray, cxp, cyp, unit * _SS, s["angle"], mask=mask)
        _draw_head(pen, s)
        gray = gray.resize((bw // _SS, bh // _SS), Image.Resampling.BOX)
        mask = mask.resize((bw // _SS, bh // _SS), Image.Resampling.BOX)
        tint = np.array([1.08, 0.93, 0.8]) * float(rng.uniform(0.85, 1.1))
        face_rgb = np.clip(np.asarray(gray, dtype=np.float64)[:, :, None] * tint, 0, 255).astype(np.uint8)
        photo.paste(Image.fromarray(face_rgb, "RGB"), (int(tx), int(ty)), mask)
        # Box of the face oval under the rotation, in photo pixels.
        t = np.linspace(0, 2 * math.pi, 64)
        oval = pen.pts(s["face_w"] * np.cos(t), s["face_h"] * np.sin(t))
        ox = np.array([p[0] for p in oval]) / _SS + int(tx)
        oy = np.array([p[1] for p in oval]) / _SS + int(ty)
        x0, y0 = max(0, int(ox.min())), max(0, int(oy.min()))
        x1, y1 = min(width, int(math.ceil(ox.max()))), min(height, int(math.ceil(oy.max())))
        boxes.append((x0, y0, x1 - x0, y1 - y0))

    spec = dict(
        light_dir=float(rng.uniform(0, 2 * math.pi)),
        light_strength=float(rng.uniform(0, 0.25)),
        contrast=float(rng.uniform(0.85, 1.1)),
        brightness=float(rng.uniform(-15, 15)),
        noise=float(rng.uniform(0, 5)),
    )
    noise = rng.standard_normal((height, width, 1))
    return _light_and_noise(np.asarray(photo, dtype=np.float64), spec, noise), boxes


# ---------------------------------------------------------------------------
# Datasets on disk
# ---------------------------------------------------------------------------
def _dataset_params(classes, train_per_class, test_per_class, size, seed, imbalance) -> dict:
    classes = tuple(_check_emotion(c) for c in classes)
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes contain duplicates: {classes}")
    if not classes:
        raise ValueError("need at least one class")
    for name, v in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if int(v) < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    imb: dict[str, float] | None = None
    if imbalance:
        imb = {}
        for k, m in imbalance.items():
            name = _check_emotion(k)
            if name not in classes:
                raise ValueError(f"imbalance names {k!r}, which is not one of the classes {classes}")
            if float(m) < 0:
                raise ValueError(f"imbalance multiplier for {k!r} must be >= 0, got {m}")
            imb[name] = float(m)
    counts = {
        "train": {c: int(round(int(train_per_class) * (imb or {}).get(c, 1.0))) for c in classes},
        "test": {c: int(test_per_class) for c in classes},
    }
    return dict(
        generator="emolib.synthetic",
        version=GENERATOR_VERSION,
        classes=list(classes),
        train_per_class=int(train_per_class),
        test_per_class=int(test_per_class),
        size=int(size),
        seed=int(seed),
        imbalance=imb,
        counts=counts,
    )


def read_synthetic_params(data_dir: str | Path) -> dict | None:
    """The generation parameters stored in `data_dir/SYNTHETIC.json`, or None."""
    path = Path(data_dir) / MARKER_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(root: Path, params: dict) -> bool:
    if read_synthetic_params(root) != params:
        return False
    for split, per_class in params["counts"].items():
        for cls, n in per_class.items():
            folder = root / split / cls
            if not folder.is_dir() or sum(1 for _ in folder.glob("*.png")) != n:
                return False
    return True


def _write_png(arr: np.ndarray, path: Path) -> None:
    # PIL writes no timestamp or other metadata into a PNG by default, so equal
    # pixels give equal bytes.
    Image.fromarray(arr, mode="L").save(path, format="PNG", compress_level=6)


def _generate_into(folder: Path, params: dict) -> None:
    classes = params["classes"]
    size = params["size"]
    for split_idx, split in enumerate(SPLITS):
        for cls in classes:
            n = params["counts"][split][cls]
            out = folder / split / cls
            out.mkdir(parents=True, exist_ok=True)
            # One stream per (seed, split, class): train and test never share a face,
            # and adding or dropping a class leaves the other classes' images unchanged.
            rng = np.random.default_rng(np.random.SeedSequence([params["seed"], split_idx, zlib.crc32(cls.encode())]))
            digits = max(4, len(str(max(0, n - 1))))
            for i in range(n):
                _write_png(render_face(cls, rng, size), out / f"{cls}_{i:0{digits}d}.png")
    text = (
        f"{SYNTHETIC_BANNER}\n\n"
        "These images were drawn by emolib.synthetic (make_synthetic_dataset); they are not\n"
        "photographs of people. They exist so the pipeline can be run and tested offline.\n"
        "Delete this folder to regenerate it. Parameters (also in SYNTHETIC.json):\n\n"
        + json.dumps(params, indent=2, sort_keys=True)
        + "\n"
    )
    (folder / MARKER_TXT).write_text(text, encoding="utf-8")
    # The JSON marker is written last: a folder with it is complete.
    (folder / MARKER_JSON).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def make_synthetic_dataset(
    root: str | Path,
    classes: Sequence[str] = DEFAULT_CLASSES,
    train_per_class: int = 60,
    test_per_class: int = 20,
    size: int = 48,
    seed: int = 0,
    imbalance: Mapping[str, float] | None = None,
) -> Path:
    """Generate a FER2013-style dataset at `root` and return `root`.

    Layout: root/train/<class>/<class>_<i>.png and root/test/<class>/..., grayscale
    size x size PNGs, plus root/SYNTHETIC.txt (human-readable banner) and
    root/SYNTHETIC.json (the parameters). `imbalance` maps a class to a multiplier
    of `train_per_class` (e.g. {'sad': 0.3}) so class weighting has something to do.

    Deterministic: the same parameters give byte-identical files. Idempotent: if
    root already holds a complete dataset with the same parameters, nothing is
    written. Otherwise the dataset is built in a sibling temporary folder and
    renamed into place, so an interrupted run never leaves a half dataset that
    looks complete. An existing synthetic dataset with other parameters is
    replaced; any other non-empty folder is left alone (FileExistsError).
    """
    root = Path(root)
    params = _dataset_params(classes, train_per_class, test_per_class, size, seed, imbalance)
    if _is_complete(root, params):
        return root
    if root.exists():
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a folder")
        if read_synthetic_params(root) is None and not is_synthetic(root) and any(root.iterdir()):
            raise FileExistsError(
                f"{root} exists and is not an emolib synthetic dataset; refusing to overwrite it "
                "(choose another folder or empty it)"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = root.parent / f"{root.name}.tmp-{token}"
    old = root.parent / f"{root.name}.old-{token}"
    try:
        _generate_into(tmp, params)
        if root.exists():
            os.replace(root, old)
        try:
            os.replace(tmp, root)
        except OSError:
            # Another process finished the same dataset first: use theirs.
            if _is_complete(root, params):
                return root
            if old.exists() and not root.exists():
                os.replace(old, root)  # put the previous dataset back rather than lose it
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return root


def is_synthetic(data_dir: str | Path) -> bool:
    """True when `data_dir` (or the dataset folder above a train/ or test/ split) is generated.

    Looks for the SYNTHETIC.json / SYNTHETIC.txt marker that make_synthetic_dataset writes.
    """
    d = Path(data_dir)
    candidates = [d] + ([d.parent] if d.name in SPLITS else [])
    return any((c / MARKER_JSON).is_file() or (c / MARKER_TXT).is_file() for c in candidates)
