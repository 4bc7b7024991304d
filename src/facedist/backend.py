"""backend: where and how the networks run: device, numeric precision and batch sizes.

The stages take a `Backend` instead of deciding these themselves, as an inference session owns
its providers apart from the model. Process-wide torch state is only ever changed for the span
of a call (`strict_fp32`) and put back after.

Precision. On a GPU, torch's default lets cuDNN run float32 convolutions in TF32 (10-bit
mantissa): that moved MTCNN's boxes to IoU 0.80 against the CPU's and embeddings to cosine
0.966 (H100, torch 2.11). So every network here runs in IEEE float32 unless the caller opts in
to a faster mode, and detection always does:

- "fp32" (default): the CPU's answers on any device.
- "fp16": the embedder in half precision on CUDA (detection stays float32). Offered because
  half-precision embeddings stay within cosine 0.9999 of float32 ones, which the device check
  (tools/gpu_check.sh) measures on the GPU; refused on CPU, where it is slower.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from .config import PRECISIONS


@dataclass(frozen=True)
class Backend:
    """Device, precision and batch sizes of a run.

    >>> backend = Backend.create("cpu")
    >>> backend.device.type, backend.precision, backend.batched_detection
    ('cpu', 'fp32', False)
    >>> with strict_fp32():
    ...     tf32_enabled()
    False
    """

    device: torch.device
    precision: str = "fp32"
    # Detect many images per network call (detect.MtcnnDetector.detect_many): on a GPU, where
    # one image at a time leaves it idle; on CPU one image per worker thread is faster.
    batched_detection: bool = False

    @classmethod
    def create(cls, device: str = "auto", precision: str = "fp32",
               batched_detection: bool | None = None) -> "Backend":
        """`device` "auto" is cuda when torch sees a GPU; a wrong device or precision raises a
        one-line ValueError."""
        dev = pick_device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision takes one of {', '.join(PRECISIONS)}, not {precision!r}")
        if precision != "fp32" and dev.type != "cuda":
            raise ValueError(f"precision {precision} needs a CUDA GPU (--device cuda); on CPU it "
                             f"is slower than fp32")
        batched = dev.type == "cuda" if batched_detection is None else batched_detection
        return cls(dev, precision, batched)

    @property
    def embed_dtype(self) -> torch.dtype:
        return torch.float16 if self.precision == "fp16" else torch.float32

    @property
    def chunk_images(self) -> int:
        """Images decoded, detected and stored together, unless set: a GPU needs many per call."""
        return 256 if self.device.type == "cuda" else 16

    @property
    def embed_batch_size(self) -> int:
        return 256 if self.device.type == "cuda" else 32

    @property
    def decode_workers(self) -> int:
        """Decoding threads, unless set: on CPU the cores are busy detecting; a GPU needs every
        core decoding to be kept fed."""
        return min(os.cpu_count() or 1, 32) if self.device.type == "cuda" else 2


@contextmanager
def strict_fp32() -> Iterator[None]:
    """IEEE float32 convolutions and matmuls (no TF32) inside; the caller's flags after. Every
    network call of the stages runs inside one."""
    with _STRICT:
        yield


class _StrictFp32:
    """TF32 off while any thread is inside; the flags as found once the last one leaves (a
    count, so that overlapping calls on two threads never turn TF32 back on under each other)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._saved: list = []

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._saved = [(flag, flag.get()) for flag in _tf32_flags()]
                for flag, _ in self._saved:
                    flag.set(flag.off)
            self._inside += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                for flag, value in self._saved:
                    flag.set(value)


@dataclass(frozen=True)
class _Flag:
    owner: object
    name: str
    off: object

    def get(self):
        return getattr(self.owner, self.name)

    def set(self, value) -> None:
        setattr(self.owner, self.name, value)


def _tf32_flags() -> list[_Flag]:
    """The TF32 switches of this torch: the per-operator ones (torch >= 2.9) where they exist,
    else the older allow_tf32 pair. Mixing the two APIs makes torch raise, so only one is used."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return [_Flag(conv, "fp32_precision", "ieee"),
                _Flag(torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    return [_Flag(torch.backends.cudnn, "allow_tf32", False),
            _Flag(torch.backends.cuda.matmul, "allow_tf32", False)]


def tf32_enabled() -> bool:
    """Whether float32 convolutions or matmuls may run in TF32 now (for tests and checks)."""
    return any(flag.get() in ("tf32", True) for flag in _tf32_flags())


_STRICT = _StrictFp32()


def pick_device(name: str) -> torch.device:
    """'auto' → cuda when torch sees a GPU, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU on this machine")
    return torch.device(name)
