//! Session caps per originator on real Xen, through netdom: PyPI's
//! `XenAPI` logs in as client B, then as client A 600 times with its own
//! originator. xapi keeps 500 sessions per originator and drops only that
//! originator's least recently used ones, so B's session must still work and
//! A's earliest must answer SESSION_INVALID (toolstack-dom0/xenapi
//! `session.rs`).
//!
//! The platform is the shipped bundle, booted as `cargo xtask run` boots it
//! (no self-test); QEMU forwards 127.0.0.1:<port> to netdom's port 80.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{free_port, python_with_xenapi, run};
use xcp_qemu_tests::{Artifacts, Run};

/// The documented default password of the shipped platform.toml.
const PASSWORD: &str = "xcp-rs";

/// The client: exits non-zero on any failure; its last line is "CLIENT OK".
const CLIENT: &str = r#"
import sys
import time
import XenAPI
url, pw = sys.argv[1], sys.argv[2]
b = XenAPI.Session(url)
b.xenapi.login_with_password("root", pw, "1.0", "client-B")
a = XenAPI.Session(url)
a_sessions = []
started = time.monotonic()
for _ in range(600):
    a.xenapi.login_with_password("root", pw, "1.0", "client-A")
    a_sessions.append(a._session)
print("600 logins in %.1f s" % (time.monotonic() - started))
# Ask with the raw call: `s.xenapi.*` would log in again on SESSION_INVALID.
def state(session):
    r = getattr(a, "host.get_all")(session)
    if r["Status"] == "Success":
        return "valid (%d hosts)" % len(r["Value"])
    return r["ErrorDescription"][0]
print("B:", state(b._session))
print("A first:", state(a_sessions[0]))
print("A 100th:", state(a_sessions[99]))
print("A 101st:", state(a_sessions[100]))
print("A last:", state(a_sessions[-1]))
b.xenapi.session.logout()
print("CLIENT OK")
"#;

#[test]
fn one_client_cannot_log_another_out() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let py = python_with_xenapi(cache);
    let a = Artifacts::from_env();
    let path = a.path("bundle.cpio");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut launch = a.direct(&format!("xenapi-url={url}"), &path);
    launch.timeout_secs = 400;
    launch.devices.nic = Some(Some(port));
    let qemu = Run::start("sessions", &launch);
    let waited = qemu.wait_for(&format!("XenAPI ready at {url}"), Duration::from_secs(150));
    let client = waited
        .as_ref()
        .ok()
        .map(|_| run(Command::new(&py).args(["-c", CLIENT, &url, PASSWORD]), 180));
    // dom0 keeps serving: stop QEMU now (the verdict is the client's).
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    if let Err(e) = waited {
        panic!("{e}\nlog:\n{log}");
    }
    let (ok, output) = client.expect("the client ran");
    assert!(
        ok && output.trim_end().ends_with("CLIENT OK"),
        "client failed:\n{output}\nlog:\n{log}"
    );
    for line in [
        "B: valid (1 hosts)",
        "A first: SESSION_INVALID",
        "A 100th: SESSION_INVALID",
        "A 101st: valid (1 hosts)",
        "A last: valid (1 hosts)",
    ] {
        assert!(output.contains(line), "no {line:?}:\n{output}");
    }
    eprintln!("{output}");
}
