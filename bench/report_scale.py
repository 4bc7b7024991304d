"""The HTML report at scale: time to write it (first time, and again with its thumbnails kept),
its size on disk, and how long its pages take to open in headless Chromium.

    python bench/report_scale.py --work /tmp/report-scale --faces 10000 100000 \
        --out bench/results-report/report-scale.md [--reuse]

Each size is a generated output folder (tests/synthetic.py: 20 square "faces" per 480x384
JPEG, 10 faces a person, embeddings around one centre per person), so no model runs: what is
timed is `facedist report` alone, as a whole process, and the page loads. A page's time is
performance.now() once its load event has fired (face.html: once its neighbour table is drawn),
the median of 3 loads in a fresh browser context each.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from synthetic import synthetic_output  # noqa: E402

PAGES = {"index.html": None, "people-7.html": None, "person": None, "face.html": "#5000"}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def page_times(report: Path, chromium: str, repeats: int = 3) -> dict[str, int]:
    from playwright.sync_api import sync_playwright

    person = sorted(report.glob("person-*.html"))[0].name
    times = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        for name, fragment in PAGES.items():
            name = person if name == "person" else name
            runs = []
            for _ in range(repeats):
                ctx = browser.new_context(viewport={"width": 1280, "height": 900})
                page = ctx.new_page()
                page.goto((report / name).as_uri() + (fragment or ""), wait_until="load")
                if name == "face.html":
                    page.wait_for_selector("#neighbours-view table")
                runs.append(page.evaluate("performance.now()"))
                ctx.close()
            times[name if name != person else "person-N.html"] = round(statistics.median(runs))
        browser.close()
    return times


def one_size(work: Path, faces: int, chromium: str, reuse: bool) -> dict:
    out, photos = work / f"out-{faces}", work / f"photos-{faces}"
    shutil.rmtree(out / "report", ignore_errors=True)
    if not (reuse and (out / "facedist.sqlite").exists()):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(photos, ignore_errors=True)
        synthetic_output(out, photos, n_photos=faces // 20, faces_per_photo=20,
                         n_people=faces // 10)
    row = {"faces": faces, "people": faces // 10}
    for label in ("first", "again"):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "facedist.cli", "report", str(out), "--json"],
                              capture_output=True, text=True, check=True)
        row[f"write_{label}_s"] = round(time.perf_counter() - t0, 1)
        row[f"thumbs_{label}"] = json.loads(done.stdout)["thumbnails_made"]
    report = out / "report"
    row["pages"] = sum(1 for _ in report.glob("*.html"))
    row["report_mb"] = round(folder_mb(report), 1)
    row["load_ms"] = page_times(report, chromium)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--faces", type=int, nargs="+", default=[10_000])
    ap.add_argument("--out", type=Path, required=True, help="markdown file for the table")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--reuse", action="store_true",
                    help="keep generated output folders already in --work (only report/ is new)")
    args = ap.parse_args()
    rows = [one_size(args.work, n, args.chromium, args.reuse) for n in args.faces]
    lines = ["# The HTML report at scale\n",
             f"`python bench/report_scale.py --work {args.work} --faces "
             f"{' '.join(map(str, args.faces))} --out {args.out}{' --reuse' if args.reuse else ''}`, on {platform.node()} "
             f"({platform.machine()}, {__import__('os').cpu_count()} cores), Chromium "
             f"{subprocess.run([args.chromium, '--version'], capture_output=True, text=True).stdout.strip()}, "
             f"{time.strftime('%Y-%m-%d')}. Generated output folders (no model runs); "
             f"page times are the median of 3 loads; write times one run each (a whole "
             f"`facedist report` process: noisy by a few tenths of a second).\n",
             "| faces | people | write, first (s) | thumbnails cut | write, again (s) | cut again | "
             "pages | report MB | index.html (ms) | people-7.html (ms) | person-N.html (ms) | "
             "face.html#5000 (ms) |", "|" + "---|" * 12]
    for r in rows:
        t = r["load_ms"]
        lines.append(f"| {r['faces']:,} | {r['people']:,} | {r['write_first_s']} | "
                     f"{r['thumbs_first']:,} | {r['write_again_s']} | {r['thumbs_again']} | "
                     f"{r['pages']:,} | {r['report_mb']} | {t['index.html']} | {t['people-7.html']} "
                     f"| {t['person-N.html']} | {t['face.html']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    (args.out.with_suffix(".json")).write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
