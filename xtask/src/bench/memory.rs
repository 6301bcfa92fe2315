//! `cargo xtask bench memory`: each service domain's configured memory and
//! its peak use under the bench loads, and the size that would fit it.
//!
//! Boots the shipped platform as `cargo xtask run` does (a free 127.0.0.1
//! port forwarded to netdom's port 80), then through netdom: [`VMS`] VMs made
//! with VM.create, VM.get_all_records over XML-RPC and JSON-RPC with all of
//! them, event.from waits (`xenapi-bench`), and the 4-client call mix
//! (`xenapi-bench calls`). Before the loads, between them and after them
//! it types `mem` on dom0's console and reads
//! one line per domain (`xcp_domains::memory::MemoryRow`): dom0's own
//! figures, xenstore-dom's from its xenstore home, netdom's over the relay
//! channel, and Xen's page counts for each. Printed as a table and written
//! to target/bench/memory.json.
//!
//! "Peak use" is what the domain needed at most: the pages boot kept
//! (image, boot module, page tables, stack), the heap's high-water mark and
//! the frames handed out at most. "Fits in" is the smallest size whose boot
//! split (three quarters of the free pages heap, the rest frames) leaves
//! `HEADROOM` over both peaks.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use xcp_domains::memory::MemoryRow;
use xcp_qemu_tests::Run;

/// VMs the load creates; the environment variable `XCP_BENCH_VMS` sets
/// another number. The bounds are sized for 1,000: dom0 writes the XML-RPC
/// VM.get_all_records reply (6.8 MB) straight into relay chunks, and its
/// heap peaks at 13.0 MiB of 46.1 (was a crash: the reply's heap peaked
/// near 7x its size). The 1,000 VMs take ~10 s.
const VMS: &str = "1000";
/// The shipped platform's root password (boot/platform.toml's comment).
const PLATFORM_PASSWORD: &str = "xcp-rs";
/// Headroom over each measured peak, in percent.
const HEADROOM: u64 = 50;
/// The domains of the shipped platform, dom0 first.
const DOMAINS: [&str; 3] = ["dom0", "xenstore", "netdom"];
/// xenstore-dom looks at its figures once a second.
const PUBLISH_WAIT: Duration = Duration::from_millis(2500);

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

/// Pages boot kept before the heap and the frames: `configured` less both.
fn fixed_pages(configured_mib: u64, heap_bytes: u64, frames: u64) -> u64 {
    (configured_mib * MIB / PAGE).saturating_sub(heap_bytes.div_ceil(PAGE) + frames)
}

/// The smallest whole MiB whose boot split gives the heap and the frames
/// `HEADROOM` percent over their peaks, the fixed pages staying as measured.
fn fits_in_mib(fixed: u64, heap_peak: u64, frames_peak: u64) -> u64 {
    let heap_need = (heap_peak * (100 + HEADROOM) / 100).div_ceil(PAGE);
    let frames_need = frames_peak * (100 + HEADROOM) / 100 + 1;
    (1..=4096)
        .find(|mib| {
            let free = (mib * MIB / PAGE).saturating_sub(fixed);
            let frames = free / 4;
            free - frames >= heap_need && frames >= frames_need
        })
        .unwrap_or(4096)
}

/// One domain's figures from its row.
struct Figures {
    row: MemoryRow,
    peak_mib: f64,
    fits_mib: u64,
}

fn figures(row: MemoryRow) -> Result<Figures, String> {
    let f = row
        .figures
        .ok_or_else(|| format!("{} reported no runtime figures", row.name))?;
    let fixed = fixed_pages(row.configured_mib, f.heap_bytes, f.frames);
    let peak = fixed * PAGE + f.heap_peak + f.frames_peak * PAGE;
    Ok(Figures {
        peak_mib: peak as f64 / MIB as f64,
        fits_mib: fits_in_mib(fixed, f.heap_peak, f.frames_peak),
        row,
    })
}

