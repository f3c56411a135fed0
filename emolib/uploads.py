"""Checking and decoding the photos sent to the live playground, with every limit in one place.

An upload (the value of an ipywidgets 8 `FileUpload`: dicts with name, type, size and content)
goes through two steps, and neither ever raises:

* `check_uploads` keeps at most `max_files` files, refuses empty files, files over
  `max_file_mb` and files past `max_total_mb` in all, and says why for each one;
* `decode_upload` turns one file's bytes into a grayscale array, in memory (no temporary
  file), or into a `UploadRefused` whose message names the file and the reason: not an image
  file, a format the playground does not read, a possible decompression bomb (judged from the
  header, before any pixel is decoded), a corrupt image, an image too small.

The browser sends a whole upload as one websocket message, and the Jupyter server closes the
connection on a message over `websocket_max_message_size` (10 MiB by default in tornado),
before the kernel sees anything. `make playground` therefore starts Voila with
`VOILA_ARGS` (a 256 MiB ceiling; `make lab` sets the same for JupyterLab), so that an upload
with an over-limit file still arrives and gets its message.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .images import MAX_PIXELS, ImageReadError

MAX_FILE_MB = 10.0
MAX_FILES = 50
MAX_TOTAL_MB = 100.0
MB = 1_000_000
# The server must accept one message this large for the limits above to be reported, not cut off.
SERVER_MAX_MESSAGE_BYTES = 256 * 2**20
VOILA_ARGS = (f"--Voila.tornado_settings={{'websocket_max_message_size': {SERVER_MAX_MESSAGE_BYTES}}}",)
# Formats a browser photo comes in. Everything else PIL could open (EPS runs Ghostscript and
# writes temporary files, PDF, ICNS, ...) is refused.
FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
MAX_NAME_CHARS = 120


class UploadRefused(ValueError):
    """One uploaded file cannot be used; str() is '<name>: <reason>' for the page."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


@dataclass(frozen=True)
class Limits:
    max_file_mb: float = MAX_FILE_MB
    max_files: int = MAX_FILES
    max_total_mb: float = MAX_TOTAL_MB
    max_pixels: int = MAX_PIXELS

    def describe(self) -> str:
        return (
            f"at most {self.max_files} files and {self.max_total_mb:g} MB per upload, "
            f"{self.max_file_mb:g} MB and {self.max_pixels / 1e6:g} megapixels per file"
        )


def clean_name(raw: Any, index: int = 0) -> str:
    """A file name fit to show: no folders, no control characters, not too long."""
    name = str(raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip() or f"upload {index + 1}"
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 3] + "..."


def _content(f: Any) -> bytes | None:
    content = f.get("content") if isinstance(f, dict) else getattr(f, "content", None)
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    return None


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def check_uploads(value: Any, limits: Limits = Limits()) -> tuple[list[tuple[str, bytes]], list[str]]:
    """FileUpload value -> ([(name, bytes)] to decode, [one message per refused file]).

    The size is that of the content received, whatever the 'size' field says.
    """
    try:
        files = list(value or ())
    except TypeError:
        return [], [f"the upload could not be read ({type(value).__name__})"]
    kept: list[tuple[str, bytes]] = []
    problems: list[str] = []
    total = 0
    for i, f in enumerate(files[: limits.max_files]):
        name = clean_name(f.get("name") if isinstance(f, dict) else getattr(f, "name", None), i)
        data = _content(f)
        if data is None:
            problems.append(f"{name}: no file content received")
        elif not data:
            problems.append(f"{name}: empty file (0 bytes)")
        elif len(data) > limits.max_file_mb * MB:
            problems.append(f"{name}: {_size(len(data))} is over the {limits.max_file_mb:g} MB limit")
        elif total + len(data) > limits.max_total_mb * MB:
            problems.append(
                f"{name}: skipped, the upload is over the {limits.max_total_mb:g} MB limit for all files together"
            )
        else:
            total += len(data)
            kept.append((name, data))
    dropped = len(files) - limits.max_files
    if dropped > 0:
        problems.append(
            f"{dropped} file(s) dropped: at most {limits.max_files} files per upload "
            f"(the first {limits.max_files} were read)"
        )
    return kept, problems


def _bomb(name: str, pixels: int | None, limits: Limits, size: tuple[int, int] | None = None) -> UploadRefused:
    what = (f"{size[0]}x{size[1]} = " if size else "") + (f"{pixels:,} pixels" if pixels else "too many pixels")
    return UploadRefused(
        name, f"refused as a possible decompression bomb ({what}; the limit is {limits.max_pixels:,} pixels)"
    )


