#!/usr/bin/env python3
"""CPU per cycle of shipping over HTTPS, with and without HTTP keep-alive.

A CA and a certificate for localhost (openssl), tests/servers/rest_server.py speaking TLS with
--keep-alive on 127.0.0.1, and `netmon-agent run` posting to it every second (CYCLE_TIME=1,
capture on lo, no scan), once with HTTP_KEEPALIVE=1 and once with HTTP_KEEPALIVE=0. The
agent's CPU is read from /proc/PID/schedstat (ns on CPU) after the first POST and SECONDS later;
the server's log says how many POSTs arrived on how many connections (TLS handshakes).
For reference, the same agent without a platform (snapshots to stdout, /dev/null) gives the
cycle's own cost (sampling, capture, building the snapshot). Prints one markdown row per
variant: | variant | CPU per cycle | POSTs | connections |.

usage: bench/https_cost.py AGENT_BINARY [SECONDS]   (default 30)
"""
import json, os, socket, subprocess, sys, tempfile, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_ca(d):
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA"],
                 ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
                 ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                  "-out", "server.pem", "-days", "2", "-extfile", ext]):
        subprocess.run(["openssl", *argv], cwd=d, check=True, capture_output=True)


def cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def posts(log):
    try:
        recs = [json.loads(l) for l in open(log)]
    except FileNotFoundError:
        return []
    return [r for r in recs if r.get("method") == "POST"]


def variant(binary, d, keep, seconds):
    port = free_port()
    log = os.path.join(d, f"rest-{keep}.jsonl")
    srv = subprocess.Popen([sys.executable, os.path.join(REPO, "tests/servers/rest_server.py"), "--port", str(port),
                            "--log", log, "--mode", "ok", "--keep-alive", "--cert", os.path.join(d, "server.pem"),
                            "--key", os.path.join(d, "server.key")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    srv.stdout.readline()
    conf = os.path.join(d, f"agent-{keep}.conf")
    with open(conf, "w") as f:
        f.write(f"CYCLE_TIME=1\nHTTP_TIMEOUT=1\nINTERFACE=lo\nSCAN_INTERVAL=0\nPROMISC=0\nLOG_LEVEL=warn\n"
                f"PLATFORM_API_URL=https://localhost:{port}/api\nCA_FILE={d}/ca.pem\nHTTP_KEEPALIVE={keep}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    agent = subprocess.Popen([binary, "run", "--config", conf], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 15
        while not posts(log) and time.time() < end:
            time.sleep(0.05)
        n0, c0 = len(posts(log)), cpu_ns(agent.pid)
        time.sleep(seconds)
        got = posts(log)
        n1, c1 = len(got), cpu_ns(agent.pid)
        conns = len({r["conn"] for r in got[n0:]})
    finally:
        agent.terminate()
        agent.wait()
        srv.terminate()
        srv.wait()
    cycles = max(n1 - n0, 1)
    return (c1 - c0) / cycles / 1e6, n1 - n0, conns


def baseline(binary, d, seconds):
    conf = os.path.join(d, "agent-stdout.conf")
    with open(conf, "w") as f:
        f.write("CYCLE_TIME=1\nINTERFACE=lo\nSCAN_INTERVAL=0\nPROMISC=0\nLOG_LEVEL=warn\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    agent = subprocess.Popen([binary, "run", "--config", conf], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        agent.stdout.readline()
        c0, t0 = cpu_ns(agent.pid), time.time()
        n = 0
        while time.time() - t0 < seconds:
            agent.stdout.readline()
            n += 1
        c1 = cpu_ns(agent.pid)
    finally:
        agent.terminate()
        agent.wait()
    return (c1 - c0) / max(n, 1) / 1e6, n


def main():
    binary, seconds = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 30
    with tempfile.TemporaryDirectory(prefix="netmon-https-") as d:
        make_ca(d)
        ms, n = baseline(binary, d, seconds)
        print(f"| no platform (stdout), the cycle's own work | {ms:.2f} ms | 0 | 0 |")
        for keep in (1, 0):
            ms, n, conns = variant(binary, d, keep, seconds)
            name = "keep-alive (HTTP_KEEPALIVE=1)" if keep else "a connection per POST (HTTP_KEEPALIVE=0)"
            print(f"| {name} | {ms:.2f} ms | {n} | {conns} |")


if __name__ == "__main__":
    main()
