//! A real XenAPI client on the host reaches the toolstack in dom0 through
//! netdom: QEMU forwards 127.0.0.1:<port> to netdom's port 80; netdom
//! terminates TCP with smoltcp and relays each connection over the
//! inter-domain channel to dom0's toolstack (`selftest=netdom-xenapi`).
//!
//! The verdict is the client's: PyPI's unmodified `XenAPI` package (XML-RPC)
//! logs in, lists the host and the pool, logs out, and prints what it saw,
//! while 16 hostile connections that never finish a request head stay open
//! beside it (netdom must end them at its head timeout);
//! the serial log must show the relay path, and netdom's counters (asked
//! for on dom0's console with `stats`) the client's traffic waking it
//! through MSI-X. dom0 gives no exit code here (it keeps serving); the test
//! stops QEMU once the client is done.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{netdom_xenapi_launch, python_with_xenapi, run};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "relay-pw";

/// The client: exits non-zero on any failure; its last line is "CLIENT OK".
const CLIENT: &str = r#"
import socket
import sys
import time
import urllib.parse
import XenAPI
url, pw = sys.argv[1], sys.argv[2]
# Hostile neighbours: 16 connections that never finish their request head
# stay open through the whole session; netdom must serve the real client
# meanwhile and drop them at its head timeout (10 s).
where = urllib.parse.urlsplit(url)
stalled = []
for _ in range(16):
    c = socket.create_connection((where.hostname, where.port), timeout=10)
    c.sendall(b"POST / HTTP/1.1\r\nHost: stalled\r\nContent-")
    stalled.append(c)
opened = time.monotonic()
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "netdom-qemu-test")
hosts = s.xenapi.host.get_all_records()
pools = s.xenapi.pool.get_all()
print("hosts:", sorted(r["name_label"] for r in hosts.values()))
print("pools:", len(pools))
assert len(hosts) == 1, hosts
assert len(pools) == 1, pools
# The host's PIF and network records, as an orchestrator reads them.
pifs = s.xenapi.PIF.get_all_records()
networks = s.xenapi.network.get_all_records()
host_ref = list(hosts.keys())[0]
assert pifs and all(p["host"] == host_ref for p in pifs.values()), pifs
assert all(p["network"] in networks for p in pifs.values()), (pifs, networks)
print("pifs:", len(pifs), "networks:", len(networks))
try:
    XenAPI.Session(url).xenapi.login_with_password("root", "wrong", "1.0", "t")
    print("a wrong password was accepted")
    sys.exit(1)
except XenAPI.Failure as f:
    print("wrong password:", f.details[0])
    assert f.details[0] == "SESSION_AUTHENTICATION_FAILED", f.details
s.xenapi.session.logout()
ended = 0
for c in stalled:
    c.settimeout(40)
    try:
        ended += c.recv(1024) == b""
    except ConnectionResetError:
        ended += 1
    except socket.timeout:
        pass
waited = time.monotonic() - opened
print(f"stalled connections ended by netdom: {ended}/16 after {waited:.1f} s")
assert ended == 16, ended
print("CLIENT OK")
"#;

/// netdom's counters as dom0's `stats` console command shows them.
#[derive(Debug)]
struct Counters {
    nic_interrupts: u64,
    accepted: u64,
}

/// Types `stats` on dom0's console and reads the `n`th answer (counting
/// from 1): `netdom (domid D): N NIC interrupt wake-ups, T timer
/// wake-ups, C relayed connections open (A accepted, R refused)`, a plain
/// console line, not a log record.
fn stats(run: &Run, n: usize) -> Result<Counters, String> {
    run.type_line("stats")?;
    let line = run.wait_for_nth(" NIC interrupt wake-ups, ", n, Duration::from_secs(30))?;
    let answer = line
        .split_once("netdom (domid ")
        .and_then(|(before, answer)| before.trim().is_empty().then_some(answer))
        .ok_or_else(|| format!("not a plain answer line: {line:?}"))?;
    let number = |after: &str| -> Result<u64, String> {
        answer
            .split_once(after)
            .and_then(|(_, rest)| rest.split([' ', ',', ')']).next())
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("no number after {after:?} in {line:?}"))
    };
    Ok(Counters {
        nic_interrupts: number("): ")?,
        accepted: number("open (")?,
    })
}

