//! `cargo xtask bench disk`: a guest's block I/O on its VBD, xcp-rs's
//! stordom (blkback on its CoW SR) beside Linux's blkback on a raw device,
//! in one run, and the SR's `VDI.snapshot` / `VDI.clone` time.
//!
//! The guest is the same on both sides: Debian's kernel (the ELF inside
//! its bzImage) as PVH, 256 MiB, 1 vCPU, with one disk as `/dev/xvda`
//! ([`DISK_BYTES`]; quick: [`QUICK_DISK_BYTES`]) through Debian's
//! `xen-blkfront.ko`, and a busybox initramfs with `db` (diskbench.c,
//! compiled here with `cc -static -O2`). The guest times itself
//! (CLOCK_MONOTONIC), O_DIRECT on the raw block device (no filesystem), per
//! round: a sequential write of 1 MiB requests over the disk then fsync
//! (which also fills the region the random reads touch, so that a thin SR
//! serves allocated blocks, not holes), a sequential read of it back, then
//! 4 KiB random reads and random writes over that region at queue depth 1
//! and 8 (Linux's native AIO, `io_submit` by raw syscalls: each completion
//! is followed by a new request; threads with `pread` crashed now and then
//! in a static binary on the baseline's guest) for
//! [`SECS`] s each (the writes' fsync inside the time); [`RUNS`] rounds,
//! medians. Its results go to its console as `DB-RESULT` lines, read from
//! the serial log (dom0 logs a VM's console lines; the baseline's dom0
//! copies xenconsoled's log to its own console).
//!
//! - **xcp-rs**: the shipped platform with a fresh sparse SR disk
//!   ([`xcp_boot::qemu::SR_DISK_BYTES`], QEMU's virtio-blk at 00:06.0,
//!   `Devices::disk`) that stordom formats; PyPI's XenAPI through netdom
//!   makes the VM, a VDI on the default SR and its VBD, and `VM.start`s it
//!   (as `guests_disk` does). Once the guest has powered off, the client
//!   times `VDI.snapshot` and `VDI.clone` ([`SR_ROUNDS`] each, the round
//!   trip from the host) of an empty 4 MiB VDI, an empty 4 GiB VDI and the
//!   bench's VDI with what the guest wrote: the SR shares the VDI's map, so
//!   the time does not grow with its size (xapi has no figure on this rig).
//! - **baseline**: the other benches' Linux PV dom0 with Debian's Xen
//!   tools, plus `virtio_blk` and `xen-blkback.ko` (with their
//!   dependencies), and `xl create` with the guest's disk the QEMU disk
//!   itself: `phy` `/dev/vda` as `xvda` (the same device and drive options
//!   as xcp-rs's SR disk, a sparse file of the guest disk's size). The
//!   hotplug script is a small busybox one (Debian's `block` needs bash):
//!   it writes `physical-device` (major:minor in hex, what blkback opens)
//!   and `hotplug-status connected`, as `block` does.
//!
//! For trying it out: `XCP_BENCH_DISK_QUICK=1` (256 MiB disk, 64 MiB
//! sequential, 3 s per random test, one round) and `XCP_BENCH_DISK_SIDE=xcp`
//! or `baseline` (one side; the bench then fails for the other, after
//! printing its table).
//!
//! Printed side by side and written to target/bench/disk.json; the serial
//! logs (with the guest's console) are kept in target/bench/disk-xcp.log
//! and disk-baseline.log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xcp_qemu_tests::linux::{initramfs_with, INIT_PRELUDE};
use xcp_qemu_tests::Run;

use super::common::Measure;
use super::common::{
    baseline_initramfs, baseline_launch, compile_static, kernel_files, ours_launch, python,
    side_by_side, unstamped, with_log_of, Entries, Kernel, BASELINE_DOM0_PRELUDE,
    PLATFORM_PASSWORD, PY_CLIENT_PRELUDE,
};

