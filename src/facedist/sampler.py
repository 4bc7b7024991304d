"""The monitor's sampling process, run as a plain script (`python sampler.py ROOT_PID INTERVAL
STAGE_FILE`) so that it imports nothing of the caller's: neither the package nor the caller's
own main script (which multiprocessing's spawn would run again).

Every INTERVAL seconds it reads the CPU% and memory of ROOT_PID's process tree (itself excluded)
and of the system, and the stage name the root wrote into STAGE_FILE. It says "ready" on stdout
once sampling starts; when its stdin receives a line or closes, it prints one JSON object
{"rows": [...], "cpu_seconds": its own CPU time spent sampling} and exits.
"""
import json
import mmap
import os
import select
import sys
import time

import psutil


def main(root_pid: int, interval: float, stage_file: str) -> None:
    me = os.getpid()
    root = psutil.Process(root_pid)
    with open(stage_file, "rb") as fh:
        stage = mmap.mmap(fh.fileno(), 64, access=mmap.ACCESS_READ)
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
    main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3])