#[test]
fn pypi_xenapi_client_reaches_dom0_through_netdom() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch("netdom-xenapi");
    let (launch, url) = netdom_xenapi_launch(&a, &dir, PASSWORD, &[]);
    let run_qemu = Run::start("netdom-xenapi", &launch);
    let waited = run_qemu.wait_for("xenapi relay ready", Duration::from_secs(150));
    // netdom's counters before the client's first byte.
    let idle = waited.as_ref().ok().map(|_| stats(&run_qemu, 1));
    let started = std::time::Instant::now();
    let client = waited
        .as_ref()
        .ok()
        .map(|_| run(Command::new(&py).args(["-c", CLIENT, &url, PASSWORD]), 120));
    let client_time = started.elapsed();
    let busy = idle.as_ref().map(|_| stats(&run_qemu, 2));
    // dom0 keeps serving: stop QEMU now (the verdict is the client's).
    let outcome = run_qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    if let Err(e) = waited {
        panic!("{e}");
    }
    let (ok, output) = client.expect("the client ran");
    assert!(
        ok && output.trim_end().ends_with("CLIENT OK"),
        "client failed:\n{output}\nlog:\n{log}"
    );
    assert!(output.contains("pools: 1"), "{output}");
    assert!(
        output.contains("stalled connections ended by netdom: 16/16"),
        "{output}"
    );
    assert!(output.contains("pifs: 1 networks: 1"), "{output}");
    assert!(
        output.contains("wrong password: SESSION_AUTHENTICATION_FAILED"),
        "{output}"
    );
    let has = |text: &str| {
        assert!(log.contains(text), "the log lacks {text:?}:\n{log}");
    };
    // No `management` in the config: the default, DHCP (QEMU's user
    // network leases 10.0.2.15 from 10.0.2.2).
    has(" ip=dhcp");
    has("netdom: DHCP lease 10.0.2.15/24 gw 10.0.2.2 from 10.0.2.2");
    has("netdom: DEBUG ARP reply from 10.0.2.2");
    // The NIC's DMA goes through the emulated VT-d.
    has("netdom: DEBUG device DMA goes through the IOMMU (VIRTIO_F_ACCESS_PLATFORM)");
    has("netdom: DEBUG XenAPI relay listening on 10.0.2.15:80");
    has(&format!("XenAPI ready at {url}"));
    has("xenapi relay channel to netdom on port");
    // The NIC interrupts through MSI-X entries dom0 mapped to netdom's
    // pirqs, and the client's traffic woke netdom through them.
    has("netdom: DEBUG MSI-X: 4 vectors bound as pirqs");
    has("pci-pirqs=");
    has("netdom: DEBUG first NIC interrupt wake-up");
    // Nothing periodic: the counts are not logged, only answered.
    assert!(!log.contains("NIC interrupts:"), "{log}");
    let idle = idle
        .expect("asked before the client")
        .unwrap_or_else(|e| panic!("{e}\n{log}"));
    let busy = busy
        .expect("asked after the client")
        .unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(
        busy.nic_interrupts >= idle.nic_interrupts + 10,
        "{idle:?} -> {busy:?}:\n{log}"
    );
    // The 16 stalled connections and the client's own went through netdom.
    assert!(
        busy.accepted >= idle.accepted + 17,
        "{idle:?} -> {busy:?}:\n{log}"
    );
    assert!(!log.contains("FAIL"), "{log}");
    eprintln!(
        "client output ({} ms; netdom {idle:?} -> {busy:?}):\n{output}",
        client_time.as_millis()
    );
}

