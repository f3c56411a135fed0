"""Playground uploads: limits, hostile files, one message per refused file, good files still
predicted, nothing raised out of the widget callback, nothing written to disk."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolib import uploads as U
from tests.helpers import AUTOGRAPH, entry, header_only_png, upload_widgets

ROOT = Path(__file__).resolve().parents[2]


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def crop(seed: int = 0, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 120 + 80 * np.sin(6 * xx + seed) * np.cos(3 * yy) + 60 * xx + rng.normal(0, 8, (size, size))
    return np.clip(img, 0, 255).astype(np.uint8)


# -- check_uploads: count, sizes ---------------------------------------------------------------
def test_many_files_keep_the_first_max_files():
    good = png_bytes(crop(1))
    kept, problems = U.check_uploads([entry(f"f{i:02d}.png", good) for i in range(60)])
    assert [n for n, _ in kept] == [f"f{i:02d}.png" for i in range(U.MAX_FILES)]
    n = U.MAX_FILES
    assert problems == [f"10 file(s) dropped: at most {n} files per upload (the first {n} were read)"]


def test_size_limits_empty_and_malformed_entries():
    good = png_bytes(crop(1))
    big = b"\0" * int(U.MAX_FILE_MB * U.MB + 1)
    value = (
        entry("big.jpg", big, "image/jpeg"),
        entry("empty.png", b""),
        {"name": "nothing.png"},
        entry("a/b\\../c\x07.png", good),
        entry("ok.png", good),
    )
    kept, problems = U.check_uploads(value)
    assert [n for n, _ in kept] == ["c.png", "ok.png"]  # folders and control characters removed
    assert problems == [
        "big.jpg: 10.0 MB is over the 10 MB limit",
        "empty.png: empty file (0 bytes)",
        "nothing.png: no file content received",
    ]
    # the declared size is not trusted: the content received counts
    kept, problems = U.check_uploads([{**entry("liar.png", big), "size": 10}])
    assert not kept and "over the 10 MB limit" in problems[0]
    # total: the files past the limit for all together are refused, the earlier ones kept
    kept, problems = U.check_uploads([entry(f"{i}.bin", b"x" * 400_000) for i in range(4)], U.Limits(max_total_mb=1.0))
    assert [n for n, _ in kept] == ["0.bin", "1.bin"]
    assert problems == [f"{i}.bin: skipped, the upload is over the 1 MB limit for all files together" for i in (2, 3)]
    assert U.check_uploads(None) == ([], [])
    assert U.check_uploads(42)[1] == ["the upload could not be read (int)"]


# -- decode_upload: hostile and odd files ----------------------------------------------------------
@pytest.mark.parametrize(
    "data, reason",
    [
        (
            header_only_png(20_000, 20_000),
            "refused as a possible decompression bomb (400,000,000 pixels; the limit is 50,000,000 pixels)",
        ),
        (
            header_only_png(9_000, 9_000),
            "refused as a possible decompression bomb (9000x9000 = 81,000,000 pixels; the limit is 50,000,000 pixels)",
        ),
        (b"Dear diary, this is not a picture.\n" * 10, "not an image file"),
        (np.random.default_rng(0).bytes(5000), "not an image file"),
        (b"", "empty file (0 bytes)"),
        (png_bytes(crop(2))[:300], "corrupt or truncated image"),
        (png_bytes(crop(2)[:4, :4]), "4x4 is too small"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n", "not an image file"),  # no Ghostscript
    ],
    ids=["bomb-header", "over-max-pixels", "text", "random", "empty", "truncated", "tiny", "eps"],
)
def test_refused_files_say_why(data, reason):
    with pytest.raises(U.UploadRefused) as e:
        U.decode_upload("photo.jpg", data)
    assert str(e.value).startswith("photo.jpg: " + reason), str(e.value)


def test_real_bomb_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG", optimize=True)  # ~15 KB, 100 megapixels
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(U.UploadRefused, match="decompression bomb"):
        U.decode_upload("bomb.png", buf.getvalue())


def test_odd_modes_decode_to_gray():
    rgba = np.dstack([crop(3)] * 3 + [np.full((48, 48), 200, np.uint8)])
    sixteen = crop(4).astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(crop(5)).convert("CMYK").save(buf, "JPEG")
    for data in (png_bytes(rgba, "RGBA"), png_bytes(sixteen), buf.getvalue()):
        gray = U.decode_upload("x.png", data)
        assert gray.shape == (48, 48) and gray.dtype == np.uint8
    assert abs(float(U.decode_upload("s.png", png_bytes(sixteen)).mean()) - float(crop(4).mean())) < 1


# -- the widget: the callback, the page, the disk --------------------------------------------------
keras = pytest.importorskip("keras")


def _tree(path: Path) -> set[tuple[str, int]]:
    return {(str(p.relative_to(path)), p.stat().st_mtime_ns) for p in path.rglob("*")} if path.is_dir() else set()


def temp_files(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if not p.name.startswith(AUTOGRAPH))


@pytest.fixture
def no_files_written(tmp_path, monkeypatch) -> Path:
    """cwd and the temp folder are fresh empty folders, the repo's reports/ is watched: all must
    be as they were at the end (but for autograph's files, see above). Yields the temp folder."""
    tmp, cwd = tmp_path / "tmp", tmp_path / "cwd"
    tmp.mkdir(), cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    for var in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(var, str(tmp))
    monkeypatch.chdir(cwd)
    reports = _tree(ROOT / "reports")
    yield tmp
    assert temp_files(tmp) == [] and not list(cwd.iterdir())
    assert _tree(ROOT / "reports") == reports


def test_mixed_upload_in_the_widget(model_dir, no_files_written):
    from emolib import playground

    upload, out, status = upload_widgets(playground.app(model_dir))
    blank = png_bytes(np.full((300, 400), 210, np.uint8))
    rgba = png_bytes(np.dstack([crop(3)] * 3 + [np.full((48, 48), 200, np.uint8)]), "RGBA")
    value = [
        entry("good 1.png", png_bytes(crop(1))),
        entry("notes.jpg", b"not a picture\n" * 20, "image/jpeg"),
        entry("noise.png", np.random.default_rng(1).bytes(3000)),
        entry("empty.png", b""),
        entry("huge.jpg", b"\xff" * int(10.5 * U.MB), "image/jpeg"),
        entry("bomb.png", header_only_png(20_000, 20_000)),
        entry("blank.png", blank),
        entry("rgba.png", rgba),
        entry("16bit.png", png_bytes(crop(4).astype(np.uint16) * 257)),
        entry("<img src=x onerror=alert(1)>.png", png_bytes(crop(6))),
    ]
    upload.value = value  # runs the callback, as a browser upload does
    page = out.value
    for msg in (
        "notes.jpg: not an image file",
        "noise.png: not an image file",
        "empty.png: empty file (0 bytes)",
        "huge.jpg: 10.5 MB is over the 10 MB limit",
        "bomb.png: refused as a possible decompression bomb (400,000,000 pixels",
        "blank.png: no face found",
    ):
        assert f'<div class="emolib-problem" style="color:#c62828">{msg}' in page, msg
    assert page.count('class="emolib-problem"') == 6
    for good in ("good 1.png", "rgba.png", "16bit.png"):
        assert f"{good}: 1 face(s)" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.png: 1 face(s)" in page
    assert "Results (4 of 8 image(s) with a prediction)" in page and "emolib-csv" in page
    assert page.count("emolib-probs") >= 4
    assert status.value.startswith("done: 4 of 8 image(s)")
    assert upload.value == ()  # the bytes are not kept, the button is ready again
    after_first = sorted(p.name for p in no_files_written.iterdir())
    upload.value = [entry("again.png", png_bytes(crop(7)))]
    assert "again.png: 1 face(s)" in out.value and "emolib-problem" not in out.value
    assert sorted(p.name for p in no_files_written.iterdir()) == after_first  # nothing per upload


def test_sixty_files_at_once(model_dir, no_files_written):
    from emolib import playground

    upload, out, status = upload_widgets(playground.app(model_dir))
    upload.value = [entry(f"face{i:02d}.png", png_bytes(crop(i))) for i in range(60)]
    assert "10 file(s) dropped: at most 50 files per upload" in out.value
    assert out.value.count(" 1 face(s)") == 50 and "face49.png" in out.value and "face50.png" not in out.value
    assert status.value.startswith("done: 50 of 50 image(s)")


def test_callback_never_raises(model_dir, no_files_written, monkeypatch):
    from emolib import playground

    upload, out, status = upload_widgets(playground.app(model_dir))
    real = playground.analyse

    def flaky(name, *a, **k):
        if name == "crash.png":
            raise RuntimeError("boom in the model")
        return real(name, *a, **k)

    monkeypatch.setattr(playground, "analyse", flaky)
    upload.value = [entry("crash.png", png_bytes(crop(1))), entry("fine.png", png_bytes(crop(2)))]
    assert "crash.png: could not be analysed (RuntimeError: boom in the model)" in out.value
    assert "fine.png: 1 face(s)" in out.value

    monkeypatch.setattr(U, "check_uploads", lambda *a, **k: 1 / 0)
    upload.value = [entry("x.png", png_bytes(crop(1)))]  # must not raise
    assert "the upload failed: ZeroDivisionError" in status.value and upload.value == ()
    monkeypatch.undo()
    upload.value = [entry("after.png", png_bytes(crop(3)))]
    assert "after.png: 1 face(s)" in out.value
    upload.error = "NotReadableError"
    assert "the browser could not read the files: NotReadableError" in status.value


def test_voila_is_told_to_accept_a_whole_upload():
    """`make playground` passes VOILA_ARGS, so an upload over tornado's 10 MiB default websocket
    message reaches the kernel (and is answered) instead of closing the connection."""
    assert U.SERVER_MAX_MESSAGE_BYTES > (U.MAX_TOTAL_MB + U.MAX_FILE_MB) * U.MB
    makefile = (ROOT / "Makefile").read_text()
    assert all(a in makefile for a in U.VOILA_ARGS), U.VOILA_ARGS
    # `make lab` too (the notebook runs there the same)
    assert f"--ServerApp.tornado_settings={{'websocket_max_message_size': {U.SERVER_MAX_MESSAGE_BYTES}}}" in makefile
