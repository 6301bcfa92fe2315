//! `cargo xtask bench netdom`: XenAPI over the network path, side by side
//! with host mode, in one run.
//!
//! Each round boots the shipped platform as `cargo xtask run` does (the
//! toolstack in dom0, netdom with QEMU's NIC, a free 127.0.0.1 port forwarded
//! to netdom's port 80) and measures:
//! - the wall clock from QEMU's spawn until a real login
//!   (`session.login_with_password` returning a session ref) succeeds through
//!   the forwarded port (`xenapi-bench wait-login`, 100 ms per attempt);
//! - from the serial log, in Xen's console time: Xen's hand-over to dom0,
//!   netdom's "XenAPI relay listening" and dom0's "XenAPI ready at";
//! - then the same call mix (`xenapi-bench calls`) through netdom, QEMU is
//!   stopped, and the mix runs against xcp-sim on loopback (host mode).
//!
//! Figures are medians over the rounds, printed and written to
//! target/bench/netdom.json.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xcp_qemu_tests::{stamp, Run};

/// Boots (and call-mix rounds): TCG is slow, three give a median.
const ROUNDS: usize = 3;
/// Seconds per phase of the call mix (one client, then `CLIENTS`).
const SECONDS: &str = "3";
const CLIENTS: &str = "4";
/// The shipped platform's root password (boot/platform.toml's comment).
const PLATFORM_PASSWORD: &str = "xcp-rs";
const SIM_PASSWORD: &str = "bench";

/// One round's figures.
struct Round {
    wall_login: f64,
    xen_handover: f64,
    relay_listening: f64,
    dom0_ready: f64,
    netdom: Value,
    host: Value,
}

/// A free TCP port on 127.0.0.1 (bound, then released for QEMU).
pub(super) fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the call mix against `addr`; its JSON.
fn call_mix(bench: &Path, addr: &str, password: &str, out: &Path) -> Result<Value, String> {
    crate::run(
        Command::new("timeout")
            .args(["-s", "KILL", "120"])
            .arg(bench)
            .args(["calls", "--addr", addr, "--password", password])
            .args(["--seconds", SECONDS, "--clients", CLIENTS, "--out"])
            .arg(out),
    )?;
    read_json(out)
}

fn round(
    p: &crate::build::Platform,
    bench: &Path,
    sim_addr: &str,
    dir: &Path,
    i: usize,
) -> Result<Round, String> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut launch = p.launch(&format!("xenapi-url=http://{addr}/"));
    launch.devices.nic = Some(Some(port));
    launch.timeout_secs = 180;
    let started = Instant::now();
    let run = Run::start(&format!("bench-netdom-{i}"), &launch);
    crate::run(
        Command::new(bench)
            .args(["wait-login", "--addr", &addr])
            .args(["--password", PLATFORM_PASSWORD, "--timeout", "120"]),
    )
    .map_err(|e| format!("{e}; log:\n{}", run.lines().join("\n")))?;
    let wall_login = started.elapsed().as_secs_f64();
    // The login can beat dom0's announcement by a few ms: dom0 prints it
    // when it next reads netdom's console.
    let ready = run.wait_for("dom0: XenAPI ready at", Duration::from_secs(30))?;
    let lines = run.lines();
    let handover = lines
        .iter()
        .find(|l| l.starts_with("(XEN)") && l.contains("Freed") && l.contains("init memory"))
        .ok_or("no Xen hand-over line")?;
    let listening = lines
        .iter()
        .find(|l| l.starts_with("[netdom] ") && l.contains("XenAPI relay listening"))
        .ok_or("no netdom relay line")?
        .trim_start_matches("[netdom] ");
    let netdom = call_mix(
        bench,
        &addr,
        PLATFORM_PASSWORD,
        &dir.join(format!("netdom-calls-{i}.json")),
    );
    // dom0 keeps serving: stop QEMU before the host-mode run, so the two
    // do not share the CPUs.
    run.finish(Duration::from_millis(500));
    let netdom = netdom?;
    let host = call_mix(
        bench,
        sim_addr,
        SIM_PASSWORD,
        &dir.join(format!("host-calls-{i}.json")),
    )?;
    Ok(Round {
        wall_login,
        xen_handover: stamp(handover).ok_or("bad stamp")?,
        relay_listening: stamp(listening).ok_or("bad stamp")?,
        dom0_ready: stamp(&ready).ok_or("bad stamp")?,
        netdom,
        host,
    })
}

