//! `netmon-agent replay` from outside, against tshark: for every Ethernet capture in
//! ../shared/pcaps, and for captures the tests write themselves with pcap-file, the per-MAC
//! rx/tx bytes and packets equal `tshark -n` over the outermost Ethernet header (what
//! `-z endpoints,eth` reports without tunnelled inner headers; see ../shared/pcaps/oracle.sh).
//! tshark runs when installed; otherwise the `.eth_outer.tsv` oracle files are read; in CI
//! (CI=true) having neither is a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use crate::common::*;

/// tx bytes, tx packets, rx bytes, rx packets.
type Counts = BTreeMap<String, [u64; 4]>;

fn tshark_installed() -> bool {
    Command::new("tshark")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Per unicast MAC, from tshark run now: outermost Ethernet header only (frames whose first
/// protocol is eth), a frame with src == dst counted both ways, like oracle.sh.
fn tshark_counts(file: &Path) -> Counts {
    let o = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=f",
            "-e",
            "frame.len",
            "-e",
            "frame.protocols",
            "-e",
            "eth.src",
            "-e",
            "eth.dst",
        ])
        .output()
        .expect("run tshark");
    let mut c = Counts::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let p: Vec<&str> = line.split('|').collect();
        if p.len() < 4 || !p[1].starts_with("eth") || p[2].is_empty() || p[3].is_empty() {
            continue;
        }
        let len: u64 = p[0].parse().unwrap_or(0);
        let tx = c.entry(p[2].to_owned()).or_default();
        tx[0] += len;
        tx[1] += 1;
        let rx = c.entry(p[3].to_owned()).or_default();
        rx[2] += len;
        rx[3] += 1;
    }
    unicast(c)
}

/// The same from the oracle file made by oracle.sh.
fn oracle_counts(file: &Path) -> Option<Counts> {
    let text = std::fs::read_to_string(format!("{}.eth_outer.tsv", file.display())).ok()?;
    let mut c = Counts::new();
    for line in text.lines().skip(1) {
        let p: Vec<&str> = line.split('\t').collect();
        let n = |i: usize| p[i].parse::<u64>().unwrap();
        c.insert(p[0].to_owned(), [n(4), n(3), n(6), n(5)]);
    }
    Some(unicast(c))
}

fn unicast(c: Counts) -> Counts {
    c.into_iter()
        .filter(|(mac, _)| u8::from_str_radix(&mac[..2], 16).unwrap() & 1 == 0)
        .collect()
}

/// The reference for `file`, or None (with a printed reason) when there is none outside CI.
fn reference(file: &Path) -> Option<Counts> {
    if tshark_installed() {
        let c = tshark_counts(file);
        // The oracle files (the fallback) must say the same as the tshark installed here.
        if let Some(o) = oracle_counts(file) {
            assert_eq!(o, c, "{}: oracle file and tshark disagree", file.display());
        }
        return Some(c);
    }
    if let Some(c) = oracle_counts(file) {
        return Some(c);
    }
    assert!(
        !in_ci(),
        "CI: neither tshark nor {}.eth_outer.tsv is there",
        file.display()
    );
    eprintln!("skip {}: no tshark and no oracle file", file.display());
    None
}

/// Puts each device of `snap` into `c` with its counters there (replacing older ones).
fn add_counts(c: &mut Counts, snap: &serde_json::Value) {
    for d in snap["network"]["connectedDevices"].as_array().unwrap() {
        let b = &d["bandwidth"];
        let n = |k: &str| b[k].as_u64().unwrap();
        c.insert(
            d["mac"].as_str().unwrap().to_owned(),
            [
                n("txBytesTotal"),
                n("txPacketsTotal"),
                n("rxBytesTotal"),
                n("rxPacketsTotal"),
            ],
        );
    }
}

