#!/usr/bin/env python3
"""`make bench`: every benchmark of the project in one run, printed as ONE markdown table, each
row beside what a user would run instead, measured in the same run, plus the machine.

Runs (each part reuses the existing script; a part whose tools are missing gets a row saying so):
  1. bench/make_capture.py: a >= 1 M frame capture from ../shared/pcaps (mergecap, monotonic times);
     bench/replay_compare.py on it: netmon-agent replay vs tshark endpoints,eth, tcpdump -r -w
     /dev/null, darkstat -r, pyshark FileCapture (20k slice);
  2. examples/bench_decode (bench-release profile): decode+account in memory, frames/s, ns/frame;
     examples/bench_table: per-frame cost with MACs crafted to collide vs random ones, for the old
     index and the keyed table, at table sizes 4096 and 65536;
  3. bench/live.sh (root): idle wake-ups and CPU over 60 s (agent, tcpdump, darkstat side by side),
     scan of a /24 vs arp-scan, trafgen at stepped rates: highest zero-drop rate, CPU per million
     frames of the agent, tcpdump -w /dev/null and darkstat on the same traffic;
  4. bench/interfaces.py (root): RSS of `run` watching 1, 2 and 4 interfaces (a ring each);
     bench/https_cost.py: CPU per cycle of shipping over HTTPS to a local TLS server
     (tests/servers/rest_server.py), with and without HTTP keep-alive;
  5. sizes: `scripts/cross.sh size` when the cross tooling is on this branch (SIZES=0 skips the
     builds), else the host release binary; bench/startup.py: RSS after start, exec to first line.

usage: bench/bench.py [OUT.md]   (prints the table; also writes it to OUT.md if given)
Environment: BENCH_FRAMES (capture size, default 1000000), RATES/FRAMES/STEP_S/IDLE_S/IDLE_STEP_S (live.sh).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(REPO)
PCAPS = os.path.realpath(os.path.join(REPO, "..", "shared", "pcaps"))
REL = "target/release/netmon-agent"
BENCH = "target/bench-release/netmon-agent"
rows = []  # (benchmark, tool, figure, cpu, rss, exact)


def note(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(argv, **kw):
    note("running " + " ".join(argv))
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def machine():
    model = "?"
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            model = l.split(":", 1)[1].strip()
            break
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{model}, {os.cpu_count()} CPUs (shared), {mem} MiB RAM, Linux {os.uname().release}, "
            f"{rustc}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def build():
    r = run(["cargo", "build", "-q", "--release", "--bin", "netmon-agent"])
    if r.returncode:
        sys.exit("bench: cargo build --release failed:\n" + r.stderr)
    r = run(["cargo", "build", "-q", "--profile", "bench-release", "--bin", "netmon-agent", "--example", "bench_decode",
             "--example", "bench_table"])
    if r.returncode:
        sys.exit("bench: cargo build --profile bench-release failed:\n" + r.stderr)


def replay_part(tmp):
    if not (shutil.which("mergecap") and shutil.which("tshark")):
        rows.append(("replay", "all", "tshark/mergecap not installed", "", "", ""))
        return
    cap = os.path.join(tmp, "big.pcap")
    r = run([sys.executable, "bench/make_capture.py", PCAPS, cap, os.environ.get("BENCH_FRAMES", "1000000")])
    if r.returncode:
        rows.append(("replay", "make_capture.py", "failed: " + r.stderr.strip()[-200:], "", "", ""))
        return
    r = run([sys.executable, "bench/replay_compare.py", REL, cap])
    note(r.stderr.strip())
    for line in r.stdout.splitlines():
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if "not installed" in line:
            rows.append(("replay", c[0], "not installed", "", "", ""))
            continue
        if len(c) < 7 or c[0] in ("tool", "---") or c[0].startswith("-"):
            continue
        tool, frames, fps, wall, cpu, rss, exact = c[:7]
        what = f"replay {frames} real frames" if "slice" not in tool else f"replay {frames} frames (slice)"
        fig = f"{float(fps.replace(',', '')) / 1e6:.3f} M frames/s ({wall} s)"
        rows.append((what, tool, fig, f"{cpu} s", rss, exact))


def decode_part():
    r = run(["target/bench-release/examples/bench_decode", "--pcaps", PCAPS])
    m = re.search(r"decode\+account: ([\d.]+) M frames/s, ([\d.]+) ns/frame \((.*)\)", r.stdout)
    if not m:
        rows.append(("decode+account in memory", "bench_decode", "failed: " + (r.stderr or r.stdout)[-200:], "", "", ""))
        return
    cap = re.search(r"capture: (\d+) frames", r.stdout)
    rows.append((f"decode+account in memory, {int(cap.group(1)):,} frames" if cap else "decode+account in memory",
                 "netmon-agent DeviceTable::observe", f"{m.group(1)} M frames/s, {m.group(2)} ns/frame ({m.group(3)})",
                 "", "", "target: 20 M frames/s"))


def table_part():
    """Crafted vs random MACs per frame, old index vs the keyed table (examples/bench_table.rs)."""
    r = run(["target/bench-release/examples/bench_table"])
    got = {}
    for m in re.finditer(r"table (\d+) (old|new) (\S+): ([\d.]+) ns/frame \((.*)\)", r.stdout):
        got[(m.group(1), m.group(2), m.group(3))] = (float(m.group(4)), m.group(5))
    if not got:
        rows.append(("device table, crafted vs random MACs", "bench_table", "failed: " + (r.stderr or r.stdout)[-200:],
                     "", "", ""))
        return
    names = {"old": "old index (unkeyed multiplicative hash, linear probing)",
             "new": "DeviceTable (keyed two-choice buckets)"}
    for (size, kind, macs), (ns, what) in got.items():
        base = got.get((size, kind, "random"), (None,))[0]
        ratio = f"{ns / base:.1f}x random" if base and macs != "random" else ""
        note_ = ratio + ("; target <= 3x" if kind == "new" and ratio else "")
        rows.append((f"decode+account per frame, table {size}, {macs} MACs ({what})", names[kind],
                     f"{ns:.1f} ns/frame", "", "", note_))


def live_part():
    if os.geteuid() != 0:
        rows.append(("live capture, scan, idle", "", "skipped: needs root (namespaces)", "", "", ""))
        return
    missing = [t for t in ("trafgen", "darkstat", "tcpdump", "arp-scan", "bc") if not shutil.which(t)]
    if missing:
        rows.append(("live capture, scan, idle", "", "skipped: missing " + ", ".join(missing), "", "", ""))
        return
    env = dict(os.environ)
    env.setdefault("IDLE_S", "60")
    r = run(["bash", "bench/live.sh", BENCH], env=env)
    out = r.stdout
    note(out + r.stderr[-2000:])
    idle = {m.group(1): m for m in re.finditer(
        r"^idle (\S+): wake-ups: (\d+) in (\d+) s = ([\d.]+)/s; CPU ([\d.]+) s", out, re.M)}
    for tool, m in idle.items():
        rows.append((f"idle {m.group(3)} s, no traffic", tool, f"{m.group(4)} wake-ups/s", f"{m.group(5)} s", "", ""))
    scans = re.findall(r"netmon-agent scan ([\d.]+) s\s+arp-scan ([\d.]+) s\s+ratio ([\d.]+)", out)
    if scans:
        a = sorted(float(s[0]) for s in scans)
        b = sorted(float(s[1]) for s in scans)
        ratio = a[len(a) // 2] / b[len(b) // 2]
        rows.append(("scan of a /24 (8 hosts answer)", "netmon-agent scan", f"{a[len(a) // 2]:.2f} s (median of {len(a)})",
                     "", "", f"ratio {ratio:.2f} (target <= 1.5)"))
        rows.append(("scan of a /24 (8 hosts answer)", "arp-scan", f"{b[len(b) // 2]:.2f} s (median of {len(b)})", "", "", ""))
    steps = [m.groupdict() for m in re.finditer(
        r"^rate (?P<rate>\S+) achieved (?P<achieved>\d+) agent_drops (?P<drops>\d+) exact (?P<exact>\S+) "
        r"agent_cpu (?P<agent>[\d.]+) tcpdump_cpu (?P<tcpdump>[\d.]+) tcpdump_drops (?P<tdrops>\S+) "
        r"darkstat_cpu (?P<darkstat>[\d.]+) sent (?P<sent>\d+) darkstat_processed (?P<dk_frames>-?\d+) "
        r"darkstat_dropped (?P<dk_drops>-?\d+) window (?P<window>[\d.]+) agent_idle_cpu_per_s (?P<agent_idle>[\d.]+) "
        r"darkstat_idle_cpu_per_s (?P<dk_idle>[\d.]+)$", out, re.M)]
    if steps:
        ok = [s for s in steps if s["drops"] == "0" and s["exact"] == "yes"]
        best = max(ok, key=lambda s: int(s["achieved"])) if ok else None
        top = max(steps, key=lambda s: int(s["achieved"]))

        def per_frame(cpu, idle, frames, s):
            """CPU per million frames, all in and above the tool's CPU per second without traffic."""
            frames = int(frames)
            if frames <= 0:
                return "no frames"
            cpu, w = float(cpu), float(s["window"])
            return (f"{cpu / frames * 1e6:.4f} s per M frames "
                    f"({(cpu - float(idle) * w) / frames * 1e6:.4f} above idle)")

        def agent_row(what, s, figure, note_):
            rows.append((what, "netmon-agent run", figure, per_frame(s["agent"], s["agent_idle"], s["sent"], s), "", note_))

        def darkstat_row(s):
            rows.append((f"live capture on veth (same traffic, {int(s['achieved']):,} frames/s)", "darkstat -i",
                         f"accounted {int(s['dk_frames']):,} of {int(s['sent']):,} frames, dropped {int(s['dk_drops']):,}",
                         per_frame(s["darkstat"], s["dk_idle"], s["dk_frames"], s) + " it accounted", "", ""))

        if best:
            agent_row("live capture on veth, trafgen 64-1500 B",  best,
                      f"0 drops up to {int(best['achieved']):,} frames/s (steps {', '.join(s['achieved'] for s in steps)})",
                      "exact tx count" if best["exact"] == "yes" else best["exact"])
        else:
            rows.append(("live capture on veth", "netmon-agent run",
                         f"drops at every step ({[s['drops'] for s in steps]})", "", "", ""))
        ref = best or top
        rows.append(("live capture on veth (same traffic)", "tcpdump -w /dev/null",
                     f"{ref['tdrops']} kernel drops at {int(ref['achieved']):,} frames/s",
                     per_frame(ref["tcpdump"], 0, ref["sent"], ref).split(" (")[0], "", ""))
        darkstat_row(ref)
        # The fastest step darkstat keeps up with: both tools account the same frames there.
        same = [s for s in steps if s["dk_drops"] == "0" and int(s["dk_frames"]) >= int(s["sent"]) and s is not ref]
        if same:
            s = max(same, key=lambda s: int(s["achieved"]))
            agent_row(f"live capture on veth, {int(s['achieved']):,} frames/s (darkstat drops none)", s,
                      f"{s['drops']} drops", "exact tx count" if s["exact"] == "yes" else s["exact"])
            darkstat_row(s)
        if top is not best:
            agent_row("live capture on veth, highest step", top,
                      f"{top['drops']} drops at {int(top['achieved']):,} frames/s", top["exact"])
    rss = re.findall(r"^rss (\S+) ([\d]+) KiB$", out, re.M)
    for tool, kib in rss:
        rows.append(("RSS after start, idle lab", tool, f"{int(kib)} KiB", "", "", ""))