/// Rounds of the guest's measurements; medians of these.
const RUNS: usize = 3;
/// The guest's disk; the sequential write and read cover all of it.
const DISK_BYTES: u64 = 1 << 30;
/// Seconds per random I/O test.
const SECS: u32 = 10;
const QUICK_DISK_BYTES: u64 = 256 << 20;
const QUICK_SEQ_BYTES: u64 = 64 << 20;
const QUICK_SECS: u32 = 3;
/// Timed `VDI.snapshot` / `VDI.clone` calls per VDI; medians of these.
const SR_ROUNDS: usize = 5;
const GUEST_MIB: u32 = 256;
/// The VM's name on both sides.
const VM_NAME: &str = "disk-bench";

/// The guest program's source (compiled at bench time).
const DISKBENCH_C: &str = include_str!("diskbench.c");

/// The measurement's sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sizes {
    /// The guest's disk.
    disk: u64,
    /// Bytes written then read sequentially: the random tests' region.
    seq: u64,
    /// Seconds per random test.
    secs: u32,
    runs: usize,
}

/// `XCP_BENCH_DISK_QUICK=1` makes them small for trying the bench out.
fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes {
            disk: QUICK_DISK_BYTES,
            seq: QUICK_SEQ_BYTES,
            secs: QUICK_SECS,
            runs: 1,
        }
    } else {
        Sizes {
            disk: DISK_BYTES,
            seq: DISK_BYTES,
            secs: SECS,
            runs: RUNS,
        }
    }
}

/// The guest's /init after [`INIT_PRELUDE`]: blkfront, then the rounds
/// (the `db_*` words of the kernel command line say how much), each
/// figure as a `DB-RESULT` console line, `DB-DONE`, power off.
const GUEST_INIT: &str = r#"
insmod /lib/xen-blkfront.ko
for i in $(seq 1 200); do [ -b /dev/xvda ] && break; sleep 0.1; done
for w in $(cat /proc/cmdline); do
    case "$w" in db_*=*) eval "${w%%=*}=${w#*=}" ;; esac
done
D=/dev/xvda
if [ ! -b $D ]; then
    echo "DB-FAILED no /dev/xvda"
    poweroff
fi
echo "DB-DISK sectors $(cat /sys/block/xvda/size) seq $db_seq secs $db_secs runs $db_runs"
r() { echo "DB-RESULT $*"; }
i=1
while [ $i -le $db_runs ]; do
    r seq_write $i $(db seqwrite $D $db_seq)
    r seq_read $i $(db seqread $D $db_seq)
    for qd in 1 8; do
        r randread_qd$qd $i $(db randread $D $db_seq $db_secs $qd)
    done
    for qd in 1 8; do
        r randwrite_qd$qd $i $(db randwrite $D $db_seq $db_secs $qd)
    done
    i=$((i + 1))
done
echo "DB-DONE"
sleep 1
poweroff
"#;

/// The guest's kernel command line.
fn guest_args(s: Sizes) -> String {
    format!(
        "console=hvc0 db_seq={} db_secs={} db_runs={}",
        s.seq, s.secs, s.runs
    )
}

/// The guest initramfs at `dir/initramfs`.
fn guest_initramfs(k: &Kernel, dir: &Path) -> Result<PathBuf, String> {
    let db = compile_static(dir, "db", DISKBENCH_C, "disk")?;
    Ok(initramfs_with(
        dir,
        &format!("{INIT_PRELUDE}{GUEST_INIT}"),
        &[
            ("lib", 0o040755, Vec::new()),
            (
                "lib/xen-blkfront.ko",
                0o100644,
                k.module("drivers/block/xen-blkfront.ko")?,
            ),
            ("bin/db", 0o100755, db),
        ],
    ))
}

/// Makes the VM, its VDI and VBD and starts it; waits for it to power
/// off; then times `VDI.snapshot` and `VDI.clone` of a 4 MiB, a 4 GiB and
/// the bench's VDI: `SR-RESULT OP VDI ROUND SECONDS` lines, "CLIENT DONE".
const CLIENT: &str = r#"
url, pw, mib, disk, args, secs, rounds = sys.argv[1:8]
s = login(url, pw, "bench-disk")
x = s.xenapi
sr = x.pool.get_default_SR(x.pool.get_all()[0])

def vdi(name, size):
    return x.VDI.create({
        "name_label": name, "name_description": "", "SR": sr,
        "virtual_size": str(size), "type": "user", "sharable": False,
        "read_only": False, "other_config": {},
    })

