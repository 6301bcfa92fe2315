//! `cargo xtask bench vms`: many tiny PVH VMs started and shut down at
//! once through XenAPI (issue #16, part 6).
//!
//! The shipped platform (as `guests`: toolstack in dom0, xenstore-dom,
//! netdom with QEMU's NIC forwarded from a free 127.0.0.1 port) with
//! tinyvm (`qemu-tests/tinyvm`, a PVH guest of a few KiB that says it is
//! up on Xen's debug port, writes its xenstore keys and obeys
//! `control/shutdown`) as the guest file. PyPI's
//! XenAPI, through netdom (`vms_client.py`): a tiny PVH template
//! ([`GUEST_MIB`], 1 vCPU), `VM.clone` + `VM.provision` [`VMS`] times,
//! then `Async.VM.start` of every VM at once (one thread and session per
//! VM, released by a barrier), every VM Running, then
//! `Async.VM.clean_shutdown` of every VM at once, every VM Halted.
//!
//! What is measured, all on one clock (host seconds from QEMU's start:
//! serial lines are stamped on arrival, `XCP_HOST_TIME`, and the client
//! stamps its facts with `time.time()` less the same epoch):
//! - **call → Running**: the client's `Async.VM.start` call to the first
//!   `event.from` batch that shows the VM Running (one watcher session
//!   subscribed to `vm` and `task`: what a client waiting on events sees;
//!   polling 50 VMs' power states would itself load the single-threaded
//!   toolstack);
//! - **call → guest up**: to the guest's first line, `tinyvm: up`, which
//!   it writes to Xen's debug port (0xE9) as its first act, so Xen prints
//!   `(dN) tinyvm: up` on its serial line for every VM (only
//!   `budget::VM_CONSOLES`, 8, VMs get their console relayed by dom0);
//! - **a bystander's wait**: while the starts run, another session calls
//!   `host.get_servertime` in a loop; its round trips are how long any
//!   other client waits behind the builds (dom0 builds one domain at a
//!   time in its event loop);
//! - **call → reply** (the Async call's own round trip), and from dom0's
//!   log the build of each VM ("xenapi: starting VM" to "xenapi: built
//!   VM"): where the start waits;
//! - **shutdown**: `Async.VM.clean_shutdown` to Halted (event.from);
//! - the whole cycle (first start call to the last VM Halted), and dom0's
//!   `mem` line before, with every VM running, and after.
//!
//! Printed, written to target/bench/vms.json; the serial log is kept in
//! target/bench/vms-xcp.log. Not part of `cargo xtask test`: the QEMU case
//! `guests_many` is the short check.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use xcp_domains::memory::{MemoryFigures, MemoryRow};
use xcp_qemu_tests::Run;

use super::common::{
    host, ours_launch, python, unstamped, with_log_of, PLATFORM_PASSWORD, PY_CLIENT_PRELUDE,
};

/// VMs started at once (`XCP_BENCH_VMS` overrides).
const VMS: usize = 50;
/// Each VM's memory, MiB (`XCP_BENCH_VM_MIB` overrides): the least a
/// PVH build accepts (`xcp_builder::MIN_PVH_MEMORY`); tinyvm uses about
/// 120 KiB of it.
const GUEST_MIB: u32 = 2;
/// The guest's command line (tinyvm reads none).
const GUEST_ARGS: &str = "";
/// The guest's first line on Xen's serial line (`(dN) tinyvm: up`).
const UP_MARKER: &str = "tinyvm: up";
/// The client (after [`PY_CLIENT_PRELUDE`]).
const CLIENT: &str = include_str!("vms_client.py");
/// xapi's published figure for the same kind of work: 512 VMs in
/// 16 min 29 s on a 12-core host.
const XAPI_VMS: f64 = 512.0;
const XAPI_SECS: f64 = 16.0 * 60.0 + 29.0;
const XAPI_CORES: f64 = 12.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One VM's start or shutdown as the client saw it (host seconds).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Call {
    pub vm: String,
    /// The Async call sent, its reply (the task), the state reached (None:
    /// never seen), the task's end and its status.
    pub sent: f64,
    pub replied: f64,
    pub reached: Option<f64>,
    pub task_end: f64,
    pub status: String,
}

