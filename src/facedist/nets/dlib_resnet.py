"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1) in PyTorch.

The layout is dlib's `anet_type` from its dnn_face_recognition_ex.cpp: a 7x7/2 convolution and 3x3/2
max-pool, 14 residual blocks of two 3x3 convolutions each (29 convolutions in all, with
dlib's affine layers where training had batch norm), global average pooling and a 128-d linear
layer without bias. dlib's conventions kept here: convolutions with stride 2 have no padding;
a downsampling block adds its 2x2/2 average-pooled input, zero-padded in channels and in space
where the two sizes differ (dlib's add_prev).

`read_dlib_dat` reads the weights straight from dlib's serialized `.dat` file (no dlib needed):
tensors there are a small header of dlib-encoded integers followed by raw little-endian float32.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# dlib's input_rgb_image defaults: (pixel - mean) / 256, channels R, G, B.
INPUT_MEAN = (122.782, 117.001, 104.298)
INPUT_SCALE = 256.0

# (in channels, out channels, downsample) for the 14 residual blocks, input side first.
BLOCKS = ([(32, 32, False)] * 3 + [(32, 64, True)] + [(64, 64, False)] * 3 + [(64, 128, True)]
          + [(128, 128, False)] * 2 + [(128, 256, True)] + [(256, 256, False)] * 2
          + [(256, 256, True)])


class Affine(nn.Module):
    """dlib's affine layer: per-channel gamma * x + beta (a frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta.view(1, -1, 1, 1), x, self.gamma.view(1, -1, 1, 1))


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b, each zero-padded (channels, bottom, right) to the larger size: dlib's add_prev."""
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t):
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.affine2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)), inplace=True)))
        if self.down:
            return F.relu(_add_padded(out, F.avg_pool2d(x, 2)), inplace=True)
        return F.relu(out.add_(x), inplace=True)


class DlibResNet(nn.Module):
    """Input: [N, 3, 150, 150] float RGB 0..255 (dlib's 150x150 face chips). Output: [N, 128]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, stride=2)
        self.affine = Affine(32)
        self.blocks = nn.Sequential(*[ResidualBlock(*b) for b in BLOCKS])
        self.fc = nn.Linear(256, 128, bias=False)
        self.register_buffer("mean", torch.tensor(INPUT_MEAN).view(1, 3, 1, 1))
        self.folded = False  # see fold()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.folded:
            x = (x - self.mean) / INPUT_SCALE
        x = F.max_pool2d(F.relu(self.affine(self.conv(x)), inplace=True), 3, stride=2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    @torch.no_grad()
    def fold(self) -> "DlibResNet":
        """This network for inference, in place: each affine layer folded into the convolution
        before it, and the input's normalization into the first convolution (exact: it has no
        padding). The same outputs to float rounding, with 31 fewer passes over the activations
        (about 15% of the time on CPU). Load the weights first: the affine layers are gone."""
        if self.folded:
            return self
        first = self.conv
        first.weight /= INPUT_SCALE  # conv((x - mean) / scale) = conv'(x) - conv'(mean) + bias
        first.bias -= (first.weight * self.mean).sum((1, 2, 3))
        pairs = [(self, "conv", "affine")] + [(b, f"conv{j}", f"affine{j}")
                                              for b in self.blocks for j in (1, 2)]
        for owner, conv_name, affine_name in pairs:
            conv, affine = getattr(owner, conv_name), getattr(owner, affine_name)
            conv.weight *= affine.gamma.view(-1, 1, 1, 1)
            conv.bias.mul_(affine.gamma).add_(affine.beta)
            setattr(owner, affine_name, nn.Identity())
        self.folded = True
        return self


# -- reading dlib's .dat -----------------------------------------------------------------------

def _read_int(buf: bytes, pos: int) -> tuple[int, int]:
    """dlib's integer encoding: a byte with the length (low 4 bits) and sign (0x80), then the
    magnitude's bytes, little-endian."""
    head = buf[pos]
    size = head & 0x0F
    value = int.from_bytes(buf[pos + 1:pos + 1 + size], "little")
    return (-value if head & 0x80 else value), pos + 1 + size


def _read_tensor(buf: bytes, pos: int) -> np.ndarray:
    version, pos = _read_int(buf, pos)
    if version != 2:
        raise ValueError(f"unsupported dlib tensor version {version}")
    dims = []
    for _ in range(4):
        d, pos = _read_int(buf, pos)
        dims.append(d)
    return np.frombuffer(buf, dtype="<f4", count=int(np.prod(dims)), offset=pos).astype(np.float32)


def read_dlib_dat(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict of DlibResNet from dlib_face_recognition_resnet_model_v1.dat."""
    buf = Path(path).read_bytes()
    # Layers are stored input side first; each starts with its (length-prefixed) version string.
    convs = [_read_tensor(buf, m.end()) for m in re.finditer(rb"\x05con_[45]", buf)]
    affines = [_read_tensor(buf, m.end()) for m in re.finditer(rb"\x07affine_", buf)]
    fc = re.search(rb"\x04fc_2", buf)
    if len(convs) != 29 or len(affines) != 29 or fc is None:
        raise ValueError(f"{path}: not dlib's face recognition ResNet v1 "
                         f"({len(convs)} convolutions, {len(affines)} affine layers)")
    _, pos = _read_int(buf, fc.end())  # num_outputs
    _, pos = _read_int(buf, pos)  # num_inputs
    fc_w = _read_tensor(buf, pos).reshape(256, 128)

    model = DlibResNet()
    names = [("conv", "affine")] + [(f"blocks.{i}.conv{j}", f"blocks.{i}.affine{j}")
                                    for i in range(len(BLOCKS)) for j in (1, 2)]
    state = {"mean": model.mean.clone(), "fc.weight": torch.from_numpy(fc_w.T.copy())}
    shapes = model.state_dict()
    for (conv, affine), cp, ap in zip(names, convs, affines):
        w_shape = shapes[f"{conv}.weight"].shape
        n_w = int(np.prod(w_shape))
        state[f"{conv}.weight"] = torch.from_numpy(cp[:n_w].reshape(w_shape).copy())
        state[f"{conv}.bias"] = torch.from_numpy(cp[n_w:].copy())
        half = len(ap) // 2
        state[f"{affine}.gamma"] = torch.from_numpy(ap[:half].copy())
        state[f"{affine}.beta"] = torch.from_numpy(ap[half:].copy())
    return state
