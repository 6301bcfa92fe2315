//! `cargo xtask bench guests`: the same Debian 12 kernel started as a PVH
//! guest on xcp-rs and on the Linux-dom0 baseline, side by side in one run.
//!
//! - **xcp-rs**: the shipped platform (toolstack in dom0, xenstore-dom,
//!   netdom with QEMU's NIC forwarded from a free 127.0.0.1 port) with the
//!   guest files in its bundle (`/boot/guest/...`). PyPI's XenAPI, through
//!   netdom, makes a PVH VM per kernel and `VM.start`s it [`RUNS`] times
//!   (the guest's /init powers it off: Halted, then started again). The
//!   start instant is dom0's "xenapi: starting VM" line (the top of its
//!   build).
//! - **baseline**: Linux as a PV dom0 with Debian's own Xen 4.17 tools
//!   (C xenstored, xen-init-dom0, xenconsoled, `xl`), made here from Debian
//!   packages (`apt-get download`, unpacked with `dpkg-deb -x`, cached in
//!   target/bench/baseline) into a newc initramfs whose /init starts the
//!   tools and runs `xl create -c` [`RUNS`] times per guest config. The
//!   start instant is its "BENCH_XL_CREATE" line, echoed just before `xl`.
//!
//! Both boot the same Xen (Debian's xen-hypervisor-4.17) on the same QEMU
//! command line (`xcp_boot::qemu::Launch`: q35, `-cpu max,-rdtscp,-pku`,
//! `-smp 1`, 2048 MiB, the emulated VT-d), and the guest is the same: the
//! ELF vmlinux inside Debian's bzImage (and the bzImage itself), 256 MiB,
//! 1 vCPU, `console=hvc0 earlyprintk=xen`, and the same busybox initramfs
//! whose /init echoes a marker and powers off. Its first console line is
//! Linux's banner through `earlyprintk=xen` (`(dN) ... Linux version` on
//! Xen's serial line); its /init's marker arrives through the console
//! relay (dom0's on xcp-rs, xenconsoled and `xl create -c` on the
//! baseline). Every serial line is stamped with host time on arrival
//! (`XCP_HOST_TIME`), so both sides are timed by the same clock.
//!
//! dom0's memory on xcp-rs: its `mem` console line (heap and frames in use
//! and their high-water marks since boot) just before each kernel's first
//! `VM.start` and after its last start halted. Printed as a table, written
//! to target/bench/guests.json; the serial logs of both sides are kept in
//! target/bench/guests-xcp.log and guests-baseline.log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use xcp_domains::memory::MemoryRow;
use xcp_qemu_tests::linux::initramfs;
use xcp_qemu_tests::Run;

use super::common::{
    baseline_initramfs as baseline_initramfs_with, baseline_launch, host, kernel_files,
    ours_launch, python, unstamped, with_log_of, Entries, Kernel, BASELINE_DOM0_PRELUDE,
    PLATFORM_PASSWORD, PY_CLIENT_PRELUDE,
};

/// Starts per kernel and side: TCG is slow; medians of these.
const RUNS: usize = 3;
/// The guest's kernel command line, on both sides.
const GUEST_ARGS: &str = "console=hvc0 earlyprintk=xen";
const GUEST_MIB: u32 = 256;
/// What the guest's /init prints first.
const INIT_MARKER: &str = "BENCH-GUEST-INIT";
/// The guest's /init: the marker, then power off (on_poweroff destroy on
/// both sides).
const GUEST_INIT: &str = "#!/bin/busybox sh\n\
                          /bin/busybox echo BENCH-GUEST-INIT\n\
                          /bin/busybox poweroff -f\n";
/// The kernels: a label, the guest file name, our VM's name.
const KERNELS: [(&str, &str, &str); 2] = [
    ("ELF vmlinux", "vmlinux", "bench-elf"),
    ("bzImage (xz)", "vmlinuz", "bench-bz"),
];

/// Points of a guest's start seen on the serial line, in order; the first
/// line after the start that contains the text.
const MILESTONES: &[(&str, &str)] = &[
    ("built", "xenapi: built VM"),
    ("first_line", "Linux version"),
    ("tsc_calibrated", "tsc: Detected"),
    ("hvc0", "printk: console [hvc0] enabled"),
    (
        "initramfs_unpack",
        "Trying to unpack rootfs image as initramfs",
    ),
    ("initramfs_freed", "Freeing initrd memory"),
    ("run_init", "Run /init as init process"),
    ("init", INIT_MARKER),
];

