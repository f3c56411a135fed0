"""`make bench`'s video row: end-to-end frames per second, and memory over a 10-minute clip.

    python -m emolib.bench_video --out reports/bench [--models-dir reports/models] [--quick]

(`python -m emolib.bench` runs it too, after the other benchmarks.) Writes ``video.json``
atomically, measured in one run on one machine:

* ``speed``: `emolib.video.predict_video` on a generated 640x480, 30 fps, 10-second clip with one
  face (matplotlib's grace_hopper.jpg moving over a canvas), the library's default detector and
  the CNN (the trained ``cnn`` under ``--models-dir``, else an untrained stand-in: latency does not
  depend on training). End to end: decode, detect (every `DETECT_INTERVAL_S` on a <= 640 px copy),
  track, classify, smooth, write frames.csv / tracks.json / the timeline PNG; frames per second =
  frames decoded / wall time, after a warm-up clip. Again with ``--annotate`` (annotated.mp4 too),
  and the decode-only rate of the same clip for comparison.
* ``memory``: the same pipeline (CSV rows streamed, not kept) over a generated 10-minute clip
  (18,000 frames; ``--quick``: 20 s), resident memory (RSS) at the first frame, half-way and at
  the last frame, and the highest seen (sampled every 100 frames). Flat = the highest RSS after
  half-way exceeds the half-way RSS by less than `FLAT_MB`. The clip is a 6-second loop of frames
  written over and over, so making it is cheap.
* ``targets``: >= 30 frames/s end to end (2-core CPU), memory flat.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .runinfo import atomic_write_json, library_versions, machine_info, now_iso

SCHEMA_VIDEO = "emolib.bench.video/1"
TARGET_FPS = 30.0
FLAT_MB = 16.0  # the second half of the long clip may add at most this much RSS
SIZE = (640, 480)
FPS = 30.0
SPEED_SECONDS, MEMORY_SECONDS = 10.0, 600.0
QUICK_SPEED_SECONDS, QUICK_MEMORY_SECONDS = 3.0, 20.0
LOOP_FRAMES = 180  # the generated motion repeats every 6 s (the face crosses ~300 px in 3 s)


def _loop_frames(size: tuple[int, int], n: int = LOOP_FRAMES) -> list[np.ndarray]:
    """One face (grace_hopper.jpg, ~180 px wide) moving smoothly over a grey canvas; the last frame
    leads back to the first, so the loop can repeat without a jump."""
    import cv2
    from matplotlib import cbook

    img = cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    face = cv2.resize(img, (180, 211), interpolation=cv2.INTER_AREA)
    w, h = size
    frames = []
    for i in range(n):
        phase = 2 * math.pi * i / n
        x = int((w - 180) / 2 + (w - 180) / 3 * math.sin(phase))
        y = int((h - 211) / 2 + (h - 211) / 4 * math.sin(2 * phase))
        f = np.full((h, w, 3), 96, np.uint8)
        f[y : y + 211, x : x + 180] = face
        frames.append(f)
    return frames


def make_clip(path: str | Path, seconds: float, fps: float = FPS, size: tuple[int, int] | None = None) -> Path:
    """Write a `seconds`-long mp4v clip of the moving face to `path` (size: SIZE by default)."""
    import cv2

    size = tuple(size or SIZE)
    loop = _loop_frames(size)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for i in range(int(round(seconds * fps))):
            writer.write(loop[i % len(loop)])
    finally:
        writer.release()
    return Path(path)


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _predictor(models_dir: str | Path, work: Path):
    from .bench import make_stand_ins
    from .modelfolder import find_model_dirs
    from .predict import load_predictor

    found = find_model_dirs(models_dir, ["cnn"])
    if found:
        return load_predictor(found["cnn"]), False
    d = make_stand_ins(work / "stand_ins", ["cnn"])["cnn"]
    return load_predictor(d), True


def _decode_fps(path: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    t0, n = time.perf_counter(), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n / (time.perf_counter() - t0)


def _timed(predictor, clip: Path, out: Path, **kw) -> dict:
    from .video import predict_video

    t0 = time.perf_counter()
    r = predict_video(predictor, clip, out_dir=out, keep_rows=False, **kw)
    wall = time.perf_counter() - t0
    ok_frames = sum(t["frames"] for t in r.tracks)
    return {
        "frames": r.frames_read,
        "seconds": round(wall, 3),
        "frames_per_s": round(r.frames_read / wall, 1),
        "status": r.status,
        "tracks": len(r.tracks),
        "frames_with_a_face": ok_frames,
    }


def bench_memory(predictor, clip: Path, out: Path, progress: bool = False) -> dict:
    """RSS at the first frame, half-way and at the end of the long clip (rows streamed, not kept)."""
    from .video import predict_video

    samples: dict[str, float] = {}
    peak = [0.0]

    def on_progress(i: int, n: int | None) -> None:
        if i == 1:
            samples["start_mb"] = rss_mb()
        if n and i == n // 2:
            samples["middle_mb"] = rss_mb()
        if i % 100 == 0 or i == n:
            peak[0] = max(peak[0], rss_mb())
        if n and i == n:  # the last frame, before the outputs are finished and buffers freed
            samples["end_mb"] = rss_mb()

    t0 = time.perf_counter()
    r = predict_video(predictor, clip, out_dir=out, keep_rows=False, progress=progress, on_progress=on_progress)
    wall = time.perf_counter() - t0
    samples.setdefault("end_mb", rss_mb())  # a clip without a frame count: after the run
    start, mid, end = samples.get("start_mb"), samples.get("middle_mb"), samples["end_mb"]
    second_half = max(end, peak[0]) - mid if mid is not None else None  # the highest RSS seen after half-way
    return {
        "frames": r.frames_read,
        "clip_seconds": round(r.frames_read / FPS, 1),
        "seconds": round(wall, 1),
        "frames_per_s": round(r.frames_read / wall, 1),
        "status": r.status,
        "rss_start_mb": round(start, 1) if start else None,
        "rss_middle_mb": round(mid, 1) if mid else None,
        "rss_end_mb": round(end, 1),
        "rss_peak_mb": round(max(peak[0], end), 1),
        "growth_second_half_mb": round(second_half, 1) if second_half is not None else None,
        "flat": bool(second_half is not None and second_half < FLAT_MB),
        "how": "RSS from /proc/self/status at frame 1, at frame N/2 and at the last frame; peak sampled every "
        "100 frames; growth = highest RSS after half-way - RSS at half-way; frames.csv rows streamed to "
        "disk, not kept",
    }


def run_video_bench(
    out: str | Path = "reports/bench",
    models_dir: str | Path = "reports/models",
    quick: bool = False,
    progress: bool = False,
) -> dict:
    """Measure, write out/video.json, print a short report; returns the dict."""
    from .video import DETECT_INTERVAL_S, DETECT_MAX_SIDE

    work = Path(tempfile.mkdtemp(prefix="emolib-bench-video-"))
    try:
        predictor, stand_in = _predictor(models_dir, work)
        speed_s = QUICK_SPEED_SECONDS if quick else SPEED_SECONDS
        memory_s = QUICK_MEMORY_SECONDS if quick else MEMORY_SECONDS
        print(
            f"bench: video ({speed_s:.0f} s clip for speed, {memory_s:.0f} s clip for memory) ...",
            file=sys.stderr,
            flush=True,
        )
        warm = make_clip(work / "warm.mp4", 1.0)
        clip = make_clip(work / "speed.mp4", speed_s)
        _timed(predictor, warm, work / "o_warm", annotate=True)  # traces the classifier, loads the cascade
        speed = _timed(predictor, clip, work / "o_speed")
        annotated = _timed(predictor, clip, work / "o_annotated", annotate=True)
        decode = _decode_fps(clip)
        t0 = time.perf_counter()
        long_clip = make_clip(work / "long.mp4", memory_s)
        made_s = time.perf_counter() - t0
        memory = bench_memory(predictor, long_clip, work / "o_long", progress=progress)
        memory["clip_generation_seconds"] = round(made_s, 1)
        result = {
            "schema": SCHEMA_VIDEO,
            "timestamp": now_iso(),
            "quick": quick,
            "machine": machine_info(),
            "versions": library_versions(),
            "cpu_load_average": _loadavg(),
            "model": predictor.model_name,
            "untrained_stand_in": stand_in,
            "clip": {
                "width": SIZE[0],
                "height": SIZE[1],
                "fps": FPS,
                "codec": "mp4v",
                "content": "one face (grace_hopper.jpg, 180 px wide) moving over a grey canvas",
            },
            "pipeline": {
                "detector": "library default (emolib.faces.find_faces)",
                "detect_interval_s": DETECT_INTERVAL_S,
                "detect_max_side": DETECT_MAX_SIDE,
                "steps": "decode, detect, track, classify (batched over 16 frames), smooth, write "
                "frames.csv + tracks.json + timeline PNG (+ annotated.mp4)",
            },
            "decode_only_frames_per_s": round(decode, 1),
            "speed": speed,
            "speed_annotated": annotated,
            "memory": memory,
            "targets": {
                "video_ge_30_fps": {
                    "pass": speed["frames_per_s"] >= TARGET_FPS,
                    "value": speed["frames_per_s"],
                    "threshold": TARGET_FPS,
                    "op": ">=",
                    "what": "end-to-end frames/s, 640x480 clip, CNN, default detector",
                },
                "video_memory_flat": {
                    "pass": memory["flat"],
                    "value": memory["growth_second_half_mb"],
                    "threshold": FLAT_MB,
                    "op": "<",
                    "what": f"RSS growth (MiB) over the second half of a {memory_s:.0f} s clip",
                },
            },
        }
        atomic_write_json(Path(out) / "video.json", result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(format_report(result))
    print(f"wrote {Path(out) / 'video.json'}")
    return result


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def format_report(r: dict) -> str:
    m, t = r["memory"], r["targets"]

    def mark(x):
        return "PASS" if x["pass"] else "FAIL"

    return "\n".join(
        [
            f"video ({r['model']}{', untrained stand-in' if r['untrained_stand_in'] else ''}; "
            f"{r['clip']['width']}x{r['clip']['height']} {FPS:.0f} fps, one face):",
            f"  end to end {r['speed']['frames_per_s']:.1f} frames/s "
            f"({mark(t['video_ge_30_fps'])} >= {TARGET_FPS:.0f}); "
            f"with --annotate {r['speed_annotated']['frames_per_s']:.1f}; "
            f"decode alone {r['decode_only_frames_per_s']:.0f}",
            f"  memory over {m['clip_seconds']:.0f} s ({m['frames']} frames, {m['frames_per_s']:.1f} frames/s): RSS "
            f"{m['rss_start_mb']} -> {m['rss_middle_mb']} -> {m['rss_end_mb']} MiB, peak {m['rss_peak_mb']} "
            f"({mark(t['video_memory_flat'])}: second half +{m['growth_second_half_mb']} MiB < {FLAT_MB:.0f})",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.bench_video", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/bench", help="folder for video.json")
    parser.add_argument("--models-dir", default="reports/models")
    parser.add_argument("--quick", action="store_true", help="a 3 s speed clip and a 20 s memory clip")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_video_bench(args.out, args.models_dir, quick=args.quick, progress=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
