"""The monitor's sampling process, run as a plain script (`python sampler.py ROOT_PID INTERVAL
STAGE_FD`) so that it imports nothing of the caller's: neither the package nor the caller's
own main script (which multiprocessing's spawn would run again).

Every INTERVAL seconds it reads the CPU% and memory of ROOT_PID's process tree (itself excluded)
and of the system, and the stage name the root wrote into the file open as descriptor STAGE_FD.
It says "ready" on stdout once sampling starts; when its stdin receives a line or closes, it
prints one JSON object {"rows": [...], "cpu_seconds": its own CPU time spent sampling} and exits.
It never prints a traceback: Ctrl-C is the caller's to handle (SIGINT is ignored here), and a
caller gone (killed) only ends it.
"""
import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)  # first of all: even while psutil is imported

import json  # noqa: E402
import mmap  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import psutil  # noqa: E402


def main(root_pid: int, interval: float, stage_fd: int) -> None:
    me = os.getpid()
    root = psutil.Process(root_pid)
    stage = mmap.mmap(stage_fd, 64, access=mmap.ACCESS_READ)
    os.close(stage_fd)
    procs: dict = {}
    tree: list = []
    rows = []
    psutil.cpu_percent(None)
    tick = 0
    t0 = next_t = time.time()
    cpu0 = sum(psutil.Process(me).cpu_times()[:2])  # start-up (imports) is not sampling cost
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        if tick % 10 == 0:  # listing children scans /proc: once a second, not every tick
            try:
                found = [root] + root.children(recursive=True)
            except psutil.Error:
                break
            tree = [procs.get(p.pid, p) for p in found if p.pid != me]
            procs = {p.pid: p for p in tree}
        cpu = rss = 0.0
        uss = 0.0 if tick % 100 == 0 else None  # USS reads all of smaps: every 100th sample
        for p in tree:
            try:
                with p.oneshot():
                    cpu += p.cpu_percent(None)  # since this object's last call
                    if uss is not None:
                        info = p.memory_full_info()
                        rss += info.rss
                        uss += getattr(info, "uss", info.rss)
                    else:
                        rss += p.memory_info().rss
            except psutil.Error:
                continue
        if tick > 0:  # the first cpu_percent reading is meaningless
            name = bytes(stage[:64]).split(b"\0", 1)[0].decode(errors="replace")
            rows.append([round(time.time() - t0, 4), name, cpu, psutil.cpu_percent(None),
                         rss / 2**20, None if uss is None else uss / 2**20])
        tick += 1
        next_t += interval
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, next_t - time.time()))
        if ready:
            break
    cpu = sum(psutil.Process(me).cpu_times()[:2]) - cpu0
    sys.stdout.write(json.dumps({"rows": rows, "cpu_seconds": cpu}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
    except (BrokenPipeError, psutil.Error):  # the caller is gone (killed): nobody to tell
        os._exit(0)
