"""A long run, for real: 20,000 generated photos, killed (-9) half-way and resumed, with a
timeline of stored images and memory sampled from outside the run.

    python bench/longrun.py make --photos /tmp/longrun/photos --count 20000
    python bench/longrun.py run --photos /tmp/longrun/photos --work /tmp/longrun \\
        --out bench/results-longrun

make: each photo is a celeba photo (../shared/data/celeba) cut, scaled (long side 360-720 px),
flipped and lit at random and saved at a random JPEG quality, 100 to a folder: every file's bytes
differ (checked by SHA-256), so nothing is skipped as a copy and every photo costs a decode, a
detection and its embeddings.

run: `facedist run PHOTOS --out WORK/out` as a child process; this script samples, every
second, the number of photos stored (the database's results) and the RSS of the run's process.
When half of the photos are stored it kills the run with SIGKILL, then starts it again; the
second run resumes. The figures:
- images/s over the run in tenths (stored photos per second), and RSS in the same tenths;
- the cost of the kill: from the kill until the resumed run stores its first chunk, less the
  time a chunk takes anyway, plus the photos the killed run had in flight (at most
  DETECT_AHEAD + 1 chunks, read and detected but not stored) at the steady rate; as a share of
  the whole run. `rewrite` derives the figures again from the committed samples.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEDIST_SHARED", ROOT.parent / "shared"))


def make(photos: Path, count: int, seed: int = 0) -> None:
    from PIL import Image, ImageEnhance, ImageOps

    sources = sorted((SHARED / "data" / "celeba").rglob("*.jpg"))
    images = [ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in sources]
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    for i in range(count):
        img = images[i % len(images)]
        w, h = img.size
        keep = rng.uniform(0.8, 1.0)
        cw, ch = int(w * keep), int(h * keep)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        out = img.crop((x, y, x + cw, y + ch))
        side = int(rng.integers(360, 721))
        scale = side / max(cw, ch)
        out = out.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BILINEAR)
        if rng.random() < 0.5:
            out = ImageOps.mirror(out)
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))
        dest = photos / f"{i // 100:03d}" / f"photo_{i:05d}.jpg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        out.save(dest, quality=int(rng.integers(80, 96)))
        digest = hashlib.sha256(dest.read_bytes()).hexdigest()
        if digest in seen:
            sys.exit(f"{dest}: same bytes as an earlier photo")
        seen.add(digest)
    print(f"{count} photos in {photos}, all different")


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.Error:
        return 0


def _stored(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return -1


def run(photos: Path, work: Path, dest: Path, args: list[str]) -> None:
    out = work / "out"
    if out.exists():
        sys.exit(f"{out} exists: the run must start from nothing")
    total = sum(1 for _ in photos.rglob("*.jpg"))
    cmd = [sys.executable, "-m", "facedist.cli", "run", str(photos), "--out", str(out),
           "--no-progress", "--plot", *args]
    samples = []  # (seconds since start, stored, rss bytes, phase)
    t0 = time.perf_counter()
    kill_at = None
    for phase in ("killed", "resumed"):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started = time.perf_counter() - t0
        while proc.poll() is None:
            time.sleep(1.0)
            stored = _stored(out / "facedist.sqlite")
            samples.append((round(time.perf_counter() - t0, 2), stored, _tree_rss(proc.pid), phase))
            if phase == "killed" and stored >= total // 2:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kill_at = samples[-1][0]
                break
        text = proc.stdout.read()
        if phase == "resumed" and proc.returncode != 0:
            sys.exit(f"the resumed run failed ({proc.returncode}):\n{text}")
        print(f"{phase}: from {started:.1f} s, {text.strip().splitlines()[-1] if text.strip() else ''}",
              flush=True)
    wall = time.perf_counter() - t0
    figures = summarize(samples, total, kill_at, wall)
    figures.update(command=" ".join(["facedist", "run", "PHOTOS", "--out", "OUT", *cmd[7:]]),
                   machine=f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)",
                   date=time.strftime("%Y-%m-%d"),
                   run_summary=json.loads((out / "perf" / "summary.json").read_text()).get("stages"))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "longrun.json").write_text(json.dumps({**figures, "samples": samples}) + "\n")
    plot(samples, kill_at, dest / "timeline.png")
    write_md(figures, dest / "longrun.md")
    print((dest / "longrun.md").read_text())


def summarize(samples, total: int, kill_at: float, wall: float) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from facedist.backend import Backend
    from facedist.engines.local import DETECT_AHEAD

    t = np.array([s[0] for s in samples])
    n = np.array([s[1] for s in samples], float)
    rss = np.array([s[2] for s in samples], float) / 2**20
    phase = np.array([s[3] for s in samples])
    done_at = float(t[np.argmax(n >= total)])  # every photo stored: compare and people follow
    processing = t <= done_at
    # the steady rate: a straight line through each part's middle (a fifth trimmed each end)
    rates = {}
    for name in ("killed", "resumed"):
        idx = np.nonzero((phase == name) & (n > 0) & (n < total))[0]
        idx = idx[len(idx) // 5: len(idx) - len(idx) // 5]
        rates[name] = float(np.polyfit(t[idx], n[idx], 1)[0])
    rate = (rates["killed"] + rates["resumed"]) / 2
    # What the kill cost: from the kill until the resumed run stored its first chunk, less the
    # time a chunk takes anyway; plus the photos the killed run had in flight (read, detected,
    # not yet stored: at most DETECT_AHEAD + 1 chunks), done again.
    stored_at_kill = float(n[phase == "killed"].max())
    resumed = (phase == "resumed") & (n > stored_at_kill)
    first_again = float(t[np.argmax(resumed)])
    chunk = Backend.create("cpu").chunk_images  # the run's, on this CPU machine
    chunk_s = chunk / rate
    in_flight_s = (DETECT_AHEAD + 1) * chunk / rate
    restart_s = first_again - kill_at
    cost = restart_s - chunk_s + in_flight_s
    tenths = []
    for k in range(10):
        lo, hi = total * k / 10, total * (k + 1) / 10
        sel = processing & (n >= lo) & (n <= hi)
        ts, ns = t[sel], n[sel]
        part_rate = (ns[-1] - ns[0]) / (ts[-1] - ts[0]) if len(ts) > 2 else float("nan")
        tenths.append({"tenth": k + 1, "images_per_s": round(float(part_rate), 2),
                       "rss_mb_median": round(float(np.median(rss[sel]))) if sel.any() else None,
                       "rss_mb_max": round(float(rss[sel].max())) if sel.any() else None})
    end = t > done_at
    return {"photos": total, "wall_s": round(wall, 1), "all_stored_s": round(done_at, 1),
            "first_stored_s": round(float(t[np.argmax(n > 0)]), 1), "kill_at_s": kill_at,
            "stored_at_kill": int(stored_at_kill), "rate_killed": round(rates["killed"], 2),
            "rate_resumed": round(rates["resumed"], 2), "restart_s": round(restart_s, 1),
            "chunk_s": round(chunk_s, 2), "in_flight_s": round(in_flight_s, 1),
            "kill_cost_s": round(cost, 1), "kill_cost_share": round(cost / wall, 4),
            "end_s": round(wall - done_at, 1),
            "end_rss_mb_max": round(float(rss[end].max())) if end.any() else None,
            "tenths": tenths}


def plot(samples, kill_at, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s[0] for s in samples])
    n = np.array([s[1] for s in samples], float)
    rss = np.array([s[2] for s in samples], float) / 2**20
    rate = np.gradient(np.maximum(n, 0), t)
    win = 30  # a 30 s moving mean: chunks are stored in steps
    smooth = np.convolve(rate, np.ones(win) / win, mode="same")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    left.plot(t, smooth, lw=1)
    left.set(xlabel="seconds", ylabel="photos stored per second (30 s mean)", ylim=(0, None))
    right.plot(t, rss, lw=1, color="tab:orange")
    right.set(xlabel="seconds", ylabel="RSS of the run (MB)", ylim=(0, None))
    for ax in (left, right):
        ax.axvline(kill_at, ls="--", color="gray")
        ax.text(kill_at, ax.get_ylim()[1] * 0.95, " kill -9, resume", color="gray", va="top")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_md(f: dict, path: Path) -> None:
    rows = "\n".join(f"| {r['tenth']} | {r['images_per_s']} | {r['rss_mb_median']} | {r['rss_mb_max']} |"
                     for r in f["tenths"])
    path.write_text(f"""# A long run: {f['photos']:,} generated photos, killed half-way and resumed