vm = pvh_vm(x, "disk-bench", "/boot/guest/vmlinux", int(mib), args, "destroy")
bench = vdi("disk-bench", int(disk))
x.VBD.create({
    "VM": vm, "VDI": bench, "userdevice": "0", "bootable": False, "mode": "RW",
    "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
    "qos_algorithm_type": "", "qos_algorithm_params": {},
})
x.VM.start(vm, False, False)
print("STARTED", flush=True)
deadline = time.monotonic() + int(secs)
while x.VM.get_power_state(vm) != "Halted":
    if time.monotonic() > deadline:
        print("NOT-HALTED", flush=True)
        x.VM.hard_shutdown(vm)
        break
    time.sleep(1)
print("HALTED", flush=True)
vdis = [("4MiB", vdi("sr-4mib", 4 << 20)), ("4GiB", vdi("sr-4gib", 4 << 30)), ("bench", bench)]
for op in ("snapshot", "clone"):
    for name, v in vdis:
        for i in range(int(rounds)):
            t0 = time.monotonic()
            getattr(x.VDI, op)(v, {})
            t = time.monotonic() - t0
            print("SR-RESULT", op, name, i + 1, "%.6f" % t, flush=True)
s.xenapi.session.logout()
print("CLIENT DONE", flush=True)
"#;

/// How long the guest gets from its start to its power-off.
fn measure_timeout(s: Sizes) -> Duration {
    // Boot, then per round the random tests and the sequential passes at
    // no less than 2 MB/s.
    let per_round = 4 * u64::from(s.secs) + 2 * s.seq / 2_000_000 + 60;
    Duration::from_secs(240 + per_round * s.runs as u64)
}

/// What a side measured: the guest's `DB-RESULT` lines (without the
/// marker) and, on xcp-rs, the client's `SR-RESULT` lines.
#[derive(Debug, Default)]
struct Measured {
    guest: Vec<String>,
    sr: Vec<String>,
}

/// The text after `marker` on each line that has it (host stamps off).
fn after_marker(lines: &[String], marker: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let l = unstamped(l);
            l.find(marker)
                .map(|i| l[i + marker.len()..].trim().to_string())
        })
        .collect()
}