/// What the start lines of both sides contain.
const START_LINES: [&str; 2] = ["xenapi: starting VM ", "BENCH_XL_CREATE "];

/// One start's milestones: seconds from the start line, per milestone
/// (None: not seen before the next start).
type Sample = Vec<Option<f64>>;

/// The starts whose lines contain `start`, each with its milestones
/// (looked for up to the next start).
fn samples(lines: &[String], start: &str, domid_prefixed_banner: bool) -> Vec<Sample> {
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(start))
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .filter_map(|&s| {
            let t0 = host(&lines[s])?;
            // Up to the next start of any guest on either side.
            let end = lines[s + 1..]
                .iter()
                .position(|l| START_LINES.iter().any(|m| l.contains(m)))
                .map_or(lines.len(), |i| s + 1 + i);
            let window = &lines[s..end];
            Some(
                MILESTONES
                    .iter()
                    .map(|(name, text)| {
                        window
                            .iter()
                            .find(|l| {
                                l.contains(text)
                                    && (*name != "first_line"
                                        || !domid_prefixed_banner
                                        || l.starts_with("(d"))
                            })
                            .and_then(|l| host(l))
                            .map(|t| t - t0)
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Per milestone, the median over the samples that saw it.
fn medians(samples: &[Sample]) -> Vec<Option<f64>> {
    (0..MILESTONES.len())
        .map(|m| {
            let seen: Vec<f64> = samples.iter().filter_map(|s| s[m]).collect();
            (!seen.is_empty()).then(|| super::median(seen))
        })
        .collect()
}

fn milestone(name: &str) -> usize {
    MILESTONES
        .iter()
        .position(|(n, _)| *n == name)
        .expect("a milestone")
}

/// The guest files: Debian's kernel and the initramfs.
struct Guest {
    kernel: Kernel,
    initramfs: PathBuf,
}

fn guest_files(dir: &Path) -> Result<Guest, String> {
    Ok(Guest {
        kernel: kernel_files(dir)?,
        initramfs: initramfs(dir, GUEST_INIT),
    })
}

/// Makes the PVH VMs and starts each [`RUNS`] times, waiting for Halted
/// in between; prints `START-FAILED <name> <error>` when VM.start refuses
/// a kernel, and "CLIENT DONE" at the end.
const CLIENT: &str = r#"
url, pw, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
kernels = sys.argv[4:]
s = login(url, pw, "bench-guests")
for spec in kernels:
    name, kernel, mib, args = spec.split(",", 3)
    vm = pvh_vm(s.xenapi, name, kernel, int(mib), args, "destroy")
    for i in range(runs):
        try:
            s.xenapi.VM.start(vm, False, False)
        except Exception as e:
            print("START-FAILED", name, str(e).replace("\n", " "), flush=True)
            break
        deadline = time.monotonic() + 300
        while s.xenapi.VM.get_power_state(vm) != "Halted":
            if time.monotonic() > deadline:
                print("NOT-HALTED", name, i, flush=True)
                s.xenapi.VM.hard_shutdown(vm)
                break
            time.sleep(0.5)
        print("HALTED", name, i, flush=True)
s.xenapi.session.logout()
print("CLIENT DONE", flush=True)
"#;

/// dom0's `mem` row, asked for the `n`th time.
fn dom0_mem(run: &Run, n: usize) -> Result<MemoryRow, String> {
    run.type_line("mem")?;
    let marker = format!("{}dom0 (domid ", xcp_domains::memory::PREFIX);
    let line = run.wait_for_nth(&marker, n, Duration::from_secs(30))?;
    MemoryRow::parse(unstamped(&line)).ok_or_else(|| format!("not a mem line: {line:?}"))
}

/// What xcp-rs's run gave for one kernel.
struct OursKernel {
    /// Its samples, or why VM.start refused it.
    samples: Result<Vec<Sample>, String>,
    /// dom0's `mem` row just before its first VM.start and just after its
    /// last start halted.
    before: MemoryRow,
    after: MemoryRow,
}

fn ours(p: &crate::build::Platform, g: &Guest, dir: &Path) -> Result<Vec<OursKernel>, String> {
    let root = crate::build::workspace_root();
    let guests = [
        g.kernel.vmlinux.clone(),
        g.kernel.vmlinuz.clone(),
        g.initramfs.clone(),
    ];
    let (launch, url) = ours_launch(p, &guests, dir)?;
    let py = python();
    eprintln!("bench guests: xcp-rs, {RUNS} starts per kernel");
    let run = Run::start("bench-guests-xcp", &launch);
    let result = (|| {
        run.wait_for("dom0: XenAPI ready at", Duration::from_secs(200))?;
        let mut asked = 0;
        let mut out = Vec::new();
        for (_, file, name) in KERNELS {
            asked += 1;
            let before = dom0_mem(&run, asked)?;
            let spec = format!("{name},/boot/guest/{file},{GUEST_MIB},{GUEST_ARGS}");
            let (ok, output) = xcp_qemu_tests::clients::run(
                Command::new(&py).args([
                    "-c",
                    &format!("{PY_CLIENT_PRELUDE}{CLIENT}"),
                    &url,
                    PLATFORM_PASSWORD,
                    &RUNS.to_string(),
                    &spec,
                ]),
                1200,
            );
            if !ok || !output.contains("CLIENT DONE") {
                return Err(format!("the XenAPI client failed:\n{output}"));
            }
            asked += 1;
            let after = dom0_mem(&run, asked)?;
            let failed = output
                .lines()
                .find_map(|l| l.strip_prefix(&format!("START-FAILED {name} ")));
            let samples = match failed {
                Some(e) => Err(e.to_string()),
                None => Ok(samples(
                    &run.lines(),
                    &format!("xenapi: starting VM {name}"),
                    true,
                )),
            };
            out.push(OursKernel {
                samples,
                before,
                after,
            });
        }
        Ok(out)
    })();
    let lines = run.lines();
    run.finish(Duration::from_millis(500));
    let _ = std::fs::write(root.join("target/bench/guests-xcp.log"), lines.join("\n"));
    result.map_err(with_log_of(&lines))
}

/// The baseline dom0's /init after [`BASELINE_DOM0_PRELUDE`]: xenconsoled,
/// then `xl create -c` of each config `bench_runs` times.
const BASELINE_INIT: &str = r#"xenconsoled --log=none &
sleep 0.2
echo "BENCH_DOM0_READY"
for cfg in $(echo "$bench_cfgs" | tr '+' ' '); do
    i=0
    while [ $i -lt "$bench_runs" ]; do
        echo "BENCH_XL_CREATE $cfg $i"
        timeout 300 xl create -c /etc/xen/$cfg.cfg 2>&1
        echo "BENCH_XL_RETURNED $cfg $i rc=$?"
        xl destroy bench >/dev/null 2>&1
        i=$((i + 1))
    done
done
echo "BENCH_ALL_DONE"
"#;

/// The baseline's configs: (config name, guest file), the same order as
/// [`KERNELS`].
const BASELINE_CFGS: [(&str, &str); 2] = [("elf", "vmlinux"), ("bz", "vmlinuz")];

/// Builds the baseline dom0's initramfs at `dir/dom0.cpio`.
fn baseline_initramfs(g: &Guest, dir: &Path) -> Result<PathBuf, String> {
    let mut e: Entries = Vec::new();
    for (file, path) in [
        ("vmlinux", &g.kernel.vmlinux),
        ("vmlinuz", &g.kernel.vmlinuz),
        ("initramfs", &g.initramfs),
    ] {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        e.push((format!("guest/{file}"), 0o100644, data));
    }
    for (cfg, file) in BASELINE_CFGS {
        let text = format!(
            "name = \"bench\"\ntype = \"pvh\"\nkernel = \"/guest/{file}\"\n\
             ramdisk = \"/guest/initramfs\"\nextra = \"{GUEST_ARGS}\"\n\
             memory = {GUEST_MIB}\nvcpus = 1\non_poweroff = \"destroy\"\n\
             on_reboot = \"destroy\"\non_crash = \"destroy\"\n"
        );
        e.push((format!("etc/xen/{cfg}.cfg"), 0o100644, text.into_bytes()));
    }
    let init = format!("{BASELINE_DOM0_PRELUDE}{BASELINE_INIT}");
    baseline_initramfs_with(&g.kernel, &[], e, &init, dir)
}

/// What the baseline's run gave: per config, its samples.
fn baseline(p: &crate::build::Platform, g: &Guest, dir: &Path) -> Result<Vec<Vec<Sample>>, String> {
    let initrd = baseline_initramfs(g, dir)?;
    let cfgs: Vec<&str> = BASELINE_CFGS.iter().map(|(c, _)| *c).collect();
    let cmdline = format!("bench_runs={RUNS} bench_cfgs={}", cfgs.join("+"));
    let launch = baseline_launch(p, &g.kernel, &cmdline, initrd, false);
    eprintln!("bench guests: baseline (Linux dom0, xl), {RUNS} starts per kernel");
    let run = Run::start("bench-guests-baseline", &launch);
    let done = run.wait_for("BENCH_ALL_DONE", Duration::from_secs(1400));
    let lines = run.lines();
    run.finish(Duration::from_millis(500));
    let log = crate::build::workspace_root().join("target/bench/guests-baseline.log");
    let _ = std::fs::write(&log, lines.join("\n"));
    done?;
    // An `xl create` that failed says so (its samples miss the guest's
    // lines); its output is in the log.
    for l in lines
        .iter()
        .filter(|l| l.contains("BENCH_XL_RETURNED") && !l.contains(" rc=0"))
    {
        eprintln!("bench guests: baseline: {l} (see {})", log.display());
    }
    Ok(cfgs
        .iter()
        .map(|cfg| samples(&lines, &format!("BENCH_XL_CREATE {cfg} "), true))
        .collect())
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{:.0} ms", s * 1000.0))
}

fn kib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

/// dom0's figures around one kernel's starts: printed, and as JSON.
fn dom0_memory(k: &OursKernel) -> Value {
    let (Some(b), Some(a)) = (k.before.figures, k.after.figures) else {
        println!("    dom0 reported no heap figures");
        return Value::Null;
    };
    println!(
        "    xcp-rs dom0 heap: in use {:.0} -> {:.0} KiB; high-water mark since boot {:.0} -> {:.0} KiB (heap {:.0} KiB); frames in use {} -> {}, high-water mark {} -> {} (of {})",
        kib(b.heap_in_use),
        kib(a.heap_in_use),
        kib(b.heap_peak),
        kib(a.heap_peak),
        kib(a.heap_bytes),
        b.frames_in_use,
        a.frames_in_use,
        b.frames_peak,
        a.frames_peak,
        a.frames
    );
    let peak = (a.heap_peak > b.heap_peak).then_some(a.heap_peak);
    match peak {
        Some(p) => println!(
            "    -> dom0's heap peaked at {:.0} KiB while building these ({:.0} KiB over its use before)",
            kib(p),
            kib(p.saturating_sub(b.heap_in_use))
        ),
        None => println!(
            "    -> these builds stayed under dom0's earlier heap high-water mark ({:.0} KiB)",
            kib(b.heap_peak)
        ),
    }
    let row = |f: &xcp_domains::memory::MemoryFigures| {
        json!({"heap_in_use": f.heap_in_use, "heap_peak": f.heap_peak,
               "frames_in_use": f.frames_in_use, "frames_peak": f.frames_peak})
    };
    json!({
        "before": row(&b),
        "after": row(&a),
        "heap_bytes": a.heap_bytes,
        "frames": a.frames,
        "build_heap_peak": peak,
    })
}

/// Runs both sides, prints the table, writes target/bench/guests.json.
pub fn run(p: &crate::build::Platform, dir: &Path) -> Result<(), String> {
    // Every serial line gets the host time it arrived at.
    std::env::set_var("XCP_HOST_TIME", "1");
    let scratch = p.dir.join("scratch/bench-guests");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let g = guest_files(&scratch)?;
    let ours = ours(p, &g, &scratch)?;
    let base = baseline(p, &g, &scratch)?;
    let first = milestone("first_line");
    let init = milestone("init");
    println!(
        "guest start, Debian {} as PVH (256 MiB, 1 vCPU), QEMU TCG -smp 1 for both sides, \
         median of {RUNS} starts each, host time",
        g.kernel.version
    );
    println!(
        "  {:<14} {:<22} {:>14} {:>14}",
        "kernel", "side", "-> first line", "-> /init"
    );
    let mut kernels_json = Vec::new();
    for (k, (label, _, name)) in KERNELS.iter().enumerate() {
        let base_med = medians(&base[k]);
        let (samples_json, ours_med) = match &ours[k].samples {
            Ok(s) => {
                let m = medians(s);
                println!(
                    "  {label:<14} {:<22} {:>14} {:>14}",
                    "xcp-rs (VM.start)",
                    ms(m[first]),
                    ms(m[init])
                );
                (json!({"samples": s, "medians": m}), Some(m))
            }
            Err(e) => {
                let short = if *name == "bench-bz" {
                    "n/a (xz bzImage not supported yet)"
                } else {
                    "n/a (VM.start failed)"
                };
                println!("  {label:<14} {:<22} {short}", "xcp-rs (VM.start)");
                println!("  {:<14} {:<22} VM.start: {e}", "", "");
                (json!({"error": e}), None)
            }
        };
        println!(
            "  {label:<14} {:<22} {:>14} {:>14}",
            "baseline (xl create)",
            ms(base_med[first]),
            ms(base_med[init])
        );
        if let Some(m) = &ours_med {
            println!("    where the time goes (median ms from the start line; xcp-rs / baseline):");
            for (i, (n, text)) in MILESTONES.iter().enumerate() {
                println!(
                    "      {n:<17} {:>9} {:>9}   first line with {text:?}",
                    ms(m[i]),
                    ms(base_med[i])
                );
            }
        }
        let memory = dom0_memory(&ours[k]);
        let names: Vec<&str> = MILESTONES.iter().map(|(n, _)| *n).collect();
        kernels_json.push(json!({
            "kernel": label,
            "milestones": names,
            "xcp_rs": samples_json,
            "xcp_rs_dom0_memory": memory,
            "baseline": {"samples": base[k], "medians": base_med},
        }));
    }
    let v: Value = json!({
        "runs": RUNS,
        "kernel_version": g.kernel.version,
        "guest": {"memory_mib": GUEST_MIB, "vcpus": 1, "args": GUEST_ARGS},
        "qemu": "q35, -cpu max,-rdtscp,-pku, -smp 1, 2048 MiB, TCG",
        "clock": "host time of each serial line's arrival (seconds from the start line)",
        "start": {
            "xcp_rs": "dom0's 'xenapi: starting VM' line (the top of VM.start's build)",
            "baseline": "'BENCH_XL_CREATE' echoed by dom0 just before xl create -c",
        },
        "kernels": kernels_json,
    });
    std::fs::write(
        dir.join("guests.json"),
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_python() {
        super::super::common::assert_python_parses(&format!("{PY_CLIENT_PRELUDE}{CLIENT}"));
    }

    #[test]
    fn samples_take_each_milestone_after_its_start_only() {
        let lines: Vec<String> = [
            "(d1) [ 1.0] Linux version early {host 0.5}",
            "[ 1.0] dom0: xenapi: starting VM bench-elf {host 1.000}",
            "[ 1.2] dom0: xenapi: built VM bench-elf as PVH domid 2 {host 1.200}",
            "[ 1.3] dom0: DEBUG [bench-elf] [0.1] Linux version relayed {host 1.250}",
            "(d2) [ 1.3] [0.0] Linux version 6.1 {host 1.300}",
            "[ 2.0] dom0: DEBUG [bench-elf] BENCH-GUEST-INIT {host 4.000}",
            "BENCH_XL_CREATE elf 0 {host 10.000}",
            "(d3) [ 1.3] [0.0] Linux version 6.1 {host 12.000}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = samples(&lines, "xenapi: starting VM bench-elf", true);
        assert_eq!(s.len(), 1);
        let near = |v: Option<f64>, want: f64| (v.unwrap() - want).abs() < 1e-9;
        assert!(near(s[0][milestone("built")], 0.2));
        // The banner from Xen's log, not the relayed copy.
        assert!(near(s[0][milestone("first_line")], 0.3));
        assert!(near(s[0][milestone("init")], 3.0));
        assert_eq!(s[0][milestone("run_init")], None);
        // The baseline's start: its window ends at the log's end.
        let b = samples(&lines, "BENCH_XL_CREATE elf ", true);
        assert!(near(b[0][milestone("first_line")], 2.0));
        assert_eq!(b[0][milestone("init")], None);
        assert_eq!(
            medians(&[s[0].clone(), b[0].clone()])[milestone("init")],
            Some(3.0)
        );
    }
}
