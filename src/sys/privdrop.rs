//! Dropping root: `RUN_AS_USER`.
//!
//! Started as root (OpenWrt without ujail, a plain `sudo`), the agent opens its capture socket
//! and then becomes `RUN_AS_USER` for good: supplementary groups, gid and uid all switch (real,
//! effective and saved), and it checks that root cannot be regained. One capability survives,
//! CAP_NET_RAW, and only in the *permitted* set: the effective set is empty (`CapEff: 0` in
//! /proc/PID/status), and the bounding set is cut down to CAP_NET_RAW. When the capture socket
//! must be reopened (the interface was re-created), [`with_net_raw`] raises CAP_NET_RAW to
//! effective for the duration of the open and lowers it again.
//!
//! Started as that user already (systemd `User=` + `AmbientCapabilities=`, ujail, or file
//! capabilities), [`drop_to`] only trims the capability sets to the same end state.

use std::ffi::CString;
use std::fmt;

use super::syscall;

/// CAP_NET_RAW's number.
pub const CAP_NET_RAW: u32 = 13;
const CAP_SETPCAP: u32 = 8;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;

/// Why switching users failed.
#[derive(Debug)]
pub enum PrivError {
    /// The user is not in the password database.
    NoSuchUser(String),
    /// Not root, and not that user either: there is nothing we may switch to.
    NotRoot {
        /// The user asked for.
        user: String,
        /// Our uid.
        uid: u32,
    },
    /// A system call of the switch failed.
    Sys {
        /// The call that failed.
        what: &'static str,
        /// Its error.
        source: std::io::Error,
    },
    /// The switch seemed to work, but the check afterwards found a way back.
    Verify(String),
}

impl fmt::Display for PrivError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivError::NoSuchUser(u) => write!(f, "RUN_AS_USER={u}: no such user"),
            PrivError::NotRoot { user, uid } => write!(
                f,
                "RUN_AS_USER={user}: cannot switch user, running as uid {uid}, not root"
            ),
            PrivError::Sys { what, source } => {
                write!(f, "dropping privileges: {what}: {source}")
            }
            PrivError::Verify(m) => write!(f, "dropping privileges: check failed: {m}"),
        }
    }
}

impl std::error::Error for PrivError {}

impl From<PrivError> for crate::error::Error {
    fn from(e: PrivError) -> Self {
        match e {
            PrivError::NoSuchUser(_) | PrivError::NotRoot { .. } => {
                crate::error::Error::Usage(e.to_string())
            }
            _ => crate::error::Error::Other(e.to_string()),
        }
    }
}

fn sys(what: &'static str) -> impl FnOnce(std::io::Error) -> PrivError {
    move |source| PrivError::Sys { what, source }
}

/// A user from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Looks `name` up with getpwnam_r (musl reads /etc/passwd itself; no NSS modules needed).
pub fn lookup_user(name: &str) -> Result<User, PrivError> {
    let cname = CString::new(name).map_err(|_| PrivError::NoSuchUser(name.to_owned()))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is plain old data; zeroed is a valid value that getpwnam_r overwrites.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated; `pwd`, `buf` (with its true length) and `result`
        // are valid for writes for the duration of the call; the strings it stores point into
        // `buf`, which we do not read.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(PrivError::Sys {
                what: "getpwnam_r",
                source: std::io::Error::from_raw_os_error(rc),
            });
        }
        if result.is_null() {
            return Err(PrivError::NoSuchUser(name.to_owned()));
        }
        return Ok(User {
            name: name.to_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        });
    }
}

/// The three capability sets of the calling thread, as bit masks (bit N = capability N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's capability sets (capget).
pub fn caps_get() -> std::io::Result<Caps> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 of capget takes a header and an array of two CapData, both valid for
    // writes here; pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Caps {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// Sets the calling thread's capability sets (capset).
