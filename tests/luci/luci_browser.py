#!/usr/bin/env python3
"""Browser half of the LuCI lab test (run by lab_test.py inside the browser namespace).

    luci_browser.py --base URL --lab LAB_SH --work DIR --client-mac MAC --shots DIR [--quick]

Headless Chromium through selenium and Debian's chromedriver. Logs in through LuCI's form and:
- Status -> Network monitor: the client's row shows the byte counts of the snapshot the agent
  shipped with the same runId/seq (read from the REST server's log, not from the page), and
  the next snapshot replaces them without a page load;
- Services -> Network monitor: a new cycle and REST URL, Save & Apply; UCI has them and the
  running agent is a new process that ships to the new URL at the new cycle;
- a LuCI user without the app's ACL sees no menu entry, gets no view and rpcd refuses the file.
--quick: only log in and check the status view against the shipped snapshot.
Exit 0 when every check passed.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time, urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ap = argparse.ArgumentParser()
ap.add_argument("--base", required=True)
ap.add_argument("--lab", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--client-mac", required=True)
ap.add_argument("--shots", required=True)
ap.add_argument("--quick", action="store_true")
args = ap.parse_args()
BASE = args.base.rstrip("/")
MAC = args.client_mac.lower()
T0 = time.time()
failures = []
PREFIX = "apk-" if args.quick else ""


def log(msg):
    print(f"[{time.time() - T0:5.1f}s] {msg}", flush=True)


def check(what, ok, detail=""):
    log(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(what)
    return ok


def lab(cmd):
    return subprocess.run([args.lab, "run", cmd], text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT).stdout


def shipped(port):
    """Snapshots the REST server on `port` received, by (runId, seq)."""
    out = {}
    path = os.path.join(args.work, f"rest-{port}.jsonl")
    if not os.path.exists(path):
        return out
    for line in open(path):
        try:
            snap = json.loads(json.loads(line)["body"])
            out[(snap["agent"]["runId"], snap["agent"]["seq"])] = snap
        except (ValueError, KeyError):
            pass
    return out


def device_in(snap, mac):
    for d in snap["network"]["connectedDevices"]:
        if d["mac"].lower() == mac:
            return d
    return None


def new_driver():
    o = webdriver.ChromeOptions()
    prof = tempfile.mkdtemp(prefix="netmon-luci-chrome-")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              "--window-size=1280,1000", "--user-data-dir=" + prof):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=o)
    d._profile = prof
    d.set_page_load_timeout(20)
    return d


def login(d, user, pw, path="/cgi-bin/luci/"):
    d.get(BASE + path)
    w = WebDriverWait(d, 30)
    w.until(EC.visibility_of_element_located((By.NAME, "luci_password")))
    d.find_element(By.NAME, "luci_username").clear()
    d.find_element(By.NAME, "luci_username").send_keys(user)
    d.find_element(By.NAME, "luci_password").send_keys(pw)
    d.find_element(By.CSS_SELECTOR, "button.btn.cbi-button-positive, input[type=submit], button[type=submit]").click()
    w.until(lambda d: "sysauth" in " ".join(c["name"] for c in d.get_cookies()))


def shot(d, name):
    time.sleep(0.3)
    d.save_screenshot(os.path.join(args.shots, PREFIX + name + ".png"))


# One script run reads the snapshot's number, the state and the rows together: the page
# refreshes between two selenium calls, never inside one script.
READ_PAGE = """
var el = document.getElementById('netmon-snapshot');
if (!el) return null;
var heads = [].map.call(document.querySelectorAll('#netmon-devices tr.table-titles th'),
                        function(h) { return h.innerText.trim(); });
var rows = [].map.call(document.querySelectorAll('#netmon-devices tr.tr:not(.table-titles)'), function(tr) {
    var row = {};
    [].forEach.call(tr.querySelectorAll('td'), function(td, i) {
        if (i < heads.length) row[heads[i]] = [td.innerText.trim(), td.getAttribute('data-value')];
    });
    return row;
});
return { run: el.getAttribute('data-run-id'), seq: +el.getAttribute('data-seq'),
         state: document.getElementById('netmon-state').innerText, rows: rows };
"""


def page_snapshot(d):
    """(runId, seq) the page shows and the client's row: {column title: (text, data-value)}."""
    page = d.execute_script(READ_PAGE)
    if not page:
        return None, None
    d._state = page["state"]
    for row in page["rows"]:
        if row.get("MAC", [""])[0].lower() == MAC:
            return (page["run"], page["seq"]), row
    return (page["run"], page["seq"]), None