/// Types `mem` (the `n`th time) and reads each domain's line.
fn mem(run: &Run, n: usize) -> Result<Vec<MemoryRow>, String> {
    run.type_line("mem")?;
    let mut rows = Vec::new();
    for name in DOMAINS {
        let marker = format!("{}{name} (domid ", xcp_domains::memory::PREFIX);
        let line = run.wait_for_nth(&marker, n, Duration::from_secs(30))?;
        rows.push(MemoryRow::parse(&line).ok_or_else(|| format!("not a mem line: {line:?}"))?);
    }
    Ok(rows)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Boots, loads, asks, prints, writes target/bench/memory.json.
pub fn run(p: &crate::build::Platform, dir: &Path) -> Result<(), String> {
    let bin = super::build_xenapi_tools()?;
    let bench = bin.join("xenapi-bench");
    let port = super::netdom::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut launch = p.launch(&format!("xenapi-url=http://{addr}/"));
    launch.devices.nic = Some(Some(port));
    launch.timeout_secs = 900;
    let vms = std::env::var("XCP_BENCH_VMS").unwrap_or_else(|_| VMS.into());
    let run = Run::start("bench-memory", &launch);
    // A domain that ran out of memory says so on the console: that line
    // first, then the log.
    let with_log = |e: String| {
        let lines = run.lines();
        let oom = lines
            .iter()
            .filter(|l| l.contains("PANIC") || l.contains("memory allocation of"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        format!("{e}\n{oom}\nlog:\n{}", lines.join("\n"))
    };
    crate::run(
        Command::new(&bench)
            .args(["wait-login", "--addr", &addr])
            .args(["--password", PLATFORM_PASSWORD, "--timeout", "120"]),
    )
    .map_err(with_log)?;
    run.wait_for("dom0: XenAPI ready at", Duration::from_secs(30))?;
    std::thread::sleep(PUBLISH_WAIT);
    let idle = mem(&run, 1)?;
    let started = Instant::now();
    crate::run(
        Command::new("timeout")
            .args(["-s", "KILL", "600"])
            .arg(&bench)
            .args(["--addr", &addr, "--password", PLATFORM_PASSWORD])
            .args(["--vms", &vms, "--seconds", "3", "--events", "10", "--out"])
            .arg(dir.join("memory-xenapi.json")),
    )
    .map_err(with_log)?;
    let vms_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(PUBLISH_WAIT);
    let after_vms = mem(&run, 2)?;
    crate::run(
        Command::new("timeout")
            .args(["-s", "KILL", "120"])
            .arg(&bench)
            .args(["calls", "--addr", &addr, "--password", PLATFORM_PASSWORD])
            .args(["--seconds", "3", "--clients", "4", "--out"])
            .arg(dir.join("memory-calls.json")),
    )
    .map_err(with_log)?;
    std::thread::sleep(PUBLISH_WAIT);
    let loaded = mem(&run, 3)?;
    run.finish(Duration::from_millis(500));
    let rows = loaded
        .into_iter()
        .map(figures)
        .collect::<Result<Vec<_>, String>>()?;
    println!(
        "memory of the service domains (shipped platform, TCG) after {vms} VMs made with \
         VM.create through netdom ({vms_secs:.1} s with VM.get_all_records and event.from), \
         then the 4-client call mix"
    );
    println!(
        "  {:<9} {:>10} {:>16} {:>22} {:>18} {:>9} {:>8}",
        "domain",
        "configured",
        "Xen pages (MiB)",
        "heap peak/size (MiB)",
        "frames peak/of",
        "peak use",
        "fits in"
    );
    for f in &rows {
        let m = f.row.figures.expect("figures() checked");
        let xen = f.row.xen_pages.map_or("-".into(), |(tot, _)| {
            format!("{tot} ({:.1})", mib(tot * PAGE))
        });
        println!(
            "  {:<9} {:>6} MiB {:>16} {:>22} {:>18} {:>5.1} MiB {:>4} MiB",
            f.row.name,
            f.row.configured_mib,
            xen,
            format!("{:.2}/{:.1}", mib(m.heap_peak), mib(m.heap_bytes)),
            format!("{}/{}", m.frames_peak, m.frames),
            f.peak_mib,
            f.fits_mib
        );
    }
    for (phase, rows) in [
        ("idle after boot", &idle),
        ("after the VM load", &after_vms),
    ] {
        let peaks = rows
            .iter()
            .map(|r| {
                let heap = r.figures.map_or(0, |f| f.heap_peak);
                format!("{} {:.2}", r.name, mib(heap))
            })
            .collect::<Vec<_>>();
        println!("  heap peaks {phase} (MiB): {}", peaks.join(", "));
    }
    let configured: u64 = rows.iter().map(|f| f.row.configured_mib).sum();
    let peak: f64 = rows.iter().map(|f| f.peak_mib).sum();
    let fits: u64 = rows.iter().map(|f| f.fits_mib).sum();
    println!(
        "  (xenstore-dom's store holds only the platform's own nodes here, the VMs being \
         halted: size it from its quotas, not from this peak)"
    );
    println!(
        "  together: {configured} MiB configured, {peak:.1} MiB peak use, fits in {fits} MiB \
         ({HEADROOM}% headroom over each peak; goal 24 MiB)"
    );
    let json_row = |r: &MemoryRow| {
        let f = r.figures.unwrap_or_default();
        json!({
            "name": r.name, "domid": r.domid, "configured_mib": r.configured_mib,
            "xen_tot_pages": r.xen_pages.map(|x| x.0), "xen_max_pages": r.xen_pages.map(|x| x.1),
            "heap_bytes": f.heap_bytes, "heap_in_use": f.heap_in_use, "heap_peak": f.heap_peak,
            "frames": f.frames, "frames_in_use": f.frames_in_use, "frames_peak": f.frames_peak,
        })
    };
    let v = json!({
        "vms": vms.parse::<u32>().unwrap_or(0),
        "vm_load_s": vms_secs,
        "headroom_percent": HEADROOM,
        "idle": idle.iter().map(json_row).collect::<Vec<_>>(),
        "after_vms": after_vms.iter().map(json_row).collect::<Vec<_>>(),
        "loaded": rows.iter().map(|f| {
            let mut j = json_row(&f.row);
            j["peak_use_mib"] = json!(f.peak_mib);
            j["fits_in_mib"] = json!(f.fits_mib);
            j
        }).collect::<Vec<_>>(),
        "together": {"configured_mib": configured, "peak_use_mib": peak, "fits_in_mib": fits},
    });
    std::fs::write(
        dir.join("memory.json"),
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_part_is_what_heap_and_frames_leave() {
        // 16 MiB = 4096 pages: 2880 heap pages, 960 frames, 256 kept.
        assert_eq!(fixed_pages(16, 2880 * PAGE, 960), 256);
        assert_eq!(fixed_pages(1, 10 * MIB, 0), 0);
    }

    #[test]
    fn fits_leaves_headroom_under_the_boot_split() {
        // 256 fixed pages, 1 MiB heap peak, 10 frames: 1.5 MiB of heap
        // needs 384 pages, so free >= 512 (384 heap + 128 frames): 3 MiB.
        assert_eq!(fits_in_mib(256, MIB, 10), 3);
        // The frames can be what decides: 300 frames at most need 451,
        // so 1804 free pages: 2060 in all, 9 MiB (2304 pages).
        assert_eq!(fits_in_mib(256, 0, 300), 9);
        let mib = fits_in_mib(256, MIB, 10);
        let free = mib * 256 - 256;
        assert!(free - free / 4 >= 384 && free / 4 >= 16);
    }
}
