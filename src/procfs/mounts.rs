//! The disks `df` shows by default: /proc/self/mountinfo (or /proc/mounts on kernels before
//! 2.6.26), filtered and de-duplicated by the rules of GNU coreutils `df` (9.x, built without
//! libmount as Debian builds it; gnulib's mountlist.c and df.c's `filter_mount_list`/`get_dev`):
//!
//! 1. "Dummy" file systems are hidden: types autofs, proc, subfs, debugfs, devpts, fusectl,
//!    fuse.portal, mqueue, rpc_pipefs, sysfs, devfs, kernfs, and "none" unless bind-mounted.
//!    tmpfs, devtmpfs and overlay are *not* dummies, so OpenWrt's `/`, `/overlay` and `/tmp`
//!    count, as do Debian's `/dev/shm` and `/dev`.
//! 2. One entry per device: each other mount point is stat(2)ed and entries with the same
//!    st_dev are merged. The later entry replaces the earlier one when its source names a real
//!    device (contains '/') and the earlier one's does not, when its mount point is shorter
//!    (nearer the root) unless its root inside the file system is deeper (a bind mount of a
//!    sub-directory), or when it has another source on the very same mount point (over-mount);
//!    otherwise the later entry is dropped (so bind mounts appear once). Two remote (NFS, CIFS)
//!    entries with different sources are both kept. The survivor keeps the earlier position.
//! 3. Relative mount points, mount points that statvfs cannot reach, and file systems of zero
//!    blocks (cgroup, bpf, pstore, ...) are left out.
//!
//! Unlike `df` (like `df -l`, and further): network and FUSE file systems ([`Mount::is_network`])
//! and everything mounted below one are left out before anything is asked of them, unless the
//! caller includes them (DISK_REMOTE=1). A stat(2) or statvfs(2) on a hung NFS server or a FUSE
//! daemon that stopped answering waits for ever, and the agent has one thread.
//!
//! Sizes: total = f_blocks, used = f_blocks - f_bfree, free = f_bavail (what a user can still
//! write, as df's "Available"), each times f_frsize; percentUsed = used / (used + free), df's
//! "Use%" before df rounds it up.

use std::ops::Range;

use super::{parse_u64, ParseError};
use crate::snapshot::{self, Disk};
use crate::sys::statvfs::FsUsage;

/// The mount table with mount ids and roots.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// The mount table in fstab format (kernels and containers without mountinfo).
pub const MOUNTS: &str = "/proc/mounts";

/// Which of the two mount tables the text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// /proc/self/mountinfo: `id parent maj:min root target options [optional...] - type source superoptions`
    MountInfo,
    /// /proc/mounts (fstab format): `source target type options freq passno`
    Mounts,
}

impl Format {
    /// The file of this format.
    pub fn file(self) -> &'static str {
        match self {
            Format::MountInfo => MOUNTINFO,
            Format::Mounts => MOUNTS,
        }
    }
}

/// One mount table entry. Paths are as the file has them: space, tab, newline and backslash
/// are octal escapes (`\040`); see [`unescape_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount<'a> {
    /// What is mounted (device or source).
    pub source: &'a str,
    /// Where.
    pub target: &'a str,
    /// File system type.
    pub fstype: &'a str,
    /// The directory of the file system mounted here (mountinfo only; `/` unless bind-mounted).
    pub root: Option<&'a str>,
    /// st_dev of the file system (mountinfo only), encoded as the C library's makedev.
    pub dev: Option<u64>,
    /// A "bind" option (only ever in a static mtab, never in the kernel's files).
    pub bind: bool,
}

