"""monitor: measure a run as it goes, from a separate sampler process that never blocks the work.

`Monitor` samples from a small separate process (sampler.py), every `interval` seconds, the CPU%
of this process tree (workers included) and of the whole system, the tree's RSS (USS where the
OS gives it, every 100th sample because it is costly), and the stage the pipeline is in. Stages
are entered with `with monitor.stage("detect"):`; their wall time, images and faces add up.
`write()` saves perf/timeline.csv and perf/summary.json; `plot_timeline()` draws the study's
figure: CPU% left, memory right, a dashed line per stage start.
"""
from __future__ import annotations

import csv
import json
import mmap
import os
import select
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

STAGES = ("discover", "decode", "detect", "align", "embed", "store", "compare", "people", "report")


@dataclass
class Sample:
    t: float  # seconds since start
    stage: str
    cpu_process: float  # % of one core, summed over the process tree (200 = both of 2 cores)
    cpu_system: float  # % of the whole machine (100 = every core busy)
    rss_mb: float
    uss_mb: float | None


@dataclass
class StageStats:
    seconds: float = 0.0
    images: int = 0
    faces: int = 0
    first_start: float | None = None


class Monitor:
    def __init__(self, interval: float = 0.1, enabled: bool = True) -> None:
        self.interval = interval
        self.enabled = enabled
        self.samples: list[Sample] = []
        self.stages: dict[str, StageStats] = {}
        self.markers: list[tuple[float, str]] = []  # (t, stage) at each stage entry
        self._current = "start"
        self._t0 = time.perf_counter()
        self._proc = None
        self.sampler_cpu_seconds = 0.0
        self.wall_seconds = 0.0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "Monitor":
        """Start the sampler: a small separate process (sampler.py), so that work holding the
        GIL (a Python loop) can neither starve it nor be slowed by it."""
        self._t0 = time.perf_counter()
        if not self.enabled:
            return self
        # The stage name is shared through a file without a name (gone from the temporary
        # folder at once, so that not even kill -9 leaves it behind), handed to the sampler by
        # its descriptor.
        self._stage_file = tempfile.TemporaryFile(prefix="facedist-stage-")
        self._stage_file.write(b"\0" * 64)
        self._stage_file.flush()
        self._stage_map = mmap.mmap(self._stage_file.fileno(), 64)
        self._set_current(self._current)
        # Its own session: Ctrl-C (SIGINT to the terminal's process group) reaches this process
        # alone, which stops the sampler as at any end; it ends by itself when this process dies
        # (its stdin closes).
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sampler.py")), str(os.getpid()),
             str(self.interval), str(self._stage_file.fileno())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            pass_fds=(self._stage_file.fileno(),), start_new_session=True)
        ready, _, _ = select.select([self._proc.stdout], [], [], 60)
        if not ready or self._proc.stdout.readline().strip() != "ready":
            warnings.warn("facedist: the resource sampler did not start; no timeline this run")
            self._end_sampler()
        return self

    def stop(self) -> None:
        """Stop the sampler and take its samples. A sampler that died (killed with the process
        group, say) leaves no samples, and no error: the run's own end comes first."""
        self.wall_seconds = time.perf_counter() - self._t0
        if self._proc is not None:
            try:
                out, _ = self._proc.communicate("stop\n", timeout=60)
                result = json.loads(out.strip().splitlines()[-1])
                self.samples = [Sample(*r) for r in result["rows"]]
                self.sampler_cpu_seconds = result["cpu_seconds"]
            except (subprocess.TimeoutExpired, OSError, ValueError, IndexError, KeyError,
                    TypeError):
                warnings.warn("facedist: the resource sampler ended early; no timeline this run")
            finally:
                self._end_sampler()
        if getattr(self, "_stage_file", None) is not None:
            self._stage_map.close()
            self._stage_file.close()
            self._stage_file = None

    def _end_sampler(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
            self._proc = None

    def __enter__(self) -> "Monitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- stages -------------------------------------------------------------------------------
    def now(self) -> float:
        return time.perf_counter() - self._t0

    def _set_current(self, name: str) -> None:
        self._current = name
        if getattr(self, "_stage_file", None) is not None:
            self._stage_map[:64] = name.encode()[:63].ljust(64, b"\0")

    @contextmanager
    def stage(self, name: str):
        previous = self._current
        stats = self.stages.setdefault(name, StageStats())
        start = self.now()
        if stats.first_start is None:
            stats.first_start = start
        if name != previous:
            self.markers.append((start, name))
        self._set_current(name)
        try:
            yield stats
        finally:
            stats.seconds += self.now() - start
            self._set_current(previous)
            if previous != name:
                self.markers.append((self.now(), previous))

    def count(self, stage: str, images: int = 0, faces: int = 0) -> None:
        stats = self.stages.setdefault(stage, StageStats())
        stats.images += images
        stats.faces += faces

    # -- output -------------------------------------------------------------------------------
    def summary(self, images: int = 0, faces: int = 0) -> dict:
        wall = self.wall_seconds or self.now()
        out = {"total_seconds": round(wall, 3), "images": images, "faces": faces,
               "images_per_second": round(images / wall, 3) if wall else None,
               "cores": psutil.cpu_count(), "sample_interval": self.interval,
               "samples": len(self.samples),
               "sampler_cpu_seconds": round(self.sampler_cpu_seconds, 4),
               "sampler_overhead_percent": round(100 * self.sampler_cpu_seconds / wall, 3) if wall else None,
               "stages": {}}
        for name, st in self.stages.items():
            mine = [s for s in self.samples if s.stage == name]
            out["stages"][name] = {
                "seconds": round(st.seconds, 3), "images": st.images, "faces": st.faces,
                "images_per_second": round(st.images / st.seconds, 2) if st.seconds and st.images else None,
                "faces_per_second": round(st.faces / st.seconds, 2) if st.seconds and st.faces else None,
                **_cpu_mem(mine)}
        out.update(_cpu_mem(self.samples))
        return out

    def write(self, perf_dir: Path, images: int = 0, faces: int = 0) -> dict:
        from .atomic import replacing

        perf_dir.mkdir(parents=True, exist_ok=True)
        with replacing(perf_dir / "timeline.csv", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["t", "stage", "cpu_process", "cpu_system", "rss_mb", "uss_mb"])
            for s in self.samples:
                w.writerow([f"{s.t:.3f}", s.stage, f"{s.cpu_process:.1f}", f"{s.cpu_system:.1f}",
                            f"{s.rss_mb:.1f}", "" if s.uss_mb is None else f"{s.uss_mb:.1f}"])
        summary = self.summary(images, faces)
        summary["markers"] = [[round(t, 3), name] for t, name in self.markers]
        with replacing(perf_dir / "summary.json") as fh:
            json.dump(summary, fh, indent=2)
        return summary


def _cpu_mem(samples: list[Sample]) -> dict:
    if not samples:
        return {"cpu_mean": None, "cpu_peak": None, "rss_mean_mb": None, "rss_peak_mb": None}
    cpu = [s.cpu_process for s in samples]
    rss = [s.rss_mb for s in samples]
    return {"cpu_mean": round(sum(cpu) / len(cpu), 1), "cpu_peak": round(max(cpu), 1),
            "rss_mean_mb": round(sum(rss) / len(rss), 1), "rss_peak_mb": round(max(rss), 1)}


def read_timeline(perf_dir: Path) -> tuple[list[dict], dict]:
    with open(perf_dir / "timeline.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((perf_dir / "summary.json").read_text())
    return rows, summary


def plot_timeline(perf_dir: Path, out_png: Path | None = None, title: str = "") -> Path:
    """The study's figure: CPU% (left axis) and memory (right axis) over time, with a dashed
    vertical line and a label where each stage first starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, summary = read_timeline(perf_dir)
    t = [float(r["t"]) for r in rows]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(t, [float(r["cpu_process"]) for r in rows], color="tab:blue", lw=1, label="CPU % (process tree)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("CPU % (100 = one core)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(t, [float(r["rss_mb"]) for r in rows], color="tab:red", lw=1, label="RSS MB")
    ax2.set_ylabel("memory RSS (MB)", color="tab:red")
    seen = set()
    for mt, name in summary.get("markers", []):
        if name in seen or name == "start":
            continue
        seen.add(name)
        ax.axvline(mt, color="grey", ls="--", lw=0.8)
        ax.text(mt, ax.get_ylim()[1] * 0.97, name, rotation=90, va="top", ha="right", fontsize=8)
    ax.set_title(title or f"facedist run: {summary.get('images', 0)} images in "
                 f"{summary.get('total_seconds', 0):.1f} s")
    fig.tight_layout()
    out_png = out_png or perf_dir / "timeline.png"
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