pub fn caps_set(c: Caps) -> std::io::Result<()> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: c.effective as u32,
            permitted: c.permitted as u32,
            inheritable: c.inheritable as u32,
        },
        CapData {
            effective: (c.effective >> 32) as u32,
            permitted: (c.permitted >> 32) as u32,
            inheritable: (c.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: version 3 of capset reads a header and an array of two CapData, both valid and
    // initialised; pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

const fn bit(cap: u32) -> u64 {
    1 << cap
}

fn getresuid() -> (u32, u32, u32) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid out-pointers; getresuid cannot fail with valid pointers.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    (r, e, s)
}

fn getresgid() -> (u32, u32, u32) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid out-pointers; getresgid cannot fail with valid pointers.
    unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
    (r, e, s)
}

/// What [`drop_to`] did, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Was root, is now `user`.
    Switched(User),
    /// Was `user` already; only the capabilities were trimmed.
    AlreadyUser(User),
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (how, u) = match self {
            Dropped::Switched(u) => ("switched to", u),
            Dropped::AlreadyUser(u) => ("running as", u),
        };
        write!(
            f,
            "{how} user {} (uid {}, gid {}); CAP_NET_RAW kept in the permitted set only",
            u.name, u.uid, u.gid
        )
    }
}

/// Becomes `user` for good, keeping only CAP_NET_RAW, permitted but not effective. Call it
/// after every privileged socket is open. Afterwards setuid(0) fails, /proc/self/status shows
/// the user's ids in all four Uid/Gid columns, `CapEff: 0`, and `CapBnd` holds CAP_NET_RAW at
/// most; `NoNewPrivs` is set.
///
/// Call it while the process has one thread: capability sets are per thread.
pub fn drop_to(name: &str) -> Result<Dropped, PrivError> {
    let user = lookup_user(name)?;
    let (ruid, euid, _) = getresuid();
    let dropped = if euid == 0 {
        switch_from_root(&user)?;
        Dropped::Switched(user.clone())
    } else if ruid == user.uid && euid == user.uid {
        trim_caps()?;
        Dropped::AlreadyUser(user.clone())
    } else {
        return Err(PrivError::NotRoot {
            user: name.to_owned(),
            uid: euid,
        });
    };
    no_new_privs()?;
    verify(&user)?;
    Ok(dropped)
}

fn switch_from_root(user: &User) -> Result<(), PrivError> {
    // The bounding set: everything but CAP_NET_RAW goes (needs CAP_SETPCAP, which root has
    // now and will not have after setuid). A container that already took CAP_SETPCAP away
    // leaves it as it is: the checks below do not depend on it.
    let before = caps_get().map_err(sys("capget"))?;
    if before.effective & bit(CAP_SETPCAP) != 0 {
        for cap in 0..64u32 {
            if cap == CAP_NET_RAW {
                continue;
            }
            match syscall!(prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)) {
                Ok(_) => {}
                // Past the kernel's last capability.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(sys("prctl(PR_CAPBSET_DROP)")(e)),
            }
        }
    }
    // Keep the permitted set across setuid (without this, leaving uid 0 clears it).
    syscall!(prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, 0, 0, 0))
        .map_err(sys("prctl(PR_SET_KEEPCAPS)"))?;
    let groups = [user.gid as libc::gid_t];
    syscall!(setgroups(1, groups.as_ptr())).map_err(sys("setgroups"))?;
    syscall!(setresgid(user.gid, user.gid, user.gid)).map_err(sys("setresgid"))?;
    syscall!(setresuid(user.uid, user.uid, user.uid)).map_err(sys("setresuid"))?;
    syscall!(prctl(libc::PR_SET_KEEPCAPS, 0 as libc::c_ulong, 0, 0, 0))
        .map_err(sys("prctl(PR_SET_KEEPCAPS)"))?;
    trim_caps()
}

