"""facedb: an output folder as a user sees it (FaceDB): read, queried, and corrected.

A FaceDB opens the database read-only, checked first (works on read-only media); it reads the
last finished run's faces, people, look-alikes and Parquet tables, runs queries (`near`) and
writes exports and reports elsewhere. Corrections, review answers and undo go through the one
write path (store.writing: the folder's lock, one connection, one transaction each), and the
CSVs that follow the people are rewritten from what was committed, under the same lock. What
it has read (the faces, the review queue) it reloads when the folder changed: a newer run
finished, or another writer (the command line, another tab) changed the people. The API
(api.py) re-exports it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Settings
from .errors import explained
from .store import FaceStore, FaceTable, OutputLock, fault_points, writing


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


@dataclass
class MaybeSameRow(Lookalike):
    """Two people who are maybe one person (FaceDB.maybe_same), by their closest faces: the
    chance, their root-mean-squared distance and the review's question about them."""

    chance: float = 0.0
    rms: float = 0.0
    question: str = ""


class FaceDB:
    """Read access to an output folder's database, for the settings of its last run."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        with explained(self.out):
            # checked first, and read-only: a reader never writes, so it works on read-only
            # media; corrections write through store.writing
            self.store = FaceStore(self.out, create=False, check=True, readonly=True)
        self._compute = None  # the run's models, built on the first `near` and kept
        self._review = None  # review.ReviewQueue of the run it was built for
        self._table = None  # the faces of run_id, read once
        self._lookalikes = None  # (run and data version, _split_lookalikes' answer)
        # rewrite OUT/report (when there is one) with every change of the people; the review
        # page turns this off and rewrites it once the answers pause (review_server.py)
        self.report_follows = True
        self.run_id = None
        self._follow_runs()

    def _follow_runs(self) -> None:
        """Read the last finished run's record, and forget what was read of an older one:
        readers see that run's results, never those of one going on."""
        with explained(self.out):
            last = self.store.last_run()
        if last is None:
            raise FileNotFoundError(f"{self.out}: no finished facedist run here")
        if last["id"] == self.run_id:
            return
        self.run_id = last["id"]
        self.pipeline_key = last["pipeline_key"]
        self.settings = Settings().update({k: v for k, v in last["settings"].items()
                                           if k not in ("detect",)})
        self.settings.update(last["settings"].get("detect", {}))
        self._table = self._review = None
        self._close_compute()

    def faces(self) -> FaceTable:
        """The faces of the last finished run, with their quality (computed here for faces
        stored before quality was); read once per run."""
        from .quality import fill_quality

        self._follow_runs()
        if self._table is None:
            with explained(self.out):
                table = self.store.faces(self.pipeline_key, upto_run=self.run_id)
            table.check_embeddings(self.out)
            if np.isnan(table.quality).any():
                fill_quality(table, self.store.image_sizes(), self.settings.model)
            self._table = table
        return self._table

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

        self._follow_runs()
        return list_people(self.store, self.pipeline_key, self.run_id)

    def person_of(self, table: FaceTable | None = None) -> np.ndarray:
        """The person id of each face of `table` (default: all faces), -1 for none (unclear,
        ignored, or not placed yet)."""
        from .people import person_ids

        table = self.faces() if table is None else table
        return person_ids(self.store, table.face_ids)[0]

    def people_cuts(self) -> tuple[float, float | None]:
        """The people threshold of the last run (its setting, else the model's) and the
        model's single-face cut (cluster.average_linkage)."""
        from .models import get_spec

        spec = get_spec(self.settings.model)
        cut = self.settings.people_threshold
        return (spec.people_threshold if cut is None else cut), spec.people_single_threshold

    def _split_lookalikes(self):
        """(faces, person per face, look-alikes, maybe one person), computed once for the
        folder as it is (`lookalikes` after `maybe_same` reuses it)."""
        from .report import lookalikes, maybe_same

        t = self.faces()
        version = (self.run_id, self._data_version())
        if self._lookalikes is None or self._lookalikes[0] != version:
            person = self.person_of(t)
            self._lookalikes = (version, (t, person, *maybe_same(
                t, person, lookalikes(t, person, None, min_quality=self.min_quality),
                *self.people_cuts(), self.store.person_names(self.pipeline_key),
                self.store.settled(self.pipeline_key))))
        return self._lookalikes[1]

    def lookalikes(self, n: int = 50) -> list[Lookalike]:
        """The n closest pairs of people, closest first, each by its closest faces; pairs that
        are maybe one person are not among them (maybe_same)."""
        if n < 1:
            raise ValueError("-n takes a positive number of pairs")
        t, person, looks, _ = self._split_lookalikes()
        return [Lookalike(r + 1, d, int(t.face_ids[a]), t.paths[a], tuple(map(float, t.boxes[a])),
                          int(person[a]), int(t.face_ids[b]), t.paths[b],
                          tuple(map(float, t.boxes[b])), int(person[b]))
                for r, (d, a, b) in enumerate(looks[:n])]

    def maybe_same(self, n: int = 50) -> list[MaybeSameRow]:
        """The n pairs of people most likely one person (report.maybe_same): each is the
        review's "same person?" question `same:A:B`, most likely first."""
        if n < 1:
            raise ValueError("-n takes a positive number of pairs")
        t, person, _, maybe = self._split_lookalikes()
        return [MaybeSameRow(r + 1, m.distance, int(t.face_ids[m.a]), t.paths[m.a],
                             tuple(map(float, t.boxes[m.a])), m.person_a, int(t.face_ids[m.b]),
                             t.paths[m.b], tuple(map(float, t.boxes[m.b])), m.person_b,
                             chance=m.chance, rms=m.rms, question=m.question)
                for r, m in enumerate(maybe[:n])]

    def _correct(self, correction):
        """Apply one people.Correction through the write path, then rewrite the CSVs that
        follow people from what was committed; returns the correction's result."""
        with explained(self.out), writing(self.out, f"people {correction.verb}") as store:
            self.faces()  # damaged embeddings are found before anything is written
            with store.transaction():
                result = correction.apply(store, self.pipeline_key)
            self._after_write(store)
        return result

    def _after_write(self, store: FaceStore) -> None:
        """After a committed change of the people, under the same lock: the review queue
        follows it, and the CSVs that follow people are written from it."""
        from .report import write_people

        t = self.faces()
        person, pinned, names, ignored = self._people_now(store, t)
        settled = store.settled(self.pipeline_key)
        if self._review is not None:
            self._review.sync(person, pinned, ignored, names, settled,
                              store.reopened(self.pipeline_key))
            self._review_version = self._data_version()
        write_people(self.out, t, person, names, self.min_quality, ignored, None,
                     *self.people_cuts(), settled)
        if self.report_follows and self.has_report():
            from .report.html import write_report

            write_report(self, None, 2, False, store)

    def has_report(self) -> bool:
        """Whether OUT/report holds a report facedist wrote (its manifest)."""
        from .report.html import MANIFEST

        return (self.out / "report" / MANIFEST).is_file()

    def _people_now(self, store: FaceStore, t: FaceTable):
        from .people import person_ids

        person, pinned = person_ids(store, t.face_ids)
        ignored = np.isin(t.face_ids, np.fromiter(store.ignored(self.pipeline_key), np.int64))
        return person, pinned, store.person_names(self.pipeline_key), ignored

    def name_person(self, person: int, name: str) -> None:
        from .people import Name

        self._correct(Name(person, name))

    def merge_people(self, into: int, other: int) -> None:
        from .people import Merge

        self._correct(Merge(into, other))

    def move_face(self, face_id: int, person: int | None) -> int:
        """Move a face (faces.csv's face_id) to a person, or to a new one (None)."""
        from .people import Move

        return self._correct(Move(face_id, person))

    def apart(self, a: int, b: int) -> None:
        """`a` and `b` are different people: no later run merges them, and the review never
        asks whether they are one."""
        from .people import Apart

        self._correct(Apart(a, b))

    def ignore_face(self, face_id: int) -> None:
        """Set a face aside (a stranger, a false detection): out of people, look-alikes and
        the report's main pages, in every later run."""
        from .people import IgnoreFace

        self._correct(IgnoreFace(face_id))

    def ignore_person(self, person: int) -> int:
        """Set every face of a person aside; returns how many."""
        from .people import IgnorePerson

        return self._correct(IgnorePerson(person))

    def unignore_face(self, face_id: int) -> None:
        from .people import UnignoreFace

        self._correct(UnignoreFace(face_id))

    def unignore_person(self, person: int) -> int:
        """Give back the faces ignored with `person`, as that person; returns how many."""
        from .people import UnignorePerson

        return self._correct(UnignorePerson(person))

    # -- review (review.py) -------------------------------------------------------------------
    def _data_version(self) -> int:
        return self.store.db.execute("PRAGMA data_version").fetchone()[0]

    def review_queue(self):
        """The review queue (review.ReviewQueue) of the people as stored now: built once per
        run, and following every change of the people made since (here, by the command line,
        by another tab)."""
        from .review import ReviewQueue, bystanders, tag_hints

        t = self.faces()  # follows a newer run (a new queue then)
        version = self._data_version()
        if self._review is not None:
            if self._review_version != version:
                person, pinned, names, ignored = self._people_now(self.store, t)
                self._review.sync(person, pinned, ignored, names,
                                  self.store.settled(self.pipeline_key),
                                  self.store.reopened(self.pipeline_key))
                self._review_version = version
            return self._review
        person, pinned, names, ignored = self._people_now(self.store, t)
        cut = self.people_cuts()[0]
        # the names in the photos' XMP a run did not apply: asked first (review.TagHint)
        tags = tag_hints((r[2], r[7], r[9]) for r in self.store.tag_regions(self.pipeline_key,
                                                                            self.run_id))
        self._review = ReviewQueue(t.face_ids, t.embeddings, person, names, cut, pinned,
                                   self.store.settled(self.pipeline_key), ignored, tags,
                                   self.store.reopened(self.pipeline_key),
                                   bystanders(t.paths, t.boxes, self.store.image_sizes()))
        self._review_version = version
        return self._review

    def review_questions(self, n: int = 10, past_done: bool = False) -> list:
        """The n review questions worth most now (review.Question), best first; none once the
        review is done, unless `past_done`."""
        if n < 0:
            raise ValueError("-n takes a number of questions, 0 or more")
        return self.review_queue().questions(n, past_done)

    def review_progress(self) -> dict:
        """answered: questions settled so far; left: questions worth asking now; done: none
        is; rest: the questions past done (strangers to hide among them), when done."""
        queue = self.review_queue()
        left = len(queue.questions(10 ** 9))
        return {"answered": len(queue.settled), "left": left, "done": left == 0,
                "rest": len(queue.questions(10 ** 9, past_done=True)) if left == 0 else None,
                "undoable": self.store.answers(self.pipeline_key)}

    def answer(self, question_id: str, answer) -> dict:
        """Answer a review question ("yes", "no", "skip", "ignore"; for "who is this?" also
        {"person": ID} or {"name": NAME}): its corrections and the answer's log entry are
        written in one transaction, holding the output folder (errors.Busy while a run holds
        it), and the question is settled. The question is judged on the people as stored at
        that moment (another tab or a run may have changed them).
        Returns {"question", "answer", "done": [[action, *values, result], ...], "said": the
        answer in plain words}."""
        import dataclasses
        import json

        from .review import in_words, plan

        with explained(self.out), writing(self.out, "review answer", check=False) as store:
            queue = self.review_queue()  # the folder as it is now that we hold it
            corrections = plan(queue, question_id, answer)
            q = queue.question(question_id)
            people, faces = [q.a, q.b], [] if q.face is None else [q.face]
            for c in corrections:
                people += c.touches()[0]
                faces += c.touches()[1]
            words = in_words(queue, question_id, answer)
            said = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
            with store.transaction():
                before = store.people_snapshot(self.pipeline_key, people, faces)
                done = [[c.verb, *dataclasses.astuple(c), c.apply(store, self.pipeline_key)]
                        for c in corrections]
                fault_points.get("answer", lambda: None)()
                store.log_answer(self.pipeline_key, question_id, said, before)
            self._after_write(store)
        return {"question": question_id, "answer": answer, "done": done, "said": words}

    def undo(self) -> dict | None:
        """Take back the last review answer (its people as they were, its question open and
        asked next, until answered), in one transaction; None when there is none. Returns
        {"question", "answer" (as stored), "said": the answer in plain words}."""
        from .review import in_words

        with explained(self.out), writing(self.out, "review undo", check=False) as store:
            queue = self.review_queue()
            undone = store.undo_answer(self.pipeline_key)
            if undone is None:
                return None
            self._after_write(store)
            words = in_words(queue, undone[0], undone[1])
        return {"question": undone[0], "answer": undone[1], "said": words}

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

    def export_xmp(self, which: str = "named", sidecar_name: str = "photo.jpg.xmp",
                   dest: str | Path | None = None, in_place: bool = False) -> list[Path]:
        """XMP sidecars with a face region (MWG and Microsoft's) per face of a named person
        (which="all": of every person), for digiKam, Lightroom, Immich: beside the photos
        (`in_place`) or under `dest` (default OUT/xmp); merged into existing ones, never
        written into a photo (xmp.export_sidecars). Returns the sidecars written."""
        from .xmp import export_sidecars

        return export_sidecars(self, which, sidecar_name, dest, in_place)

    def tags(self) -> list[dict]:
        """The face regions read from the photos' XMP by the runs (xmp.read_tags): path,
        source, name, area (x, y centre, w, h, normalised), face_id, person, outcome (named,
        agrees, unmatched, conflict, apart, ignored, refused) and note; disagreements first.
        The review asks about those disagreeing first (review.tag_hints)."""
        self._follow_runs()
        keys = ["path", "source", "name", "x", "y", "w", "h", "face_id", "person", "outcome",
                "note"]
        return [dict(zip(keys, row)) for row in self.store.tag_regions(self.pipeline_key,
                                                                        self.run_id)]

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
        if elsewhere:  # the output folder only read: it may be on read-only media
            with explained(self.out, dest), OutputLock(self.out, what="report", read_only_ok=True):
                return write_report(self, dest, workers, progress)
        with explained(self.out, dest), writing(self.out, "report", check=False) as store:
            return write_report(self, dest, workers, progress, store)

    def _close_compute(self) -> None:
        if self._compute is not None:
            self._compute.close()
            self._compute = None

    def close(self) -> None:
        self._close_compute()
        self.store.close()
