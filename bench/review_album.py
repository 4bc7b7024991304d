"""The review on family albums, answered as their owner would, beside the plain list: the curves
of issue 37 (F after 0/10/25/50/100 answers, the worst single answer, answers until "done",
what is left mixed or split).

    python bench/review_album.py ALBUM OUT [ALBUM OUT ...] [-n 200] [--results DIR]
    python bench/review_album.py ../shared/data/albums/D1 /tmp/D1 ../shared/data/albums/D2 /tmp/D2

OUT: a finished `facedist run ALBUM/photos --out OUT` (left as it is: the tool answers on
copies). Each album goes through ../shared/tools/album.py review, which answers through the
command line (`facedist people OUT review --json -n 1`, `... answer QUESTION ANSWER`) from the
album's truth, and walks the plain list (the closest faces of two different people, merged when
one person) on a second copy. FACEDIST (default: this checkout's `python -m facedist.cli`) is
the command it runs.

Writes DIR/albums.json (every curve), DIR/albums.md (the table) and DIR/albums.png (the curves,
the queue's end marked). The figures are answers, not times: the machine does not change them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACEDIST_SHARED", ROOT.parent / "shared"))
POINTS = (0, 10, 25, 50, 100)


def at(curve: list[float], n: int) -> float:
    """F after n answers (the last value once the curve has ended)."""
    return curve[min(n, len(curve) - 1)]


def review(album: Path, out: Path, answers: int, facedist: str) -> dict:
    """album.py review's result for one album: {"queue": {...}, "plain": {...}}."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "review.json"
        env = {**os.environ, "FACEDIST": facedist}
        done = subprocess.run([sys.executable, str(SHARED / "tools" / "album.py"), "review",
                               str(album), str(out), "-n", str(answers), "--json", str(result)],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"album.py review {album.name}: exit {done.returncode}: "
                             f"{done.stderr.strip()[-500:]}")
        return json.loads(result.read_text())


def table(results: dict) -> str:
    head = ["album", "list"] + [f"F @{n}" for n in POINTS] + ["done at", "worst answer",
                                                                "mixed after", "split after"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        for kind in ("queue", "plain"):
            c = r[kind]["curve"]
            extra = (["-"] * 4 if kind == "plain" else
                     [str(r[kind]["done_at"]), f"-{r[kind]['worst_drop']:.4f}",
                      str(r[kind]["mixed_after"]), str(r[kind]["split_after"])])
            lines.append("| " + " | ".join([name, kind] + [f"{at(c, n):.4f}" for n in POINTS]
                                           + extra) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        for kind, style in (("queue", "-"), ("plain", "--")):
            c = r[kind]["curve"]
            label = "plain list" if kind == "plain" else "review queue"
            ax.plot(range(len(c)), c, style, label=label)
        done = r["queue"]["done_at"]
        if done is not None:
            ax.axvline(done, color="grey", lw=0.8)
            ax.annotate("done", (done, at(r["queue"]["curve"], done)), textcoords="offset points",
                        xytext=(4, -12), fontsize=8)
        ax.set_title(name)
        ax.set_xlabel("answers")
        ax.set_ylabel("BCubed F of the people")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", type=Path, help="ALBUM OUT [ALBUM OUT ...]")
    ap.add_argument("-n", "--answers", type=int, default=200)
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results-review")
    args = ap.parse_args(argv)
    if len(args.pairs) % 2:
        ap.error("give ALBUM OUT pairs")
    facedist = os.environ.get("FACEDIST") or f"{sys.executable} -m facedist.cli"
    if " " in facedist:  # album.py runs one executable: a small wrapper for `python -m ...`
        wrapper = Path(tempfile.mkdtemp(prefix="facedist-cmd-")) / "facedist"
        wrapper.write_text(f"#!/bin/sh\nexec {facedist} \"$@\"\n")
        wrapper.chmod(0o755)
        facedist = str(wrapper)
    results = {}
    for album, out in zip(args.pairs[::2], args.pairs[1::2]):
        results[album.name] = review(album, out, args.answers, facedist)
        print(table({album.name: results[album.name]}), flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "albums.json").write_text(json.dumps(
        {"command": " ".join(["python", "bench/review_album.py", *map(str, argv or sys.argv[1:])]),
         "answers": args.answers, "results": results}, indent=1))
    (args.results / "albums.md").write_text(
        "# The review on the family albums\n\n"
        f"`python bench/review_album.py {' '.join(map(str, argv or sys.argv[1:]))}`\n\n"
        + table(results) + "\n")
    plot(results, args.results / "albums.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
