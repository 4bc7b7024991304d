"""The review queue measured with a simulated person who answers from the folder names.

    python bench/review_sim.py OUT PHOTOS [--name NAME] [--results DIR] [--steps 0,10,...]
    python bench/review_sim.py /tmp/runs/lfw-final ../shared/data/lfw-dev/lfw --name lfw-dev

Reads a finished run (nothing is written to it), builds the queue (facedist.review) and answers,
one question at a time, as someone who knows each labelled face's folder would (the labelled
face of a photo: the one nearest its centre, as bench/first_screen.py; other faces are
strangers): "same person?" yes when both people are mostly one folder; "who is this?" that
folder's name (which merges into a person already named so); "is this face one of them?" yes
when its folder is the person's; a stranger's face or person is ignored. BCubed F of the
labelled faces against the folders after 0, 10, 25, ... answers, for three orders:

- queue: the review queue's own ranking (faces involved x how unsure);
- closest: "same person?" for the closest pairs of people first;
- random: a random question of the queue's at each step.

Answers are applied by their one rule (facedist.people's correction values) to a copy of the
run's database in a temporary folder, and the queue follows it (ReviewQueue.sync), as the
review page does; no clustering is redone between answers.
Writes DIR/NAME.json, and with every name done DIR/review.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from facedist.cluster import bcubed
from facedist.evaluate import central_faces
from facedist.models import get_spec
from facedist.people import person_ids
from facedist.review import ReviewQueue, ask_closest, plan
from facedist.store import writing

STEPS = [0, 10, 25, 50, 100, 200, 300]
NOTES = """## Reading it

- queue: facedist.review's ranking: the expected gain of the answer (the chance it changes the
  people, measured on the family albums, times the faces it puts right; review.py). The
  figures committed in results-review/review.md were made with the ranking before it (faces
  involved x how unsure an lfw-dev curve left it, with learnt odds per kind); the family albums'
  curves are bench/review_album.py's (results-review/albums.md).
- closest: "same person?" for the closest pairs of people first. random: a random question of
  the queue's at each step (the same kinds of question).
- bound (estimate): the true single corrections, largest gain first, summed: about the most any
  order of one-correction answers reaches (known to the simulation only, from the labels).
- Answers: from the folder names; the labelled face of a photo is the one nearest its centre
  (bench/first_screen.py), other faces are strangers and are ignored when asked about. Naming
  ("who is this?") and ignoring strangers do not change this F, but they cost answers.
- The earlier curve's middle and width were chosen on lfw-dev by this simulation; celeba was the
  check on other photos.
- Why the lfw-dev targets are out of reach: the distances say little near the cut. Of the
  12,645 pairs of nearest people (6 a person), 191 are one person; in the best band (1.00-1.05
  cut) 15% are, 3% at 1.05-1.10, under 1% beyond. A labelled face at a person's edge (0.95-1.00
  cut from the rest) is someone else 33% of the time, 15% at 0.90-0.95. A right answer is worth
  1-5 BCubed units (10.7 units = 0.001 of F here), so an answer brings about 0.5 units on average,
  where 0.96 after 100 would need 2.5 an answer, more than the best true fixes give (bound).
- Tried, not kept (lfw-dev, F after 100 / 300; the queue above: 0.9416 / 0.9472): a pair curve
  fitted to those shares (middle 0.974, width 0.030 cut) 0.9427 / 0.9461; the same with face
  questions weighed by face quality (fewer strangers asked) 0.9427 / 0.9462, and with a stronger
  prior on each kind's learnt odds 0.9426 / 0.9468; a 2-way split question ("are these two groups
  one person?") adds about 0.001 after 100 even for an oracle. All within noise of the queue.