`python bench/longrun.py make --photos P --count {f['photos']}` then `python bench/longrun.py run
--photos P --work W --out bench/results-longrun`, which runs `{f['command']}`; on
{f['machine']}, {f['date']}. One run: single samples, taken every second from outside the run
(stored photos from the database, RSS of the run's process tree).

- {f['photos']:,} photos stored after {f['all_stored_s']} s (the first after {f['first_stored_s']} s:
  start, models, listing), then comparison, people and files: {f['end_s']} s, at most
  {f['end_rss_mb_max']} MB (distances.npy, every face against every other, is written
  through a memory map whose pages count in RSS); {f['wall_s']} s in all;
- steady rate {f['rate_killed']} photos/s before the kill, {f['rate_resumed']} after;
- killed with SIGKILL at {f['kill_at_s']} s with {f['stored_at_kill']:,} photos stored, started
  again at once; its first chunk was stored {f['restart_s']} s after the kill, where a chunk takes
  {f['chunk_s']} s anyway; the photos in flight at the kill (at most 3 chunks) are
  {f['in_flight_s']} s of work done again. The kill cost at most **{f['kill_cost_s']} s, {100 * f['kill_cost_share']:.2f}%
  of the run**.

![timeline](timeline.png)

While photos are processed, by tenths of the photos (the end's comparison apart):

| tenth of the photos | photos/s | RSS MB (median) | RSS MB (max) |
|---|---|---|---|
{rows}
""")


def rewrite(dest: Path) -> None:
    """Figures, plot and table again from the samples of longrun.json (no new run)."""
    data = json.loads((dest / "longrun.json").read_text())
    samples = data.pop("samples")
    keep = {k: data[k] for k in ("command", "machine", "date", "run_summary") if k in data}
    figures = {**summarize(samples, data["photos"], data["kill_at_s"], data["wall_s"]), **keep}
    (dest / "longrun.json").write_text(json.dumps({**figures, "samples": samples}) + "\n")
    plot(samples, figures["kill_at_s"], dest / "timeline.png")
    write_md(figures, dest / "longrun.md")
    print((dest / "longrun.md").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    m = sub.add_parser("make")
    m.add_argument("--photos", type=Path, required=True)
    m.add_argument("--count", type=int, default=20_000)
    r = sub.add_parser("run")
    r.add_argument("--photos", type=Path, required=True)
    r.add_argument("--work", type=Path, default=Path("/tmp/longrun"))
    r.add_argument("--out", type=Path, default=ROOT / "bench" / "results-longrun")
    r.add_argument("args", nargs="*", help="more flags for facedist run")
    w = sub.add_parser("rewrite", help="figures again from the samples of an earlier run")
    w.add_argument("--out", type=Path, default=ROOT / "bench" / "results-longrun")
    a = ap.parse_args()
    if a.step == "make":
        make(a.photos, a.count)
    elif a.step == "rewrite":
        rewrite(a.out)
    else:
        run(a.photos, a.work, a.out, a.args)


if __name__ == "__main__":
    main()
