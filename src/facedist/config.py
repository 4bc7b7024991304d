"""config: every setting of a run, from defaults, a YAML file (--config) and command-line flags.

YAML keys are the long flag names with dashes or underscores, e.g.

    model: facenet-vggface2
    min-face-size: 20
    thresholds: [0.6, 0.7, 0.7]
    faces: largest
"""
from __future__ import annotations

import dataclasses
import functools
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

PRECISIONS = ("fp32", "fp16")  # backend.py: what each means
DEFAULT_MAX_PIXELS = 120_000_000  # ~11000 x 11000; larger declared sizes are refused, not decoded


@dataclass
class DetectSettings:
    """MTCNN settings. `exact` runs the reference algorithm on the full-resolution image;
    otherwise P-Net sees images at most `max_side` pixels on their long side (0: no limit, every
    pyramid level at full resolution, as the reference, through the fast resampling). Images
    wider than 2:1 (panoramas) get the area of a 2:1 image instead (see `side_limit`)."""

    min_face_size: float = 20.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    faces: str = "all"  # "all" or "largest"
    exact: bool = False
    max_side: int = 1024

    @property
    def decode_max_side(self) -> int | None:
        """Long side JPEGs may be decoded down to (never in exact mode), before `side_limit`."""
        return None if self.exact else self.max_side

    def key(self) -> str:
        """Identifies detection results: results made with other settings are not reused."""
        mode = "exact" if self.exact else f"max{self.max_side}"
        t = ",".join(f"{x:g}" for x in self.thresholds)
        return f"mtcnn:{self.min_face_size:g}:{t}:{self.factor:g}:{self.faces}:{mode}"


def side_limit(max_side: int | None, width: int, height: int) -> int | None:
    """The long side to which a width x height image is decoded (at least) and searched by
    P-Net (at most) under `max_side` (None or 0: no limit). Photos up to 2:1 get max_side itself;
    wider ones (a 30000 x 300 panorama) the long side that gives them the area of a 2:1 image
    with max_side on its long side: by the long side alone, a panorama's faces would shrink
    below P-Net's 12 px window (to 10 px there) and none would be found.

    >>> side_limit(1024, 4000, 3000), side_limit(1024, 2000, 1000), side_limit(1024, 30000, 300)
    (1024, 1024, 7240)
    """
    if not max_side:
        return None
    ratio = max(width, height) / max(1, min(width, height))
    return max(max_side, int(max_side * math.sqrt(ratio / 2)))


@dataclass
class Settings:
    """A whole run. `photos` and `out` are required; everything else has a default."""

    photos: Path | None = None
    out: Path | None = None
    model: str = "dlib-resnet"
    weights: str | None = None  # a file path, or "synthetic" (timing only) for FaceNet models
    device: str = "auto"
    precision: str = "fp32"  # "fp16": the embedder in half precision on a GPU (backend.py)
    detect: DetectSettings = field(default_factory=DetectSettings)
    # None: the backend's (backend.py): 32, 16 and 2 on CPU; 256, 256 and every core on a GPU
    embed_batch_size: int | None = None
    chunk_images: int | None = None  # images decoded, detected and stored together
    decode_workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    views: int | None = None  # embedding views per face: 1, 2 (+ mirror), 4 (+ a second chip
    # from MTCNN's landmarks, and its mirror; dlib models); None = the model's default
    k: int = 10
    threshold: float | None = None  # pair threshold; None = the model's default
    people_threshold: float | None = None  # average-linkage cut for people; None = the model's
    recluster: bool = False  # cluster all faces again (else only new faces join or form people)
    # faces under this quality (quality.py) never shape people nor look-alikes; None = the
    # model's, 0 = no gate
    min_quality: float | None = None
    same_photo_apart: bool = True  # faces of one photo never become one person by themselves
    matrix_max_faces: int = 50_000  # above this no full matrix is written (N^2 grows fast)
    exact_neighbors: bool | None = None  # None: exact below compare.APPROX_FROM faces, else HNSW
    max_pairs: int = 1_000_000  # pairs listed at most, the closest (pairs.csv / .parquet)
    # where photos are processed (engines/): "local" (this process) or "ray" (a Ray cluster)
    engine: str = "local"
    ray_actors: int | None = None  # Ray actors; None: one per ray_actor_cpus CPUs (or per GPU)
    ray_actor_cpus: int = 1  # CPUs each Ray actor takes (its torch threads)
    progress: bool = True
    wait: bool = False  # another run holds the output folder: wait for it (else exit 6 at once)
    # measurement (monitor / profiler)
    sample_interval: float = 0.1
    plot: bool = False
    profile: bool = False
    report: bool = False  # write OUT/report/index.html after the run (report/html.py)
    tags: bool = True  # read names from the photos' XMP face regions (xmp.py; --no-tags: not)

    def update(self, values: Mapping[str, Any]) -> "Settings":
        """Apply a mapping of settings (YAML, flags or API keywords), each checked as it enters:
        a wrong key, type or range raises ValueError with one line naming the setting and what
        it takes (the CLI prints it and exits 2, before any work)."""
        top = {f.name for f in dataclasses.fields(self)}
        det = {f.name for f in dataclasses.fields(DetectSettings)}
        for raw_key, value in values.items():
            if value is None:
                continue
            key = str(raw_key).replace("-", "_")
            if key not in det and (key not in top or key == "detect"):
                raise ValueError(f"unknown setting {raw_key!r}")
            value = _checked(key, value)
            setattr(self.detect if key in det else self, key, value)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("photos", "out"):
            d[key] = str(d[key]) if d[key] is not None else None
        return d


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The settings mapping of a YAML file; a file that is not one raises a one-line ValueError."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_unique_keys_loader()) or {}
    except _TwiceError as exc:
        raise ValueError(f"{path}: {exc}: keep one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).strip().splitlines()[0]
        raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the settings file: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    return data


class _TwiceError(Exception):
    pass


@functools.lru_cache(maxsize=None)
def _unique_keys_loader():
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        lines: dict = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                twice = key in lines
            except TypeError:  # an unhashable key: the safe loader says what is wrong with it
                continue
            if twice:
                raise _TwiceError(f"the setting {key!r} is given twice (lines {lines[key]} and "
                                  f"{key_node.start_mark.line + 1})")
            lines[key] = key_node.start_mark.line + 1
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def _number(kind: type, test, takes: str):
    def check(name: str, value: Any) -> Any:
        ok_type = (isinstance(value, (int, float)) and not isinstance(value, bool)
                   and (not isinstance(value, float) or math.isfinite(value)) and (kind is float or float(value).is_integer()))
        if not ok_type or not test(value):
            raise ValueError(f"{name.replace('_', '-')} takes {takes}, not {value!r}")
        return kind(value)
    return check


def _choice(*allowed):
    def check(name: str, value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f"{name.replace('_', '-')} takes one of {', '.join(map(str, allowed))}, "
                             f"not {value!r}")
        return value
    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name.replace('_', '-')} takes true or false, not {value!r}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, (str, Path)):
        raise ValueError(f"{name.replace('_', '-')} takes a text, not {value!r}")
    return str(value)


