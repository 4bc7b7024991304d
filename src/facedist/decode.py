"""decode: an image file → an RGB uint8 array, the way a person would see it.

EXIF orientation is applied; every Pillow mode becomes RGB (alpha composited on white, 16-bit and
32-bit grey scaled down, not clipped); animated files give their first frame. A declared size over
`max_pixels` is refused before any pixel is decoded (decompression bombs). Failures raise
`DecodeError` with a one-line reason.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

try:  # HEIC/HEIF where the optional plugin is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF = False

# Our own pixel limit is checked explicitly; Pillow's would raise at 2x its default anyway.
Image.MAX_IMAGE_PIXELS = None


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


def decode_image(path: str | Path, max_pixels: int, max_side: int | None = None) -> DecodedImage:
    """Read `path` as upright RGB. With `max_side`, photos over twice that are decoded at a reduced
    size, never below max_side on the long side: JPEGs by DCT scaling (much faster for large
    photos), other formats by an integer box filter after decoding (which bounds the memory that
    detection then needs)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise DecodeError(f"declared size {w}x{h} exceeds the pixel limit "
                                  f"({max_pixels} pixels)")
            scale = 1.0
            if max_side and img.format == "JPEG" and max(w, h) > 2 * max_side:
                img.draft("RGB", (max(1, w * max_side // max(w, h)),
                                  max(1, h * max_side // max(w, h))))
                scale = w / img.size[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow's EXIF/palette chatter is not news
                img.load()
                upright = ImageOps.exif_transpose(img)
            pixels = _to_rgb(upright)
            if max_side and max(pixels.shape[:2]) > 2 * max_side:  # not a JPEG: box filter
                full_width = pixels.shape[1]
                pixels = np.asarray(Image.fromarray(pixels).reduce(max(pixels.shape[:2]) // max_side))
                scale = full_width / pixels.shape[1]
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
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecodeError(f"cannot decode: {msg}") from None
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise DecodeError("empty image")
    return DecodedImage(pixels=pixels, scale=scale)


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"))
