#!/usr/bin/env python3
"""Replay benchmark, side by side in one run (issue 7): netmon-agent replay against the read floor
(tcpdump -r F -w /dev/null), darkstat -r, tshark -q -z endpoints,eth, and the seed agent's way
(pyshark FileCapture summing per MAC) on a 20,000-frame slice. For each: frames/s, CPU seconds,
peak RSS, and whether its per-MAC totals equal tshark's.

usage: bench/replay_compare.py NETMON_BINARY CAPTURE.pcap
Prints a markdown table. Tools that are not installed get a row saying so.
"""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

binary, capture = sys.argv[1], sys.argv[2]


def frames_in(path):
    out = subprocess.run(["capinfos", "-c", "-M", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "Number of packets" in line:
            return int(line.split(":")[1].strip())
    raise SystemExit(f"capinfos gave no packet count for {path}")


def measure(argv, stdout=subprocess.DEVNULL, timeout=3600):
    """Runs argv, returns (wall s, cpu s, peak RSS KiB, stdout text or None)."""
    t0 = time.perf_counter()
    out_file = tempfile.TemporaryFile() if stdout is None else None
    p = subprocess.Popen(argv, stdout=out_file if out_file else stdout, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    text = None
    if out_file:
        out_file.seek(0)
        text = out_file.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"warning: {' '.join(argv[:3])} exited {os.waitstatus_to_exitcode(status)}", file=sys.stderr)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, text


def tshark_per_mac(path):
    """Unicast per-MAC totals from tshark's endpoints,eth: {mac: (rx_pk, rx_b, tx_pk, tx_b)}."""
    out = subprocess.run(["tshark", "-n", "-q", "-r", path, "-z", "endpoints,eth"],
                         capture_output=True, text=True, check=True).stdout
    return parse_endpoints(out)


def parse_endpoints(out):
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[0].count(":") == 5 and all(p.isdigit() for p in parts[1:7]):
            mac = parts[0]
            if int(mac.split(":")[0], 16) & 1:
                continue  # group address: nobody's rx
            _, _, txp, txb, rxp, rxb = map(int, parts[1:7])
            res[mac] = (rxp, rxb, txp, txb)
    return res


def netmon_per_mac(snapshot_text):
    snap = json.loads(snapshot_text)
    res = {}
    for d in snap["network"]["connectedDevices"]:
        b = d["bandwidth"]
        res[d["mac"]] = (b["rxPacketsTotal"], b["rxBytesTotal"], b["txPacketsTotal"], b["txBytesTotal"])
    return res


def row(name, frames, wall, cpu, rss, exact):
    fps = frames / wall if wall > 0 else 0
    return f"| {name} | {frames:,} | {fps:,.0f} | {wall:.2f} | {cpu:.2f} | {rss / 1024:.1f} MiB | {exact} |"


frames = frames_in(capture)
rows = ["| tool | frames | frames/s | wall s | CPU s | peak RSS | per-MAC totals = tshark |", "|---|---|---|---|---|---|---|"]

wall, cpu, rss, text = measure(["tshark", "-n", "-q", "-r", capture, "-z", "endpoints,eth"], stdout=None)
reference = parse_endpoints(text)
rows.append(row("tshark -q -z endpoints,eth", frames, wall, cpu, rss, "(reference)"))

wall, cpu, rss, text = measure([binary, "replay", capture, "--json", "--table-size", "4096"], stdout=None)
mine = netmon_per_mac(text)
exact = "yes" if mine == reference else f"NO ({len(set(mine.items()) ^ set(reference.items()))} differing rows)"
rows.append(row("netmon-agent replay (table 4096)", frames, wall, cpu, rss, exact))

if shutil.which("tcpdump"):
    wall, cpu, rss, _ = measure(["tcpdump", "-n", "-r", capture, "-w", "/dev/null"])
    rows.append(row("tcpdump -r F -w /dev/null (read floor)", frames, wall, cpu, rss, "n/a (no per-MAC counts)"))
else:
    rows.append("| tcpdump | not installed | | | | | |")

if shutil.which("darkstat"):
    with tempfile.TemporaryDirectory() as d:
        # -r reads the file and exits; --chroot/--user only because darkstat insists on them.
        wall, cpu, rss, _ = measure(["darkstat", "-r", capture, "--no-daemon", "--chroot", d, "--user", "root"])
    rows.append(row("darkstat -r", frames, wall, cpu, rss, "n/a (counts per IP host)"))
else:
    rows.append("| darkstat | not installed | | | | | |")

# The seed's way, on a slice: pyshark is far too slow for the whole file.
slice_frames = 20_000
with tempfile.TemporaryDirectory() as d:
    piece = os.path.join(d, "slice.pcap")
    subprocess.run(["editcap", "-r", capture, piece, f"1-{slice_frames}"], check=True, capture_output=True)
    script = r'''
import collections, sys, pyshark
acc = collections.defaultdict(lambda: [0, 0, 0, 0])
cap = pyshark.FileCapture(sys.argv[1], keep_packets=False)
for pkt in cap:
    n = int(pkt.length)
    if "eth" in pkt:
        src, dst = pkt.eth.src, pkt.eth.dst
        acc[src][2] += 1; acc[src][3] += n
        acc[dst][0] += 1; acc[dst][1] += n
cap.close()
for mac, v in sorted(acc.items()):
    if not int(mac.split(":")[0], 16) & 1:
        print(mac, *v)
'''
    try:
        import pyshark  # noqa: F401
        wall, cpu, rss, text = measure([sys.executable, "-c", script, piece], stdout=None)
        seed = {l.split()[0]: tuple(map(int, l.split()[1:])) for l in text.splitlines() if l.strip()}
        ref = tshark_per_mac(piece)
        exact = "yes" if seed == ref else f"NO ({len(set(seed.items()) ^ set(ref.items()))} differing rows)"
        rows.append(row("seed: pyshark FileCapture (20k slice)", slice_frames, wall, cpu, rss, exact))
    except ImportError:
        rows.append("| seed: pyshark | not installed | | | | | |")

print("\n".join(rows))