impl Mount<'_> {
    /// gnulib's ME_DUMMY.
    pub fn is_dummy(&self) -> bool {
        matches!(
            self.fstype,
            "autofs"
                | "proc"
                | "subfs"
                | "debugfs"
                | "devpts"
                | "fusectl"
                | "fuse.portal"
                | "mqueue"
                | "rpc_pipefs"
                | "sysfs"
                | "devfs"
                | "kernfs"
        ) || (self.fstype == "none" && !self.bind)
    }

    /// gnulib's ME_REMOTE.
    pub fn is_remote(&self) -> bool {
        self.source.contains(':')
            || (self.source.starts_with("//") && matches!(self.fstype, "smbfs" | "smb3" | "cifs"))
            || matches!(
                self.fstype,
                "acfs"
                    | "afs"
                    | "coda"
                    | "auristorfs"
                    | "fhgfs"
                    | "gpfs"
                    | "ibrix"
                    | "ocfs2"
                    | "vxfs"
            )
            || self.source == "-hosts"
    }
}

/// FUSE file systems: their answers come from a user-space daemon (sshfs, rclone, s3fs, ...).
/// `fuseblk` (ntfs-3g, exfat-fuse on a local disk) is a block device and stays in.
fn is_fuse(fstype: &str) -> bool {
    fstype == "fuse" || fstype.starts_with("fuse.")
}

impl Mount<'_> {
    /// A file system whose stat can wait on a network or on a user-space daemon: gnulib's
    /// remote ones (`df -l` leaves those out) except overlays, the network file system types
    /// whatever their source looks like, and FUSE. (OpenWrt's root is an overlay whose source
    /// is "overlayfs:/overlay": the ':' makes it remote to gnulib, and `df -l` there would
    /// hide `/`.)
    pub fn is_network(&self) -> bool {
        (self.is_remote() && !matches!(self.fstype, "overlay" | "overlayfs" | "aufs"))
            || is_fuse(self.fstype)
            || matches!(
                self.fstype,
                "nfs"
                    | "nfs4"
                    | "cifs"
                    | "smb3"
                    | "smbfs"
                    | "ncpfs"
                    | "9p"
                    | "ceph"
                    | "glusterfs"
                    | "lustre"
                    | "davfs"
                    | "sshfs"
                    | "beegfs"
                    | "orangefs"
                    | "pvfs2"
                    | "gfs2"
            )
    }
}

/// The device number as glibc's and musl's makedev() encode it (what stat(2) reports).
pub fn makedev(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (u64::from(major), u64::from(minor));
    ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}

/// Parses one line (`i` is its 0-based index, for the error).
pub fn parse_line(format: Format, i: usize, line: &str) -> Result<Mount<'_>, ParseError> {
    let file = format.file();
    let mut w = line.split_ascii_whitespace();
    let mut next = |what: &'static str| w.next().ok_or(ParseError::bad(file, i, what));
    match format {
        Format::MountInfo => {
            next("no mount id")?;
            next("no parent id")?;
            let (ma, mi) = next("no major:minor")?
                .split_once(':')
                .ok_or(ParseError::bad(file, i, "bad major:minor"))?;
            let num = |s| {
                parse_u64(s)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or(ParseError::bad(file, i, "bad major:minor"))
            };
            let dev = makedev(num(ma)?, num(mi)?);
            let root = next("no root")?;
            let target = next("no mount point")?;
            next("no mount options")?;
            // Optional fields (shared:N, master:N, ...) up to the "-" separator.
            while next("no ' - ' separator")? != "-" {}
            let fstype = next("no file system type")?;
            let source = next("no mount source")?;
            next("no super options")?;
            Ok(Mount {
                source,
                target,
                fstype,
                root: Some(root),
                dev: Some(dev),
                bind: false,
            })
        }
        Format::Mounts => {
            let source = next("no mount source")?;
            let target = next("no mount point")?;
            let fstype = next("no file system type")?;
            let options = next("no mount options")?;
            Ok(Mount {
                source,
                target,
                fstype,
                root: None,
                dev: None,
                bind: options.split(',').any(|o| o == "bind"),
            })
        }
    }
}