def compare(d, key, row):
    """The page's row equals the client in the snapshot the REST server got with the same key."""
    snap = shipped(18080).get(key) or shipped(18081).get(key)
    if not check(f"snapshot {key[1]} on the page was shipped to the platform", snap is not None,
                 f"server has {sorted(s for _, s in shipped(18080))[-5:]}"):
        return False
    dev = device_in(snap, MAC)
    if not check("the shipped snapshot has the client", dev is not None, "client missing"):
        return False
    bw = dev["bandwidth"]
    got = {k: int(row[k][1]) for k in ("RX total", "TX total", "RX rate", "TX rate")}
    want = {"RX total": bw["rxBytesTotal"], "TX total": bw["txBytesTotal"],
            "RX rate": bw["rxRateBps"], "TX rate": bw["txRateBps"]}
    return check(f"client row = shipped snapshot {key[1]} ({got})", got == want, f"page {got} vs shipped {want}")


def status_view(d):
    try:
        if not d.find_elements(By.ID, "netmon-status"):  # the login may have landed there
            d.get(BASE + "/cgi-bin/luci/admin/status/netmon-agent")
        WebDriverWait(d, 20).until(EC.presence_of_element_located((By.ID, "netmon-status")))
    except Exception:
        # The lab's uhttpd now and then leaves a page request hanging until its script timeout
        # (then 502); seen only right after packages were swapped. Say so, load it once more.
        errs = [l["message"][:200] for l in d.get_log("browser") if l["level"] == "SEVERE"]
        log(f"status view did not load ({errs}); loading it again")
        shot(d, "98-status-first-load")
        d.get(BASE + "/cgi-bin/luci/admin/status/netmon-agent")
        WebDriverWait(d, 30).until(EC.presence_of_element_located((By.ID, "netmon-status")))
    key, row = None, None
    end = time.time() + 20
    while time.time() < end and row is None:
        key, row = page_snapshot(d)
        time.sleep(0.3)
    if not check("status view shows the client's MAC", row is not None, f"snapshot {key}"):
        shot(d, "99-status-failure")
        return
    time.sleep(1.5)  # the chart and the legend draw; the shot shows a few points
    shot(d, "02-status")
    d.execute_script("document.getElementById('netmon-chart').scrollIntoView()")
    shot(d, "02-status-chart")
    d.execute_script("document.getElementById('netmon-devices').scrollIntoView()")
    shot(d, "02-status-devices")
    d.execute_script("window.scrollTo(0, 0)")
    compare(d, key, row)
    end = time.time() + 10  # the first snapshot is written before its own delivery
    while time.time() < end and "delivered" not in d._state:
        time.sleep(0.5)
        page_snapshot(d)
    state = d._state
    check("state: running, capturing on br-lan, delivered", "yes (pid" in state and "br-lan" in state
          and "delivered" in state, state)
    check("the chart has the interface and the client", len(d.find_elements(By.CSS_SELECTOR, "#netmon-chart [data-series]")) >= 3,
          d.find_element(By.ID, "netmon-legend").text)
    # the next cycle replaces the numbers without a page load
    d.execute_script("window.__netmonNoReload = 1")
    end = time.time() + 15
    key2, row2 = key, row
    while time.time() < end and key2 == key:
        time.sleep(0.3)
        key2, row2 = page_snapshot(d)
    check("the next snapshot replaced it", key2 != key and row2 is not None, f"still {key}")
    check("without a page load", d.execute_script("return window.__netmonNoReload") == 1, "the page reloaded")
    if row2 is not None:
        compare(d, key2, row2)
        check("the client's counters moved", int(row2["TX total"][1]) > int(row["TX total"][1]),
              f"{row['TX total']} -> {row2['TX total']}")
    # sortable: a click on "TX total" orders the rows by it
    th = [h for h in d.find_elements(By.CSS_SELECTOR, "#netmon-devices tr.table-titles th") if h.text.strip() == "TX total"]
    if check("the device table has a sortable TX total column", th and th[0].get_attribute("data-sortable-row") == "true"):
        th[0].click()
        th[0].click()
        time.sleep(0.3)
        idx = [h.text.strip() for h in d.find_elements(By.CSS_SELECTOR, "#netmon-devices tr.table-titles th")].index("TX total")
        vals = [int(tr.find_elements(By.CSS_SELECTOR, "td")[idx].get_attribute("data-value"))
                for tr in d.find_elements(By.CSS_SELECTOR, "#netmon-devices tr.tr:not(.table-titles)")]
        check(f"sorted by TX total, descending ({vals})", vals == sorted(vals, reverse=True) and len(vals) >= 2, vals)