def interfaces_part():
    if os.geteuid() != 0:
        rows.append(("RSS with 1, 2, 4 capture interfaces", "", "skipped: needs root (namespaces)", "", "", ""))
        return
    r = run([sys.executable, "bench/interfaces.py", REL])
    for m in re.finditer(r"^interfaces (\d+) VmRSS (\d+) RssAnon (\d+) RssFile (\d+)$", r.stdout, re.M):
        n, rss, anon, file_ = (int(x) for x in m.groups())
        rows.append((f"RSS after start, {n} capture interface{'s' if n > 1 else ''} (RING_KB 1024 each)",
                     "netmon-agent run", f"{rss} KiB", "", "", f"RssAnon {anon} KiB, RssFile {file_} KiB (text + rings)"))
    if r.returncode:
        rows.append(("RSS with 1, 2, 4 capture interfaces", "", "failed: " + r.stderr[-200:], "", "", ""))


def size_part():
    """Per-target sizes from the cross tooling when this branch has it: `make size` (builds every
    target) with BENCH_CROSS=1, else `scripts/cross.sh size` on what dist/ already holds."""
    host = run(["rustc", "-vV"]).stdout
    triple = re.search(r"host: (\S+)", host).group(1)
    rows.append(("binary size (stripped, release profile)", triple, f"{os.path.getsize(REL):,} bytes", "", "",
                 "this machine's build (glibc, dynamic)"))
    if not os.path.exists("scripts/cross.sh"):
        return
    if os.environ.get("BENCH_CROSS") == "1":
        run(["make", "size"])
    r = run(["bash", "scripts/cross.sh", "size"])
    unbuilt = []
    for line in r.stdout.splitlines():
        m = re.match(r"^(\S+-linux-\S+)\s+(\d+|not built)\s*(.*)$", line)
        if m and m.group(2).isdigit():
            rows.append(("binary size (static musl, stripped)", m.group(1), f"{int(m.group(2)):,} bytes", "", "",
                         m.group(3).strip()))
        elif m:
            unbuilt.append(m.group(1))
    if unbuilt:
        rows.append(("binary size (static musl, stripped)", ", ".join(unbuilt), "not built here", "", "",
                     "`BENCH_CROSS=1 make bench` runs `make size` first"))


