"""review: a queue of questions about the people, each answered by a correction that exists.

Five kinds of question (ids are stable strings, so an answer is stored by its question):

- ``same:A:B``   "same person?" for people A and B (yes: merge; no: apart);
- ``who:P``      "who is this?" for an unnamed person P, with the nearest named people as
  suggestions (answer a suggestion: merge into it; a new name: name P; an existing person's
  name: merge into that person). `yes` takes the first suggestion only when it is near: within
  the people cut and WHO_MARGIN (measured on the family albums, bench/who_margin.py); a far
  one is taken only by choosing it (person=ID), never by a bare key;
- ``split:P``    "which of these are not this person?" for a person whose faces disagree
  (a small group, or several faces at a large one's edge): the faces picked (not=ID,ID) each
  become a person of their own, pinned; `none` keeps them all;
- ``face:F:P``   "is this face one of them?" for face F alone at the edge of a large person P,
  or an unplaced face F near P (yes: move F to P, pinned; no: F leaves P for a person of its
  own);
- ``strangers:F,F,...``  "these faces appear once and look like no one else: hide them as
  strangers?" (yes: every one ignored, undoable).

Ranking: the expected gain of the answer, in faces put right: the chance that the answer
changes the people, times the faces it puts right when it does (2ab/(a+b) for a merge of a and
b faces, the odd faces for a split). The chances are measured on the family albums
(../shared/data/albums D1, D2; bench/results-review/chances.md), not on lfw-dev's 50/50
pairs: in an album most one-photo faces are strangers, so two of them at the people cut are
almost never one person, while a face at the cut from a family member often is.
"Who is this?" is worth NAME_WEIGHT per face, so that the largest unnamed people are named
early. The odds are not learnt from the answers as they come: the command line asks a new
queue each call, and the page and `people OUT review` must ask the same questions.

**Done.** When the best open question's expected gain falls below DONE_FLOOR, the review is
done: `questions` returns nothing unless asked for the rest (`past_done`), which then start
with the strangers to hide.

Names the photos already carry (XMP face regions, xmp.read_tags) that facedist could not apply
come first, whatever the distances say: a name the user gave in another program is the
strongest evidence there is. One name on faces of people facedist keeps apart asks "same
person?" about them; two names on one face of an unnamed person ask "who is this?" with those
names (TagHint; each asked while it is open: its people still differ, or still unnamed).

Settled questions (answered, skipped, or about pinned faces) never come back; a question whose
answer was undone comes first until it is answered (`reopened`). A question id the queue does
not ask (people not near one another, a face not at a person's edge) is refused. An answer updates
the queue where it touches (the people it changed, and the people whose nearest list held
them): no clustering is redone.

    >>> import numpy as np
    >>> a = np.radians([0, 0, 0, 16.5, 16.5, 90])  # people 1 and 2 are just under the cut apart
    >>> x = np.stack([np.cos(a), np.sin(a)], 1)
    >>> q = ReviewQueue(np.arange(6), x, np.array([1, 1, 1, 2, 2, 3]), {}, cut=0.3)
    >>> [(x.id, round(x.value, 2)) for x in q.questions(1)]
    [('same:1:2', 2.13)]
    >>> plan(q, 'same:1:2', 'yes')
    [Merge(into=1, other=2)]
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

PAIR_CURVE = (1.0, 0.04)  # chance_same on lfw-dev: (middle, width) as shares of the cut
NEAR = 6  # each person's nearest people considered for "same person?"
SUGGEST = 4  # named people suggested for "who is this?"
NAME_WEIGHT = 0.02  # the value of naming a person, per face
NAME_MIN_FACES = 3  # "who is this?" is asked for unnamed people of at least this many faces
ANSWERS = ("yes", "no", "skip", "ignore")
# The chances, measured on the family albums D1 and D2 (bench/review_chances.py, from the
# people before any review: bench/results-review/chances.md): that two groups at d/cut are one
# person, by their sizes (of ~1,560 pairs of one-face people near each other, 1 was; of one-face
# people at 0.95-1.05 cut from a larger one, 1 in 6), falling off past SAME_MIDDLE x cut ...
SAME_BASE = {"one-one": 0.002, "one-many": 0.3, "many-many": 0.9}
SAME_MIDDLE, SAME_WIDTH = 1.04, 0.02
FAR = 1.5  # two people further apart than FAR x cut are never asked about (none was one person)
# A face and a larger person: the distance to its nearest face there tells more than the
# root-mean-squared one (the plain list's lever): one person in 2 under 0.85 cut, 1 in 30 at
# 0.9-0.95, 1 in 70 at 0.95-1.0 (chance at most, middle, width as shares of the cut).
ONE_MANY_NEAREST = (0.6, 0.87, 0.025)
# ... and that a face is not of its person, at d/cut from the rest of it: in groups of up to
# SMALL_GROUP faces mostly past 0.8 cut (55 of 71 faces at 0.8-1.0), in larger ones past the
# cut (4 of 60 family faces at 0.9-1.0 cut; a group with no family at its core, 14 of 15).
SMALL_GROUP = 5
ODD_SMALL = (0.9, 0.78, 0.02)  # (chance at most, middle, width) as shares of the cut
ODD_LARGE = (1.0, 1.0, 0.03)
# Bystanders weigh BYSTANDER_WEIGHT of a face in the gains, so that questions about them come
# last: a face under BYSTANDER_AREA of its photo's largest face's area (56 of the 57 such faces
# on D1 and D2 are nobody's labelled face), or off the middle (centre over BYSTANDER_EDGE of the
# side from the photo's centre) in a photo with a face in the middle (within BYSTANDER_MIDDLE):
# of the faces at least half as large as their photo's largest, all 95 within 0.1 of the middle
# are labelled and none of the 51 past 0.25 (bench/results-review/chances.md; in a group photo
# the people at the sides of one in the middle count as bystanders too: asked later, never
# hidden).
BYSTANDER_AREA = 0.5
BYSTANDER_EDGE, BYSTANDER_MIDDLE = 0.25, 0.15
BYSTANDER_WEIGHT = 0.1
SPLIT_SHOW = 12  # faces a "which are not this person?" shows: its most central 4, then the odd
# The review is done when the best open question's expected gain is under DONE_FLOOR faces
# (bench/results-review: no answer past it changed F on D1 or D2).
DONE_FLOOR = 0.1
# Strangers: one-face people (unnamed) whose nearest person is over STRANGER_GAP x cut away (of
# the 262 such faces on D1 and D2, 3 were family), offered STRANGER_BATCH at a time, most alone
# first, once the review is done (their answer puts no face right: it tidies the people).
STRANGER_GAP = 1.05
STRANGER_BATCH = 24
STRANGER_VALUE = 0.05
# "who is this?": `yes` takes the first suggestion only within (1 + WHO_MARGIN) x the people cut.
# On D1 and D2 (bench/results-review/who-margin.md) 99.6% and 100% of true pairs (the queue's
# own true suggestions, and 3-8 faces of a family member against the rest) are within 1.05
# cut, against 0 and 5 of about 2,400 and 4,000 false ones (the nearest other named person);
# the far merges that did harm were at 1.15-1.8 cut.
WHO_MARGIN = 0.05


@dataclass
class Question:
    """One question: its id, kind (same, who, split, face, strangers), value (its expected
    gain, in faces put right), the people and face it is about, their distance, for "who" the
    suggested named people (id, name, distance), for "strangers" its faces."""

    id: str
    kind: str
    value: float
    a: int  # person (same: the first; who: the person; face: the person the face may join)
    b: int | None = None  # same: the other person
    face: int | None = None  # face: the face id
    distance: float = 0.0
    suggestions: list[tuple[int, str, float]] = field(default_factory=list)
    chance: float = 0.5  # the chance that the answer changes the people, from the distances
    reason: str = ""  # why it is asked, when not for the distances alone (the photos' tags)
    names: list[str] = field(default_factory=list)  # who: the names the photos' tags give
    near: bool = False  # who: the first suggestion is near enough for `yes` to take it
    faces: list[int] = field(default_factory=list)  # strangers: the faces to hide

    @property
    def answers(self) -> list[str]:
        """The answers this question takes, as the command line writes them."""
        if self.kind == "who":
            return (["yes"] if self.near else []) + ["name=NAME", "person=ID", "no", "skip",
                                                     "ignore"]
        if self.kind == "split":
            return ["not=ID,ID", "none", "skip", "ignore"]
        if self.kind == "strangers":
            return ["yes", "no", "skip"]
        return list(ANSWERS)

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "value": round(self.value, 4), "a": self.a,
                "b": self.b, "face": self.face, "distance": round(self.distance, 4),
                "suggestions": [{"person": p, "name": n, "distance": round(d, 4)}
                                for p, n, d in self.suggestions],
                "reason": self.reason, "names": list(self.names), "near": self.near,
                "answers": self.answers}


@dataclass(frozen=True)
class TagHint:
    """What the photos' XMP face regions say and a run did not apply (xmp.read_tags): one
    name on `faces` that facedist keeps in different people (outcome "apart"), or several
    `names` on one face (outcome "conflict")."""

    names: tuple[str, ...]
    faces: tuple[int, ...]


def tag_hints(regions) -> list[TagHint]:
    """The TagHints of the regions a run read, given as (name, face id, outcome) each."""
    apart: dict[str, set[int]] = {}
    on_face: dict[int, set[str]] = {}
    for name, face, outcome in regions:
        if face is None:
            continue
        if outcome == "apart":
            apart.setdefault(name, set()).add(int(face))
        elif outcome == "conflict":
            on_face.setdefault(int(face), set()).add(name)
    return ([TagHint((n,), tuple(sorted(f))) for n, f in sorted(apart.items())]
            + [TagHint(tuple(sorted(n)), (f,)) for f, n in sorted(on_face.items()) if len(n) > 1])


def chance_same(d, cut: float) -> np.ndarray:
    """The chance that two groups at root-mean-squared distance d are one person when either
    is as likely (lfw-dev's pairs): a logistic curve, 1/2 at the cut, width 0.04 cut. The
    look-alikes' "maybe one person" uses it; the review's odds are the albums' (chance_one)."""
    mid, width = PAIR_CURVE
    z = np.clip((np.asarray(d, np.float64) - mid * cut) / (width * cut), -30, 30)
    return 1.0 / (1.0 + np.exp(z))


def _falling(r, middle: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(np.clip((np.asarray(r, np.float64) - middle) / width, -30, 30)))


def chance_one(d, cut: float, a, b) -> np.ndarray:
    """The chance, in a family album, that groups of a and b faces at root-mean-squared
    distance d are one person (SAME_BASE by their sizes, falling past SAME_MIDDLE x cut)."""
    small = np.minimum(a, b)
    large = np.maximum(a, b)
    base = np.where(large <= 1, SAME_BASE["one-one"],
                    np.where(small <= 1, SAME_BASE["one-many"], SAME_BASE["many-many"]))
    return base * _falling(np.asarray(d, np.float64) / cut, SAME_MIDDLE, SAME_WIDTH)


def chance_odd(d, cut: float, size) -> np.ndarray:
    """The chance, in a family album, that a face at distance d from the rest of its person
    of `size` faces is someone else (ODD_SMALL for groups of up to SMALL_GROUP, ODD_LARGE)."""
    r = np.asarray(d, np.float64) / cut
    size = np.asarray(size)
    small = ODD_SMALL[0] * (1 - _falling(r, ODD_SMALL[1], ODD_SMALL[2]))
    large = ODD_LARGE[0] * (1 - _falling(r, ODD_LARGE[1], ODD_LARGE[2]))
    return np.where(size <= SMALL_GROUP, small, large)


def involved(a, b) -> np.ndarray:
    """Faces involved in a question about groups of a and b faces: 2ab/(a+b)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return 2 * a * b / np.maximum(a + b, 1)


def parse_id(qid: str) -> tuple[str, list[int]]:
    """('same', [a, b]) / ('who', [p]) / ('split', [p]) / ('face', [f, p]) /
    ('strangers', [f, ...]) from a question id; ValueError else."""
    kind, _, rest = str(qid).partition(":")
    try:
        nums = [int(v) for v in rest.split("," if kind == "strangers" else ":")]
    except ValueError:
        raise ValueError(f"no question {qid!r}") from None
    if kind == "strangers":
        if not 0 < len(nums) <= STRANGER_BATCH or len(set(nums)) != len(nums):
            raise ValueError(f"no question {qid!r}")
        return kind, nums
    if (kind, len(nums)) not in (("same", 2), ("who", 1), ("split", 1), ("face", 2)):
        raise ValueError(f"no question {qid!r}")
    return kind, nums


class ReviewQueue:
    """The questions of one set of people, kept up to date as answers change them.

    `face_ids`, `x` (embeddings, unit length or raw), `person` (person id per face, -1: none), `names`
    (person id -> name), `pinned` (per face), `cut` (the people threshold), `settled` (question
    ids never to ask again), `ignored` (per face: left out), `tags` (TagHints: asked first),
    `bystander` (per face: a small face in another's photo, bystanders())."""

    def __init__(self, face_ids, x, person, names: dict[int, str], cut: float,
                 pinned=None, settled=(), ignored=None, tags=(), reopened=(),
                 bystander=None) -> None:
        self.face_ids = np.asarray(face_ids, np.int64)
        self.x = np.ascontiguousarray(x, np.float64)
        n = len(self.face_ids)
        # each face's weight in the gains: bystanders count little
        self.weight = np.where(np.zeros(n, bool) if bystander is None
                               else np.asarray(bystander, bool), BYSTANDER_WEIGHT, 1.0)
        self.row = {int(f): i for i, f in enumerate(self.face_ids)}
        self.pinned = np.zeros(n, bool) if pinned is None else np.asarray(pinned, bool).copy()
        self.ignored = np.zeros(n, bool) if ignored is None else np.asarray(ignored, bool).copy()
        self.cut = float(cut)
        self.names = {int(k): v for k, v in names.items() if v}
        self.settled = set(settled)
        self.tags = list(tags)
        self.reopened = list(reopened)  # questions whose answer was undone, latest first
        self._version, self._lists = 0, (-1, {})  # the questions of each kind, per state (_memo)
        person = np.asarray(person, np.int64)
        ids = np.unique(person[person >= 0])
        self.pid = list(int(p) for p in ids)  # person index -> id
        self.index = {p: i for i, p in enumerate(self.pid)}
        cap = len(ids) + 64
        self.xsq = np.einsum("ij,ij->i", self.x, self.x)  # |x|^2 per face (1 for unit vectors)
        self.sums = np.zeros((cap, self.x.shape[1]))
        self.squares = np.zeros(cap)  # per person: the sum of its faces' |x|^2
        self.size = np.zeros(cap, np.int64)
        self.weighed = np.zeros(cap)  # per person: the sum of its faces' weights
        self.of = np.full(n, -1, np.int64)  # person index per face
        placed = person >= 0
        self.of[placed] = np.searchsorted(ids, person[placed])
        np.add.at(self.sums, self.of[placed], self.x[placed])
        np.add.at(self.squares, self.of[placed], self.xsq[placed])
        np.add.at(self.weighed, self.of[placed], self.weight[placed])
        self.size[:len(ids)] = np.bincount(self.of[placed], minlength=len(ids))
        self._near = np.full((cap, NEAR), -1, np.int64)  # nearest people per person
        self._near_d = np.full((cap, NEAR), np.inf)
        self._refresh(np.arange(len(self.pid)))

    # -- state ----------------------------------------------------------------------------
    def _means(self) -> np.ndarray:
        m = self.sums[:len(self.pid)] / np.maximum(self.size[:len(self.pid)], 1)[:, None]
        return m

    def _msq(self) -> np.ndarray:
        """Each person's mean |x|^2."""
        return self.squares[:len(self.pid)] / np.maximum(self.size[:len(self.pid)], 1)

    def _rms(self, rows: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Root mean squared distance between people `rows` and all: the mean squared distance
        of groups A, B is msq(A) + msq(B) - 2 mean(A).mean(B) (2 - 2 mean(A).mean(B) for unit
        vectors), msq the mean squared length of a group's vectors."""
        msq = self._msq()
        d2 = msq[rows][:, None] + msq[None, :] - 2 * (m[rows] @ m.T)
        return np.sqrt(np.maximum(d2, 0))

    def _refresh(self, rows) -> None:
        """Recompute the nearest people of persons `rows`."""
        rows = np.asarray(sorted(set(int(r) for r in rows)), np.int64)
        P = len(self.pid)
        if len(rows) == 0 or P < 2:
            return
        m = self._means()
        empty = self.size[:P] == 0
        for s in range(0, len(rows), 2048):
            r = rows[s:s + 2048]
            d = self._rms(r, m)
            d[:, empty] = np.inf
            d[np.arange(len(r)), r] = np.inf
            k = min(NEAR, P - 1)
            near = np.argpartition(d, k - 1, axis=1)[:, :k]
            self._near[r] = -1
            self._near_d[r] = np.inf
            self._near[r, :k] = near
            self._near_d[r, :k] = np.take_along_axis(d, near, 1)
            self._near_d[r[empty[r]]] = np.inf

    def _grow(self) -> int:
        """A new, empty person index (the arrays grow as needed)."""
        i = len(self.pid)
        if i >= len(self.size):
            extra = max(64, len(self.size) // 2)
            self.sums = np.vstack([self.sums, np.zeros((extra, self.sums.shape[1]))])
            self.squares = np.concatenate([self.squares, np.zeros(extra)])
            self.size = np.concatenate([self.size, np.zeros(extra, np.int64)])
            self.weighed = np.concatenate([self.weighed, np.zeros(extra)])
            self._near = np.vstack([self._near, np.full((extra, NEAR), -1, np.int64)])
            self._near_d = np.vstack([self._near_d, np.full((extra, NEAR), np.inf)])
        return i

    def _touched(self, idx: set[int]) -> None:
        """After people `idx` changed: their nearest lists, and the lists that held them."""
        P = len(self.pid)
        held = np.nonzero(np.isin(self._near[:P], list(idx)).any(axis=1))[0]
        self._refresh(list(idx) + held.tolist())

    def person_faces(self, person: int) -> np.ndarray:
        """The face ids of a person."""
        i = self.index.get(int(person))
        return self.face_ids[self.of == i] if i is not None else np.zeros(0, np.int64)

    def size_of(self, person: int) -> int:
        i = self.index.get(int(person))
        return int(self.size[i]) if i is not None else 0

    # -- following the database --------------------------------------------------------
    def sync(self, person, pinned, ignored, names: dict[int, str], settled=None,
             reopened=None) -> None:
        """Take the people as the database holds them now (after an answer, an undo, another
        tab or the command line): faces whose person changed move between the groups' sums,
        and the nearest lists of the people touched are recomputed. The corrections' rules
        live in one place (people.py, in SQL); the queue only follows what they did."""
        person = np.asarray(person, np.int64)
        for p in np.unique(person[person >= 0]):
            if int(p) not in self.index:
                self.index[int(p)] = self._grow()
                self.pid.append(int(p))
        new = np.array([self.index[int(p)] if p >= 0 else -1 for p in person], np.int64) \
            if len(person) else np.zeros(0, np.int64)
        moved = np.nonzero(new != self.of)[0]
        touched = set(self.of[moved].tolist()) | set(new[moved].tolist())
        for rows, group, sign in ((moved[self.of[moved] >= 0], self.of, -1),
                                  (moved[new[moved] >= 0], new, 1)):
            np.add.at(self.sums, group[rows], sign * self.x[rows])
            np.add.at(self.squares, group[rows], sign * self.xsq[rows])
            np.add.at(self.weighed, group[rows], sign * self.weight[rows])
            np.add.at(self.size, group[rows], sign)
        self.of = new
        self.pinned = np.asarray(pinned, bool).copy()
        self.ignored = np.asarray(ignored, bool).copy()
        self.names = {int(k): v for k, v in names.items() if v}
        if settled is not None:
            self.settled = set(settled)
        if reopened is not None:
            self.reopened = list(reopened)
        touched.discard(-1)
        if touched:
            self._touched(touched)
        self._version += 1

    def settle(self, qid: str) -> None:
        self.settled.add(qid)
        self._version += 1

    def _memo(self, kind: str, make) -> list[Question]:
        """The questions of one kind (make()), computed once per state of the people: the page
        asks for the next question, the progress and an answer's question in turn."""
        if self._lists[0] != self._version:
            self._lists = (self._version, {})
        if kind not in self._lists[1]:
            self._lists[1][kind] = make()
        return self._lists[1][kind]

    # -- questions ------------------------------------------------------------------------
    def questions(self, n: int = 10, past_done: bool = False) -> list[Question]:
        """The n questions worth most, best first: a question whose answer was undone first of
        all (the latest undone first) until it is answered, then those the photos' tags raise,
        then by expected gain, down to DONE_FLOOR; `past_done`: the rest too, the strangers to
        hide first."""
        first = []
        for qid in self.reopened:
            try:
                first.append(self.question(qid))
            except ValueError:  # its people have changed since: asked as the queue ranks it
                continue
        first += self._tagged()
        asked = {q.id for q in first}
        out = [q for kind, make in (("same", self._same), ("split", self._split),
                                    ("face", self._faces), ("who", self._who))
               for q in self._memo(kind, make) if q.id not in asked]
        out.sort(key=lambda q: (-q.value, q.id))
        unique = list({q.id: q for q in first}.values())
        useful = [q for q in out if q.value >= DONE_FLOOR]
        if past_done:
            useful += (self._memo("strangers", self._strangers)
                       + [q for q in out if q.value < DONE_FLOOR])
        return (unique + useful)[:max(0, n)]

    def done(self) -> bool:
        """Whether the review is done: no question left worth DONE_FLOOR or more."""
        return not self.questions(1)

    def _tagged(self) -> list[Question]:
        """The open questions of the TagHints: "same person?" for each two people holding a
        face tagged with one name or named so now (unless named apart since, or settled);
        "who is this?" for the unnamed person of a face tagged with several names, suggesting
        the people who carry those names (a named person keeps its name: `people OUT tags`
        lists the disagreement)."""
        same, who, seen = [], [], set()
        for hint in self.tags:
            rows = [self.row[f] for f in hint.faces
                    if f in self.row and not self.ignored[self.row[f]]]
            held = {self.pid[self.of[r]] for r in rows if self.of[r] >= 0}
            if len(hint.names) == 1:
                [name] = hint.names
                held |= {p for p, n in self.names.items() if n == name and self.size_of(p)}
                for a, b in itertools.combinations(sorted(held), 2):
                    na, nb = self.names.get(a), self.names.get(b)
                    qid = f"same:{a}:{b}"
                    if (na and nb and na != nb) or qid in self.settled or qid in seen:
                        continue
                    seen.add(qid)
                    q = self._pair(qid, a, b)
                    q.reason = f'both tagged "{name}" in your photos'
                    same.append(q)
                continue
            for p in sorted(held):
                qid = f"who:{p}"
                if p in self.names or qid in self.settled or qid in seen:
                    continue
                seen.add(qid)
                holders = [h for h, n in self.names.items() if n in hint.names and self.size_of(h)]
                sugg = []
                if holders:
                    d = self._rms(np.array([self.index[p]]), self._means())[0]
                    sugg = sorted(((h, self.names[h], float(d[self.index[h]])) for h in holders),
                                  key=lambda s: (s[2], s[0]))
                who.append(Question(
                    qid, "who", NAME_WEIGHT * self.size_of(p), p,
                    face=hint.faces[0], distance=sugg[0][2] if sugg else 0.0,
                    suggestions=sugg, chance=1.0, names=list(hint.names),
                    near=bool(sugg),  # the person who carries the name the user tagged it with
                    reason="one face tagged " + " and ".join(f'"{n}"' for n in hint.names)
                    + " in your photos"))
        return same + who

    def _pair(self, qid: str, a: int, b: int) -> Question:
        """"Same person?" about people a and b as they stand now."""
        i, j = self.index[a], self.index[b]
        d = float(self._rms(np.array([i]), self._means())[0, j])
        p = float(self._pair_chance(np.array([i]), np.array([j]), np.array([d]))[0])
        v = float(involved(self.weighed[i], self.weighed[j])) * p
        return Question(qid, "same", v, a, b, distance=d, chance=p)

    def _pair_chance(self, lo: np.ndarray, hi: np.ndarray, d: np.ndarray) -> np.ndarray:
        """chance_one of the people pairs (lo[k], hi[k]) at rms distance d[k]; a one-face person
        against a larger one near enough to matter by its nearest face (ONE_MANY_NEAREST)."""
        a, b = self.size[lo], self.size[hi]
        chance = chance_one(d, self.cut, a, b)
        mixed = np.nonzero((np.minimum(a, b) == 1) & (np.maximum(a, b) > 1)
                           & (d < (SAME_MIDDLE + 5 * SAME_WIDTH) * self.cut))[0]
        if len(mixed):
            order = np.argsort(self.of, kind="stable")
            starts = np.searchsorted(self.of[order], np.arange(len(self.pid) + 1))
            top, middle, width = ONE_MANY_NEAREST
            for k in mixed:
                one, many = (lo[k], hi[k]) if a[k] == 1 else (hi[k], lo[k])
                face = order[starts[one]]
                rows = order[starts[many]:starts[many + 1]]
                gap = np.sqrt(max(float(np.min(self.xsq[rows] + self.xsq[face]
                                                  - 2 * self.x[rows] @ self.x[face])), 0.0))
                chance[k] = (top * _falling(gap / self.cut, middle, width)
                             * _falling(d[k] / self.cut, SAME_MIDDLE, SAME_WIDTH))
        return chance

    def _same(self, limit: int = 400, closest: bool = False) -> list[Question]:
        P = len(self.pid)
        if P < 2:
            return []
        i = np.repeat(np.arange(P), self._near.shape[1])
        j = self._near[:P].ravel()
        d = self._near_d[:P].ravel()
        ok = (j >= 0) & np.isfinite(d)
        i, j, d = i[ok], j[ok], d[ok]
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        key = lo * (P + 1) + hi
        _, first = np.unique(key, return_index=True)
        lo, hi, d = lo[first], hi[first], d[first]
        chance = self._pair_chance(lo, hi, d)
        value = involved(self.weighed[lo], self.weighed[hi]) * chance
        order = np.argsort(d if closest else -value, kind="stable")
        out = []
        for k in order:
            if len(out) >= limit or (not closest and value[k] <= 1e-6):
                break
            if d[k] > FAR * self.cut:
                continue
            a, b = sorted((self.pid[lo[k]], self.pid[hi[k]]))
            na, nb = self.names.get(a), self.names.get(b)
            if na and nb and na != nb:
                continue  # named differently: the user already said who each is
            qid = f"same:{a}:{b}"
            if qid in self.settled:
                continue
            out.append(Question(qid, "same", float(value[k]), a, b, distance=float(d[k]),
                                chance=float(chance[k])))
        return out

    def _edge(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every placed face of a person of two or more (rows), its person (index), and its
        distance to the rest of that person (the root-mean-squared distance)."""
        rows = np.nonzero((self.of >= 0) & ~self.ignored)[0]
        rows = rows[self.size[self.of[rows]] >= 2]
        p = self.of[rows]
        rest = self.size[p] - 1
        dot = np.einsum("ij,ij->i", self.x[rows], self.sums[p] - self.x[rows]) / rest
        rest_msq = (self.squares[p] - self.xsq[rows]) / rest
        return rows, p, np.sqrt(np.maximum(self.xsq[rows] + rest_msq - 2 * dot, 0))

    def _split_value(self, odd: np.ndarray, weight: np.ndarray) -> float:
        """A split's expected gain: the odd faces expected, each by its weight (at most all
        but the heaviest)."""
        return float(min(odd @ weight, weight.sum() - weight.max()))

    def _split(self) -> list[Question]:
        """"Which of these are not this person?" for each person of two or more faces, worth
        the odd faces expected among those it shows (split_faces: a large person's farthest)."""
        rows, p, d = self._edge()
        if not len(rows):
            return []
        odd = chance_odd(d, self.cut, self.size[p])
        out = []
        order = np.lexsort((-d, p))  # per person, farthest first
        rows, p, d, odd = rows[order], p[order], d[order], odd[order]
        starts = np.searchsorted(p, np.unique(p))
        for i, start in zip(np.unique(p), starts):
            shown = slice(start, start + min(int(self.size[i]), SPLIT_SHOW - 4)
                          if self.size[i] > SPLIT_SHOW else start + int(self.size[i]))
            qid = f"split:{self.pid[i]}"
            value = self._split_value(odd[shown], self.weight[rows[shown]])
            if value > 1e-6 and qid not in self.settled:
                out.append(Question(qid, "split", value, self.pid[i],
                                    chance=float(1 - np.prod(1 - odd[shown])),
                                    distance=float(d[start])))
        return out

    def _faces(self) -> list[Question]:
        """"Is this face one of them?" for each face without a person, about the person
        nearest it (a face at a person's edge is asked about by _split)."""
        P = len(self.pid)
        loose = np.nonzero((self.of < 0) & ~self.ignored)[0]
        if P == 0 or not len(loose):
            return []
        m = self._means()
        d2 = self.xsq[loose][:, None] + self._msq()[None, :] - 2 * (self.x[loose] @ m.T)
        d2[:, self.size[:P] == 0] = np.inf
        best = np.argmin(d2, axis=1)
        d = np.sqrt(np.maximum(d2[np.arange(len(loose)), best], 0))
        sizes = self.size[best]
        return self._face_questions(loose, best, d, chance_one(d, self.cut, 1, sizes),
                                    self.weight[loose] * involved(1, self.weighed[best]))

    def _face_questions(self, rows, persons, d, chance, gain) -> list[Question]:
        """"Is this face one of them?" for faces `rows` against `persons` (indices) at distance
        `d`, with the chance that the answer changes them and the faces it puts right then:
        the 400 most worth asking, unsettled ones."""
        value = chance * gain
        out = []
        for k in np.argsort(-value, kind="stable")[:400]:
            if value[k] <= 1e-6:
                break
            f, person = int(self.face_ids[rows[k]]), self.pid[persons[k]]
            qid = f"face:{f}:{person}"
            if qid not in self.settled:
                out.append(Question(qid, "face", float(value[k]), person, face=f,
                                    distance=float(d[k]), chance=float(chance[k])))
        return out

    def _strangers(self) -> list[Question]:
        """"Hide these strangers?" for the unnamed one-face people whose nearest person is over
        STRANGER_GAP x cut away, STRANGER_BATCH at a time, the most alone first."""
        P = len(self.pid)
        if P < 2:
            return []
        single = np.nonzero((self.of >= 0) & ~self.ignored)[0]
        single = single[self.size[self.of[single]] == 1]
        single = single[[self.pid[self.of[r]] not in self.names for r in single]]
        if not len(single):
            return []
        near = self._near_d[self.of[single]].min(1)
        alone = near > STRANGER_GAP * self.cut
        single, near = single[alone], near[alone]
        order = np.lexsort((self.face_ids[single], -near, self.weight[single] < 1))
        faces = [int(f) for f in self.face_ids[single[order]]]
        out = []
        for s in range(0, len(faces), STRANGER_BATCH):
            batch = sorted(faces[s:s + STRANGER_BATCH])
            qid = "strangers:" + ",".join(map(str, batch))
            if qid not in self.settled:
                out.append(Question(qid, "strangers", STRANGER_VALUE,
                                    self.person_of_face(batch[0]), faces=batch, chance=1.0))
        return out

    def _who(self) -> list[Question]:
        P = len(self.pid)
        unnamed = [i for i in range(P) if self.size[i] >= NAME_MIN_FACES
                   and self.pid[i] not in self.names and self.pid[i] >= 0]
        if not unnamed:
            return []
        named = np.array([self.index[p] for p in self.names if p in self.index
                          and self.size[self.index[p]] > 0], np.int64)
        m = self._means()
        out = []
        for i in sorted(unnamed, key=lambda i: -self.size[i])[:400]:
            qid = f"who:{self.pid[i]}"
            if qid in self.settled:
                continue
            sugg = []
            if len(named):
                d = self._rms(np.array([i]), m)[0, named]
                for k in np.argsort(d)[:SUGGEST]:
                    p = self.pid[named[k]]
                    sugg.append((p, self.names[p], float(d[k])))
            value = NAME_WEIGHT * float(self.weighed[i])
            out.append(Question(qid, "who", value, self.pid[i],
                                distance=sugg[0][2] if sugg else 0.0, suggestions=sugg,
                                chance=1.0, near=self.near(sugg[0][2]) if sugg else False))
        return out

    def near(self, distance: float) -> bool:
        """Whether a named suggestion this far is near enough for a bare `yes` (WHO_MARGIN)."""
        return distance <= (1 + WHO_MARGIN) * self.cut

    def question(self, qid: str) -> Question:
        """The question `qid` as it stands now; ValueError when it is settled, its people or
        face are gone (answered meanwhile), or it is not one the queue asks."""
        kind, nums = parse_id(qid)
        if qid in self.settled:
            raise ValueError(f"question {qid} is answered already")
        for q in self._tagged() if self.tags else ():
            if q.id == qid:
                return q
        if kind == "same":
            a, b = nums
            if a == b or self.size_of(a) == 0 or self.size_of(b) == 0:
                raise ValueError(f"question {qid}: its people have changed")
            i, j = self.index[a], self.index[b]
            na, nb = self.names.get(a), self.names.get(b)
            if (j not in self._near[i] and i not in self._near[j]) or (na and nb and na != nb):
                raise ValueError(f"no question {qid}: the review does not ask about these two")
            q = self._pair(qid, a, b)
            if q.distance > FAR * self.cut:  # as _same
                raise ValueError(f"no question {qid}: the review does not ask about these two")
            return q
        if kind == "who":
            [p] = nums
            if self.size_of(p) == 0:
                raise ValueError(f"question {qid}: person {p} has gone")
            return _listed(self._memo("who", self._who), qid,
                           f"no question {qid}: person {p} is named or too small to ask about")
        if kind == "split":
            [p] = nums
            if self.size_of(p) < 2:
                raise ValueError(f"question {qid}: person {p} has changed")
            return _listed(self._memo("split", self._split), qid,
                           f"no question {qid}: the review does not ask to split this person")
        if kind == "strangers":
            return _listed(self._memo("strangers", self._strangers), qid,
                           f"question {qid}: these faces are no longer strangers to hide "
                           f"together (the people changed)")
        f, p = nums
        if f not in self.row or self.size_of(p) == 0 or self.ignored[self.row[f]]:
            raise ValueError(f"question {qid}: the face or person has gone")
        return _listed(self._memo("face", self._faces), qid,
                       f"no question {qid}: the review does not ask about this face there")

    def faces_toward(self, person: int, toward=None, n: int = 6) -> list[int]:
        """Up to n face ids of `person`, those most like `toward` (a vector) first."""
        i = self.index.get(int(person))
        if i is None:
            return []
        rows = np.nonzero(self.of == i)[0]
        if toward is not None and len(rows):
            rows = rows[np.argsort(-(self.x[rows] @ np.asarray(toward, np.float64)), kind="stable")]
        return [int(self.face_ids[r]) for r in rows[:n]]

    def mean_of(self, person: int) -> np.ndarray | None:
        i = self.index.get(int(person))
        return None if i is None else self.sums[i] / max(self.size[i], 1)

    def shown(self, q: Question, n: int = 6) -> dict:
        """The faces a question shows, per side (face ids): "same": left (person a, most like
        b first), right (b, most like a); "who": left (the person), and per suggested person
        its 3 faces most like them; "split": left (the person's SPLIT_SHOW faces: its 4 most
        central, then the farthest from the rest, farthest first); "face": left (the face),
        right (the person, most like it); "strangers": left (the faces to hide)."""
        if q.kind == "same":
            return {"left": self.faces_toward(q.a, self.mean_of(q.b), n),
                    "right": self.faces_toward(q.b, self.mean_of(q.a), n)}
        if q.kind == "who":
            toward = self.mean_of(q.a)
            left = self.faces_toward(q.a, None, n)
            if q.face is not None:  # the face the photos' tags name: shown first
                left = [q.face] + [f for f in left if f != q.face][:n - 1]
            return {"left": left,
                    "suggestions": {p: self.faces_toward(p, toward, 3) for p, _, _ in q.suggestions}}
        if q.kind == "split":
            return {"left": self.split_faces(q.a)}
        if q.kind == "strangers":
            return {"left": list(q.faces)}
        x = self.x[self.row[q.face]]
        return {"left": [q.face],
                "right": [f for f in self.faces_toward(q.a, x, n + 1) if f != q.face][:n]}

    def split_faces(self, person: int) -> list[int]:
        """The faces "which of these are not this person?" shows (see shown)."""
        rows, p, d = self._edge()
        i = self.index.get(int(person))
        mine = p == i
        rows, d = rows[mine], d[mine]
        if len(rows) <= SPLIT_SHOW:
            order = np.argsort(d, kind="stable")
        else:
            near = np.argsort(d, kind="stable")
            order = np.concatenate([near[:4], near[4:][::-1][:SPLIT_SHOW - 4]])
        return [int(self.face_ids[r]) for r in rows[order]]

    def person_of_face(self, face_id: int) -> int:
        i = int(self.of[self.row[int(face_id)]])
        return self.pid[i] if i >= 0 else -1


def _listed(questions: list[Question], qid: str, why: str) -> Question:
    """The question `qid` among `questions`; ValueError(why) when it is not there."""
    for q in questions:
        if q.id == qid:
            return q
    raise ValueError(why)


def ask_closest(queue: ReviewQueue, n: int) -> list[Question]:
    """The baseline order: "same person?" for the closest pairs of people first."""
    return queue._same(limit=n, closest=True)


def plan(queue: ReviewQueue, qid: str, answer) -> list:
    """The corrections (people.Correction values) that answer `qid`: `answer` is "yes", "no",
    "skip" or "ignore"; for "who is this?" also {"person": ID} (one of them) or {"name": NAME}
    (a new name; an existing person's name merges into them); for "which of these are not this
    person?" {"not": [face ids shown]} or "none" (and skip, ignore); for "hide these
    strangers?" yes, no or skip. ValueError for an answer that does not fit the question."""
    from .config import checked_id
    from .people import IgnoreFace, IgnorePerson, Merge, Move, Name, Apart, check_name

    q = queue.question(qid)
    if q.kind == "split":
        if answer in ("none", "skip"):
            return []
        if answer == "ignore":
            return [IgnorePerson(q.a)]
        if not (isinstance(answer, dict) and set(answer) == {"not"}
                and isinstance(answer["not"], list) and answer["not"]):
            raise ValueError(f"question {qid} takes not=ID,ID (the faces that are not this "
                             f"person), none, skip or ignore")
        odd = [checked_id(f, "face") for f in answer["not"]]
        shown = set(queue.split_faces(q.a))
        if len(set(odd)) != len(odd) or not set(odd) <= shown:
            raise ValueError(f"question {qid}: not= takes faces it shows, each once")
        if len(odd) >= queue.size_of(q.a):
            raise ValueError(f"question {qid}: leave at least one face as this person")
        return [Move(f, None) for f in odd]
    if q.kind == "strangers":
        if answer not in ("yes", "no", "skip"):
            raise ValueError(f"question {qid} takes yes, no or skip")
        return [IgnoreFace(f) for f in q.faces] if answer == "yes" else []
    if isinstance(answer, dict):
        if q.kind != "who":
            raise ValueError(f"question {qid} takes yes, no, skip or ignore")
        if "person" in answer:
            other = checked_id(answer["person"], "person")
            if other == q.a or queue.size_of(other) == 0:
                raise ValueError(f"no person {other} to join")
            return [Merge(other, q.a)]
        name = check_name(answer.get("name"))
        same = [p for p, n in queue.names.items() if n == name and p != q.a and queue.size_of(p)]
        return [Merge(same[0], q.a)] if same else [Name(q.a, name)]
    if answer not in ANSWERS:
        raise ValueError(f"an answer is one of {', '.join(ANSWERS)}, not {answer!r}")
    if answer == "skip":
        return []
    if q.kind == "same":
        a, b = q.a, q.b
        if queue.size_of(b) > queue.size_of(a) or (b in queue.names and a not in queue.names):
            a, b = b, a  # into the named, else the larger
        return {"yes": [Merge(a, b)], "no": [Apart(q.a, q.b)],
                "ignore": [IgnorePerson(b)]}[answer]
    if q.kind == "who":
        if answer == "yes":
            if not q.suggestions:
                raise ValueError(f"question {qid}: nobody is named yet, so there is nothing to "
                                 f"say yes to: answer name=NAME, no, skip or ignore")
            if not q.near:
                from .display import shown

                p, name, d = q.suggestions[0]
                raise ValueError(
                    f"question {qid}: the nearest named person, {shown(name)} (person {p}), is "
                    f"too far to take with yes ({d:.3f}, over {(1 + WHO_MARGIN) * queue.cut:.3f}):"
                    f" answer person={p} to join them anyway, or name=NAME")
            return [Merge(q.suggestions[0][0], q.a)]
        return {"no": [], "ignore": [IgnorePerson(q.a)]}[answer]
    inside = queue.person_of_face(q.face) == q.a
    return {"yes": [Move(q.face, q.a)],
            "no": [Move(q.face, None)] if inside else [],
            "ignore": [IgnoreFace(q.face)]}[answer]


def in_words(queue: ReviewQueue, qid: str, answer) -> str:
    """An answer to `qid` in plain words, as the page says it ("Kept apart", "Named Ana"): no
    ids. `answer` as given or as stored (a JSON text for {"name": ...} / {"person": ...}).
    Names are shown escaped (display.shown)."""
    import json

    from .display import shown

    if isinstance(answer, str) and answer.startswith("{"):
        try:
            answer = json.loads(answer)
        except ValueError:
            pass
    kind = str(qid).partition(":")[0]

    def called(person) -> str:
        name = queue.names.get(int(person)) if isinstance(person, int) else None
        return shown(name) if name else "the person shown"

    if answer == "skip":
        return "Skipped"
    if isinstance(answer, dict):
        if "name" in answer:
            return f"Named {shown(str(answer['name']).strip())}"
        if "not" in answer:
            odd = len(answer["not"]) if isinstance(answer["not"], list) else 1
            return f"{odd} face{'s' if odd != 1 else ''} set apart as someone else"
        return f"Joined {called(answer.get('person'))}"
    if kind == "split":
        return {"none": "All the same person", "ignore": "Set aside"}.get(answer, "Answered")
    if kind == "strangers":
        return {"yes": "Hidden as strangers", "no": "Kept"}.get(answer, "Answered")
    if kind == "same":
        return {"yes": "Same person: joined", "no": "Kept apart",
                "ignore": "Set aside"}.get(answer, "Answered")
    if kind == "who":
        if answer == "yes":
            try:
                first = queue.question(qid).suggestions[:1]
            except ValueError:
                first = []
            return f"Joined {shown(first[0][1])}" if first else "Joined the suggested person"
        return {"no": "Left unnamed", "ignore": "Set aside"}.get(answer, "Answered")
    return {"yes": "Face placed with them", "no": "Not one of them",
            "ignore": "Face set aside"}.get(answer, "Answered")


def bystanders(paths, boxes, sizes=None) -> np.ndarray:
    """Per face: whether it is a bystander in another person's photo: under BYSTANDER_AREA of
    the area of its photo's largest face, or (`sizes`: path -> (width, height)) off the middle
    (its centre over BYSTANDER_EDGE of the photo's side from the photo's centre) while another
    face of the photo is near the middle (within BYSTANDER_MIDDLE)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    off = np.zeros(len(boxes))
    if sizes:
        for i, path in enumerate(paths):
            w, h = sizes.get(path) or (0, 0)
            if w and h:
                off[i] = max(abs((boxes[i, 0] + boxes[i, 2]) / (2 * w) - 0.5),
                             abs((boxes[i, 1] + boxes[i, 3]) / (2 * h) - 0.5))
    largest: dict = {}
    middle: dict = {}
    for path, a, o in zip(paths, area, off):
        largest[path] = max(largest.get(path, 0.0), a)
        middle[path] = min(middle.get(path, 1.0), o)
    return np.array([a < BYSTANDER_AREA * largest[path]
                     or (bool(sizes) and o > BYSTANDER_EDGE and middle[path] < BYSTANDER_MIDDLE)
                     for path, a, o in zip(paths, area, off)], bool)
