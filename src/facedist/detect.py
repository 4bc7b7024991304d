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
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .config import DetectSettings
from .kernels import area_crops, area_resize, greedy_nms, integral_image
from .models import load_mtcnn

# P-Net sees pyramid levels over 3x this many pixels in bands of rows of about this many: a
# band's activations stay in cache, which runs a 3000 px level 1.9x faster, with the same output
# (smaller levels gain nothing).
PNET_BAND_PIXELS = 400_000
REFINE_BATCH_PIXELS = 256 * 24 * 24  # R-/O-Net crops per call: this many pixels


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
        s = self.settings
        boxes, points = self._cascade(image, source_scale)
        faces = [FaceDetection(box=b[:4].astype(np.float32), prob=float(b[4]),
                               landmarks=p.astype(np.float32)) for b, p in zip(boxes, points)]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[:1] if s.faces == "largest" else faces

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
        boxes, reg, prob = self._refine(self.rnet, sampler, boxes, 24, width, height)
        keep = prob > s.thresholds[1]
        boxes, reg = np.concatenate([boxes[keep, :4], prob[keep, None]], 1), reg[keep]
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))
        if len(boxes) == 0:
            return no_faces
        # Stage 3: O-Net scores, regresses and places landmarks on 48x48 crops.
        boxes, (reg, marks), prob = self._refine(self.onet, sampler, boxes, 48, width, height)
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

    def _proposals(self, sampler: "_TorchAreaSampler | _IntegralSampler", height: int, width: int,
                   max_side: int | None = None) -> np.ndarray:
        """Stage 1: P-Net over the pyramid of a height x width image (levels resampled by
        `sampler`, whose image may be smaller) → squared candidate boxes [N, 5] in height x
        width pixels. With max_side, levels larger than that are skipped (faces under
        min_face_size * long side / max_side are then not searched for)."""
        s = self.settings
        found = []
        for scale in pyramid_scales(height, width, s.min_face_size, s.factor):
            size = (int(height * scale + 1), int(width * scale + 1))
            if max_side and max(size) > max_side:
                continue
            reg, prob = self._pnet(sampler.level(size).contiguous(memory_format=self.layout))
            cand = _pnet_boxes(reg[0].cpu().numpy(), prob[0].cpu().numpy(), scale, s.thresholds[0])
            found.append(cand[nms(cand[:, :4], cand[:, 4], 0.5)])
        boxes = np.concatenate(found) if found else np.zeros((0, 9), np.float32)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        moved = boxes[:, :4] + boxes[:, 5:9] * np.stack([w, h, w, h], 1)
        return _square(np.concatenate([moved, boxes[:, 4:5]], 1))

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


class _TorchAreaSampler:
    """The reference's resampling, for the exact mode: torch "area" interpolation of the float
    image for each pyramid level and each crop."""

    def __init__(self, image: np.ndarray, device: torch.device) -> None:
        with warnings.catch_warnings():  # decoded arrays are read-only; nothing writes to them
            warnings.simplefilter("ignore", UserWarning)
            self.img = torch.from_numpy(image).to(device).permute(2, 0, 1).unsqueeze(0).float()

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
    scale32 = np.float32(scale)
    q1 = np.floor((2 * np.stack([xs, ys], 1).astype(np.float32) + 1) / scale32)
    q2 = np.floor((2 * np.stack([xs, ys], 1).astype(np.float32) + 12) / scale32)
    return np.concatenate([q1, q2, prob[ys, xs][:, None], reg[:, ys, xs].T], 1).astype(np.float32)

