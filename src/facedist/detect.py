"""detect: find faces with MTCNN (P-Net → R-Net → O-Net), written here in PyTorch.

`MtcnnDetector.detect_batch(images)` takes RGB uint8 arrays and returns, per image, a list of
`FaceDetection` (box, probability, 5 landmarks) in that image's pixel coordinates, largest first.

The cascade follows the reference implementation (facenet-pytorch 2.6.0) step for step, including
its box conventions (pixel-inclusive widths in regression, 1-based crop windows, "Min" NMS at the
last stage), so that at full resolution it reproduces the reference boxes. With `exact=False`,
images are detected coarse to fine: P-Net runs only on the reference pyramid levels up to
`max_side` pixels (every level with max_side 0), while R- and O-Net refine on crops of the
decoded photo (full resolution unless it is over twice max_side), so that boxes stay the
reference's for every face the coarse levels find; levels and crops are then resampled through
an integral image (kernels.py), which gives the reference's values faster.

`detect_many` runs the same cascade over many images at once, for a GPU: each pyramid level of
every image is resampled on the device, levels of similar size go through P-Net together (padded,
with the padding masked so that each image's maps are its own), and the R- and O-Net crops of all
images go through in shared batches. Only candidate boxes come back to the CPU, for NMS.
Networks always run in IEEE float32 (backend.strict_fp32): TF32 moves the boxes.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.nn import functional as F

from .backend import strict_fp32
from .config import DetectSettings, side_limit
from .kernels import area_crops, area_resize, greedy_nms, integral_image
from .models import load_mtcnn

# P-Net sees pyramid levels over 3x this many pixels in bands of rows of about this many: a
# band's activations stay in cache, which runs a 3000 px level 1.9x faster, with the same output
# (smaller levels gain nothing).
PNET_BAND_PIXELS = 400_000
REFINE_BATCH_PIXELS = 256 * 24 * 24  # R-/O-Net crops per call: this many pixels
# detect_many (a GPU): pixels of pyramid levels per P-Net call, and of crops per R-/O-Net call
MANY_PNET_PIXELS = 8_000_000
MANY_REFINE_PIXELS = 4096 * 24 * 24


@dataclass
class FaceDetection:
    """One face: box (x1, y1, x2, y2), detector probability, landmarks [5, 2] (x, y) for left eye,
    right eye, nose, left and right mouth corner, all in source-image pixels."""

    box: np.ndarray
    prob: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union",
        inclusive: bool = False) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first.

    method "union" is IoU, "min" is intersection over the smaller box. `inclusive` counts pixel
    edges (+1 on widths), as the reference does at its last stage only.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    # Ties are common (probabilities saturate at 1.0 in float32): break them as the reference
    # does, torchvision's stable descending sort for IoU, NumPy's ascending argsort read backwards
    # for its pixel-inclusive "Min" stage.
    order = np.argsort(scores)[::-1] if inclusive else np.argsort(-scores, kind="stable")
    return greedy_nms(boxes[:, :4], order, threshold, method == "min", inclusive)


# A second box over one face (MTCNN's box across a face and the one behind it, say): two boxes
# of one photo overlapping at least SECOND_BOX_IOU whose embeddings are under SECOND_BOX_SHARE
# of the model's pair threshold apart are one face (bench/results-quality/second-boxes.md:
# dlib 0.24; two faces of two people overlapping that much were 0.35 apart or more).
SECOND_BOX_IOU = 0.3
SECOND_BOX_SHARE = 0.6


def box_iou(boxes: np.ndarray) -> np.ndarray:
    """[N, N] intersection over union of boxes (x1, y1, x2, y2)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x1 = np.maximum(b[:, None, 0], b[None, :, 0])
    y1 = np.maximum(b[:, None, 1], b[None, :, 1])
    x2 = np.minimum(b[:, None, 2], b[None, :, 2])
    y2 = np.minimum(b[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def second_boxes(boxes: np.ndarray, probs: np.ndarray, embeddings: np.ndarray,
                 distance: float, iou: float = SECOND_BOX_IOU) -> np.ndarray:
    """Which faces of one photo to keep: a box that overlaps a better one (higher probability,
    then larger) by at least `iou` and whose embedding is under `distance` from it is a second
    box over the same face, and goes. Two people's faces overlapping that much are far apart
    in embedding, and both stay. Returns a keep mask.

        >>> boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [1, 0, 11, 10]], np.float32)
        >>> x = np.array([[1, 0], [0.99, 0.14], [0, 1]], np.float32)
        >>> second_boxes(boxes, np.array([0.9, 0.99, 0.95]), x, 0.24).tolist()
        [False, True, True]
    """
    n = len(boxes)
    keep = np.ones(n, bool)
    if n < 2:
        return keep
    overlap = box_iou(boxes)
    x = np.asarray(embeddings, np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    for i in np.lexsort((-area, -np.asarray(probs, np.float64))):  # the best first
        if keep[i]:
            later = (overlap[i] >= iou) & (dist[i] < distance)
            later[i] = False
            keep[later] = False  # (a better one near i would have dropped i already)
    return keep


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales at which P-Net's 12 px window covers faces from min_face_size up to the image."""
    scale = 12.0 / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (the reference's `rerec`)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply R-/O-Net box offsets, relative to pixel-inclusive width and height."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.copy()
    out[:, :4] = boxes[:, :4] + reg[:, :4] * np.stack([w, h, w, h], 1)
    return out


def _crop_windows(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer crop windows [x0, y0, x1, y1) clipped to the image, as the reference cuts them."""
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x0 = np.maximum(b[:, 0], 1) - 1
    y0 = np.maximum(b[:, 1], 1) - 1
    x1 = np.minimum(b[:, 2], width)
    y1 = np.minimum(b[:, 3], height)
    return np.stack([x0, y0, x1, y1], 1)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


class MtcnnDetector:
    """MTCNN with the vendored facenet-pytorch weights. Stateless between calls."""

    def __init__(self, settings: DetectSettings, device: str | torch.device = "cpu") -> None:
        self.settings = settings
        self.device = torch.device(device)
        self.pnet, self.rnet, self.onet = (net.to(self.device) for net in load_mtcnn())
        # channels_last runs P-Net ~1.5x and R-/O-Net ~4x faster on CPU (torch's NCHW max-pool
        # is slow); the exact mode keeps the reference's memory layout (and last-bit numerics).
        self.layout = torch.contiguous_format if settings.exact else torch.channels_last
        for net in (self.pnet, self.rnet, self.onet):
            net.to(memory_format=self.layout)

    # -- public ----------------------------------------------------------------------------
    def detect_batch(self, images: list[np.ndarray],
                     source_scales: list[float] | None = None) -> list[list[FaceDetection]]:
        """Faces of each RGB uint8 image [H, W, 3], largest first (only the largest with
        settings.faces == "largest")."""
        scales = source_scales or [1.0] * len(images)
        return [self.detect(img, sc) for img, sc in zip(images, scales)]

    @torch.inference_mode()
    def detect(self, image: np.ndarray, source_scale: float = 1.0) -> list[FaceDetection]:
        """Faces in one RGB uint8 image, in its own pixel coordinates.

        `source_scale`: source pixels per array pixel when the image was decoded reduced; the
        pyramid is then laid out on the source geometry, as the reference would on the original.
        """
        with strict_fp32():
            return self._faces(*self._cascade(image, source_scale))

    @torch.inference_mode()
    def detect_many(self, images: list[np.ndarray],
                    source_scales: list[float] | None = None) -> list[list[FaceDetection]]:
        """`detect` for many images at once, each network call shared by all of them (see the
        module's docstring); the same faces, up to float rounding. For a GPU; it runs on CPU
        tensors too."""
        s = self.settings
        scales = source_scales or [1.0] * len(images)
        if s.exact:  # the exact mode resamples as the reference does, image by image
            return self.detect_batch(images, scales)
        # Images of one shape (and source scale) share one stack of integral images, so that a
        # pyramid level or the crops of all of them cost one gather (LFW: every photo 250x250).
        groups: dict[tuple, list[int]] = {}
        for i, (img, sc) in enumerate(zip(images, scales)):
            groups.setdefault((img.shape, sc), []).append(i)
        with strict_fp32():
            tables = [_DeviceTables([images[i] for i in members], self.device)
                      for members in groups.values()]
            members = list(groups.values())
            boxes = self._proposals_many(tables, members, scales)
            refined = self._refine_many(self.rnet, tables, members, boxes, 24)
            for i, (b, reg, prob) in refined.items():
                boxes[i] = _after_rnet(b, reg, prob, s)
            refined = self._refine_many(self.onet, tables, members, boxes, 48)
        return [self._faces(*_after_onet(*refined[i], s)) if i in refined else []
                for i in range(len(images))]

    def _faces(self, boxes: np.ndarray, points: np.ndarray) -> list[FaceDetection]:
        faces = [FaceDetection(box=b[:4].astype(np.float32), prob=float(b[4]),
                               landmarks=p.astype(np.float32)) for b, p in zip(boxes, points)]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[:1] if self.settings.faces == "largest" else faces

    # -- the three stages -------------------------------------------------------------------
    def _cascade(self, image: np.ndarray, source_scale: float) -> tuple[np.ndarray, np.ndarray]:
        s = self.settings
        height, width = image.shape[:2]
        no_faces = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
        # Coarse to fine: P-Net sees only the reference pyramid levels no larger than max_side;
        # R- and O-Net refine on crops of the decoded photo. Both resample from one integral image.
        # The exact mode resamples with torch, as the reference does, to its last bit.
        sampler = (_TorchAreaSampler if s.exact else _IntegralSampler)(image, self.device)
        boxes = self._proposals(sampler, round(height * source_scale), round(width * source_scale),
                                None if s.exact else s.max_side)
        boxes[:, :4] /= source_scale
        if len(boxes) == 0:
            return no_faces
        # Stage 2: R-Net refines the proposals on 24x24 crops.
        boxes = _after_rnet(*self._refine(self.rnet, sampler, boxes, 24, width, height), s)
        if len(boxes) == 0:
            return no_faces
        # Stage 3: O-Net scores, regresses and places landmarks on 48x48 crops.
        return _after_onet(*self._refine(self.onet, sampler, boxes, 48, width, height), s)

    def _proposals(self, sampler: "_TorchAreaSampler | _IntegralSampler", height: int, width: int,
                   max_side: int | None = None) -> np.ndarray:
        """Stage 1: P-Net over the pyramid of a height x width image (levels resampled by
        `sampler`, whose image may be smaller) → squared candidate boxes [N, 5] in height x
        width pixels. With max_side, levels with a long side over config.side_limit (max_side
        for photos up to 2:1) are skipped: faces under min_face_size * long side / that limit
        are then not searched for."""
        s = self.settings
        found = []
        limit = side_limit(max_side, width, height)
        scales = pyramid_scales(height, width, s.min_face_size, s.factor)
        for scale in scales:
            size = (int(height * scale + 1), int(width * scale + 1))
            if limit and max(size) > limit:
                continue
            reg, prob = self._pnet(sampler.level(size).contiguous(memory_format=self.layout))
            found.append(_pnet_boxes(reg[0].cpu().numpy(), prob[0].cpu().numpy(), scale,
                                     s.thresholds[0]))
        if limit and len(found) < len(scales) and (not found or 12 / scales[-len(found)]
                                                   > min(height, width)):
            _warn_unsearched(width, height, max_side)
        return _merge_levels(found)

    def _pnet(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over one level [1, 3, H, W]; on CPU (not exact) in bands of output rows.

        Output row r sees input rows [2r, 2r + 12): rows [a, b) need input [2a, 2b + 10), and
        the last band runs to the bottom, where the ceil-mode pool pads as on the whole level."""
        height, width = level.shape[-2:]
        out_rows = (height - 1) // 2 - 4
        band = max(8, PNET_BAND_PIXELS // (2 * width))
        whole = height * width <= 3 * PNET_BAND_PIXELS or out_rows <= band
        if whole or self.settings.exact or self.device.type != "cpu":
            return self.pnet(level)
        parts = [self.pnet(level[:, :, 2 * a: 2 * (a + band) + 10 if a + band < out_rows else height])
                 for a in range(0, out_rows, band)]
        return torch.cat([reg for reg, _ in parts], 2), torch.cat([prob for _, prob in parts], 1)

    def _refine(self, net, sampler: "_TorchAreaSampler | _IntegralSampler", boxes: np.ndarray,
                size: int, width: int, height: int):
        """Run R- or O-Net on each box's crop resized to size x size.

        Returns the boxes that had a non-empty crop, the net's regression (and landmarks) and
        face probability as NumPy arrays aligned with them."""
        windows = _crop_windows(boxes, width, height)
        valid = (windows[:, 2] > windows[:, 0]) & (windows[:, 3] > windows[:, 1])
        boxes, windows = boxes[valid], windows[valid]
        outs = []
        # 256 crops of 24x24 or 64 of 48x48 at a time: a busy photo can have 20 000 proposals,
        # ~140 MB of crops at once, and O-Net runs 1.4x faster per crop at 64 than at 256
        step = max(1, REFINE_BATCH_PIXELS // (size * size))
        for start in range(0, max(len(windows), 1), step):
            batch = sampler.crops(windows[start:start + step], size)
            outs.append(net(batch.contiguous(memory_format=self.layout)))
        outs = [torch.cat(parts).cpu().numpy() for parts in zip(*outs)]
        heads = outs[0] if len(outs) == 2 else (outs[0], outs[1])
        return boxes, heads, outs[-1]


    # -- many images at once (detect_many) ------------------------------------------------
    def _proposals_many(self, tables: list["_DeviceTables"], members: list[list[int]],
                        source_scales: list[float]) -> list[np.ndarray]:
        """`_proposals` for many images: their pyramid levels packed into shared P-Net calls.
        Returns each image's proposals [N, 5] in its decoded pixels."""
        s = self.settings
        jobs = []  # (group, first, end, level, scale, (h, w)): a level of some of a group's images
        for g, (table, group) in enumerate(zip(tables, members)):
            source_scale = source_scales[group[0]]
            h0, w0 = round(table.height * source_scale), round(table.width * source_scale)
            limit = side_limit(s.max_side, w0, h0)
            scales = pyramid_scales(h0, w0, s.min_face_size, s.factor)
            used = [sc for sc in scales
                    if not limit or max(int(h0 * sc + 1), int(w0 * sc + 1)) <= limit]
            if limit and len(used) < len(scales) and (not used or 12 / used[0] > min(h0, w0)):
                _warn_unsearched(w0, h0, s.max_side)
            for level, scale in enumerate(scales):
                size = (int(h0 * scale + 1), int(w0 * scale + 1))
                if limit and max(size) > limit:
                    continue
                per_call = max(1, MANY_PNET_PIXELS // (size[0] * size[1]))
                jobs += [(g, lo, min(lo + per_call, len(group)), level, scale, size)
                         for lo in range(0, len(group), per_call)]
        found: list[dict[int, np.ndarray]] = [{} for _ in source_scales]
        for batch in _pack_levels(jobs, MANY_PNET_PIXELS):
            height = max(j[5][0] for j in batch)
            width = max(j[5][1] for j in batch)
            rows = []  # (image, level, scale) of each row of the batch
            x = torch.zeros((sum(j[2] - j[1] for j in batch), height, width, 3), device=self.device)
            for g, lo, hi, level, scale, (h, w) in batch:
                x[len(rows):len(rows) + hi - lo, :h, :w] = tables[g].levels(lo, hi, (h, w))
                rows += [(i, level, scale) for i in members[g][lo:hi]]
            sizes = torch.tensor([j[5] for j in batch for _ in range(j[2] - j[1])], device=self.device)
            reg, prob = self.pnet.forward_padded(x.permute(0, 3, 1, 2), sizes)
            # cells over threshold whose window lies in their own level (not in the padding)
            out_rows = (sizes[:, 0] - 1) // 2 - 4  # P-Net's output size: ceil((h - 2) / 2) - 4
            out_cols = (sizes[:, 1] - 1) // 2 - 4
            inside = ((torch.arange(prob.shape[1], device=self.device)[None, :, None] < out_rows[:, None, None])
                      & (torch.arange(prob.shape[2], device=self.device)[None, None, :] < out_cols[:, None, None]))
            b, ys, xs = torch.nonzero((prob >= s.thresholds[0]) & inside, as_tuple=True)
            cells = torch.cat([torch.stack([b, xs, ys], 1).to(prob.dtype), prob[b, ys, xs, None],
                               reg.permute(0, 2, 3, 1)[b, ys, xs]], 1).cpu().numpy()
            starts = np.searchsorted(cells[:, 0], np.arange(len(rows) + 1))
            for r, (i, level, scale) in enumerate(rows):
                c = cells[starts[r]:starts[r + 1]]
                found[i][level] = _cell_boxes(c[:, 1].astype(np.int64), c[:, 2].astype(np.int64),
                                              c[:, 3], c[:, 4:8], scale)
        proposals = []
        for levels, source_scale in zip(found, source_scales):
            boxes = _merge_levels([levels[k] for k in sorted(levels)])  # in pyramid order, as detect
            boxes[:, :4] /= source_scale
            proposals.append(boxes)
        return proposals

    def _refine_many(self, net, tables: list["_DeviceTables"], members: list[list[int]],
                     boxes: list[np.ndarray], size: int) -> dict:
        """`_refine` for the images with boxes, their crops in shared network calls.
        Returns {image: (boxes with a non-empty crop, heads, probability)}."""
        step = max(1, MANY_REFINE_PIXELS // (size * size))
        order, kept, outs, pending = [], {}, [], []

        def run_pending() -> None:
            x = torch.cat(pending).permute(0, 3, 1, 2).contiguous(memory_format=self.layout)
            outs.append([o.cpu() for o in net(x)])
            pending.clear()

        count = 0
        for table, group in zip(tables, members):
            windows, which = [], []  # crop windows of the group's images, each one's image in it
            for k, i in enumerate(group):
                if not len(boxes[i]):
                    continue
                w = _crop_windows(boxes[i], table.width, table.height)
                valid = (w[:, 2] > w[:, 0]) & (w[:, 3] > w[:, 1])
                kept[i] = boxes[i][valid]
                order.append((i, int(valid.sum())))
                windows.append(w[valid])
                which.append(np.full(int(valid.sum()), k))
            if not windows:
                continue
            windows, which = np.concatenate(windows), np.concatenate(which)
            for start in range(0, len(windows), step):
                pending.append(table.crops(which[start:start + step], windows[start:start + step], size))
                count += len(pending[-1])
                if count >= step:
                    run_pending()
                    count = 0
        if pending:
            run_pending()
        if outs:
            flat = [torch.cat(parts).numpy() for parts in zip(*outs)]
        else:  # not one crop: empty outputs of the net's shapes (O-Net has landmarks too)
            flat = ([np.zeros((0, 4), np.float32)] + [np.zeros((0, 10), np.float32)] * (size == 48)
                    + [np.zeros(0, np.float32)])
        result, at = {}, 0
        for i, n in order:
            part = [o[at:at + n] for o in flat]
            at += n
            result[i] = (kept[i], part[0] if len(flat) == 2 else (part[0], part[1]), part[-1])
        return result


def _warn_unsearched(width: int, height: int, max_side: int) -> None:
    """One line when --max-side leaves an image no face it can find: its smallest searched face
    is larger than the image is high (or wide)."""
    logging.getLogger("facedist").warning(
        f"a {width}x{height} image is reduced so far for detection (--max-side {max_side}) that "
        f"no face in it can be found; pass --max-side 0 (or a larger one) to search it")


def _pack_levels(jobs: list, max_pixels: int) -> Iterator[list]:
    """Jobs (group, first, end, level, scale, (h, w)), each end - first levels of one size, in
    batches padded to their largest height and width: largest first, a job joins the batch
    while the padding stays under a quarter of the batch's pixels and the batch under
    max_pixels (a larger job goes alone)."""
    batch, area, rows = [], 0, 0
    height = width = 0
    for job in sorted(jobs, key=lambda j: (-j[5][0] * j[5][1], j[5], j[0], j[1])):
        n, (h, w) = job[2] - job[1], job[5]
        grown = (rows + n) * max(height, h) * max(width, w)
        if batch and (grown > max_pixels or grown > 1.25 * (area + n * h * w)):
            yield batch
            batch, area, rows, height, width = [], 0, 0, 0, 0
        batch.append(job)
        area += n * h * w
        rows += n
        height, width = max(height, h), max(width, w)
    if batch:
        yield batch


_INT32_PIXELS = 2**31 // 255  # more pixels than this could overflow an int32 table's sums


class _DeviceTables:
    """kernels.py's integral-image resampling in torch, on the network's device, for images of
    one shape stacked [G, H+1, W+1, 3]: the same integer sums and float64 means, so the same
    float32 values as _IntegralSampler. Tensors come out [..., h, w, 3], normalized."""

    def __init__(self, images: list[np.ndarray], device: torch.device) -> None:
        self.height, self.width = images[0].shape[:2]
        dtype = torch.int64 if self.height * self.width > _INT32_PIXELS else torch.int32
        pixels = torch.from_numpy(np.stack(images))  # one copy up for the group
        if device.type == "cuda":
            pixels = pixels.pin_memory()
        pixels = pixels.to(device, non_blocking=True)
        self.table = torch.zeros((len(images), self.height + 1, self.width + 1, images[0].shape[2]),
                                 dtype=dtype, device=device)
        self.table[:, 1:, 1:] = pixels.cumsum(1, dtype=dtype).cumsum(2, dtype=dtype)
        self.device = device

    def levels(self, first: int, end: int, size: tuple[int, int]) -> torch.Tensor:
        """Images [first, end) of the group, each area-resampled to size (h, w)."""
        whole = torch.tensor([[0, 0, self.width, self.height]], device=self.device)
        index = torch.arange(first, end, device=self.device)[:, None, None]
        return self._area(index, whole, *size)

    def crops(self, which: np.ndarray, windows: np.ndarray, size: int) -> torch.Tensor:
        """Windows [N, 4] (x0, y0, x1, y1) of the group's images `which` [N], each resampled
        to size x size."""
        index = torch.from_numpy(np.asarray(which, np.int64)).to(self.device)[:, None, None]
        windows = torch.from_numpy(np.ascontiguousarray(windows, np.int64)).to(self.device)
        return self._area(index, windows, size, size)

    def _area(self, index: torch.Tensor, windows: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        """The mean of each output pixel's window [floor(i*n/m), ceil((i+1)*n/m)) of each
        window [N or 1, 4] of the images `index`, as torch's "area" mode."""
        x0, y0, x1, y1 = windows.T
        ya, yb = (v[:, :, None] for v in _bins(y0, y1, out_h, self.device))
        xa, xb = (v[:, None, :] for v in _bins(x0, x1, out_w, self.device))
        t = self.table
        total = t[index, yb, xb] - t[index, ya, xb] - t[index, yb, xa] + t[index, ya, xa]
        inv = 1.0 / ((yb - ya) * (xb - xa)).double()
        return _normalize((total.double() * inv[..., None]).float())


def _bins(start: torch.Tensor, stop: torch.Tensor, m: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The m area-resampling windows of each span [start, stop): their first and end index."""
    i = torch.arange(m, device=device)[None]
    n = (stop - start)[:, None]
    return start[:, None] + (i * n) // m, start[:, None] + ((i + 1) * n + m - 1) // m


class _TorchAreaSampler:
    """The reference's resampling, for the exact mode: torch "area" interpolation of the float
    image for each pyramid level and each crop."""

    def __init__(self, image: np.ndarray, device: torch.device) -> None:
        with warnings.catch_warnings():  # decoded arrays are read-only; nothing writes to them
            warnings.simplefilter("ignore", UserWarning)
            hwc = torch.from_numpy(image).to(device).permute(2, 0, 1).unsqueeze(0)
        # The reference resamples the channels-last float view; torch's area kernel gives the
        # same bits on a planar copy 2-5x faster (C=3 vectorizes poorly): tests/test_detect.py.
        # Made planar as uint8, then float: one float copy of the photo, not two.
        self.img = hwc.contiguous().float()

    def level(self, size: tuple[int, int]) -> torch.Tensor:
        return _normalize(F.interpolate(self.img, size=size, mode="area"))

    def crops(self, windows: np.ndarray, size: int) -> torch.Tensor:
        crops = [F.interpolate(self.img[:, :, y0:y1, x0:x1], size=(size, size), mode="area")
                 for x0, y0, x1, y1 in windows]
        if not crops:
            return torch.zeros((0, 3, size, size), device=self.img.device)
        return _normalize(torch.cat(crops))


class _IntegralSampler:
    """The same resampling from an integral image of the uint8 photo (see kernels.py): no float
    copy of the photo, and each level or crop costs only its output. Tensors come out
    channels_last, as the nets run on CPU."""

    def __init__(self, image: np.ndarray, device: torch.device) -> None:
        self.table = integral_image(image)
        self.device = device

    def level(self, size: tuple[int, int]) -> torch.Tensor:
        return torch.from_numpy(area_resize(self.table, size)).permute(2, 0, 1).unsqueeze(0).to(self.device)

    def crops(self, windows: np.ndarray, size: int) -> torch.Tensor:
        return torch.from_numpy(area_crops(self.table, windows, size)).permute(0, 3, 1, 2).to(self.device)


def _pnet_boxes(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net map cells over threshold → boxes [N, 9]: x1, y1, x2, y2, score, 4 offsets."""
    ys, xs = np.nonzero(prob >= threshold)
    return _cell_boxes(xs, ys, prob[ys, xs], reg[:, ys, xs].T, scale)


def _cell_boxes(xs: np.ndarray, ys: np.ndarray, probs: np.ndarray, regs: np.ndarray,
                scale: float) -> np.ndarray:
    """P-Net cells (x, y) with their probability and offsets [N, 4] → boxes [N, 9] of one
    pyramid level, those its own NMS (IoU 0.5) keeps."""
    scale32 = np.float32(scale)
    q1 = np.floor((2 * np.stack([xs, ys], 1).astype(np.float32) + 1) / scale32)
    q2 = np.floor((2 * np.stack([xs, ys], 1).astype(np.float32) + 12) / scale32)
    cand = np.concatenate([q1, q2, probs[:, None], regs], 1).astype(np.float32)
    return cand[nms(cand[:, :4], cand[:, 4], 0.5)]


def _merge_levels(found: list[np.ndarray]) -> np.ndarray:
    """Boxes of every pyramid level of one image → its squared, regressed proposals [N, 5]."""
    boxes = np.concatenate(found) if found else np.zeros((0, 9), np.float32)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    moved = boxes[:, :4] + boxes[:, 5:9] * np.stack([w, h, w, h], 1)
    return _square(np.concatenate([moved, boxes[:, 4:5]], 1))


def _after_rnet(boxes: np.ndarray, reg: np.ndarray, prob: np.ndarray,
                s: DetectSettings) -> np.ndarray:
    """R-Net's outputs for one image's proposals → the boxes O-Net sees [N, 5]."""
    keep = prob > s.thresholds[1]
    boxes, reg = np.concatenate([boxes[keep, :4], prob[keep, None]], 1), reg[keep]
    keep = nms(boxes[:, :4], boxes[:, 4], 0.7)
    return _square(_regress(boxes[keep], reg[keep]))


def _after_onet(boxes: np.ndarray, heads: tuple[np.ndarray, np.ndarray], prob: np.ndarray,
                s: DetectSettings) -> tuple[np.ndarray, np.ndarray]:
    """O-Net's outputs for one image's boxes → final boxes [N, 5] and landmarks [N, 5, 2]."""
    reg, marks = heads
    keep = prob > s.thresholds[2]
    boxes = np.concatenate([boxes[keep, :4], prob[keep, None]], 1)
    reg, marks = reg[keep], marks[keep]
    w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    points = np.stack([w * marks[:, :5] + boxes[:, 0:1] - 1,
                       h * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
    boxes = _regress(boxes, reg)
    keep = nms(boxes[:, :4], boxes[:, 4], 0.7, method="min", inclusive=True)
    return boxes[keep], points[keep]