/// Each non-blank line with its byte range in `text` and its parse result. Allocates nothing.
pub fn entries(
    text: &str,
    format: Format,
) -> impl Iterator<Item = (Range<usize>, Result<Mount<'_>, ParseError>)> {
    let mut start = 0;
    text.split_inclusive('\n')
        .enumerate()
        .filter_map(move |(i, raw)| {
            let range = start..start + raw.len();
            start = range.end;
            let line = raw.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                return None;
            }
            Some((range, parse_line(format, i, line)))
        })
}

/// Every entry of /proc/self/mountinfo, or the first bad line.
pub fn parse(text: &str) -> Result<Vec<Mount<'_>>, ParseError> {
    parse_as(text, Format::MountInfo)
}

/// Every entry of a table in the given format, or the first bad line.
pub fn parse_as(text: &str, format: Format) -> Result<Vec<Mount<'_>>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty {
            file: format.file(),
        });
    }
    entries(text, format).map(|(_, r)| r).collect()
}

/// The byte a gnulib escape at `b[i..]` stands for: `\` and three octal digits, the first 0-3.
fn escape_at(b: &[u8], i: usize) -> Option<u8> {
    let d = b.get(i..i + 4)?;
    (d[0] == b'\\'
        && (b'0'..=b'3').contains(&d[1])
        && (b'0'..=b'7').contains(&d[2])
        && (b'0'..=b'7').contains(&d[3]))
    .then(|| (d[1] - b'0') * 64 + (d[2] - b'0') * 8 + (d[3] - b'0'))
}

/// Appends `s` to `out` with gnulib's unescaping: `\` followed by three octal digits (the first
/// 0-3) is that byte; anything else stays as it is. The kernel only escapes ASCII (space, tab,
/// newline, backslash); an escaped non-ASCII byte becomes U+FFFD.
pub fn unescape_into(s: &str, out: &mut String) {
    let b = s.as_bytes();
    let (mut i, mut plain) = (0, 0);
    while i < b.len() {
        match escape_at(b, i) {
            Some(byte) => {
                out.push_str(&s[plain..i]);
                out.push(if byte.is_ascii() {
                    char::from(byte)
                } else {
                    char::REPLACEMENT_CHARACTER
                });
                i += 4;
                plain = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&s[plain..]);
}

/// Length of `s` after unescaping (df compares lengths of the unescaped strings).
fn unescaped_len(s: &str) -> usize {
    let b = s.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        i += if escape_at(b, i).is_some() { 4 } else { 1 };
        n += 1;
    }
    n
}

/// One entry that survived de-duplication: the byte range of its line, and the device it was
/// filed under (None: unknown, never matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Byte range of the entry's line in the table text.
    pub line: Range<usize>,
    key: Option<u64>,
    /// A network or FUSE file system, or one mounted below one, left alone (never stat'ed).
    pub network: bool,
}

impl Slot {
    /// The entry again (it parsed before, so this only fails if `text` changed).
    pub fn mount<'a>(&self, text: &'a str, format: Format) -> Option<Mount<'a>> {
        let line = text.get(self.line.clone())?.trim_end_matches(['\n', '\r']);
        parse_line(format, 0, line).ok()
    }
}

/// Whether `target` is `base` or below it (both as the mount table writes them).
fn is_below(target: &str, base: &str) -> bool {
    target
        .strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || base.ends_with('/'))
}

