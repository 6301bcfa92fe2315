//! `cargo xtask bench`: figures measured in one run, printed and written as
//! JSON under target/bench. xenstore: ops/s, p99 and server CPU per op of
//! our daemon and of Debian's oxenstored under the same two loads (one
//! request at a time per client, and 8 in flight per client). XenAPI host mode: calls/s and
//! event.from latency. Domain start. Boot: QEMU start to Xen's hand-over to dom0
//! (Xen's "Freed ... init memory" line) and to dom0's "dom0 ready", in
//! Xen's console time, over several boots. netdom: QEMU start to a XenAPI
//! login through netdom, and one XenAPI call mix through netdom and in host
//! mode (see `netdom`). memory: each service domain's configured memory and
//! its peak use under a XenAPI load through netdom (see `memory`). guests:
//! Debian's Linux as a PVH guest, VM.start on xcp-rs against `xl create`
//! on a Linux dom0 with Debian's Xen tools, to its first console line and
//! its /init (see `guests`). net: TCP throughput guest to guest and
//! guest to host and a 64-byte UDP rate between two Linux guests, netdom
//! against Linux's netback in a Linux dom0 (see `net`). disk: a Linux
//! guest's 4 KiB random and 1 MiB sequential O_DIRECT I/O on its VBD,
//! stordom against Linux's blkback in a Linux dom0, and the SR's
//! VDI.snapshot / VDI.clone time (see `disk`). vms: 50 tiny PVH VMs
//! started and shut down at once through XenAPI, per-VM latency and the
//! whole cycle beside xapi's figure (see `vms`).
//!
//! `cargo xtask bench [PART...]` runs only the named parts (`PARTS`).

mod common;
mod disk;
mod guests;
mod memory;
mod net;
mod net_host;
mod netdom;
mod vms;

use std::time::{Duration, Instant};

use xcp_qemu_tests::{stamp, verdict, Run};

const BOOTS: usize = 5;

struct Sample {
    xen_handover: f64,
    dom0_first_line: f64,
    dom0_ready: f64,
    wall_ready: f64,
}

