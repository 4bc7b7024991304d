"""config: every setting of a run, from defaults, a YAML file (--config) and command-line flags.

YAML keys are the long flag names with dashes or underscores, e.g.

    model: facenet-vggface2
    min-face-size: 20
    thresholds: [0.6, 0.7, 0.7]
    faces: largest
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_MAX_PIXELS = 120_000_000  # ~11000 x 11000; larger declared sizes are refused, not decoded


@dataclass
class DetectSettings:
    """MTCNN settings. `exact` runs the reference algorithm on the full-resolution image;
    otherwise P-Net sees images at most `max_side` pixels on their long side (0: no limit, every
    pyramid level at full resolution, as the reference, through the fast resampling)."""

    min_face_size: float = 20.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    faces: str = "all"  # "all" or "largest"
    exact: bool = False
    max_side: int = 1024

    @property
    def decode_max_side(self) -> int | None:
        """Long side JPEGs may be decoded down to (never in exact mode)."""
        return None if self.exact else self.max_side

    def key(self) -> str:
        """Identifies detection results: results made with other settings are not reused."""
        mode = "exact" if self.exact else f"max{self.max_side}"
        t = ",".join(f"{x:g}" for x in self.thresholds)
        return f"mtcnn:{self.min_face_size:g}:{t}:{self.factor:g}:{self.faces}:{mode}"


@dataclass
class Settings:
    """A whole run. `photos` and `out` are required; everything else has a default."""

    photos: Path | None = None
    out: Path | None = None
    model: str = "dlib-resnet"
    weights: str | None = None  # a file path, or "synthetic" (timing only) for FaceNet models
    device: str = "auto"
    detect: DetectSettings = field(default_factory=DetectSettings)
    embed_batch_size: int = 32
    chunk_images: int = 16  # images decoded, detected and stored together
    decode_workers: int = 2
    max_pixels: int = DEFAULT_MAX_PIXELS
    views: int | None = None  # embedding views per face: 1, 2 (+ mirror), 4 (+ a second chip
    # from MTCNN's landmarks, and its mirror; dlib models); None = the model's default
    k: int = 10
    threshold: float | None = None  # pair threshold; None = the model's default
    people_threshold: float | None = None  # average-linkage cut for people; None = the model's
    recluster: bool = False  # cluster all faces again (else only new faces join or form people)
    matrix_max_faces: int = 50_000  # above this no full matrix is written (N^2 grows fast)
    progress: bool = True
    # measurement (monitor / profiler)
    sample_interval: float = 0.1
    plot: bool = False
    profile: bool = False

    def update(self, values: Mapping[str, Any]) -> "Settings":
        """Apply a mapping of settings (YAML or flags); unknown keys are an error."""
        top = {f.name for f in dataclasses.fields(self)}
        det = {f.name for f in dataclasses.fields(DetectSettings)}
        for raw_key, value in values.items():
            if value is None:
                continue
            key = raw_key.replace("-", "_")
            if key in det:
                if key == "thresholds":
                    value = tuple(float(v) for v in value)
                    if len(value) != 3:
                        raise ValueError("thresholds takes three numbers (P-, R-, O-Net)")
                setattr(self.detect, key, value)
            elif key in top and key != "detect":
                if key in ("photos", "out"):
                    value = Path(value)
                setattr(self, key, value)
            else:
                raise ValueError(f"unknown setting {raw_key!r}")
        if self.detect.faces not in ("all", "largest"):
            raise ValueError("faces must be 'all' or 'largest'")
        if self.people_threshold is not None and not self.people_threshold > 0:
            raise ValueError("people-threshold takes a distance above 0")
        if self.views is not None and self.views not in (1, 2, 4):
            raise ValueError("views takes 1, 2 or 4")
        if self.detect.max_side < 0:
            raise ValueError("max-side takes a number of pixels, or 0 for no limit")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("photos", "out"):
            d[key] = str(d[key]) if d[key] is not None else None
        return d


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    return data
