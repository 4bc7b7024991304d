"""InceptionResnetV1 (Szegedy et al. 2017) as used by FaceNet, 160x160 RGB in, 512-d unit vector out.

Module and parameter names follow facenet-pytorch's implementation exactly, so the released
VGGFace2 / CASIA-WebFace state_dicts load with strict=True (their classifier head `logits` included
when the state_dict has one).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

# A branch is a list of convolutions: (out_channels, kernel, stride, padding).
Conv = tuple[int, "int | tuple[int, int]", int, "int | tuple[int, int]"]


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (TensorFlow's eps), ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _branch(cin: int, convs: Sequence[Conv]) -> nn.Module:
    layers = []
    for cout, kernel, stride, padding in convs:
        layers.append(BasicConv2d(cin, cout, kernel, stride, padding))
        cin = cout
    # A one-conv branch is stored bare (branch0.conv.*), longer ones as Sequential (branch1.0.conv.*).
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class _Inception(nn.Module):
    """Parallel branches concatenated on channels; `pool=True` adds a 3x3/2 max-pool branch."""

    def __init__(self, cin: int, branches: Sequence[Sequence[Conv]], pool: bool = False) -> None:
        super().__init__()
        self.n = len(branches) + int(pool)
        for i, convs in enumerate(branches):
            setattr(self, f"branch{i}", _branch(cin, convs))
        if pool:
            setattr(self, f"branch{len(branches)}", nn.MaxPool2d(3, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], 1)


class _ResidualInception(_Inception):
    """Inception branches, a 1x1 projection back to `cin` channels, scaled residual add, ReLU."""

    def __init__(self, cin: int, branches: Sequence[Sequence[Conv]], scale: float, relu: bool = True):
        super().__init__(cin, branches)
        self.conv2d = nn.Conv2d(sum(b[-1][0] for b in branches), cin, 1)
        self.scale = scale
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2d(super().forward(x)) * self.scale + x
        return F.relu(out) if self.relu else out


def block35(scale: float = 0.17) -> _ResidualInception:
    return _ResidualInception(256, [
        [(32, 1, 1, 0)],
        [(32, 1, 1, 0), (32, 3, 1, 1)],
        [(32, 1, 1, 0), (32, 3, 1, 1), (32, 3, 1, 1)],
    ], scale)


def block17(scale: float = 0.10) -> _ResidualInception:
    return _ResidualInception(896, [
        [(128, 1, 1, 0)],
        [(128, 1, 1, 0), (128, (1, 7), 1, (0, 3)), (128, (7, 1), 1, (3, 0))],
    ], scale)


def block8(scale: float = 0.20, relu: bool = True) -> _ResidualInception:
    return _ResidualInception(1792, [
        [(192, 1, 1, 0)],
        [(192, 1, 1, 0), (192, (1, 3), 1, (0, 1)), (192, (3, 1), 1, (1, 0))],
    ], scale, relu)


class InceptionResnetV1(nn.Module):
    """FaceNet's embedder. Input: [N,3,160,160] float, standardized (x-127.5)/128.

    Output: [N,512] L2-normalized embeddings. `num_classes` adds the training classifier head
    (`logits`), present in the released weight files; it is loaded but never used for embeddings.
    """

    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.conv2d_4b = BasicConv2d(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*[block35() for _ in range(5)])
        self.mixed_6a = _Inception(256, [
            [(384, 3, 2, 0)],
            [(192, 1, 1, 0), (192, 3, 1, 1), (256, 3, 2, 0)],
        ], pool=True)
        self.repeat_2 = nn.Sequential(*[block17() for _ in range(10)])
        self.mixed_7a = _Inception(896, [
            [(256, 1, 1, 0), (384, 3, 2, 0)],
            [(256, 1, 1, 0), (256, 3, 2, 0)],
            [(256, 1, 1, 0), (256, 3, 1, 1), (256, 3, 2, 0)],
        ], pool=True)
        self.repeat_3 = nn.Sequential(*[block8() for _ in range(5)])
        self.block8 = block8(scale=1.0, relu=False)
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=0.001)
        if num_classes:
            self.logits = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool_3a(self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x))))
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(x)))
        x = self.repeat_1(x)
        x = self.repeat_2(self.mixed_6a(x))
        x = self.block8(self.repeat_3(self.mixed_7a(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        x = self.last_bn(self.last_linear(x))
        return F.normalize(x, p=2, dim=1)
