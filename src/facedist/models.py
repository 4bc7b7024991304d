"""models: the weights registry. One entry per network: how to build it, where its weights come
from, their SHA-256, input size and normalization.

Adding an embedder is one `EmbedderSpec` in `EMBEDDERS` plus its build function; nothing else in
the pipeline names a model.
"""
from __future__ import annotations

import bz2
import functools
import hashlib
import importlib.util
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PACKAGE_WEIGHTS = Path(__file__).parent / "weights"

# MTCNN, vendored from facenet-pytorch 2.6.0 (MIT) by tools/convert_mtcnn_weights.py.
MTCNN_SHA256 = {
    "pnet": "f599b67ea1476af1ca0a7ff397ce1223380516d89c730e8d7cdfe12c066b0091",
    "rnet": "ab2a340956c979f3edbe215f08b4b7f2b225e152f8a45dc3d94c82c169673082",
    "onet": "1b712dfcf3a9bcf85581ad30ccde8e2f8d2eb215e6d6fe9b91f0b2c0f5be3c3b",
}


from .atomic import replacing
from .config import Settings
from .errors import WeightsError


class WeightsUnavailable(WeightsError):
    """The weights of a model are missing or damaged; the message says what to do."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a weights file comes from: `package`, a file inside an installed (not imported)
    Python distribution, used where that is installed; else the cache's copy, downloaded from
    `url` on first use (bz2-compressed there when `compressed`), checked against `sha256`."""

    filename: str
    url: str | None = None
    package: str | None = None
    sha256: str | None = None  # None: recorded on first download and checked from then on
    license: str = ""
    converted_sha256: str | None = None  # of the file facedist converts it into, if it does
    compressed: str | None = None  # "bz2": the url serves the file bz2-compressed


@dataclass(frozen=True)
class EmbedderSpec:
    name: str
    dim: int
    input_size: int  # square crop side in pixels
    alignment: str  # "box" (crop the detector box) or "dlib-chip" (5-point similarity warp)
    normalization: str  # how crops become network input, in words
    default_threshold: float  # same-person distance threshold for pair listings
    people_threshold: float  # average-linkage cut for people (cluster.py)
    min_quality: float  # faces under this quality (quality.py) never shape people (Settings)
    default_views: int  # embedding views per face (Settings.views)
    weights: WeightsSource
    network: str  # which embed.py class runs it: "facenet", "dlib" (PyTorch port), "dlib-native"
    # two single faces start a person only under this (cluster.average_linkage's single_cut;
    # bench/results-people/people-cut.md)
    people_single_threshold: float | None = None


# dlib's models: the same files as in the face_recognition_models package, which is used where
# installed (pip install 'facedist[dlib-models]': 126 MB, mostly a 68-point predictor facedist
# never uses); else downloaded from dlib-models and checked against the package files' SHA-256.
_DLIB_MODELS = "https://github.com/davisking/dlib-models/raw/master/"
_DLIB_DAT = WeightsSource(
    "dlib_face_recognition_resnet_model_v1.dat", package="face_recognition_models",
    url=_DLIB_MODELS + "dlib_face_recognition_resnet_model_v1.dat.bz2", compressed="bz2",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    license="public domain (dlib-models)",
    converted_sha256="80a9ba80f46709b16ac134c4fa189ecc104209f7ab0a9666d365eedde13f7b77")

_FACENET_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"

# The quality gates (quality.py): on lfw-dev 0.2% of the photos' own faces fall under 0.4 and 72%
# of the other detections (bench/results-quality); chosen there with the first-screen figures
# (bench/results-quality/first-screen.md)
MIN_QUALITY_DLIB = 0.4
MIN_QUALITY_FACENET = 0.4

