"""The three MTCNN networks (Zhang et al. 2016) with facenet-pytorch's parameter names.

The parameter names match the vendored weights (weights/{pnet,rnet,onet}.safetensors), so they load
with strict=True. Dense layers see their input flattened in (W, H, C) order, as the original
Caffe/TensorFlow weights expect.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..kernels import prelu_max_pool


def _flatten_whc(x: torch.Tensor) -> torch.Tensor:
    # The weights were trained on a W-major flattening; keep it or the dense layers see noise.
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


def max_pool_2x2_ceil(x: torch.Tensor) -> torch.Tensor:
    """nn.MaxPool2d(2, 2, ceil_mode=True) as the max of strided slices: exactly the same output,
    3x faster than torch's kernel on P-Net's large, 10-channel maps."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def prelu_pool(x: torch.Tensor, prelu: nn.PReLU, kernel: int, stride: int) -> torch.Tensor:
    """PReLU then max pooling (ceil mode). On CPU in channels_last, one fused pass (see kernels);
    otherwise, and so in the exact mode (NCHW), torch's own ops, as the reference runs them."""
    if x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last):
        return prelu_max_pool(x, prelu.weight, kernel, stride)
    x = prelu(x)
    if kernel == 2 and stride == 2:
        return max_pool_2x2_ceil(x)
    return F.max_pool2d(x, kernel, stride, ceil_mode=True)


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 receptive field, stride 2.

    forward(x) -> (box regression [N,4,H',W'], face probability [N,H',W'])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = prelu_pool(self.conv1(x), self.prelu1, 2, 2)
        return self._heads(self.prelu3(self.conv3(self.prelu2(self.conv2(x)))))

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both 1x1 heads as one convolution (6 output channels): the same values, and on CPU
        half the time of two passes over the 32-channel map (3.5 -> 1.6 ms on a 1024 px
        photo's first level)."""
        heads = F.conv2d(x, torch.cat([self.conv4_1.weight, self.conv4_2.weight]),
                         torch.cat([self.conv4_1.bias, self.conv4_2.bias]))
        return heads[:, 2:], torch.softmax(heads[:, :2], dim=1)[:, 1]

    def forward_padded(self, x: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` over a batch of pyramid levels zero-padded to one size; sizes [N, 2] holds
        each level's own (h, w). Each level's first ceil((h - 2) / 2) - 4 rows (and likewise
        columns) of output are those `forward` gives on the level alone: the padding is masked
        out of the first pooling, whose ceil mode pools a partial window at a level's edge,
        and zeroed after it (finite, so that no convolution algorithm spreads it)."""
        x = self.prelu1(self.conv1(x))
        rows, cols = sizes[:, 0] - 2, sizes[:, 1] - 2
        x = x.masked_fill(~_inside(x, rows, cols), float("-inf"))
        x = max_pool_2x2_ceil(x)
        x = x.masked_fill(~_inside(x, (rows + 1) // 2, (cols + 1) // 2), 0.0)
        return self._heads(self.prelu3(self.conv3(self.prelu2(self.conv2(x)))))


def _inside(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W]: whether each position of x [N, C, H, W] is in its map's first rows x cols."""
    r = torch.arange(x.shape[2], device=x.device)[None, :, None] < rows[:, None, None]
    c = torch.arange(x.shape[3], device=x.device)[None, None, :] < cols[:, None, None]
    return (r & c)[:, None]


class RNet(nn.Module):
    """Refinement net on 24x24 crops. forward(x) -> (box regression [N,4], probability [N])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = prelu_pool(self.conv1(x), self.prelu1, 3, 2)
        x = prelu_pool(self.conv2(x), self.prelu2, 3, 2)
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_whc(x)))
        prob = torch.softmax(self.dense5_1(x), dim=1)[:, 1]
        return self.dense5_2(x), prob


class ONet(nn.Module):
    """Output net on 48x48 crops.

    forward(x) -> (box regression [N,4], landmarks [N,10] as x1..x5,y1..y5, probability [N])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = prelu_pool(self.conv1(x), self.prelu1, 3, 2)
        x = prelu_pool(self.conv2(x), self.prelu2, 3, 2)
        x = prelu_pool(self.conv3(x), self.prelu3, 2, 2)
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_whc(x)))
        prob = torch.softmax(self.dense6_1(x), dim=1)[:, 1]
        return self.dense6_2(x), self.dense6_3(x), prob