/// Effective and inheritable empty, permitted at most CAP_NET_RAW, ambient empty.
fn trim_caps() -> Result<(), PrivError> {
    let now = caps_get().map_err(sys("capget"))?;
    caps_set(Caps {
        effective: 0,
        permitted: now.permitted & bit(CAP_NET_RAW),
        inheritable: 0,
    })
    .map_err(sys("capset"))?;
    // Ambient capabilities need the inheritable bit, so the capset above has cleared them
    // already; say so explicitly too (kernels before 4.3 do not know the call: fine).
    match syscall!(prctl(
        libc::PR_CAP_AMBIENT,
        PR_CAP_AMBIENT_CLEAR_ALL,
        0 as libc::c_ulong,
        0 as libc::c_ulong,
        0 as libc::c_ulong
    )) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(sys("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")(e)),
    }
}

fn no_new_privs() -> Result<(), PrivError> {
    syscall!(prctl(
        libc::PR_SET_NO_NEW_PRIVS,
        1 as libc::c_ulong,
        0,
        0,
        0
    ))
    .map(drop)
    .map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))
}

fn verify(user: &User) -> Result<(), PrivError> {
    let uids = getresuid();
    let gids = getresgid();
    if uids != (user.uid, user.uid, user.uid) || gids != (user.gid, user.gid, user.gid) {
        return Err(PrivError::Verify(format!(
            "ids are uid {}/{}/{} gid {}/{}/{}, expected {} and {}",
            uids.0, uids.1, uids.2, gids.0, gids.1, gids.2, user.uid, user.gid
        )));
    }
    if user.uid != 0 {
        // SAFETY: setuid/setgid take plain integers; we expect EPERM.
        let back = unsafe { libc::setuid(0) } == 0 || unsafe { libc::setgid(0) } == 0;
        if back {
            return Err(PrivError::Verify("setuid(0) or setgid(0) succeeded".into()));
        }
    }
    let caps = caps_get().map_err(sys("capget"))?;
    if caps.effective != 0 || caps.inheritable != 0 || caps.permitted & !bit(CAP_NET_RAW) != 0 {
        return Err(PrivError::Verify(format!(
            "capabilities left: effective {:#x}, permitted {:#x}, inheritable {:#x}",
            caps.effective, caps.permitted, caps.inheritable
        )));
    }
    Ok(())
}

