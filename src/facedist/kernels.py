"""kernels: MTCNN's hot loops on CPU, compiled by numba (cached on disk; the GIL is released, so
the detect workers run them in parallel). Each gives what the torch or NumPy code it replaces
gives, up to float32 rounding where said, else exactly.

- Area resampling (pyramid levels, R-/O-Net crops). The reference resizes with torch's "area"
  mode, a mean over integer windows [floor(i*n/m), ceil((i+1)*n/m)). Here each photo gets one
  integral image (exact integer sums of its uint8 pixels); then every level and every crop costs
  four lookups per output value instead of a pass over its window, and no float copy of the
  photo is made. Up to float32 rounding. Outputs are float32 [..., H, W, 3], normalized as MTCNN
  expects ((x - 127.5) / 128): as torch tensors permuted to NCHW they are channels_last.
- PReLU followed by max pooling, in one pass (exact).
- Greedy non-maximum suppression (exact).
"""
from __future__ import annotations

import numpy as np
import torch
from numba import njit

_BIG = 2**31 // 255  # more pixels than this could overflow int32 sums


def _compiled(function):
    """numba-compile `function` with the GIL released, cached on disk where numba finds a
    writable folder (next to this file, or in the user's cache); else compiled in each process
    that uses it (about 3 s)."""
    try:
        return njit(nogil=True, cache=True)(function)
    except RuntimeError:  # "no locator available": no writable cache folder
        return njit(nogil=True)(function)


def integral_image(image: np.ndarray) -> np.ndarray:
    """Inclusive prefix sums [H+1, W+1, 3] of an RGB uint8 image [H, W, 3] (int32, or int64 for
    very large images)."""
    h, w = image.shape[:2]
    table = np.empty((h + 1, w + 1, image.shape[2]), np.int64 if h * w > _BIG else np.int32)
    _fill_integral(image, table)
    return table


