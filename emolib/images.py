"""Reading images safely: any mode, any size within reason, a clear error otherwise.

Every loader in emolib (datasets, predictor, playground) goes through `read_image`,
so corrupt files, odd modes and decompression bombs are handled in one place.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
# A 48x48 face crop is ~2.3k pixels; a 50-megapixel photo is the largest we accept.
MAX_PIXELS = 50_000_000
MIN_SIDE = 8


class ImageReadError(ValueError):
    """An image could not be used; the message says why in words a user can act on."""


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float images scaled to 0..255 (PIL's own convert('L') clips them)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
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
            path = Path(source)
            if not path.exists():
                raise ImageReadError(f"{path}: file not found")
            if path.is_dir():
                raise ImageReadError(f"{path}: is a folder, not an image")
            if path.stat().st_size == 0:
                raise ImageReadError(f"{path}: empty file (0 bytes)")
        try:
            with warnings.catch_warnings():
                # PIL warns before it raises on bombs; we turn both into one clear error.
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
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageReadError(f"{name}: corrupt or truncated image ({e})") from None
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageReadError(f"{name}: {w}x{h} is too small (each side must be at least {MIN_SIDE} pixels)")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF must not lose the image
        pass
    return img


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
    img = to_mode(img, mode)
    if size is not None:
        wh = (size, size) if isinstance(size, int) else tuple(size)
        if img.size != wh:
            img = img.resize(wh, Image.BILINEAR, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


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
