#!/usr/bin/env python3
"""The LuCI app on the real OpenWrt userland and LuCI (../shared/openwrt-lab), driven by a browser.

    lab_test.py --repo REPO --bin AGENT_BINARY --work DIR [--keep]

Builds the agent's .ipk/.apk (from AGENT_BINARY) and luci-app-netmon-agent's, boots the lab with
LuCI inside a router namespace (br-lan with a client sending traffic, a veth to a browser
namespace), installs both packages with opkg, points the agent at a REST server in the router
namespace, then runs luci_browser.py in the browser namespace (headless Chromium). Afterwards:
opkg remove leaves nothing behind, and the same with the .apk packages and apk-tools.
Screenshots land in DIR/shots. Exit 0 = every check passed. Needs root.
"""
import argparse, glob, json, os, shutil, signal, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--repo", required=True)
ap.add_argument("--bin", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--keep", action="store_true", help="leave the lab running (debugging)")
args = ap.parse_args()

REPO = os.path.abspath(args.repo)
LAB = os.path.join(REPO, "..", "shared", "openwrt-lab")
WORK = os.path.abspath(args.work)
W = os.path.join(WORK, "lab")                  # OWRT_LAB_WORK: reused between runs when built
DIST = os.path.join(WORK, "dist")
SHOTS = os.path.join(WORK, "shots")
PID = os.getpid()
NS_R, NS_C, NS_C2, NS_B = f"nmr{PID}", f"nmc{PID}", f"nmd{PID}", f"nmb{PID}"
CLIENT_MAC = "02:4e:4d:00:00:10"
CLIENT2_MAC = "02:4e:4d:00:00:11"
REST_PORTS = (18080, 18081)
ENV = dict(os.environ, OWRT_LAB_WORK=W)
T0 = time.time()
failures = []
procs = []


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def sh(cmd, check=True, env=None, quiet=False, **kw):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), env=env or ENV, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if check and r.returncode != 0:
        raise SystemExit(f"FAILED ({r.returncode}): {cmd}\n{r.stdout[-3000:]}")
    if not quiet and r.stdout.strip() and check is False:
        pass
    return r.stdout


def lab(cmd, check=True):
    return sh([os.path.join(LAB, "lab.sh"), "run", cmd], check=check)


def check(what, ok, detail=""):
    log(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(what)


def wait_for(what, timeout, fn):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.3)
    check(what, False, f"not within {timeout} s")
    return None


# ---------- packages ----------
def build_packages():
    os.makedirs(DIST, exist_ok=True)
    for f in glob.glob(os.path.join(DIST, "*")):
        os.remove(f)
    env = dict(ENV, MKPKG_ANY_BINARY="1")
    # apk-tools v3 is the lab's (build.sh)
    env["APK"] = f"env LD_LIBRARY_PATH={W}/stage/usr/lib {W}/stage/usr/bin/apk"
    # the test build carries debug info (tens of MB): package a stripped copy
    binary = os.path.join(WORK, "netmon-agent")
    sh(["objcopy", "--strip-all", args.bin, binary])
    mkpkg = os.path.join(REPO, "openwrt/mkpkg.sh")
    for kind in ("ipk", "apk"):
        log(sh([mkpkg, kind, "x86_64", binary, DIST], env=dict(env, PKG="netmon-agent")).strip())
        log(sh([mkpkg, kind, "all", "-", DIST], env=dict(env, PKG="luci-app-netmon-agent")).strip())