def area_resize(table: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The whole image area-resampled to size (h, w): float32 [h, w, 3], normalized."""
    out = np.empty((size[0], size[1], table.shape[2]), np.float32)
    _area_into(table, 0, table.shape[0] - 1, 0, table.shape[1] - 1, out)
    return out


def area_crops(table: np.ndarray, windows: np.ndarray, size: int) -> np.ndarray:
    """Windows [N, 4] (x0, y0, x1, y1; half-open, inside the image, non-empty) each resampled to
    size x size: float32 [N, size, size, 3], normalized."""
    out = np.empty((len(windows), size, size, table.shape[2]), np.float32)
    _crops_into(table, np.ascontiguousarray(windows, dtype=np.int64), out)
    return out


@_compiled
def _fill_integral(image, table):
    # RGB only: three running sums in registers make this ~5x faster than a channel loop
    h, w = image.shape[:2]
    table[0, :, :] = 0
    for y in range(h):
        table[y + 1, 0, :] = 0
        r = g = b = 0
        for x in range(w):
            r += image[y, x, 0]
            g += image[y, x, 1]
            b += image[y, x, 2]
            table[y + 1, x + 1, 0] = table[y, x + 1, 0] + r
            table[y + 1, x + 1, 1] = table[y, x + 1, 1] + g
            table[y + 1, x + 1, 2] = table[y, x + 1, 2] + b


@_compiled
def _area_into(table, y0, y1, x0, x1, out):
    h, w = out.shape[:2]
    ny = y1 - y0
    nx = x1 - x0
    xa = np.empty(w, np.int64)
    xb = np.empty(w, np.int64)
    for j in range(w):
        xa[j] = x0 + (j * nx) // w
        xb[j] = x0 + ((j + 1) * nx + w - 1) // w
    for i in range(h):
        ya = y0 + (i * ny) // h
        yb = y0 + ((i + 1) * ny + h - 1) // h
        top = table[ya]
        bottom = table[yb]
        for j in range(w):
            a = xa[j]
            b = xb[j]
            inv = 1.0 / ((yb - ya) * (b - a))
            for c in range(3):
                total = bottom[b, c] - top[b, c] - bottom[a, c] + top[a, c]
                out[i, j, c] = (np.float32(total * inv) - np.float32(127.5)) * np.float32(0.0078125)


@_compiled
def _crops_into(table, windows, out):
    for n in range(windows.shape[0]):
        _area_into(table, windows[n, 1], windows[n, 3], windows[n, 0], windows[n, 2], out[n])


def pooled_size(n: int, kernel: int, stride: int) -> int:
    """Output length of max pooling with ceil_mode=True and no padding, as torch computes it."""
    out = -(-(n - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= n else out


def prelu_max_pool(x: torch.Tensor, weight: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """max_pool2d(prelu(x, weight), kernel, stride, ceil_mode=True) in one pass, exactly equal,
    for a channels_last CPU tensor [N, C, H, W]. torch's PReLU and max-pool over the nets' widest
    maps cost 2-3x as much as this one pass."""
    nhwc = x.permute(0, 2, 3, 1).numpy()
    n, h, w, c = nhwc.shape
    out = np.empty((n, pooled_size(h, kernel, stride), pooled_size(w, kernel, stride), c), np.float32)
    _prelu_max_pool_into(nhwc, weight.detach().numpy().astype(np.float32), kernel, stride, out)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


@_compiled
def _prelu_max_pool_into(x, slopes, kernel, stride, out):
    # row by row, so that the channel loop runs over contiguous memory
    n, h, w, channels = x.shape
    oh, ow = out.shape[1:3]
    for b in range(n):
        for i in range(oh):
            pooled = out[b, i]
            pooled[:, :] = -np.inf
            for y in range(i * stride, min(i * stride + kernel, h)):
                row = x[b, y]
                for xx in range(w):
                    pixel = row[xx]
                    # the output columns whose window holds column xx
                    first = max(0, (xx - kernel + stride) // stride)
                    for j in range(first, min(xx // stride + 1, ow)):
                        best = pooled[j]
                        for c in range(channels):
                            v = pixel[c]
                            v = v if v > 0 else v * slopes[c]
                            best[c] = max(best[c], v)


def greedy_nms(boxes: np.ndarray, order: np.ndarray, threshold: float, use_min: bool,
               inclusive: bool) -> np.ndarray:
    """Greedy suppression over boxes [N, 4] visited in `order` (best first): indices kept.
    Overlap is IoU, or intersection over the smaller box with use_min; `inclusive` adds 1 to
    widths. Arithmetic stays in the boxes' dtype, as NumPy's would, so decisions are the same."""
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, i]) for i in range(4))
    kind = boxes.dtype.type
    return _greedy_nms(x1, y1, x2, y2, np.ascontiguousarray(order, dtype=np.int64),
                       kind(threshold), use_min, kind(1.0 if inclusive else 0.0), kind(1e-12))


@_compiled
def _greedy_nms(x1, y1, x2, y2, order, threshold, use_min, one, tiny):
    n = order.shape[0]
    zero = one - one
    area = (x2 - x1 + one) * (y2 - y1 + one)
    suppressed = np.zeros(n, np.bool_)
    keep = np.empty(n, np.int64)
    kept = 0
    for a in range(n):
        if suppressed[a]:
            continue
        i = order[a]
        keep[kept] = i
        kept += 1
        for b in range(a + 1, n):
            if suppressed[b]:
                continue
            j = order[b]
            iw = max(zero, min(x2[i], x2[j]) - max(x1[i], x1[j]) + one)
            ih = max(zero, min(y2[i], y2[j]) - max(y1[i], y1[j]) + one)
            inter = iw * ih
            denom = min(area[i], area[j]) if use_min else area[i] + area[j] - inter
            if inter / max(denom, tiny) > threshold:
                suppressed[b] = True
    return keep[:kept]


def warm_up() -> None:
    """Compile (or load from numba's disk cache) every kernel for the types the detector uses, so
    that a first run or a benchmark does not pay for compilation. `make install` calls this."""
    image = np.zeros((16, 16, 3), np.uint8)
    for pixels in (image, image.copy()):
        pixels.flags.writeable = pixels is not image  # decoded photos come read-only or not
        for wide in (np.int32, np.int64):  # int64 sums for photos over 8.4 megapixels
            table = np.empty((17, 17, 3), wide)
            _fill_integral(pixels, table)
            area_resize(table, (12, 12))
            area_crops(table, np.array([[0, 0, 16, 16]]), 24)
    for kernel, stride in ((2, 2), (3, 2)):
        prelu_max_pool(torch.zeros(1, 2, 6, 6).contiguous(memory_format=torch.channels_last),
                       torch.ones(2), kernel, stride)
    boxes = np.zeros((2, 4), np.float32)
    for use_min in (False, True):
        greedy_nms(boxes, np.arange(2), 0.5, use_min, use_min)


if __name__ == "__main__":
    warm_up()
