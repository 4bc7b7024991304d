"""Peak memory of `facedist run` on one huge photo of each format, at the default --max-pixels.

    python bench/huge_photos.py --work /tmp/huge --out bench/results-trust/huge-photos.md

Each photo is 10,900 x 10,900 px (118.8 M pixels, just under the default limit of 120 M), mostly
flat so that the files stay small; it is run alone, as a whole `facedist run` process, and its
peak RSS read from the kernel (getrusage of the child). The target (issue 11): <= 1 GB.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 10_900
FORMATS = {  # file name -> how it is made from a grey image
    "rgb.png": lambda g: g.convert("RGB"),
    "rgba.png": lambda g: g.convert("RGBA"),
    "grey16.png": lambda g: Image.fromarray(np.asarray(g).astype(np.uint16) * 250),
    "int32.tif": lambda g: g.convert("I"),
    "float.tif": lambda g: g.convert("F"),
    "cmyk.tif": lambda g: g.convert("CMYK"),
    "rgb.bmp": lambda g: g.convert("RGB"),
    "palette.gif": lambda g: g.convert("P"),
    "rgb.webp": lambda g: g.convert("RGB"),
    "progressive.jpg": lambda g: g.convert("RGB"),
}


def make(work: Path) -> list[Path]:
    work.mkdir(parents=True, exist_ok=True)
    grey = np.zeros((SIDE, SIDE), np.uint8)
    grey[::7] = 200
    grey = Image.fromarray(grey)
    paths = []
    for name, convert in FORMATS.items():
        path = work / "photos" / name / name  # one folder per photo: each run sees one
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            extra = {"progressive": True} if name.endswith(".jpg") else {}
            convert(grey).save(path, **extra)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    for path in make(args.work):
        # a fresh interpreter per photo: ru_maxrss of children only ever grows
        code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], "
                "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN)"
                ".ru_maxrss, p.returncode)")
        out = args.work / "out" / path.name
        shutil.rmtree(out, ignore_errors=True)  # a fresh output: nothing reused from a last run
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "facedist.cli",
                              "run", str(path.parent), "--out", str(out), "-q"],
                             capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - t0
        kb, rc = map(int, res.stdout.split())
        rows.append((path.name, path.stat().st_size, kb / 1024, seconds, rc))
        print(rows[-1], flush=True)
    lines = ["# Peak memory on one huge photo per format", "",
             f"`python bench/huge_photos.py --work /tmp/huge --out {args.out}`", "",
             f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python "
             f"{platform.python_version()}. Photo: {SIDE} x {SIDE} px ({SIDE * SIDE / 1e6:.1f} M "
             f"pixels, default --max-pixels 120 M), run alone by `facedist run`; peak RSS of the "
             f"whole process. Target: 1 GB.", "",
             "| photo | file MB | peak RSS MB | seconds | exit |", "|---|---|---|---|---|"]
    for name, size, mb, seconds, rc in rows:
        lines.append(f"| {name} | {size / 1e6:.1f} | {mb:.0f} | {seconds:.1f} | {rc} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