/// Replays with --every-cycle and takes each MAC's counters from the last snapshot it is in.
/// DEVICE_EXPIRE is set to its maximum (a year): a device that expires and comes back starts
/// from zero again, by design, while tshark keeps counting (tcpdump's arp-oobr.pcap has MACs
/// seen 2.4 hours apart). A device expired by a larger jump in capture time (pim_header_asan-2
/// jumps 32 years) leaves the table with its counters as in its last snapshot.
fn replay_counts(file: &Path, extra: &[&str]) -> (Counts, serde_json::Value) {
    let o = run(agent()
        .args(["replay", "--json", "--every-cycle", "--table-size", "4096"])
        .args(["--set", "DEVICE_EXPIRE=31536000"])
        .args(extra)
        .arg(file));
    assert!(o.status.success(), "{}: {}", file.display(), stderr(&o));
    let mut c = Counts::new();
    let mut last = serde_json::Value::Null;
    for line in stdout(&o).lines() {
        let snap: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        add_counts(&mut c, &snap);
        last = snap;
    }
    assert_eq!(last["agent"]["capture"]["mode"], "replay");
    (c, last)
}

fn shared_captures() -> Vec<PathBuf> {
    let Some(dir) = shared().map(|s| s.join("pcaps")) else {
        assert!(!in_ci(), "CI: ../shared/pcaps is missing");
        eprintln!("skip: ../shared/pcaps is not there");
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_ethernet_capture_matches_tshark_per_mac() {
    let mut compared = 0;
    for file in shared_captures() {
        let Some(want) = reference(&file) else {
            continue;
        };
        if want.is_empty() {
            continue; // no Ethernet addresses: SLL, radiotap, raw IP (tested below)
        }
        let (got, _) = replay_counts(&file, &[]);
        for (mac, w) in &want {
            assert_eq!(
                got.get(mac),
                Some(w),
                "{}: {mac} [tx bytes, tx pkts, rx bytes, rx pkts]",
                file.display()
            );
        }
        let extra: Vec<&String> = got.keys().filter(|m| !want.contains_key(*m)).collect();
        assert!(
            extra.is_empty(),
            "{}: devices tshark does not list: {extra:?}",
            file.display()
        );
        compared += 1;
    }
    if shared().is_some() {
        assert!(compared >= 15, "only {compared} captures compared");
    }
}

#[test]
fn unsupported_link_types_are_a_clear_error() {
    let Some(dir) = shared().map(|s| s.join("pcaps")) else {
        assert!(!in_ci(), "CI: ../shared/pcaps is missing");
        return;
    };
    for (name, what) in [
        (
            "zeek__arp-who-has-radiotap.pcap",
            "link type 127 (802.11 radiotap) is not supported",
        ),
        (
            "zeek__tcp-syslog.pcap",
            "link type 228 (raw IPv4) is not supported",
        ),
    ] {
        let o = run(agent().args(["replay", "--json"]).arg(dir.join(name)));
        assert_eq!(o.status.code(), Some(1), "{name}");
        let e = stderr(&o);
        assert!(e.contains(&format!("{name}: {what}")), "{name}: {e}");
    }
    // A pcapng mixing Ethernet and BSD loopback: the loopback frame is skipped and named once.
    let o = run(agent()
        .args(["replay"])
        .arg(dir.join("pcapngtg__test101-le.pcapng")));
    assert!(o.status.success());
    let e = stderr(&o);
    assert_eq!(e.matches("link type 0 (BSD loopback)").count(), 1, "{e}");
    assert!(e.contains("skipped"), "{e}");
}

/// ARP sender bindings from tshark's oracle (arp.tsv): every MAC whose only non-zero sender
/// IPv4 is one address shows that address and tshark's VLAN, over Ethernet and Linux cooked
/// captures.
#[test]
fn arp_bindings_match_tshark() {
    let Some(dir) = shared().map(|s| s.join("pcaps")) else {
        assert!(!in_ci(), "CI: ../shared/pcaps is missing");
        return;
    };
    for name in [
        "zeek__linuxsll-arp.pcap",
        "ndpi__iphone.pcap",
        "zeek__snap-arp.pcapng",
        "zeek__q-in-q.pcap",
        "tcpdump__802.1ad_QinQ.pcap",
    ] {
        let file = dir.join(name);
        let text = std::fs::read_to_string(format!("{}.arp.tsv", file.display())).unwrap();
        let mut ips: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut vlans: BTreeMap<String, String> = BTreeMap::new();
        for line in text.lines().skip(1) {
            let p: Vec<&str> = line.split('\t').collect();
            vlans.insert(p[0].to_owned(), p[2].to_owned());
            let (mac, ip, replies_or_requests) = (
                p[0],
                p[1],
                p[4].parse::<u32>().unwrap() + p[5].parse::<u32>().unwrap(),
            );
            if ip != "0.0.0.0" && ip != "-" && replies_or_requests > 0 {
                let v = ips.entry(mac.to_owned()).or_default();
                if !v.iter().any(|x| x == ip) {
                    v.push(ip.to_owned());
                }
            }
        }
        let (_, snap) = replay_counts(&file, &[]);
        let devices = snap["network"]["connectedDevices"].as_array().unwrap();
        let mut checked = 0;
        for (mac, v) in ips.iter().filter(|(_, v)| v.len() == 1) {
            let d = devices
                .iter()
                .find(|d| d["mac"] == mac.as_str())
                .unwrap_or_else(|| panic!("{name}: {mac} missing"));
            assert_eq!(d["ip"], v[0].as_str(), "{name}: {mac}");
            // tshark's vlan.id (first occurrence) of the ARP frame.
            match vlans[mac].as_str() {
                "-" => assert!(d["vlan"].is_null(), "{name}: {mac}"),
                v => assert_eq!(d["vlan"], v.parse::<u64>().unwrap(), "{name}: {mac}"),
            }
            checked += 1;
        }
        assert!(checked > 0, "{name}: no binding checked");
    }
}

/// Ethernet frames for our own captures: unicast both ways, a broadcast, a multicast.
fn frames() -> Vec<Vec<u8>> {
    let a = [0x02, 0x11, 0x22, 0x33, 0x44, 0x01];
    let b = [0x02, 0x11, 0x22, 0x33, 0x44, 0x02];
    let mk = |dst: [u8; 6], src: [u8; 6], n: usize| {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5]); // local experimental EtherType
        f.resize(n, 0xab);
        f
    };
    vec![
        mk(b, a, 60),
        mk(a, b, 1514),
        mk([0xff; 6], a, 342),
        mk([0x33, 0x33, 0, 0, 0, 1], b, 90),
        mk(b, a, 100),
    ]
}

