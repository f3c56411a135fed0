"""Property-based fuzzing (hypothesis) of everything that reads user files (issue 13).

Over image bytes (random bytes; valid PNG/JPEG/GIF/TIFF/WebP/BMP in modes 1, L, LA, P, RGB,
RGBA, CMYK, I;16, I, F, from 1x1 to thousands of pixels; truncated; with lying headers;
decompression bombs), arrays, and file-system shapes (links, link loops, dangling links,
folders named like images, pipes, empty files, unicode / newline / non-UTF-8 names):

* `Predictor.predict` and `predict_batch` never raise and give exactly one status row, or
  one row per face, per input, each with a documented status;
* `emolib predict ... --csv` writes one row per image file found (or exits 1 with a
  one-line error);
* the dataset loaders (`emolib.data`) never raise anything but their clear `DataError`;
* a decompression bomb is refused by the pixel limit before decoding (a status says so);
* `emolib.video.predict_video` on cut, byte-flipped, random, header-only and empty video files
  gives a documented status (`ok`, `no_face`, `blank`, `no_frames`, `unreadable: <reason>`).

The budget comes from the hypothesis profile (tests/conftest.py): small under `make test`,
large under `make fuzz` (HYPOTHESIS_PROFILE=deep), which also tries larger images.
"""

from __future__ import annotations

import csv
import io
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
keras = pytest.importorskip("keras")

from hypothesis import HealthCheck, event, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from emolib import cli, data, images  # noqa: E402
from emolib import predict as P  # noqa: E402

CLASSES = ["angry", "sad", "surprise"]
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
# Image sizes: any side from 1 px to thousands, but a bounded area by default (the Haar
# cascade runs on larger images under faces='auto'); `make fuzz` goes much bigger.
MAX_SIDE = 4000 if DEEP else 3000
MAX_AREA = 12_000_000 if DEEP else 120_000
BUDGET = settings().max_examples  # from the loaded profile
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=max(5, BUDGET // 2))  # the costlier properties (files, CLI)

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}


# -- a tiny untrained model, built once ----------------------------------------------------
def _tiny_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(len(CLASSES), activation="softmax")(x))


@pytest.fixture(scope="module")
def predictor():
    return P.Predictor(_tiny_model(), CLASSES, card={"model_name": "fuzz"})


# -- strategies ----------------------------------------------------------------------------
def _pixels(content: str, w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if content == "noise":
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    if content == "flat":
        return np.full((h, w), seed % 256, np.uint8)
    ramp = np.add.outer(np.arange(h), np.arange(w)) * (255.0 / max(1, h + w - 2))
    return ramp.astype(np.uint8)


def _image(mode: str, gray: np.ndarray) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 257)
    if mode == "I":
        return Image.fromarray(gray.astype(np.int32) * 1000 - 50_000)
    if mode == "F":
        return Image.fromarray(gray.astype(np.float32) / 7.0)
    return Image.fromarray(gray, "L").convert(mode)


def _encode(img: Image.Image, fmt: str) -> bytes:
    for attempt in (img, img.convert("RGB") if img.mode not in ("I", "F", "I;16") else img.convert("L")):
        buf = io.BytesIO()
        try:
            attempt.save(buf, fmt)
            return buf.getvalue()
        except (OSError, ValueError, KeyError, TypeError):
            continue
    buf = io.BytesIO()
    img.convert("L").save(buf, fmt)
    return buf.getvalue()


def _png_with_size(png: bytes, w: int, h: int) -> bytes:
    """The PNG with its IHDR claiming w x h (CRC fixed, so only the pixel data lies)."""
    ihdr = b"IHDR" + struct.pack(">II", w, h) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def _side(limit: int) -> st.SearchStrategy[int]:
    """1 px to `limit`, weighted towards usable sizes (8 px and up; face crops up to ~200 px)."""
    limit = max(1, limit)
    return st.one_of(st.integers(1, min(limit, 12)), st.integers(min(limit, 8), min(limit, 200)), st.integers(1, limit))