def startup_part():
    r = run([sys.executable, "bench/startup.py", REL, "5"])
    for line in r.stdout.splitlines():
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(c) == 2 and "RSS" in c[0]:
            rows.append(("RSS after start (run, default settings, no platform)", "netmon-agent run",
                         c[1], "", "", "target: < 2 MB"))
        elif len(c) == 2 and "first JSON" in c[0]:
            rows.append(("exec to first snapshot (minus the 1 s window)", "netmon-agent run", c[1], "", "", ""))


def https_part():
    if not shutil.which("openssl"):
        rows.append(("REST over HTTPS, CPU per cycle", "", "skipped: openssl not installed", "", "", ""))
        return
    r = run([sys.executable, "bench/https_cost.py", REL, os.environ.get("HTTPS_S", "30")])
    if r.returncode:
        rows.append(("REST over HTTPS, CPU per cycle", "", "failed: " + r.stderr.strip()[-200:], "", "", ""))
        return
    for line in r.stdout.splitlines():
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(c) == 4:
            rows.append(("REST over HTTPS to 127.0.0.1, CPU per cycle (snapshot POST)", f"netmon-agent run, {c[0]}",
                         f"{c[1]} CPU per cycle", "", "", f"{c[2]} POSTs on {c[3]} TLS connections"))


def main():
    t0 = time.time()
    build()
    with tempfile.TemporaryDirectory(prefix="netmon-bench-") as tmp:
        for part in (lambda: replay_part(tmp), decode_part, table_part, live_part, startup_part, interfaces_part,
                     https_part, size_part):
            try:
                part()
            except Exception as e:  # one broken part must not hide the others
                rows.append(("(part failed)", getattr(part, "__name__", "?"), repr(e)[:200], "", "", ""))
    lines = [f"Machine: {machine()}. Command: `make bench` ({time.time() - t0:.0f} s).", "",
             "| benchmark | tool | figure | CPU | peak RSS | exact / note |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines)
    print(text)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