fn write_capture(path: &Path, endianness: Endianness, ts_resolution: TsResolution, snaplen: u32) {
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen,
        datalink: DataLink::ETHERNET,
        ts_resolution,
        endianness,
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(path).unwrap(), header).unwrap();
    for (i, f) in frames().iter().enumerate() {
        let cut = &f[..f.len().min(snaplen as usize)];
        let ts = Duration::new(1_700_000_000 + i as u64 * 3, 123_456_789);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, cut))
            .unwrap();
    }
}

#[test]
fn own_captures_nanosecond_big_endian_snaplen() {
    let dir = scratch("replay-own");
    for (name, e, r, snap) in [
        (
            "le-micro.pcap",
            Endianness::Little,
            TsResolution::MicroSecond,
            65535,
        ),
        (
            "be-nano.pcap",
            Endianness::Big,
            TsResolution::NanoSecond,
            65535,
        ),
        (
            "le-snap64.pcap",
            Endianness::Little,
            TsResolution::NanoSecond,
            64,
        ),
    ] {
        let path = dir.join(name);
        write_capture(&path, e, r, snap);
        let (got, snap) = replay_counts(&path, &["--cycle", "5"]);
        // Independent of tshark too: the sums we wrote.
        let a = got["02:11:22:33:44:01"];
        assert_eq!(a, [60 + 342 + 100, 3, 1514, 1], "{name}");
        if let Some(want) = reference_if_tshark(&path) {
            assert_eq!(got, want, "{name}");
        }
        // Capture time is the clock: the last snapshot ends at the last frame (12 s after the first).
        assert_eq!(snap["snapshotTime"], "2023-11-14T22:13:32.123Z", "{name}");
    }
}

