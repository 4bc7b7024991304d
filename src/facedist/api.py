"""The Python API: the same verbs as the command line.

    summary = facedist.run("photos", out="out", model="dlib-resnet")
    db = facedist.open_db("out")
    table = db.faces()                      # paths, boxes, embeddings of the last run's model
    for match in db.near("query.jpg", k=5): ...
    db.export("out/export")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Settings
from .store import FaceStore, FaceTable


def run(photos: str | Path, out: str | Path, config: str | Path | None = None, **settings):
    """Run the pipeline (see Settings for the keyword arguments); returns pipeline.RunSummary."""
    from . import pipeline
    from .config import load_yaml

    s = Settings(photos=Path(photos), out=Path(out))
    if config:
        s.update(load_yaml(config))
    s.update(settings)
    return pipeline.run(s)


@dataclass
class Match:
    query_face: int  # index of the face in the query image (largest first)
    rank: int
    path: str
    face_index: int
    distance: float


class FaceDB:
    """Read access to an output folder's database, for the settings of its last run."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.store = FaceStore(self.out)
        last = self.store.last_run()
        if last is None:
            raise FileNotFoundError(f"{self.out}: no facedist run recorded here")
        self.pipeline_key = last["pipeline_key"]
        self.settings = Settings().update({k: v for k, v in last["settings"].items()
                                           if k not in ("detect",)})
        self.settings.update(last["settings"].get("detect", {}))

    def faces(self) -> FaceTable:
        return self.store.faces(self.pipeline_key)

    def near(self, image: str | Path, k: int = 10, weights: str | None = None) -> list[Match]:
        """The k stored faces nearest to each face found in `image`."""
        from .compare import nearest
        from .pipeline import FacePipeline

        if weights:
            self.settings.weights = weights
        # The query goes through exactly the run's decode → detect → align → embed.
        [found] = FacePipeline(self.settings).process_files([Path(image)])
        if found.reason:
            raise ValueError(f"{image}: {found.reason}")
        queries = found.embeddings
        table = self.faces()
        if len(table) == 0 or len(queries) == 0:
            return []
        idx, dist = nearest(queries, table.embeddings, k)
        return [Match(q, r + 1, table.paths[j], int(table.face_index[j]), float(dist[q, r]))
                for q in range(len(queries)) for r, j in enumerate(idx[q])]

    def export(self, dest: str | Path | None = None) -> list[Path]:
        """embeddings.npy + faces.csv (+ faces.parquet when pyarrow is installed)."""
        from .report import write_csv

        dest = Path(dest) if dest else self.out / "export"
        dest.mkdir(parents=True, exist_ok=True)
        t = self.faces()
        np.save(dest / "embeddings.npy", t.embeddings.astype(np.float32))
        header = ["row", "face_id", "path", "face_index", "x1", "y1", "x2", "y2", "prob"]
        rows = [[i, int(t.face_ids[i]), t.paths[i], int(t.face_index[i]),
                 *map(float, t.boxes[i]), float(t.probs[i])] for i in range(len(t))]
        write_csv(dest / "faces.csv", header, rows)
        written = [dest / "embeddings.npy", dest / "faces.csv"]
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            return written
        cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
        cols["embedding"] = [v.tolist() for v in t.embeddings]
        pq.write_table(pa.table(cols), dest / "faces.parquet")
        return written + [dest / "faces.parquet"]

    def close(self) -> None:
        self.store.close()


def open_db(out: str | Path) -> FaceDB:
    return FaceDB(out)
