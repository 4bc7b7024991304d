import bz2
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


def _bz2_source(tmp_path, data: bytes, sha256: str | None, package: str | None = None):
    served = tmp_path / "served" / "model.dat.bz2"
    served.parent.mkdir()
    served.write_bytes(bz2.compress(data))
    return models.WeightsSource("model.dat", url=served.as_uri(), package=package,
                                sha256=sha256, compressed="bz2")


def test_a_compressed_download_lands_unpacked_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    data = bytes(range(256)) * 4000
    source = _bz2_source(tmp_path, data, hashlib.sha256(data).hexdigest(),
                         package="no_such_package_here")
    path = models.resolve_file(source, "some-model")
    assert path == tmp_path / "cache" / "weights" / "model.dat" and path.read_bytes() == data
    # a second resolve uses the cache's copy, checked again: a damaged copy is refused
    path.write_bytes(data[:-1] + b"x")
    with pytest.raises(models.WeightsUnavailable, match="does not match"):
        models.resolve_file(source, "some-model")


def test_a_download_with_the_wrong_hash_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    source = _bz2_source(tmp_path, b"not the model", "0" * 64)
    with pytest.raises(models.WeightsUnavailable, match="nothing was kept"):
        models.resolve_file(source, "some-model")
    assert not any((tmp_path / "cache" / "weights").iterdir())


def test_offline_a_missing_file_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FACEDIST_OFFLINE", "1")
    source = _bz2_source(tmp_path, b"x", None)
    with pytest.raises(models.WeightsUnavailable, match="facedist weights fetch some-model"):
        models.resolve_file(source, "some-model")


def test_the_package_copy_comes_before_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    [pnet] = [f for f in models.MTCNN_FILES if f.filename.endswith("pnet.safetensors")]
    assert models.resolve_file(pnet, "mtcnn") == models.PACKAGE_WEIGHTS / "pnet.safetensors"


def test_weights_status_lists_every_models_files(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    rows = models.weights_status()
    assert {r.model for r in rows} == {"mtcnn", *models.EMBEDDERS}
    by_model = {}
    for r in rows:
        by_model.setdefault(r.model, []).append(r)
    assert [r.where for r in by_model["mtcnn"]] == ["package facedist"] * 3
    assert {r.source.filename for r in by_model["dlib-resnet"]} == {
        "dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"}
    # nothing downloaded here, and an empty cache: FaceNet's weights are missing
    assert [r.where for r in by_model["facenet-vggface2"]] == ["missing"]
    assert by_model["facenet-vggface2"][0].path is None
    # every dlib file has a download source and a registry hash
    for r in by_model["dlib-resnet"]:
        assert r.source.url.endswith(".bz2") and len(r.source.sha256) == 64
