//! `register` and API_KEY_FILE against a real key server (Python, on 127.0.0.1) and real
//! files: the key is written through the directory without following a symlink swapped in
//! while the request is in flight, an existing file keeps its owner and mode, and a key that
//! cannot be written (read-only file system) is held in memory and the write retried.

use crate::common::*;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A key server: answers every POST with `{"apiKey": KEY}`; while `DIR/hold` exists it
/// creates `DIR/got` on a request and waits for `hold` to go before answering. Counts requests
/// in `DIR/requests`.
const KEY_SERVER: &str = r#"
import os, socket, sys, time
port, d, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(8); print("READY", flush=True)
while True:
    c, _ = s.accept(); data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(65536)
        if not chunk: break
        data += chunk
    with open(os.path.join(d, "requests"), "a") as f: f.write("1\n")
    if os.path.exists(os.path.join(d, "hold")):
        open(os.path.join(d, "got"), "w").close()
        while os.path.exists(os.path.join(d, "hold")): time.sleep(0.05)
    body = ('{"apiKey": "%s"}' % key).encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    c.close()
"#;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> bool {
    let ok = Command::new("python3")
        .arg("-c")
        .arg("1")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(!in_ci(), "python3 is required in CI");
        println!("skipped: python3 is not installed");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn key_server(dir: &Path, key: &str) -> (Killed, u16) {
    let port = free_port();
    let script = dir.join("keyserver.py");
    fs::write(&script, KEY_SERVER).unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .arg(dir)
        .arg(key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "READY");
    (Killed(child), port)
}

fn requests(dir: &Path) -> usize {
    fs::read_to_string(dir.join("requests"))
        .unwrap_or_default()
        .lines()
        .count()
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

fn conf_text(port: u16) -> String {
    format!(
        "# agent\nSERVER_ID=r1\nPLATFORM_API_URL=http://127.0.0.1:9/api\nGENERATE_KEY_URL=http://127.0.0.1:{port}/key\nAPI_KEY=\n"
    )
}

fn secret() -> String {
    format!("sk-reg-{}-SECRET", std::process::id())
}

#[test]
fn register_never_follows_a_symlink_swapped_in_and_retries_the_write() {
    if !python() {
        return;
    }
    let dir = scratch("register-symlink");
    let key = secret();
    let (_srv, port) = key_server(&dir, &key);
    let etc = dir.join("etc");
    let other = dir.join("other");
    fs::create_dir_all(&etc).unwrap();
    fs::create_dir_all(&other).unwrap();
    let conf = etc.join("agent.conf");
    fs::write(&conf, conf_text(port)).unwrap();
    let victim = other.join("victim");
    fs::write(&victim, "root's file\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();

    fs::write(dir.join("hold"), "").unwrap();
    let errf = dir.join("register.stderr");
    let mut child = Killed(
        agent()
            .arg("register")
            .arg("--config")
            .arg(&conf)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&errf).unwrap())
            .spawn()
            .unwrap(),
    );
    // While the request is in flight, the config file becomes a symlink to the victim.
    wait_for(Duration::from_secs(10), "the key request", || {
        dir.join("got").exists()
    });
    fs::remove_file(&conf).unwrap();
    std::os::unix::fs::symlink(&victim, &conf).unwrap();
    fs::remove_file(dir.join("hold")).unwrap();
    wait_for(Duration::from_secs(10), "the refusal", || {
        fs::read_to_string(&errf)
            .unwrap_or_default()
            .contains("is a symlink; not following it")
    });
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file\n");
    assert_eq!(
        fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let err = fs::read_to_string(&errf).unwrap();
    assert!(
        err.contains("held in memory only, retrying the write"),
        "{err}"
    );
    assert!(!err.contains(&key), "key in the log: {err}");
    // The administrator puts the real file back: the next attempt stores the same key.
    fs::remove_file(&conf).unwrap();
    fs::write(&conf, conf_text(port)).unwrap();
    let status = wait_exit(&mut child.0, Duration::from_secs(15));
    assert!(status.success(), "{}", fs::read_to_string(&errf).unwrap());
    assert!(fs::read_to_string(&conf)
        .unwrap()
        .contains(&format!("\nAPI_KEY={key}\n")));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file\n");
    assert_eq!(requests(&dir), 1, "one key issued, one request");
    assert!(!etc.join(".agent.conf.netmon-tmp").exists());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < end, "register did not finish");
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn register_keeps_owner_and_mode_of_an_existing_file() {
    if !python() {
        return;
    }
    let dir = scratch("register-mode");
    let key = secret();
    let (_srv, port) = key_server(&dir, &key);
    let conf = dir.join("agent.conf");
    fs::write(&conf, conf_text(port)).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o640)).unwrap();
    // As root the file belongs to someone else (as another user, to that user).
    let owner = if is_root() {
        std::os::unix::fs::chown(&conf, Some(4321), Some(4322)).unwrap();
        (4321, 4322)
    } else {
        let m = fs::metadata(&conf).unwrap();
        (m.uid(), m.gid())
    };
    let o = run(agent().arg("register").arg("--config").arg(&conf));
    assert!(o.status.success(), "{}", stderr(&o));
    let m = fs::metadata(&conf).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!((m.uid(), m.gid()), owner);
    assert!(fs::read_to_string(&conf)
        .unwrap()
        .contains(&format!("API_KEY={key}\n")));
}