fn reference_if_tshark(path: &Path) -> Option<Counts> {
    if tshark_installed() {
        Some(tshark_counts(path))
    } else {
        assert!(!in_ci(), "CI: tshark is not installed");
        None
    }
}

#[test]
fn truncated_file_reports_index_and_offset_after_printing_the_counts() {
    let dir = scratch("replay-truncated");
    let path = dir.join("cut.pcap");
    write_capture(&path, Endianness::Little, TsResolution::MicroSecond, 65535);
    let full = std::fs::read(&path).unwrap();
    // Cut inside the 4th record: 24-byte header, then 16 + length per record.
    let lens: Vec<usize> = frames().iter().map(|f| f.len()).collect();
    let offset4 = 24 + lens[..3].iter().map(|n| 16 + n).sum::<usize>();
    std::fs::write(&path, &full[..offset4 + 20]).unwrap();
    let o = run(agent().args(["replay", "--json"]).arg(&path));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("cut.pcap: packet 4 at byte offset {offset4}: ")),
        "{e}"
    );
    let snap: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("the counts so far");
    assert_eq!(snap["agent"]["capture"]["packetsSeen"], 3);
    // A record claiming an impossible length is corruption, reported the same way.
    let mut bad = full.clone();
    bad[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    std::fs::write(&path, &bad).unwrap();
    let o = run(agent().args(["replay"]).arg(&path));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("packet 1 at byte offset 24: "),
        "{}",
        stderr(&o)
    );
    // Not a capture at all.
    std::fs::write(&path, b"hello, this is not a capture file").unwrap();
    let o = run(agent().args(["replay"]).arg(&path));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a pcap or pcapng file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors() {
    let o = run(agent().args(["replay"]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(agent().args(["replay", "--every-cycle", "x.pcap"]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(agent().args(["replay", "--table-size", "0", "x.pcap"]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(agent().args(["replay", "--version"]));
    assert!(o.status.success());
}

/// Replay snapshots (single and per cycle) validate against the project's strict schema and the
/// shared one, checked by python's jsonschema (an independent validator).
#[test]
fn replay_snapshots_are_schema_valid() {
    let Some(shared) = shared() else {
        assert!(!in_ci(), "CI: ../shared is missing");
        return;
    };
    let mut docs = Vec::new();
    for (name, every) in [
        ("ndpi__iphone.pcap", false),
        ("pcapparser__wireshark_samples-test.pcapng", true),
        ("zeek__linuxsll-arp.pcap", false),
        ("zeek__icmp6-nd-options.pcap", true),
        ("tcpdump__802.1ad_QinQ.pcap", false),
    ] {
        let mut cmd = agent();
        cmd.args(["replay", "--json", "--range", "192.168.0.0/16"]);
        if every {
            cmd.arg("--every-cycle");
        }
        let o = run(cmd.arg(shared.join("pcaps").join(name)));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let text = stdout(&o);
        if every {
            docs.extend(text.lines().map(str::to_owned));
        } else {
            let v: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
            docs.push(v.to_string());
        }
    }
    assert!(docs.len() > 5);
    validate_snapshots(&docs.join("\n"));
}

/// NDP link-layer address options from tshark's oracle (ndp.tsv): each MAC <-> IPv6 binding
/// (source option -> IPv6 source of RS/RA/NS, target option -> NA target) is in that device's
/// ipv6 list.
#[test]
fn ndp_bindings_match_tshark() {
    let Some(dir) = shared().map(|s| s.join("pcaps")) else {
        assert!(!in_ci(), "CI: ../shared/pcaps is missing");
        return;
    };
    let mut checked = 0;
    for name in [
        "zeek__icmp6-nd-options.pcap",
        "ndpi__iphone.pcap",
        "pcapparser__wireshark_samples-test.pcapng",
    ] {
        let file = dir.join(name);
        let text = std::fs::read_to_string(format!("{}.ndp.tsv", file.display())).unwrap();
        let (_, snap) = replay_counts(&file, &[]);
        let devices = snap["network"]["connectedDevices"].as_array().unwrap();
        for line in text.lines().skip(1) {
            let p: Vec<&str> = line.split('\t').collect();
            let (kind, src_ip, target, ll) = (p[0], p[2], p[3], p[4]);
            if ll == "-" {
                continue;
            }
            let ip = if kind == "NA" { target } else { src_ip };
            if ip == "::" {
                continue;
            }
            let d = devices
                .iter()
                .find(|d| d["mac"] == ll)
                .unwrap_or_else(|| panic!("{name}: {ll} missing"));
            let list: Vec<&str> = d["ipv6"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(list.contains(&ip), "{name}: {ll} {ip} not in {list:?}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked}");
}

/// Host names from DHCP requests (option 12) equal what tshark decodes.
#[test]
fn dhcp_names_match_tshark() {
    let Some(dir) = shared().map(|s| s.join("pcaps")) else {
        assert!(!in_ci(), "CI: ../shared/pcaps is missing");
        return;
    };
    if !tshark_installed() {
        assert!(!in_ci(), "CI: tshark is not installed");
        eprintln!("skip: tshark is not installed");
        return;
    }
    let file = dir.join("ndpi__iphone.pcap");
    let o = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&file)
        .args([
            "-Y",
            "dhcp.option.hostname && dhcp.type == 1",
            "-T",
            "fields",
        ])
        .args(["-e", "dhcp.hw.mac_addr", "-e", "dhcp.option.hostname"])
        .output()
        .unwrap();
    let mut want = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some((mac, name)) = line.split_once('\t') {
            want.insert(mac.split(',').next().unwrap().to_owned(), name.to_owned());
        }
    }
    assert!(want.len() >= 2, "{want:?}");
    let (_, snap) = replay_counts(&file, &[]);
    for d in snap["network"]["connectedDevices"].as_array().unwrap() {
        let mac = d["mac"].as_str().unwrap();
        match want.get(mac) {
            Some(name) => assert_eq!(d["deviceName"], name.as_str(), "{mac}"),
            None => assert!(d["deviceName"].is_null(), "{mac}"),
        }
    }
}

/// Without --json: a table, largest total first, the same numbers as the JSON.
#[test]
fn text_table_is_sorted_by_total_bytes() {
    let Some(dir) = shared().map(|s| s.join("pcaps")) else {
        assert!(!in_ci(), "CI: ../shared/pcaps is missing");
        return;
    };
    let file = dir.join("zeek__ssh.pcap");
    let o = run(agent()
        .args(["replay", "--set", "DEVICE_EXPIRE=31536000"])
        .arg(&file));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("MAC"));
    let (json, _) = replay_counts(&file, &[]);
    let mut last = u64::MAX;
    let mut rows = 0;
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (rx, tx): (u64, u64) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        assert!(rx + tx <= last, "{l}");
        last = rx + tx;
        let j = json[f[0]];
        assert_eq!((tx, rx), (j[0], j[2]), "{l}");
        rows += 1;
    }
    // Devices whose last sign is over a year before the end have left the table (this capture
    // spans years); every row left is in the per-cycle JSON.
    assert!(
        rows > 0 && rows <= json.len(),
        "{rows} rows, {} in JSON",
        json.len()
    );
}

/// A capture with a two-hour gap: B sends only before it. With the default DEVICE_EXPIRE
/// (3600 s of capture time) B expires and the summary line says so; with DEVICE_EXPIRE=0
/// nothing expires and the final snapshot alone equals tshark's counts.
#[test]
fn expiry_in_long_captures_is_reported_and_can_be_off() {
    let dir = scratch("replay-expire");
    let path = dir.join("gap.pcap");
    let mac = |n: u8| [0x02, 0x11, 0x22, 0x33, 0x55, n];
    let mk = |src: [u8; 6], n: usize| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5]);
        f.resize(n, 0xab);
        f
    };
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(&path).unwrap(), header).unwrap();
    for (t, src, len) in [
        (0, mac(1), 100),
        (1, mac(2), 200),
        (2, mac(1), 300),
        (7200, mac(1), 400),
        (7201, mac(3), 500),
    ] {
        let f = mk(src, len);
        let ts = Duration::new(1_700_000_000 + t, 0);
        w.write_packet(&PcapPacket::new(ts, len as u32, &f))
            .unwrap();
    }
    drop(w);
    let replay = |extra: &[&str]| {
        let o = run(agent()
            .args(["replay", "--json", "--config", "/dev/null"])
            .args(extra)
            .arg(&path));
        assert!(o.status.success(), "{}", stderr(&o));
        let snap: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let macs: Vec<String> = snap["network"]["connectedDevices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["mac"].as_str().unwrap().to_owned())
            .collect();
        (macs, stderr(&o), snap)
    };
    let (macs, err, _) = replay(&[]);
    assert_eq!(macs.len(), 2, "{macs:?}");
    assert!(!macs.contains(&"02:11:22:33:55:02".to_owned()));
    assert!(
        err.contains("2 devices, 1 expired during the capture (no sign of life for DEVICE_EXPIRE"),
        "{err}"
    );
    let (macs, err, snap) = replay(&["--set", "DEVICE_EXPIRE=0"]);
    assert_eq!(macs.len(), 3, "{macs:?}");
    assert!(
        err.contains("3 devices, 0 expired during the capture, "),
        "{err}"
    );
    let mut got = Counts::new();
    add_counts(&mut got, &snap);
    assert_eq!(got["02:11:22:33:55:01"], [800, 3, 0, 0]);
    if let Some(want) = reference_if_tshark(&path) {
        assert_eq!(got, want);
    }
}

/// A classic pcap written byte by byte (what pcap-file cannot write): `magic` as given,
/// version, link-type field, and records of (original length, bytes); `extra` bytes after each
/// record header (8 in the "modified" format).
fn raw_pcap(
    path: &Path,
    big: bool,
    magic: u32,
    version: (u16, u16),
    linktype: u32,
    records: &[(u32, Vec<u8>)],
    extra: usize,
) {
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend_from_slice(&u32b(magic));
    f.extend_from_slice(&u16b(version.0));
    f.extend_from_slice(&u16b(version.1));
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&u32b(65535));
    f.extend_from_slice(&u32b(linktype));
    for (i, (orig, data)) in records.iter().enumerate() {
        f.extend_from_slice(&u32b(1_700_000_000 + i as u32));
        f.extend_from_slice(&u32b(0));
        f.extend_from_slice(&u32b(data.len() as u32));
        f.extend_from_slice(&u32b(*orig));
        f.extend_from_slice(&[1, 0, 0, 0, 0x08, 0x00, 0, 0][..extra]);
        f.extend_from_slice(data);
    }
    std::fs::write(path, f).unwrap();
}

fn replay_json_counts(path: &Path) -> Counts {
    let o = run(agent()
        .args(["replay", "--json", "--config", "/dev/null"])
        .arg(path));
    assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
    let snap: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut c = Counts::new();
    add_counts(&mut c, &snap);
    c
}

/// The capture-file cases libpcap and tshark read that are easy to get wrong: the FCS bits
/// of the link-type field, the "modified" pcap format (both byte orders), Cisco FabricPath
/// (the inner hosts count), pcap versions, and an absurd original length.
#[test]
fn odd_pcap_files_match_tshark() {
    let dir = scratch("replay-odd");
    let recs: Vec<(u32, Vec<u8>)> = frames().into_iter().map(|f| (f.len() as u32, f)).collect();
    let a = "02:11:22:33:44:01";
    // Our own sums (independent of tshark): a sends 60 + 342 + 100 bytes, receives 1514.
    let a_counts = [502, 3, 1514, 1];
    for (name, big, magic, linktype, extra) in [
        ("fcs-bit.pcap", false, 0xa1b2_c3d4, 0x0400_0001, 0),
        ("fcs-4-bytes.pcap", true, 0xa1b2_c3d4, 0x2400_0001, 0),
        ("modified-le.pcap", false, 0xa1b2_cd34, 1, 8),
        ("modified-be.pcap", true, 0xa1b2_cd34, 1, 8),
        ("nanosecond-2.2.pcap", false, 0xa1b2_3c4d, 1, 0),
    ] {
        let path = dir.join(name);
        let version = if name.contains("2.2") { (2, 2) } else { (2, 4) };
        raw_pcap(&path, big, magic, version, linktype, &recs, extra);
        let got = replay_json_counts(&path);
        assert_eq!(got[a], a_counts, "{name}");
        if let Some(want) = reference_if_tshark(&path) {
            assert_eq!(got, want, "{name}");
        }
    }

    // FabricPath: outer switch addresses, then the hosts' frames.
    let fp: Vec<(u32, Vec<u8>)> = frames()
        .into_iter()
        .map(|inner| {
            let mut f = vec![
                0x02, 0xaa, 0, 0, 0, 1, 0x02, 0xaa, 0, 0, 0, 2, 0x89, 0x03, 0, 0x3f,
            ];
            f.extend_from_slice(&inner);
            (f.len() as u32, f)
        })
        .collect();
    let path = dir.join("fabricpath.pcap");
    raw_pcap(&path, false, 0xa1b2_c3d4, (2, 4), 1, &fp, 0);
    let got = replay_json_counts(&path);
    assert!(!got.contains_key("02:aa:00:00:00:02"), "{got:?}");
    assert_eq!(got[a], [502 + 3 * 16, 3, 1514 + 16, 1]);
    if let Some(want) = reference_if_tshark(&path) {
        assert_eq!(got, want, "fabricpath");
    }

    // Versions other than 2.0-2.4 are refused, naming the version (tshark refuses 1.x too).
    for v in [(1, 0), (3, 0), (2, 5)] {
        let path = dir.join(format!("version-{}.{}.pcap", v.0, v.1));
        raw_pcap(&path, false, 0xa1b2_c3d4, v, 1, &recs, 0);
        let o = run(agent().args(["replay", "--config", "/dev/null"]).arg(&path));
        assert_eq!(o.status.code(), Some(1), "{v:?}");
        let want = format!("pcap version {}.{} is not supported", v.0, v.1);
        assert!(stderr(&o).contains(&want), "{v:?}: {}", stderr(&o));
    }

    // An absurd original length (4,093,509,168 for 60 captured bytes) counts its captured
    // length; tshark caps it at 2^31-1 and its sums wrap, so our own sums are the reference.
    let mut absurd = recs.clone();
    absurd[0].0 = 4_093_509_168;
    let path = dir.join("absurd-length.pcap");
    raw_pcap(&path, false, 0xa1b2_c3d4, (2, 4), 1, &absurd, 0);
    let got = replay_json_counts(&path);
    assert_eq!(got[a], a_counts);
    // Just above the cap as well; at the cap it is believed.
    absurd[0].0 = 262_145;
    raw_pcap(&path, false, 0xa1b2_c3d4, (2, 4), 1, &absurd, 0);
    assert_eq!(replay_json_counts(&path)[a], a_counts);
    absurd[0].0 = 262_144;
    raw_pcap(&path, false, 0xa1b2_c3d4, (2, 4), 1, &absurd, 0);
    assert_eq!(replay_json_counts(&path)[a], [262_144 + 442, 3, 1514, 1]);
}