@st.composite
def sizes(draw) -> tuple[int, int]:
    w = draw(_side(MAX_SIDE))
    h = draw(_side(min(MAX_SIDE, MAX_AREA // w)))
    return w, h


@st.composite
def valid_images(draw) -> tuple[bytes, str]:
    """(encoded bytes, format) of a real image in a random mode, size and format."""
    w, h = draw(sizes())
    gray = _pixels(draw(st.sampled_from(["noise", "flat", "ramp"])), w, h, draw(st.integers(0, 2**16)))
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    return _encode(_image(draw(st.sampled_from(MODES)), gray), fmt), fmt


@st.composite
def image_blobs(draw) -> tuple[bytes, str]:
    """(bytes, file extension): random bytes, or a valid image, perhaps truncated or lying."""
    kind = draw(st.sampled_from(["random", "valid", "valid", "truncated", "header_lies", "bytes_flipped"]))
    event(f"bytes: {kind}")
    if kind == "random":
        return draw(st.binary(max_size=4096)), draw(st.sampled_from(sorted(FORMATS.values())))
    blob, fmt = draw(valid_images())
    ext = FORMATS[fmt]
    if kind == "truncated":
        blob = blob[: draw(st.integers(0, max(0, len(blob) - 1)))]
    elif kind == "header_lies":  # the size fields say something else than the data holds
        w, h = draw(st.integers(0, 70_000)), draw(st.integers(0, 70_000))
        if fmt == "PNG":
            blob = _png_with_size(blob, w, h)
        elif fmt == "BMP" and len(blob) >= 26:
            blob = blob[:18] + struct.pack("<ii", w, draw(st.sampled_from([h, -h]))) + blob[26:]
        elif fmt == "GIF" and len(blob) >= 10:
            blob = blob[:6] + struct.pack("<HH", w % 65536, h % 65536) + blob[10:]
        else:
            kind = "bytes_flipped"
    if kind == "bytes_flipped":  # damage in the first bytes, where the headers are
        b = bytearray(blob)
        for pos, value in draw(st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=6)):
            if pos < len(b):
                b[pos] = value
        blob = bytes(b)
    if draw(st.booleans()):  # a lying extension too
        ext = draw(st.sampled_from(sorted(FORMATS.values())))
    return blob, ext


# -- checks shared by the properties -----------------------------------------------------------
def check_row(r: P.FaceResult) -> None:
    assert isinstance(r.status, str)
    if r.status == P.STATUS_OK:
        assert r.emotion in CLASSES and r.face is not None
        probs = list(r.probabilities.values())
        assert list(r.probabilities) == CLASSES and all(math.isfinite(p) and 0 <= p <= 1 for p in probs)
        assert abs(sum(probs) - 1) < 1e-3 and r.confidence == max(probs)
    else:
        assert r.status in (P.STATUS_NO_FACE, P.STATUS_BLANK) or (
            r.status.startswith(P.STATUS_UNREADABLE + ": ") and len(r.status) > len("unreadable: ")
        ), r.status
        assert r.emotion is None and r.confidence is None and r.probabilities == {} and r.face is None
        assert "\n" not in r.status


def check_one_input(rows: list[P.FaceResult]) -> None:
    """Rows of one input: one status row, or one ok row per face numbered 0, 1, ..."""
    assert rows
    event(f"status {rows[0].status[:45]}")  # shown by pytest --hypothesis-show-statistics
    for r in rows:
        check_row(r)
    if not rows[0].ok:
        assert len(rows) == 1
    else:
        assert all(r.ok for r in rows) and [r.face for r in rows] == list(range(len(rows)))


# -- predict / predict_batch over image bytes ---------------------------------------------------
@FUZZ
@given(blob=image_blobs(), as_path=st.booleans(), faces=st.sampled_from(["auto", "on", "off"]))
@example(blob=(b"", ".png"), as_path=True, faces="auto")
@example(blob=(_encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "PNG"), ".png"), as_path=False, faces="auto")
def test_predict_never_raises(predictor, blob, as_path, faces):
    data_bytes, ext = blob
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / f"input{ext}"
        src.write_bytes(data_bytes)
        rows = predictor.predict(src if as_path else data_bytes, faces=faces)
    check_one_input(rows)
    if as_path:
        assert all(r.path == str(src) for r in rows)


@FUZZ
@given(
    blobs=st.lists(image_blobs(), min_size=1, max_size=4),
    batch_size=st.integers(1, 3),
    faces=st.sampled_from(["auto", "off"]),
)
def test_predict_batch_one_row_per_input_and_same_as_single(predictor, blobs, batch_size, faces):
    items = [b for b, _ in blobs]
    rows = predictor.predict_batch(items, faces=faces, batch_size=batch_size, progress=False)
    single = [predictor.predict(item, faces=faces) for item in items]
    assert len(rows) == sum(len(s) for s in single)
    i = 0
    for k, expected in enumerate(single):
        group = rows[i : i + len(expected)]
        i += len(expected)
        check_one_input(group)
        assert all(r.path == f"<bytes #{k}>" for r in group)
        assert [(r.status, r.face, r.box) for r in group] == [(r.status, r.face, r.box) for r in expected]
        for a, b in zip(group, expected):
            if a.ok:
                np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)


@FUZZ
@given(
    arr=st.one_of(
        hnp.arrays(
            st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
            st.tuples(st.integers(1, 80), st.integers(1, 80))
            | st.tuples(st.integers(1, 80), st.integers(1, 80), st.integers(1, 5)),
            elements=None,
            fill=None,
        ),
    )
)
def test_predict_arrays_never_raise(predictor, arr):
    check_one_input(predictor.predict(arr))


