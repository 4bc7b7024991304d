"""Fuzz tests (Hypothesis), bounded for CI: decoding, discovery and settings parsing answer any
input with a result or their one documented exception, never anything else."""
from __future__ import annotations

import functools
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from PIL import Image

from facedist import config
from facedist.config import Settings, load_yaml
from facedist.decode import DecodedImage, DecodeError, decode_image
from facedist.discover import ImageFile, Rejected, discover_images, display_path

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seed_image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)).save(buf, format=fmt)
    return buf.getvalue()


SEEDS = {fmt: _seed_image(fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")}


def pixels_or_a_reason(data: bytes) -> DecodedImage | None:
    """The property of decoding: `data` gives RGB pixels (uint8, height x width x 3), or
    DecodeError with a one-line reason (None here); no warning either way, nothing else raised."""
    with warnings.catch_warnings(record=True) as said:  # nothing but the one-line reason
        warnings.simplefilter("always")
        try:
            img = decode_image(io.BytesIO(data), 10**7, 1024)
        except DecodeError as exc:
            assert str(exc) and "\n" not in str(exc)
            img = None
    assert not said, [str(w.message) for w in said]
    if img is not None:
        assert isinstance(img.pixels, np.ndarray) and img.pixels.dtype == np.uint8
        assert img.pixels.ndim == 3 and img.pixels.shape[2] == 3 and min(img.pixels.shape[:2]) >= 1
    return img


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_each_seed_image_decodes(fmt):
    """The damaged images start from images that decode: a decoder that refuses everything
    fails here, where the fuzz tests would accept its reasons."""
    img = pixels_or_a_reason(SEEDS[fmt])
    assert img is not None and img.pixels.shape == (48, 64, 3)


@BOUNDED
@given(fmt=st.sampled_from(sorted(SEEDS)), cuts=st.lists(st.tuples(st.integers(0, 4000),
                                                                     st.binary(max_size=8)),
                                                           max_size=6),
       keep=st.integers(0, 4000))
@example(fmt="PNG", cuts=[], keep=4000)  # undamaged: pixels, checked, every run
def test_decode_of_a_damaged_image_gives_pixels_or_a_reason(fmt, cuts, keep):
    data = bytearray(SEEDS[fmt])
    for at, junk in cuts:  # overwrite bytes here and there, then maybe cut the file short
        at %= max(1, len(data))
        data[at:at + len(junk)] = junk
    pixels_or_a_reason(bytes(data[:keep] if keep < len(data) else data))


@BOUNDED
@given(data=st.binary(max_size=2000))
@example(data=b"")  # a reason, checked every run
@example(data=SEEDS["PNG"])  # pixels, checked every run (random bytes hardly ever decode)
def test_decode_of_random_bytes_gives_pixels_or_a_reason(data):
    pixels_or_a_reason(data)


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


def settings_or_one_line(make) -> Settings | None:
    """The property of settings: make() gives settings each in its range, or raises ValueError
    with one line (None here)."""
    try:
        s = make()
    except ValueError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None
    assert s.k >= 1 and 0 < s.detect.factor < 1 and s.detect.min_face_size >= 12
    assert all(0 <= t <= 1 for t in s.detect.thresholds)
    for count in (s.embed_batch_size, s.decode_workers, s.chunk_images):  # None: the backend's
        assert count is None or count >= 1
    assert s.precision in ("fp32", "fp16")
    return s


@BOUNDED
@given(values=st.dictionaries(setting_keys, setting_values, max_size=5))
@example(values={"factor": 0.5, "k": 3})  # taken, checked every run
@example(values={"factor": float("nan")})  # refused (a checker that took it fails the ranges)
def test_settings_take_a_value_or_refuse_it_in_one_line(values):
    settings_or_one_line(lambda: Settings().update(values))


@BOUNDED
@given(text=st.text(max_size=200))
@example(text="factor: 0.5\nk: 3\n")  # taken, checked every run
@example(text="factor: .nan\n")  # refused (YAML's NaN)
@example(text="k: [\n")  # not YAML
def test_any_yaml_file_gives_settings_or_one_line(text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as fh:
        fh.write(text)
    try:
        settings_or_one_line(lambda: Settings().update(load_yaml(fh.name)))
    finally:
        os.unlink(fh.name)


def test_the_examples_are_taken_and_refused_as_they_say():
    """Each property's explicit examples cover both of its outcomes, so neither is unchecked."""
    assert settings_or_one_line(lambda: Settings().update({"factor": 0.5, "k": 3})) is not None
    with pytest.raises(ValueError):
        Settings().update({"factor": float("nan")})
    assert pixels_or_a_reason(b"") is None and pixels_or_a_reason(SEEDS["PNG"]) is not None


def _refusing(*_):
    raise DecodeError("not an image")


def _two_lines(*_):
    raise DecodeError("not an image\nat byte 0")


def _grey(*_):
    return DecodedImage(np.zeros((48, 64), np.uint8))


def _warning(*_):
    warnings.warn("corrupt EXIF data")
    return DecodedImage(np.zeros((48, 64, 3), np.uint8))


def _os_error(*_):
    raise OSError("broken data stream")


@pytest.mark.parametrize("decoder, fuzz_test", [
    (_refusing, functools.partial(test_each_seed_image_decodes, "PNG")),
    (_two_lines, test_decode_of_random_bytes_gives_pixels_or_a_reason),
    (_two_lines, test_decode_of_a_damaged_image_gives_pixels_or_a_reason),
    (_grey, test_decode_of_random_bytes_gives_pixels_or_a_reason),
    (_grey, test_decode_of_a_damaged_image_gives_pixels_or_a_reason),
    (_warning, test_decode_of_random_bytes_gives_pixels_or_a_reason),
    (_os_error, test_decode_of_random_bytes_gives_pixels_or_a_reason),
], ids=lambda v: getattr(v, "__name__", None) or getattr(getattr(v, "func", None), "__name__", ""))
def test_the_decode_fuzz_tests_fail_on_a_broken_decoder(monkeypatch, decoder, fuzz_test):
    """The properties above are real: a decoder that breaks one fails its test (on an explicit
    example, so at once and the same every run)."""
    monkeypatch.setattr(sys.modules[__name__], "decode_image", decoder)
    with pytest.raises((AssertionError, OSError)):
        fuzz_test()


def _two_line_refusal(*_):
    raise ValueError("a setting\nover two lines")


@pytest.mark.parametrize("module, name, broken, fuzz_test", [
    (config, "_checked", lambda key, value: value,  # takes every value unchecked
     test_settings_take_a_value_or_refuse_it_in_one_line),
    (config, "_checked", lambda key, value: value, test_any_yaml_file_gives_settings_or_one_line),
    (Settings, "update", _two_line_refusal, test_settings_take_a_value_or_refuse_it_in_one_line),
    (sys.modules[__name__], "load_yaml", _two_line_refusal,
     test_any_yaml_file_gives_settings_or_one_line),
], ids=["unchecked", "unchecked-yaml", "two-lines", "two-lines-yaml"])
def test_the_settings_fuzz_tests_fail_on_a_broken_checker(monkeypatch, module, name, broken,
                                                          fuzz_test):
    monkeypatch.setattr(module, name, broken)
    with pytest.raises(AssertionError):
        fuzz_test()
