"""Reading images safely: any mode, any size within reason, a clear error otherwise.

Every loader in emolib (datasets, predictor, playground) goes through `read_image`,
so corrupt files, odd modes and decompression bombs are handled in one place.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
# A 48x48 face crop is ~2.3k pixels; a 50-megapixel photo is the largest we accept.
MAX_PIXELS = 50_000_000
MIN_SIDE = 8
# Near-blank: almost no variation in grey level. One definition for the data checks
# (emolib.checks) and for prediction (status 'blank'): a face has a std of ~30-70.
BLANK_MAX_STD = 4.0  # grey levels


class ImageReadError(ValueError):
    """An image could not be used; the message says why in words a user can act on."""


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def near_blank(pixels: np.ndarray, max_std: float = BLANK_MAX_STD):
    """Whether an (H, W) image is near-blank (pixel std <= `max_std` grey levels).

    For a stack (N, H, W) the answer is a boolean array of N. Used by the data checks
    and by prediction, on pixels at the size the model sees (e.g. 48x48).
    """
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        return bool(arr.std() <= max_std) if arr.size else True
    n = len(arr)
    return arr.reshape(n, -1).std(axis=1) <= max_std if n else np.zeros(0, dtype=bool)


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float images scaled to 0..255 (PIL's own convert('L') clips them)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(arr)
        if not finite.all():  # float images may hold NaN/inf: they count as black
            arr = np.where(finite, arr, 0.0)
        lo, hi = float(arr.min()), float(arr.max())
        if img.mode.startswith("I;16") and hi <= 65535:
            # Use the full 16-bit range, so dark 16-bit images stay dark.
            arr = arr / 257.0
        elif hi > lo:
            arr = (arr - lo) / (hi - lo) * 255.0
        else:
            arr = np.zeros_like(arr)
        return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L")
    return img


def open_image(source: str | Path | bytes | Image.Image, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image, applying EXIF orientation; raise ImageReadError otherwise."""
    if isinstance(source, Image.Image):
        img = source
        name = "<PIL image>"
    else:
        name = str(source) if not isinstance(source, bytes) else "<bytes>"
        if not isinstance(source, bytes):
            _check_file(Path(source))
        try:
            with warnings.catch_warnings():
                # PIL warns before it raises on bombs; we turn both into one clear error.
                # Its other warnings on damaged files (truncated TIFF tags, corrupt EXIF) would
                # only spam a batch: the image either loads or gets its ImageReadError.
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                fp = io.BytesIO(source) if isinstance(source, bytes) else source
                img = Image.open(fp)
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageReadError(
                        f"{name}: {w}x{h} pixels is over the {max_pixels:,}-pixel limit "
                        "(possible decompression bomb); downscale it first"
                    )
                img.load()
        except ImageReadError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
            raise ImageReadError(f"{name}: refused as a possible decompression bomb ({e})") from None
        except UnidentifiedImageError:
            raise ImageReadError(f"{name}: not an image file (or a format PIL cannot read)") from None
        except PermissionError as e:
            raise ImageReadError(f"{name}: permission denied ({e.strerror or e})") from None
        except MemoryError:
            raise ImageReadError(f"{name}: too large to decode in memory") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageReadError(f"{name}: corrupt or truncated image ({e})") from None
        except Exception as e:  # noqa: BLE001 - hostile files make PIL raise anything (struct.error, ...)
            raise ImageReadError(f"{name}: corrupt or truncated image ({type(e).__name__}: {e})") from None
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageReadError(f"{name}: {w}x{h} is too small (each side must be at least {MIN_SIDE} pixels)")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF must not lose the image
        pass
    return img


def _check_file(path: Path) -> None:
    """A clear ImageReadError unless `path` is a readable regular file (links followed)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            target = os.readlink(path)
            raise ImageReadError(f"{path}: broken symbolic link (its target {target!r} does not exist)") from None
        raise ImageReadError(f"{path}: file not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageReadError(f"{path}: symbolic link loop (the link points back to itself)") from None
        if isinstance(e, PermissionError):
            raise ImageReadError(f"{path}: permission denied (cannot access the file)") from None
        raise ImageReadError(f"{path}: cannot access the file ({e.strerror or e})") from None
    except ValueError as e:  # e.g. an embedded NUL character
        raise ImageReadError(f"{path}: not a valid file name ({e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(f"{path}: is a folder, not an image")
    if not stat.S_ISREG(st.st_mode):  # reading a FIFO would block, a device might never end
        raise ImageReadError(f"{path}: not a regular file (a pipe, device or socket)")
    if st.st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise ImageReadError(f"{path}: permission denied (the file is not readable)")


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert any PIL mode (RGBA, LA, P, CMYK, I;16, F, 1, YCbCr) to 'L' or 'RGB'.

    Transparent pixels are composited on white, as a viewer would show them.
    """
    img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if img.mode != mode:
        img = img.convert(mode)
    return img


def read_image(
    source: str | Path | bytes | Image.Image | np.ndarray,
    *,
    mode: str = "L",
    size: int | tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Read an image as uint8 array: (H, W) for mode 'L', (H, W, 3) for 'RGB'.

    `size` resizes (bilinear, antialiased) to a square side or (width, height).
    Arrays are accepted too (uint8 or float 0..255; 2-D, HxWx1, HxWx3 or HxWx4).
    """
    if isinstance(source, np.ndarray):
        img = Image.fromarray(_array_to_uint8(source))
    else:
        img = open_image(source, max_pixels=max_pixels)
    try:
        img = to_mode(img, mode)
        if size is not None:
            wh = (size, size) if isinstance(size, int) else tuple(size)
            if img.size != wh:
                img = img.resize(wh, Image.BILINEAR, reducing_gap=3.0)
        return np.asarray(img, dtype=np.uint8)
    except MemoryError:
        raise ImageReadError(f"{_name(source)}: too large to convert in memory") from None
    except (OSError, ValueError, TypeError, KeyError) as e:  # an odd mode PIL cannot convert
        what = f"{type(e).__name__}: {e}"
        raise ImageReadError(f"{_name(source)}: cannot convert the {img.mode} image ({what})") from None


def _name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__name__}>" if not isinstance(source, bytes) else "<bytes>"


def _array_to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageReadError(f"array of shape {arr.shape} is not an image (need HxW, HxWx1, HxWx3 or HxWx4)")
    if min(arr.shape[:2]) < MIN_SIDE:
        raise ImageReadError(f"array of shape {arr.shape} is too small (each side at least {MIN_SIDE})")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
        arr = arr * 255.0  # floats in 0..1
    return np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