#[test]
fn api_key_file_is_created_0600_read_back_and_never_registered_twice() {
    if !python() {
        return;
    }
    let dir = scratch("register-keyfile");
    let key = secret();
    let (_srv, port) = key_server(&dir, &key);
    let conf = dir.join("agent.conf");
    let keyfile = dir.join("api_key");
    fs::write(
        &conf,
        format!("{}API_KEY_FILE={}\n", conf_text(port), keyfile.display()),
    )
    .unwrap();
    let text_before = fs::read_to_string(&conf).unwrap();
    let o = run(agent().arg("register").arg("--config").arg(&conf));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&keyfile).unwrap(), format!("{key}\n"));
    assert_eq!(
        fs::metadata(&keyfile).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert_eq!(fs::read_to_string(&conf).unwrap(), text_before);
    // `check` reads it back (redacted): the agent has a key, so `run` would not register.
    let o = run(agent().args(["check", "--offline", "--config"]).arg(&conf));
    assert!(
        stdout(&o).contains(&format!("set <redacted, {} chars>", key.len())),
        "{}",
        stdout(&o)
    );
    // A symlink at API_KEY_FILE is refused by name, never followed.
    fs::remove_file(&keyfile).unwrap();
    std::os::unix::fs::symlink(&conf, &keyfile).unwrap();
    let o = run(agent().args(["check", "--offline", "--config"]).arg(&conf));
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains(&format!(
            "{}: API_KEY_FILE: is a symlink; not following it",
            keyfile.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(requests(&dir), 1);
}

/// The directory of the config file is read-only while the key comes in (a read-only bind
/// mount in a private mount namespace as root; mode 0555 otherwise): the key is kept and the
/// write retried until the file system is writable again.
#[test]
fn register_on_a_read_only_file_system_keeps_the_key() {
    if !python() {
        return;
    }
    let dir = scratch("register-rofs");
    let key = secret();
    let (_srv, port) = key_server(&dir, &key);
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).unwrap();
    let conf = etc.join("agent.conf");
    fs::write(&conf, conf_text(port)).unwrap();
    let errf = dir.join("register.stderr");
    let unlock = dir.join("unlock");
    let mut cmd = if is_root() {
        // Inside one private mount namespace: bind etc read-only, run register, and make it
        // writable again once the test says so.
        let mut c = Command::new("unshare");
        c.arg("-m")
            .arg("--propagation")
            .arg("private")
            .arg("sh")
            .arg("-c")
            .arg(format!(
                "mount --bind '{e}' '{e}' && mount -o remount,bind,ro '{e}' || exit 1; \
             ( while [ ! -e '{u}' ]; do sleep 0.1; done; mount -o remount,bind,rw '{e}' ) & \
             exec '{bin}' register --config '{c}'",
                e = etc.display(),
                u = unlock.display(),
                bin = bin().display(),
                c = conf.display()
            ));
        c.env("NETMON_CONFIG", "/dev/null");
        c
    } else {
        fs::set_permissions(&etc, fs::Permissions::from_mode(0o555)).unwrap();
        let mut c = agent();
        c.arg("register").arg("--config").arg(&conf);
        c
    };
    let mut child = Killed(
        cmd.stdout(Stdio::null())
            .stderr(fs::File::create(&errf).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(15), "the failed write", || {
        fs::read_to_string(&errf)
            .unwrap_or_default()
            .contains("held in memory only")
    });
    let err = fs::read_to_string(&errf).unwrap();
    assert!(
        err.contains("Read-only file system") || err.contains("Permission denied"),
        "{err}"
    );
    if is_root() {
        fs::write(&unlock, "").unwrap();
    } else {
        fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let status = wait_exit(&mut child.0, Duration::from_secs(20));
    let err = fs::read_to_string(&errf).unwrap();
    assert!(status.success(), "{err}");
    assert!(!err.contains(&key));
    assert!(fs::read_to_string(&conf)
        .unwrap()
        .contains(&format!("API_KEY={key}\n")));
    assert_eq!(requests(&dir), 1, "the same key, not a second registration");
}