"""


def load(out: Path, photos: Path):
    rows, table, db = central_faces(out, photos, "center")
    person = db.person_of(table)
    pinned = person_ids(db.store, table.face_ids)[1]
    ignored = db.ignored(table)
    names = db.store.person_names(db.pipeline_key)
    cut = db.settings.people_threshold or get_spec(db.settings.model).people_threshold
    db.close()
    label = [None] * len(table)
    for rel, i in rows.items():
        label[i] = Path(rel).parent.name
    return table, person, pinned, ignored, names, cut, label, (out, db.pipeline_key)


def simulate(data, order: str, steps: list[int], seed: int = 0) -> dict:
    import shutil
    import tempfile

    table, person, pinned, ignored, names, cut, label, (out, key) = data
    copy = Path(tempfile.mkdtemp(prefix="review-sim-"))
    for part in ("facedist.sqlite", "facedist.sqlite-wal"):
        if (out / part).exists():
            shutil.copy(out / part, copy / part)
    try:
        with writing(copy, "review simulation", check=False) as store:
            return _simulate(data, order, steps, seed, store, key)
    finally:
        shutil.rmtree(copy)


def _simulate(data, order, steps, seed, store, key) -> dict:
    table, person, pinned, ignored, names, cut, label, _ = data
    q = ReviewQueue(table.face_ids, table.embeddings, person, names, cut, pinned, (), ignored)
    lab = np.array([i for i, v in enumerate(label) if v is not None])
    truth = np.array([label[i] for i in lab])
    rng = np.random.default_rng(seed)

    def ident(p: int):
        faces = [label[q.row[int(f)]] for f in q.person_faces(p)]
        votes = Counter(v for v in faces if v is not None)
        return votes.most_common(1)[0][0] if votes else None

    def score() -> float:
        of = q.of[lab]
        pred = np.where(of >= 0, of, -1 - np.arange(len(lab)))
        return bcubed(pred, truth)[2]

    def answer(question):
        if question.kind == "same":
            a, b = ident(question.a), ident(question.b)
            return "yes" if a is not None and a == b else "no"
        if question.kind == "who":
            who = ident(question.a)
            if who is None:
                return "ignore"
            for p, n, _ in question.suggestions:
                if n == who:
                    return {"person": p}
            return {"name": who}
        if question.kind == "split":  # the faces whose label is not the most common one
            shown = q.shown(question)["left"]
            votes = Counter(label[q.row[f]] for f in shown)
            top = votes.most_common(1)[0][0]
            odd = [f for f in shown if label[q.row[f]] != top][:q.size_of(question.a) - 1]
            return {"not": odd} if odd else "none"
        if question.kind == "strangers":
            seen = Counter(label[q.row[f]] for f in q.face_ids if q.of[q.row[f]] >= 0)
            alone = all(label[q.row[f]] is None or seen[label[q.row[f]]] <= 1
                        for f in question.faces)
            return "yes" if alone else "no"
        lf = label[q.row[question.face]]
        if lf is None:
            return "ignore"
        return "yes" if lf == ident(question.a) else "no"

    curve, kinds, t0, done = {}, Counter(), time.perf_counter(), 0
    for target in steps:
        while done < target:
            if order == "queue":
                qs = q.questions(1)
            elif order == "closest":
                qs = ask_closest(q, 1)
            else:
                pool = q.questions(10 ** 6)
                qs = [pool[rng.integers(len(pool))]] if pool else []
            if not qs:
                break
            question = qs[0]
            reply = answer(question)
            kinds[question.kind + ":" + (reply if isinstance(reply, str) else next(iter(reply)))] += 1
            corrections = plan(q, question.id, reply)
            with store.transaction():
                for c in corrections:
                    c.apply(store, key)
            now, pins = person_ids(store, q.face_ids)
            q.sync(now, pins, np.isin(q.face_ids, list(store.ignored(key))),
                   store.person_names(key))
            q.settle(question.id)
            done += 1
        curve[str(target)] = round(score(), 4)
    return {"order": order, "f": curve, "answered": done, "kinds": dict(kinds),
            "seconds_per_answer": round((time.perf_counter() - t0) / max(done, 1), 4)}


def single_fix_bound(data, steps: list[int]) -> dict:
    """An estimate of the most any order can reach when each answer makes one correction: the
    true fixes (a fragment merged into its person's largest part: 2ab/T BCubed recall units; a
    wrong face moved out of a person of n: about 2 x majority/n precision units), largest first,
    each worth units / (2 x labelled faces) of F. Known to the simulation only (labels)."""
    table, person, pinned, ignored, names, cut, label, _ = data
    lab = [i for i, v in enumerate(label) if v is not None]
    pred = {i: int(person[i]) if person[i] >= 0 else -1 - i for i in lab}
    by_person, by_truth = {}, {}
    for i in lab:
        by_person.setdefault(pred[i], []).append(label[i])
        by_truth.setdefault(label[i], []).append(pred[i])
    gains = []
    for parts in by_truth.values():
        sizes = sorted(Counter(parts).values(), reverse=True)
        main = sizes[0]
        for f in sizes[1:]:
            gains.append(2 * main * f / len(parts))
            main += f
    for names_ in by_person.values():
        count = Counter(names_)
        top, top_n = count.most_common(1)[0]
        gains += [2 * top_n / len(names_)] * (len(names_) - top_n)
    gains = np.sort(np.array(gains))[::-1]
    f0 = bcubed(np.array([pred[i] for i in lab]), np.array([label[i] for i in lab]))[2]
    return {str(s): round(min(1.0, f0 + gains[:s].sum() / (2 * len(lab))), 4) for s in steps}


def write_summary(results: Path) -> None:
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))
            if p.stem != "review"}
    runs = {k: r for k, r in runs.items() if "orders" in r}  # this bench's (not review_album's)
    (results / "review.json").write_text(json.dumps(runs, indent=1) + "\n")
    lines = ["# Review queue: BCubed F after N answers (simulated person)", "",
             "Made by `bench/review_sim.py` (commands below); machine: 2 cores (shared).", ""]
    for name, r in runs.items():
        steps = list(r["orders"][0]["f"])
        lines += [f"## {name}", "", f"`{r['command']}`", "",
                  f"{r['faces']} faces, {r['labelled']} labelled, {r['people']} people, "
                  f"cut {r['cut']}", "",
                  "| order | " + " | ".join(steps) + " | answers by kind | s/answer |",
                  "|---|" + "---|" * len(steps) + "---|---|"]
        for o in r["orders"]:
            lines.append(f"| {o['order']} | " + " | ".join(f"{o['f'][s]:.4f}" for s in steps)
                         + f" | {o['kinds']} | {o['seconds_per_answer']} |")
        lines.append("| bound (estimate) | " + " | ".join(f"{r['bound'][s]:.4f}" for s in steps)
                     + " | best single true fixes, largest first | |")
        lines.append("")
    lines += [NOTES]
    (results / "review.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], runs.items()):
        for o in r["orders"]:
            xs = [int(s) for s in o["f"]]
            ax.plot(xs, list(o["f"].values()), marker="o", label=o["order"])
        ax.set_title(name)
        ax.set_xlabel("answers")
        ax.set_ylabel("BCubed F (labelled faces)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(results / "review.png", dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("photos", type=Path)
    ap.add_argument("--name", default="run")
    ap.add_argument("--results", type=Path, default=Path("bench/results-review"))
    ap.add_argument("--steps", default=",".join(map(str, STEPS)))
    ap.add_argument("--orders", default="queue,closest,random")
    a = ap.parse_args()
    steps = [int(s) for s in a.steps.split(",")]
    data = load(a.out, a.photos)
    res = {"command": f"python bench/review_sim.py {a.out} {a.photos} --name {a.name}",
           "faces": len(data[0]), "labelled": sum(v is not None for v in data[6]),
           "people": len(set(data[1][data[1] >= 0].tolist())), "cut": data[5], "orders": [],
           "bound": single_fix_bound(data, steps)}
    for order in a.orders.split(","):
        r = simulate(data, order, steps)
        print(json.dumps(r), flush=True)
        res["orders"].append(r)
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / f"{a.name}.json").write_text(json.dumps(res, indent=1) + "\n")
    write_summary(a.results)


if __name__ == "__main__":
    main()
