import hashlib

import pytest

from facedist import models


def test_every_registry_entry_is_complete():
    for name, spec in models.EMBEDDERS.items():
        assert spec.name == name and spec.dim > 0 and spec.input_size > 0
        assert spec.weights.url or spec.weights.package
        assert spec.alignment in ("box", "dlib-chip") and spec.default_threshold > 0


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="dlib-resnet"):
        models.get_spec("nope")


def test_vendored_mtcnn_weights_match_their_sha256():
    for name, sha in models.MTCNN_SHA256.items():
        path = models.PACKAGE_WEIGHTS / f"{name}.safetensors"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert (models.PACKAGE_WEIGHTS / "LICENSE-facenet-pytorch.md").read_text().startswith("MIT")


def test_corrupted_weights_are_refused(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    with pytest.raises(models.WeightsUnavailable, match="does not match"):
        models._check_sha256(f, "0" * 64)
    # no registry hash: the hash recorded at download time is checked instead
    (tmp_path / "w.bin.sha256").write_text(hashlib.sha256(b"abc").hexdigest())
    models._check_sha256(f, None)
    f.write_bytes(b"abd")
    with pytest.raises(models.WeightsUnavailable):
        models._check_sha256(f, None)


def test_dlib_weights_found_without_importing_their_package():
    import sys

    path = models.resolve_weights(models.get_spec("dlib-resnet"))
    assert path.name == "dlib_face_recognition_resnet_model_v1.dat" and path.stat().st_size > 1e6
    assert "face_recognition_models" not in sys.modules


def test_weights_override_must_exist(tmp_path):
    with pytest.raises(models.WeightsUnavailable, match="no such file"):
        models.resolve_weights(models.get_spec("facenet-vggface2"), str(tmp_path / "nope.pt"))