fn boot_once(p: &crate::build::Platform, i: usize) -> Result<Sample, String> {
    let started = Instant::now();
    let run = Run::start(&format!("bench-boot-{i}"), &p.launch("test-exit"));
    let ready = run.wait_for("dom0: DEBUG dom0 ready", Duration::from_secs(75))?;
    let wall_ready = started.elapsed().as_secs_f64();
    let lines = run.lines();
    let handover = lines
        .iter()
        .find(|l| l.starts_with("(XEN)") && l.contains("Freed") && l.contains("init memory"))
        .ok_or("no Xen hand-over line")?;
    let first = lines
        .iter()
        .find(|l| l.contains("] dom0: "))
        .ok_or("no dom0 line")?;
    let outcome = run.finish(Duration::from_secs(20));
    if outcome.status != Some(verdict::qemu_status(verdict::PASS)) {
        return Err(format!("boot {i} did not pass: {:?}", outcome.status));
    }
    Ok(Sample {
        xen_handover: stamp(handover).ok_or("bad stamp")?,
        dom0_first_line: stamp(first).ok_or("bad stamp")?,
        dom0_ready: stamp(&ready).ok_or("bad stamp")?,
        wall_ready,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The xenstore benchmark: our host daemon against Debian's oxenstored,
/// side by side in one run, unpipelined and pipelined (see
/// xenstore-dom/bench; about 30 s).
fn xenstore(dir: &std::path::Path) -> Result<(), String> {
    crate::run(crate::cargo().args([
        "build",
        "--release",
        "-p",
        "xcp-xenstored",
        "-p",
        "xenstore-bench",
    ]))?;
    let bench = crate::build::workspace_root().join("target/release/xenstore-bench");
    crate::run(
        std::process::Command::new(bench)
            .arg("--out")
            .arg(dir.join("xenstore.json")),
    )
}

/// Builds xcp-sim and xenapi-bench (release); their directory.
fn build_xenapi_tools() -> Result<std::path::PathBuf, String> {
    crate::run(crate::cargo().args(["build", "--release", "-p", "xcp-sim", "-p", "xenapi-bench"]))?;
    Ok(crate::build::workspace_root().join("target/release"))
}

/// A fresh xcp-sim on 127.0.0.1 (under `timeout`), killed on `stop` or drop.
struct Sim {
    child: std::process::Child,
    addr: String,
}

impl Sim {
    /// Starts xcp-sim on `port` with a fresh state in target/bench/`state`;
    /// returns once it accepts connections.
    fn start(state: &str, port: u16, password: &str) -> Result<Sim, String> {
        let bin = crate::build::workspace_root().join("target/release");
        let state = crate::build::workspace_root()
            .join("target/bench")
            .join(state);
        let _ = std::fs::remove_dir_all(&state);
        let addr = format!("127.0.0.1:{port}");
        let child = std::process::Command::new("timeout")
            .args(["-s", "KILL", "900"])
            .arg(bin.join("xcp-sim"))
            .args(["--listen", &addr, "--state"])
            .arg(&state)
            .args(["--password", password])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("xcp-sim: {e}"))?;
        let mut sim = Sim { child, addr };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&sim.addr).is_err() {
            if std::time::Instant::now() > deadline {
                sim.stop();
                return Err("xcp-sim did not start listening".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(sim)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// XenAPI in host mode: VM.get_all_records with 1,000 VMs and event.from
/// latency against a fresh xcp-sim on loopback.
fn xenapi(dir: &std::path::Path) -> Result<(), String> {
    let bin = build_xenapi_tools()?;
    let port = 18000 + (std::process::id() % 1000) as u16;
    let sim = Sim::start("xcp-sim-state", port, "bench")?;
    let addr = sim.addr.clone();
    let result = crate::run(
        std::process::Command::new(bin.join("xenapi-bench"))
            .args([
                "--addr",
                &addr,
                "--password",
                "bench",
                "--vms",
                "1000",
                "--out",
            ])
            .arg(dir.join("xenapi.json")),
    );
    drop(sim);
    result
}

/// Domain create to its first console line: dom0 logs "building testdom"
/// just before the build starts; testdom's first line carries its own Xen
/// system time (the same clock).
fn domain_start(p: &crate::build::Platform) -> Result<f64, String> {
    let dir = p.dir.join("scratch/bench-domain");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config = "[platform]\nname = \"bench\"\n\n[[domain]]\nname = \"testdom\"\n\
                  image = \"testdom.elf\"\nmemory_mib = 8\nstart = false\n";
    let bundle =
        xcp_boot::assemble_bundle(config, &[("testdom.elf".into(), p.dir.join("testdom.elf"))])?;
    let path = dir.join("bundle.cpio");
    std::fs::write(&path, bundle).map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..BOOTS {
        // The self-test needs the test dom0; testdom is the shipped one.
        let mut launch = p.launch("test-exit selftest=console");
        if let xcp_boot::qemu::Media::Direct { bundle, dom0, .. } = &mut launch.media {
            *bundle = path.clone();
            *dom0 = p.dir.join("toolstack-dom0-test");
        }
        let run = Run::start(&format!("bench-domain-{i}"), &launch);
        run.wait_for("selftest console: PASS", Duration::from_secs(75))?;
        let lines = run.lines();
        run.finish(Duration::from_secs(20));
        let building = lines
            .iter()
            .find(|l| l.contains("dom0: DEBUG building testdom"))
            .ok_or("no build line")?;
        let first = lines
            .iter()
            .find(|l| l.starts_with("[testdom] ["))
            .ok_or("no testdom line")?;
        let first = first.trim_start_matches("[testdom] ");
        samples.push(stamp(first).ok_or("bad stamp")? - stamp(building).ok_or("bad stamp")?);
    }
    Ok(median(samples))
}

/// The parts of `cargo xtask bench`, in the order they run.
pub const PARTS: &[&str] = &[
    "xenstore", "xenapi", "domain", "boot", "netdom", "memory", "guests", "net", "disk", "vms",
];

/// Runs the benchmarks named in `only` (every one when it is empty).
pub fn run(only: &[String]) -> Result<(), String> {
    if let Some(unknown) = only.iter().find(|n| !PARTS.contains(&n.as_str())) {
        return Err(format!(
            "no benchmark {unknown:?}; the parts are {}",
            PARTS.join(", ")
        ));
    }
    let wanted = |part: &str| only.is_empty() || only.iter().any(|n| n == part);
    crate::deps::ensure()?;
    let dir = crate::build::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if wanted("xenstore") {
        xenstore(&dir)?;
    }
    if wanted("xenapi") {
        xenapi(&dir)?;
    }
    if ![
        "domain", "boot", "netdom", "memory", "guests", "net", "disk", "vms",
    ]
    .iter()
    .any(|p| wanted(p))
    {
        return Ok(());
    }
    let p = crate::build::platform(&[])?;
    if wanted("domain") {
        domain(&p, &dir)?;
    }
    if wanted("boot") {
        boot(&p, &dir)?;
    }
    if wanted("netdom") {
        netdom::run(&p, &dir)?;
    }
    if wanted("memory") {
        memory::run(&p, &dir)?;
    }
    if wanted("guests") {
        guests::run(&p, &dir)?;
    }
    if wanted("net") {
        net::run(&p, &dir)?;
    }
    if wanted("disk") {
        disk::run(&p, &dir)?;
    }
    if wanted("vms") {
        vms::run(&p, &dir)?;
    }
    Ok(())
}

/// Domain start figures, printed and written to domain.json.
fn domain(p: &crate::build::Platform, dir: &std::path::Path) -> Result<(), String> {
    let start = domain_start(p)?;
    println!("domain create to first console line (median of {BOOTS}, Xen system time, TCG)");
    println!(
        "  8 MiB testdom: build, unpause, first line  {:8.1} ms",
        start * 1000.0
    );
    println!("  baseline on the same rig (xl create, Linux ELF): 1700 ms");
    std::fs::write(
        dir.join("domain.json"),
        format!(
            "{{\"domain_create_to_first_line_ms\":{:.3}}}\n",
            start * 1000.0
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// Boot figures, printed and written to boot.json.
fn boot(p: &crate::build::Platform, dir: &std::path::Path) -> Result<(), String> {
    let mut samples = Vec::new();
    for i in 0..BOOTS {
        samples.push(boot_once(p, i)?);
    }
    let xen = median(samples.iter().map(|s| s.xen_handover).collect());
    let first = median(
        samples
            .iter()
            .map(|s| s.dom0_first_line - s.xen_handover)
            .collect(),
    );
    let ready = median(
        samples
            .iter()
            .map(|s| s.dom0_ready - s.xen_handover)
            .collect(),
    );
    let wall = median(samples.iter().map(|s| s.wall_ready).collect());
    println!("boot (median of {BOOTS}, Xen console time, TCG, no KVM)");
    println!("  Xen boot to dom0 hand-over      {xen:8.3} s");
    println!(
        "  hand-over to dom0's first line  {:8.1} ms",
        first * 1000.0
    );
    println!(
        "  hand-over to dom0 ready         {:8.1} ms",
        ready * 1000.0
    );
    println!("  QEMU start to dom0 ready (wall) {wall:8.3} s");
    let json = format!(
        "{{\"boots\":{BOOTS},\"xen_boot_s\":{xen:.6},\"dom0_first_line_ms\":{:.3},\"dom0_ready_ms\":{:.3},\"qemu_start_to_dom0_ready_s\":{wall:.3}}}\n",
        first * 1000.0,
        ready * 1000.0
    );
    std::fs::write(dir.join("boot.json"), json).map_err(|e| e.to_string())?;
    Ok(())
}
