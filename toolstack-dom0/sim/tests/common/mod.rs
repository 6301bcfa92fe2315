//! Test harness: starts xcp-sim on a free loopback port, speaks raw HTTP and
//! JSON-RPC to it, and prepares cached client installs (venv, npm) under the
//! cargo target dir. Every child process runs under a timeout.

#![allow(dead_code)] // reason: each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde_json::{json, Value};

/// The password the tests use.
pub const PASSWORD: &str = "sim-test-pw";

/// A running simulator, killed on drop.
pub struct Sim {
    /// The simulator process.
    pub child: Child,
    /// Its loopback port.
    pub port: u16,
    /// Its state directory.
    pub dir: PathBuf,
    alive: Arc<AtomicBool>,
}

/// A fresh state directory under the target dir.
pub fn state_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sim-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create state dir");
    dir
}

impl Sim {
    /// Starts xcp-sim on `dir`, waiting (≤ 30 s) for its ready line.
    pub fn start(dir: &Path) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xcp-sim"))
            .args(["--listen", "127.0.0.1:0", "--state"])
            .arg(dir)
            .args(["--password", PASSWORD, "--iterations", "1000"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn xcp-sim");
        // Watchdog: the simulator never outlives 10 minutes of a test.
        let pid = child.id().to_string();
        let alive = Arc::new(AtomicBool::new(true));
        let watch = alive.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(600));
            if watch.load(Ordering::SeqCst) {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("xcp-sim ready line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in ready line");
        Sim {
            child,
            port,
            dir: dir.to_path_buf(),
            alive,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the simulator (by its pid) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.alive.store(false, Ordering::SeqCst);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends raw bytes, returns (status, body). Reads until the server closes
/// or the Content-Length is satisfied.
pub fn raw_request(port: u16, bytes: &[u8]) -> (u16, Vec<u8>) {
    try_raw_request(port, bytes).expect("connect")
}

/// [`raw_request`], or None when nothing accepts the connection (the
/// server was killed).
pub fn try_raw_request(port: u16, bytes: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Some(parse_response(&out))
}

fn parse_response(out: &[u8]) -> (u16, Vec<u8>) {
    let text = String::from_utf8_lossy(out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => out[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

/// POSTs a body, returns (status, body).
pub fn post(port: u16, path: &str, ctype: &str, body: &[u8]) -> (u16, Vec<u8>) {
    raw_request(port, &post_request(path, ctype, body))
}

/// [`post`], or None when nothing accepts the connection.
pub fn try_post(port: u16, path: &str, ctype: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    try_raw_request(port, &post_request(path, ctype, body))
}

fn post_request(path: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// A JSON-RPC 2.0 call; returns Ok(result) or Err(error object).
pub fn rpc(port: u16, method: &str, params: Value) -> Result<Value, Value> {
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
    let (status, body) = post(
        port,
        "/jsonrpc",
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(
        status,
        200,
        "{method}: HTTP {status} {}",
        String::from_utf8_lossy(&body)
    );
    let v: Value = serde_json::from_slice(&body).expect("JSON reply");
    match v.get("error") {
        Some(e) if !e.is_null() => Err(e.clone()),
        _ => Ok(v["result"].clone()),
    }
}

/// Logs in as root; returns the session ref.
pub fn login(port: u16) -> String {
    let r = rpc(
        port,
        "session.login_with_password",
        json!(["root", PASSWORD, "1.0", "test"]),
    );
    r.expect("login").as_str().expect("ref").to_string()
}

/// Runs a command under `timeout`, returning (success, stdout+stderr).
#[allow(unused_imports)] // reason: each test binary uses a different subset
pub use xcp_qemu_tests::clients::run;

/// A venv with PyPI's XenAPI, created once and cached in the target dir
/// (the QEMU cases share it).
pub fn python_with_xenapi() -> PathBuf {
    xcp_qemu_tests::clients::python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// node_modules with xen-api (the pinned release), installed once into the
/// target dir (the QEMU cases share it).
pub fn node_modules_with_xen_api() -> PathBuf {
    xcp_qemu_tests::clients::node_modules_with_xen_api(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// Path of a client script.
pub fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}
