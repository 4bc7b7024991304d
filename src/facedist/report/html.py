"""html: the offline HTML report of an output folder, OUT/report/index.html.

It opens from disk: no server, and nothing is fetched from outside report/ (styles and the one
script are files beside the pages). Pages are rendered by Jinja2 with autoescape on, so file and
person names are always text; the neighbour viewer's data is JSON that face.js puts in the page
with textContent. Long lists are paged, and thumbnails below the fold load lazily, so the first
page costs the same at 100 faces or 1,000,000.

    index.html           summary, first people, look-alikes, neighbours, threshold, skipped, performance
    people[-N].html      one card per person (named first, then largest)
    person-ID[-N].html   a person's faces; each links to its photo and to its neighbours
    lookalikes[-N].html  the closest pairs of people (by their closest faces), side by side; the
                         pairs that are maybe one person are on index.html, apart
    skipped[-N].html     files skipped, each with its reason
    face.html#ID         a face's k nearest faces (data/neighbours-C.js, CHUNK faces a file)
    thumbs/              face thumbnails, cut once (thumbs.py)
    .facedist-report.json  the files this report wrote (MANIFEST): the next one deletes only those

The folder holds only what facedist wrote: a report is written into a missing or empty folder,
or one holding an earlier facedist report, and never deletes a file it did not write there
(own_files). index.html is written last, and until it is, the run's record says the report is
incomplete (store.note_report): a report interrupted (Ctrl-C) is finished by the next one.

    >>> from facedist.api import open_db       # doctest: +SKIP
    >>> write_report(open_db("out")).index     # doctest: +SKIP
    PosixPath('out/report/index.html')
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..discover import display_path
from ..display import shown
from ..atomic import replaced, replacing
from ..errors import SettingError
from . import lookalikes, maybe_same, read_neighbors
from .thumbs import THUMB_NAME, ThumbJob, cut_thumbnails, stale, thumb_name

log = logging.getLogger("facedist")

PEOPLE_PER_PAGE = 48
FACES_PER_PAGE = 240
PAIRS_PER_PAGE = 50
SKIPPED_PER_PAGE = 200
CARD_FACES = 4  # thumbnails on a person's card
ON_INDEX = {"people": 12, "pairs": 10, "skipped": 20, "unclear": 16}
LOOKALIKES_SHOWN = 500
CHUNK = 1000  # faces per neighbour data file (by face id)
STATIC = ("report.css", "face.js", "sort.js", "favicon.svg", "missing.svg")
NO_PERSON = -1  # ReportFace.person of an unclear face; ignored faces are not shown at all
MANIFEST = ".facedist-report.json"  # {"files": [what the report wrote], "complete": ...}
# the names the report gives its files (and the review page its thumbnails): nothing else is
# ever deleted, even if a manifest lists it
OWN_NAME = re.compile(
    r"(index|face|(people|lookalikes|unclear|skipped)(-\d+)?|person-\d+(-\d+)?)\.html"
    r"|timeline\.png|data/neighbours-\d+\.js|" + "|".join(re.escape(n) for n in STATIC)
    + "|" + THUMB_NAME.pattern)
# what every index.html of a facedist report holds, those written before the manifest too
INDEX_MARKS = ("<title>facedist report</title>", '<a class="brand" href="index.html">facedist</a>')


@dataclass
class ReportFace:
    """One face as the report shows it."""

    row: int  # index in the run's face table
    face_id: int  # faces.csv's face_id: stable across runs
    path: str  # the photo, for display
    photo_url: str  # file:// URI of the original photo
    thumb: str  # relative to the report folder
    person: int  # NO_PERSON: unclear
    prob: float
    quality: float  # quality.py's score, 0..1


@dataclass
class ReportPerson:
    id: int
    name: str | None
    faces: list[ReportFace]
    photos: int
    spread: float | None  # root mean squared distance between its faces (None: one face)

    @property
    def page(self) -> str:
        return f"person-{self.id}.html"

    @property
    def label(self) -> str:
        """The name as every page and the pages' data show it (display.shown: control and
        bidirectional characters as \\xNN, at most 200 characters), else "person ID"."""
        return shown(self.name) if self.name else f"person {self.id}"


@dataclass
class ReportSummary:
    """What write_report did."""

    index: Path
    pages: int
    faces: int
    people: int
    thumbs_made: int
    thumbs_kept: int
    thumbs_failed: dict[str, str] = field(default_factory=dict)  # photo -> reason
    seconds: float = 0.0


def page_name(stem: str, n: int) -> str:
    """Page n (1-based) of a paged list: stem.html, stem-2.html, ..."""
    return f"{stem}.html" if n == 1 else f"{stem}-{n}.html"


def paged(items: list, per_page: int) -> list[list]:
    return [items[i:i + per_page] for i in range(0, len(items), per_page)] or [[]]


def spread(x: np.ndarray) -> float | None:
    """Root mean squared distance between distinct faces of one person: the same measure the
    people threshold cuts (cluster.py's average linkage), from the mean in O(n)."""
    n = len(x)
    if n < 2:
        return None
    x = x.astype(np.float64)
    centred = ((x - x.mean(0)) ** 2).sum(1).mean()
    return float(math.sqrt(2 * n / (n - 1) * centred))


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("facedist.report", "templates"),
                      autoescape=select_autoescape(["html", "js"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["dist"] = lambda d: "—" if d is None else f"{d:.3f}"
    env.filters["secs"] = lambda s: "—" if s is None else f"{s:.2f} s"
    env.filters["when"] = lambda t: "—" if not t else datetime.fromtimestamp(t).strftime(
        "%Y-%m-%d %H:%M:%S")
    env.filters["basename"] = lambda p: p.rsplit("/", 1)[-1]
    env.globals["page_name"] = page_name
    env.globals["person_page"] = lambda f: f"person-{f.person}.html" if f.person >= 0 else "unclear.html"
    return env


class ReportWriter:
    """Gathers a run's results from a FaceDB and writes the report's files."""

    def __init__(self, db, dest: Path, workers: int = 2, progress: bool = False,
                 note=None) -> None:
        self.note = note
        self.db, self.dest, self.workers, self.progress = db, Path(dest), workers, progress
        self.written: set[str] = set()  # relative names written this time
        self.env = _environment()

    # -- gathering ----------------------------------------------------------------------------
    def gather(self) -> None:
        db = self.db
        self.run = db.store.run_record(db.run_id)
        self.table = t = db.faces()
        self.person_of = db.person_of(t)
        self.min_quality = db.min_quality
        ignored = db.ignored(t)
        names = db.store.person_names(db.pipeline_key)
        self.records = records = db.store.image_records()  # path -> (sha256, size, mtime_ns)
        # stored paths are absolute (photo_paths.py); one under no run's PHOTOS, as it is
        self.faces = [ReportFace(i, int(t.face_ids[i]), display_path(t.paths[i]),
                                 Path(t.paths[i]).absolute().as_uri(),
                                 thumb_name(records.get(t.paths[i], (None,))[0] or t.paths[i],
                                            t.boxes[i]),
                                 int(self.person_of[i]), float(t.probs[i]), float(t.quality[i]))
                      for i in range(len(t))]
        self.shown = ~ignored  # ignored faces leave every page but their own neighbours' lists
        self.ignored = int(ignored.sum())
        self.unclear = sorted((f for f, p, g in zip(self.faces, self.person_of, ignored)
                               if p < 0 and not g), key=lambda f: (-f.quality, f.face_id))
        rows_of: dict[int, list[int]] = {}
        for i, p in enumerate(self.person_of.tolist()):
            if p >= 0:
                rows_of.setdefault(p, []).append(i)
        self.people = sorted(
            (ReportPerson(p, names.get(p), [self.faces[i] for i in rows],
                          len({t.paths[i] for i in rows}), spread(t.embeddings[rows]))
             for p, rows in rows_of.items()),
            key=lambda q: (q.name is None, -len(q.faces), q.id))
        self.person = {q.id: q for q in self.people}
        self.env.globals["person_label"] = self.person_label
        self.skipped = [(display_path(p), r) for p, r in
                        db.store.skipped(db.pipeline_key, seen_run=db.run_id)]
        pairs = run_lookalikes(db.out / "lookalikes.csv", t, self.person_of)
        maybe = run_lookalikes(db.out / "maybe_same.csv", t, self.person_of)
        if pairs is None or maybe is None:  # no tables of these faces and people: computed
            pairs, found = maybe_same(t, self.person_of,
                                      lookalikes(t, self.person_of, None, min_quality=self.min_quality),
                                      *db.people_cuts(), names,
                                      db.store.settled(db.pipeline_key))
            maybe = [(m.distance, m.a, m.b) for m in found]
        self.pairs = [(d, self.faces[a], self.faces[b]) for d, a, b in pairs[:LOOKALIKES_SHOWN]]
        self.maybe = [(d, self.faces[a], self.faces[b]) for d, a, b in maybe[:LOOKALIKES_SHOWN]]
        perf = db.out / "perf"
        self.perf = _read_json(perf / "summary.json")
        self.threshold = _read_json(perf / "threshold.json")

    def person_label(self, f: ReportFace) -> str:
        return self.person[f.person].label if f.person in self.person else "unclear"

    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """Each face's k nearest: the run's (neighbors.parquet), else computed."""
        from ..compare import knn

        k = min(self.db.settings.k, len(self.table) - 1)
        if k < 1:
            return np.zeros((len(self.table), 0), np.int64), np.zeros((len(self.table), 0))
        found = read_neighbors(self.db.out, self.table)
        if found is not None:
            return found[0][:, :k], found[1][:, :k]
        return knn(self.table.embeddings, k, self.db.settings.exact_neighbors)

    # -- writing ------------------------------------------------------------------------------
    def write(self) -> ReportSummary:
        t0 = time.perf_counter()
        before = own_files(self.dest)  # a folder of someone else's: refused, nothing written
        self.gather()  # everything read (and checked) before anything is written
        if self.run["summary"].get("report") == "incomplete" and self._is_the_runs():
            log.info(f"finishing the report of run {self.db.run_id}, left incomplete (interrupted)")
        self._note_run("incomplete")
        self.dest.mkdir(parents=True, exist_ok=True)
        try:
            made, kept, failed = self.write_thumbnails()
            self.write_static()
            self.write_timeline()
            self.write_neighbours()
            self.write_pages(failed)  # index.html last: there, the report is whole
        except BaseException:
            try:  # what was written so far is facedist's too: the next report may delete it
                self._write_manifest(before | self.written, complete=False)
            except OSError:
                pass  # the fault being raised says more
            raise
        self.remove_stale(before)
        self._note_run("complete")
        return ReportSummary(self.dest / "index.html", sum(n.endswith(".html") for n in self.written),
                             len(self.faces), len(self.people), made, kept, failed,
                             time.perf_counter() - t0)

    def write_thumbnails(self) -> tuple[int, int, dict[str, str]]:
        """Cut the missing thumbnails; a face whose photo can't be read shows missing.svg."""
        wanted: dict[str, ThumbJob] = {}
        have, scheduled = 0, set()  # copies of a photo share their thumbnails: cut once
        for f, path in zip(self.faces, self.table.paths):
            if (self.dest / f.thumb).exists():
                have += 1
                continue
            if f.thumb in scheduled:
                continue
            scheduled.add(f.thumb)
            job = wanted.setdefault(path, ThumbJob(path, [], []))
            job.boxes.append(tuple(self.table.boxes[f.row]))
            job.names.append(f.thumb)
        jobs = list(wanted.values())
        changed = self._changed_since_run(wanted)
        for path in changed:
            jobs.remove(wanted[path])
        bar = None
        if jobs and self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), unit="photo", desc="thumbnails")
        result = cut_thumbnails(jobs, self.dest, self.db.settings.max_pixels, self.workers,
                                bar.update if bar else None)
        if bar:
            bar.close()
        failed = {display_path(p): r for p, r in result.failed.items()}
        failed.update({display_path(p): "changed since the run: run facedist "
                       "again" for p in changed})
        for f in self.faces:
            if f.thumb in scheduled and not (self.dest / f.thumb).exists():
                f.thumb = "missing.svg"  # its photo (or the copy cut for it) could not be read
        self.written.update(f.thumb for f in self.faces)
        return result.made, have, failed

    def _changed_since_run(self, wanted: dict[str, ThumbJob]) -> list[str]:
        """Photos whose size or mtime differ from what the run stored: their boxes would cut
        the wrong place."""
        changed = []
        for path in wanted:
            try:
                st = os.stat(path)
            except OSError:
                continue  # cut_photo gives the reason
            _, size, mtime_ns = self.records.get(path, (None, None, None))
            if size is not None and (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                changed.append(path)
        return changed

    def write_static(self) -> None:
        from importlib.resources import files

        static = files("facedist.report") / "static"
        for name in STATIC:
            self._write(name, static.joinpath(name).read_bytes())

    def write_timeline(self) -> None:
        self.timeline = None
        perf, png = self.db.out / "perf", self.dest / "timeline.png"
        sources = [perf / "timeline.csv", perf / "summary.json"]
        if all(p.exists() for p in sources):
            if not png.exists() or png.stat().st_mtime_ns < max(p.stat().st_mtime_ns for p in sources):
                from ..monitor import plot_timeline

                with replaced(png, ".tmp.png") as tmp:  # matplotlib goes by the suffix
                    plot_timeline(perf, tmp)
            self.timeline = "timeline.png"
            self.written.add("timeline.png")

    def write_pages(self, thumbs_failed: dict[str, str]) -> None:
        common = {"run": self.run, "out": display_path(self.db.out.resolve()),
                  "generated": time.time(), "total_people": len(self.people),
                  "total_faces": len(self.faces)}
        people_pages = paged(self.people, PEOPLE_PER_PAGE)
        pair_pages = paged(self.pairs, PAIRS_PER_PAGE)
        skipped_pages = paged(self.skipped, SKIPPED_PER_PAGE)
        unclear_pages = paged(self.unclear, FACES_PER_PAGE)
        common.update(total_unclear=len(self.unclear), ignored=self.ignored,
                      min_quality=self.min_quality)
        index = dict(**common, **self.summary(),
                     unclear=self.unclear[:ON_INDEX["unclear"]],
                     people=self.people[:ON_INDEX["people"]], people_pages=len(people_pages),
                     pairs=self.pairs[:ON_INDEX["pairs"]], pair_pages=len(pair_pages),
                     maybe=self.maybe, out_arg=display_path(self.db.out),
                     total_pairs=len(self.pairs), skipped=self.skipped[:ON_INDEX["skipped"]],
                     total_skipped=len(self.skipped), thumbs_failed=thumbs_failed,
                     histogram=self.histogram(), perf=self.perf, timeline=self.timeline,
                     example=self.faces[0] if self.faces else None, card_faces=CARD_FACES)
        for n, page in enumerate(people_pages, 1):
            self._render(page_name("people", n), "people.html", **common, people=page, n=n,
                         pages=len(people_pages), card_faces=CARD_FACES)
        for q in self.people:
            pages = paged(q.faces, FACES_PER_PAGE)
            for n, page in enumerate(pages, 1):
                self._render(page_name(f"person-{q.id}", n), "person.html", **common, person=q,
                             faces=page, n=n, pages=len(pages))
        for n, page in enumerate(pair_pages, 1):
            self._render(page_name("lookalikes", n), "lookalikes.html", **common, pairs=page, n=n,
                         pages=len(pair_pages), first_rank=(n - 1) * PAIRS_PER_PAGE + 1,
                         total_maybe=len(self.maybe))
        for n, page in enumerate(unclear_pages, 1):
            self._render(page_name("unclear", n), "unclear.html", **common, faces=page, n=n,
                         pages=len(unclear_pages))
        for n, page in enumerate(skipped_pages, 1):
            self._render(page_name("skipped", n), "skipped.html", **common, skipped=page, n=n,
                         pages=len(skipped_pages))
        chunks = sorted({f.face_id // CHUNK for f in self.faces})
        self._render("face.html", "face.html", **common, chunks=chunks, chunk=CHUNK,
                     k=self.db.settings.k)
        self._render("index.html", "index.html", **index)  # last (write)

    def summary(self) -> dict:
        s = self.run["summary"]
        reasons: dict[str, int] = {}
        for _, r in self.skipped:
            reasons[r] = reasons.get(r, 0) + 1
        settings = self.run["settings"]
        shown = {k: v for k, v in settings.items() if k not in ("detect",)}
        shown.update({f"detect.{k}": v for k, v in settings.get("detect", {}).items()})
        return {"images": s.get("found", len(set(self.table.paths)) + len(self.skipped)),
                "photos_with_faces": len(set(self.table.paths)),
                "named": sum(q.name is not None for q in self.people),
                "reasons": sorted(reasons.items(), key=lambda kv: -kv[1]),
                "settings": sorted((k, json.dumps(v) if not isinstance(v, str) else v)
                                   for k, v in shown.items()),
                "versions": sorted(self.run["versions"].items()),
                "total_seconds": s.get("total_seconds")}

    def histogram(self) -> dict | None:
        """SVG geometry of the neighbour-distance histogram (perf/threshold.json)."""
        th = self.threshold or {}
        hist = th.get("neighbor_distance_histogram") or {}
        counts, edges = hist.get("counts") or [], hist.get("edges") or []
        if not counts:
            return None
        w, h, pad = 640, 200, 30
        lo, hi = min(edges[0], th.get("threshold") or edges[0]), max(edges[-1], th.get("threshold") or 0)
        if th.get("suggested") is not None:
            lo, hi = min(lo, th["suggested"]), max(hi, th["suggested"])
        span = (hi - lo) or 1.0
        top = max(counts) or 1

        def x(v: float) -> float:
            return round(pad + (v - lo) / span * (w - 2 * pad), 1)

        bars = [{"x": x(a), "w": max(0.5, x(b) - x(a) - 0.5), "h": round(c / top * (h - 2 * pad), 1),
                 "count": c, "lo": a, "hi": b} for c, a, b in zip(counts, edges[:-1], edges[1:])]
        lines = [(name, x(v), v) for name, v in (("threshold", th.get("threshold")),
                                                  ("suggested", th.get("suggested")))
                 if v is not None]
        ticks = [(x(v), round(v, 2)) for v in np.linspace(lo, hi, 6)]
        return {"w": w, "h": h, "pad": pad, "base": h - pad, "bars": bars, "lines": lines,
                "ticks": ticks, "threshold": th.get("threshold"), "suggested": th.get("suggested"),
                "total": int(sum(counts))}

    def write_neighbours(self) -> None:
        """data/neighbours-C.js: for faces C*CHUNK ... (C+1)*CHUNK-1, their photo, thumbnail,
        person and k nearest faces, read by face.js."""
        near, dist = self.neighbours()
        chunks: dict[int, dict] = {}
        for f in self.faces:
            entry = {"path": f.path, "url": f.photo_url, "thumb": f.thumb, "person": f.person,
                     "name": self._neighbour_label(f), "quality": round(f.quality, 3),
                     "near": [[self.faces[j].face_id, round(float(d), 4), self.faces[j].thumb,
                               self.faces[j].person, self._neighbour_label(self.faces[j])]
                              for j, d in zip(near[f.row], dist[f.row])]}
            chunks.setdefault(f.face_id // CHUNK, {})[str(f.face_id)] = entry
        template = self.env.get_template("chunk.js")
        for c, data in chunks.items():
            self._write(f"data/neighbours-{c}.js", template.render(chunk=c, data=data).encode())

    def _neighbour_label(self, f: ReportFace) -> str:
        return "ignored" if not self.shown[f.row] else self.person_label(f)

    def remove_stale(self, before: set[str]) -> None:
        """Delete what an earlier report wrote (`before`, own_files) that this one no longer
        has, and the thumbnails no face uses any more; nothing else."""
        gone = {n for n in before if n not in self.written}
        gone |= {p.relative_to(self.dest).as_posix() for p in stale(self.dest, self.written)}
        # listed until deleted: interrupted in between, the next report still knows them
        self._write_manifest(self.written | gone, complete=True)
        if gone:
            for name in sorted(gone):
                (self.dest / name).unlink(missing_ok=True)
            self._write_manifest(self.written, complete=True)

    def _write_manifest(self, files: set[str], complete: bool) -> None:
        with replacing(self.dest / MANIFEST, encoding="utf-8") as fh:
            json.dump({"generator": "facedist", "run": self.db.run_id, "complete": complete,
                       "files": sorted(files)}, fh, indent=0)

    def _is_the_runs(self) -> bool:
        """Whether this is the run's own report, OUT/report (not one --dest elsewhere)."""
        return self.dest.resolve() == (self.db.out / "report").resolve()

    def _note_run(self, state: str) -> None:
        """The run's record says whether its report is whole (`note`, the caller's writer:
        store.note_report): "incomplete" from the start, so that a report ended by Ctrl-C or
        kill -9 stays so until one is."""
        if self.note is not None and self._is_the_runs():
            self.note(state)

    def _render(self, name: str, template: str, **values) -> None:
        self._write(name, self.env.get_template(template).render(page=name, **values).encode())

    def _write(self, name: str, data: bytes) -> None:
        path = self.dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, "wb") as fh:
            fh.write(data)
        self.written.add(name)


def own_files(dest: Path) -> set[str]:
    """The files an earlier facedist report wrote into `dest` (relative names), the only ones a
    new report may delete; refuses (exit 2) a folder that holds anything but no facedist report:
      - a manifest (MANIFEST): the files it lists;
      - no manifest (a report written before there were manifests) but facedist's index.html:
        the files named as the report names its own (OWN_NAME); the rest is left alone;
      - nothing but thumbnails the review page cut there (OUT/report/thumbs): those;
      - missing or empty: none."""
    if not dest.exists():
        return set()
    if not dest.is_dir():
        raise SettingError(f"{display_path(dest)} is not a folder: choose a folder for the report")
    if (dest / MANIFEST).is_file():
        try:
            listed = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            listed = []  # damaged: nothing is taken for facedist's but its thumbnails (stale)
        return {n for n in listed if isinstance(n, str) and OWN_NAME.fullmatch(n)}
    found = _report_places(dest)
    if not found:
        return set()
    if _is_facedist_index(dest / "index.html"):
        return {n for n in found if OWN_NAME.fullmatch(n)}
    if all(THUMB_NAME.fullmatch(n) for n in found):
        return set(found)
    raise SettingError(f"{display_path(dest)} holds files and no facedist report: the report "
                       f"goes into a new or empty folder, or one of its own reports (it deletes "
                       f"only files it wrote); choose another --dest")


def _report_places(dest: Path) -> list[str]:
    """The entries at the top of `dest` and, in its data/ and thumbs/, the files where the
    report writes: enough to tell a report's folder, without walking someone's whole tree."""
    found = []
    for entry in os.scandir(dest):
        if entry.name in ("data", "thumbs") and entry.is_dir(follow_symlinks=False):
            for sub in os.scandir(entry.path):
                if entry.name == "thumbs" and sub.is_dir(follow_symlinks=False):
                    found += [f"thumbs/{sub.name}/{f.name}" for f in os.scandir(sub.path)]
                else:
                    found.append(f"{entry.name}/{sub.name}")
        else:
            found.append(entry.name)
    return found


def _is_facedist_index(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    return all(mark in head for mark in INDEX_MARKS)


def run_lookalikes(path: Path, table, person: np.ndarray) -> list[tuple] | None:
    """(distance, a, b) rows of lookalikes.csv or maybe_same.csv (rewritten by each run and
    correction), if every face in it is one of `table`'s with the same person; else None."""
    import csv

    row_of = {int(f): i for i, f in enumerate(table.face_ids)}
    pairs = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                a, b = row_of.get(int(r["face_a"])), row_of.get(int(r["face_b"]))
                if (a is None or b is None or int(person[a]) != int(r["person_a"])
                        or int(person[b]) != int(r["person_b"])):
                    return None
                pairs.append((float(r["distance"]), a, b))
    except (OSError, ValueError, KeyError, csv.Error):
        return None
    return pairs


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_report(db, dest: str | Path | None = None, workers: int = 2,
                 progress: bool = False, store=None) -> ReportSummary:
    """Write the HTML report of a FaceDB's last finished run into `dest` (default OUT/report).
    The caller holds the output folder (FaceDB.report and pipeline.run do); `store`, its
    writer (store.writing), records in the run whether OUT/report is whole."""
    dest = Path(dest) if dest is not None else db.out / "report"
    note = None if store is None else (lambda state: store.note_report(db.run_id, state))
    return ReportWriter(db, dest, workers, progress, note).write()
