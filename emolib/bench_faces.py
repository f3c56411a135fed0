"""Face detection on real photos: per detector, the share of photos with a face and the time per photo.

    python -m emolib.bench_faces --out reports/bench [--wild-dir ../shared/data/wild_faces] [--quick]

`make bench` runs it too (from `emolib.bench`) and writes ``faces.json``, atomically:

* ``detectors``: for each of `emolib.faces.DETECTORS`, over the wild_faces photos (300 real news
  photos, 350x350 gray, see shared/data/README.md): ``photos``, ``with_face`` and
  ``detection_rate`` (photos with at least one face), ``several_faces`` (photos with more than
  one), ``mean_ms`` / ``p50_ms`` / ``p95_ms`` per photo for ``faces.find_faces(gray, 'on',
  detector=...)`` (detection and the crop a model sees, alignment included; the photo is read
  before the clock starts) and up to 20 ``missed`` file names;
* ``blazeface_passes``: how many photos each BlazeFace pass found (`emolib.blazeface.PASSES`);
* ``targets``: the default detector finds a face in >= 99% of the photos.

Without the photos the file says so (``skipped`` and a note) and nothing fails. Timing uses
``time.perf_counter`` after warm-up calls (the first call loads a model), one photo at a time;
other processes on the machine slow it down.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from . import faces
from .images import IMAGE_EXTENSIONS, read_image
from .runinfo import atomic_write_json, library_versions, machine_info, now_iso

SCHEMA_FACES = "emolib.bench.faces/1"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WILD_DIR = ROOT.parent / "shared" / "data" / "wild_faces"
TARGET_DETECTION_RATE = 0.99
QUICK_PHOTOS = 30  # --quick: every n-th photo, about this many
WARMUP = 3
MAX_LISTED = 20


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # not on every platform
        return None


def wild_photos(wild_dir: Path) -> list[Path]:
    return sorted(p for p in wild_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def measure_detector(detector: str, images: list[tuple[str, np.ndarray]]) -> dict:
    """Detection rate and time per photo of one detector over (name, gray) photos."""
    first = time.perf_counter()
    faces.find_faces(images[0][1], "on", detector=detector)  # loads the model
    first_ms = (time.perf_counter() - first) * 1000
    for _, gray in images[:WARMUP]:
        faces.find_faces(gray, "on", detector=detector)
    times, counts = [], []
    for _, gray in images:
        t = time.perf_counter()
        found = faces.find_faces(gray, "on", detector=detector)
        times.append((time.perf_counter() - t) * 1000)
        counts.append(len(found))
    ms, counts = np.array(times), np.array(counts)
    missed = [name for (name, _), n in zip(images, counts) if n == 0]
    return {
        "photos": len(images),
        "with_face": int((counts > 0).sum()),
        "detection_rate": round(float((counts > 0).mean()), 4),
        "several_faces": int((counts > 1).sum()),
        "faces_found": int(counts.sum()),
        "mean_ms": round(float(ms.mean()), 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "first_call_ms": round(first_ms, 1),
        "missed": missed[:MAX_LISTED],
    }


def blazeface_passes(images: list[tuple[str, np.ndarray]]) -> dict[str, int]:
    """Which pass of `blazeface.detect` found the face, counted over the photos ('none' when none did)."""
    from . import blazeface

    counts = {f"{model}{'+border' if border else ''}": 0 for model, border in blazeface.PASSES}
    counts["none"] = 0
    for _, gray in images:
        for (model, border), key in zip(blazeface.PASSES, counts):
            if blazeface.load(model)(gray, border=border):
                counts[key] += 1
                break
        else:
            counts["none"] += 1
    return counts


def run_faces_benchmark(
    out_dir: str | Path,
    wild_dir: str | Path | None = None,
    *,
    quick: bool = False,
    detectors: tuple[str, ...] = faces.DETECTORS,
    progress: bool = True,
) -> dict:
    """Measure every detector on the wild_faces photos and write ``out_dir/faces.json``."""
    wild = Path(wild_dir) if wild_dir else DEFAULT_WILD_DIR
    out = Path(out_dir) / "faces.json"
    result: dict = {
        "schema": SCHEMA_FACES,
        "timestamp": now_iso(),
        "quick": bool(quick),
        "wild_dir": str(wild),
        "default_detector": faces.DEFAULT_DETECTOR,
        "machine": machine_info(),
        "versions": library_versions(),
    }
    photos = wild_photos(wild) if wild.is_dir() else []
    if not photos:
        result.update(
            skipped=True,
            note=f"no wild_faces photos at {wild} (give --wild-dir; see "
            "shared/data/README.md): face detection not measured",
        )
        atomic_write_json(out, result)
        return result
    if quick:
        photos = photos[:: max(1, len(photos) // QUICK_PHOTOS)]
    images = [(p.name, read_image(p, mode="L")) for p in photos]
    result.update(skipped=False, photos=len(images), detectors={}, load_average_start=_loadavg())
    unavailable = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(detectors), desc="face detectors", unit="detector", leave=False)
    for name in detectors:
        if faces.detector_available(name):
            result["detectors"][name] = measure_detector(name, images)
        else:
            unavailable[name] = "not installed"
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if "blazeface" in result["detectors"]:
        result["blazeface_passes"] = blazeface_passes(images)
        from . import blazeface

        result["blazeface_runtime"] = blazeface.load("short").runtime
    if unavailable:
        result["unavailable"] = unavailable
    result["load_average_end"] = _loadavg()  # busy neighbours slow the p95 most
    default = result["detectors"].get(faces.DEFAULT_DETECTOR)
    result["targets"] = {
        f"default_detection_rate_ge_{TARGET_DETECTION_RATE}": None
        if default is None
        else default["detection_rate"] >= TARGET_DETECTION_RATE,
    }
    atomic_write_json(out, result)
    return result


def format_faces_report(result: dict) -> str:
    lines = ["", f"Face detection on real photos ({result['wild_dir']}):"]
    if result.get("skipped"):
        return "\n".join(lines + ["  skipped: " + result["note"]])
    lines.append(f"  {'detector':<10} {'photos':>6} {'with a face':>12} {'rate':>7} {'mean ms':>8} {'p95 ms':>8}")
    for name, d in result["detectors"].items():
        default = " (default)" if name == result["default_detector"] else ""
        lines.append(
            f"  {name:<10} {d['photos']:>6} {d['with_face']:>12} {d['detection_rate']:>7.1%} "
            f"{d['mean_ms']:>8.1f} {d['p95_ms']:>8.1f}{default}"
        )
    for name, why in result.get("unavailable", {}).items():
        lines.append(f"  {name:<10} {why}")
    if "blazeface_passes" in result:
        lines.append(
            "  BlazeFace passes that found the face: "
            + ", ".join(f"{k} {v}" for k, v in result["blazeface_passes"].items())
        )
    if result.get("load_average_start"):
        lines.append(
            f"  load average {result['load_average_start']} at start, {result['load_average_end']} at end "
            f"on {result['machine'].get('cpu_count')} cores"
        )
    for target, ok in result["targets"].items():
        lines.append(f"  target {target}: {'n/a' if ok is None else 'PASS' if ok else 'FAIL'}")
    return "\n".join(lines)


def bench_step(out_dir: str | Path, wild_dir: str | Path | None = None, *, quick: bool = False) -> dict:
    """What `emolib.bench` main runs: measure, write faces.json, print the table."""
    result = run_faces_benchmark(out_dir, wild_dir, quick=quick)
    print(format_faces_report(result))
    print(f"wrote {Path(out_dir) / 'faces.json'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolib.bench_faces", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/bench", help="folder for faces.json")
    parser.add_argument("--wild-dir", default=None, help=f"the wild_faces photos (default: {DEFAULT_WILD_DIR})")
    parser.add_argument("--quick", action="store_true", help=f"about {QUICK_PHOTOS} photos instead of all")
    args = parser.parse_args(argv)
    bench_step(args.out, args.wild_dir, quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