/// The text console client: starts a `console-echo` testdom VM, attaches
/// to its console with `CONNECT` on the console's `location` (as xapi's
/// clients do), reads the guest's boot output from the history, types a
/// line the guest echoes, and sees the connection close when the VM
/// stops. Its last line is "CONSOLE OK".
const CONSOLE_CLIENT: &str = r#"
import socket
import sys
import time
import urllib.parse
import XenAPI
url, pw = sys.argv[1], sys.argv[2]
where = urllib.parse.urlsplit(url)
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "console-qemu-test")
session = s._session
mib8 = str(8 << 20)
vm = s.xenapi.VM.create({
    "name_label": "echo", "PV_kernel": "/boot/guest/testdom.elf",
    "PV_args": "console-echo", "memory_static_max": mib8,
    "memory_dynamic_max": mib8, "memory_dynamic_min": mib8,
    "memory_static_min": mib8, "VCPUs_max": "1", "VCPUs_at_startup": "1",
})
s.xenapi.VM.start(vm, False, False)
consoles = s.xenapi.VM.get_consoles(vm)
assert len(consoles) == 1, consoles
con = s.xenapi.console.get_record(consoles[0])
print("console:", con["protocol"], con["location"])
assert con["protocol"] == "vt100", con
loc = urllib.parse.urlsplit(con["location"])
assert loc.path == "/console" and loc.query == "ref=" + consoles[0], con
# An invalid session is refused.
c = socket.create_connection((where.hostname, where.port), timeout=30)
c.sendall(f"CONNECT {loc.path}?{loc.query}&session_id=OpaqueRef:bad HTTP/1.0\r\n\r\n".encode())
refused = c.recv(100)
print("bad session:", refused.split(b"\r\n")[0].decode())
assert refused.startswith(b"HTTP/1.1 401"), refused
c.close()
c = socket.create_connection((where.hostname, where.port), timeout=30)
c.sendall(f"CONNECT {loc.path}?{loc.query}&session_id={session} HTTP/1.0\r\n\r\n".encode())
seen = b""
def read_until(marker, secs):
    global seen
    deadline = time.monotonic() + secs
    while marker not in seen:
        if time.monotonic() > deadline:
            print("console so far:", seen)
            sys.exit(1)
        chunk = c.recv(4096)
        if not chunk:
            print("closed early; console so far:", seen)
            sys.exit(1)
        seen += chunk
read_until(b"\r\n\r\n", 30)
head, _, rest = seen.partition(b"\r\n\r\n")
print("attach:", head.split(b"\r\n")[0].decode())
assert head.startswith(b"HTTP/1.1 200"), head
seen = rest
read_until(b"console-echo: type a line", 60)
print("history: the guest's boot lines arrived")
c.sendall(b"hello console\r")
read_until(b"echo: hello console", 60)
print("typed: the guest echoed the line")
s.xenapi.VM.hard_shutdown(vm)
c.settimeout(30)
closed = False
try:
    while c.recv(4096):
        pass
    closed = True
except ConnectionResetError:
    closed = True
print("closed after the VM stopped:", closed)
assert closed
s.xenapi.session.logout()
print("CONSOLE OK")
"#;

#[test]
fn a_vms_text_console_through_netdom() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch("netdom-console");
    // The test testdom (with `console-echo`) as the VM's guest kernel,
    // /boot/guest/testdom.elf.
    let guest = dir.join("testdom.elf");
    std::fs::copy(a.path("testdom-test.elf"), &guest).unwrap();
    let (launch, url) = netdom_xenapi_launch(&a, &dir, PASSWORD, &[guest]);
    let run_qemu = Run::start("netdom-console", &launch);
    let waited = run_qemu.wait_for("xenapi relay ready", Duration::from_secs(150));
    let client = waited.as_ref().ok().map(|_| {
        run(
            Command::new(&py).args(["-c", CONSOLE_CLIENT, &url, PASSWORD]),
            180,
        )
    });
    let outcome = run_qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    if let Err(e) = waited {
        panic!("{e}");
    }
    let (ok, output) = client.expect("the client ran");
    assert!(
        ok && output.trim_end().ends_with("CONSOLE OK"),
        "client failed:\n{output}\nlog:\n{log}"
    );
    assert!(output.contains("bad session: HTTP/1.1 401"), "{output}");
    // The VM's console lines reach dom0's log at DEBUG, prefixed with its
    // name, echo included.
    assert!(log.contains("[echo] echo: hello console"), "{log}");
    assert!(!log.contains("FAIL"), "{log}");
    eprintln!("client output:\n{output}");
}
