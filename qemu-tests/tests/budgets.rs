//! Budgets on real Xen (issue #12): the shipped platform plus a guest that
//! fills xenstore, under load at once.
//!
//! - A host script opens 1,000 connections to the forwarded XenAPI port;
//!   each sends a request head announcing a 1 MB body, then trickles one
//!   byte a second. netdom holds at most its caps (128 connections, 96 per
//!   source: QEMU's user network makes every host connection one source),
//!   refuses the rest, cuts the held ones at their body deadline, and
//!   evicts the longest stalled for a new client.
//! - A guest (testdom `xs-fill`, a `[[domain]]` of the platform, so
//!   xenstore-dom serves it) fills xenstore to its byte quota inside open
//!   transactions and must get ENOMEM, then still be answered.
//! - Meanwhile PyPI's `XenAPI` logs in and works.
//!
//! At the end no domain crashed: dom0 reports none stopped, nothing
//! panicked, and xenstore-dom logged the guest's soft-quota crossing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{free_port, python_with_xenapi, run, Peer};
use xcp_qemu_tests::{Artifacts, Run};

/// The documented default password of the shipped platform.toml.
const PASSWORD: &str = "xcp-rs";
/// Connections the host script opens.
const CONNECTIONS: u32 = 1000;
/// How long the script trickles, s: past netdom's body deadline (20 s).
const TRICKLE_SECS: u32 = 45;

/// The real client: exits non-zero on any failure; last line "CLIENT OK".
const CLIENT: &str = r#"
import sys
import time
import XenAPI
url, pw = sys.argv[1], sys.argv[2]
started = time.monotonic()
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "budgets-test")
print("logged in after %.1f s" % (time.monotonic() - started), flush=True)
hosts = s.xenapi.host.get_all()
vm = s.xenapi.VM.create({"name_label": "budgets", "memory_static_max": "268435456"})
assert s.xenapi.VM.get_name_label(vm) == "budgets"
records = s.xenapi.VM.get_all_records()
assert vm in records, records.keys()
s.xenapi.VM.destroy(vm)
s.xenapi.session.logout()
print("%d hosts, %d VM records, done in %.1f s"
      % (len(hosts), len(records), time.monotonic() - started))
print("CLIENT OK")
"#;

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
        .display()
        .to_string()
}

/// The shipped bundle plus a domain that runs `xs-fill` (the test image of
/// testdom: the filler is test code, never shipped).
fn bundle(a: &Artifacts) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(a.path("platform.toml")).expect("platform.toml");
    let config = format!(
        "{shipped}\n[[domain]]\nname = \"xsfill\"\nimage = \"testdom-test.elf\"\n\
         memory_mib = 8\ncmdline = \"xs-fill\"\n"
    );
    let images: Vec<(String, std::path::PathBuf)> = [
        "xenstore-dom.elf",
        "netdom.elf",
        "stordom.elf",
        "testdom.elf",
        "testdom-test.elf",
    ]
    .iter()
    .map(|n| (n.to_string(), a.path(n)))
    .collect();
    let archive = xcp_boot::assemble_bundle(&config, &images).expect("bundle");
    let path = a.scratch("budgets").join("bundle.cpio");
    std::fs::write(&path, archive).unwrap();
    path
}

/// netdom's relay counters, from dom0's `stats` console command.
#[derive(Debug, Clone, Copy)]
struct Counters {
    open: u64,
    accepted: u64,
    refused: u64,
}

/// Types `stats` on dom0's console and reads the `n`th answer: `netdom
/// (domid D): N NIC interrupt wake-ups, T timer wake-ups, C relayed
/// connections open (A accepted, R refused)`.
fn stats(run: &Run, n: usize) -> Result<Counters, String> {
    run.type_line("stats")?;
    let line = run.wait_for_nth(" relayed connections open (", n, Duration::from_secs(60))?;
    let number = |before: &str| -> Result<u64, String> {
        let head = line
            .split(before)
            .next()
            .ok_or_else(|| format!("no {before:?} in {line:?}"))?;
        head.rsplit([' ', '('])
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("no number before {before:?} in {line:?}"))
    };
    Ok(Counters {
        open: number(" relayed connections open")?,
        accepted: number(" accepted")?,
        refused: number(" refused")?,
    })
}