/// df's `filter_mount_list`: fills `out` with one slot per device, in table order.
/// `stat_dev` gives st_dev of an (unescaped) mount point, None when stat fails; `scratch` is a
/// reusable buffer for the unescaped path. Without `remote`, network and FUSE file systems and
/// whatever is mounted below them get a slot marked `network` and are never stat'ed. Bad lines
/// are skipped; the first is returned so the caller can report it.
pub fn select(
    text: &str,
    format: Format,
    remote: bool,
    mut stat_dev: impl FnMut(&str) -> Option<u64>,
    scratch: &mut String,
    out: &mut Vec<Slot>,
) -> Option<ParseError> {
    out.clear();
    let mut first_error = None;
    let mut any_network = false;
    for (line, parsed) in entries(text, format) {
        let me = match parsed {
            Ok(m) => m,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        if !remote {
            // Reaching a mount point below a hung network mount waits on it too.
            let below = any_network
                && out.iter().filter(|s| s.network).any(|s| {
                    s.mount(text, format)
                        .is_some_and(|n| n.is_network() && is_below(me.target, n.target))
                });
            if me.is_network() || below {
                any_network = true;
                out.push(Slot {
                    line,
                    key: None,
                    network: true,
                });
                continue;
            }
        }
        let st_dev = if me.is_dummy() {
            None
        } else {
            scratch.clear();
            unescape_into(me.target, scratch);
            stat_dev(scratch)
        };
        let Some(dev) = st_dev else {
            // Dummies and unreachable mount points are filed under the table's own number,
            // to be filtered out later (as df does).
            out.push(Slot {
                line,
                key: me.dev,
                network: false,
            });
            continue;
        };
        let Some(j) = out.iter().rposition(|s| s.key == Some(dev)) else {
            out.push(Slot {
                line,
                key: Some(dev),
                network: false,
            });
            continue;
        };
        let Some(seen) = out[j].mount(text, format) else {
            continue;
        };
        if me.is_remote() && seen.is_remote() && seen.source != me.source {
            // Remote entries with different sources are likely mounted on purpose: keep both.
            out.push(Slot {
                line,
                key: Some(dev),
                network: false,
            });
            continue;
        }
        let target_nearer_root = unescaped_len(seen.target) > unescaped_len(me.target);
        let source_below_root = match (seen.root, me.root) {
            (Some(a), Some(b)) => unescaped_len(a) < unescaped_len(b),
            _ => false,
        };
        let replace = (me.source.contains('/') && !seen.source.contains('/'))
            || (target_nearer_root && !source_below_root)
            || (seen.source != me.source && me.target == seen.target);
        if replace {
            out[j].line = line;
        }
    }
    first_error
}

/// True when `s` ends in something shaped like a UUID, as df checks before resolving a
/// `/dev/disk/by-uuid/...` or `/dev/mapper/luks-...` symlink to its short name.
pub fn has_uuid_suffix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 36
        && b[b.len() - 36..]
            .iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b'-')
}

