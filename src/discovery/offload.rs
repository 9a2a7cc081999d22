//! Flow-offload detection. With OpenWrt's software or hardware flow offloading, forwarded
//! connections bypass the CPU's network stack after their first packets, so no capture on the
//! router sees them: per-device totals fall below the interface counters. We look for it in
//! two places: conntrack entries flagged `[OFFLOAD]` / `[HW_OFFLOAD]` in /proc/net/nf_conntrack,
//! and the `flow_offloading` / `flow_offloading_hw` options of /etc/config/firewall.
//!
//! /proc/net/nf_conntrack is mode 0440 root: the first look happens at start-up, before the
//! agent drops root; after the drop the flow count is reported as unknown (null), never as 0,
//! and offloading is judged from the firewall config (world-readable on OpenWrt) alone.

use crate::snapshot::OffloadInfo;

/// Conntrack table, under PROC_ROOT.
pub const CONNTRACK: &str = "net/nf_conntrack";
/// OpenWrt's firewall configuration.
pub const FIREWALL: &str = "/etc/config/firewall";

/// Counts (software, hardware) offloaded flows in nf_conntrack text. A flow flagged
/// HW_OFFLOAD counts as hardware only.
pub fn parse_conntrack(text: &str) -> (u64, u64) {
    let mut sw = 0;
    let mut hw = 0;
    for line in text.lines() {
        for word in line.split_whitespace() {
            match word {
                "[HW_OFFLOAD]" => {
                    hw += 1;
                    break;
                }
                "[OFFLOAD]" => {
                    sw += 1;
                    break;
                }
                _ => {}
            }
        }
    }
    (sw, hw)
}

/// Reads `option flow_offloading '1'` and `option flow_offloading_hw '1'` from OpenWrt's UCI
/// firewall config (any quoting). Returns (software, hardware) as configured.
pub fn parse_firewall(text: &str) -> (bool, bool) {
    let mut sw = false;
    let mut hw = false;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        if f.next() != Some("option") {
            continue;
        }
        let (Some(key), Some(val)) = (f.next(), f.next()) else {
            continue;
        };
        let key = key.trim_matches(|c| c == '\'' || c == '"');
        let on = matches!(
            val.trim_matches(|c| c == '\'' || c == '"'),
            "1" | "on" | "true" | "yes" | "enabled"
        );
        match key {
            "flow_offloading" => sw |= on,
            "flow_offloading_hw" => hw |= on,
            _ => {}
        }
    }
    (sw, hw)
}

/// Combines both sources. None when neither file could be read (unknown); without conntrack
/// the flow count is unknown (None), not zero.
pub fn detect(conntrack: Option<&str>, firewall: Option<&str>) -> Option<OffloadInfo> {
    if conntrack.is_none() && firewall.is_none() {
        return None;
    }
    let flows = conntrack.map(parse_conntrack);
    let (sw_flows, hw_flows) = flows.unwrap_or((0, 0));
    let (sw_cfg, hw_cfg) = firewall.map(parse_firewall).unwrap_or((false, false));
    let software = sw_cfg || sw_flows > 0;
    let hardware = hw_cfg || hw_flows > 0;
    Some(OffloadInfo {
        detected: software || hardware,
        software,
        hardware,
        offloaded_flows: flows.map(|(s, h)| s + h),
    })
}

/// At most this much of /proc/net/nf_conntrack is read: a busy router's table can be large,
/// and the flags of its first 16 MiB of entries are a fair sample.
const CONNTRACK_MAX: usize = 16 << 20;

