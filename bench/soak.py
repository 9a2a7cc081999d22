#!/usr/bin/env python3
"""Endurance run of `netmon-agent run` (issue 7): `make soak` (SOAK_MINUTES, default 60) and
`make soak-short` (3 minutes, for CI). Root only; all traffic stays in the namespaces made here.

The lab: a router namespace with bridge br-lan (fixed MAC, no IPv6), three "steady" clients and two
"responders" on veth ports, and a "flood" client. Steady clients and the flood client have ARP off
and IPv6 disabled, so every frame their eth0 sends is one this script sent: the kernel's veth tx
counters are then an exact, independent reference for the agent's per-device tx counts.
The agent (release build) runs in the router namespace with the real REST and WebSocket servers of
tests/servers/ on 127.0.0.1 of that namespace. At the same time:
  - steady client-to-client frames (60..1514 B, ~SOAK_PPS per client) and every 30 s a burst from
    client 0 to client 1 with trafgen at SOAK_BURST_PPS;
  - a MAC flood: 100,000 frames from 100,000 distinct random source MACs (06:xx:..., broadcast
    destination) 10 s in, then every 15 minutes with new MACs;
  - br-lan deleted and re-created (ports re-attached) every SOAK_IFACE_EVERY s (60 in the short
    run, 300 otherwise); the steady traffic pauses around it (nothing can count frames on a bridge
    that does not exist) and resumes once the agent's packet socket is bound to the new bridge;
  - the REST server killed and restarted, answering 500 or 429, hanging (SIGSTOP), never
    answering, closing connections; the WebSocket server killed, closing every connection, hanging:
    one random fault at a time per server, 5..20 s each, 10..25 s apart, after a warm-up outage
    (REST down 20 s, WebSocket 10 s) in the first minute;
  - SIGHUP reloads every 40 s, alternating HTTP_TIMEOUT and SCAN_INTERVAL in the config file.
Every 10 s: the agent's RSS, fds (by kind), threads and CPU. At the end, with the faults over and
the traffic stopped, it checks (exit 1 if any fails):
  - RSS never above its peak (VmHWM) after the first minute + 256 KiB + the REST backlog in use
    (the first minute is the warm-up with a flood and a 20 s REST outage in it, so every path has
    run once; the backlog, up to BACKLOG_KB, is allocated while the platform is down: a sample
    above the line passes only if the snapshots waiting in the 60 s before it account for it: malloc gives freed memory back lazily);
    and RSS at the end, backlog empty, <= that peak + 256 KiB;
  - threads always 1; fds: the non-transient ones (everything but TCP sockets and the packet
    socket) constant; TCP sockets at most 2 (one REST call in flight + the WebSocket); the packet
    socket 1 (0 only while br-lan is gone);
  - same pid from start to end, one runId in every delivered snapshot;
  - every seq from 0 to the last one reached the REST server with a 200 at least once, and every
    copy of a seq the server logged (retries after 500/429/hangs/closes) is byte-identical;
    agent.lost == 0;
  - per steady client: tx packets/bytes = its veth tx counters; rx = what the other senders
    recorded sending to it (plus the trafgen bursts, taken from client 0's veth counter);
  - every flood MAC sends one frame, a sign of life, so it is admitted and takes the slot of an
    earlier flood MAC once the table is full (the steady clients, established, keep theirs; the
    lab's addressed-only or newcomer MACs, at most 8, may go first): devicesEvicted - (flood
    frames sent (flood veth tx counter) - flood MACs still in the table) in 0..=8,
    deviceTableFull 0; packetsDropped == 0.
Writes OUT/report.md, OUT/samples.tsv and OUT/rss_cpu.png (gnuplot).

usage: bench/soak.py run BINARY OUTDIR [MINUTES]
       (internal) bench/soak.py steady|flood ...
"""
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LAN = "10.96.0"
ETH_P = 0x88B5  # IEEE local experimental: no host stack in the lab answers it
CYCLE = 5
REST_PORT, WS_PORT = 18080, 18081


# ---------------------------------------------------------------- helpers run inside a namespace

