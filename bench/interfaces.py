#!/usr/bin/env python3
"""Memory per capture interface: RSS of `netmon-agent run` watching 1, 2 and 4 interfaces.

A namespace lab (root): a router namespace with four bridges br0..br3, each with an IPv4 subnet
and one client on a veth; the agent runs in the router namespace with INTERFACE set to the first
1, 2 or 4 bridges (default RING_KB, SCAN_INTERVAL=0, no platform), and after 3 s its VmRSS,
RssAnon and RssFile (the rings are mapped kernel pages, counted in RssFile) are read from
/proc/PID/status. Every namespace is named with this process's pid and deleted at the end.

usage: bench/interfaces.py AGENT_BINARY
prints: `interfaces N VmRSS K RssAnon K RssFile K` (KiB), one line per count.
"""
import os
import subprocess
import sys
import time

AGENT = os.path.abspath(sys.argv[1])
P = f"nmif{os.getpid() % 100000}"
ROUTER = P + "r"
made = []


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def ns(name, *args):
    sh("ip", "netns", "exec", name, *args)


def setup():
    sh("ip", "netns", "add", ROUTER)
    made.append(ROUTER)
    for i in range(4):
        br, client = f"br{i}", f"{P}c{i}"
        ns(ROUTER, "ip", "link", "add", br, "type", "bridge")
        ns(ROUTER, "ip", "link", "set", br, "up")
        ns(ROUTER, "ip", "addr", "add", f"10.{90 + i}.0.1/24", "dev", br)
        sh("ip", "netns", "add", client)
        made.append(client)
        ns(ROUTER, "ip", "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", client)
        ns(ROUTER, "ip", "link", "set", f"p{i}", "master", br, "up")
        ns(client, "ip", "link", "set", "eth0", "up")
        ns(client, "ip", "addr", "add", f"10.{90 + i}.0.10/24", "dev", "eth0")


def status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0])
    return out


def measure(n):
    ifaces = " ".join(f"br{i}" for i in range(n))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    p = subprocess.Popen(
        ["ip", "netns", "exec", ROUTER, AGENT, "run", "--config", "/dev/null", "-i", ifaces,
         "--cycle", "5", "--set", "SCAN_INTERVAL=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        time.sleep(3)
        # `ip netns exec` execs the agent: the pid is the agent's.
        s = status(p.pid)
        print(f"interfaces {n} VmRSS {s['VmRSS']} RssAnon {s['RssAnon']} RssFile {s['RssFile']}", flush=True)
    finally:
        p.terminate()
        p.wait()


def main():
    if os.geteuid() != 0:
        sys.exit("bench/interfaces.py: needs root (network namespaces)")
    try:
        setup()
        for n in (1, 2, 4):
            measure(n)
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


main()
