"""Fuzz tests (Hypothesis), bounded for CI: decoding, discovery and settings parsing answer any
input with a result or their one documented exception, never anything else."""
from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from facedist.config import Settings, load_yaml
from facedist.decode import DecodeError, decode_image
from facedist.discover import ImageFile, Rejected, discover_images, display_path

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seed_image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)).save(buf, format=fmt)
    return buf.getvalue()


SEEDS = {fmt: _seed_image(fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")}


@BOUNDED
@given(fmt=st.sampled_from(sorted(SEEDS)), cuts=st.lists(st.tuples(st.integers(0, 4000),
                                                                     st.binary(max_size=8)),
                                                           max_size=6),
       keep=st.integers(0, 4000))
def test_decode_of_a_damaged_image_gives_pixels_or_a_reason(fmt, cuts, keep):
    data = bytearray(SEEDS[fmt])
    for at, junk in cuts:  # overwrite bytes here and there, then maybe cut the file short
        at %= max(1, len(data))
        data[at:at + len(junk)] = junk
    data = bytes(data[:keep] if keep < len(data) else data)
    with warnings.catch_warnings(record=True) as said:  # nothing but the one-line reason
        warnings.simplefilter("always")
        try:
            img = decode_image(io.BytesIO(data), 10**7, 1024)
        except DecodeError as exc:
            assert str(exc) and "\n" not in str(exc)
            img = None
    assert not said, [str(w.message) for w in said]
    if img is None:
        return
    assert img.pixels.dtype == np.uint8 and img.pixels.ndim == 3 and img.pixels.shape[2] == 3


@BOUNDED
@given(data=st.binary(max_size=2000))
def test_decode_of_random_bytes_gives_pixels_or_a_reason(data):
    try:
        decode_image(io.BytesIO(data), 10**7, 1024)
    except DecodeError as exc:
        assert str(exc) and "\n" not in str(exc)


name_bytes = st.binary(min_size=1, max_size=60).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


@BOUNDED
@given(names=st.lists(name_bytes, min_size=1, max_size=8, unique=True),
       ext=st.sampled_from([b".jpg", b".PNG", b".txt", b"", b".jpeg"]))
def test_discovery_lists_any_file_names_in_order(names, ext):
    with tempfile.TemporaryDirectory() as root:
        made = []
        for name in names:
            path = os.path.join(os.fsencode(root), name + ext)
            if os.path.exists(path):
                continue
            with open(path, "wb") as fh:
                fh.write(b"x")
            made.append(os.fsdecode(path))
        found = list(discover_images(Path(root)))
        assert all(isinstance(f, (ImageFile, Rejected)) for f in found)
        paths = [str(f.path) for f in found]
        assert paths == sorted(paths)
        want = {p for p in made if not os.path.basename(p).startswith(".")
                and os.path.splitext(p)[1].lower() in (".jpg", ".png", ".jpeg")}
        assert set(paths) == want
        for p in paths:  # every name has a readable, one-line-safe UTF-8 form
            display_path(p).encode("utf-8")


setting_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                           st.floats(allow_nan=True), st.text(max_size=12),
                           st.lists(st.floats(allow_nan=False), max_size=4))
setting_keys = st.sampled_from(
    ["k", "factor", "thresholds", "min-face-size", "max_side", "views", "threshold", "faces",
     "embed-batch-size", "decode_workers", "chunk-images", "max-pixels", "exact", "recluster",
     "model", "precision", "people-threshold", "sample-interval", "matrix-max-faces", "wait",
     "nonsense"])


@BOUNDED
@given(values=st.dictionaries(setting_keys, setting_values, max_size=5))
def test_settings_take_a_value_or_refuse_it_in_one_line(values):
    try:
        s = Settings().update(values)
    except ValueError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert s.k >= 1 and 0 < s.detect.factor < 1 and s.detect.min_face_size >= 12
    assert all(0 <= t <= 1 for t in s.detect.thresholds)
    for count in (s.embed_batch_size, s.decode_workers, s.chunk_images):  # None: the backend's
        assert count is None or count >= 1
    assert s.precision in ("fp32", "fp16")


@BOUNDED
@given(text=st.text(max_size=200))
def test_any_yaml_file_gives_settings_or_one_line(text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as fh:
        fh.write(text)
    try:
        Settings().update(load_yaml(fh.name))
    except ValueError as exc:
        assert "\n" not in str(exc)
    finally:
        os.unlink(fh.name)


def test_fuzz_tests_can_fail():
    """The properties above are real: a value they must refuse is refused."""
    with pytest.raises(ValueError):
        Settings().update({"factor": float("nan")})