/// Medians of one figure of a phase (0: one client, 1: `CLIENTS`).
fn phase_median(rounds: &[Round], host: bool, phase: usize, key: &str) -> f64 {
    super::median(
        rounds
            .iter()
            .map(|r| {
                let v = if host { &r.host } else { &r.netdom };
                v["phases"][phase][key].as_f64().unwrap_or(f64::NAN)
            })
            .collect(),
    )
}

/// Runs the rounds, prints the medians, writes target/bench/netdom.json.
pub fn run(p: &crate::build::Platform, dir: &Path) -> Result<(), String> {
    let bin = super::build_xenapi_tools()?;
    let bench = bin.join("xenapi-bench");
    let sim_port = free_port()?;
    let mut sim = super::Sim::start("xcp-sim-state-netdom", sim_port, SIM_PASSWORD)?;
    let mut rounds = Vec::new();
    for i in 0..ROUNDS {
        match round(p, &bench, &sim.addr, dir, i) {
            Ok(r) => rounds.push(r),
            Err(e) => {
                sim.stop();
                return Err(e);
            }
        }
    }
    sim.stop();
    let med = |f: &dyn Fn(&Round) -> f64| super::median(rounds.iter().map(f).collect());
    let wall = med(&|r| r.wall_login);
    let xen = med(&|r| r.xen_handover);
    let relay = med(&|r| r.relay_listening - r.xen_handover);
    let ready = med(&|r| r.dom0_ready - r.xen_handover);
    println!("XenAPI through netdom (median of {ROUNDS} boots, TCG, no KVM)");
    println!("  QEMU start to a XenAPI login through netdom (wall) {wall:8.3} s");
    println!("  Xen boot to dom0 hand-over (Xen time)             {xen:8.3} s");
    println!(
        "  hand-over to netdom's relay listening             {:8.1} ms",
        relay * 1000.0
    );
    println!(
        "  hand-over to dom0's \"XenAPI ready at\"             {:8.1} ms",
        ready * 1000.0
    );
    println!("  baseline on the same rig (Linux dom0 + C tools): 7.2-7.5 s to toolstack ready");
    println!(
        "XenAPI call mix (host.get_record XML-RPC, VM.get_all_records and \
         session.get_this_host JSON-RPC; median of {ROUNDS}, {SECONDS} s per phase)"
    );
    let mut phases = Vec::new();
    for (phase, clients) in [(0, "1"), (1, CLIENTS)] {
        let n = |k| phase_median(&rounds, false, phase, k);
        let h = |k| phase_median(&rounds, true, phase, k);
        let ratio = h("calls_per_s") / n("calls_per_s");
        println!(
            "  {clients} client(s)  netdom (QEMU) {:>9.1} calls/s p50 {:>7.3} ms p99 {:>7.3} ms",
            n("calls_per_s"),
            n("p50_ms"),
            n("p99_ms")
        );
        println!(
            "              host mode     {:>9.1} calls/s p50 {:>7.3} ms p99 {:>7.3} ms  ({ratio:.0}x netdom)",
            h("calls_per_s"),
            h("p50_ms"),
            h("p99_ms")
        );
        phases.push(json!({
            "clients": clients.parse::<u32>().unwrap_or(0),
            "netdom": {"calls_per_s": n("calls_per_s"), "p50_ms": n("p50_ms"), "p99_ms": n("p99_ms")},
            "host": {"calls_per_s": h("calls_per_s"), "p50_ms": h("p50_ms"), "p99_ms": h("p99_ms")},
            "host_over_netdom": ratio,
        }));
    }
    let v = json!({
        "rounds": ROUNDS,
        "qemu_start_to_login_s": wall,
        "xen_boot_s": xen,
        "handover_to_relay_listening_ms": relay * 1000.0,
        "handover_to_xenapi_ready_ms": ready * 1000.0,
        "call_mix": rounds[0].netdom["mix"],
        "seconds_per_phase": SECONDS.parse::<f64>().unwrap_or(0.0),
        "reply_bytes": {"netdom": rounds[0].netdom["reply_bytes"], "host": rounds[0].host["reply_bytes"]},
        "phases": phases,
        "samples": rounds.iter().map(|r| json!({
            "qemu_start_to_login_s": r.wall_login,
            "xen_boot_s": r.xen_handover,
            "relay_listening_s": r.relay_listening,
            "xenapi_ready_s": r.dom0_ready,
            "netdom": r.netdom["phases"],
            "host": r.host["phases"],
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.join("netdom.json"),
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}