@st.composite
def bomb_sizes(draw) -> tuple[int, int]:
    w = draw(st.integers(800, 65_535))
    return w, draw(st.integers(images.MAX_PIXELS // w + 1, 65_535))


@FUZZ
@given(size=bomb_sizes(), fmt=st.sampled_from(["PNG", "BMP", "GIF"]))
@example(size=(10_000, 10_000), fmt="PNG")
def test_decompression_bomb_refused_before_decoding(predictor, size, fmt):
    """A few bytes that claim more pixels than MAX_PIXELS: refused from the header alone."""
    w, h = size
    small = _encode(Image.new("L", (8, 8), 0), fmt)
    if fmt == "PNG":
        blob = _png_with_size(small, w, h)
    elif fmt == "BMP":
        blob = small[:18] + struct.pack("<ii", w, h) + small[26:]
    else:
        blob = small[:6] + struct.pack("<HH", w, h) + small[10:]
    [r] = predictor.predict(blob)
    assert r.status.startswith("unreadable: ") and ("bomb" in r.status or fmt == "GIF"), r.status


# -- file-system shapes: iter_image_paths, the CLI, the dataset loaders ---------------------------
ENTRY_KINDS = [
    "image",
    "image",
    "garbage",
    "empty",
    "dir_like_image",
    "link_to_file",
    "dangling",
    "self_loop",
    "pair_loop",
    "dir_link_loop",
    "fifo",
    "hidden",
    "text",
    "subdir",
]
NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")


@st.composite
def names(draw) -> bytes:
    """A file-name stem as bytes: unicode (newlines and all) or, now and then, not UTF-8 at all."""
    if draw(st.integers(0, 7)) == 0:
        raw = draw(st.binary(min_size=1, max_size=12)).replace(b"/", b"_").replace(b"\0", b"_")
    else:
        raw = draw(st.text(NAME_CHARS, min_size=1, max_size=12)).encode("utf-8")
    return raw[:120]


@st.composite
def entries(draw) -> list[tuple[str, bytes, tuple[bytes, str] | None]]:
    return draw(
        st.lists(st.tuples(st.sampled_from(ENTRY_KINDS), names(), st.none() | image_blobs()), min_size=0, max_size=7)
    )


def _good_png(seed: int) -> bytes:
    return _encode(Image.fromarray(_pixels("noise", 48, 48, seed)), "PNG")


def build(folder: bytes, spec) -> None:
    """Create the entries of `spec` in `folder` (bytes paths, so any name works)."""
    os.makedirs(folder, exist_ok=True)
    for i, (kind, stem, blob) in enumerate(spec):
        ext = (blob[1] if blob else ".png").encode()
        name = b"%02d-" % i + stem + ext
        path = folder + b"/" + name
        payload = blob[0] if blob else _good_png(i)
        if kind in ("image", "garbage"):
            with open(path, "wb") as fh:
                fh.write(payload if kind == "image" else os.urandom(1 + i * 37))
        elif kind == "empty":
            open(path, "wb").close()
        elif kind == "dir_like_image":  # a folder named x.png holding an image
            os.mkdir(path)
            with open(path + b"/inner.png", "wb") as fh:
                fh.write(_good_png(i))
        elif kind == "link_to_file":
            with open(path + b".target.png", "wb") as fh:
                fh.write(payload)
            os.symlink(name + b".target.png", path)
        elif kind == "dangling":
            os.symlink(b"missing-" + name, path)
        elif kind == "self_loop":
            os.symlink(name, path)
        elif kind == "pair_loop":
            os.symlink(name + b".other.jpg", path)
            os.symlink(name, path + b".other.jpg")
        elif kind == "dir_link_loop":
            os.symlink(b".", folder + b"/%02d-dirloop" % i)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "hidden":
            with open(folder + b"/." + name, "wb") as fh:
                fh.write(payload)
        elif kind == "text":
            with open(folder + b"/%02d-notes.txt" % i, "wb") as fh:
                fh.write(b"hello\n")
        elif kind == "subdir":
            build(folder + b"/%02d-sub" % i, [("image", stem, blob)])


def _all_entries(root: Path) -> set[Path]:
    """Every non-folder path under root, links included, without entering linked folders."""
    out = set()
    for dirpath, dirs, files in os.walk(root):
        out |= {Path(dirpath) / f for f in files}
        out |= {Path(dirpath) / d for d in dirs if os.path.islink(os.path.join(dirpath, d))}
    return out


@FEW
@given(spec=entries())
def test_folder_shapes_cli_writes_one_row_per_image_file(predictor, spec):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "in"
        build(os.fsencode(root), spec)
        found, skipped = P.iter_image_paths([root])
        # Every path is accounted for: an image to predict, or skipped with a reason.
        listed = set(found) | {p for p, _ in skipped}
        assert _all_entries(root) <= listed | {p for p in _all_entries(root) if p.name.startswith(".")}
        assert all(reason for _, reason in skipped)
        out_csv = Path(d) / "out" / "p.csv"
        argv = ["predict", "--model", "unused", str(root), "--csv", str(out_csv), "--faces", "off", "--no-progress"]
        with (
            mock.patch.object(cli, "_load", return_value=predictor),
            mock.patch("sys.stdout", new=io.StringIO()),
            mock.patch("sys.stderr", new=io.StringIO()) as err,
        ):
            code = cli.main(argv)
        if not found:
            assert code == 1 and not out_csv.exists()
        if code == 1:
            assert err.getvalue().splitlines()[-1].startswith("emolib predict: error: "), err.getvalue()
        else:
            assert code == 0, err.getvalue()
        if found:  # the CSV is written even when every file was unreadable
            with open(out_csv, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            assert [r["path"] for r in rows] == [cli._shown(p, one_line=False) for p in found]
            for r in rows:
                assert r["status"] in ("ok", "blank") or r["status"].startswith("unreadable: "), r


@FEW
@given(train_a=entries(), train_b=entries(), test_a=entries(), test_b=entries())
def test_data_loaders_never_raise(train_a, train_b, test_a, test_b):
    with tempfile.TemporaryDirectory() as d:
        root = os.fsencode(d) + b"/data"
        for split, cls, spec in (
            ("train", "angry", train_a),
            ("train", "sad", train_b),
            ("test", "angry", test_a),
            ("test", "sad", test_b),
        ):
            build(b"%s/%s/%s" % (root, split.encode(), cls.encode()), spec)
        root_path = Path(os.fsdecode(root))
        assert set(data.available_classes(root_path)) >= {"angry", "sad"}
        try:
            frame, report = data.discover(root_path, ("angry", "sad"))
        except data.DataError as e:
            assert str(e)
            return
        pixels, ok, problems = data.load_images(frame, 48, cache_dir=None, progress=False, workers=2)
        assert pixels.shape == (len(frame), 48, 48) and pixels.dtype == np.uint8 and ok.dtype == bool
        assert len(problems) == int((~ok).sum()) and all(p["reason"] for p in problems)
        hashes = data.content_hashes(frame)
        assert len(hashes) == len(frame)


# -- video files (truncated containers, random bytes, zero frames, odd sizes) ------------------
VIDEO_STATUSES = ("ok", "no_face", "blank", "no_frames")


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> bytes:
    """A valid 12-frame 96x72 MJPG AVI (a bright square moving on grey), as bytes."""
    import cv2

    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for i in range(12):
        frame = np.full((72, 96, 3), 90, np.uint8)
        frame[20:50, 5 + 4 * i : 35 + 4 * i] = 220
        writer.write(frame)
    writer.release()
    return path.read_bytes()


@st.composite
def video_blobs(draw, clip: bytes) -> tuple[bytes, str]:
    """A valid clip cut anywhere, random bytes, a damaged clip, or an empty file; with a video extension."""
    kind = draw(st.sampled_from(["cut", "random", "flipped", "empty", "header_only"]))
    ext = draw(st.sampled_from([".avi", ".mp4", ".mkv", ".mov", ".webm"]))
    if kind == "cut":
        data = clip[: draw(st.integers(0, len(clip)))]
    elif kind == "random":
        data = draw(st.binary(min_size=1, max_size=4096))
    elif kind == "flipped":
        pos = draw(st.lists(st.integers(0, len(clip) - 1), min_size=1, max_size=20))
        buf = bytearray(clip)
        for p in pos:
            buf[p] ^= 0xFF
        data = bytes(buf)
    elif kind == "header_only":
        data = clip[:12]
    else:
        data = b""
    event(f"video:{kind}")
    return data, ext


def test_predict_video_never_raises(predictor, small_clip):
    """predict_video on damaged and non-video files: a documented status, never an exception."""
    from emolib import video

    @FEW
    @given(blob=video_blobs(small_clip))
    def check(blob):
        data, ext = blob
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"clip{ext}"
            path.write_bytes(data)
            r = video.predict_video(predictor, path, progress=False)
            assert r.status in VIDEO_STATUSES or r.status.startswith("unreadable: "), r.status
            for row in r.rows:  # frame rows, or one file-level row carrying the file's status
                if row["frame"] is None:
                    assert row["status"] == r.status and r.status not in ("ok",), row
                else:
                    assert row["status"] in ("ok", "no_face", "blank") and row["frame"] >= 0, row

    check()
