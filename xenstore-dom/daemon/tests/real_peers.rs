//! Real peers against the host daemon: Debian's xenstore-utils and pyxs,
//! unmodified, over a unix socket in a temporary directory.
//!
//! Missing tools fail the test with the apt-get command that installs them.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A running daemon, killed on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        Daemon::start_with(name, &[])
    }

    fn start_with(name: &str, extra: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("xcp-xenstored-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let socket = dir.join("socket");
        let pidfile = dir.join("pid");
        let child = Command::new(env!("CARGO_BIN_EXE_xcp-xenstored"))
            .arg("--socket")
            .arg(&socket)
            .arg("--pidfile")
            .arg(&pidfile)
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn xcp-xenstored");
        let deadline = Instant::now() + Duration::from_secs(5);
        while UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not listen on {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let pid = std::fs::read_to_string(&pidfile).expect("pidfile written");
        assert_eq!(pid.trim(), child.id().to_string());
        Daemon { child, dir, socket }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn need(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install it with `apt-get install -y {package}`"
    );
}

/// Run a command with a timeout; its output.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn peer");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if child.try_wait().expect("wait peer").is_some() {
            return child.wait_with_output().expect("peer output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("peer output");
            panic!(
                "{cmd:?} timed out: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn xs(d: &Daemon, tool: &str, args: &[&str]) -> Output {
    let path = format!("/usr/bin/{tool}");
    need(&path, "xenstore-utils");
    run(Command::new(path)
        .args(args)
        .env("XENSTORED_PATH", &d.socket))
}

#[track_caller]
fn xs_ok(d: &Daemon, tool: &str, args: &[&str]) -> String {
    let out = xs(d, tool, args);
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn xenstore_utils_write_read_ls_rm_chmod() {
    let d = Daemon::start("utils");
    xs_ok(
        &d,
        "xenstore-write",
        &["/vm/1/name", "guest", "/vm/1/mem", "512"],
    );
    assert_eq!(xs_ok(&d, "xenstore-read", &["/vm/1/name"]), "guest\n");
    assert_eq!(xs_ok(&d, "xenstore-list", &["/vm/1"]), "mem\nname\n");
    let ls = xs_ok(&d, "xenstore-ls", &["/vm"]);
    assert!(
        ls.contains("1 = \"\"") && ls.contains(" name = \"guest\""),
        "{ls}"
    );
    assert!(xs(&d, "xenstore-exists", &["/vm/1/mem"]).status.success());
    assert!(!xs(&d, "xenstore-exists", &["/vm/2"]).status.success());
    xs_ok(&d, "xenstore-chmod", &["/vm/1/name", "n0", "r7"]);
    let perms = xs_ok(&d, "xenstore-ls", &["-p", "/vm/1"]);
    assert!(perms.contains("(n0,r7)"), "{perms}");
    xs_ok(&d, "xenstore-rm", &["/vm/1/mem"]);
    assert_eq!(xs_ok(&d, "xenstore-list", &["/vm/1"]), "name\n");
    let err = xs(&d, "xenstore-read", &["/vm/1/mem"]);
    assert!(!err.status.success());
    // The generic `xenstore` front end too.
    assert_eq!(xs_ok(&d, "xenstore", &["read", "/vm/1/name"]), "guest\n");
}

#[test]
fn xenstore_list_of_a_big_directory_uses_directory_part() {
    let d = Daemon::start("big");
    // 600 children list to ~10 KiB: DIRECTORY answers E2BIG and
    // libxenstore falls back to DIRECTORY_PART.
    let names: Vec<String> = (0..600)
        .map(|i| format!("/big/child-number-{i:04}"))
        .collect();
    let mut args: Vec<&str> = Vec::new();
    for n in &names {
        args.push(n);
        args.push("x");
    }
    xs_ok(&d, "xenstore-write", &args);
    let list = xs_ok(&d, "xenstore-list", &["/big"]);
    let got: Vec<&str> = list.lines().collect();
    assert_eq!(got.len(), 600);
    assert_eq!(got[0], "child-number-0000");
    assert_eq!(got[599], "child-number-0599");
}

#[test]
fn xenstore_watch_sees_initial_and_change() {
    let d = Daemon::start("watch");
    need("/usr/bin/xenstore-watch", "xenstore-utils");
    xs_ok(&d, "xenstore-write", &["/w", ""]);
    let mut watch = Command::new("/usr/bin/xenstore-watch")
        .args(["-n", "2", "/w"])
        .env("XENSTORED_PATH", &d.socket)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn xenstore-watch");
    // The watch is registered once its initial event is printed.
    let mut stdout = watch.stdout.take().expect("piped");
    let mut seen = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"/w\n") {
        assert!(Instant::now() < deadline, "no initial event");
        match stdout.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => panic!(
                "xenstore-watch ended early: {}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    xs_ok(&d, "xenstore-write", &["/w/x", "1"]);
    let mut rest = String::new();
    let start = Instant::now();
    loop {
        if watch.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > TIMEOUT {
            let _ = watch.kill();
            panic!("xenstore-watch did not see the change");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    stdout.read_to_string(&mut rest).expect("read rest");
    assert_eq!(rest, "/w/x\n");
}

#[test]
fn pyxs_scenarios() {
    let d = Daemon::start("pyxs");
    need("/usr/bin/python3", "python3");
    let probe = run(Command::new("/usr/bin/python3").args(["-c", "import pyxs"]));
    assert!(
        probe.status.success(),
        "pyxs is missing: install it with `apt-get install -y python3-pyxs`"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/pyxs_scenarios.py");
    let out = run(Command::new("/usr/bin/python3").arg(script).arg(&d.socket));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "write-read-list-rm",
        "perms",
        "transactions",
        "transaction-conflict",
        "domains",
        "watch",
    ] {
        assert!(
            stdout.contains(&format!("PASS {name}\n")),
            "{name}: {stdout}"
        );
    }
    assert!(stdout.ends_with("ALL PASS\n"));
}

fn raw_request(stream: &mut UnixStream, ty: u32, req_id: u32, payload: &[u8]) -> (u32, Vec<u8>) {
    let mut msg = Vec::new();
    for w in [ty, req_id, 0, payload.len() as u32] {
        msg.extend_from_slice(&w.to_le_bytes());
    }
    msg.extend_from_slice(payload);
    stream.write_all(&msg).expect("send");
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).expect("reply header");
    let word = |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    assert_eq!(word(1), req_id);
    let mut body = vec![0u8; word(3) as usize];
    stream.read_exact(&mut body).expect("reply body");
    (word(0), body)
}

#[test]
fn raw_socket_unknown_type_and_oversize() {
    let d = Daemon::start("raw");
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    assert_eq!(raw_request(&mut s, 20, 1, b""), (16, b"ENOSYS\0".to_vec()));
    assert_eq!(
        raw_request(&mut s, 0xffff, 2, b""),
        (16, b"ENOSYS\0".to_vec())
    );
    // Oversize payload: the daemon drops this connection.
    let mut bad = UnixStream::connect(&d.socket).expect("connect");
    bad.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut msg = Vec::new();
    for w in [2u32, 1, 0, 5000] {
        msg.extend_from_slice(&w.to_le_bytes());
    }
    bad.write_all(&msg).expect("send");
    let mut buf = [0u8; 16];
    assert_eq!(bad.read(&mut buf).expect("EOF, not a timeout"), 0);
    // Others are unaffected.
    assert_eq!(
        raw_request(&mut s, 11, 3, b"/ok\0yes"),
        (11, b"OK\0".to_vec())
    );
    assert_eq!(raw_request(&mut s, 2, 4, b"/ok\0"), (2, b"yes".to_vec()));
}

#[test]
fn raw_socket_pipelined_requests_with_unread_replies_are_flow_controlled() {
    let d = Daemon::start("flow");
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let value = vec![b'v'; 2000];
    let mut payload = b"/big\0".to_vec();
    payload.extend_from_slice(&value);
    assert_eq!(raw_request(&mut s, 11, 1, &payload), (11, b"OK\0".to_vec()));
    // 2000 READs of a 2000-byte value (~4 MB of replies) sent before any
    // reply is read: more than the socket buffers hold, so the daemon must
    // stop reading this client instead of queueing without bound.
    const N: u32 = 2000;
    let mut writer = s.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            let mut msg = Vec::new();
            for w in [2u32, 100 + i, 0, 5] {
                msg.extend_from_slice(&w.to_le_bytes());
            }
            msg.extend_from_slice(b"/big\0");
            writer.write_all(&msg).expect("pipelined send");
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    // Meanwhile another client is served.
    let mut other = UnixStream::connect(&d.socket).expect("connect");
    other.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    assert_eq!(
        raw_request(&mut other, 11, 1, b"/other\0x"),
        (11, b"OK\0".to_vec())
    );
    // Every reply arrives, in order.
    for i in 0..N {
        let mut header = [0u8; 16];
        s.read_exact(&mut header).expect("reply header");
        let word =
            |k: usize| u32::from_le_bytes(header[k * 4..k * 4 + 4].try_into().expect("4 bytes"));
        assert_eq!((word(0), word(1), word(3)), (2, 100 + i, 2000));
        let mut body = vec![0u8; 2000];
        s.read_exact(&mut body).expect("reply body");
        assert_eq!(body, value);
    }
    sender.join().expect("sender");
}

#[test]
fn quota_flag_sets_global_defaults() {
    let d = Daemon::start_with("quota", &["--quota", "nodes=42", "--quota", "watches=7"]);
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    assert_eq!(
        raw_request(&mut s, 25, 1, b"nodes\0"),
        (25, b"42\0".to_vec())
    );
    assert_eq!(
        raw_request(&mut s, 25, 2, b"watches\0"),
        (25, b"7\0".to_vec())
    );
    let bad = run(Command::new(env!("CARGO_BIN_EXE_xcp-xenstored")).args([
        "--socket",
        "/nonexistent/s",
        "--quota",
        "bogus=1",
    ]));
    assert_eq!(bad.status.code(), Some(2));
}
