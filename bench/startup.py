#!/usr/bin/env python3
"""Start-up figures of `netmon-agent run` (issue 2): time from exec to the first JSON line with
CYCLE_TIME=1 (minus the 1 s window), peak RSS (VmHWM) after a few cycles, and the binary size.

usage: bench/startup.py BINARY [RUNS]
Prints a markdown table row per figure.
"""
import os
import statistics
import subprocess
import sys
import time

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
env["NETMON_CONFIG"] = "/dev/null"
# Loopback only: a benchmark sends nothing to networks that are not ours.
env["NETMON_INTERFACE"] = "lo"
env["NETMON_SCAN_INTERVAL"] = "0"

first_line = []
hwm_kb = []
for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "run", "--cycle", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    p.stdout.readline()
    first_line.append((time.perf_counter() - t0 - 1.0) * 1000)
    p.stdout.readline()
    p.stdout.readline()
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm_kb.append(int(line.split()[1]))
    p.terminate()
    p.wait()

print("| figure | value |")
print("|---|---|")
print(f"| exec to first JSON line, minus the 1 s window (median of {runs}) | {statistics.median(first_line):.1f} ms |")
print(f"| peak RSS (VmHWM) after 3 cycles (max of {runs}) | {max(hwm_kb)} KiB |")
print(f"| binary size ({binary}) | {os.path.getsize(binary)} bytes |")