/// The payload's disk for a selected mount and its statvfs numbers; None for what df leaves
/// out at this stage (dummies, relative mount points, zero blocks).
pub fn to_disk(m: &Mount<'_>, usage: &FsUsage, device: &str, mount_point: &str) -> Option<Disk> {
    if m.is_dummy() || !mount_point.starts_with('/') || usage.blocks == 0 {
        return None;
    }
    let bs = usage.block_size;
    let total = usage.blocks.saturating_mul(bs);
    let used = usage.blocks.saturating_sub(usage.bfree).saturating_mul(bs);
    let free = usage.bavail.saturating_mul(bs);
    let denom = used as f64 + free as f64;
    Some(Disk {
        mount_point: mount_point.to_owned(),
        device: device.to_owned(),
        fs_type: m.fstype.to_owned(),
        total_bytes: total,
        used_bytes: used,
        free_bytes: free,
        percent_used: if denom > 0.0 {
            snapshot::percent(used as f64 * 100.0 / denom)
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = include_str!("../../tests/fixtures/proc/debian-x86_64/self/mountinfo");
    const DEBIAN_MOUNTS: &str = include_str!("../../tests/fixtures/proc/debian-x86_64/mounts");
    const OPENWRT: &str = include_str!("../../tests/fixtures/proc/openwrt-mipsel/self/mountinfo");
    const OPENWRT_MOUNTS: &str = include_str!("../../tests/fixtures/proc/openwrt-mipsel/mounts");

    /// A stat(2) stand-in for a fixture: a path has the device of the *last* mountinfo entry
    /// on it (the one on top), as on the live system.
    fn stat_from(mountinfo: &str) -> impl Fn(&str) -> Option<u64> + '_ {
        move |path| {
            let mut dev = None;
            let mut s = String::new();
            for m in parse(mountinfo).unwrap() {
                s.clear();
                unescape_into(m.target, &mut s);
                if s == path {
                    dev = m.dev;
                }
            }
            dev
        }
    }

    /// A statvfs stand-in: pseudo file systems have zero blocks, the rest 1000 blocks of 4 KiB.
    fn usage_of(m: &Mount<'_>) -> FsUsage {
        let zero = matches!(
            m.fstype,
            "cgroup" | "cgroup2" | "bpf" | "pstore" | "sysfs" | "proc"
        );
        FsUsage {
            block_size: 4096,
            blocks: if zero { 0 } else { 1000 },
            bfree: if zero { 0 } else { 600 },
            bavail: if zero { 0 } else { 550 },
        }
    }

    /// What df would print for the table: (device, mount point, type).
    fn df(text: &str, format: Format, mountinfo: &str) -> Vec<(String, String, String)> {
        let mut slots = Vec::new();
        let mut scratch = String::new();
        let err = select(
            text,
            format,
            false,
            stat_from(mountinfo),
            &mut scratch,
            &mut slots,
        );
        assert_eq!(err, None);
        slots
            .iter()
            .filter(|s| !s.network)
            .filter_map(|s| {
                let m = s.mount(text, format).unwrap();
                let (mut dev, mut mp) = (String::new(), String::new());
                unescape_into(m.source, &mut dev);
                unescape_into(m.target, &mut mp);
                let d = to_disk(&m, &usage_of(&m), &dev, &mp)?;
                Some((d.device, d.mount_point, d.fs_type))
            })
            .collect()
    }

    fn rows(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn debian_x86_64_matches_df() {
        // `df` on the machine the fixture came from printed exactly these, in this order.
        let want = rows(&[
            ("devtmpfs", "/dev", "devtmpfs"),
            ("tmpfs", "/dev/shm", "tmpfs"),
            ("/dev/vda", "/", "ext4"),
            (
                "model_tools_unavailable",
                "/mnt/sandboxing/model_tools_env/v1/python",
                "tmpfs",
            ),
            ("tmpfs", "/sys/fs/cgroup", "tmpfs"),
        ]);
        assert_eq!(df(DEBIAN, Format::MountInfo, DEBIAN), want);
        assert_eq!(df(DEBIAN_MOUNTS, Format::Mounts, DEBIAN), want);
    }

    #[test]
    fn openwrt_mipsel_matches_busybox_df() {
        // The overlay root, its jffs2 upper layer, the squashfs image, /tmp and /dev; the USB
        // stick once although it is also bind-mounted on /opt/docker.
        let mut want = rows(&[
            ("/dev/root", "/rom", "squashfs"),
            ("tmpfs", "/tmp", "tmpfs"),
            ("/dev/mtdblock5", "/overlay", "jffs2"),
            ("overlayfs:/overlay", "/", "overlay"),
            ("tmpfs", "/dev", "tmpfs"),
            ("/dev/sda1", "/mnt/usb stick", "vfat"),
        ]);
        assert_eq!(df(OPENWRT, Format::MountInfo, OPENWRT), want);
        // /proc/mounts does not say which entry is the bind mount of a sub-directory, so df
        // (and we) keep the shorter mount point there.
        want[5].1 = "/opt/docker".into();
        assert_eq!(df(OPENWRT_MOUNTS, Format::Mounts, OPENWRT), want);
    }

    #[test]
    fn parses_fields_byte_exact() {
        let all = parse(DEBIAN).unwrap();
        assert_eq!(all.len(), 20);
        assert_eq!(
            all[5],
            Mount {
                source: "/dev/vda",
                target: "/",
                fstype: "ext4",
                root: Some("/"),
                dev: Some(makedev(254, 0)),
                bind: false,
            }
        );
        let ow = parse(OPENWRT).unwrap();
        let usb = ow.iter().find(|m| m.fstype == "vfat").unwrap();
        assert_eq!(usb.target, "/mnt/usb\\040stick");
        let docker = ow.iter().rfind(|m| m.fstype == "vfat").unwrap();
        assert_eq!(docker.root, Some("/docker"));
        // Optional fields before the separator.
        let rom = ow.iter().find(|m| m.target == "/rom").unwrap();
        assert_eq!((rom.source, rom.dev), ("/dev/root", Some(makedev(31, 3))));
    }

    #[test]
    fn makedev_matches_the_c_library() {
        for (ma, mi) in [
            (0, 0),
            (8, 1),
            (254, 0),
            (259, 300),
            (4095, 255),
            (4096, 1 << 20),
        ] {
            assert_eq!(makedev(ma, mi), libc::makedev(ma, mi) as u64, "{ma}:{mi}");
        }
    }

    #[test]
    fn unescaping_follows_gnulib() {
        let mut s = String::new();
        unescape_into("/mnt/a\\040b\\011c\\134d\\012", &mut s);
        assert_eq!(s, "/mnt/a b\tc\\d\n");
        s.clear();
        unescape_into("/x\\400\\09\\04", &mut s);
        assert_eq!(s, "/x\\400\\09\\04");
        assert_eq!(unescaped_len("/a\\040b"), 4);
        assert_eq!(unescaped_len("/a\\04"), 5);
    }

    #[test]
    fn dedup_rules() {
        let stat = |p: &str| match p {
            "/" | "/srv" | "/a/b/c" => Some(1),
            "/nfs1" | "/nfs2" => Some(2),
            "/over" => Some(3),
            _ => None,
        };
        let run = |text: &str| {
            let (mut out, mut s) = (Vec::new(), String::new());
            select(text, Format::Mounts, true, stat, &mut s, &mut out);
            out.iter()
                .map(|sl| {
                    let m = sl.mount(text, Format::Mounts).unwrap();
                    format!("{} {}", m.source, m.target)
                })
                .collect::<Vec<_>>()
        };
        // rootfs then the real root: the device with a '/' wins, in the first one's place.
        assert_eq!(
            run("rootfs / rootfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"),
            ["/dev/sda1 /"]
        );
        // The same device deeper down the tree: the one nearer the root stays.
        assert_eq!(
            run("/dev/sda1 /a/b/c ext4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"),
            ["/dev/sda1 /"]
        );
        assert_eq!(
            run("/dev/sda1 / ext4 rw 0 0\n/dev/sda1 /srv ext4 rw 0 0\n"),
            ["/dev/sda1 /"]
        );
        // Two remote exports that share a device number are both kept.
        assert_eq!(
            run("h:/a /nfs1 nfs rw 0 0\nh:/b /nfs2 nfs rw 0 0\n"),
            ["h:/a /nfs1", "h:/b /nfs2"]
        );
        // Over-mounted with another source on the same point: the later (visible) one wins.
        assert_eq!(
            run("tmpfs /over tmpfs rw 0 0\nshm /over tmpfs rw 0 0\n"),
            ["shm /over"]
        );
        // Unreachable mount points and dummies are kept for later filtering, never merged.
        assert_eq!(
            run("proc /proc proc rw 0 0\n/dev/x /gone ext4 rw 0 0\n"),
            ["proc /proc", "/dev/x /gone"]
        );
    }

    #[test]
    fn bind_mount_of_a_subdirectory_keeps_the_real_root() {
        // mountinfo: /srv is a bind mount of /data/srv (root /data/srv) listed before /.
        let text =
            "1 0 8:1 /data/srv /srv rw - ext4 /dev/sda1 rw\n2 0 8:1 / / rw - ext4 /dev/sda1 rw\n";
        let stat = |p: &str| (p == "/" || p == "/srv").then_some(makedev(8, 1));
        let (mut out, mut s) = (Vec::new(), String::new());
        assert_eq!(
            select(text, Format::MountInfo, false, stat, &mut s, &mut out),
            None
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].mount(text, Format::MountInfo).unwrap().target, "/");
        // Mount point nearer the root but a deeper source root: the first one stays.
        let text =
            "1 0 8:1 / /a/b rw - ext4 /dev/sda1 rw\n2 0 8:1 /deep /a rw - ext4 /dev/sda1 rw\n";
        let stat = |_: &str| Some(makedev(8, 1));
        select(text, Format::MountInfo, false, stat, &mut s, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].mount(text, Format::MountInfo).unwrap().target,
            "/a/b"
        );
    }

    #[test]
    fn sizes_like_df() {
        let m = parse_line(Format::Mounts, 0, "/dev/vda / ext4 rw 0 0").unwrap();
        let u = FsUsage {
            block_size: 4096,
            blocks: 66053998,
            bfree: 63214174,
            bavail: 20631628,
        };
        let d = to_disk(&m, &u, "/dev/vda", "/").unwrap();
        assert_eq!(d.total_bytes, 66053998 * 4096);
        assert_eq!(d.used_bytes, (66053998 - 63214174) * 4096);
        assert_eq!(d.free_bytes, 20631628 * 4096);
        // used / (used + avail): 2839824 / 23471452.
        assert_eq!(d.percent_used, 12.10);
        let zero = FsUsage {
            block_size: 4096,
            ..Default::default()
        };
        assert!(to_disk(&m, &zero, "x", "/").is_none());
        assert!(to_disk(&m, &u, "x", "relative").is_none());
        // Squashfs: full, nothing available.
        let ro = FsUsage {
            block_size: 262144,
            blocks: 19,
            bfree: 0,
            bavail: 0,
        };
        let d = to_disk(&m, &ro, "/dev/root", "/rom").unwrap();
        assert_eq!(
            (d.used_bytes, d.free_bytes, d.percent_used),
            (19 * 262144, 0, 100.0)
        );
    }

    #[test]
    fn uuid_suffix() {
        assert!(has_uuid_suffix(
            "/dev/disk/by-uuid/828fc648-9f30-43d8-a0b1-f7196a2edb66"
        ));
        assert!(!has_uuid_suffix("828fc648-9f30-43d8-a0b1-f7196a2edb66"));
        assert!(!has_uuid_suffix("/dev/sda1"));
    }

    #[test]
    fn odd_input() {
        assert_eq!(parse(""), Err(ParseError::Empty { file: MOUNTINFO }));
        assert_eq!(
            parse("22 27 0:21 / /proc rw,relatime proc proc rw\n")
                .unwrap_err()
                .to_string(),
            "/proc/self/mountinfo:1: no ' - ' separator"
        );
        assert!(parse("22 27 0-21 / /proc rw - proc proc rw\n").is_err());
        assert!(parse("22 27 0:99999999999 / /proc rw - proc proc rw\n").is_err());
        assert!(parse("22 27 0:21 / /proc rw - proc proc\n").is_err());
        assert!(parse_as("proc /proc proc\n", Format::Mounts).is_err());
        // Extra columns are fine; bad lines are skipped by `select` and reported once.
        let text = "garbage\n/dev/sda1 / ext4 rw 0 0 extra\n";
        let (mut out, mut s) = (Vec::new(), String::new());
        let err = select(text, Format::Mounts, false, |_| Some(1), &mut s, &mut out);
        assert_eq!(err.unwrap().to_string(), "/proc/mounts:1: no mount point");
        assert_eq!(out.len(), 1);
        for end in 0..OPENWRT.len() {
            let (mut out, mut s) = (Vec::new(), String::new());
            let text = &OPENWRT[..end];
            select(
                text,
                Format::MountInfo,
                false,
                |_| Some(1),
                &mut s,
                &mut out,
            );
            for slot in &out {
                slot.mount(text, Format::MountInfo).unwrap();
            }
        }
    }

    /// A NAS-attached router's table (types and sources as the kernel writes them for each
    /// client: mount.nfs, mount.cifs, sshfs, rclone, s3fs, ceph, glusterfs, davfs2, 9p, AFS).
    const NETWORKED: &str = "\
20 1 254:0 / / rw - ext4 /dev/vda rw
21 20 0:30 / /tmp rw - tmpfs tmpfs rw
22 20 0:40 / /mnt/nfs rw - nfs 10.0.0.5:/export rw
23 22 8:17 / /mnt/nfs/usb rw - ext4 /dev/sdb1 rw
24 20 0:41 / /mnt/nfs4 rw - nfs4 nas:/ rw
25 20 0:42 / /mnt/smb rw - cifs //nas/share rw
26 20 0:43 / /mnt/ssh rw - fuse.sshfs me@host:/home rw
27 20 0:44 / /mnt/gdrive rw - fuse.rclone gdrive: rw
28 20 0:45 / /mnt/s3 rw - fuse.s3fs s3fs rw
29 20 0:46 / /mnt/ceph rw - ceph 10.0.0.6:6789:/ rw
37 20 0:52 / /mnt/over rw - overlay overlayfs:/overlay rw
30 20 0:47 / /mnt/gluster rw - fuse.glusterfs gl:/vol rw
31 20 0:48 / /mnt/dav rw - davfs https://dav.example/ rw
32 20 0:49 / /mnt/9p rw - 9p hostshare rw
33 20 0:50 / /afs rw - afs AFS rw
34 20 0:51 / /mnt/fuse rw - fuse somefs rw
35 20 8:33 / /mnt/ntfs rw - fuseblk /dev/sdc1 rw
36 20 8:49 / /mnt/nfsish rw - ext4 /dev/sdd1 rw
";

    #[test]
    fn network_and_fuse_file_systems_are_never_stat_ed() {
        let mut stat_calls = Vec::new();
        let (mut out, mut s) = (Vec::new(), String::new());
        let mut n = 100;
        let err = select(
            NETWORKED,
            Format::MountInfo,
            false,
            |p| {
                stat_calls.push(p.to_owned());
                n += 1;
                Some(n)
            },
            &mut s,
            &mut out,
        );
        assert_eq!(err, None);
        // Only local file systems were asked; /mnt/nfs/usb is local but below NFS, and
        // /mnt/nfsish only shares a prefix with /mnt/nfs.
        assert_eq!(
            stat_calls,
            ["/", "/tmp", "/mnt/over", "/mnt/ntfs", "/mnt/nfsish"],
            "{stat_calls:?}"
        );
        let kept: Vec<&str> = out
            .iter()
            .filter(|sl| !sl.network)
            .map(|sl| sl.mount(NETWORKED, Format::MountInfo).unwrap().target)
            .collect();
        assert_eq!(kept, ["/", "/tmp", "/mnt/over", "/mnt/ntfs", "/mnt/nfsish"]);
        // DISK_REMOTE=1: everything is asked and kept, as plain df does.
        stat_calls.clear();
        select(
            NETWORKED,
            Format::MountInfo,
            true,
            |p| {
                stat_calls.push(p.to_owned());
                n += 1;
                Some(n)
            },
            &mut s,
            &mut out,
        );
        assert_eq!(stat_calls.len(), 18);
        assert!(out.iter().all(|sl| !sl.network));
        // gnulib's remote rule alone (what `df -l` drops) misses the FUSE ones and 9p/davfs
        // whose sources have no ':'; ours catches them.
        for m in parse(NETWORKED).unwrap() {
            let local = matches!(m.fstype, "ext4" | "tmpfs" | "fuseblk" | "overlay");
            assert_eq!(m.is_network(), !local, "{}", m.target);
        }
        assert!(is_below("/a/b", "/a") && is_below("/a", "/a") && is_below("/x", "/"));
        assert!(!is_below("/ab", "/a") && !is_below("/a", "/a/b"));
    }
}