EMBEDDERS: dict[str, EmbedderSpec] = {
    # dlib's ResNet ported to PyTorch (nets/dlib_resnet.py): same embeddings, batched, all cores.
    "dlib-resnet": EmbedderSpec(
        name="dlib-resnet", dim=128, input_size=150, alignment="dlib-chip",
        normalization="(x - RGB mean) / 256 on dlib's 150x150 chip (padding 0.25)",
        default_threshold=0.4, people_threshold=0.37, min_quality=MIN_QUALITY_DLIB,
        default_views=4, weights=_DLIB_DAT, network="dlib", people_single_threshold=0.33),
    # dlib's own C++ implementation of the same network (single-threaded), for reference.
    "dlib-resnet-native": EmbedderSpec(
        name="dlib-resnet-native", dim=128, input_size=150, alignment="dlib-chip",
        normalization="dlib's own", default_threshold=0.4, people_threshold=0.37,
        min_quality=MIN_QUALITY_DLIB, default_views=4, weights=_DLIB_DAT,
        network="dlib-native", people_single_threshold=0.33),
    "facenet-vggface2": EmbedderSpec(
        name="facenet-vggface2", dim=512, input_size=160, alignment="box",
        normalization="(x - 127.5) / 128", default_threshold=1.0, people_threshold=0.8,
        min_quality=MIN_QUALITY_FACENET, default_views=1,
        weights=WeightsSource("20180402-114759-vggface2.pt", url=_FACENET_RELEASE +
                              "20180402-114759-vggface2.pt", license="MIT (facenet-pytorch)"),
        network="facenet"),
    "facenet-casia": EmbedderSpec(
        name="facenet-casia", dim=512, input_size=160, alignment="box",
        normalization="(x - 127.5) / 128", default_threshold=1.0, people_threshold=0.8,
        min_quality=MIN_QUALITY_FACENET, default_views=1,
        weights=WeightsSource("20180408-102900-casia-webface.pt", url=_FACENET_RELEASE +
                              "20180408-102900-casia-webface.pt", license="MIT (facenet-pytorch)"),
        network="facenet"),
}

DLIB_SHAPE_PREDICTOR = WeightsSource(
    "shape_predictor_5_face_landmarks.dat", package="face_recognition_models",
    url=_DLIB_MODELS + "shape_predictor_5_face_landmarks.dat.bz2", compressed="bz2",
    sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    license="public domain (dlib-models)")

# the files shipped inside facedist itself
MTCNN_FILES = tuple(WeightsSource(f"weights/{name}.safetensors", package="facedist", sha256=digest,
                                  license="MIT (facenet-pytorch)")
                    for name, digest in MTCNN_SHA256.items())


# what `facedist weights` lists and fetches: the detector, then every embedder
WEIGHTS_MODELS = ("mtcnn", *EMBEDDERS)


def weights_files(model: str) -> tuple[WeightsSource, ...]:
    """Every file a model needs: `mtcnn` (the detector) or an embedder with its aligner's."""
    if model == "mtcnn":
        return MTCNN_FILES
    if model not in EMBEDDERS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(WEIGHTS_MODELS)}")
    spec = EMBEDDERS[model]
    return (spec.weights,) + ((DLIB_SHAPE_PREDICTOR,) if spec.alignment == "dlib-chip" else ())


@dataclass(frozen=True)
class WeightsStatus:
    """Where one file of a model is, if anywhere (`facedist weights`)."""

    model: str
    source: WeightsSource
    path: Path | None  # None: not here yet (`facedist weights fetch MODEL` gets it)
    where: str  # "package NAME", "cache" or "missing"


def weights_status() -> list[WeightsStatus]:
    """Each model's files and where they are, without downloading or hashing anything."""
    rows = []
    for model in WEIGHTS_MODELS:
        for source in weights_files(model):
            path, where = _installed(source), f"package {source.package}"
            if path is None:
                cached = _cached(source)
                path, where = (cached, "cache") if cached.is_file() else (None, "missing")
            rows.append(WeightsStatus(model, source, path, where))
    return rows


def fetch_weights(model: str) -> list[Path]:
    """Every file of `model` made present (downloaded where missing) and checked; their paths."""
    return [resolve_file(source, model) for source in weights_files(model)]


def get_spec(name: str) -> EmbedderSpec:
    try:
        return EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(EMBEDDERS)}") from None


# What the settings resolve to with the registry's defaults (no torch: read commands use them).
def pipeline_key(settings: Settings) -> str:
    # fp32 gives the same answers on every device; fp16 embeddings are not reused by fp32 runs
    precision = "" if settings.precision == "fp32" else f"|{settings.precision}"
    return f"{settings.detect.key()}|{settings.model}|views{resolved_views(settings)}{precision}"