/// Reads the files (conntrack under `proc_root`) and detects. A conntrack table that cannot
/// be read (EACCES after the drop from root) leaves the flow count unknown.
pub fn read(proc_root: &std::path::Path) -> Option<OffloadInfo> {
    let ct = crate::sys::fs::open_regular(&proc_root.join(CONNTRACK), true)
        .ok()
        .and_then(|(mut f, _)| {
            let mut buf = Vec::new();
            crate::sys::fs::read_at_most(&mut f, CONNTRACK_MAX, &mut buf).ok()?;
            String::from_utf8(buf).ok()
        });
    // A UCI file of a few KiB: read bounded (1 MiB), never a FIFO or a device.
    let fw = crate::sys::fs::read_text(std::path::Path::new(FIREWALL), 1 << 20).ok();
    detect(ct.as_deref(), fw.as_deref())
}

/// The one-line warning for the log and `check`.
pub fn warning(info: &OffloadInfo) -> Option<String> {
    let kind = match (info.software, info.hardware) {
        (true, true) => "software+hardware",
        (false, true) => "hardware",
        _ => "software",
    };
    let flows = match info.offloaded_flows {
        Some(n) => format!("{n} offloaded flows"),
        None => "offloaded flows unknown: nf_conntrack is root-only".into(),
    };
    info.detected.then(|| {
        format!(
            "flow offloading is on ({kind}, {flows}): forwarded traffic bypasses the capture, per-device totals will be below the interface counters"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like /proc/net/nf_conntrack on OpenWrt 23.05 (mt7621) with flow offloading on.
    const CT: &str = "\
ipv4     2 tcp      6 src=192.168.1.20 dst=93.184.216.34 sport=51514 dport=443 packets=12 bytes=3120 src=93.184.216.34 dst=10.0.0.2 sport=443 dport=51514 packets=10 bytes=9120 [OFFLOAD] mark=0 zone=0 use=3
ipv4     2 udp      17 29 src=192.168.1.20 dst=1.1.1.1 sport=5353 dport=53 packets=1 bytes=60 src=1.1.1.1 dst=10.0.0.2 sport=53 dport=5353 packets=1 bytes=76 mark=0 zone=0 use=2
ipv6     10 tcp      6 src=fd00::2 dst=2001:db8::1 sport=40000 dport=443 packets=4 bytes=400 src=2001:db8::1 dst=fd00::2 sport=443 dport=40000 packets=3 bytes=300 [HW_OFFLOAD] mark=0 zone=0 use=3
ipv4     2 tcp      6 7440 ESTABLISHED src=192.168.1.5 dst=192.168.1.1 sport=1 dport=22 [ASSURED] mark=0 zone=0 use=2
";

    const FW: &str = "\
config defaults
\toption syn_flood\t1
\toption input\t\tREJECT
\toption flow_offloading\t'1'
\toption flow_offloading_hw\t'0'
";

    #[test]
    fn conntrack_flags() {
        assert_eq!(parse_conntrack(CT), (1, 1));
        assert_eq!(parse_conntrack(""), (0, 0));
    }

    #[test]
    fn firewall_options() {
        assert_eq!(parse_firewall(FW), (true, false));
        assert_eq!(
            parse_firewall("option flow_offloading_hw \"1\"\n"),
            (false, true)
        );
        assert_eq!(
            parse_firewall("# option flow_offloading 1\n"),
            (false, false)
        );
    }

    #[test]
    fn detection() {
        assert!(detect(None, None).is_none());
        let i = detect(Some(CT), None).unwrap();
        assert!(i.detected && i.software && i.hardware);
        assert_eq!(i.offloaded_flows, Some(2));
        let i = detect(Some(""), Some("")).unwrap();
        assert!(!i.detected);
        assert!(warning(&i).is_none());
        // Conntrack unreadable (the agent dropped root): the config decides, the count is
        // unknown, never 0.
        let i = detect(None, Some(FW)).unwrap();
        assert!(i.detected && i.software && !i.hardware);
        assert_eq!(i.offloaded_flows, None);
        let w = warning(&i).unwrap();
        assert!(
            w.starts_with(
                "flow offloading is on (software, offloaded flows unknown: nf_conntrack is root-only)"
            ),
            "{w}"
        );
        let i = detect(None, Some("")).unwrap();
        assert!(!i.detected && i.offloaded_flows.is_none());
    }
}
