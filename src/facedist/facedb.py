"""facedb: the read side of an output folder (FaceDB), and the corrections written through it.

A FaceDB opens the database read-only, checked first (works on read-only media); it reads the
last finished run's faces, people, look-alikes and Parquet tables, runs queries (`near`), writes
exports and reports elsewhere, and applies corrections through a writer of their own while
holding the output folder. The API (api.py) re-exports it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Settings, checked_id
from .errors import explained
from .store import FaceStore, FaceTable, OutputLock


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
        self.out = Path(out)
        with explained(self.out):
            # checked first, and read-only: a reader never writes, so it works on read-only
            # media; corrections open a writer of their own (_correct)
            self.store = FaceStore(self.out, create=False, check=True, readonly=True)
            last = self.store.last_run()
        if last is None:
            raise FileNotFoundError(f"{self.out}: no finished facedist run here")
        self.run_id = last["id"]  # readers see this run's results, not those of one going on
        self.pipeline_key = last["pipeline_key"]
        self.settings = Settings().update({k: v for k, v in last["settings"].items()
                                           if k not in ("detect",)})
        self.settings.update(last["settings"].get("detect", {}))
        self._compute = None  # the run's models, built on the first `near` and kept
        self._review = None  # (review.ReviewQueue, the database version it reflects)
        self._review_table = None

    def faces(self) -> FaceTable:
        """The faces of the last finished run, with their quality (computed here for faces
        stored before quality was)."""
        from .quality import fill_quality

        with explained(self.out):
            table = self.store.faces(self.pipeline_key, upto_run=self.run_id)
        table.check_embeddings(self.out)
        if np.isnan(table.quality).any():
            fill_quality(table, self.store.image_sizes(), self.settings.model)
        return table

    @property
    def min_quality(self) -> float:
        """The quality gate of the last run (its setting, else its model's)."""
        from .models import resolved_min_quality

        return resolved_min_quality(self.settings)

    def ignored(self, table: FaceTable | None = None) -> np.ndarray:
        """Per face of `table` (default: all), whether the user set it aside (`ignore`)."""
        table = self.faces() if table is None else table
        return np.isin(table.face_ids, np.fromiter(self.store.ignored(self.pipeline_key), np.int64))

    def near(self, image, k: int = 10, weights: str | None = None) -> list[Match]:
        """The k stored faces nearest to each face found in `image` (a path, or an image as
        Analyzer.get takes it)."""
        from .compare import nearest
        from .decode import as_decoded
        from .discover import display_path

        if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
            raise ValueError(f"-k takes a whole number of neighbours, at least 1, not {k!r}")
        from .compute import FacePipeline

        if weights and weights != self.settings.weights:
            self.settings.weights = weights
            self._close_compute()
        if self._compute is None:
            self._compute = FacePipeline(self.settings)
        # The query goes through exactly the run's decode → detect → align → embed.
        query = as_decoded(image, self.settings.max_pixels, self.settings.detect.decode_max_side)
        [found] = self._compute.process_images([query])
        if found.reason:
            raise ValueError(f"{display_path(image) if isinstance(image, (str, Path)) else 'image'}: "
                             f"{found.reason}")
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

        return list_people(self.store, self.pipeline_key, self.run_id)

    def person_of(self, table: FaceTable | None = None) -> np.ndarray:
        """The person id of each face of `table` (default: all faces), -1 for none (unclear,
        ignored, or not placed yet)."""
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
                for r, (d, a, b) in enumerate(lookalikes(t, person, n,
                                                         min_quality=self.min_quality))]

    def _correct(self, action: str, *values, settle: str | None = None):
        """Apply a people.Corrections action while holding the output folder (a run going on
        would overwrite the CSVs), then rewrite the CSVs that follow people."""
        from .people import Corrections
        from .report import write_people

        with explained(self.out), OutputLock(self.out, what=f"people {action}"):
            self.faces()  # damaged embeddings are found before anything is written
            writer = FaceStore(self.out, create=False, check=True)
            try:
                result = getattr(Corrections(writer, self.pipeline_key), action)(*values)
                if settle:  # the review question this correction answers (review.py)
                    writer.settle(self.pipeline_key, settle, f"people {action}")
            finally:
                writer.close()
            t = self.faces()
            names = self.store.person_names(self.pipeline_key)
            write_people(self.out, t, self.person_of(t), names, self.min_quality, self.ignored(t))
        return result

    # every id is checked as it enters (config.checked_id): one no id can be is a ValueError
    def name_person(self, person: int, name: str) -> None:
        self._correct("name", checked_id(person, "person"), name)

    def merge_people(self, into: int, other: int) -> None:
        self._correct("merge", checked_id(into, "person"), checked_id(other, "person"))

    def move_face(self, face_id: int, person: int | None) -> int:
        """Move a face (faces.csv's face_id) to a person, or to a new one (None)."""
        return self._correct("move", checked_id(face_id, "face"),
                             None if person is None else checked_id(person, "person"))

    def apart(self, a: int, b: int) -> None:
        """`a` and `b` are different people: no later run merges them, and the review never
        asks whether they are one."""
        a, b = checked_id(a, "person"), checked_id(b, "person")
        self._correct("apart", a, b, settle=f"same:{min(a, b)}:{max(a, b)}")

    def ignore_face(self, face_id: int) -> None:
        """Set a face aside (a stranger, a false detection): out of people, look-alikes and
        the report's main pages, in every later run."""
        self._correct("ignore_face", checked_id(face_id, "face"))

    def ignore_person(self, person: int) -> int:
        """Set every face of a person aside; returns how many."""
        return self._correct("ignore_person", checked_id(person, "person"))

    def unignore_face(self, face_id: int) -> None:
        self._correct("unignore_face", checked_id(face_id, "face"))

    def unignore_person(self, person: int) -> int:
        """Give back the faces ignored with `person`; returns how many."""
        return self._correct("unignore_person", checked_id(person, "person"))

    # -- review (review.py) -------------------------------------------------------------------
    def _data_version(self) -> int:
        return self.store.db.execute("PRAGMA data_version").fetchone()[0]

    def review_queue(self):
        """The review queue (review.ReviewQueue) of the people as stored now: built once, kept
        up to date by `answer`, built again when someone else changed the people."""
        from .models import get_spec
        from .people import person_ids
        from .review import ReviewQueue

        version = self._data_version()
        if self._review is not None and self._review[1] == version:
            return self._review[0]
        if self._review_table is None:
            self._review_table = self.faces()
        t = self._review_table
        person, pinned = person_ids(self.store, t.face_ids)
        cut = self.settings.people_threshold or get_spec(self.settings.model).people_threshold
        queue = ReviewQueue(t.face_ids, t.embeddings, person,
                            self.store.person_names(self.pipeline_key), cut, pinned,
                            self.store.settled(self.pipeline_key), self.ignored(t))
        self._review = (queue, version)
        return queue

    def review_questions(self, n: int = 10) -> list:
        """The n review questions worth most now (review.Question), best first."""
        if n < 0:
            raise ValueError("-n takes a number of questions, 0 or more")
        return self.review_queue().questions(n)

    def review_progress(self) -> dict:
        """answered: questions settled so far; left: questions worth asking now."""
        queue = self.review_queue()
        return {"answered": len(queue.settled), "left": len(queue.questions(10 ** 9)),
                "undoable": self.store.answers(self.pipeline_key)}

    def answer(self, question_id: str, answer) -> dict:
        """Answer a review question ("yes", "no", "skip", "ignore"; for "who is this?" also
        {"person": ID} or {"name": NAME}): its corrections are written at once, holding the
        output folder (errors.Busy while a run holds it), and the question is settled.
        Returns {"question", "answer", "done": [[action, *values, result], ...]}."""
        import json

        from .people import Corrections
        from .review import changes, mirror, plan

        with explained(self.out), OutputLock(self.out, what="review answer"):
            queue = self.review_queue()
            actions = plan(queue, question_id, answer)
            q = queue.question(question_id)
            people = [q.a, q.b] + [int(a[1]) for a in actions if a[0] == "merge"]
            if q.face is not None:
                people.append(queue.person_of_face(q.face))
            writer = FaceStore(self.out, create=False, check=False)
            done = []
            try:
                before = writer.people_snapshot(self.pipeline_key, people,
                                                [] if q.face is None else [q.face])
                fix = Corrections(writer, self.pipeline_key)
                for action, *values in actions:
                    done.append([action, *values, getattr(fix, action)(*values)])
                said = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
                writer.log_answer(self.pipeline_key, question_id, said, before)
            finally:
                writer.close()
            queue.learn(q, changes(queue, actions))
            for action, *values, result in done:
                mirror(queue, action, tuple(values), result)
            queue.settle(question_id)
            self._review = (queue, self._data_version())
            self._write_people_csvs()
        return {"question": question_id, "answer": answer, "done": done}

    def undo(self) -> dict | None:
        """Take back the last review answer (its people as they were, its question open);
        None when there is none."""
        with explained(self.out), OutputLock(self.out, what="review undo"):
            writer = FaceStore(self.out, create=False, check=False)
            try:
                undone = writer.undo_answer(self.pipeline_key)
            finally:
                writer.close()
            self._review = None
            if undone is not None:
                self._write_people_csvs()
        return None if undone is None else {"question": undone[0], "answer": undone[1]}

    def _write_people_csvs(self) -> None:
        from .report import write_people

        t = self._review_table if self._review_table is not None else self.faces()
        names = self.store.person_names(self.pipeline_key)
        write_people(self.out, t, self.person_of(t), names, self.min_quality, self.ignored(t))

    def export(self, dest: str | Path | None = None) -> list[Path]:
        """embeddings.npy + faces.csv (+ faces.parquet when pyarrow is installed)."""
        from .models import get_spec
        from .atomic import replacing
        from .report import write_csv

        t = self.faces()  # checked before anything is written
        dest = Path(dest) if dest else self.out / "export"
        dest.mkdir(parents=True, exist_ok=True)
        dim = get_spec(self.settings.model).dim  # an empty table still has the model's width
        with replacing(dest / "embeddings.npy", "wb") as fh:
            np.save(fh, t.embeddings.astype(np.float32) if len(t) else np.zeros((0, dim), np.float32))
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
        from .discover import display_path

        cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
        cols["path"] = [display_path(p) for p in cols["path"]]
        cols["embedding"] = [v.tolist() for v in t.embeddings]
        pq.write_table(pa.table(cols), dest / "faces.parquet")
        return written + [dest / "faces.parquet"]

    def neighbors(self, face_ids=None) -> dict[str, np.ndarray]:
        """The k nearest faces of the given face ids (faces.csv's face_id; None: all), from
        neighbors.parquet, reading only the row groups that hold them: columns face_id, rank,
        neighbor_face_id, distance."""
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        data = ds.dataset(self.out / "neighbors.parquet")
        where = None if face_ids is None else pc.field("face_id").isin(
            np.asarray(face_ids, np.int64).ravel())
        t = data.to_table(filter=where)
        return {name: t.column(name).to_numpy() for name in t.column_names}

    def pairs(self, batch_rows: int = 1 << 20):
        """The listed pairs under the threshold, closest first, in batches of at most
        `batch_rows` (dicts of face_a, face_b, distance arrays): never all in memory at once."""
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.out / "pairs.parquet") as f:
            for batch in f.iter_batches(batch_size=batch_rows):
                yield {name: batch.column(i).to_numpy() for i, name in enumerate(batch.schema.names)}

    def report(self, dest: str | Path | None = None, workers: int = 2, progress: bool = False):
        """Write the offline HTML report (default OUT/report/index.html), holding the output
        folder while it writes; returns report.html.ReportSummary."""
        from .report.html import write_report

        elsewhere = dest is not None and Path(self.out).resolve() not in Path(dest).resolve().parents
        with explained(self.out, dest), OutputLock(self.out, what="report", read_only_ok=elsewhere):
            return write_report(self, dest, workers, progress)

    def _close_compute(self) -> None:
        if self._compute is not None:
            self._compute.close()
            self._compute = None

    def close(self) -> None:
        self._close_compute()
        self.store.close()