/// Polls the serial log until a line contains one of `markers`; which.
fn wait_any(run: &Run, markers: &[&str], timeout: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = run.lines();
        for (i, m) in markers.iter().enumerate() {
            if lines.iter().any(|l| l.contains(m)) {
                return Ok(i);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "none of {markers:?} within {} s",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A fresh sparse disk file of `bytes` at `path`.
fn fresh_disk(path: &Path, bytes: u64) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    xcp_boot::qemu::sparse_disk(path, bytes)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs xcp-rs's side.
fn ours(
    p: &crate::build::Platform,
    k: &Kernel,
    initramfs: &Path,
    dir: &Path,
    s: Sizes,
) -> Result<Measured, String> {
    let guests = [k.vmlinux.clone(), initramfs.to_path_buf()];
    let (mut launch, url) = ours_launch(p, &guests, dir)?;
    let disk = dir.join("sr.img");
    fresh_disk(&disk, xcp_boot::qemu::SR_DISK_BYTES)?;
    launch.devices.disk = Some(disk.clone());
    launch.timeout_secs = launch.timeout_secs.max(measure_timeout(s).as_secs() + 600);
    let py = python();
    eprintln!("bench disk: xcp-rs (stordom)");
    let run = Run::start("bench-disk-xcp", &launch);
    let result = (|| {
        run.wait_for("dom0: XenAPI ready at", Duration::from_secs(200))?;
        let timeout = measure_timeout(s);
        let (ok, output) = xcp_qemu_tests::clients::run(
            Command::new(&py).args([
                "-c",
                &format!("{PY_CLIENT_PRELUDE}{CLIENT}"),
                &url,
                PLATFORM_PASSWORD,
                &GUEST_MIB.to_string(),
                &s.disk.to_string(),
                &guest_args(s),
                &timeout.as_secs().to_string(),
                &SR_ROUNDS.to_string(),
            ]),
            timeout.as_secs() as u32 + 300,
        );
        let lines = run.lines();
        if !ok || !output.contains("CLIENT DONE") {
            return Err(format!("the XenAPI client failed:\n{output}"));
        }
        if output.contains("NOT-HALTED") || !lines.iter().any(|l| l.contains("DB-DONE")) {
            return Err("the guest did not finish its measurements".into());
        }
        let out: Vec<String> = output.lines().map(str::to_string).collect();
        Ok(Measured {
            guest: after_marker(&lines, "DB-RESULT "),
            sr: after_marker(&out, "SR-RESULT "),
        })
    })();
    let r = finish_side(run, "disk-xcp.log", result);
    let _ = std::fs::remove_file(&disk);
    r
}

/// The baseline's block hotplug script, as libxl runs it (`add` /
/// `remove`; `$XENBUS_PATH` in its environment): what Debian's `block`
/// does for a `phy` device.
const BLOCK_SCRIPT: &str = r#"#!/bin/busybox sh
case "$1" in
add)
    dev=$(xenstore-read "$XENBUS_PATH/params")
    mm=$(cat /sys/class/block/$(basename "$dev")/dev)
    xenstore-write "$XENBUS_PATH/physical-device" "$(printf '%x:%x' ${mm%%:*} ${mm#*:})"
    xenstore-write "$XENBUS_PATH/physical-device-path" "$dev"
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
esac
exit 0
"#;

/// The baseline dom0's /init after [`BASELINE_DOM0_PRELUDE`]: QEMU's disk
/// and blkback, the guest, its console copied to dom0's, and a line when
/// it is gone.
const BASELINE_INIT: &str = r#"xenconsoled --log=guest --log-dir=/run/xen/console &
for m in $(cat /mod/disk.order); do
    insmod /mod/$m 2>&1 | sed "s/^/BENCH_INSMOD $m: /"
done
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
echo "BENCH_VDA $(cat /sys/block/vda/size 2>&1)"
echo "BENCH_DOM0_READY"
xl create /etc/xen/disk-bench.cfg 2>&1 | sed "s/^/BENCH_XL: /"
for i in $(seq 1 100); do [ -e /run/xen/console/guest-disk-bench.log ] && break; sleep 0.2; done
tail -f /run/xen/console/guest-disk-bench.log &
# Gone: not listed three times in a row (one failed `xl` is not enough).
miss=0
while [ $miss -lt 3 ]; do
    sleep 2
    if xl list disk-bench >/dev/null 2>&1; then miss=0; else miss=$((miss + 1)); fi
done
echo "BENCH_GUEST_GONE $(xl list 2>&1 | tr '\n' ' ')"
while true; do sleep 60; done
"#;

/// Modules the baseline dom0 loads beyond the tools' (with their
/// dependencies): QEMU's disk, blkback.
const BASELINE_DISK_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "xen-blkback"];

/// The baseline guest's xl configuration.
fn baseline_config(s: Sizes) -> String {
    format!(
        "name = \"{VM_NAME}\"\ntype = \"pvh\"\nkernel = \"/guest/vmlinux\"\n\
         ramdisk = \"/guest/initramfs\"\nextra = \"{}\"\n\
         memory = {GUEST_MIB}\nvcpus = 1\n\
         disk = ['vdev=xvda,format=raw,access=rw,backendtype=phy,\
         script=/etc/xen/scripts/block-bench,target=/dev/vda']\n\
         on_poweroff = \"destroy\"\non_reboot = \"destroy\"\non_crash = \"destroy\"\n",
        guest_args(s)
    )
}

/// Runs the baseline's side.
fn baseline(
    p: &crate::build::Platform,
    k: &Kernel,
    initramfs: &Path,
    dir: &Path,
    s: Sizes,
) -> Result<Measured, String> {
    let modules = k.with_dependencies(BASELINE_DISK_MODULES)?;
    let order: Vec<String> = modules
        .iter()
        .filter_map(|m| Path::new(m).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let mut files: Entries = vec![
        ("etc/xen/scripts".into(), 0o040755, Vec::new()),
        (
            "etc/xen/scripts/block-bench".into(),
            0o100755,
            BLOCK_SCRIPT.as_bytes().to_vec(),
        ),
        (
            "mod/disk.order".into(),
            0o100644,
            format!("{}\n", order.join("\n")).into_bytes(),
        ),
        (
            "etc/xen/disk-bench.cfg".into(),
            0o100644,
            baseline_config(s).into_bytes(),
        ),
    ];
    for (file, path) in [
        ("vmlinux", &k.vmlinux),
        ("initramfs", &initramfs.to_path_buf()),
    ] {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push((format!("guest/{file}"), 0o100644, data));
    }
    let init = format!("{BASELINE_DOM0_PRELUDE}{BASELINE_INIT}");
    let initrd = baseline_initramfs(k, &modules, files, &init, dir)?;
    let mut launch = baseline_launch(p, k, "", initrd, false);
    let disk = dir.join("baseline.img");
    fresh_disk(&disk, s.disk)?;
    launch.devices.disk = Some(disk.clone());
    launch.timeout_secs = launch.timeout_secs.max(measure_timeout(s).as_secs() + 600);
    eprintln!("bench disk: baseline (Linux dom0, blkback)");
    let run = Run::start("bench-disk-baseline", &launch);
    let result = (|| {
        run.wait_for("BENCH_DOM0_READY", Duration::from_secs(300))?;
        let which = wait_any(
            &run,
            &["DB-DONE", "DB-FAILED", "BENCH_GUEST_GONE"],
            measure_timeout(s),
        )?;
        if which != 0 {
            return Err("the guest did not finish its measurements".into());
        }
        Ok(Measured {
            guest: after_marker(&run.lines(), "DB-RESULT "),
            sr: Vec::new(),
        })
    })();
    let r = finish_side(run, "disk-baseline.log", result);
    let _ = std::fs::remove_file(&disk);
    r
}

/// Stops a side's QEMU, keeps its serial log in target/bench/`log`, and
/// adds the log to `result`'s error.
fn finish_side<T>(run: Run, log: &str, result: Result<T, String>) -> Result<T, String> {
    let lines = run.lines();
    run.finish(Duration::from_millis(500));
    let root = crate::build::workspace_root();
    let _ = std::fs::write(root.join("target/bench").join(log), lines.join("\n"));
    result.map_err(with_log_of(&lines))
}

/// The guest's measurements: key in `DB-RESULT` lines, label, unit.
const MEASURES: &[Measure] = &[
    ("randread_qd1", "4 KiB random read, QD 1", "IOPS"),
    ("randread_qd8", "4 KiB random read, QD 8", "IOPS"),
    ("randwrite_qd1", "4 KiB random write, QD 1", "IOPS"),
    ("randwrite_qd8", "4 KiB random write, QD 8", "IOPS"),
    ("seq_write", "sequential write 1 MiB + fsync", "MB/s"),
    ("seq_read", "sequential read 1 MiB", "MB/s"),
];

/// Per measure of [`MEASURES`], its samples from `DB-RESULT` lines
/// `KEY ROUND COUNT SECONDS`: operations per second for the random tests,
/// MB/s (10^6 bytes) for the sequential ones.
fn samples(results: &[String]) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); MEASURES.len()];
    for r in results {
        let w: Vec<&str> = r.split_whitespace().collect();
        let num = |i: usize| w.get(i).and_then(|s| s.parse::<f64>().ok());
        let (Some(key), Some(count), Some(secs)) = (w.first(), num(2), num(3)) else {
            continue;
        };
        let Some(i) = MEASURES.iter().position(|(m, _, _)| m == key) else {
            continue;
        };
        if secs > 0.0 {
            let scale = if MEASURES[i].2 == "MB/s" { 1e6 } else { 1.0 };
            out[i].push(count / secs / scale);
        }
    }
    out
}