/// What the client printed: its `T` lines.
#[derive(Debug, Default)]
pub(super) struct Facts {
    pub clone_secs: f64,
    pub starts: Vec<Call>,
    pub shutdowns: Vec<Call>,
    /// (vm, domid) while running.
    pub domids: Vec<(String, u32)>,
    /// Per phase (start, shutdown): first call released, every VM there.
    pub phases: Vec<(String, f64, f64)>,
    pub failures: Vec<String>,
    /// Round trips of `host.get_servertime` while the starts ran, s.
    pub probe: Vec<f64>,
    /// Times the watcher's `event.from` got EVENTS_LOST and re-read
    /// everything (the states it then saw are late by up to that gap).
    pub events_lost: usize,
}

pub(super) fn facts(output: &str) -> Facts {
    let mut f = Facts::default();
    for line in output.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["T", "clones", _, secs] => f.clone_secs = secs.parse().unwrap_or(0.0),
            ["T", "call", op, vm, sent, replied, reached, end, status] => {
                let p = |s: &str| s.parse::<f64>().ok();
                let call = Call {
                    vm: vm.to_string(),
                    sent: p(sent).unwrap_or(0.0),
                    replied: p(replied).unwrap_or(0.0),
                    reached: p(reached),
                    task_end: p(end).unwrap_or(0.0),
                    status: status.to_string(),
                };
                if *op == "start" {
                    f.starts.push(call);
                } else {
                    f.shutdowns.push(call);
                }
            }
            ["T", "domid", vm, domid] => {
                if let Ok(d) = domid.parse() {
                    f.domids.push((vm.to_string(), d));
                }
            }
            ["T", "phase", op, begin, end, _] => {
                if let (Ok(b), Ok(e)) = (begin.parse(), end.parse()) {
                    f.phases.push((op.to_string(), b, e));
                }
            }
            ["T", "events-lost"] => f.events_lost += 1,
            ["T", "probe", secs] => f.probe.extend(secs.parse::<f64>().ok()),
            ["T", "failed" | "task-failed" | "hard", ..] => f.failures.push(line.to_string()),
            _ => {}
        }
    }
    f
}

/// The domid of a guest's line on Xen's serial log (`(dN) ...`).
pub(super) fn guest_domid(line: &str) -> Option<u32> {
    let at = line.find("(d")?;
    let rest = &line[at + 2..];
    let close = rest.find(')')?;
    rest[..close].parse().ok()
}

/// Per domid, the host time of its first line (`tinyvm: up`).
fn markers(lines: &[String]) -> std::collections::HashMap<u32, f64> {
    let mut m = std::collections::HashMap::new();
    for l in lines.iter().filter(|l| l.contains(UP_MARKER)) {
        if let (Some(d), Some(t)) = (guest_domid(l), host(l)) {
            m.entry(d).or_insert(t);
        }
    }
    m
}

/// Per VM name, dom0's "starting VM" and "built VM" host times.
fn builds(lines: &[String]) -> std::collections::HashMap<String, (f64, Option<f64>)> {
    let mut m = std::collections::HashMap::new();
    let name_after = |l: &str, text: &str| -> Option<String> {
        let rest = &l[l.find(text)? + text.len()..];
        Some(rest.split_whitespace().next()?.to_string())
    };
    for l in lines {
        let Some(t) = host(l) else { continue };
        if let Some(n) = name_after(l, "xenapi: starting VM ") {
            m.entry(n).or_insert((t, None));
        } else if let Some(n) = name_after(l, "xenapi: built VM ") {
            if let Some(e) = m.get_mut(&n) {
                e.1.get_or_insert(t);
            }
        }
    }
    m
}

/// The `p`th percentile (nearest rank) of `v`.
pub(super) fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s.get(rank.clamp(1, s.len().max(1)) - 1).copied()
}

fn stats(v: &[f64]) -> Value {
    json!({
        "n": v.len(),
        "p50": percentile(v, 50.0),
        "p99": percentile(v, 99.0),
        "max": percentile(v, 100.0),
    })
}

fn row(label: &str, v: &[f64]) {
    let f = |p| percentile(v, p).map_or("-".into(), |s: f64| format!("{s:.2} s"));
    println!(
        "  {label:<40} {:>9} {:>9} {:>9}   (n={})",
        f(50.0),
        f(99.0),
        f(100.0),
        v.len()
    );
}

