#!/usr/bin/env python3
"""Runs a command REPS times and prints its median wall time (ms, three
decimals), peak RSS (KiB) and CPU time (user + system, ms, one decimal).

Usage: measure.py REPS SETUP -- CMD [ARG...]

SETUP is shell code run (by bash, untimed) before each run. The wall time
is taken from just before the command's process is started to just after
it has been reaped, and its CPU time from the kernel's accounting of that
process alone (wait4), so no helper process (`date`, `time`) is timed
with it: those added a few milliseconds to every row, which drew every
ratio between two rows towards 1.

The peak RSS is taken in a second run of each repetition (SETUP first
again), under `/usr/bin/time -f %M`: a process started by this script
would report the Python interpreter's RSS, which Linux carries over to
the child's peak when it execs.
"""

import os
import statistics
import subprocess
import sys
import time


def main() -> None:
    reps = int(sys.argv[1])
    setup = sys.argv[2]
    if sys.argv[3] != "--":
        sys.exit("usage: measure.py REPS SETUP -- CMD [ARG...]")
    cmd = sys.argv[4:]
    walls, rsss, cpus = [], [], []
    for _ in range(reps):
        subprocess.run(["bash", "-c", setup], check=True)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Read stderr while it runs (a full pipe would stall it); the
        # process is reaped by wait4 below, not by communicate.
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        t1 = time.perf_counter()
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.stderr.buffer.write(err)
            sys.exit(f"{cmd[0]} failed (exit {p.returncode})")
        walls.append((t1 - t0) * 1000)
        cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
        subprocess.run(["bash", "-c", setup], check=True)
        timed = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "--", *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
        )
        rsss.append(int(timed.stderr.decode().strip().splitlines()[-1]))
    print(
        f"{statistics.median(walls):.3f} {int(statistics.median(rsss))} "
        f"{statistics.median(cpus):.1f}"
    )


if __name__ == "__main__":
    main()