def raw_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    return s


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def steady(argv):
    """steady IFACE SRC DST1,DST2 PPS CTLDIR NAME: frames to the other clients until CTLDIR/stop;
    while CTLDIR/pause (content: generation) exists, sends nothing and acknowledges in
    CTLDIR/NAME.state with its record {dst: [frames, bytes]}."""
    iface, src, dsts, pps, ctl, name = argv[0], argv[1], argv[2].split(","), int(argv[3]), argv[4], argv[5]
    s = raw_socket(iface)
    rng = random.Random(name)
    record = {d: [0, 0] for d in dsts}
    srcb = mac_bytes(src)
    dstb = {d: mac_bytes(d) for d in dsts}
    acked = None
    pause, stop = os.path.join(ctl, "pause"), os.path.join(ctl, "stop")
    per_tick = max(1, pps // 100)
    i = 0
    while True:
        if os.path.exists(pause) or os.path.exists(stop):
            try:
                gen = open(pause).read().strip() if os.path.exists(pause) else "stop"
            except OSError:
                continue
            if gen != acked:
                tmp = os.path.join(ctl, name + ".tmp")
                with open(tmp, "w") as f:
                    json.dump({"gen": gen, "record": record}, f)
                os.rename(tmp, os.path.join(ctl, name + ".state"))
                acked = gen
            if gen == "stop":
                return
            time.sleep(0.02)
            continue
        for _ in range(per_tick):
            d = dsts[i % len(dsts)]
            i += 1
            n = rng.randint(60, 1514)
            frame = dstb[d] + srcb + struct.pack("!H", ETH_P) + bytes(n - 14)
            try:
                s.send(frame)
            except OSError:
                continue  # ENOBUFS: not sent, not recorded
            record[d][0] += 1
            record[d][1] += n
        time.sleep(0.01)


def flood(argv):
    """flood IFACE COUNT SEED OUTFILE: COUNT frames from COUNT distinct random MACs 06:xx:xx:xx:xx:xx
    to broadcast, about 50,000 frames/s; writes the number sent to OUTFILE."""
    iface, count, seed, out = argv[0], int(argv[1]), int(argv[2]), argv[3]
    s = raw_socket(iface)
    macs = random.Random(seed).sample(range(1 << 40), count)
    tail = struct.pack("!H", ETH_P) + bytes(46)
    sent = 0
    for k, m in enumerate(macs):
        frame = b"\xff" * 6 + b"\x06" + m.to_bytes(5, "big") + tail
        while True:
            try:
                s.send(frame)
                break
            except OSError:
                time.sleep(0.001)
        sent += 1
        if k % 500 == 499:
            time.sleep(0.01)
    with open(out, "w") as f:
        f.write(str(sent))


# ---------------------------------------------------------------- the orchestrator

def sh(*args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


class Soak:
    def __init__(self, binary, out, minutes):
        self.bin = os.path.realpath(binary)
        self.out = os.path.realpath(out)
        self.minutes = minutes
        self.short = minutes <= 5
        self.iface_every = int(os.environ.get("SOAK_IFACE_EVERY", "60" if self.short else "300"))
        self.pps = int(os.environ.get("SOAK_PPS", "300"))
        self.burst_pps = int(os.environ.get("SOAK_BURST_PPS", "100000"))
        self.burst_frames = int(os.environ.get("SOAK_BURST_FRAMES", "100000"))
        self.flood_count = int(os.environ.get("SOAK_FLOOD", "100000"))
        p = f"nms{os.getpid() % 100000}"
        self.router = p + "r"
        self.steady_ns = [f"{p}s{i}" for i in range(3)]
        self.resp_ns = [f"{p}a{i}" for i in range(2)]
        self.flood_ns = p + "f"
        self.made = []
        self.procs = {}  # name -> Popen (helpers we started)
        self.ctl = os.path.join(self.out, "ctl")
        self.events = []  # (t, text)
        self.samples = []
        self.t0 = time.time()
        self.pause_gen = 0
        self.bursts = 0
        self.floods = []  # frames sent per flood
        self.reloads = 0
        self.recreations = 0
        self.rest_faults = {}
        self.ws_faults = {}

    # -- lab
    def ns_add(self, name):
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.made.append(name)
        for k in ("all", "default"):
            sh("ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1")

    def port(self, i, nsname, mac, ip=None, arp=True):
        portname = f"lan{i}"
        sh("ip", "-n", self.router, "link", "add", portname, "type", "veth", "peer", "name", "eth0",
           "netns", nsname)
        sh("ip", "-n", nsname, "link", "set", "eth0", "address", mac)
        if not arp:
            sh("ip", "-n", nsname, "link", "set", "eth0", "arp", "off")
        sh("ip", "-n", self.router, "link", "set", portname, "master", "br-lan", "up")
        sh("ip", "-n", nsname, "link", "set", "eth0", "up")
        if ip:
            sh("ip", "-n", nsname, "addr", "add", f"{ip}/24", "dev", "eth0")
        return portname

    def bridge(self):
        r = self.router
        sh("ip", "-n", r, "link", "add", "br-lan", "address", "02:00:00:96:00:01", "type", "bridge")
        sh("ip", "-n", r, "addr", "add", f"{LAN}.1/24", "dev", "br-lan")
        sh("ip", "-n", r, "link", "set", "br-lan", "up")

    def build_lab(self):
        self.ns_add(self.router)
        sh("ip", "-n", self.router, "link", "set", "lo", "up")
        self.bridge()
        self.ports = []
        self.steady_macs = [f"02:00:00:96:00:1{i}" for i in range(3)]
        for i, n in enumerate(self.steady_ns):
            self.ns_add(n)
            self.ports.append(self.port(i, n, self.steady_macs[i], arp=False))
        self.resp_macs = [f"02:00:00:96:00:2{i}" for i in range(2)]
        for i, n in enumerate(self.resp_ns):
            self.ns_add(n)
            self.ports.append(self.port(3 + i, n, self.resp_macs[i], ip=f"{LAN}.{20 + i}"))
        self.ns_add(self.flood_ns)
        self.ports.append(self.port(9, self.flood_ns, "02:00:00:96:00:f0", arp=False))

    def recreate_bridge(self):
        self.pause()
        time.sleep(0.3)  # the agent's ring blocks retire after 50 ms
        sh("ip", "-n", self.router, "link", "del", "br-lan")
        self.event("br-lan deleted")
        time.sleep(2 * CYCLE)  # at least one snapshot with capture off
        self.bridge()
        for p in self.ports:
            sh("ip", "-n", self.router, "link", "set", p, "master", "br-lan", "up")
        ok = self.wait_capture(60)
        self.event(f"br-lan re-created; agent capturing on it again: {ok}")
        self.recreations += 1
        self.resume()

    def ifindex(self):
        return int(sh("ip", "netns", "exec", self.router, "cat", "/sys/class/net/br-lan/ifindex"))

    def wait_capture(self, timeout):
        """True once a running packet socket in the router namespace is bound to br-lan (only the
        agent opens packet sockets there)."""
        end = time.time() + timeout
        while time.time() < end:
            try:
                idx = self.ifindex()
                lines = sh("ip", "netns", "exec", self.router, "cat", "/proc/net/packet").splitlines()[1:]
                for l in lines:
                    f = l.split()
                    if int(f[4]) == idx and f[5] == "1":
                        return True
            except (RuntimeError, ValueError, IndexError):
                pass
            time.sleep(0.2)
        return False

    def counter(self, nsname, what):
        return int(sh("ip", "netns", "exec", nsname, "cat", f"/sys/class/net/eth0/statistics/{what}"))

    # -- helpers in namespaces
    def spawn(self, name, nsname, argv, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", nsname] + argv, **kw)
        self.procs[name] = p
        return p

    def start_steady(self):
        os.makedirs(self.ctl, exist_ok=True)
        for i, n in enumerate(self.steady_ns):
            others = [m for j, m in enumerate(self.steady_macs) if j != i]
            self.spawn(f"steady{i}", n, [sys.executable, __file__, "steady", "eth0", self.steady_macs[i],
                                         ",".join(others), str(self.pps), self.ctl, f"s{i}"])

    def pause(self):
        self.pause_gen += 1
        g = str(self.pause_gen)
        tmp = os.path.join(self.ctl, "pause.tmp")
        with open(tmp, "w") as f:
            f.write(g)
        os.rename(tmp, os.path.join(self.ctl, "pause"))
        self.wait_acks(g)

    def wait_acks(self, g):
        end = time.time() + 30
        while time.time() < end:
            states = [self.state(i) for i in range(3)]
            if all(s and s["gen"] == g for s in states):
                return states
            time.sleep(0.05)
        raise RuntimeError(f"steady senders did not acknowledge pause {g}")

    def state(self, i):
        try:
            with open(os.path.join(self.ctl, f"s{i}.state")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def resume(self):
        os.unlink(os.path.join(self.ctl, "pause"))

    def burst(self):
        conf = os.path.join(self.out, "burst.trafgen")
        if not os.path.exists(conf):
            d = ",".join(f"0x{b:02x}" for b in mac_bytes(self.steady_macs[1]))
            s = ",".join(f"0x{b:02x}" for b in mac_bytes(self.steady_macs[0]))
            with open(conf, "w") as f:
                for n in (46, 586, 1486):
                    f.write(f"{{ {d}, {s}, 0x88, 0xb5, fill(0x55, {n}) }}\n")
        sh("ip", "netns", "exec", self.steady_ns[0], "trafgen", "-q", "-C", "-P", "1", "-o", "eth0", "-i",
           conf, "-n", str(self.burst_frames), "-b", f"{self.burst_pps}pps", check=False)
        self.bursts += 1

    def do_flood(self):
        outf = os.path.join(self.out, f"flood{len(self.floods)}.sent")
        t = time.time()
        sh("ip", "netns", "exec", self.flood_ns, sys.executable, __file__, "flood", "eth0",
           str(self.flood_count), str(1000 + len(self.floods)), outf)
        n = int(open(outf).read())
        self.floods.append(n)
        self.event(f"MAC flood: {n} frames from {n} distinct MACs in {time.time() - t:.1f} s")

    # -- servers
    def start_rest(self):
        p = self.spawn("rest", self.router, [sys.executable, os.path.join(REPO, "tests/servers/rest_server.py"),
                                             "--port", str(REST_PORT), "--log", self.rest_log,
                                             "--mode-file", self.rest_mode], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
        p.stdout.readline()

    def start_ws(self):
        p = self.spawn("ws", self.router, [sys.executable, os.path.join(REPO, "tests/servers/ws_server.py"),
                                           "--port", str(WS_PORT), "--log", self.ws_log,
                                           "--mode-file", self.ws_mode], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
        p.stdout.readline()

    def stop_proc(self, name):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()

    def set_mode(self, path, m):
        with open(path, "w") as f:
            f.write(m)

    def fault_start(self, which, rng):
        """Starts a random fault on `which` ('rest' or 'ws'); returns (end time, undo)."""
        if which == "rest":
            kinds = ["kill", "status:500", "429:2", "hang", "silent", "close"]
        else:
            kinds = ["kill", "close", "hang"]
        kind = rng.choice(kinds)
        dur = rng.uniform(5, 20)
        faults = self.rest_faults if which == "rest" else self.ws_faults
        faults[kind] = faults.get(kind, 0) + 1
        mode = self.rest_mode if which == "rest" else self.ws_mode
        start = self.start_rest if which == "rest" else self.start_ws
        self.event(f"{which} server: {kind} for {dur:.0f} s")
        if kind == "kill":
            self.stop_proc(which)
            return time.time() + dur, start
        if kind == "hang":
            self.procs[which].send_signal(signal.SIGSTOP)
            return time.time() + dur, lambda: self.procs[which].send_signal(signal.SIGCONT)
        self.set_mode(mode, kind)
        return time.time() + dur, lambda: self.set_mode(mode, "ok")

    # -- the agent
    def write_config(self, variant):
        with open(self.conf, "w") as f:
            f.write(f"""# soak config, variant {variant}
SERVER_ID=soak
INTERFACE=br-lan
NETWORK_RANGE={LAN}.0/24
CYCLE_TIME={CYCLE}
PLATFORM_API_URL=http://127.0.0.1:{REST_PORT}/api/monitor
PLATFORM_WS_URL=ws://127.0.0.1:{WS_PORT}/ws/monitor
API_KEY=soak-test-key
HTTP_TIMEOUT={3 if variant % 2 == 0 else 2}
SCAN_INTERVAL={60 if variant % 2 == 0 else 45}
DEVICE_EXPIRE=86400
BACKLOG_KB=4096
""")

    def sample(self):
        pid = self.agent.pid
        with open(f"/proc/{pid}/status") as f:
            st = {l.split(":")[0]: l.split(":", 1)[1].strip() for l in f}
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        kinds = {}
        inode_kind = {}
        for proto in ("tcp", "tcp6", "udp", "udp6", "packet", "netlink", "unix"):
            try:
                with open(f"/proc/{pid}/net/{proto}") as f:
                    lines = f.read().splitlines()[1:]
            except OSError:
                continue
            col = {"packet": 8, "netlink": 9, "unix": 6}.get(proto, 9)
            for l in lines:
                parts = l.split()
                if len(parts) > col:
                    inode_kind[parts[col]] = proto.rstrip("6")
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                k = inode_kind.get(target[8:-1], "socket?")
            elif target.startswith("anon_inode:"):
                k = target[11:].strip("[]")
            elif target.startswith("pipe:"):
                k = "pipe"
            else:
                k = "file"
            kinds[k] = kinds.get(k, 0) + 1
        now = time.time()
        prev = self.samples[-1] if self.samples else None
        cpu = 0.0
        if prev:
            cpu = 100.0 * (ticks - prev["ticks"]) / os.sysconf("SC_CLK_TCK") / (now - prev["t"])
        self.samples.append({
            "t": now, "s": now - self.agent_t0, "rss": int(st["VmRSS"].split()[0]),
            "hwm": int(st["VmHWM"].split()[0]), "threads": int(st["Threads"]), "ticks": ticks, "cpu": cpu,
            "fds": sum(kinds.values()), "kinds": kinds,
        })

    def event(self, text):
        t = time.time() - self.t0
        self.events.append((t, text))
        print(f"[{t:7.1f} s] {text}", flush=True)

    def rest_records(self):
        recs = []
        try:
            with open(self.rest_log) as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if r.get("method") == "POST" and r.get("path", "").startswith("/api/monitor"):
                        recs.append(r)
        except OSError:
            pass
        return recs

    def last_delivered(self):
        best = None
        for r in self.rest_records():
            if r["mode"] != "ok":
                continue
            try:
                snap = json.loads(r["body"])
            except ValueError:
                continue
            if best is None or snap["agent"]["seq"] > best["agent"]["seq"]:
                best = snap
        return best

    # -- the run
    def run(self):
        os.makedirs(self.out, exist_ok=True)
        for f in os.listdir(self.out):
            p = os.path.join(self.out, f)
            if os.path.isfile(p):
                os.unlink(p)
        self.rest_log = os.path.join(self.out, "rest.log")
        self.ws_log = os.path.join(self.out, "ws.log")
        self.rest_mode = os.path.join(self.out, "rest.mode")
        self.ws_mode = os.path.join(self.out, "ws.mode")
        self.conf = os.path.join(self.out, "agent.conf")
        self.set_mode(self.rest_mode, "ok")
        self.set_mode(self.ws_mode, "ok")
        self.build_lab()
        self.event(f"lab up: router {self.router}, 3 steady clients, 2 responders, 1 flood client")
        self.start_rest()
        self.start_ws()
        self.write_config(0)
        self.agent_err = open(os.path.join(self.out, "agent.stderr"), "w")
        self.agent = self.spawn("agent", self.router, [self.bin, "run", "--config", self.conf],
                                stdout=subprocess.DEVNULL, stderr=self.agent_err)
        self.agent_t0 = time.time()
        if not self.wait_capture(30):
            raise RuntimeError("the agent never opened its capture on br-lan")
        self.base = {n: (self.counter(n, "tx_packets"), self.counter(n, "tx_bytes"))
                     for n in self.steady_ns + [self.flood_ns]}
        self.event(f"agent pid {self.agent.pid} capturing; veth tx baselines {self.base}")
        self.start_steady()

        rng = random.Random(os.environ.get("SOAK_SEED", "7"))
        end = self.agent_t0 + self.minutes * 60
        nxt = {"sample": self.agent_t0, "reload": self.agent_t0 + 40,
               "iface": self.agent_t0 + self.iface_every, "burst": self.agent_t0 + 30,
               "flood": self.agent_t0 + 10, "rest": self.agent_t0 + 45, "ws": self.agent_t0 + 45}
        # The first minute is the warm-up: one flood (a full table's snapshots are built from then
        # on) and a 20 s REST outage (snapshots queue), so its VmHWM is the working set of every
        # path and any later growth is growth, not first use.
        undo = {"rest": (self.agent_t0 + 20, self.start_rest), "ws": (self.agent_t0 + 10, self.start_ws)}
        self.rest_faults["kill"] = self.ws_faults["kill"] = 1
        self.event("warm-up: REST server killed for 20 s, WebSocket server for 10 s")
        self.stop_proc("rest")
        self.stop_proc("ws")
        while time.time() < end:
            now = time.time()
            if self.agent.poll() is not None:
                self.event(f"agent exited with {self.agent.returncode}")
                break
            if now >= nxt["sample"]:
                self.sample()
                nxt["sample"] += 10
            for which in ("rest", "ws"):
                if which in undo and now >= undo[which][0]:
                    undo.pop(which)[1]()
                    self.event(f"{which} server: back to ok")
                    nxt[which] = now + rng.uniform(10, 25)
                elif which not in undo and now >= nxt[which] and now < end - 60:
                    undo[which] = self.fault_start(which, rng)
            if now >= nxt["reload"]:
                self.reloads += 1
                self.write_config(self.reloads)
                self.agent.send_signal(signal.SIGHUP)
                self.event(f"SIGHUP (config variant {self.reloads % 2})")
                nxt["reload"] += 40
            if now >= nxt["iface"] and now < end - 30:
                self.recreate_bridge()
                nxt["iface"] = time.time() + self.iface_every
            if now >= nxt["flood"] and now < end - 30:
                self.do_flood()
                nxt["flood"] += 900
            if now >= nxt["burst"] and now < end - 20:
                self.burst()
                self.event(f"burst: {self.burst_frames} frames s0 -> s1 at {self.burst_pps} pps (trafgen)")
                nxt["burst"] += 30
            time.sleep(0.2)
        for which, (_, f) in list(undo.items()):
            f()
        for name in ("rest", "ws"):
            if name not in self.procs:
                (self.start_rest if name == "rest" else self.start_ws)()
        self.set_mode(self.rest_mode, "ok")
        self.set_mode(self.ws_mode, "ok")
        self.event("faults over; stopping traffic")
        self.pause()
        stop_t = time.time()
        states = [self.state(i) for i in range(3)]
        tx = {n: (self.counter(n, "tx_packets") - self.base[n][0], self.counter(n, "tx_bytes") - self.base[n][1])
              for n in self.steady_ns + [self.flood_ns]}
        # Wait for a delivered snapshot built two cycles after the stop, with an empty backlog.
        final = None
        deadline = time.time() + 360
        while time.time() < deadline and self.agent.poll() is None:
            s = self.last_delivered()
            if s and s["network"]["collectionStartTime"] and s["agent"]["backlog"] == 0 and \
                    parse_ms(s["snapshotTime"]) > (stop_t + 2 * CYCLE) * 1000:
                final = s
                break
            if time.time() >= nxt["sample"]:
                self.sample()
                nxt["sample"] += 10
            time.sleep(0.5)
        if self.agent.poll() is None:
            self.sample()
        self.event("final snapshot " + (f"seq {final['agent']['seq']}" if final else "never delivered"))
        return self.check(final, states, tx)

    # -- checks and report
    def check(self, final, states, tx):
        checks = []

        def ck(name, ok, detail):
            checks.append((name, bool(ok), detail))

        alive = self.agent.poll() is None
        ck("no restart", alive and final is not None,
           f"pid {self.agent.pid} {'alive' if alive else 'exited ' + str(self.agent.returncode)}")
        # REST backlog in use over time (bytes of snapshots built and not yet answered 200): it
        # is allocated while the platform is down, up to BACKLOG_KB, and given back after.
        first_ok, made = {}, {}
        for r in self.rest_records():
            try:
                snap = json.loads(r["body"])
            except ValueError:
                continue
            q = snap["agent"]["seq"]
            made[q] = (parse_ms(snap["snapshotTime"]) / 1000, len(r["body"]))
            if r["mode"] == "ok":
                first_ok[q] = min(first_ok.get(q, r["t"]), r["t"])

        def backlog_kib(t0, t1):
            """Most backlog bytes (KiB) held at any time in [t0, t1]."""
            best = 0
            for k in range(int(t1 - t0) + 1):
                t = t0 + k
                best = max(best, sum(n for q, (g, n) in made.items() if g <= t < first_ok.get(q, 1e18)))
            return best / 1024

        base = next((x for x in self.samples if x["s"] >= 60), None)
        if base:
            later = [x for x in self.samples if x["s"] >= base["s"]]
            peak = max(later, key=lambda x: x["rss"])
            end_hwm = self.samples[-1]["hwm"]
            over = [(x, backlog_kib(x["t"] - 60, x["t"])) for x in later if x["rss"] > base["hwm"] + 256]
            bad = [(x, b) for x, b in over if x["rss"] > base["hwm"] + 256 + b]
            ck("RSS <= first minute's peak + 256 KiB + REST backlog in use", not bad,
               f"VmHWM after 1 min {base['hwm']} KiB; later RSS peak {peak['rss']} KiB at {peak['s']:.0f} s; "
               f"{len(over)} samples above {base['hwm'] + 256} KiB, each explained by the backlog held in the "
               f"60 s before it (max {max((b for _, b in over), default=0):.0f} KiB) except {len(bad)}"
               + (f" (first at {bad[0][0]['s']:.0f} s: RSS {bad[0][0]['rss']}, backlog {bad[0][1]:.0f} KiB)" if bad else ""))
            last = self.samples[-1]
            ck("RSS at the end (backlog empty) <= first minute's peak + 256 KiB", last["rss"] <= base["hwm"] + 256,
               f"RSS at end {last['rss']} KiB, VmHWM at end {end_hwm} KiB")
        else:
            ck("RSS <= first minute's peak + 256 KiB", False, "no sample after the first minute")
        th = sorted({x["threads"] for x in self.samples})
        ck("threads constant (1)", th == [1], f"thread counts seen: {th}")
        fixed = sorted({tuple(sorted((k, v) for k, v in x["kinds"].items() if k not in ("tcp", "packet")))
                        for x in self.samples})
        tcp = max(x["kinds"].get("tcp", 0) for x in self.samples)
        pkt = sorted({x["kinds"].get("packet", 0) for x in self.samples})
        ck("fds constant (non-transient)", len(fixed) == 1 and tcp <= 2 and set(pkt) <= {0, 1},
           f"non-transient fd sets: {[dict(f) for f in fixed]}; TCP sockets max {tcp} (<= 2); "
           f"packet sockets seen {pkt}; total fds {min(x['fds'] for x in self.samples)}.."
           f"{max(x['fds'] for x in self.samples)}")

        recs = self.rest_records()
        by_seq = {}
        run_ids = set()
        bad_json = 0
        for r in recs:
            try:
                s = json.loads(r["body"])
            except ValueError:
                bad_json += 1
                continue
            run_ids.add(s["agent"]["runId"])
            by_seq.setdefault((s["agent"]["runId"], s["agent"]["seq"]), []).append(r)
        ck("one runId", len(run_ids) == 1, f"runIds: {sorted(run_ids)}")
        if final:
            last = final["agent"]["seq"]
            rid = final["agent"]["runId"]
            first = min(seq for (_, seq) in by_seq) if by_seq else 0
            missing = [q for q in range(first, last + 1) if not any(r["mode"] == "ok" for r in by_seq.get((rid, q), []))]
            differ = [k for k, v in by_seq.items() if len({r["body"] for r in v}) > 1]
            copies = sum(len(v) for v in by_seq.values())
            oks = sum(1 for v in by_seq.values() for r in v if r["mode"] == "ok")
            dup_ok = sum(1 for v in by_seq.values() if sum(r["mode"] == "ok" for r in v) > 1)
            ck("every seq delivered (exactly once or identical retries)",
               not missing and not differ and first == 0 and bad_json == 0 and final["agent"]["lost"] == 0,
               f"seq {first}..{last}: {last - first + 1} snapshots, {copies} POSTs logged, {oks} answered 200 "
               f"({dup_ok} seqs with more than one 200, all identical), missing {missing[:10]}, "
               f"differing copies {differ[:5]}, agent.lost {final['agent']['lost']}, unparsable {bad_json}")
            cap = final["agent"]["capture"]
            devs = {d["mac"]: d["bandwidth"] for d in final["network"]["connectedDevices"]}
            rows = []
            exact = True
            burst_frames = tx[self.steady_ns[0]][0] - sum(v[0] for v in states[0]["record"].values())
            burst_bytes = tx[self.steady_ns[0]][1] - sum(v[1] for v in states[0]["record"].values())
            for i, n in enumerate(self.steady_ns):
                mac = self.steady_macs[i]
                b = devs.get(mac, {})
                got_tx = (b.get("txPacketsTotal"), b.get("txBytesTotal"))
                rxp = sum(s["record"].get(mac, [0, 0])[0] for s in states)
                rxb = sum(s["record"].get(mac, [0, 0])[1] for s in states)
                if i == 1:
                    rxp, rxb = rxp + burst_frames, rxb + burst_bytes
                got_rx = (b.get("rxPacketsTotal"), b.get("rxBytesTotal"))
                exact &= got_tx == tx[n] and got_rx == (rxp, rxb)
                rows.append(f"{mac}: tx agent {got_tx} veth {tx[n]}; rx agent {got_rx} senders {(rxp, rxb)}")
            ck("steady clients exact (tx = veth, rx = senders' record)", exact and cap["packetsDropped"] == 0,
               "; ".join(rows) + f"; packetsDropped {cap['packetsDropped']}")
            admitted = sum(1 for m in devs if m.startswith("06:"))
            flood_tx = tx[self.flood_ns][0]
            others = cap["devicesEvicted"] - (flood_tx - admitted)
            ck("the flood evicts flood MACs (and at most the lab's few addressed-only or newcomer MACs)",
               0 <= others <= 8 and cap["deviceTableFull"] == 0 and flood_tx > 0,
               f"devicesEvicted {cap['devicesEvicted']} = flood frames {flood_tx} (veth; sender says "
               f"{sum(self.floods)}) - flood MACs in the table {admitted} + {others} other MACs; "
               f"deviceTableFull {cap['deviceTableFull']}; table {cap['devicesTracked']}/{cap['deviceTableCapacity']}")
        self.report(checks, final)
        return all(ok for _, ok, _ in checks)

    def report(self, checks, final):
        tsv = os.path.join(self.out, "samples.tsv")
        with open(tsv, "w") as f:
            f.write("# s\trss_kib\tcpu_pct\tfds\tthreads\n")
            for x in self.samples:
                f.write(f"{x['s']:.0f}\t{x['rss']}\t{x['cpu']:.2f}\t{x['fds']}\t{x['threads']}\n")
        png = os.path.join(self.out, "rss_cpu.png")
        gp = f"""set terminal png size 900,450
set output '{png}'
set title 'netmon-agent soak: RSS and CPU every 10 s'
set xlabel 'seconds since start'
set ylabel 'RSS KiB'
set y2label 'CPU %'
set ytics nomirror
set y2tics
set grid
plot '{tsv}' using 1:2 with linespoints title 'RSS (KiB)' axes x1y1, '{tsv}' using 1:3 with lines title 'CPU (%)' axes x1y2
"""
        if shutil.which("gnuplot"):
            subprocess.run(["gnuplot"], input=gp, text=True, check=False)
        wall = time.time() - self.t0
        lines = [f"# Soak report ({self.minutes} min, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(self.t0))})", "",
                 f"Agent: `{self.bin}` ({os.path.getsize(self.bin)} bytes), cycle {CYCLE} s; wall time {wall:.0f} s; "
                 f"machine: {machine()}.", "",
                 f"Faults: {self.recreations} br-lan re-creations, {self.reloads} SIGHUP reloads, "
                 f"{len(self.floods)} MAC floods ({sum(self.floods)} frames), {self.bursts} trafgen bursts of "
                 f"{self.burst_frames} at {self.burst_pps} pps; REST {self.rest_faults}; WebSocket {self.ws_faults}.", "",
                 "| check | result | detail |", "|---|---|---|"]
        for name, ok, detail in checks:
            lines.append(f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |")
        lines += ["", "![RSS and CPU](rss_cpu.png)", "", "| s | RSS KiB | CPU % | fds | threads | fds by kind |",
                  "|---|---|---|---|---|---|"]
        for x in self.samples:
            lines.append(f"| {x['s']:.0f} | {x['rss']} | {x['cpu']:.2f} | {x['fds']} | {x['threads']} | "
                         f"{' '.join(f'{k}:{v}' for k, v in sorted(x['kinds'].items()))} |")
        lines += ["", "Events:", ""] + [f"- {t:.0f} s: {e}" for t, e in self.events]
        with open(os.path.join(self.out, "report.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        for name, ok, detail in checks:
            print(f"{'PASS' if ok else 'FAIL'}: {name}: {detail}")
        print(f"report: {os.path.join(self.out, 'report.md')}, plot: {png}")

    def teardown(self):
        for name in list(self.procs):
            if name != "agent":
                self.stop_proc(name)
        a = self.procs.pop("agent", None)
        if a and a.poll() is None:
            a.terminate()
            try:
                a.wait(10)
            except subprocess.TimeoutExpired:
                a.kill()
                a.wait()
        for n in reversed(self.made):
            sh("ip", "netns", "del", n, check=False)
        shutil.rmtree(self.ctl, ignore_errors=True)


def parse_ms(ts):
    import calendar
    base, ms = ts.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(ms)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for l in f:
            if l.startswith("model name"):
                model = l.split(":", 1)[1].strip()
                break
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
    return f"{model}, {os.cpu_count()} CPUs, {mem} MiB RAM, Linux {os.uname().release}"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "steady":
        return steady(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        return flood(sys.argv[2:])
    if len(sys.argv) < 4 or sys.argv[1] != "run":
        print(__doc__.split("usage:")[1].strip(), file=sys.stderr)
        sys.exit(2)
    if os.geteuid() != 0:
        print("bench/soak.py: needs root (network namespaces)", file=sys.stderr)
        sys.exit(2)
    minutes = float(sys.argv[4]) if len(sys.argv) > 4 else float(os.environ.get("SOAK_MINUTES", "60"))
    soak = Soak(sys.argv[2], sys.argv[3], minutes)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    ok = False
    try:
        ok = soak.run()
    finally:
        soak.teardown()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
