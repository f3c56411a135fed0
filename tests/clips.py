"""Video clips for the camera and video tests, made at test time (never committed): face photos
on a 640x480 canvas, drifting a little from frame to frame, written as .y4m (Chromium's fake
camera) or .mp4 (an upload). Sources: matplotlib's grace_hopper.jpg (always there) or the
wild_faces photos of ../shared/data (skipped by the callers when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WILD_FACES = Path(os.environ.get("EMOLIB_WILD_FACES", ROOT.parent / "shared" / "data" / "wild_faces"))
if not WILD_FACES.is_dir():  # a worktree sits one level deeper than the main checkout
    WILD_FACES = ROOT.parents[1] / "shared" / "data" / "wild_faces"


def hopper_path() -> str:
    from matplotlib import cbook

    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def wild_faces_photos(k: int = 6) -> list[Path]:
    """Up to k wild_faces photos, happy and neutral alternating; [] when the folder is absent."""
    groups = [sorted((WILD_FACES / c).glob("*.jp*g")) for c in ("happy", "neutral")]
    out = []
    for pair in zip(*groups):
        out.extend(pair)
    return out[:k]


def face_frames(photos, n_frames: int, size=(640, 480), face_height: int = 300, hold: int = 1) -> list[np.ndarray]:
    """n_frames RGB frames: each photo (scaled to face_height) on a grey canvas, `hold` frames per
    photo in turn, shifted by a few pixels per frame so that consecutive frames differ."""
    from PIL import Image

    imgs = []
    for p in photos:
        im = Image.open(p).convert("RGB")
        im = im.resize((max(1, round(im.width * face_height / im.height)), face_height))
        imgs.append(np.asarray(im))
    w, h = size
    frames = []
    for i in range(n_frames):
        img = imgs[(i // hold) % len(imgs)]
        canvas = np.full((h, w, 3), 120, np.uint8)
        dx = int(6 * np.sin(i / 3)) + (w - img.shape[1]) // 2
        dy = (h - img.shape[0]) // 2
        ih, iw = min(img.shape[0], h - dy), min(img.shape[1], w - max(dx, 0))
        canvas[dy : dy + ih, max(dx, 0) : max(dx, 0) + iw] = img[:ih, :iw]
        frames.append(canvas)
    return frames


def write_y4m(path, frames, fps: int = 10) -> Path:
    """A YUV4MPEG2 (4:2:0) file, what Chromium's --use-file-for-fake-video-capture reads."""
    import cv2

    h, w = frames[0].shape[:2]
    path = Path(path)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for fr in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(np.ascontiguousarray(fr), cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def write_mp4(path, frames, fps: float = 10.0) -> Path:
    """An MPEG-4 part 2 .mp4 (OpenCV's bundled FFmpeg writes it without extra codecs)."""
    import cv2

    h, w = frames[0].shape[:2]
    path = Path(path)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not out.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v here")
    try:
        for fr in frames:
            out.write(cv2.cvtColor(fr, cv2.COLOR_RGB2BGR))
    finally:
        out.release()
    return path
