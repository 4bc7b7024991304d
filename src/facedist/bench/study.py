"""study: the original study's pipeline versions, for `facedist bench`.

They keep the study's choices — MTCNN keeping the largest face, min face 20, thresholds
0.6/0.7/0.7, on the full-resolution image; InceptionResnetV1 on 160x160 crops fed raw (0..255, not
standardized); distances in Python loops of np.linalg.norm — and run on facenet-pytorch itself
where it is installed (study_reference.py), else on this project's reproduction of its models
(the bench's tables say which). They exist to be measured, not used: their embeddings are not comparable
with the product's (raw input), which is part of what the bench shows.

Each function takes the list of image paths and a scratch folder, and returns
{image name: (box [4] or None, embedding or None)}.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..align import BoxAligner
from ..config import DetectSettings
from ..detect import MtcnnDetector
from ..embed import FacenetEmbedder
from ..models import get_spec, resolve_weights

STUDY_DETECT = DetectSettings(min_face_size=20, thresholds=(0.6, 0.7, 0.7), factor=0.709,
                              faces="largest", exact=True)


def implementation() -> str:
    """"facenet-pytorch" where it is installed (`make install-study`), unless FACEDIST_STUDY is
    "reproduction"; else "reproduction"."""
    from .study_reference import facenet_pytorch_installed

    if os.environ.get("FACEDIST_STUDY") != "reproduction" and facenet_pytorch_installed():
        return "facenet-pytorch"
    return "reproduction"


def implementation_label() -> str:
    """What the study-* variants run on, in words, for the bench's tables."""
    return ("facenet-pytorch 2.6.0" if implementation() == "facenet-pytorch"
            else ReproducedStudy.implementation)


def build_models(weights: str):
    """The study's two models, MTCNN and InceptionResnetV1 (VGGFace2 weights or stand-ins):
    facenet-pytorch's own where installed, else this project's reproduction of them."""
    if implementation() == "facenet-pytorch":
        from .study_reference import FacenetPytorchStudy

        return FacenetPytorchStudy(weights)
    return ReproducedStudy(weights)


class ReproducedStudy:
    """The study's models rebuilt from this project's MTCNN and InceptionResnetV1, which give the
    reference's boxes and embeddings (tests/test_detect.py, test_embed.py)."""

    implementation = "reproduction (facedist's MTCNN and InceptionResnetV1, reference settings)"

    def __init__(self, weights: str) -> None:
        spec = get_spec("facenet-vggface2")
        path = weights if weights == "synthetic" else resolve_weights(spec, weights)
        self.detector = MtcnnDetector(STUDY_DETECT)
        self.embedder = FacenetEmbedder(spec, path, torch.device("cpu"))

    def embed_one(self, path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Detect the largest face at full resolution and embed its raw crop, as the study did."""
        try:
            img = np.asarray(Image.open(path).convert("RGB"))
        except Exception:  # the study skipped unreadable files (and deleted them: we never do)
            return None, None
        faces = self.detector.detect(img)
        if not faces:
            return None, None
        crop = BoxAligner(160).align(img, faces[:1])[:, 0]
        raw = torch.from_numpy(crop).permute(0, 3, 1, 2).float()  # 0..255, no standardization
        with torch.inference_mode():
            vec = self.embedder.model(raw)[0].numpy()
        return faces[0].box, vec


def _save_vector(scratch: Path, i: int, vec: np.ndarray) -> None:
    np.savetxt(scratch / f"vector_{i:05d}.txt", vec)  # the study wrote one text file per face


def _distances_to_previous(vectors: list[np.ndarray], distances: list[float]) -> None:
    new = vectors[-1]
    for old in vectors[:-1]:
        distances.append(float(np.linalg.norm(new - old)))


def _loop_with_distances(paths, scratch, monitor, models) -> dict:
    """The study's v1/v2 loop: per image, detect and embed, save the vector, then its distances
    to every earlier face. `models()` gives (detector, embedder) for each image."""
    found, vectors, distances = {}, [], []
    for i, path in enumerate(paths):
        with monitor.stage("detect"):
            box, vec = models().embed_one(path)
        found[path.name] = (box, vec)
        if vec is not None:
            with monitor.stage("compare"):
                _save_vector(scratch, i, vec)
                vectors.append(vec)
                _distances_to_previous(vectors, distances)
    return found


def study_v1(paths: list[Path], scratch: Path, weights: str, monitor) -> dict:
    """Both models built inside the per-image loop; distances inside the loop."""
    return _loop_with_distances(paths, scratch, monitor, lambda: build_models(weights))


def study_v2(paths: list[Path], scratch: Path, weights: str, monitor) -> dict:
    """Models built once; distances still inside the loop."""
    models = build_models(weights)
    return _loop_with_distances(paths, scratch, monitor, lambda: models)


def _double_loop(vectors: list[np.ndarray]) -> list[list[float]]:
    return [[float(np.linalg.norm(a - b)) for b in vectors] for a in vectors]


def study_v3(paths: list[Path], scratch: Path, weights: str, monitor) -> dict:
    """Models built once; an embedding loop, then a Python double loop of distances."""
    models = build_models(weights)
    found = {}
    with monitor.stage("detect"):
        for i, path in enumerate(paths):
            found[path.name] = models.embed_one(path)
            if found[path.name][1] is not None:
                _save_vector(scratch, i, found[path.name][1])
    with monitor.stage("compare"):
        _double_loop([v for _, v in found.values() if v is not None])
    return found


def _embed_batch_worker(args) -> dict:
    paths, weights = args
    torch.set_num_threads(1)  # one process per core
    models = build_models(weights)
    return {p.name: models.embed_one(p) for p in paths}


def study_parallel(paths: list[Path], scratch: Path, weights: str, monitor) -> dict:
    """v3's embedding loop in a process pool over batches of 50 images."""
    found = {}
    batches = [(paths[i:i + 50], weights) for i in range(0, len(paths), 50)]
    with monitor.stage("detect"):
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
            for part in pool.map(_embed_batch_worker, batches):
                found.update(part)
    with monitor.stage("compare"):
        _double_loop([v for _, v in found.values() if v is not None])
    return found


VARIANTS = {"study-v1": study_v1, "study-v2": study_v2, "study-v3": study_v3,
            "study-parallel": study_parallel}