def decode_upload(name: str, data: bytes, limits: Limits = Limits()) -> np.ndarray:
    """The (H, W) uint8 grayscale image in `data`, decoded in memory; UploadRefused otherwise."""
    from PIL import Image, UnidentifiedImageError

    from .images import read_image

    if not data:
        raise UploadRefused(name, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.init()  # registers all the plugins: open() with formats= looks them up by name
            img = Image.open(io.BytesIO(data), formats=[f for f in FORMATS if f in Image.OPEN])  # the header only
            w, h = img.size
            if w * h > limits.max_pixels:
                raise _bomb(name, w * h, limits, (w, h))
            img.load()
    except UploadRefused:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise _bomb(name, int(m.group(1)) if m else None, limits) from None
    except UnidentifiedImageError:
        raise UploadRefused(name, f"not an image file (or not one of {', '.join(FORMATS)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UploadRefused(name, f"corrupt or truncated image ({e})") from None
    except Exception as e:  # noqa: BLE001 - a decoder bug must not reach the widget callback
        raise UploadRefused(name, f"could not be decoded ({type(e).__name__}: {e})") from None
    try:
        return read_image(img, mode="L", max_pixels=limits.max_pixels)
    except ImageReadError as e:
        raise UploadRefused(name, str(e).removeprefix("<PIL image>: ")) from None
    except Exception as e:  # noqa: BLE001
        raise UploadRefused(name, f"could not be converted ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------------------
# Videos (the playground's video mode): one short clip per upload. OpenCV reads videos
# from a file only, so the playground writes the checked bytes into a TemporaryDirectory
# that is removed as soon as the clip is analysed; nothing else is ever written.
# --------------------------------------------------------------------------------------

MAX_VIDEO_MB = 50.0
MAX_VIDEO_S = 120.0  # a short clip: analysing costs ~20-40 ms per frame on a laptop CPU
MAX_VIDEO_PIXELS = 3840 * 2160  # per frame
# Containers recognised from their first bytes (not from the name or the browser's MIME type).
VIDEO_CONTAINERS = ("MP4", "MOV", "WebM", "MKV", "AVI")
VIDEO_SUFFIX = {"MP4": ".mp4", "MOV": ".mov", "WebM": ".webm", "MKV": ".mkv", "AVI": ".avi"}


@dataclass(frozen=True)
class VideoLimits:
    max_file_mb: float = MAX_VIDEO_MB
    max_seconds: float = MAX_VIDEO_S
    max_pixels: int = MAX_VIDEO_PIXELS

    def describe(self) -> str:
        return f"one {'/'.join(VIDEO_CONTAINERS)} video of at most {self.max_file_mb:g} MB and {self.max_seconds:g} s"


def sniff_video(data: bytes) -> str | None:
    """The container of a video file from its first bytes ('MP4', 'MOV', 'WebM', 'MKV', 'AVI'), else None."""
    head = bytes(data[:64])
    if len(head) >= 12 and head[4:8] == b"ftyp":  # ISO base media: the brand says QuickTime or MP4
        return "MOV" if head[8:12] == b"qt  " else "MP4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: the DocType says webm or matroska
        return "WebM" if b"webm" in bytes(data[:4096]) else "MKV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def check_video_upload(value: Any, limits: VideoLimits = VideoLimits()) -> tuple[str, bytes, str]:
    """FileUpload value -> (name, bytes, container) of its one video; UploadRefused otherwise.

    Checks the size received and the container (sniffed from the bytes); whether the clip
    decodes and how long it is are checked on the temporary file by `probe_video`.
    """
    try:
        files = list(value or ())
    except TypeError:
        raise UploadRefused("upload", f"the upload could not be read ({type(value).__name__})") from None
    if not files:
        raise UploadRefused("upload", "no file received")
    f = files[0]
    name = clean_name(f.get("name") if isinstance(f, dict) else getattr(f, "name", None))
    data = _content(f)
    if data is None:
        raise UploadRefused(name, "no file content received")
    if not data:
        raise UploadRefused(name, "empty file (0 bytes)")
    if len(data) > limits.max_file_mb * MB:
        raise UploadRefused(name, f"{_size(len(data))} is over the {limits.max_file_mb:g} MB limit for a video")
    container = sniff_video(data)
    if container is None:
        raise UploadRefused(name, f"not a video file (or not one of {', '.join(VIDEO_CONTAINERS)})")
    return name, data, container


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int

    @property
    def seconds(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0


def probe_video(path: str, name: str, limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """Open the clip with OpenCV and check it decodes, its duration and its frame size; UploadRefused otherwise."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise UploadRefused(name, "corrupt video, or a codec this machine cannot decode")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise UploadRefused(name, "corrupt video: no frame could be decoded")
        h, w = frame.shape[:2]
        info = VideoInfo(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), float(cap.get(cv2.CAP_PROP_FPS) or 0.0), w, h)
    finally:
        cap.release()
    if w * h > limits.max_pixels:
        raise UploadRefused(name, f"frames of {w}x{h} are over the {limits.max_pixels:,} pixel limit")
    if info.seconds > limits.max_seconds:
        raise UploadRefused(name, f"{info.seconds:.0f} s long; the limit is {limits.max_seconds:g} s")
    return info