/// Runs `f` with CAP_NET_RAW effective, when it is in the permitted set (after [`drop_to`]),
/// and lowers it again afterwards. Without the permitted bit (or when the effective set has
/// it anyway, as for root that did not drop) `f` just runs. Opening an AF_PACKET socket is the
/// use: the socket keeps working after the capability is lowered.
pub fn with_net_raw<T>(f: impl FnOnce() -> T) -> T {
    let raised = match caps_get() {
        Ok(c) if c.permitted & bit(CAP_NET_RAW) != 0 && c.effective & bit(CAP_NET_RAW) == 0 => {
            caps_set(Caps {
                effective: c.effective | bit(CAP_NET_RAW),
                ..c
            })
            .ok()
            .map(|()| c)
        }
        _ => None,
    };
    let out = f();
    if let Some(before) = raised {
        // Lowering within our own sets cannot fail; if it somehow did, the next drop_to-style
        // check would see it, and we say so now.
        if let Err(e) = caps_set(before) {
            error!("lowering CAP_NET_RAW again failed: {e}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::Command;

    #[test]
    fn looks_up_root_and_refuses_unknown_users() {
        let root = lookup_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(matches!(
            lookup_user("no-such-user-here"),
            Err(PrivError::NoSuchUser(_))
        ));
        assert!(matches!(lookup_user("a\0b"), Err(PrivError::NoSuchUser(_))));
    }

    #[test]
    fn caps_read_back_as_proc_shows_them() {
        let c = caps_get().unwrap();
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let field = |k: &str| {
            let line = status.lines().find(|l| l.starts_with(k)).unwrap();
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(c.effective, field("CapEff:"));
        assert_eq!(c.permitted, field("CapPrm:"));
        assert_eq!(c.inheritable, field("CapInh:"));
    }

    fn packet_socket() -> std::io::Result<OwnedFd> {
        let fd = syscall!(socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            0
        ))?;
        // SAFETY: socket just returned this fd and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Runs `child_<name>` alone in a fresh process of this test binary: the drop is for good
    /// and must not touch the other tests' threads.
    fn in_child(name: &str) {
        if !is_root() {
            println!("skipped: needs root to drop privileges");
            return;
        }
        if lookup_user("nobody").is_err() {
            println!("skipped: no user 'nobody' on this system");
            return;
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                &format!("sys::privdrop::tests::child_{name}"),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NETMON_PRIVDROP_CHILD", name)
            .output();
        let out = match out {
            Ok(o) => o,
            // Under qemu-user without binfmt_misc the test binary cannot exec itself.
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
                println!("skipped: cannot re-run this test binary here ({e})");
                return;
            }
            Err(e) => panic!("re-running the test binary: {e}"),
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child {name} failed:\n{text}");
        assert!(text.contains(&format!("child {name} ok")), "{text}");
    }

    fn is_root() -> bool {
        getresuid().1 == 0
    }

    fn is_child(name: &str) -> bool {
        std::env::var("NETMON_PRIVDROP_CHILD").as_deref() == Ok(name)
    }

    #[test]
    fn drop_keeps_net_raw_permitted_only() {
        in_child("drop");
    }

    #[test]
    fn child_drop() {
        if !is_child("drop") {
            return;
        }
        let nobody = lookup_user("nobody").unwrap();
        // Opened as root before the drop: keeps working after it.
        let early = packet_socket().expect("root opens AF_PACKET");
        let d = drop_to("nobody").unwrap();
        assert_eq!(d, Dropped::Switched(nobody.clone()));
        assert_eq!(getresuid(), (nobody.uid, nobody.uid, nobody.uid));
        // SAFETY: plain integer argument; must fail now.
        assert_eq!(unsafe { libc::setuid(0) }, -1);
        let c = caps_get().unwrap();
        assert_eq!(c.effective, 0);
        assert_eq!(c.permitted, bit(CAP_NET_RAW));
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
        assert!(status.contains("CapBnd:\t0000000000002000"), "{status}");
        assert!(status.contains("NoNewPrivs:\t1"), "{status}");
        // Without raising: refused. Raised: works. Lowered again afterwards.
        let e = packet_socket().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
        let s = with_net_raw(packet_socket).expect("AF_PACKET with CAP_NET_RAW raised");
        assert_eq!(caps_get().unwrap().effective, 0);
        assert!(packet_socket().is_err());
        drop((early, s));
        // Once the permitted bit is gone, with_net_raw cannot bring it back.
        caps_set(Caps::default()).unwrap();
        assert!(with_net_raw(packet_socket).is_err());
        // Nor can capset.
        assert!(caps_set(Caps {
            effective: bit(CAP_NET_RAW),
            permitted: bit(CAP_NET_RAW),
            inheritable: 0
        })
        .is_err());
        println!("child drop ok");
    }

    #[test]
    fn drop_to_the_user_we_already_are_only_trims() {
        in_child("already");
    }

    #[test]
    fn child_already() {
        if !is_child("already") {
            return;
        }
        // Become nobody with CAP_NET_RAW effective, as systemd's AmbientCapabilities leaves it.
        let nobody = lookup_user("nobody").unwrap();
        switch_from_root(&nobody).unwrap();
        caps_set(Caps {
            effective: bit(CAP_NET_RAW),
            permitted: bit(CAP_NET_RAW),
            inheritable: 0,
        })
        .unwrap();
        assert!(packet_socket().is_ok());
        let d = drop_to("nobody").unwrap();
        assert_eq!(d, Dropped::AlreadyUser(nobody));
        assert_eq!(caps_get().unwrap().effective, 0);
        assert!(packet_socket().is_err());
        assert!(with_net_raw(packet_socket).is_ok());
        // Another user is out of reach now.
        assert!(matches!(drop_to("root"), Err(PrivError::NotRoot { .. })));
        println!("child already ok");
    }
}