def settings_view(d):
    before_pid = lab("pidof netmon-agent").strip()
    d.get(BASE + "/cgi-bin/luci/admin/services/netmon-agent")
    w = WebDriverWait(d, 30)
    w.until(EC.presence_of_element_located((By.ID, "widget.cbid.netmon-agent.main.cycle_time")))
    time.sleep(0.5)
    shot(d, "03-settings")
    key_field = d.find_element(By.ID, "widget.cbid.netmon-agent.main.api_key")
    check("the API key is not shown back", key_field.get_attribute("value") == "" and
          key_field.get_attribute("type") == "password", key_field.get_attribute("value"))
    src = d.page_source
    check("the page source holds no API key", "lab-secret-key-4711" not in src, "key in the DOM")
    # a bad value is refused in the form, with the agent's rule
    cyc = d.find_element(By.ID, "widget.cbid.netmon-agent.main.cycle_time")
    cyc.clear()
    cyc.send_keys("0")
    time.sleep(0.3)
    check("cycle 0 is refused in the form", "cbi-input-invalid" in (cyc.get_attribute("class") or ""), cyc.get_attribute("class"))
    url = d.find_element(By.ID, "widget.cbid.netmon-agent.main.api_url")
    url.clear()
    url.send_keys("ftp://127.0.0.1/x")
    time.sleep(0.3)
    check("an ftp:// REST URL is refused in the form", "cbi-input-invalid" in (url.get_attribute("class") or ""), url.get_attribute("class"))
    shot(d, "04-settings-invalid")
    cyc.clear()
    cyc.send_keys("3")
    url.clear()
    url.send_keys("http://127.0.0.1:18081/api/v2")
    time.sleep(0.3)
    d.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    d.find_element(By.XPATH, "//*[contains(@class,'cbi-page-actions')]//*[text()='Save & Apply']").click()
    # LuCI applies with rollback and confirms by itself; wait for the confirmation to finish
    w = WebDriverWait(d, 60)
    ok = False
    end = time.time() + 60
    while time.time() < end:
        uci = lab("uci -q get netmon-agent.main.cycle_time; uci -q get netmon-agent.main.api_url; uci changes netmon-agent")
        if uci.split() == ["3", "http://127.0.0.1:18081/api/v2"]:
            ok = True
            break
        time.sleep(0.5)
    check("Save & Apply: UCI has the new cycle and URL, nothing left uncommitted", ok, uci)
    end = time.time() + 30
    while time.time() < end and "Applying configuration changes" in d.page_source:
        time.sleep(0.5)
    check("LuCI confirmed the apply", "Applying configuration changes" not in d.page_source, "still applying")
    shot(d, "05-settings-applied")
    # the running agent took them: a new process, shipping to the new URL every 3 s
    new = None
    end = time.time() + 30
    while time.time() < end:
        new = [s for (run, seq), s in sorted(shipped(18081).items(), key=lambda kv: kv[1]["snapshotTime"])]
        if len(new) >= 3:
            break
        time.sleep(0.5)
    after_pid = lab("pidof netmon-agent").strip()
    # cycle and URLs are applied in place (procd's reload_signal HUP), a restart-only option
    # restarts it: either way the same service keeps running
    log(f"agent pid {before_pid} -> {after_pid}")
    check("the agent runs after the apply", after_pid != "", "not running")
    if check("snapshots reach the new URL", new is not None and len(new) >= 3, f"{len(new or [])} snapshots"):
        paths = set()
        for line in open(os.path.join(args.work, "rest-18081.jsonl")):
            paths.add(json.loads(line)["path"])
        check("posted to /api/v2", paths == {"/api/v2"}, paths)
        t = [time.mktime(time.strptime(s["snapshotTime"][:19], "%Y-%m-%dT%H:%M:%S")) for s in new[-3:]]
        gaps = [b - a for a, b in zip(t, t[1:])]
        check(f"every 3 s ({gaps})", all(2 <= g <= 4 for g in gaps), gaps)
    conf = lab("grep -E '^(CYCLE_TIME|PLATFORM_API_URL)=' /var/run/netmon-agent/agent.conf")
    check("the agent's generated config has them", 'CYCLE_TIME="3"' in conf and "18081/api/v2" in conf, conf)


def apply_and_wait(d, want_uci, what):
    d.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    d.find_element(By.XPATH, "//*[contains(@class,'cbi-page-actions')]//*[text()='Save & Apply']").click()
    end = time.time() + 60
    uci = ""
    while time.time() < end:
        uci = lab(want_uci[0])
        if uci.split() == want_uci[1]:
            break
        time.sleep(0.5)
    check(what, uci.split() == want_uci[1], uci)
    end = time.time() + 30
    while time.time() < end and "Applying configuration changes" in d.page_source:
        time.sleep(0.5)