def resolved_views(settings: Settings) -> int:
    """Embedding views per face: the setting, or the model's default."""
    return settings.views if settings.views is not None else get_spec(settings.model).default_views


def resolved_min_quality(settings: Settings) -> float:
    """The quality gate in force: the setting, else the model's."""
    if settings.min_quality is not None:
        return settings.min_quality
    return get_spec(settings.model).min_quality


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


def _installed(source: WeightsSource) -> Path | None:
    """The file inside its installed package, found without importing the package (the
    face_recognition_models package imports pkg_resources, gone from new setuptools)."""
    if source.package is None:
        return None
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for path in (Path(root) / "models" / source.filename, Path(root) / source.filename):
            if path.is_file():
                return path
    return None


def _cached(source: WeightsSource) -> Path:
    """Where the cache keeps (or would keep) a registry file."""
    return cache_dir() / "weights" / source.filename


def resolve_file(source: WeightsSource, model: str, download: bool = True) -> Path:
    """A registry file's local path, checked against its SHA-256: its package's copy where that
    package is installed, else the cache's, downloaded there first if allowed. Raises
    WeightsUnavailable with what to do."""
    path = _installed(source)
    if path is None:
        path = _cached(source)
        if not path.is_file() and download and source.url and not offline():
            try:
                _download(source, path)
            except OSError as exc:
                raise WeightsUnavailable(_missing_message(source, model, path,
                                                          f"download failed: {exc}")) from None
        if not path.is_file():
            raise WeightsUnavailable(_missing_message(source, model, path, "not downloaded"))
    _check_sha256(path, source.sha256)
    return path


def resolve_weights(spec: EmbedderSpec, override: str | None = None,
                    download: bool = True) -> Path:
    """The local path of an embedder's weights: `override` if given, else `resolve_file`'s."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"--weights {override}: no such file")
        return path
    return resolve_file(spec.weights, spec.name, download)


def _missing_message(source: WeightsSource, model: str, cached: Path, why: str) -> str:
    if source.url is None:  # shipped inside a package only
        return f"{source.filename} comes with the Python package {source.package!r}: reinstall it"
    also = f" (or pip install {source.package}, which ships it)" if source.package else ""
    flag = (", or pass --weights FILE" if any(spec.weights is source for spec in EMBEDDERS.values())
            else "")
    return (f"model {model} needs {source.filename} ({why}). Run `facedist weights fetch {model}` "
            f"on a machine with internet access: it downloads {source.url} into {cached.parent}"
            f"{also}; or download it yourself and copy it to {cached}{flag}.")


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


def _download(source: WeightsSource, dest: Path) -> None:
    """source.url into dest (decompressed), under its real name only once whole and, where the
    registry has its SHA-256, matching it."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    unpack = bz2.BZ2Decompressor().decompress if source.compressed == "bz2" else (lambda b: b)
    # a killed or refused download never leaves a file under the real name
    with urllib.request.urlopen(source.url, timeout=30) as resp, replacing(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            for block in iter(lambda: resp.read(1 << 20), b""):
                data = unpack(block)
                out.write(data)
                h.update(data)
                bar.update(len(block))
        if source.sha256 is not None and h.hexdigest() != source.sha256:
            raise WeightsUnavailable(f"{source.url} gave a file whose SHA-256 {h.hexdigest()} is "
                                     f"not the expected {source.sha256}; nothing was kept")
    dest.with_name(dest.name + ".sha256").write_text(h.hexdigest() + "\n")


def load_mtcnn():
    """P-, R- and O-Net with the vendored weights, checked against their SHA-256, in eval mode."""
    from safetensors.torch import load_file

    from .nets.mtcnn import ONet, PNet, RNet

    nets = []
    for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
        path = PACKAGE_WEIGHTS / f"{name}.safetensors"
        _check_sha256(path, MTCNN_SHA256[name])  # MTCNN_FILES' hashes
        net = cls()
        net.load_state_dict(load_file(str(path)), strict=True)
        nets.append(net.eval().requires_grad_(False))
    return nets
