"""The monitor (monitor.py) and its sampler (sampler.py), driven step by step: the sampler runs in
a thread of this process against a scripted machine (what psutil reads, the clock, the wait
between samples), so what each sample shows is decided here, never by how busy this machine is.
One test runs the real sampler process, and checks only that it starts once and samples."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import nullcontext
from types import SimpleNamespace

import pytest

from facedist import monitor as monitor_module
from facedist.monitor import Monitor, plot_timeline

ROOT = os.getpid()  # the process the monitor watches: this one
WORKER, SAMPLER = 10**7 + 1, 10**7 + 2  # its children on the scripted machine
MB = 2**20
INTERVAL = 0.05


@pytest.fixture(scope="module")
def sampler():
    """sampler.py as a module (it runs as a script, and sets Ctrl-C aside as it is imported:
    put back here)."""
    handler = signal.getsignal(signal.SIGINT)
    from facedist import sampler as module

    signal.signal(signal.SIGINT, handler)
    return module


class Machine:
    """What the sampler reads, scripted: each process's CPU% since the last reading and its RSS,
    the system's CPU%, a clock. The sampler's wait between samples returns when the test calls
    `sample` (or stops the monitor), the clock then exactly at the next tick."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.cpu = {ROOT: 0.0, WORKER: 0.0, SAMPLER: 50.0}  # the sampler's own: never counted
        self.rss = {ROOT: 100 * MB, WORKER: 20 * MB, SAMPLER: 30 * MB}
        self.system = 0.0
        self.sampler_cpu = 2.0  # CPU seconds the sampler has used (start-up included)
        self.go, self.waiting = threading.Semaphore(0), threading.Semaphore(0)
        self.stopping = False
        self.sys = SimpleNamespace(stdin=None, stdout=None)
        machine = self

        class Error(Exception):
            pass

        class Process:
            def __init__(self, pid: int) -> None:
                self.pid = pid

            def children(self, recursive=False):
                assert self.pid == ROOT and recursive
                return [Process(WORKER), Process(SAMPLER)]

            def oneshot(self):
                return nullcontext()

            def cpu_percent(self, interval):
                return machine.cpu[self.pid]

            def memory_info(self):
                return SimpleNamespace(rss=machine.rss[self.pid])

            def memory_full_info(self):
                return SimpleNamespace(rss=machine.rss[self.pid], uss=machine.rss[self.pid] // 2)

            def cpu_times(self):
                assert self.pid == SAMPLER
                return (machine.sampler_cpu, 0.0)

        self.psutil = SimpleNamespace(Process=Process, Error=Error,
                                      cpu_percent=lambda interval: machine.system)

    def clock(self) -> float:
        return self.now

    def wait(self, readers, writers, errors, timeout):
        """The sampler's select on its stdin: the next sample, or the monitor's stop."""
        self.waiting.release()
        if not self.go.acquire(timeout=60):
            raise RuntimeError("the test went away")
        self.now += timeout
        return (readers, [], []) if self.stopping else ([], [], [])

    def sample(self, n: int = 1, cpu=None, rss=None, system=0.0) -> None:
        """n sampling intervals pass, in which the processes used `cpu` (pid -> %, else 0) and
        hold `rss` (pid -> bytes, else as before); the sampler takes a reading after each."""
        self.cpu.update({ROOT: 0.0, WORKER: 0.0, **(cpu or {})})
        self.rss.update(rss or {})
        self.system = system
        for _ in range(n):
            self.sampler_cpu += 0.001
            self.go.release()
            assert self.waiting.acquire(timeout=60), "the sampler took no reading"


class SamplerThread:
    """subprocess.Popen, as the monitor starts the sampler: sampler.main in a thread, its
    stdout a pipe as the real process's, its stage file its own descriptor (pass_fds)."""

    def __init__(self, machine: Machine, sampler, args, pass_fds, **_) -> None:
        assert args[1].endswith("sampler.py") and args[2:4] == [str(ROOT), str(INTERVAL)]
        read, write = os.pipe()
        self.stdin, self.stdout = SimpleNamespace(close=lambda: None), os.fdopen(read)
        machine.sys.stdout = os.fdopen(write, "w")
        stage_fd = os.dup(pass_fds[0])
        self.machine = machine

        def run():
            with machine.sys.stdout:
                sampler.main(ROOT, INTERVAL, stage_fd)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert machine.waiting.acquire(timeout=60)  # its first reading taken: now waiting

    def communicate(self, text, timeout=None):
        assert text == "stop\n"
        self.machine.stopping = True
        self.machine.go.release()
        out = self.stdout.read()
        self.thread.join(timeout)
        return out, None

    def poll(self):
        return None if self.thread.is_alive() else 0

    def kill(self):
        pass

    def wait(self):
        self.thread.join()
        return 0


@pytest.fixture
def machine(monkeypatch, sampler):
    m = Machine()
    monkeypatch.setattr(sampler, "psutil", m.psutil)
    monkeypatch.setattr(sampler, "time", SimpleNamespace(time=m.clock))
    monkeypatch.setattr(sampler, "select", SimpleNamespace(select=m.wait))
    monkeypatch.setattr(sampler, "sys", m.sys)
    monkeypatch.setattr(sampler, "os", SimpleNamespace(getpid=lambda: SAMPLER, close=os.close))
    monkeypatch.setattr(monitor_module, "time", SimpleNamespace(perf_counter=m.clock))
    monkeypatch.setattr(monitor_module, "subprocess", SimpleNamespace(
        Popen=lambda args, **kw: SamplerThread(m, sampler, args, **kw), PIPE=subprocess.PIPE,
        TimeoutExpired=subprocess.TimeoutExpired))
    yield m
    m.stopping = True  # a test that failed before stop(): its sampler ends, not waits
    m.go.release()


def test_each_sample_shows_its_stage_and_the_process_trees_cpu_and_memory(tmp_path, machine):
    mon = Monitor(interval=INTERVAL).start()
    with mon.stage("discover"):  # idle
        machine.sample(4, cpu={ROOT: 1.0})
    with mon.stage("detect"):  # this process burns a core, its worker another
        machine.sample(4, cpu={ROOT: 99.0, WORKER: 100.0}, system=100.0)
    with mon.stage("embed"):  # 400 MB more
        machine.sample(4, cpu={ROOT: 5.0}, rss={ROOT: 500 * MB})
    mon.stop()
    # the first reading (CPU since nothing) is dropped; then one row a sample, with its stage;
    # CPU and memory summed over the tree, the sampler's own left out
    assert [(s.stage, s.cpu_process, s.cpu_system, s.rss_mb, s.uss_mb) for s in mon.samples] == (
        [("discover", 1.0, 0.0, 120.0, None)] * 4 + [("detect", 199.0, 100.0, 120.0, None)] * 4
        + [("embed", 5.0, 0.0, 520.0, None)] * 4)
    assert [s.t for s in mon.samples] == pytest.approx([INTERVAL * k for k in range(1, 13)])
    assert [name for _, name in mon.markers] == ["discover", "start", "detect", "start", "embed",
                                                 "start"]
    assert [t for t, _ in mon.markers] == pytest.approx([0, 0.2, 0.2, 0.4, 0.4, 0.6])
    saved = mon.write(tmp_path / "perf", images=3)
    assert saved == json.loads((tmp_path / "perf" / "summary.json").read_text())
    assert {name: (st["seconds"], st["cpu_mean"], st["rss_peak_mb"])
            for name, st in saved["stages"].items()} == {
        "discover": (0.2, 1.0, 120.0), "detect": (0.2, 199.0, 120.0), "embed": (0.2, 5.0, 520.0)}
    assert saved["total_seconds"] == 0.6 and saved["samples"] == 12
    assert saved["sampler_cpu_seconds"] == pytest.approx(0.012)  # its start-up left out
    assert saved["sampler_overhead_percent"] == pytest.approx(2.0)
    lines = (tmp_path / "perf" / "timeline.csv").read_text().splitlines()
    assert lines[0] == "t,stage,cpu_process,cpu_system,rss_mb,uss_mb" and len(lines) == 13
    assert lines[5] == "0.250,detect,199.0,100.0,120.0,"
    assert plot_timeline(tmp_path / "perf").stat().st_size > 5000


def test_memory_beyond_rss_every_100th_sample(machine):
    mon = Monitor(interval=INTERVAL).start()
    with mon.stage("embed"):
        machine.sample(101)
    mon.stop()
    uss = [s.uss_mb for s in mon.samples]
    assert uss[:99] == [None] * 99 and uss[99] == 60.0 and uss[100] is None  # half of 120 MB


def test_stage_counts_and_throughput(monkeypatch):
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(monitor_module, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    mon = Monitor(enabled=False).start()
    clock.now += 1.0  # before any stage
    with mon.stage("detect"):
        clock.now += 4.0
    with mon.stage("embed"):
        clock.now += 2.0
    with mon.stage("detect"):  # a stage entered again adds up
        clock.now += 1.0
    clock.now += 2.0
    mon.count("detect", images=10, faces=15)
    mon.count("embed", faces=15)
    mon.stop()
    summary = mon.summary(images=10, faces=15)
    assert summary["total_seconds"] == 10.0 and summary["images_per_second"] == 1.0
    detect, embed = summary["stages"]["detect"], summary["stages"]["embed"]
    assert (detect["seconds"], detect["images"], detect["faces"]) == (5.0, 10, 15)
    assert (detect["images_per_second"], detect["faces_per_second"]) == (2.0, 3.0)
    assert (embed["seconds"], embed["images_per_second"], embed["faces_per_second"]) == (
        2.0, None, 7.5)


def test_works_from_an_unguarded_script(tmp_path):
    """A user's script without `if __name__ == "__main__"` must not be run twice by the sampler."""
    script = tmp_path / "user_script.py"
    counter = tmp_path / "runs.txt"
    script.write_text(
        "import time\n"
        "from facedist.monitor import Monitor\n"
        f"open({str(counter)!r}, 'a').write('x')\n"
        "m = Monitor(0.05).start()\n"
        "time.sleep(0.5)\n"
        "m.stop()\n"
        "print(len(m.samples))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert counter.read_text() == "x" and int(out.stdout.strip()) >= 5
