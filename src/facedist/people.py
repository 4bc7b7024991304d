"""people: same-person groups that keep their ids, take corrections, and grow incrementally.

Every face of a pipeline key belongs to one person (a face nobody else matches is a person of
one face). People are stored in the database (store.py: `people`, `face_people`) and
recomputed by `assign_people` after each run:

- incremental (the default): faces that already have a person keep it; new faces join an
  existing person, or form new people, by the same average linkage (cluster.py) with each
  existing person as a fixed group. Only the distances of new faces to all faces are computed
  (to find their nearest neighbours); the linkage itself is exact from each group's sums.
- full (`--recluster`): everything is clustered again; faces the user placed (pinned) stay with
  their person, and each new group takes the id of the old person it overlaps most, so ids
  and names survive.

Corrections are values (Name, Merge, Move, Apart, IgnoreFace, IgnorePerson, UnignoreFace,
UnignorePerson), each with its one rule (`apply`), written through the one write path
(store.writing). They pin faces: a merge pins the faces of both people, a move pins the moved
face and the rest of the person it left, apart pins the faces of both people. Two people holding
pinned faces never merge, in either kind of run, so a correction is never undone.

    >>> from facedist.store import writing
    >>> import numpy as np, tempfile
    >>> ids = np.array([1, 2, 3]); x = np.array([[1, 0], [0.99, 0.14], [0, 1]], np.float32)
    >>> with writing(tempfile.mkdtemp(), "example", create=True) as store:
    ...     assign_people(store, "key", ids, x, threshold=0.3).tolist()  # person id per face
    [1, 1, 2]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cluster import Graph, average_linkage, group_sums
from .config import checked_id
from .compare import distance_block
from .store import FaceStore

# Each face is linked to this many nearest faces: the groups worth comparing. The people are
# the same with 30 (lfw-dev, celeba; README "People"); more only costs time.
GRAPH_NEIGHBORS = 10


@dataclass
class Person:
    """A person: id, optional name, number of faces and of distinct photos."""

    id: int
    name: str | None
    faces: int
    photos: int


def neighbor_graph(x: np.ndarray, rows: np.ndarray, k: int = GRAPH_NEIGHBORS) -> Graph:
    """Each face of `rows` linked to its k nearest faces among all and, when `rows` are not all
    faces, to its k nearest among the others too (a batch of new photos of one person must
    still meet that person's older faces): rows x N distances, block by block, so the cost
    grows with len(rows) x N and the memory with len(rows) x k."""
    n = len(x)
    k = min(k, n - 1)
    if k <= 0 or len(rows) == 0:
        return Graph(n, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    sq = np.einsum("ij,ij->i", x, x)
    ii, jj, dd = [], [], []
    step = max(1, (64 << 20) // max(1, 4 * n))
    for start in range(0, len(rows), step):
        r = rows[start:start + step]
        block = distance_block(x[r], x, sq[r], sq)
        block[np.arange(len(r)), r] = np.inf  # not its own neighbour
        for among_others in (False, True) if len(rows) < n else (False,):
            if among_others:
                block[:, rows] = np.inf
            kk = min(k, n - len(rows)) if among_others else k
            near = np.argpartition(block, kk - 1, axis=1)[:, :kk]
            ii.append(np.repeat(r, kk))
            jj.append(near.ravel())
            dd.append(np.take_along_axis(block, near, 1).ravel())
    return Graph(n, np.concatenate(ii), np.concatenate(jj), np.concatenate(dd))


def photo_ids(table) -> np.ndarray:
    """A photo number per face of a FaceTable (faces of one file share it)."""
    return np.unique(np.asarray(table.paths, dtype=object), return_inverse=True)[1].astype(np.int64)


def person_ids(store: FaceStore, face_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored person of each face (-1 for none yet), and whether the user pinned it there."""
    known = store.face_people(face_ids)  # face id -> (person id, pinned)
    person = np.array([known.get(int(f), (-1, 0))[0] for f in face_ids], np.int64)
    pinned = np.array([known.get(int(f), (-1, 0))[1] for f in face_ids], bool)
    return person, pinned


def assign_people(store: FaceStore, key: str, face_ids: np.ndarray, embeddings: np.ndarray,
                  threshold: float, full: bool = False,
                  neighbors: np.ndarray | None = None,
                  neighbor_dist: np.ndarray | None = None,
                  quality: np.ndarray | None = None, min_quality: float = 0.0,
                  photo: np.ndarray | None = None, single_cut: float | None = None) -> np.ndarray:
    """Give every face of `face_ids` a person (stored), and return the person id of each (-1:
    none, for ignored faces and unclear faces that are clearly nobody's).
    `neighbors`/`neighbor_dist` ([N, k], from compare): the graph to cluster on, for the faces
    to place; without them it is computed exactly (neighbor_graph).
    `quality`/`min_quality`: faces under the gate (quality.py) are left out of the clustering, so
    they never start a person nor link two; each then joins the person it is clearly part of
    (join_unclear), or none. `photo` (a photo id per face): faces of one photo never end up in
    one person by themselves (the user may still merge them)."""
    n = len(face_ids)
    if n == 0:
        return np.zeros(0, np.int64)
    person, pinned = person_ids(store, face_ids)
    ignored = np.isin(face_ids, np.fromiter(store.ignored(key), np.int64))
    clear = ~ignored
    if quality is not None and min_quality > 0:
        clear &= (quality >= min_quality) | pinned  # a face the user placed is vouched for
    full = full or not (person[clear] >= 0).any()
    seeds = np.where(pinned, person, -1) if full else person.copy()
    rows = np.nonzero(clear & ((person < 0) if not full else True))[0]
    x = np.ascontiguousarray(embeddings, np.float32)
    new_person = np.where(clear, person, -1)
    if len(rows):
        members = np.nonzero(clear)[0]  # the clustering sees clear faces only
        local = np.full(n, -1, np.int64)
        local[members] = np.arange(len(members))
        if neighbors is not None:  # at scale: the (approximate) neighbours compare found
            i, j = np.repeat(rows, neighbors.shape[1]), neighbors[rows].ravel()
            d = neighbor_dist[rows].ravel()
            keep = clear[j]
            graph = Graph(len(members), local[i[keep]], local[j[keep]], d[keep])
        else:
            graph = neighbor_graph(x[members], local[rows])
        labels = average_linkage(x if len(members) == n else x[members], graph, threshold,
                                 seeds[members],
                                 None if photo is None else np.asarray(photo, np.int64)[members],
                                 single_cut)
        new_person[members] = _person_ids(labels, seeds[members], person[members], store, key)
    unclear = np.nonzero(~clear & ~ignored)[0]
    if len(unclear):
        near = None if neighbors is None else neighbors[unclear]
        new_person[unclear] = join_unclear(x, new_person, clear, unclear, threshold, photo, near)
    changed = (new_person != person) | full
    store.set_people(key, [(int(face_ids[i]), int(new_person[i])) for i in np.nonzero(
        changed & (new_person >= 0))[0]])
    store.unplace(key, [int(face_ids[i]) for i in np.nonzero((new_person < 0) & (person >= 0))[0]])
    return new_person


def join_unclear(x: np.ndarray, person: np.ndarray, clear: np.ndarray, rows: np.ndarray,
                 cut: float, photo: np.ndarray | None = None,
                 near: np.ndarray | None = None, k: int = GRAPH_NEIGHBORS) -> np.ndarray:
    """The person each face of `rows` clearly belongs to, or -1: its nearest person, when within
    `cut` by the root mean squared distance to that person's clear faces (the clustering's own
    measure of groups, which a few close pairs cannot satisfy). It joins; it never starts a
    person nor brings two together. Candidates are the people of its k nearest clear faces
    (`near`: its nearest faces, of any kind, when known)."""
    placed = np.nonzero(clear & (person >= 0))[0]
    out = np.full(len(rows), -1, np.int64)
    if len(placed) == 0:
        return out
    ids, group = np.unique(person[placed], return_inverse=True)
    sums, squares, size = group_sums(x, placed, group, len(ids))
    index_of = np.full(len(x), -1, np.int64)
    index_of[placed] = group
    if near is None:
        sq = np.einsum("ij,ij->i", x, x)
        kk = min(k, len(placed))
        near = np.empty((len(rows), kk), np.int64)
        step = max(1, (64 << 20) // max(1, 4 * len(placed)))
        for s in range(0, len(rows), step):
            r = rows[s:s + step]
            block = distance_block(x[r], x[placed], sq[r], sq[placed])
            near[s:s + len(r)] = placed[np.argpartition(block, kk - 1, axis=1)[:, :kk]]
    cand = index_of[near]  # [R, k] candidate groups (-1: not a placed clear face)
    if photo is not None:  # a person that already holds a face of this photo is not one
        photo = np.asarray(photo, np.int64)
        taken = np.unique(photo[placed] * len(ids) + group)
        cand = np.where(np.isin(photo[rows][:, None] * len(ids) + cand, taken), -1, cand)
    f = x[rows].astype(np.float64)
    step = 4096
    for s in range(0, len(rows), step):
        c = cand[s:s + step]
        g = np.maximum(c, 0)
        dot = np.einsum("rd,rkd->rk", f[s:s + step], sums[g])
        msd = (np.einsum("ij,ij->i", f[s:s + step], f[s:s + step])[:, None]
               + squares[g] / size[g] - 2 * dot / size[g])
        msd[c < 0] = np.inf
        col = np.argmin(msd, axis=1)
        best = np.sqrt(np.maximum(msd[np.arange(len(c)), col], 0))
        ok = best < cut
        out[s:s + step][ok] = ids[c[np.arange(len(c)), col][ok]]
    return out


def _person_ids(labels: np.ndarray, seeds: np.ndarray, old: np.ndarray, store: FaceStore,
                key: str) -> np.ndarray:
    """A person id for each group: its seed's; else the old person it overlaps most (largest
    overlaps first, each old id once); else a new id."""
    seed_of_group = np.full(labels.max() + 1, -1, np.int64)
    seed_of_group[labels[seeds >= 0]] = seeds[seeds >= 0]  # a group holds one seed at most
    out = seed_of_group[labels]
    taken = set(np.unique(seeds[seeds >= 0]).tolist())
    free = np.nonzero(out < 0)[0]
    overlap: dict[tuple[int, int], int] = {}
    for i in free:
        if old[i] >= 0 and old[i] not in taken:
            overlap[(int(labels[i]), int(old[i]))] = overlap.get((int(labels[i]), int(old[i])), 0) + 1
    group_id: dict[int, int] = {}
    for (g, p), _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        if g not in group_id and p not in taken:
            group_id[g] = p
            taken.add(p)
    for i in free:
        g = int(labels[i])
        if g not in group_id:
            group_id[g] = store.new_person(key)
        out[i] = group_id[g]
    return out


def list_people(store: FaceStore, key: str, seen_run: int | None = None) -> list[Person]:
    """Named people first, then by number of faces (most first), then by id; with `seen_run`,
    the faces of the photos that finished run found only."""
    people = [Person(*row) for row in store.people(key, seen_run)]
    return sorted(people, key=lambda p: (p.name is None, -p.faces, p.id))


MAX_NAME = 200  # characters in a name: a name, not a document (a 1 MB one made a 25 MB report)


def check_name(name) -> str:
    """A name as stored: as given (outer spaces trimmed), with a visible character and at most
    MAX_NAME characters; ValueError else. Shown escaped everywhere (display.shown)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a name needs at least one visible character")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ValueError(f"a name takes at most {MAX_NAME} characters, not {len(name)}")
    return name


class Correction:
    """A correction of the people: a value (what the user said), with its one rule, `apply`,
    which writes it inside the caller's transaction (store.writing) and returns its result.
    The review queue's view follows the database after it (review.ReviewQueue.sync), so the
    rule exists once. `touches`: the people and faces whose state it may change (what undo
    keeps)."""

    verb = ""

    def apply(self, store: FaceStore, key: str):
        raise NotImplementedError

    def touches(self) -> tuple[list[int], list[int]]:
        return [], []

    @staticmethod
    def _person(store: FaceStore, key: str, *people: int) -> None:
        for p in people:
            if not store.person_exists(key, p):
                raise ValueError(f"no person {p} (see `facedist people OUT`)")

    @staticmethod
    def _face(store: FaceStore, key: str, face: int) -> None:
        if not store.faces_of_key(key, [face]):
            raise ValueError(f"no face {face} (see faces.csv)")


@dataclass(frozen=True)
class Name(Correction):
    """Person `person` is called `name`."""

    person: int
    name: str
    verb = "name"

    def __post_init__(self) -> None:
        object.__setattr__(self, "person", checked_id(self.person, "person"))
        object.__setattr__(self, "name", check_name(self.name))

    def apply(self, store: FaceStore, key: str) -> None:
        self._person(store, key, self.person)
        store.name_person(self.person, self.name)

    def touches(self):
        return [self.person], []


@dataclass(frozen=True)
class Merge(Correction):
    """`other` is `into`: its faces become `into`'s, and both people's faces are pinned; the
    name is `into`'s, else `other`'s."""

    into: int
    other: int
    verb = "merge"

    def __post_init__(self) -> None:
        object.__setattr__(self, "into", checked_id(self.into, "person"))
        object.__setattr__(self, "other", checked_id(self.other, "person"))
        if self.into == self.other:
            raise ValueError("merge takes two different people")

    def apply(self, store: FaceStore, key: str) -> None:
        self._person(store, key, self.into, self.other)
        store.merge_people(self.into, self.other)

    def touches(self):
        return [self.into, self.other], []


@dataclass(frozen=True)
class Move(Correction):
    """Face `face` is person `person` (None: a new person): pinned there, and the rest of the
    person it left pinned too. Returns the person it went to."""

    face: int
    person: int | None
    verb = "move"

    def __post_init__(self) -> None:
        object.__setattr__(self, "face", checked_id(self.face, "face"))
        if self.person is not None:
            object.__setattr__(self, "person", checked_id(self.person, "person"))

    def apply(self, store: FaceStore, key: str) -> int:
        self._face(store, key, self.face)
        if self.person is not None:
            self._person(store, key, self.person)
        return store.move_face(key, self.face, self.person)

    def touches(self):
        return [] if self.person is None else [self.person], [self.face]


@dataclass(frozen=True)
class Apart(Correction):
    """`a` and `b` are different people: both pinned, so that no run merges them, and the
    review's "same person?" about them settled for good."""

    a: int
    b: int
    verb = "apart"

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", checked_id(self.a, "person"))
        object.__setattr__(self, "b", checked_id(self.b, "person"))
        if self.a == self.b:
            raise ValueError("apart takes two different people")

    def apply(self, store: FaceStore, key: str) -> None:
        self._person(store, key, self.a, self.b)
        store.pin_people([self.a, self.b])
        store.settle(key, f"same:{min(self.a, self.b)}:{max(self.a, self.b)}", "people apart")

    def touches(self):
        return [self.a, self.b], []


@dataclass(frozen=True)
class IgnoreFace(Correction):
    """A stranger or a false detection: out of people, look-alikes and the report's main
    pages, in every later run, until UnignoreFace."""

    face: int
    verb = "ignore face"

    def __post_init__(self) -> None:
        object.__setattr__(self, "face", checked_id(self.face, "face"))

    def apply(self, store: FaceStore, key: str) -> None:
        self._face(store, key, self.face)
        store.ignore_faces(key, [self.face])

    def touches(self):
        return [], [self.face]


@dataclass(frozen=True)
class IgnorePerson(Correction):
    """Every face of `person` ignored; returns how many."""

    person: int
    verb = "ignore person"

    def __post_init__(self) -> None:
        object.__setattr__(self, "person", checked_id(self.person, "person"))

    def apply(self, store: FaceStore, key: str) -> int:
        self._person(store, key, self.person)
        faces = store.faces_of_person(self.person)
        store.ignore_faces(key, faces)
        return len(faces)

    def touches(self):
        return [self.person], []


@dataclass(frozen=True)
class UnignoreFace(Correction):
    """An ignored face back, to the person it was taken from where that person still exists."""

    face: int
    verb = "unignore face"

    def __post_init__(self) -> None:
        object.__setattr__(self, "face", checked_id(self.face, "face"))

    def apply(self, store: FaceStore, key: str) -> None:
        if self.face not in store.ignored(key):
            raise ValueError(f"face {self.face} is not ignored (see faces.csv)")
        store.unignore_faces([self.face])

    def touches(self):
        return [], [self.face]


@dataclass(frozen=True)
class UnignorePerson(Correction):
    """The faces ignored with `person` come back together, as that person (under its own id,
    brought back if it has gone); returns how many."""

    person: int
    verb = "unignore person"

    def __post_init__(self) -> None:
        object.__setattr__(self, "person", checked_id(self.person, "person"))

    def apply(self, store: FaceStore, key: str) -> int:
        faces = store.ignored_of_person(self.person)
        if not faces:
            raise ValueError(f"no ignored faces of person {self.person}")
        store.ensure_person(key, self.person)
        store.unignore_faces(faces)
        return len(faces)

    def touches(self):
        return [self.person], []


def suggest_threshold(neighbor_dist: np.ndarray) -> float | None:
    """A same-person threshold from the library itself, without labels: the valley (Otsu's
    split) in the distances of each face to its nearest neighbours, which mix same-person
    neighbours (near) and other people (far). None when there are too few distances."""
    d = np.asarray(neighbor_dist, np.float64).ravel()
    d = d[np.isfinite(d)]
    if len(d) < 50:
        return None
    hist, edges = np.histogram(d, bins=200)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between)) + 1])
