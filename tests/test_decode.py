import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facedist.decode import DecodeError, decode_image


def _png_declaring(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1", "RGB", "I", "F"])
def test_every_mode_becomes_rgb_uint8(tmp_path, mode):
    img = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode)
    if mode == "I;16":  # real 16-bit files use the full 0..65535 range
        img = Image.fromarray(np.full((30, 40), 200 * 257, np.uint16))
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F") else "PNG"
    path = tmp_path / f"x.{fmt.lower()}"
    img.save(path, format=fmt)
    out = decode_image(path, 10**8).pixels
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    # the colour survives: (200, 100, 50) in colour modes; its luminance 124 in grey ones (the
    # 16-bit file holds 200 of 255, scaled, not clipped); the palette's nearest colour; 1-bit
    # dithered to black and white at the same mean grey
    pixels = out.reshape(-1, 3).astype(int)
    grey = (pixels == pixels[:, :1]).all()
    if mode in ("RGB", "RGBA", "CMYK"):
        assert (pixels == (200, 100, 50)).all()
    elif mode == "P":
        assert np.abs(pixels.mean(0) - (200, 100, 50)).max() <= 6
    elif mode == "1":
        assert grey and set(np.unique(pixels)) == {0, 255} and abs(pixels.mean() - 124) < 8
    else:
        assert grey and (pixels == (200 if mode == "I;16" else 124)).all(), np.unique(pixels)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    arr = np.full((10, 10), 32768, np.uint16)
    Image.fromarray(arr).save(tmp_path / "g.png")
    out = decode_image(tmp_path / "g.png", 10**8).pixels
    assert 120 <= out[0, 0, 0] <= 135


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "t.png")
    assert decode_image(tmp_path / "t.png", 10**8).pixels.min() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert decode_image(tmp_path / "r.jpg", 10**8).pixels.shape == (60, 20, 3)


def test_gif_gives_first_frame(tmp_path):
    frames = [Image.new("P", (10, 10), c) for c in (1, 2)]
    frames[0].putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    frames[1].putpalette(frames[0].getpalette())
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    px = decode_image(tmp_path / "a.gif", 10**8).pixels
    assert tuple(px[0, 0]) == (255, 0, 0)


def test_declared_size_over_limit_is_refused_before_decoding(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png_declaring(100_000, 100_000))
    with pytest.raises(DecodeError, match="exceeds the pixel limit"):
        decode_image(tmp_path / "bomb.png", 10**8)


@pytest.mark.parametrize("data,reason", [(b"", "not a recognised"), (b"\x00garbage" * 50, "not a recognised")])
def test_not_an_image(tmp_path, data, reason):
    (tmp_path / "x.jpg").write_bytes(data)
    with pytest.raises(DecodeError, match=reason):
        decode_image(tmp_path / "x.jpg", 10**8)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (10, 200, 30)).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DecodeError, match="cannot decode"):
        decode_image(tmp_path / "t.jpg", 10**8)


def test_reduced_jpeg_decode_keeps_source_scale(tmp_path):
    Image.new("RGB", (4000, 3000), (1, 2, 3)).save(tmp_path / "big.jpg")
    d = decode_image(tmp_path / "big.jpg", 10**8, max_side=1000)
    assert max(d.pixels.shape[:2]) >= 1000 and d.scale > 1
    assert d.size == (4000, 3000)


def test_large_png_is_box_reduced_with_its_scale(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2500, 4100, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.png")
    d = decode_image(tmp_path / "big.png", 10**8, max_side=1000)
    assert d.pixels.shape == (625, 1025, 3) and d.size == (4100, 2500)
    # each output pixel is the rounded mean of a 4x4 block
    assert abs(int(d.pixels[10, 20, 1]) - pixels[40:44, 80:84, 1].mean()) <= 0.5
    assert decode_image(tmp_path / "big.png", 10**8).pixels.shape == (2500, 4100, 3)
