import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import GOLDEN
from facedist.embed import FacenetEmbedder, build_embedder
from facedist.models import WeightsUnavailable, get_spec
from facedist.nets.inception_resnet_v1 import InceptionResnetV1


def reference():
    return json.loads((GOLDEN / "facenet" / "facenet_reference.json").read_text())


@pytest.mark.slow  # the shared photos or golden data
def test_state_dict_layout_matches_reference():
    shapes = {k: list(v.shape) for k, v in InceptionResnetV1().state_dict().items()}
    assert shapes == reference()["state_dict_shapes"]


@pytest.mark.slow  # the shared photos or golden data
def test_parity_with_reference_inception_resnet(tmp_path):
    sys.path.insert(0, str(GOLDEN))
    from synthetic_weights import synthetic_state_dict

    ref = reference()
    state = synthetic_state_dict(ref["state_dict_shapes"])
    # Released weight files carry the classifier head too; it must load strictly and be ignored.
    state["logits.weight"] = torch.zeros(7, 512)
    state["logits.bias"] = torch.zeros(7)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    emb = FacenetEmbedder(get_spec("facenet-vggface2"), path, torch.device("cpu"))
    crops = np.stack([np.asarray(Image.open(GOLDEN / "facenet" / c["crop"]).convert("RGB"))
                      for c in ref["crops"]])
    out = emb.embed_batch(crops)
    want = np.load(GOLDEN / "facenet" / "embeddings_synthetic.npy")
    assert out.shape == want.shape
    assert np.abs(out - want).max() <= 1e-4


def test_missing_facenet_weights_stop_with_both_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path))
    monkeypatch.setenv("FACEDIST_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as err:
        build_embedder(get_spec("facenet-vggface2"))
    msg = str(err.value)
    assert "20180402-114759-vggface2.pt" in msg and "--weights" in msg and "download" in msg


def test_synthetic_weights_are_deterministic():
    spec = get_spec("facenet-vggface2")
    crops = np.random.default_rng(1).integers(0, 255, (2, 160, 160, 3), dtype=np.uint8)
    a = FacenetEmbedder(spec, "synthetic", torch.device("cpu")).embed_batch(crops)
    b = FacenetEmbedder(spec, "synthetic", torch.device("cpu")).embed_batch(crops)
    assert np.array_equal(a, b) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("name", ["dlib-resnet", "dlib-resnet-native"])
def test_dlib_embedders_give_128d(name):
    emb = build_embedder(get_spec(name), device="cpu")
    chips = np.random.default_rng(2).integers(0, 255, (3, 150, 150, 3), dtype=np.uint8)
    out = emb.embed_batch(chips)
    assert out.shape == (3, 128) and out.dtype == np.float32
    assert emb.embed_batch(chips[:0]).shape == (0, 128)


def _parity_crops() -> np.ndarray:
    ref = reference()
    return np.stack([np.asarray(Image.open(GOLDEN / "facenet" / c["crop"]).convert("RGB"))
                     for c in ref["crops"]])


@pytest.mark.slow  # the shared photos or golden data
def test_embedding_never_runs_in_tf32(tf32_on):
    """TF32 moved embeddings to cosine 0.966 on a GPU: the network must see it off."""
    from facedist.backend import tf32_enabled

    emb = FacenetEmbedder(get_spec("facenet-vggface2"), "synthetic", torch.device("cpu"))
    seen = []
    emb.model.register_forward_pre_hook(lambda *_: seen.append(tf32_enabled()))
    emb.embed_batch(_parity_crops()[:2])
    assert seen == [False] and tf32_enabled()


@pytest.mark.slow  # the shared photos or golden data
@pytest.mark.parametrize("name", ["dlib-resnet", "facenet-vggface2"])
def test_half_precision_embeddings_stay_within_cosine_0_9999(name):
    """precision fp16 (offered on GPUs only) run here on CPU tensors: the same embeddings up to
    cosine 0.9999, on real face crops (the device check measures it on the GPU)."""
    spec = get_spec(name)
    crops = np.stack([np.asarray(Image.fromarray(c).resize((spec.input_size,) * 2))
                      for c in _parity_crops()])
    emb = build_embedder(spec, "synthetic" if name.startswith("facenet") else None, "cpu")
    full = emb.embed_batch(crops)
    emb.use_dtype(torch.float16)
    half = emb.embed_batch(crops)
    assert half.dtype == np.float32
    cos = (full * half).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert cos.min() >= 0.9999, cos.min()