/// The SR's operations and VDIs in `SR-RESULT` lines.
const SR_OPS: &[&str] = &["snapshot", "clone"];
const SR_VDIS: &[(&str, &str)] = &[
    ("4MiB", "4 MiB VDI (empty)"),
    ("4GiB", "4 GiB VDI (empty)"),
    ("bench", "bench VDI (written)"),
];

/// Per (op, VDI) of [`SR_OPS`] x [`SR_VDIS`], the seconds of each call
/// from `SR-RESULT` lines `OP VDI ROUND SECONDS`.
fn sr_samples(results: &[String]) -> Vec<Vec<Vec<f64>>> {
    let mut out = vec![vec![Vec::new(); SR_VDIS.len()]; SR_OPS.len()];
    for r in results {
        let w: Vec<&str> = r.split_whitespace().collect();
        let (Some(op), Some(vdi), Some(secs)) = (
            w.first().and_then(|o| SR_OPS.iter().position(|x| x == o)),
            w.get(1)
                .and_then(|v| SR_VDIS.iter().position(|(x, _)| x == v)),
            w.get(3).and_then(|s| s.parse::<f64>().ok()),
        ) else {
            continue;
        };
        out[op][vdi].push(secs);
    }
    out
}

fn median(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| super::median(v.to_vec()))
}

