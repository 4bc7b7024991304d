import pytest
import numpy as np
import torch

from conftest import LABELED
from facedist.embed import build_embedder
from facedist.models import get_spec, resolve_weights
from facedist.nets.dlib_resnet import DlibResNet, _add_padded, _read_int, read_dlib_dat


def test_dlib_integer_encoding():
    assert _read_int(bytes([0x01, 0x02]), 0) == (2, 2)
    assert _read_int(bytes([0x02, 0x00, 0x01]), 0) == (256, 3)
    assert _read_int(bytes([0x81, 0x05]), 0) == (-5, 2)
    assert _read_int(bytes([0x00]), 0) == (0, 1)


def test_add_prev_pads_channels_and_space():
    a = torch.ones(1, 4, 3, 3)
    b = torch.ones(1, 2, 4, 4)
    out = _add_padded(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, 0, 0, 0] == 2 and out[0, 3, 0, 0] == 1 and out[0, 0, 3, 3] == 1 and out[0, 3, 3, 3] == 0


def test_weights_read_from_dat_load_strictly():
    state = read_dlib_dat(resolve_weights(get_spec("dlib-resnet")))
    model = DlibResNet()
    model.load_state_dict(state, strict=True)
    assert state["conv.weight"].shape == (32, 3, 7, 7) and state["fc.weight"].shape == (128, 256)


def test_folded_network_gives_the_same_embeddings():
    """fold(): affine layers and the input's normalization inside the convolutions, the same
    outputs; the embedder runs the folded network."""
    torch.manual_seed(0)
    model = DlibResNet().eval()
    with torch.no_grad():  # affine layers far from identity, as trained ones are
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.2, 3.0)
            elif name.endswith("beta"):
                p.normal_(0, 1)
    x = torch.rand(3, 3, 150, 150) * 255
    with torch.inference_mode():
        want = model(x)
        got = model.fold()(x)
    assert model.folded and not any("affine" in n and "gamma" in n for n, _ in model.named_parameters())
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    assert model.fold() is model  # folding twice changes nothing
    with torch.inference_mode():
        assert torch.equal(model(x), got)
    embedder = build_embedder(get_spec("dlib-resnet"), device="cpu")
    assert embedder.model.folded


@pytest.mark.slow  # the shared photos or golden data
def test_port_matches_dlib_on_the_same_chips(tmp_path, monkeypatch):
    """cosine >= 0.9999 against dlib's own network on real face chips."""
    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path))  # converts afresh into an empty cache
    from facedist.align import DlibChipAligner
    from facedist.config import DetectSettings
    from facedist.decode import decode_image
    from facedist.detect import MtcnnDetector

    det, aligner = MtcnnDetector(DetectSettings()), DlibChipAligner()
    chips = []
    for path in sorted((LABELED / "people").glob("*/*"))[:8]:
        img = decode_image(path, 10**9)
        chips.append(aligner.align(img.pixels, det.detect(img.pixels)[:1])[:, 0])
    chips = np.concatenate(chips)
    ours = build_embedder(get_spec("dlib-resnet"), device="cpu").embed_batch(chips)
    theirs = build_embedder(get_spec("dlib-resnet-native"), device="cpu").embed_batch(chips)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.9999, cos
    assert np.abs(ours - theirs).max() < 1e-4
    assert list(tmp_path.glob("weights/dlib_resnet_v1-*.safetensors"))  # cached for next time