/// dom0's `mem` row, asked for the `n`th time.
fn dom0_mem(run: &Run, n: usize) -> Result<MemoryRow, String> {
    run.type_line("mem")?;
    let marker = format!("{}dom0 (domid ", xcp_domains::memory::PREFIX);
    let line = run.wait_for_nth(&marker, n, Duration::from_secs(60))?;
    MemoryRow::parse(unstamped(&line)).ok_or_else(|| format!("not a mem line: {line:?}"))
}

fn mem_json(f: &Option<MemoryFigures>) -> Value {
    f.map_or(Value::Null, |f| {
        json!({"heap_in_use": f.heap_in_use, "heap_peak": f.heap_peak, "heap_bytes": f.heap_bytes,
               "frames_in_use": f.frames_in_use, "frames_peak": f.frames_peak})
    })
}

/// Runs the client against the platform; returns its output, dom0's
/// three mem rows and the serial log.
fn drive(
    run: &Run,
    url: &str,
    epoch: f64,
    n: usize,
    mib: u32,
) -> Result<(String, Vec<MemoryRow>), String> {
    run.wait_for("dom0: XenAPI ready at", Duration::from_secs(200))?;
    let mut mem = vec![dom0_mem(run, 1)?];
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", "3000"])
        .arg(python())
        .args([
            "-c",
            &format!("{PY_CLIENT_PRELUDE}{CLIENT}"),
            url,
            PLATFORM_PASSWORD,
            &n.to_string(),
            &mib.to_string(),
            GUEST_ARGS,
            &format!("{epoch:.6}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn the client: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("client stdin")?;
    let stdout = child.stdout.take().ok_or("client stdout")?;
    let mut output = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        eprintln!("bench vms: client: {line}");
        output.push_str(&line);
        output.push('\n');
        if line.ends_with("ALL-RUNNING") {
            // Every guest's first line (the marker), or 15 minutes.
            let deadline = Instant::now() + Duration::from_secs(900);
            while markers(&run.lines()).len() < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
            }
            eprintln!(
                "bench vms: {} of {n} guests' first lines seen",
                markers(&run.lines()).len()
            );
            mem.push(dom0_mem(run, 2)?);
            let _ = stdin.write_all(b"go\n").and_then(|()| stdin.flush());
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() || !output.contains("CLIENT DONE") {
        return Err(format!("the XenAPI client failed ({status}):\n{output}"));
    }
    mem.push(dom0_mem(run, mem.len() + 1)?);
    Ok((output, mem))
}

/// Runs the bench, prints the table, writes target/bench/vms.json.
pub fn run(p: &crate::build::Platform, dir: &Path) -> Result<(), String> {
    std::env::set_var("XCP_HOST_TIME", "1");
    let n: usize = env_or("XCP_BENCH_VMS", VMS);
    let mib: u32 = env_or("XCP_BENCH_VM_MIB", GUEST_MIB);
    let root = crate::build::workspace_root();
    let scratch = p.dir.join("scratch/bench-vms");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let (mut launch, url) = ours_launch(p, &[p.dir.join("tinyvm.elf")], &scratch)?;
    // The guests, the platform's domains, and room to spare.
    launch.memory_mib = 1024 + n as u32 * (mib + 4);
    launch.timeout_secs = 3600;
    eprintln!(
        "bench vms: {n} PVH VMs of {mib} MiB, QEMU -m {}",
        launch.memory_mib
    );
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs_f64();
    let run = Run::start("bench-vms-xcp", &launch);
    let result = drive(&run, &url, epoch, n, mib);
    let lines = run.lines();
    run.finish(Duration::from_millis(500));
    let _ = std::fs::write(root.join("target/bench/vms-xcp.log"), lines.join("\n"));
    let (output, mem) = result.map_err(with_log_of(&lines))?;
    report(&facts(&output), &lines, &mem, n, mib, dir)
}

fn report(
    f: &Facts,
    lines: &[String],
    mem: &[MemoryRow],
    n: usize,
    mib: u32,
    dir: &Path,
) -> Result<(), String> {
    let marks = markers(lines);
    let built = builds(lines);
    let domid_of = |vm: &str| f.domids.iter().find(|(v, _)| v == vm).map(|(_, d)| *d);
    let to_running: Vec<f64> = f
        .starts
        .iter()
        .filter_map(|c| Some(c.reached? - c.sent))
        .collect();
    let to_reply: Vec<f64> = f.starts.iter().map(|c| c.replied - c.sent).collect();
    let to_up: Vec<f64> = f
        .starts
        .iter()
        .filter_map(|c| Some(marks.get(&domid_of(&c.vm)?)? - c.sent))
        .collect();
    let queued: Vec<f64> = f
        .starts
        .iter()
        .filter_map(|c| Some(built.get(&c.vm)?.0 - c.sent))
        .collect();
    let build: Vec<f64> = built
        .values()
        .filter_map(|(s, e)| Some((*e)? - s))
        .collect();
    let to_halted: Vec<f64> = f
        .shutdowns
        .iter()
        .filter_map(|c| Some(c.reached? - c.sent))
        .collect();
    let phase = |op: &str| f.phases.iter().find(|p| p.0 == op).map(|p| (p.1, p.2));
    let start = phase("start");
    let stop = phase("shutdown");
    let cycle = match (start, stop) {
        (Some((s, _)), Some((_, e))) => Some(e - s),
        _ => None,
    };
    // How much of the start phase dom0's event loop spent building.
    let first_build = built.values().map(|v| v.0).fold(f64::INFINITY, f64::min);
    let last_built = built
        .values()
        .filter_map(|v| v.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let build_sum: f64 = build.iter().sum();
    let build_span = last_built - first_build;

    println!(
        "{n} tiny PVH VMs ({mib} MiB, 1 vCPU, tinyvm), \
         started and shut down at once through PyPI XenAPI via netdom; QEMU TCG -smp 1"
    );
    println!(
        "  clone + provision of {n} VMs from a template: {:.1} s",
        f.clone_secs
    );
    println!("  {:<40} {:>9} {:>9} {:>9}", "", "p50", "p99", "max");
    row("Async.VM.start call -> its reply", &to_reply);
    row("call -> dom0 starts the build", &queued);
    row("dom0's build (starting -> built)", &build);
    row("call -> Running (event.from)", &to_running);
    row("call -> guest's first line (Xen serial)", &to_up);
    row("Async.VM.clean_shutdown -> Halted", &to_halted);
    row("host.get_servertime meanwhile (RTT)", &f.probe);
    if let Some((s, e)) = start {
        println!(
            "  all {n} started (first call -> last Running): {:.1} s",
            e - s
        );
    }
    if let Some((s, e)) = stop {
        println!(
            "  all {n} shut down (first call -> last Halted): {:.1} s",
            e - s
        );
    }
    if let (Some(c), Some((s0, s1)), Some((h0, h1))) = (cycle, start, stop) {
        let phases = (s1 - s0) + (h1 - h0);
        println!(
            "  whole cycle: first start call -> last Halted {c:.1} s (of which waiting for every \
             guest's first line before the shutdown: {:.1} s); start + shutdown phases {phases:.1} s = {:.2} s per VM",
            h0 - s1,
            phases / n as f64
        );
    }
    if build_span.is_finite() && build_span > 0.0 {
        println!(
            "  dom0 built for {build_sum:.1} s of the {build_span:.1} s from the first build to the last \
             ({:.0}%): builds run one after another in dom0's single event loop",
            100.0 * build_sum / build_span
        );
    }
    if f.events_lost > 0 {
        println!(
            "  the event.from watcher lost its window {} times and re-read everything: \
             Running/Halted instants after a loss are late",
            f.events_lost
        );
    }
    for fail in &f.failures {
        println!("  FAILED: {fail}");
    }
    let figures: Vec<Option<MemoryFigures>> = mem.iter().map(|m| m.figures).collect();
    if let [Some(b), Some(r), Some(a)] = figures.as_slice() {
        println!(
            "  dom0 heap in use: {:.0} KiB before, {:.0} KiB with {n} running, {:.0} KiB after; \
             high-water {:.0} KiB of {:.0} KiB; frames in use {} / {} / {}, high-water {}",
            b.heap_in_use as f64 / 1024.0,
            r.heap_in_use as f64 / 1024.0,
            a.heap_in_use as f64 / 1024.0,
            a.heap_peak as f64 / 1024.0,
            a.heap_bytes as f64 / 1024.0,
            b.frames_in_use,
            r.frames_in_use,
            a.frames_in_use,
            a.frames_peak
        );
    }
    println!(
        "  xapi's figure: {XAPI_VMS:.0} VMs in 16 min 29 s on {XAPI_CORES:.0} cores = {:.2} s per VM \
         (wall), {:.1} core-s per VM. Not comparable: ours is one emulated vCPU under TCG \
         (tens of times slower than hardware) for dom0, the other domains and every guest, \
         with guests that do nothing; theirs is real hardware and real guests. Comparable: \
         both drive the start and shutdown of every VM through XenAPI, concurrently.",
        XAPI_SECS / XAPI_VMS,
        XAPI_SECS * XAPI_CORES / XAPI_VMS
    );
    let calls = |c: &[Call]| -> Value {
        c.iter()
            .map(|c| {
                json!({"vm": c.vm, "sent": c.sent, "replied": c.replied, "reached": c.reached,
                   "task_end": c.task_end, "status": c.status,
                   "domid": domid_of(&c.vm),
                   "up": domid_of(&c.vm).and_then(|d| marks.get(&d).copied()),
                   "build": built.get(&c.vm).map(|b| json!([b.0, b.1]))})
            })
            .collect()
    };
    let v = json!({
        "vms": n,
        "guest": {"memory_mib": mib, "vcpus": 1, "args": GUEST_ARGS},
        "qemu": "q35, -cpu max,-rdtscp,-pku, -smp 1, TCG",
        "clock": "host seconds from QEMU's start (serial lines stamped on arrival; the client's time.time() less the same epoch)",
        "clone_secs": f.clone_secs,
        "start": {
            "call_to_reply": stats(&to_reply),
            "call_to_build_start": stats(&queued),
            "build": stats(&build),
            "call_to_running": stats(&to_running),
            "call_to_guest_up": stats(&to_up),
            "servertime_rtt_meanwhile": stats(&f.probe),
            "phase_secs": start.map(|p| p.1 - p.0),
            "build_secs_total": build_sum,
            "build_span_secs": build_span.is_finite().then_some(build_span),
        },
        "shutdown": {
            "call_to_halted": stats(&to_halted),
            "phase_secs": stop.map(|p| p.1 - p.0),
        },
        "cycle_secs": cycle,
        "failures": f.failures,
        "events_lost": f.events_lost,
        "dom0_memory": {"before": mem_json(&figures[0]), "running": mem_json(figures.get(1).unwrap_or(&None)),
                        "after": mem_json(figures.get(2).unwrap_or(&None))},
        "xapi": {"vms": XAPI_VMS, "secs": XAPI_SECS, "cores": XAPI_CORES,
                 "secs_per_vm": XAPI_SECS / XAPI_VMS},
        "calls": {"start": calls(&f.starts), "shutdown": calls(&f.shutdowns)},
    });
    std::fs::write(
        dir.join("vms.json"),
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    if !f.failures.is_empty() || to_running.len() < n || to_halted.len() < n {
        return Err(format!(
            "bench vms: {} of {n} Running, {} of {n} Halted, {} failures",
            to_running.len(),
            to_halted.len(),
            f.failures.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_python() {
        super::super::common::assert_python_parses(&format!("{PY_CLIENT_PRELUDE}{CLIENT}"));
    }

    #[test]
    fn the_client_facts_parse() {
        let f = facts(
            "T clones 2 1.500\n\
             T call start bench-vm00 10.000 10.500 12.000 12.100 success\n\
             T call start bench-vm01 10.001 11.000 - 13.000 failure\n\
             T call shutdown bench-vm00 20.000 20.100 21.000 21.000 success\n\
             T domid bench-vm00 5\n\
             T phase start 9.900 13.000 ok\n\
             T probe 0.250\n\
             T task-failed start bench-vm01 failure x\n",
        );
        assert_eq!(f.clone_secs, 1.5);
        assert_eq!(f.starts.len(), 2);
        assert_eq!(f.starts[0].reached, Some(12.0));
        assert_eq!(f.starts[1].reached, None);
        assert_eq!(f.shutdowns[0].sent, 20.0);
        assert_eq!(f.domids, vec![("bench-vm00".to_string(), 5)]);
        assert_eq!(f.phases, vec![("start".to_string(), 9.9, 13.0)]);
        assert_eq!(f.failures.len(), 1);
        assert_eq!(f.probe, vec![0.25]);
    }

    #[test]
    fn guest_lines_name_their_domain() {
        assert_eq!(
            guest_domid("(XEN) [  12.3] (d12) tinyvm: up {host 40.1}"),
            Some(12)
        );
        assert_eq!(guest_domid("dom0: xenapi: starting VM x"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
