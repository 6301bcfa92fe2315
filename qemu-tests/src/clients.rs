//! The real XenAPI clients the QEMU cases drive from the host: PyPI's
//! `XenAPI` in a venv and npm's `xen-api` (Xen Orchestra's client), each
//! installed once into a cache directory (a test's `CARGO_TARGET_TMPDIR`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::output::Output;

/// The xen-api release the tests pin.
pub const XEN_API_VERSION: &str = "4.7.6";

/// Runs `cmd` under `timeout -s KILL secs`; returns success and the output.
pub fn run(cmd: &mut Command, secs: u32) -> (bool, String) {
    let mut t = Command::new("timeout");
    t.args(["-s", "KILL", &secs.to_string()])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(d) = cmd.get_current_dir() {
        t.current_dir(d);
    }
    let out = t.output().expect("spawn under timeout");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Tests run as threads: one installer at a time.
static INSTALL: Mutex<()> = Mutex::new(());

/// A venv under `cache` with PyPI's XenAPI; returns its python.
pub fn python_with_xenapi(cache: &Path) -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let venv = cache.join("xenapi-venv");
    let py = venv.join("bin/python");
    if run(Command::new(&py).args(["-c", "import XenAPI"]), 60).0 {
        return py;
    }
    let (ok, out) = run(Command::new("python3").args(["-m", "venv"]).arg(&venv), 300);
    assert!(ok, "venv: {out}");
    let (ok, out) = run(
        Command::new(&py).args(["-m", "pip", "install", "--quiet", "XenAPI"]),
        600,
    );
    assert!(ok, "pip install XenAPI: {out}");
    py
}

/// node_modules under `cache` with xen-api [`XEN_API_VERSION`].
pub fn node_modules_with_xen_api(cache: &Path) -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = cache.join("xen-api-npm");
    let modules = dir.join("node_modules");
    let installed = std::fs::read_to_string(modules.join("xen-api/package.json"))
        .map(|s| s.contains(&format!("\"version\": \"{XEN_API_VERSION}\"")))
        .unwrap_or(false);
    if !installed {
        std::fs::create_dir_all(&dir).expect("npm dir");
        let (ok, out) = run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(format!("xen-api@{XEN_API_VERSION}")),
            600,
        );
        assert!(ok, "npm install xen-api@{XEN_API_VERSION}: {out}");
    }
    modules
}

/// A free TCP port on 127.0.0.1 (bound, then released for QEMU).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A client process running beside QEMU (under `timeout`, killed when
/// dropped): its stdout and stderr lines collected for waiting on, its
/// stdin open for the test to answer it.
pub struct Peer {
    name: String,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    output: std::sync::Arc<Output>,
}

impl Peer {
    /// Starts `cmd` under `timeout -s KILL secs`.
    pub fn spawn(name: &str, cmd: &Command, secs: u32) -> Peer {
        use std::process::Stdio;
        let mut t = Command::new("timeout");
        t.args(["-s", "KILL", &secs.to_string()])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Own process group, so dropping the peer kills the client too.
        std::os::unix::process::CommandExt::process_group(&mut t, 0);
        let mut child = t.spawn().expect("spawn a client under timeout");
        let stdin = child.stdin.take();
        let output = Output::collect(&mut child);
        Peer {
            name: name.to_string(),
            child,
            stdin,
            output,
        }
    }

    /// Waits for a line containing `marker`; fails with the output so far
    /// after `timeout` or when the process's output ends.
    pub fn wait_for(&self, marker: &str, timeout: std::time::Duration) -> Result<String, String> {
        self.wait_for_nth(marker, 1, timeout)
    }

    /// Writes `line` and a newline to the process's stdin.
    pub fn answer(&mut self, line: &str) -> Result<(), String> {
        use std::io::Write;
        let pipe = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(pipe, "{line}")
            .and_then(|()| pipe.flush())
            .map_err(|e| format!("[{}] write {line:?}: {e}", self.name))
    }

    /// Waits until `n` lines (counting from 1) contain `marker`; returns
    /// the `n`th. Fails like [`Peer::wait_for`].
    pub fn wait_for_nth(
        &self,
        marker: &str,
        n: usize,
        timeout: std::time::Duration,
    ) -> Result<String, String> {
        self.output
            .wait_for_nth(marker, n, timeout)
            .map_err(|lines| {
                format!(
                    "[{}] no line {n} with {marker:?}; output:\n{}",
                    self.name,
                    lines.join("\n")
                )
            })
    }

    /// Writes `bytes` to the process's stdin as they are (keys typed at a
    /// terminal: `\r` for Enter, control characters).
    pub fn type_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let pipe = self.stdin.as_mut().ok_or("stdin closed")?;
        pipe.write_all(bytes)
            .and_then(|()| pipe.flush())
            .map_err(|e| format!("[{}] type {bytes:?}: {e}", self.name))
    }

    /// Every line it printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lines()
    }

    /// Waits for the process to exit (killing it after `timeout`); returns
    /// whether it succeeded and everything it printed.
    pub fn finish(mut self, timeout: std::time::Duration) -> (bool, String) {
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait().expect("wait for a client") {
                Some(s) => break Some(s),
                None if std::time::Instant::now() >= deadline => break None,
                None => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        if status.is_none() {
            self.kill();
        }
        let lines = self.output.drained(std::time::Duration::from_secs(5));
        (status.is_some_and(|s| s.success()), lines.join("\n"))
    }
}

