import json
import mmap
import time

import numpy as np
import pytest

from facedist.monitor import Monitor, plot_timeline


def test_cpu_burn_and_allocation_show_up_in_the_timeline(tmp_path):
    mon = Monitor(interval=0.05).start()
    with mon.stage("discover"):
        time.sleep(0.4)  # idle
    with mon.stage("detect"):
        end = time.perf_counter() + 0.8
        x = 0
        while time.perf_counter() < end:  # burn one core
            x += 1
    with mon.stage("embed"):
        # 400 MB of fresh pages, touched: mapped here, not taken from a heap that earlier tests'
        # frees may have left resident (the command line keeps large buffers for reuse)
        pages = mmap.mmap(-1, 400 << 20)
        block = np.frombuffer(pages, np.uint8)
        block[::4096] = 1
        time.sleep(0.4)
        del block
        pages.close()
    mon.stop()
    idle = [s.cpu_process for s in mon.samples if s.stage == "discover"]
    busy = [s.cpu_process for s in mon.samples if s.stage == "detect"]
    # what the monitor must show, not how fast this machine is: the burning stage well above
    # the sleeping one, each sample marked with its stage
    assert idle and busy and np.mean(busy) > np.mean(idle) + 20
    rss_idle = max(s.rss_mb for s in mon.samples if s.stage == "discover")
    rss_alloc = max(s.rss_mb for s in mon.samples if s.stage == "embed")
    assert rss_alloc > rss_idle + 300
    mon.write(tmp_path / "perf", images=3)
    assert [name for _, name in mon.markers if name != "start"][:3] == ["discover", "detect", "embed"]
    stamps = [t for t, _ in mon.markers]
    assert stamps == sorted(stamps)
    saved = json.loads((tmp_path / "perf" / "summary.json").read_text())
    assert saved["stages"]["detect"]["seconds"] >= 0.8  # the burn loop ran that long at least
    assert saved["sampler_overhead_percent"] >= 0 and saved["samples"] == len(mon.samples)
    lines = (tmp_path / "perf" / "timeline.csv").read_text().splitlines()
    assert lines[0].startswith("t,stage,cpu_process") and len(lines) > 20
    assert plot_timeline(tmp_path / "perf").stat().st_size > 5000


def test_child_processes_are_counted(tmp_path):
    import subprocess
    import sys

    mon = Monitor(interval=0.05).start()
    with mon.stage("detect"):
        subprocess.run([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<1: pass"])
    mon.stop()
    # a child burning a core for 1 s shows in the process tree's CPU; the parent alone sleeps
    assert max(s.cpu_process for s in mon.samples) > 20


def test_stage_counts_and_throughput():
    mon = Monitor(enabled=False).start()
    with mon.stage("detect"):
        time.sleep(0.05)
    mon.count("detect", images=10, faces=12)
    mon.stop()
    st = mon.summary(images=10)["stages"]["detect"]
    assert st["images"] == 10 and st["faces"] == 12 and st["seconds"] >= 0.05
    assert st["images_per_second"] == pytest.approx(10 / st["seconds"], rel=0.02)
    assert st["faces_per_second"] == pytest.approx(12 / st["seconds"], rel=0.02)


def test_works_from_an_unguarded_script(tmp_path):
    """A user's script without `if __name__ == "__main__"` must not be run twice by the sampler."""
    import subprocess
    import sys

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