fn figure(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(x) if unit == "IOPS" => format!("{x:.0} {unit}"),
        Some(x) => format!("{x:.2} {unit}"),
        None => "-".into(),
    }
}

/// Runs both sides, prints the tables, writes target/bench/disk.json.
pub fn run(p: &crate::build::Platform, dir: &Path) -> Result<(), String> {
    let quick = std::env::var("XCP_BENCH_DISK_QUICK").is_ok_and(|v| v == "1");
    let s = sizes(quick);
    let scratch = p.dir.join("scratch/bench-disk");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let k = kernel_files(&scratch)?;
    let initramfs = guest_initramfs(&k, &scratch)?;
    let only = std::env::var("XCP_BENCH_DISK_SIDE").unwrap_or_default();
    let ours = if only == "baseline" {
        Err("skipped (XCP_BENCH_DISK_SIDE)".to_string())
    } else {
        ours(p, &k, &initramfs, &scratch, s)
    };
    let base = if only == "xcp" {
        Err("skipped (XCP_BENCH_DISK_SIDE)".to_string())
    } else {
        baseline(p, &k, &initramfs, &scratch, s)
    };
    let short = |r: &Result<Measured, String>| match r {
        Ok(_) => None,
        Err(e) => Some(e.lines().next().unwrap_or("").to_string()),
    };
    let ours_samples = ours.as_ref().map(|m| samples(&m.guest)).ok();
    let base_samples = base.as_ref().map(|m| samples(&m.guest)).ok();
    println!(
        "disk, a Debian {} PVH guest (256 MiB, 1 vCPU), /dev/xvda {} MiB, O_DIRECT on the raw \
         device, QEMU TCG -smp 1 (no KVM), {} MiB sequential, {} s per random test, median of \
         {} rounds, guest-timed",
        k.version,
        s.disk >> 20,
        s.seq >> 20,
        s.secs,
        s.runs
    );
    let rows = side_by_side(
        MEASURES,
        ours_samples.as_ref(),
        base_samples.as_ref(),
        ("xcp-rs (stordom)", "baseline (blkback)"),
        34,
        figure,
    );
    for (side, r) in [("xcp-rs", &ours), ("baseline", &base)] {
        if let Some(e) = short(r) {
            println!("  {side}: not measured: {e}");
        }
    }
    println!("  ratio: xcp-rs / baseline (higher is better for xcp-rs)");
    let sr = ours.as_ref().map(|m| sr_samples(&m.sr)).ok();
    println!(
        "SR snapshot and clone on xcp-rs (XenAPI round trip from the host through netdom, \
         median of {SR_ROUNDS}; xapi not measured on this rig)"
    );
    print!("  {:<14}", "");
    for (_, label) in SR_VDIS {
        print!(" {label:>20}");
    }
    println!();
    let mut sr_rows = Vec::new();
    for (o, op) in SR_OPS.iter().enumerate() {
        print!("  {:<14}", format!("VDI.{op}"));
        for (v, (vdi, _)) in SR_VDIS.iter().enumerate() {
            let m = sr.as_ref().and_then(|s| median(&s[o][v]));
            let text = m.map_or("-".to_string(), |m| format!("{:.1} ms", m * 1000.0));
            print!(" {text:>20}");
            sr_rows.push(json!({
                "op": op, "vdi": vdi,
                "samples_s": sr.as_ref().map(|s| s[o][v].clone()),
                "median_ms": m.map(|m| m * 1000.0),
            }));
        }
        println!();
    }
    if let Some(e) = short(&ours) {
        println!("  xcp-rs: not measured: {e}");
    }
    let v: Value = json!({
        "runs": s.runs,
        "disk_bytes": s.disk,
        "sequential_bytes": s.seq,
        "random_seconds": s.secs,
        "kernel_version": k.version,
        "guest": {"memory_mib": GUEST_MIB, "vcpus": 1},
        "qemu": "q35, -cpu max,-rdtscp,-pku, -smp 1, 2048 MiB, TCG; virtio-blk at 00:06.0, cache=writeback",
        "clock": "the guest's CLOCK_MONOTONIC (random: first request to the deadline, writes with their fsync; sequential: first request to the last, the write with its fsync)",
        "results": {
            "xcp_rs": ours.as_ref().ok().map(|m| &m.guest),
            "baseline": base.as_ref().ok().map(|m| &m.guest),
            "sr": ours.as_ref().ok().map(|m| &m.sr),
        },
        "errors": {"xcp_rs": short(&ours), "baseline": short(&base)},
        "measures": rows,
        "sr": sr_rows,
    });
    std::fs::write(
        dir.join("disk.json"),
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    match (&ours, &base) {
        (Err(e), _) => Err(format!("bench disk: xcp-rs: {e}")),
        (_, Err(e)) => Err(format!("bench disk: baseline: {e}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_rates() {
        let lines: Vec<String> = [
            "[  9.1] dom0: DEBUG [disk-bench] DB-RESULT seq_write 1 67108864 2.0",
            "[disk-bench] DB-RESULT seq_read 1 67108864 1.0 {host 12.5}",
            "DB-RESULT randread_qd1 1 3000 3.0",
            "DB-RESULT randread_qd1 2 6000 3.0",
            "DB-RESULT randread_qd1 3 4500 3.0",
            "DB-RESULT randwrite_qd8 1",
            "DB-RESULT nonsense 1 1 1",
            "unrelated line",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = after_marker(&lines, "DB-RESULT ");
        assert_eq!(r.len(), 7);
        assert_eq!(r[1], "seq_read 1 67108864 1.0");
        let s = samples(&r);
        assert_eq!(s[0], [1000.0, 2000.0, 1500.0]);
        assert_eq!(median(&s[0]), Some(1500.0));
        assert!(s[3].is_empty());
        assert!((s[4][0] - 33.554432).abs() < 1e-9);
        assert!((s[5][0] - 67.108864).abs() < 1e-9);
    }

    #[test]
    fn sr_results_group_by_op_and_vdi() {
        let r: Vec<String> = [
            "snapshot 4MiB 1 0.010",
            "snapshot 4GiB 1 0.012",
            "clone bench 2 0.020",
            "clone other 1 0.5",
            "snapshot 4MiB",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = sr_samples(&r);
        assert_eq!(s[0][0], [0.010]);
        assert_eq!(s[0][1], [0.012]);
        assert_eq!(s[1][2], [0.020]);
        assert!(s[1][0].is_empty());
    }

    #[test]
    fn the_client_is_python() {
        super::super::common::assert_python_parses(&format!("{PY_CLIENT_PRELUDE}{CLIENT}"));
    }

    #[test]
    fn the_guest_reads_its_sizes_from_the_command_line() {
        let a = guest_args(sizes(true));
        assert!(a.starts_with("console=hvc0 "));
        assert!(a.contains(&format!("db_seq={}", 64 << 20)));
        assert!(a.contains("db_secs=3") && a.contains("db_runs=1"));
        assert_eq!(sizes(false).seq, sizes(false).disk);
    }

    #[test]
    fn the_baseline_disk_is_the_qemu_disk_as_phy() {
        let c = baseline_config(sizes(true));
        assert!(c.contains("backendtype=phy"));
        // xl wants `target=` last (it may hold commas).
        assert!(c.contains("target=/dev/vda']"));
        assert!(c.contains("name = \"disk-bench\""));
    }
}