# ---------- the lab ----------
def build_lab():
    stamp = os.path.join(W, "luci-app-test.stamp")
    if os.path.exists(stamp) and os.path.isdir(os.path.join(W, "rootfs", "www")):
        log("lab: reusing the built rootfs in " + W)
        return
    shutil.rmtree(W, ignore_errors=True)
    os.makedirs(W)
    # build.sh's userland is shared with tests/openwrt.rs and `make apk` (target/owrt-lab, built
    # once, under the same lock); build-luci.sh adds to a stage, so it works on a copy.
    cache = os.path.join(REPO, "target", "owrt-lab")
    os.makedirs(cache, exist_ok=True)
    sh(["flock", cache + ".lock", os.path.join(LAB, "build.sh")], env=dict(ENV, OWRT_LAB_WORK=cache))
    shutil.copytree(os.path.join(cache, "stage"), os.path.join(W, "stage"), symlinks=True)
    os.makedirs(os.path.join(cache, "debs"), exist_ok=True)
    os.symlink(os.path.join(cache, "debs"), os.path.join(W, "debs"))
    log("lab: build.sh done (target/owrt-lab)")
    for step in ("build-luci.sh", "mkrootfs.sh", "mkrootfs-luci.sh"):
        # mkrootfs.sh may download busybox into the shared debs/: under the lock too
        sh((["flock", cache + ".lock"] if step == "mkrootfs.sh" else []) + [os.path.join(LAB, step)])
        log("lab: " + step + " done")
    root = os.path.join(W, "rootfs")
    # The test build of the agent is a glibc binary: it needs libgcc_s, which the lab lacks.
    libgcc = subprocess.run("ldd " + args.bin + " | awk '/libgcc_s/{print $3}'", shell=True,
                            text=True, stdout=subprocess.PIPE).stdout.strip()
    if libgcc:
        dst = root + libgcc
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(libgcc, dst)
    # LuCI went in by copying (mkrootfs-luci.sh): list it as installed, as an image does, so the
    # app's Depends resolve for opkg and apk.
    with open(os.path.join(root, "usr/lib/opkg/status"), "a") as f:
        for p in ("luci-base", "rpcd", "uhttpd"):
            f.write(f"Package: {p}\nVersion: 1\nStatus: install user installed\n"
                    f"Architecture: {'all' if p == 'luci-base' else 'x86_64'}\nInstalled-Time: 1700000000\n\n")
    apk_env = dict(ENV, LD_LIBRARY_PATH=f"{W}/stage/usr/lib")
    for p in ("luci-base", "rpcd", "uhttpd"):
        sh([f"{W}/stage/usr/bin/apk", "--root", root, "--no-network", "--no-cache", "add", "--virtual", p],
           env=apk_env)
    open(stamp, "w").close()


def net_up():
    cmds = f"""
    ip netns add {NS_R}; ip netns add {NS_C}; ip netns add {NS_C2}; ip netns add {NS_B}
    ip -n {NS_R} link add br-lan type bridge
    ip -n {NS_R} addr add 192.168.77.1/24 dev br-lan
    ip -n {NS_R} link set br-lan up; ip -n {NS_R} link set lo up
    ip link add lan1 netns {NS_R} type veth peer name eth0 netns {NS_C}
    ip -n {NS_R} link set lan1 master br-lan; ip -n {NS_R} link set lan1 up
    ip -n {NS_C} link set eth0 address {CLIENT_MAC}
    ip -n {NS_C} addr add 192.168.77.10/24 dev eth0; ip -n {NS_C} link set eth0 up; ip -n {NS_C} link set lo up
    ip link add lan2 netns {NS_R} type veth peer name eth0 netns {NS_C2}
    ip -n {NS_R} link set lan2 master br-lan; ip -n {NS_R} link set lan2 up
    ip -n {NS_C2} link set eth0 address {CLIENT2_MAC}
    ip -n {NS_C2} addr add 192.168.77.11/24 dev eth0; ip -n {NS_C2} link set eth0 up; ip -n {NS_C2} link set lo up
    ip link add mgmt0 netns {NS_R} type veth peer name mgmt1 netns {NS_B}
    ip -n {NS_R} addr add 10.77.0.1/24 dev mgmt0; ip -n {NS_R} link set mgmt0 up
    ip -n {NS_B} addr add 10.77.0.2/24 dev mgmt1; ip -n {NS_B} link set mgmt1 up; ip -n {NS_B} link set lo up
    """
    for c in cmds.strip().splitlines():
        for part in c.split(";"):
            if part.strip():
                sh(part.strip())


def net_down():
    for n in (NS_C, NS_C2, NS_B, NS_R):
        subprocess.run(["ip", "netns", "del", n], stderr=subprocess.DEVNULL)


