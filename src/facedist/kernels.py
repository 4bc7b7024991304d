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
- Greedy non-maximum suppression (exact), each box compared only with the boxes near it.
"""
from __future__ import annotations

import numpy as np
import torch
from .jit import compiled as _compiled

# Integral images are kept modulo 2**32 (uint32, wrapping): the sum over any window whose true
# sum is under 2**32 (at most WRAP_SAFE_PIXELS pixels) comes out exact from wrapped corners. Every
# window read here is one output pixel's bin, far smaller; int64 tables took 480 MB per 20 Mpx photo.
WRAP_SAFE_PIXELS = 2**32 // 255


def integral_image(image: np.ndarray) -> np.ndarray:
    """Inclusive prefix sums [H+1, W+1, 3] of an RGB uint8 image [H, W, 3], modulo 2**32
    (uint32): a window's sum is its four corners' signed sum masked to 32 bits."""
    h, w = image.shape[:2]
    table = np.empty((h + 1, w + 1, image.shape[2]), np.uint32)
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
                # modulo 2**32, as the table: exact, the bin's true sum being smaller
                total = (np.int64(bottom[b, c]) - np.int64(top[b, c]) - np.int64(bottom[a, c])
                         + np.int64(top[a, c])) & 0xFFFFFFFF
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
    nhwc = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
    n, h, w, c = nhwc.shape
    out = np.empty((n, pooled_size(h, kernel, stride), pooled_size(w, kernel, stride), c), np.float32)
    slopes = weight.detach().numpy().astype(np.float32)
    if kernel == 2 and stride == 2:
        _prelu_max_pool_2x2_into(nhwc, slopes, out)
    else:
        _prelu_max_pool_into(nhwc, slopes, kernel, stride, out)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


@_compiled
def _prelu_max_pool_2x2_into(x, slopes, out):
    # P-Net's pool over its largest map: PReLU on a pair of rows as one flat run (this loop
    # vectorizes), then the max of neighbouring pixels: 10x faster than the general loop below,
    # the same products and maxima. (Written for 2x2 only: a general kernel in this form
    # measured 1.5-3x slower than the loop below on R- and O-Net's 3x3 pools.)
    n, h, w, channels = x.shape
    ow = out.shape[2]
    width = w * channels
    slope = np.empty(width, np.float32)
    for k in range(width):
        slope[k] = slopes[k % channels]
    rows_max = np.empty(width, np.float32)
    for b in range(n):
        rows = x[b].reshape(h, width)
        for i in range(out.shape[1]):
            top = rows[2 * i]
            if 2 * i + 1 < h:
                bottom = rows[2 * i + 1]
                for k in range(width):
                    u = top[k] if top[k] > 0 else top[k] * slope[k]
                    v = bottom[k] if bottom[k] > 0 else bottom[k] * slope[k]
                    rows_max[k] = max(u, v)
            else:
                for k in range(width):
                    rows_max[k] = top[k] if top[k] > 0 else top[k] * slope[k]
            pooled = out[b, i]
            for j in range(w // 2):
                left = 2 * j * channels
                for c in range(channels):
                    pooled[j, c] = max(rows_max[left + c], rows_max[left + channels + c])
            if w % 2:  # ceil mode: the last column pools alone
                for c in range(channels):
                    pooled[ow - 1, c] = rows_max[(w - 1) * channels + c]


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
    # the grid needs finite boxes, and a threshold that overlap 0 never exceeds
    grid = len(boxes) > 0 and threshold >= 0 and bool(np.isfinite(boxes[:, :4]).all())
    return _greedy_nms(x1, y1, x2, y2, np.ascontiguousarray(order, dtype=np.int64),
                       kind(threshold), use_min, kind(1.0 if inclusive else 0.0), kind(1e-12), grid)


@_compiled
def _span(low_edge, high_edge, origin, cell, count):
    """Grid cells [start, stop) along one axis that hold corners in [low_edge, high_edge]."""
    if count == 1:
        return 0, 1
    start = int(max(0.0, (low_edge - origin) / cell))
    stop = int(max(0.0, min(count - 1.0, (high_edge - origin) / cell))) + 1
    return min(start, count - 1), stop


@_compiled
def _greedy_nms(x1, y1, x2, y2, order, threshold, use_min, one, tiny, grid):
    # Boxes that do not intersect never suppress each other (overlap 0 is not over a threshold
    # >= 0), so a kept box is compared only with boxes whose corners lie near it. Boxes are
    # filed by size class (sides up to 2^k) in grids of cells a little over 2^k wide; a box of
    # class k that meets box a has its corner less than one cell left of or above a's. The
    # decisions are those of the all-pairs loop: a full-resolution photo has 10^4-10^5
    # proposals of sizes from 12 px to the whole photo, where all pairs took seconds.
    n = order.shape[0]
    zero = one - one
    area = (x2 - x1 + one) * (y2 - y1 + one)
    classes = 1
    size_class = np.zeros(n, np.int64)
    low_x, low_y, high_x, high_y = np.inf, np.inf, -np.inf, -np.inf
    if grid:
        for a in range(n):
            i = order[a]
            side = max(1.0, float(x2[i] - x1[i] + one), float(y2[i] - y1[i] + one))
            size_class[a] = min(62, int(np.ceil(np.log2(side))))
            classes = max(classes, size_class[a] + 1)
            low_x, low_y = min(low_x, float(x1[i])), min(low_y, float(y1[i]))
            high_x, high_y = max(high_x, float(x1[i])), max(high_y, float(y1[i]))
    # per class: cell width (slack for float32 rounding), columns, rows, first cell
    members_per_class = np.zeros(classes, np.int64)
    for a in range(n):
        members_per_class[size_class[a]] += 1
    cell = np.empty(classes)
    cols = np.ones(classes, np.int64)
    rows = np.ones(classes, np.int64)
    first = np.zeros(classes + 1, np.int64)
    for k in range(classes):
        cell[k] = 2.0 ** k * 1.001 + 1.0
        if grid and members_per_class[k] > 0:
            # far-flung boxes: coarser cells, so that empty cells stay fewer than boxes
            limit = 4.0 * members_per_class[k] + 64.0
            while ((high_x - low_x) / cell[k] + 1.0) * ((high_y - low_y) / cell[k] + 1.0) > limit:
                cell[k] *= 2.0
            cols[k] = int((high_x - low_x) / cell[k]) + 1
            rows[k] = int((high_y - low_y) / cell[k]) + 1
        first[k + 1] = first[k] + cols[k] * rows[k]
    # boxes filed by cell (counting sort), visiting positions ascending within a cell
    home = np.empty(n, np.int64)
    starts = np.zeros(first[classes] + 1, np.int64)
    for a in range(n):
        k, i = size_class[a], order[a]
        c0, c1 = _span(float(x1[i]), float(x1[i]), low_x, cell[k], cols[k])
        r0, r1 = _span(float(y1[i]), float(y1[i]), low_y, cell[k], rows[k])
        home[a] = first[k] + r0 * cols[k] + c0
        starts[home[a] + 1] += 1
    for c in range(first[classes]):
        starts[c + 1] += starts[c]
    members = np.empty(n, np.int64)
    filled = starts[:-1].copy()
    for a in range(n):
        members[filled[home[a]]] = a
        filled[home[a]] += 1

    suppressed = np.zeros(n, np.bool_)
    keep = np.empty(n, np.int64)
    kept = 0
    for a in range(n):
        if suppressed[a]:
            continue
        i = order[a]
        keep[kept] = i
        kept += 1
        for k in range(classes):
            if members_per_class[k] == 0:
                continue
            c0, c1 = _span(float(x1[i]) - cell[k] - 1.0, float(x2[i]) + 2.0, low_x, cell[k], cols[k])
            r0, r1 = _span(float(y1[i]) - cell[k] - 1.0, float(y2[i]) + 2.0, low_y, cell[k], rows[k])
            for r in range(r0, r1):
                for c in range(c0, c1):
                    cell_id = first[k] + r * cols[k] + c
                    for m in range(starts[cell_id], starts[cell_id + 1]):
                        b = members[m]
                        if b <= a or suppressed[b]:
                            continue
                        j = order[b]
                        iw = max(zero, min(x2[i], x2[j]) - max(x1[i], x1[j]) + one)
                        ih = max(zero, min(y2[i], y2[j]) - max(y1[i], y1[j]) + one)
                        inter = iw * ih
                        denom = min(area[i], area[j]) if use_min else area[i] + area[j] - inter
                        if inter / max(denom, tiny) > threshold:
                            suppressed[b] = True
    return keep[:kept]