def local_use(d):
    """The settings' local-use switch: the agent keeps running for the page, ships nothing."""
    d.get(BASE + "/cgi-bin/luci/admin/services/netmon-agent")
    WebDriverWait(d, 30).until(EC.presence_of_element_located((By.ID, "widget.cbid.netmon-agent.main.cycle_time")))
    box = d.find_element(By.CSS_SELECTOR, '.cbi-value[data-name="local_only"] input[type=checkbox]')
    d.execute_script("arguments[0].click()", box)
    time.sleep(0.3)
    url = d.find_elements(By.CSS_SELECTOR, '.cbi-value[data-name="api_url"]')
    check("local use hides the platform settings", not url or not url[0].is_displayed(), "REST URL still shown")
    apply_and_wait(d, ("uci -q get netmon-agent.main.local_only; uci -q get netmon-agent.main.api_url; uci changes netmon-agent",
                       ["1", "http://127.0.0.1:18081/api/v2"]),
                   "Save & Apply: local_only=1, the URL kept in UCI")
    end = time.time() + 20
    st = {}
    while time.time() < end:
        try:
            st = json.loads(lab("cat /var/run/netmon-agent/status.json"))["status"]
        except ValueError:
            st = {}
        if st.get("output") == "local":
            break
        time.sleep(0.5)
    check("the running agent ships nothing (its state says local)", st.get("output") == "local", st)
    before = len(shipped(18081))
    d.get(BASE + "/cgi-bin/luci/admin/status/netmon-agent")
    WebDriverWait(d, 30).until(EC.presence_of_element_located((By.ID, "netmon-local")))
    time.sleep(7)  # two cycles of 3 s
    shot(d, "06-status-local-use")
    text = d.find_element(By.ID, "netmon-status").text
    check("the status page says nothing is sent", "Nothing is sent anywhere" in text and "this page only" in text, text[:300])
    key, row = page_snapshot(d)
    check("the page still shows the client", row is not None, key)
    check("no snapshot reached the platform since", len(shipped(18081)) == before, f"{before} -> {len(shipped(18081))}")


def rpc(sid, obj, method, params):
    req = {"jsonrpc": "2.0", "id": 1, "method": "call", "params": [sid, obj, method, params]}
    r = urllib.request.urlopen(urllib.request.Request(BASE + "/ubus", json.dumps(req).encode(),
                                                      {"Content-Type": "application/json"}), timeout=10)
    return json.loads(r.read())


def no_acl_user(d):
    login(d, "viewer", "viewer-lab")
    time.sleep(1)
    shot(d, "07-viewer-menu")
    menu = d.find_element(By.CSS_SELECTOR, "body").get_attribute("innerHTML")
    check("the user without the app's ACL is logged in", "Logout" in menu, "no Logout link")
    check("a user without the app's ACL has no menu entry", "netmon-agent" not in menu, "menu links to the app")
    d.get(BASE + "/cgi-bin/luci/admin/status/netmon-agent")
    time.sleep(2)
    shot(d, "08-viewer-status")
    check("... and no status view", not d.find_elements(By.ID, "netmon-status"), "view rendered")
    res = rpc("00000000000000000000000000000000", "session", "login", {"username": "viewer", "password": "viewer-lab"})
    sid = res["result"][1]["ubus_rpc_session"]
    got = rpc(sid, "file", "read", {"path": "/var/run/netmon-agent/status.json"})
    # denied by uhttpd's ubus ACL check (-32002) or by rpcd's file ACL (status 6)
    check("... and rpcd refuses the status file (access denied)", got.get("error", {}).get("code") == -32002 or
          (got.get("result") or [None])[0] == 6, got)
    got = rpc(sid, "uci", "get", {"config": "netmon-agent"})
    check("... and the agent's UCI config", got.get("error", {}).get("code") == -32002 or
          (got.get("result") or [None])[0] == 6, got)
    res = rpc("00000000000000000000000000000000", "session", "login", {"username": "root", "password": "luci-lab"})
    sid = res["result"][1]["ubus_rpc_session"]
    got = rpc(sid, "file", "read", {"path": "/var/run/netmon-agent/status.json"})
    check("root's session reads it (the ACL grants it)", (got.get("result") or [1])[0] == 0, str(got)[:200])


d = new_driver()
try:
    # straight to the app's page (LuCI's overview, the default after a login, calls many
    # backends the lab does not have)
    login(d, "root", "luci-lab", "/cgi-bin/luci/admin/status/netmon-agent")
    log("logged in as root")
    status_view(d)
    if not args.quick:
        settings_view(d)
        local_use(d)
        d.delete_all_cookies()
        no_acl_user(d)
except Exception as e:  # a selenium timeout or a missing element: a failure with a screenshot
    check("browser run", False, repr(e)[:800])
    shot(d, "99-failure")
finally:
    for l in d.get_log("browser"):
        if l["level"] in ("SEVERE", "WARNING") and "netmon" in l["message"]:
            log("console: " + l["message"][:300])
    d.quit()
    shutil.rmtree(d._profile, ignore_errors=True)
log(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