impl Peer {
    fn kill(&mut self) {
        crate::output::kill_group(&mut self.child);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// The shipped platform (the artifacts' platform.toml and images, as
/// `cargo xtask run` boots it: xenstore-dom, the toolstack, netdom with
/// `restart = true`) with `guests` as guest files (`/boot/guest/<name>`),
/// launched with QEMU's NIC forwarded from a free 127.0.0.1 port; and the
/// XenAPI URL dom0 announces when netdom serves it.
pub fn shipped_launch_with_guests(
    a: &crate::Artifacts,
    dir: &Path,
    guests: &[PathBuf],
) -> (crate::Launch, String) {
    let (text, config) = xcp_boot::load_config(&a.path("platform.toml")).unwrap();
    let mut images: Vec<(String, PathBuf)> = config
        .domains
        .iter()
        .map(|d| (d.image.clone(), a.path(&d.image)))
        .collect();
    images.extend(xcp_boot::guest_entries(guests).unwrap());
    let path = dir.join("bundle.cpio");
    std::fs::write(&path, xcp_boot::assemble_bundle(&text, &images).unwrap()).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut launch = a.direct(&format!("xenapi-url={url}"), &path);
    launch.devices.nic = Some(Some(port));
    (launch, url)
}

/// dom0's `netdom-xenapi` self-test launch, for a real client on the host:
/// a bundle with netdom (the NIC forwarded from a free 127.0.0.1 port,
/// relaying XenAPI to dom0, whose root password is `password`) and
/// `guests` packed as `/boot/guest/<name>` files, written under `dir`.
/// Returns the launch and the URL the client uses.
pub fn netdom_xenapi_launch(
    a: &crate::Artifacts,
    dir: &Path,
    password: &str,
    guests: &[PathBuf],
) -> (crate::Launch, String) {
    launch_with(a, dir, password, guests, false)
}

/// [`netdom_xenapi_launch`] with the xenstore domain too: the self-test
/// starts it before netdom, so netdom and every VM get a xenstore ring
/// and a tree, and a Linux guest's xenbus comes up.
pub fn netdom_xenapi_xenstore_launch(
    a: &crate::Artifacts,
    dir: &Path,
    password: &str,
    guests: &[PathBuf],
) -> (crate::Launch, String) {
    launch_with(a, dir, password, guests, true)
}

fn launch_with(
    a: &crate::Artifacts,
    dir: &Path,
    password: &str,
    guests: &[PathBuf],
    xenstore: bool,
) -> (crate::Launch, String) {
    let hash = xenapi::auth::hash_password(password, 1000).unwrap();
    let xenstore_domain = if xenstore {
        "[[domain]]\nname = \"xenstore\"\nimage = \"xenstore-dom.elf\"\nmemory_mib = 16\n\
         xenstore = true\nstart = false\n\n"
    } else {
        ""
    };
    let config = format!(
        "[platform]\nname = \"selftest\"\n\n[toolstack]\nroot_password_hash = \"{hash}\"\n\n\
         {xenstore_domain}\
         [[domain]]\nname = \"netdom\"\nimage = \"netdom.elf\"\nmemory_mib = 28\n\
         restart = false\nstart = false\npassthrough = true\n"
    );
    let mut images = vec![("netdom.elf".into(), a.path("netdom.elf"))];
    if xenstore {
        images.push(("xenstore-dom.elf".into(), a.path("xenstore-dom.elf")));
    }
    images.extend(xcp_boot::guest_entries(guests).unwrap());
    let archive = xcp_boot::assemble_bundle(&config, &images).unwrap();
    let path = dir.join("bundle.cpio");
    std::fs::write(&path, archive).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut launch = a.selftest(
        &format!("test-exit selftest=netdom-xenapi xenapi-url={url}"),
        &path,
    );
    launch.devices.nic = Some(Some(port));
    (launch, url)
}

/// What a client run beside QEMU printed, once QEMU is done: panics with
/// the first thing that went wrong (`ready`, QEMU's wait for the platform;
/// the client not run; its failure or a last line other than `last`),
/// with an excerpt of QEMU's `log`.
pub fn client_output(
    ready: Result<String, String>,
    client: Option<(bool, String)>,
    log: &str,
    last: &str,
) -> String {
    if let Err(e) = ready {
        panic!("{e}");
    }
    let (ok, output) = client.expect("the client ran");
    assert!(
        ok && output.trim_end().ends_with(last),
        "client failed:\n{output}\nlog:\n{}",
        crate::excerpt(log)
    );
    output
}
