"""The Python API: the same verbs as the command line.

    summary = facedist.run("photos", out="out", model="dlib-resnet")
    db = facedist.open_db("out")
    table = db.faces()                      # paths, boxes, embeddings of the last run's model
    for match in db.near("query.jpg", k=5): ...
    db.people()                             # [Person(id, name, faces, photos)], named first
    db.name_person(3, "Ana"); db.merge_people(3, 7); db.apart(3, 9); db.move_face(1234, None)
    db.lookalikes(10)                       # closest faces of different people
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


@dataclass
class Lookalike:
    """Two faces of different people, and how close they are."""

    rank: int
    distance: float
    face_a: int
    path_a: str
    box_a: tuple[float, float, float, float]
    person_a: int
    face_b: int
    path_b: str
    box_b: tuple[float, float, float, float]
    person_b: int


class FaceDB:
    """Read access to an output folder's database, for the settings of its last run."""

    def __init__(self, out: str | Path) -> None:
        from .store import DB_NAME

        self.out = Path(out)
        if not (self.out / DB_NAME).is_file():  # a reader never creates a database
            raise FileNotFoundError(f"{self.out}: no facedist database here (run facedist run first)")
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

        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"-k takes a whole number of neighbours, at least 1, not {k!r}")
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

    # -- people -------------------------------------------------------------------------------
    def people(self) -> list:
        """Every person (people.Person: id, name, faces, photos), named first, then largest."""
        from .people import list_people

        return list_people(self.store, self.pipeline_key)

    def person_of(self, table: FaceTable | None = None) -> np.ndarray:
        """The person id of each face of `table` (default: all faces), -1 for none yet."""
        from .people import person_ids

        table = self.faces() if table is None else table
        return person_ids(self.store, table.face_ids)[0]

    def lookalikes(self, n: int = 50) -> list[Lookalike]:
        """The n closest pairs of faces that belong to different people, closest first."""
        from .report import lookalikes

        if n < 1:
            raise ValueError("-n takes a positive number of pairs")
        t = self.faces()
        person = self.person_of(t)
        return [Lookalike(r + 1, d, int(t.face_ids[a]), t.paths[a], tuple(map(float, t.boxes[a])),
                          int(person[a]), int(t.face_ids[b]), t.paths[b],
                          tuple(map(float, t.boxes[b])), int(person[b]))
                for r, (d, a, b) in enumerate(lookalikes(t, person, n))]

    def _corrected(self):
        """Corrections are stored at once; the CSVs of the output folder follow them."""
        from .report import write_people

        t = self.faces()
        write_people(self.out, t, self.person_of(t), self.store.person_names(self.pipeline_key))

    def name_person(self, person: int, name: str) -> None:
        from .people import Corrections

        Corrections(self.store, self.pipeline_key).name(person, name)
        self._corrected()

    def merge_people(self, into: int, other: int) -> None:
        from .people import Corrections

        Corrections(self.store, self.pipeline_key).merge(into, other)
        self._corrected()

    def move_face(self, face_id: int, person: int | None) -> int:
        """Move a face (faces.csv's face_id) to a person, or to a new one (None)."""
        from .people import Corrections

        moved_to = Corrections(self.store, self.pipeline_key).move(face_id, person)
        self._corrected()
        return moved_to

    def apart(self, a: int, b: int) -> None:
        """`a` and `b` are different people: no later run merges them."""
        from .people import Corrections

        Corrections(self.store, self.pipeline_key).apart(a, b)
        self._corrected()

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