def _thresholds(name: str, value: Any) -> tuple[float, float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                       for v in value)):
        raise ValueError(f"thresholds takes three numbers from 0 to 1 (P-, R-, O-Net), not {value!r}")
    return tuple(float(v) for v in value)


# What each setting takes. Sizes and counts are positive; MTCNN's smallest window is 12 px, and
# a smaller face size would blow every photo up (memory grows without bound).
_CHECKS = {
    "photos": lambda n, v: Path(_text(n, v)), "out": lambda n, v: Path(_text(n, v)),
    "model": _text, "weights": _text, "device": _text, "precision": _choice(*PRECISIONS),
    "min_face_size": _number(float, lambda v: v >= 12, "a face size in pixels, at least 12"),
    "thresholds": _thresholds,
    "factor": _number(float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)"),
    "faces": _choice("all", "largest"),
    "exact": _flag,
    "max_side": _number(int, lambda v: v >= 0, "a number of pixels, or 0 for no limit"),
    "embed_batch_size": _number(int, lambda v: v >= 1, "a whole number, at least 1"),
    "chunk_images": _number(int, lambda v: v >= 1, "a whole number, at least 1"),
    "decode_workers": _number(int, lambda v: v >= 1, "a whole number, at least 1"),
    "max_pixels": _number(int, lambda v: v >= 1, "a number of pixels, at least 1"),
    "views": _choice(1, 2, 4),
    "k": _number(int, lambda v: v >= 1, "a whole number of neighbours, at least 1"),
    "threshold": _number(float, lambda v: v > 0, "a distance above 0"),
    "people_threshold": _number(float, lambda v: v > 0, "a distance above 0"),
    "min_quality": _number(float, lambda v: 0 <= v <= 1, "a quality from 0 to 1 (0: no gate)"),
    "same_photo_apart": _flag,
    "recluster": _flag, "progress": _flag, "wait": _flag, "plot": _flag, "profile": _flag,
    "report": _flag, "tags": _flag,
    "matrix_max_faces": _number(int, lambda v: v >= 0, "a number of faces, 0 or more"),
    "exact_neighbors": _flag,
    "max_pairs": _number(int, lambda v: v >= 0, "a number of pairs, 0 or more"),
    "engine": _choice("local", "ray"),
    "ray_actors": _number(int, lambda v: v >= 1, "a whole number of actors, at least 1"),
    "ray_actor_cpus": _number(int, lambda v: v >= 1, "a whole number of CPUs, at least 1"),
    "sample_interval": _number(float, lambda v: v > 0, "a number of seconds above 0"),
}


def _checked(key: str, value: Any) -> Any:
    return _CHECKS[key](key, value)


MAX_ID = 2 ** 63 - 1  # SQLite's largest integer: no stored id (person, face) is larger
_ID_SOURCE = {"person": "`facedist people OUT`", "face": "faces.csv"}


def checked_id(value: Any, kind: str) -> int:
    """`value` (a whole number, or its digits as typed) as the id of a `kind`, "person" or
    "face", before it reaches the database: 0 <= id < 2**63 (SQLite's integers). A ValueError
    of one line (exit 2) else: "no person N" for a number no id can be, "... is not a person id"
    for anything that is no whole number.

    >>> checked_id("12", "person"), checked_id(7, "face")
    (12, 7)
    >>> checked_id("99999999999999999999", "person")
    Traceback (most recent call last):
    ValueError: no person 99999999999999999999 (see `facedist people OUT`)
    """
    import re

    source = _ID_SOURCE[kind]
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        text = value.strip()
    elif not isinstance(value, (bool, str)) and hasattr(value, "__index__"):
        text = str(operator.index(value))  # int, NumPy's integers
    else:
        text = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
        raise ValueError(f"{text} is not a {kind} id: ids are whole numbers (see {source})")
    if len(text) > 40 or not 0 <= int(text) <= MAX_ID:  # int() of 4300 digits or more raises
        raise ValueError(f"no {kind} {text if len(text) <= 40 else text[:39] + '…'} "
                         f"(see {source})")
    return int(text)
