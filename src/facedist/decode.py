"""decode: an image file → an RGB uint8 array, the way a person would see it.

EXIF orientation is applied; every Pillow mode becomes RGB (alpha composited on white, 16-bit and
32-bit grey scaled down, not clipped); animated files give their first frame. A declared size over
`max_pixels` is refused before any pixel is decoded (decompression bombs). Failures raise
`DecodeError` with a one-line reason.
"""
from __future__ import annotations

import contextlib
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .config import side_limit

try:  # HEIC/HEIF where the optional plugin is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF = False



class DecodeError(Exception):
    """The file is not an image we can read; str(error) is the one-line reason."""


@dataclass
class DecodedImage:
    pixels: np.ndarray  # [H, W, 3] uint8 RGB, EXIF-upright
    scale: float = 1.0  # source pixels per array pixel (>1 when decoded reduced)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in source pixels, upright."""
        h, w = self.pixels.shape[:2]
        return round(w * self.scale), round(h * self.scale)


# A photo whose declared size is over this is "large": decoded under the caller's `large_lock`
# (one at a time), and reduced band by band so that no full-size RGB copy is ever made.
LARGE_PIXELS = 16_000_000
BAND_PIXELS = 4_000_000  # source pixels converted at once while reducing
# Pillow decodes WebP (no reduced decoding) at ~15 bytes a pixel: measured 2.1 GB peak for a
# 118.8 M pixel WebP (bench/results-trust/huge-photos.md); 36 M pixels stay under 1 GB.
WEBP_MAX_PIXELS = 36_000_000

_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def decode_image(path, max_pixels: int, max_side: int | None = None,
                 large_lock=None) -> DecodedImage:
    """Read `path` (a path or a binary file) as upright RGB. With `max_side`, photos over twice
    that are decoded at a reduced size, never below max_side on the long side (config.side_limit:
    for images wider than 2:1, a larger side that keeps their faces findable): JPEGs by DCT
    scaling (much faster for large photos), other formats by an integer box filter applied band
    by band as they are converted (peak memory: the decoded file in its own mode, once). With
    `large_lock` (a threading.Lock), photos over LARGE_PIXELS are decoded one at a time."""
    try:
        with _quiet(), Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise DecodeError(f"declared size {w}x{h} exceeds the pixel limit "
                                  f"({max_pixels} pixels)")
            if img.format == "WEBP" and w * h > WEBP_MAX_PIXELS:
                raise DecodeError(f"WebP of {w}x{h}: Pillow decodes WebP whole at ~15 bytes a "
                                  f"pixel, over facedist's 1 GB budget above {WEBP_MAX_PIXELS} "
                                  f"pixels; convert it (to PNG or JPEG) to include it")
            max_side = side_limit(max_side, w, h)
            scale = 1.0
            if max_side and img.format == "JPEG" and max(w, h) > 2 * max_side:
                img.draft("RGB", (max(1, w * max_side // max(w, h)),
                                  max(1, h * max_side // max(w, h))))
                scale = w / img.size[0]
            large = img.size[0] * img.size[1] > LARGE_PIXELS and large_lock is not None
            if large:
                large_lock.acquire()
            try:
                img.load()
                orientation = img.getexif().get(0x0112)
                factor = max(img.size) // max_side if max_side else 1
                if factor >= 2 and max(img.size) > 2 * max_side:
                    full_width = img.size[0]
                    small = Image.fromarray(_reduced_rgb(img, factor))
                    scale = w / full_width * full_width / small.size[0]
                    if orientation in _TRANSPOSE:
                        small = small.transpose(_TRANSPOSE[orientation])
                    pixels = np.asarray(small)
                else:
                    pixels = _to_rgb(ImageOps.exif_transpose(img))
            finally:
                if large:
                    large_lock.release()
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError("file vanished or is a broken link") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except IsADirectoryError:
        raise DecodeError("is a directory") from None
    except Image.UnidentifiedImageError:
        raise DecodeError("not a recognised image format") from None
    except Image.DecompressionBombError:  # over Pillow's own limit, which its user may set
        pillows = f", and Pillow's: {2 * Image.MAX_IMAGE_PIXELS}" if Image.MAX_IMAGE_PIXELS else ""
        raise DecodeError(f"declared size exceeds the pixel limit ({max_pixels} pixels{pillows})") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, struct.error, IndexError,
            TypeError, KeyError, ZeroDivisionError) as exc:
        # Pillow's parsers meet damaged files with many exception types; each is this file's fault
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecodeError(f"cannot decode: {msg}") from None
    if pixels.ndim != 3 or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise DecodeError("empty image")
    return DecodedImage(pixels=pixels, scale=scale)


@contextlib.contextmanager
def _quiet():
    """Pillow's EXIF, palette and size warnings are not news (our own limit is max_pixels); a
    damaged file is answered by its DecodeError alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _reduced_rgb(img: Image.Image, factor: int) -> np.ndarray:
    """`img` (any mode) as RGB reduced `factor` times by box filter, converted a band of rows
    at a time: never a full-size copy beside the decoded image itself."""
    w, h = img.size
    top = _grey_top(img)
    band = factor * max(1, BAND_PIXELS // (w * factor))
    out = np.empty((-(-h // factor), -(-w // factor), 3), np.uint8)
    for y in range(0, h, band):
        rgb = _to_rgb(img.crop((0, y, w, min(h, y + band))), top)
        part = np.asarray(Image.fromarray(rgb).reduce(factor))
        out[y // factor:y // factor + part.shape[0]] = part
    return out


def _grey_top(img: Image.Image) -> float | None:
    """The value that becomes white for 16/32-bit grey (None for other modes)."""
    if img.mode.startswith("I;16"):
        return 65535.0
    if img.mode in ("I", "F"):
        # 32-bit grey has no fixed range: the smallest usual one that holds the image (floats
        # in [0, 1], 8-bit or 16-bit values), else its own maximum
        hi = float(img.getextrema()[1])
        ranges = ((1.0,) if img.mode == "F" else ()) + (255.0, 65535.0)
        return next((r for r in ranges if hi <= r), hi)
    return None


def _to_rgb(img: Image.Image, top: float | None = None) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = top or _grey_top(img)
        grey = np.clip(arr * np.float32(255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"))


def as_decoded(image, max_pixels: int, max_side: int | None = None):
    """An image given to the API, ready for the pipeline: a path stays a Path (decoded like any
    photo); encoded bytes (decoded as a photo of a run is, `max_side` included), a PIL image or
    a uint8 array (RGB [H, W, 3], grey [H, W], RGBA [H, W, 4]) become a DecodedImage. Anything
    else raises ValueError."""
    if isinstance(image, (str, Path)):
        return Path(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        import io

        try:
            return decode_image(io.BytesIO(bytes(image)), max_pixels, max_side)
        except DecodeError as exc:
            raise ValueError(f"image bytes: {exc}") from None
    if isinstance(image, Image.Image):
        return DecodedImage(_to_rgb(ImageOps.exif_transpose(image)))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
                image.ndim == 3 and image.shape[2] not in (3, 4)) or 0 in image.shape:
            raise ValueError(f"an image array must be uint8 [H, W, 3] RGB (or [H, W] grey, "
                             f"[H, W, 4] RGBA), not {image.dtype} {list(image.shape)}")
        if image.ndim == 2 or image.shape[2] == 4:
            return DecodedImage(_to_rgb(Image.fromarray(image)))
        return DecodedImage(np.ascontiguousarray(image))
    raise ValueError(f"not an image: {type(image).__name__} (give a path, bytes, a PIL image "
                     f"or a uint8 array)")
