"""study_reference: the study's loop on facenet-pytorch itself, and face_recognition as its own
README calls it, for `facedist bench` (bench code: nothing a run imports).

facenet-pytorch 2.6.0 pins torch < 2.3 and torchvision < 0.18; it is installed without its pins
(`make install-study`: `pip install --no-deps facenet-pytorch==2.6.0 face_recognition==1.3.0`).
Its MTCNN then needs two torchvision calls, and face_recognition_models needs pkg_resources
(gone from new setuptools): `install_shims` gives these three, here and only here.

`python -m facedist.bench.study_reference PHOTOS` is the plain loop a facenet-pytorch user writes (no
monitor, no bench): the bench times it as a whole process beside its own study-v3.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np


def facenet_pytorch_installed() -> bool:
    return importlib.util.find_spec("facenet_pytorch") is not None


def face_recognition_installed() -> bool:
    return importlib.util.find_spec("face_recognition") is not None


def install_shims() -> None:
    """torchvision.ops.boxes.batched_nms and torchvision.transforms.functional.to_tensor (where
    torchvision is missing: no CPU build of it here), and pkg_resources.resource_filename."""
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        tv = types.ModuleType("torchvision")
        ops, boxes = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.boxes")
        transforms = types.ModuleType("torchvision.transforms")
        functional = types.ModuleType("torchvision.transforms.functional")
        boxes.batched_nms = _batched_nms
        functional.to_tensor = _to_tensor
        tv.ops, ops.boxes, tv.transforms, transforms.functional = ops, boxes, transforms, functional
        sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.ops.boxes": boxes,
                            "torchvision.transforms": transforms,
                            "torchvision.transforms.functional": functional})
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        pr = types.ModuleType("pkg_resources")

        def resource_filename(package: str, resource: str) -> str:
            spec = importlib.util.find_spec(package)
            return str(Path(spec.submodule_search_locations[0]) / resource)

        pr.resource_filename = resource_filename
        sys.modules["pkg_resources"] = pr


def _batched_nms(boxes, scores, idxs, iou_threshold: float):
    """torchvision's batched_nms: greedy IoU suppression within each index, kept indices by
    descending score. Boxes of different indices are moved apart so that they never overlap,
    then one compiled pass (facedist's NMS, which reproduces torchvision's decisions)."""
    import torch

    from ..detect import nms

    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    b = boxes.detach().cpu().double().numpy()
    shift = (b.max() + 1) * idxs.cpu().numpy().astype(np.float64)
    keep = nms(b + shift[:, None], scores.detach().cpu().numpy(), float(iou_threshold))
    return torch.from_numpy(np.ascontiguousarray(keep, dtype=np.int64))


def _to_tensor(array):
    """torchvision's to_tensor for the float32 HWC arrays facenet-pytorch gives it."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(array).transpose(2, 0, 1)))


class FacenetPytorchStudy:
    """The study's two models from facenet-pytorch: MTCNN with its settings (largest face, min
    face 20, thresholds 0.6/0.7/0.7, factor 0.709, raw 0..255 crops: post_process=False) and its
    InceptionResnetV1 with the VGGFace2 weights (or the same stand-ins as the reproduction)."""

    implementation = "facenet-pytorch 2.6.0"

    def __init__(self, weights: str) -> None:
        install_shims()
        import torch
        from facenet_pytorch import MTCNN, InceptionResnetV1

        from ..embed import load_facenet_state, synthetic_facenet_state
        from ..models import get_spec, resolve_weights

        self.mtcnn = MTCNN(image_size=160, margin=0, min_face_size=20, thresholds=[0.6, 0.7, 0.7],
                           factor=0.709, post_process=False, select_largest=True, device="cpu")
        state = (synthetic_facenet_state() if weights == "synthetic" else
                 load_facenet_state(resolve_weights(get_spec("facenet-vggface2"), weights)))
        self.resnet = InceptionResnetV1(pretrained=None).eval()
        self.resnet.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits")})
        self._torch = torch

    def embed_one(self, path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
        """What `mtcnn(img)` then `resnet(face)` do, keeping the box for the agreement columns."""
        from PIL import Image

        try:
            img = Image.open(path).convert("RGB")
        except Exception:  # the study skipped unreadable files (and deleted them: we never do)
            return None, None
        boxes, probs, points = self.mtcnn.detect(img, landmarks=True)
        boxes, probs, points = self.mtcnn.select_boxes(boxes, probs, points, img,
                                                       method=self.mtcnn.selection_method)
        if boxes is None:
            return None, None
        face = self.mtcnn.extract(img, boxes, None)
        with self._torch.no_grad():
            vec = self.resnet(face.unsqueeze(0))[0].numpy()
        return np.asarray(boxes[0], np.float32), vec


def face_recognition_run(paths: list[Path], monitor) -> dict:
    """face_recognition as its README does it: load_image_file, face_locations (HOG, one
    upsample), face_encodings (dlib's ResNet on its 5-point chips), image by image; then each
    face's distances to every face (face_distance). Returns {name: [(box, vector), ...]}."""
    install_shims()
    from PIL import ImageFile

    truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    import face_recognition  # sets Pillow's LOAD_TRUNCATED_IMAGES: put back at the end
    try:
        return _face_recognition_loop(face_recognition, paths, monitor)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated


def _face_recognition_loop(face_recognition, paths: list[Path], monitor) -> dict:
    found, vectors = {}, []
    with monitor.stage("detect"):
        for path in paths:
            try:
                img = face_recognition.load_image_file(str(path))
            except Exception:
                found[path.name] = []
                continue
            locations = face_recognition.face_locations(img)
            encodings = face_recognition.face_encodings(img, locations)
            # (top, right, bottom, left) → (x1, y1, x2, y2)
            found[path.name] = [(np.array([l, t, r, b], np.float32), e)
                                for (t, r, b, l), e in zip(locations, encodings)]
            vectors += encodings
    with monitor.stage("compare"):
        for v in vectors:
            face_recognition.face_distance(vectors, v)
    return found


def plain_facenet_loop(photos: Path) -> int:
    """A facenet-pytorch user's v3, as plain as it gets: models once, embed every photo's largest
    face, then every distance in a double loop. Returns the faces embedded."""
    install_shims()
    import torch
    from facenet_pytorch import MTCNN, InceptionResnetV1
    from PIL import Image

    from ..embed import synthetic_facenet_state

    mtcnn = MTCNN(image_size=160, margin=0, min_face_size=20, post_process=False, device="cpu")
    resnet = InceptionResnetV1(pretrained=None).eval()
    resnet.load_state_dict(synthetic_facenet_state())
    vectors = []
    for path in sorted(p for p in photos.iterdir() if p.is_file()):
        face = mtcnn(Image.open(path).convert("RGB"))
        if face is not None:
            with torch.no_grad():
                vectors.append(resnet(face.unsqueeze(0))[0].numpy())
    [[float(np.linalg.norm(a - b)) for b in vectors] for a in vectors]
    return len(vectors)


if __name__ == "__main__":
    print(plain_facenet_loop(Path(sys.argv[1])), "faces")