def start(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    return p


def rest_server(port):
    logf = os.path.join(WORK, f"rest-{port}.jsonl")
    if os.path.exists(logf):
        os.remove(logf)
    p = start(["ip", "netns", "exec", NS_R, "python3", os.path.join(REPO, "tests/servers/rest_server.py"),
               "--port", str(port), "--log", logf, "--mode", "ok"])
    assert p.stdout.readline().strip() == "READY", "rest_server.py did not start"
    return logf


TRAFFIC = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
size, pause = int(sys.argv[1]), float(sys.argv[2])
while True:
    s.sendto(b"x" * size, ("192.168.77.1", 9))
    time.sleep(pause)
"""

NETWORK_CONFIG = """
config interface 'loopback'
	option device 'lo'
	option proto 'static'
	option ipaddr '127.0.0.1'
	option netmask '255.0.0.0'

config device
	option name 'br-lan'
	option type 'bridge'
	list ports 'lan1'
	list ports 'lan2'

config interface 'lan'
	option device 'br-lan'
	option proto 'static'
	option ipaddr '192.168.77.1'
	option netmask '255.255.255.0'
"""

# A LuCI login without this app's ACL (rpcd's login config, password from /etc/shadow).
VIEWER = """
config login
	option username 'viewer'
	option password '$p$viewer'
	list read 'luci-base'
	list read 'luci-mod-status-index'
	list write 'luci-base'
"""


def agent_pid():
    out = lab("ubus call service list '{\"name\":\"netmon-agent\"}' | jsonfilter -e '@[\"netmon-agent\"].instances.*.pid'", check=False)
    return out.strip().split("\n")[0] if out.strip() else None


def app_files_present():
    return lab("find /www/luci-static/resources/view/netmon-agent /usr/share/rpcd/acl.d/luci-app-netmon-agent.json "
               "/usr/share/luci/menu.d/luci-app-netmon-agent.json -type f 2>/dev/null | wc -l", check=False).strip()


def browser(*extra):
    r = subprocess.run(["ip", "netns", "exec", NS_B, "/usr/bin/python3", os.path.join(REPO, "tests/luci/luci_browser.py"),
                        "--base", "http://10.77.0.1", "--lab", os.path.join(LAB, "lab.sh"), "--work", WORK,
                        "--client-mac", CLIENT_MAC, "--shots", SHOTS] + list(extra),
                       env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in r.stdout.splitlines():
        print("    browser: " + line, flush=True)
    check("browser checks (" + " ".join(extra or ["full"]) + ")", r.returncode == 0, f"exit {r.returncode}")


def main():
    os.makedirs(WORK, exist_ok=True)
    shutil.rmtree(SHOTS, ignore_errors=True)
    os.makedirs(SHOTS)
    build_lab()
    build_packages()
    log("lab built, packages: " + ", ".join(sorted(os.listdir(DIST))))
    net_up()
    env = dict(ENV, LAB_NETNS=NS_R, LAB_MOUNT=DIST)
    sh([os.path.join(LAB, "lab.sh"), "boot"], env=env)
    log("lab booted in " + NS_R)
    lab("cat > /etc/config/network <<'EOF'\n" + NETWORK_CONFIG + "EOF")
    # a second LuCI user, without this app's ACL
    h = sh(["openssl", "passwd", "-5", "-salt", "viewerlab", "viewer-lab"]).strip()
    lab("echo 'viewer:x:1001:1001:viewer:/var:/bin/false' >> /etc/passwd; "
        f"echo 'viewer:{h}:19000:0:99999:7:::' >> /etc/shadow")
    lab("cat >> /etc/config/rpcd <<'EOF'\n" + VIEWER + "EOF\n/etc/init.d/rpcd restart")

    rest_a, rest_b = rest_server(REST_PORTS[0]), rest_server(REST_PORTS[1])
    # the clients talk to the router all the time (UDP to the discard port; the router's ICMP
    # answers come back): their counters move every cycle
    start(["ip", "netns", "exec", NS_C, "python3", "-c", TRAFFIC, "300", "0.1"])
    start(["ip", "netns", "exec", NS_C2, "python3", "-c", TRAFFIC, "100", "0.2"])

    # ---- opkg: install, configure the way an owner does, check it runs
    out = lab("opkg install /lab/netmon-agent_*_x86_64.ipk /lab/luci-app-netmon-agent_*_all.ipk 2>&1")
    log("opkg install:\n" + out.strip())
    check("opkg installed both", "luci-app-netmon-agent" in lab("opkg list-installed") and
          "netmon-agent" in lab("opkg list-installed"), lab("opkg list-installed"))
    # reload_config only signals configs it has a checksum of: take them now (the package's
    # config is new), as it would have been taken at an earlier change
    lab("reload_config")
    lab(f"uci set netmon-agent.main.api_url='http://127.0.0.1:{REST_PORTS[0]}/api/monitor'; "
        "uci set netmon-agent.main.cycle_time=2; uci set netmon-agent.main.scan_interval=0; "
        "uci set netmon-agent.main.api_key='lab-secret-key-4711'; "
        "uci commit netmon-agent; reload_config")
    wait_for("the agent runs and writes its status file", 20,
             lambda: lab("test -s /var/run/netmon-agent/status.json && echo yes", check=False).strip() == "yes")
    wait_for("snapshots reach the REST server", 20, lambda: os.path.exists(rest_a) and os.path.getsize(rest_a) > 0)
    st = lab("cat /var/run/netmon-agent/status.json", check=False)
    check("the status file holds no API key", "lab-secret-key-4711" not in st, "key found")
    mode = lab("ls -ld /var/run/netmon-agent /var/run/netmon-agent/status.json", check=False)
    check("status directory 0700 and file 0600, the agent's user", "drwx------" in mode and "-rw-------" in mode
          and "netmon" in mode, mode)

    if args.keep:
        log(f"--keep: lab up (LAB_NETNS={NS_R}, browser namespace {NS_B}); Ctrl-C to end")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        return

    browser()

    # ---- opkg remove: nothing of the app is left, the agent stops
    lab("opkg remove luci-app-netmon-agent 2>&1")
    check("opkg remove luci-app: its files are gone", app_files_present() == "0", app_files_present())
    lab("opkg remove netmon-agent 2>&1")
    wait_for("opkg remove netmon-agent stops it", 10, lambda: agent_pid() is None)
    check("no package left (opkg)", "netmon" not in lab("opkg list-installed"), lab("opkg list-installed"))

    # ---- the same packages as .apk (OpenWrt 25.12)
    out = lab("apk add --allow-untrusted --no-network /lab/netmon-agent-*.apk /lab/luci-app-netmon-agent-*.apk 2>&1")
    log("apk add:\n" + out.strip())
    check("apk installed both", "luci-app-netmon-agent" in lab("apk info 2>/dev/null"), lab("apk info 2>&1"))
    check("apk: the app's files are in place", app_files_present() == "4", app_files_present())
    lab(f"uci set netmon-agent.main.api_url='http://127.0.0.1:{REST_PORTS[0]}/api/monitor'; "
        "uci set netmon-agent.main.cycle_time=2; uci set netmon-agent.main.local_only=0; "
        "uci commit netmon-agent; reload_config; "
        "/etc/init.d/netmon-agent restart")
    wait_for("apk: the agent writes its status file", 20,
             lambda: lab("test -s /var/run/netmon-agent/status.json && echo yes", check=False).strip() == "yes")
    browser("--quick")
    lab("apk del luci-app-netmon-agent netmon-agent 2>&1")
    check("apk del: the app's files are gone", app_files_present() == "0", app_files_present())
    wait_for("apk del stops the agent", 10, lambda: agent_pid() is None)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
try:
    main()
except SystemExit as e:
    if e.code not in (0, None):
        print(e.code, flush=True)
        failures.append("setup")
finally:
    if not args.keep or failures:
        subprocess.run([os.path.join(LAB, "lab.sh"), "stop"], env=ENV, stdout=subprocess.DEVNULL)
    for p in procs:
        p.kill()
    net_down()
    log(f"done: {len(failures)} failure(s)" + (": " + "; ".join(failures) if failures else ""))
sys.exit(1 if failures else 0)
