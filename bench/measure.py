#!/usr/bin/env python3
"""Runs commands REPS times each and prints, one line per command, its
median wall time (ms, three decimals), peak RSS (KiB) and CPU time (user
+ system, ms, one decimal).

Usage: measure.py REPS SETUP CMD [ARG...] [--- SETUP CMD [ARG...]]...

With several commands, each repetition runs every one of them in turn,
so that all of them see the machine in the same state (a busier minute
slows them all, not the ones measured in it): the ratio of two lines is
then what two blocks of runs measured minutes apart cannot give.

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


def run(setup: str, cmd: list[str]) -> tuple[float, float, int]:
    """One timed run and one run for the RSS: wall ms, CPU ms, RSS KiB."""
    subprocess.run(["bash", "-c", setup], check=True)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Read stderr while it runs (a full pipe would stall it); the process
    # is reaped by wait4 below, not by communicate.
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.stderr.buffer.write(err)
        sys.exit(f"{cmd[0]} failed (exit {p.returncode})")
    subprocess.run(["bash", "-c", setup], check=True)
    timed = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "--", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
    )
    rss = int(timed.stderr.decode().strip().splitlines()[-1])
    return (t1 - t0) * 1000, (usage.ru_utime + usage.ru_stime) * 1000, rss


def main() -> None:
    reps = int(sys.argv[1])
    groups, group = [], []
    for arg in sys.argv[2:]:
        if arg == "---":
            groups.append(group)
            group = []
        else:
            group.append(arg)
    groups.append(group)
    if any(len(g) < 2 for g in groups):
        sys.exit("usage: measure.py REPS SETUP CMD [ARG...] [--- SETUP CMD [ARG...]]...")
    results = [[] for _ in groups]
    for _ in range(reps):
        for g, r in zip(groups, results):
            r.append(run(g[0], g[1:]))
    for r in results:
        walls, cpus, rsss = zip(*r)
        print(
            f"{statistics.median(walls):.3f} {int(statistics.median(rsss))} "
            f"{statistics.median(cpus):.1f}"
        )


if __name__ == "__main__":
    main()