/// `key=N` in the script's last line.
fn field(line: &str, key: &str) -> u32 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
fn slow_clients_and_a_xenstore_filler_crash_nothing_and_a_real_client_works() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let py = python_with_xenapi(cache);
    let a = Artifacts::from_env();
    let path = bundle(&a);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut launch = a.direct(&format!("xenapi-url={url}"), &path);
    launch.timeout_secs = 400;
    launch.devices.nic = Some(Some(port));
    let qemu = Run::start("budgets", &launch);
    let fail = |what: &str, e: String| -> ! {
        panic!("{what}: {e}\nserial log:\n{}", qemu.lines().join("\n"))
    };
    qemu.wait_for(&format!("XenAPI ready at {url}"), Duration::from_secs(150))
        .unwrap_or_else(|e| fail("boot", e));

    let mut trickle = Command::new(&py);
    trickle.arg(script("trickle.py")).args([
        port.to_string(),
        CONNECTIONS.to_string(),
        TRICKLE_SECS.to_string(),
    ]);
    let slow = Peer::spawn("trickle", &trickle, TRICKLE_SECS + 120);
    slow.wait_for("TRICKLE opened", Duration::from_secs(120))
        .unwrap_or_else(|e| fail("1,000 slow connections", e));
    // The real client, while the slow ones are held (well before their
    // 20 s body deadline).
    let (ok, output) = run(Command::new(&py).args(["-c", CLIENT, &url, PASSWORD]), 120);
    let during = stats(&qemu, 1).unwrap_or_else(|e| fail("stats during the trickle", e));
    let still = slow.lines().join("\n");
    let (_, trickled) = slow.finish(Duration::from_secs(u64::from(TRICKLE_SECS) + 60));
    let after = stats(&qemu, 2).unwrap_or_else(|e| fail("stats after the trickle", e));
    // The filler has had the whole run; give its lines a moment.
    let filled = qemu.wait_for("xs-fill: xenstore still answers", Duration::from_secs(30));
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    assert!(
        ok && output.trim_end().ends_with("CLIENT OK"),
        "the real client failed:\n{output}\ntrickle so far:\n{still}\nlog:\n{log}"
    );
    eprintln!("{output}\n{trickled}\nnetdom during: {during:?}, after: {after:?}");
    if let Err(e) = filled {
        panic!("{e}\nlog:\n{log}");
    }
    // The filler got ENOMEM inside its open transactions, not a crash.
    let enomem = log
        .lines()
        .find(|l| l.contains("xs-fill: ENOMEM after"))
        .unwrap_or_else(|| panic!("no ENOMEM from xs-fill:\n{log}"));
    eprintln!("{enomem}");
    assert!(!log.contains("xs-fill: FAIL"), "{log}");
    assert!(
        log.contains("exceeds its soft memory quota"),
        "xenstore-dom logged no soft-quota crossing:\n{log}"
    );
    // netdom held no more than its cap, and refused or cut the rest (the
    // host's side of a connection QEMU's user network has not yet
    // delivered stays open until it gives up on the guest, so the host's
    // count is only reported).
    let done = trickled
        .lines()
        .find(|l| l.starts_with("TRICKLE DONE"))
        .unwrap_or_else(|| panic!("the trickle did not finish:\n{trickled}"));
    for c in [during, after] {
        assert!(c.open <= 128, "netdom held {} connections", c.open);
    }
    assert!(field(done, "cut") > 0, "nothing was cut: {done}");
    // More connections came than netdom may hold: each was accepted (and
    // later evicted or cut) or refused.
    assert!(after.accepted + after.refused > 128, "{after:?}");
    // No domain crashed or panicked.
    for bad in ["stopped: crash", "PANIC", "panicked", "FAIL:"] {
        assert!(
            !log.lines().any(|l| l.contains(bad)),
            "{bad:?} in the log:\n{log}"
        );
    }
}
