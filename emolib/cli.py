"""The ``emolib`` command: predict, evaluate and export with a trained model directory.

    emolib predict  --model reports/models/cnn photos/ face.jpg --csv predictions.csv
    emolib evaluate --model reports/models/cnn --data data/raw/fer2013/test --json eval.json
    emolib export   --model reports/models/cnn --format tflite --quantize float16

Exit status: 0 when something was processed, 1 when nothing could be (no images found,
every file unreadable, a missing or broken model), 2 for a wrong command line.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "emolib"
EXAMPLES = """\
examples:
  emolib predict photo.jpg                       (the default model shipped with emolib)
  emolib predict --model reports/models/cnn photo.jpg
  emolib predict --model reports/models/cnn photos/ --csv predictions.csv --faces on
  emolib predict --model reports/models/cnn clip.mp4 --fps 10 --annotate --out clips/
  emolib evaluate --model reports/models/cnn --data data/raw/fer2013/test --json reports/eval_cnn.json
  emolib export --model reports/models/cnn --format tflite --quantize int8 --data data/raw/fer2013/train

model directory: reports/models/<model>/ with model.keras and model.json (written by training);
predict and evaluate use the default model shipped with emolib when --model is not given.
"""
MAX_LISTED = 10  # problems listed one by one in a summary; the rest are counted


class CliError(Exception):
    """A user-facing failure: printed to stderr as 'emolib <cmd>: error: ...', exit status 1."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _add_inference_options(parser: argparse.ArgumentParser, model_help: str) -> None:
    """The options `predict` and `evaluate` share: which model, batch size, TTA, progress bar."""
    parser.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help=model_help + "; default: the model shipped with emolib (see README: Default model)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=64,
        metavar="N",
        help="faces per forward pass of the network (default: 64)",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average over 6 views of the face (3 scales, each also mirrored; 6x the compute)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _nonneg_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _probability(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a probability in (0, 1], got {text}")
    return value


def _add_video_options(parser: argparse.ArgumentParser) -> None:
    """`predict`'s options for video files (.mp4 .avi .mov .mkv .webm .m4v .mpg ...; see emolib.video)."""
    from .video import DETECT_INTERVAL_S, SMOOTHING_S

    g = parser.add_argument_group(
        "videos",
        "Each video gets a folder OUT/<clip name>/ with frames.csv (one row per face per sampled frame: "
        "path, frame, time_s, track, x, y, w, h, status, emotion, confidence, p_<class>..., smoothed; "
        "raw_emotion, raw_p_<class>... per frame), tracks.json (per-track summary), "
        "timeline_track<id>.png and, with --annotate, annotated.mp4. Faces are always searched for.",
    )
    sample = g.add_mutually_exclusive_group()
    sample.add_argument("--every", type=_positive_int, metavar="N", help="use every N-th frame (default: every frame)")
    sample.add_argument("--fps", type=_positive_float, metavar="F", help="use about F frames per second of video")
    g.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the videos' outputs (default: emolib_video/ next to --csv, else ./emolib_video/)",
    )
    g.add_argument("--annotate", action="store_true", help="also write annotated.mp4 (boxes, labels, probability bars)")
    g.add_argument(
        "--smoothing",
        type=_nonneg_float,
        default=SMOOTHING_S,
        metavar="S",
        help=f"time constant in seconds of each face's moving average of probabilities; 0 = none "
        f"(default: {SMOOTHING_S})",
    )
    g.add_argument(
        "--detect-interval",
        type=_nonneg_float,
        default=DETECT_INTERVAL_S,
        metavar="S",
        help=f"run the face detector every S seconds of video and track faces in between; 0 = on "
        f"every sampled frame (default: {DETECT_INTERVAL_S})",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .faces import DEFAULT_DETECTOR, DETECTORS

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Facial emotion recognition with a trained emolib model: predict emotions in\n"
        "photos or face crops, evaluate on a labelled folder, export to TFLite or ONNX.\n"
        "Run 'emolib COMMAND --help' for the options of each command.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, title="commands")

    model_help = "trained model directory with model.keras and model.json (e.g. reports/models/cnn)"
    faces_help = (
        "face handling: 'auto' uses small square images (<=128 px, e.g. 48x48 crops) whole and "
        "searches larger photos for faces (with --detector, where the command has it); 'on' always searches; "
        "'off' uses every image whole"
    )

    p = sub.add_parser(
        "predict",
        help="predict the emotion of every face in images or folders",
        description="Predict the emotion of every face in the given images; folders are searched "
        "recursively for image files (links to folders are not followed). One output row per "
        "face, or one status row per file without a usable face.",
        epilog="CSV columns: path, face, x, y, w, h, status, emotion, confidence, p_<class>... "
        "(face counts from 0 left to right; x, y, w, h are empty where the whole image was used). "
        "status: 'ok'; 'no_face' (none detected); 'blank' (a near-blank image or crop, pixel std <= 4 "
        "grey levels, e.g. a white frame or a fully transparent PNG: no emotion given); "
        "'unreadable: <reason>'.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image and video files and/or folders")
    p.add_argument("--csv", metavar="OUT", help="write one row per face to this CSV file (atomically)")
    p.add_argument("--faces", choices=("auto", "on", "off"), default="auto", help=faces_help + " (default: auto)")
    p.add_argument(
        "--detector",
        choices=DETECTORS,
        default=DEFAULT_DETECTOR,
        help="face detector: 'blazeface' (neural, landmarks: crops framed like FER2013, eyes levelled) "
        f"or 'haar' (OpenCV's cascade, box + 20%% margin) (default: {DEFAULT_DETECTOR})",
    )
    p.add_argument(
        "--no-align", action="store_true", help="do not rotate faces to level the eyes (blazeface; haar never aligns)"
    )
    p.add_argument(
        "--other-threshold",
        type=_probability,
        default=None,
        metavar="T",
        help="answer 'other' (none of the model's classes) from p_other >= T on, instead of the threshold chosen "
        "on validation; lower T labels more faces 'other' at a cost in accuracy on the classes (the model "
        "card's other.tradeoff lists thresholds and their measured cost). Models without an 'other' head ignore it",
    )
    _add_inference_options(p, model_help)
    _add_video_options(p)

    e = sub.add_parser(
        "evaluate",
        help="accuracy, macro-F1 and more on a labelled folder",
        description="Evaluate a model on DATA laid out as DATA/<class>/*.png. Folder names are normalised "
        "('Anger' -> 'angry'); folders of classes the model does not know are reported and "
        "skipped. Images are used whole (face crops) unless --faces is given.",
    )
    e.add_argument("--data", required=True, metavar="DIR", help="labelled folder with one sub-folder per class")
    e.add_argument("--json", metavar="OUT", help="write the metrics as JSON to this file (atomically)")
    e.add_argument("--faces", choices=("auto", "on", "off"), default="off", help=faces_help + " (default: off)")
    _add_inference_options(e, model_help)

    x = sub.add_parser(
        "export",
        help="export to TFLite (float32, float16, int8) or ONNX",
        description="Export model.keras to a TFLite or ONNX file that takes raw grayscale pixels "
        "(N, S, S, 1) float32 0..255 and returns class probabilities, like the Keras model.",
        epilog="int8: with --data, full integer quantization calibrated on up to 200 images of that folder "
        "(float32 input/output kept); without --data, dynamic-range quantization (int8 weights, "
        "float activations), which needs no calibration images. ONNX is float32 only and needs "
        "tf2onnx, onnx (and onnxruntime to run it).",
    )
    x.add_argument("--model", required=True, metavar="DIR", help=model_help)
    x.add_argument("--format", choices=("tflite", "onnx"), default="tflite", help="output format (default: tflite)")
    x.add_argument(
        "--quantize",
        choices=("none", "float16", "int8"),
        default="none",
        help="TFLite weight/activation precision (default: none = float32)",
    )
    x.add_argument(
        "--out",
        metavar="PATH",
        help="output file (default: DIR/model.tflite, DIR/model_<quantize>.tflite or DIR/model.onnx)",
    )
    x.add_argument("--data", metavar="DIR", help="images for int8 calibration (and for the agreement check)")
    x.add_argument(
        "--check",
        type=_nonneg_int,
        default=32,
        metavar="N",
        help="compare the exported file with Keras on N images (from --data, else random); 0 skips (default: 32)",
    )
    return parser


# -- helpers -----------------------------------------------------------------------------
def _fmt_float(v: Any) -> str:
    return "" if v is None else f"{float(v):.6f}"


class _CsvLines:
    """csv.writer's rows with '\\n' line ends, quoting a field that holds a '\\r' too (csv.writer
    quotes only the characters of its line terminator, so a carriage return in a file name
    would split the row for any reader)."""

    def __init__(self, buf):
        self.buf = buf
        self.writer = csv.writer(buf, lineterminator="\n")

    def writerow(self, fields) -> None:
        if any(isinstance(f, str) and "\r" in f for f in fields):
            self.buf.write(",".join('"' + str(f).replace('"', '""') + '"' for f in fields) + "\n")
        else:
            self.writer.writerow(fields)


def _csv_text(rows, classes: Sequence[str]) -> str:
    from .predict import csv_columns

    buf = io.StringIO()
    writer = _CsvLines(buf)
    cols = csv_columns(classes)
    writer.writerow(cols)
    for r in rows:
        d = r.to_row(classes)
        out = []
        for c in cols:
            v = d[c]
            if c == "confidence" or c.startswith("p_"):
                out.append(_fmt_float(v))
            elif c == "path":
                out.append(_shown(v, one_line=False))
            else:
                out.append("" if v is None else v)
        writer.writerow(out)
    return buf.getvalue()


def _load(model_dir: str | None, tta: bool = False, other_threshold: float | None = None):
    """The predictor for --model DIR; without --model the default model, said once on stderr."""
    from .modelfolder import ModelDirError
    from .predict import load_predictor

    try:
        predictor = load_predictor(model_dir, tta=tta, other_threshold=other_threshold)
    except ModelDirError as e:
        raise CliError(str(e)) from None
    if model_dir is None:
        other = "; faces showing none of them: 'other'" if predictor.other_threshold is not None else ""
        print(
            f"{PROG}: no --model given: using the default model ({predictor.model_name}: "
            f"{'/'.join(predictor.classes)}, trained on FER2013{other}; {predictor.backend.name} backend); "
            "--model DIR for your own",
            file=sys.stderr,
        )
    return predictor


def _print_list(title: str, items: list[tuple[str, str]], out) -> None:
    if not items:
        return
    print(f"{title} ({len(items)}):", file=out)
    for path, reason in items[:MAX_LISTED]:
        print(f"  {path}: {reason}", file=out)
    if len(items) > MAX_LISTED:
        by_reason = collections.Counter(reason for _, reason in items[MAX_LISTED:])
        more = ", ".join(f"{n} {r}" for r, n in by_reason.most_common(5))
        print(f"  ... and {len(items) - MAX_LISTED} more ({more})", file=out)


# -- predict -------------------------------------------------------------------------------
def _shown(path: Any, *, one_line: bool = True) -> str:
    """A path as text that can always be written as UTF-8 (undecodable bytes as \\xNN); with
    `one_line`, control characters such as a newline in a file name are escaped too (\\n)."""
    text = "" if path is None else str(path)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if one_line and not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text


def _check_output_file(path_text: str, option: str = "--csv") -> Path:
    """Fail fast, before any slow work, when `path_text` cannot be written as a file.

    A missing folder is fine (it is created at the end), but the nearest existing one
    must be a folder we can write in; the check leaves nothing behind.
    """
    import tempfile

    path = Path(path_text)
    if path.is_dir():
        example = _shown(path / "predictions.csv")
        raise CliError(f"{option} {_shown(path)}: is a folder; give a file name, e.g. {example}")
    folder = path.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CliError(f"{option} {_shown(path)}: cannot create it, {_shown(folder)} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".emolib-write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CliError(f"{option} {_shown(path)}: cannot write in {_shown(folder)} ({e.strerror or e})") from None
    return path


def cmd_predict(args) -> int:
    from .predict import STATUS_BLANK, STATUS_NO_FACE, iter_image_paths
    from .runinfo import atomic_write_text
    from .video import is_video_path

    if args.csv:
        _check_output_file(args.csv)
    paths, skipped = iter_image_paths(args.paths, videos=True)
    videos = [p for p in paths if is_video_path(p)]
    paths = [p for p in paths if not is_video_path(p)]
    if videos:
        _check_output_file(str(_video_root(args) / "frames.csv"), "--out")
    if not paths and not videos:
        for p, reason in skipped[:MAX_LISTED]:
            print(f"  {_shown(p)}: {reason}", file=sys.stderr)
        given = ", ".join(_shown(p) for p in args.paths)
        raise CliError(
            f"no images to predict in {given} (image extensions: .jpg .jpeg .png .bmp .gif .tif .webp ...; "
            "videos: .mp4 .avi .mov .mkv .webm .m4v .mpg ...)"
        )
    predictor = _load(args.model, tta=args.tta, other_threshold=args.other_threshold)
    rows = predictor.predict_batch(
        [str(p) for p in paths],
        faces=args.faces,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        detector=args.detector,
        align=not args.no_align,
    )
    classes = predictor.classes
    videos_done = _predict_videos(args, predictor, videos) if videos else 0
    if args.csv and (paths or not videos):
        try:
            atomic_write_text(args.csv, _csv_text(rows, classes))
        except OSError as e:
            raise CliError(f"--csv {_shown(args.csv)}: cannot write it ({e.strerror or e})") from None

    ok = [r for r in rows if r.ok]
    no_face = [r for r in rows if r.status == STATUS_NO_FACE]
    blank = [r for r in rows if r.status == STATUS_BLANK]
    unreadable = [r for r in rows if r.status.startswith("unreadable")]
    out = sys.stdout
    if not args.csv and paths:
        shown = rows[:50]
        width = min(60, max((len(_shown(r.path)) for r in shown), default=4))
        for r in shown:
            face = "" if r.face is None else r.face
            conf = "" if r.confidence is None else f"{r.confidence:.3f}"
            what = r.emotion if r.ok else r.status
            print(f"{_shown(r.path):<{width}}  {face!s:>2}  {what:<10} {conf}", file=out)
        if len(rows) > len(shown):
            print(f"... {len(rows) - len(shown)} more rows (use --csv OUT for all of them)", file=out)
        print(file=out)

    files_ok = len({r.path for r in ok})
    if paths or not videos:
        print(
            f"{predictor.model_name}: {len(paths)} file(s), {len(ok)} face(s) in {files_ok} file(s), "
            f"{len(no_face)} without a face, "
            + (f"{len(blank)} blank, " if blank else "")
            + f"{len(unreadable)} unreadable",
            file=out,
        )
    if ok:
        counts = collections.Counter(r.emotion for r in ok)
        print("emotions: " + ", ".join(f"{c} {counts[c]}" for c in (*classes, "other") if counts[c]), file=out)
        mean_conf = sum(r.confidence for r in ok) / len(ok)
        print(f"mean confidence: {mean_conf:.3f}", file=out)
    _print_list("unreadable", [(_shown(r.path), r.status.split(": ", 1)[-1]) for r in unreadable], out)
    _print_list("skipped", [(_shown(p), reason) for p, reason in skipped], out)
    if args.csv and (paths or not videos):
        print(f"wrote {_shown(args.csv)} ({len(rows)} rows)", file=out)
    elif args.csv:
        print(
            f"--csv {_shown(args.csv)}: not written, no photos among the inputs (each video's rows are in its "
            "frames.csv)",
            file=out,
        )
    if not ok and not no_face and not blank and not videos_done:
        raise CliError("nothing could be processed: every file was unreadable")
    return 0


def _video_root(args) -> Path:
    """--out, else emolib_video/ next to --csv, else ./emolib_video/."""
    if args.out:
        return Path(args.out)
    return (Path(args.csv).parent if args.csv else Path(".")) / "emolib_video"


def _predict_videos(args, predictor, videos: list[Path]) -> int:
    """Each video into <root>/<clip name>/ (emolib.video.predict_video); prints one summary per clip and
    returns how many could be processed. A bad video gets its status and the batch goes on."""
    from .predict import STATUS_UNREADABLE
    from .video import predict_video

    root, used, failed, done = _video_root(args), set(), [], 0
    out = sys.stdout
    for path in videos:
        name = path.stem or "clip"
        n = 1
        while name.lower() in used:  # two clips with one name (a/clip.mp4, b/clip.mp4)
            n += 1
            name = f"{path.stem}-{n}"
        used.add(name.lower())
        folder = root / name
        try:
            r = predict_video(
                predictor,
                path,
                every=args.every,
                fps=args.fps,
                detector=getattr(args, "detector", None),
                smoothing_s=args.smoothing,
                detect_interval_s=args.detect_interval,
                out_dir=folder,
                annotate=args.annotate,
                keep_rows=False,
                progress=not args.no_progress,
            )
        except OSError as e:
            failed.append((_shown(path), f"cannot write its outputs in {_shown(folder)} ({e.strerror or e})"))
            continue
        if r.status.startswith(STATUS_UNREADABLE):
            failed.append((_shown(path), r.status.split(": ", 1)[-1]))
            continue
        done += 1
        print(
            f"{_shown(path)}: {r.status}, {r.frames_sampled} of {r.frames_read} frames used, "
            f"{len(r.tracks)} track(s), {r.frames_read / max(r.elapsed_s, 1e-9):.0f} frames/s",
            file=out,
        )
        for t in sorted(r.tracks, key=lambda t: -t["seconds_classified"])[:5]:
            share = t["emotion_share"][t["dominant_emotion"]]
            print(
                f"  track {t['track']}: {t['dominant_emotion']} {share:.0%} of {t['seconds_classified']:.1f} s "
                f"({t['first_s']:.1f}-{t['last_s']:.1f} s)",
                file=out,
            )
        if len(r.tracks) > 5:
            print(f"  ... and {len(r.tracks) - 5} shorter track(s)", file=out)
        if r.note:
            print(f"  note: {r.note}", file=out)
        print(f"  wrote {_shown(folder)}/ ({', '.join(sorted(Path(p).name for p in r.written.values()))})", file=out)
    _print_list("videos not processed", failed, out)
    return done


# -- evaluate ------------------------------------------------------------------------------
def _labelled_files(data: Path, classes: Sequence[str]):
    """([(path, class index)], ignored {folder: n images}, skipped [(path, reason)], root used)."""
    from .config import normalise_class_name
    from .predict import iter_image_paths

    def class_folders(root: Path):
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    root = data
    folders = class_folders(root)
    if not any(normalise_class_name(f.name) in classes for f in folders) and (root / "test").is_dir():
        root = root / "test"  # a FER2013-style train/test layout: evaluate on test
        folders = class_folders(root)
    index = {c: i for i, c in enumerate(classes)}
    labelled, ignored, skipped = [], {}, []
    for p in sorted(root.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            skipped.append((p, "not inside a class folder"))
    for folder in folders:
        files, skip = iter_image_paths([folder])
        skipped += skip
        label = normalise_class_name(folder.name)
        if label not in index:
            ignored[folder.name] = len(files)
            continue
        labelled += [(f, index[label]) for f in files]
    return labelled, ignored, skipped, root


def cmd_evaluate(args) -> int:
    import numpy as np

    from .metrics import SCHEMA_VERSION
    from .runinfo import atomic_write_json

    data = Path(args.data)
    if not data.is_dir():
        raise CliError(f"{data}: labelled data folder not found (expected DATA/<class>/*.png)")
    try:
        from .evaluate import classification_metrics
    except ImportError as e:
        raise CliError(f"emolib.evaluate is not available ({e})") from None
    predictor = _load(args.model, tta=args.tta)
    classes = list(predictor.classes)
    labelled, ignored, skipped, root = _labelled_files(data, classes)
    out = sys.stdout
    if root != data:
        print(f"using {root} (no class folders directly in {data})", file=out)
    for name, n in ignored.items():
        print(f"skipped folder {name!r} ({n} images): not a class of this model {classes}", file=out)
    if not labelled:
        raise CliError(f"{root}: no images in folders of the model's classes {classes}")

    # A labelled set is scored as published: its near-blank images count too (the data checks report them).
    rows = predictor.predict_batch(
        [str(p) for p, _ in labelled],
        faces=args.faces,
        detect_blank=False,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    best: dict[str, Any] = {}
    status: dict[str, str] = {}
    for r in rows:
        if r.ok:
            area = (r.box[2] * r.box[3]) if r.box else math.inf
            if r.path not in best or area > best[r.path][0]:
                best[r.path] = (area, r)
        else:
            status.setdefault(r.path, r.status)
    y_true, y_pred, probs, unusable = [], [], [], []
    for p, k in labelled:
        key = str(p)
        if key in best:
            r = best[key][1]
            y_true.append(k)
            y_pred.append(classes.index(r.emotion))
            probs.append([r.probabilities[c] for c in classes])
        else:
            unusable.append((key, status.get(key, "no prediction")))
    if not y_true:
        _print_list("not usable", unusable, sys.stderr)
        raise CliError("nothing could be evaluated: no image gave a prediction")
    y_true_a, y_pred_a = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    probs_a = np.asarray(probs, dtype=np.float32)
    metrics = classification_metrics(y_true_a, y_pred_a, classes, probs=probs_a)
    acc, f1 = metrics["accuracy"], metrics["macro_f1"]  # keys: emolib.metrics.SCHEMA

    per_class = collections.Counter(y_true)
    print(
        f"{predictor.model_name} on {root}: {len(y_true)} images "
        f"({', '.join(f'{c} {per_class[i]}' for i, c in enumerate(classes))})",
        file=out,
    )
    missing = [c for i, c in enumerate(classes) if not per_class[i]]
    if missing:
        print(f"no test images for: {', '.join(missing)}", file=out)
    print(f"accuracy: {acc:.4f}", file=out)
    print(f"macro-F1: {f1:.4f}", file=out)
    _print_list("not usable", unusable, out)
    _print_list("skipped", [(str(p), r) for p, r in skipped], out)
    if args.json:
        payload = {
            "schema_version": SCHEMA_VERSION,
            "model_dir": str(predictor.model_dir),
            "model_name": predictor.model_name,
            "data_dir": str(root),
            "classes": classes,
            "faces": args.faces,
            "tta": bool(args.tta),
            "n_images": len(labelled),
            "n_evaluated": len(y_true),
            "per_class": {c: per_class[i] for i, c in enumerate(classes)},
            "accuracy": acc,
            "macro_f1": f1,
            "ignored_folders": ignored,
            "not_usable": [{"path": p, "status": s} for p, s in unusable],
            "skipped": [{"path": str(p), "reason": r} for p, r in skipped],
            "metrics": metrics,
        }
        atomic_write_json(args.json, payload)  # strict JSON via runinfo.json_safe
        print(f"wrote {args.json}", file=out)
    return 0


# -- export --------------------------------------------------------------------------------
def cmd_export(args) -> int:
    import numpy as np

    from . import export as ex
    from .modelfolder import ModelDirError

    if args.data and not Path(args.data).is_dir():
        raise CliError(f"{args.data}: image folder not found")
    if args.quantize == "int8" and not args.data:
        print("int8 without --data: dynamic-range quantization (int8 weights, float activations)")
    try:
        info = ex.export_model(args.model, args.format, args.quantize, out=args.out, data_dir=args.data)
    except (ex.ExportError, ModelDirError) as e:
        raise CliError(str(e)) from None
    print(f"wrote {info['path']} ({info['bytes'] / 1024:.1f} KiB, {info['format']}, {info['how']})")
    if args.check:
        predictor = _load(args.model)
        size = predictor.size
        if args.data:
            x = ex.representative_images(args.data, size, limit=args.check, seed=1)
        else:
            x = np.random.default_rng(0).uniform(0, 255, (args.check, size, size, 1)).astype(np.float32)
        ref = predictor.predict_arrays(x)
        got = ex.exported_predict(info["path"], x)
        agree = float(np.mean(ref.argmax(1) == got.argmax(1)))
        src = "images from --data" if args.data else "random images"
        print(
            f"agreement with Keras on {len(x)} {src}: top-1 {agree:.1%}, "
            f"max |difference in probability| {float(np.abs(ref - got).max()):.2e}"
        )
    return 0


COMMANDS = {"predict": cmd_predict, "evaluate": cmd_evaluate, "export": cmd_export}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ info lines quiet
    parser = build_parser()
    args = parser.parse_args(argv)
    from .faces import FaceDetectorUnavailable

    try:
        return COMMANDS[args.command](args)
    except (CliError, FaceDetectorUnavailable) as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m emolib.cli
    sys.exit(main())
