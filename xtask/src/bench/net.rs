//! `cargo xtask bench net`: guest↔guest and guest↔host TCP throughput and
//! a small-packet rate, xcp-rs's netdom beside Linux's netback, in one run.
//!
//! The two guests are the same on both sides: Debian's kernel (the ELF
//! inside its bzImage) as PVH, 256 MiB, 1 vCPU, with one VIF, and the same
//! busybox initramfs with `xen-netfront.ko`, a DHCP lease from QEMU's user
//! network, and `nb` (netbench.c, compiled here with `cc -static -O2`). The
//! guests run the measurements themselves, timed by their own clock
//! (CLOCK_MONOTONIC): A fetches from B ([`BYTES`] over TCP), fetches from
//! and sends to the host's server ([`net_host`], on 127.0.0.1, which the
//! guests reach at QEMU's gateway 10.0.2.2), and sends 64-byte UDP
//! datagrams to B for [`UDP_SECS`] s while B counts them, and pings B 20
//! times (busybox `ping`'s average round trip); [`RUNS`] rounds.
//! A reports every figure to the host's server.
//!
//! - **xcp-rs**: the shipped platform (netdom's netback and bridge, QEMU's
//!   NIC through the IOMMU); PyPI's XenAPI makes the VMs and their VIFs
//!   (`VIF.create` with an empty MAC) and `VM.start`s them.
//! - **baseline**: the guests bench's Linux PV dom0 with Debian's Xen tools,
//!   plus `xen-netback.ko`, a Linux bridge `br0` with QEMU's NIC (virtio-net,
//!   the same device as netdom's) enslaved, and `xl create` with
//!   `vif = ['bridge=br0,script=...']`. The hotplug script is a small
//!   busybox one (Debian's vif-bridge needs bash): it puts the vif on the
//!   bridge and writes `hotplug-status connected` as vif-bridge does.
//!
//! For trying it out: `XCP_BENCH_NET_QUICK=1` (1 MiB transfers, 2 s of
//! UDP, one round) and `XCP_BENCH_NET_SIDE=xcp` or `baseline` (one side;
//! the bench then fails for the other, after printing its table).
//!
//! Medians over the rounds, printed side by side and written to
//! target/bench/net.json; the serial logs (with the guests' consoles) are
//! kept in target/bench/net-xcp.log and net-baseline.log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use xcp_qemu_tests::linux::{initramfs_with, DHCP_SCRIPT, INIT_PRELUDE};
use xcp_qemu_tests::Run;

use super::common::Measure;
use super::common::{
    baseline_initramfs, baseline_launch, compile_static, kernel_files, ours_launch, python,
    side_by_side, with_log_of, Entries, Kernel, BASELINE_DOM0_PRELUDE, PLATFORM_PASSWORD,
    PY_CLIENT_PRELUDE,
};
use super::net_host::HostServer;

/// Rounds of every measurement; medians of these.
const RUNS: usize = 3;
/// Bytes per TCP transfer: about 10 s guest to guest through netdom under
/// TCG (~1.6 MB/s).
const BYTES: u64 = 16 << 20;
/// Seconds A sends UDP datagrams for.
const UDP_SECS: u32 = 10;
/// Bytes of UDP payload per datagram.
const UDP_SIZE: u32 = 64;
const GUEST_MIB: u32 = 256;

/// The guest program's source (compiled at bench time).
const NETBENCH_C: &str = include_str!("netbench.c");

/// The guests' /init after [`INIT_PRELUDE`]: netfront, a lease, then B
/// serves and A measures (the `nb_*` words of the kernel command line say
/// which and how much). Every figure goes to the host as `RESULT`, and to
/// the console.
const GUEST_INIT: &str = r#"
insmod /lib/xen-netfront.ko
for i in $(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -t 30 -T 2 -s /bin/dhcp-script
for w in $(cat /proc/cmdline); do
    case "$w" in nb_*=*) eval "${w%%=*}=${w#*=}" ;; esac
done
IP=$(ip -4 addr show eth0 | awk '/inet /{print $2}' | cut -d/ -f1)
H=10.0.2.2
echo "nb: role $nb_role ip $IP mac $(cat /sys/class/net/eth0/address)"
if [ "$nb_role" = b ]; then
    nb serve 5001 &
    sleep 0.5
    nb kv $H $nb_port "SET ip-b $IP"
    wait
fi
B=
while [ -z "$B" ]; do
    B=$(nb kv $H $nb_port "GET ip-b")
    [ -n "$B" ] || sleep 1
done
echo "nb: peer $B"
ping -c 2 -W 5 $B
r() { echo "nb: $*"; nb kv $H $nb_port "RESULT $*" >/dev/null; }
i=1
while [ $i -le $nb_runs ]; do
    r g2g $i $(nb get $B 5001 $nb_bytes)
    r host_to_guest $i $(nb get $H $nb_port $nb_bytes)
    r guest_to_host $i $(nb put $H $nb_port $nb_bytes)
    r udp $i $(nb udp $B 5001 5002 $nb_secs $nb_size)
    r ping $i $(ping -q -c 20 -i 0.2 $B | awk -F/ '/round-trip/ {print $4}')
    i=$((i + 1))
done
nb kv $H $nb_port DONE
echo "nb: done"
while true; do sleep 60; done
"#;

/// The baseline's vif hotplug script, as libxl runs it (`online`/`add`,
/// `offline`/`remove`; `$vif` and `$XENBUS_PATH` in its environment).
const VIF_SCRIPT: &str = r#"#!/bin/busybox sh
case "$1" in
online|add)
    ip link set "$vif" master br0
    ip link set "$vif" up
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
offline|remove)
    ip link set "$vif" down 2>/dev/null
    ;;
esac
exit 0
"#;

/// The baseline dom0's /init after [`BASELINE_DOM0_PRELUDE`]: netback, the
/// bridge with QEMU's NIC, B then A, their consoles copied to dom0's.
const BASELINE_INIT: &str = r#"xenconsoled --log=guest --log-dir=/run/xen/console &
for m in $(cat /mod/net.order); do
    insmod /mod/$m 2>&1 | sed "s/^/BENCH_INSMOD $m: /"
done
for i in $(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link add br0 type bridge
ip link set eth0 master br0
ip link set eth0 up
ip link set br0 up
ip link | sed 's/^/BENCH_LINK /'
echo "BENCH_DOM0_READY"
for g in b a; do
    xl create /etc/xen/net-$g.cfg 2>&1 | sed "s/^/BENCH_XL $g: /"
done
for i in $(seq 1 100); do [ -e /run/xen/console/guest-net-a.log ] && break; sleep 0.2; done
tail -f /run/xen/console/guest-net-b.log /run/xen/console/guest-net-a.log &
xl list
while true; do sleep 60; done
"#;

/// Modules the baseline dom0 loads beyond the tools' (with their
/// dependencies): QEMU's NIC, the bridge, netback.
const BASELINE_NET_MODULES: &[&str] = &["virtio_pci", "virtio_net", "bridge", "xen-netback"];

/// The guest's kernel command line for `role` (`a` or `b`).
fn guest_args(role: char, port: u16, quick: bool) -> String {
    let (bytes, runs, secs) = sizes(quick);
    format!(
        "console=hvc0 nb_role={role} nb_port={port} nb_bytes={bytes} nb_runs={runs} \
         nb_secs={secs} nb_size={UDP_SIZE}"
    )
}

/// Bytes per transfer, rounds, UDP seconds: `XCP_BENCH_NET_QUICK=1` makes
/// them small for trying the bench out.
fn sizes(quick: bool) -> (u64, usize, u32) {
    if quick {
        (1 << 20, 1, 2)
    } else {
        (BYTES, RUNS, UDP_SECS)
    }
}

/// The guest initramfs at `dir/initramfs`.
fn guest_initramfs(k: &Kernel, dir: &Path) -> Result<PathBuf, String> {
    let nb = compile_static(dir, "nb", NETBENCH_C, "net")?;
    Ok(initramfs_with(
        dir,
        &format!("{INIT_PRELUDE}{GUEST_INIT}"),
        &[
            ("lib", 0o040755, Vec::new()),
            (
                "lib/xen-netfront.ko",
                0o100644,
                k.module("drivers/net/xen-netfront.ko")?,
            ),
            ("bin/dhcp-script", 0o100755, DHCP_SCRIPT.as_bytes().to_vec()),
            ("bin/nb", 0o100755, nb),
        ],
    ))
}

/// Makes B then A (PVH, a VIF each on the first network) and starts them;
/// prints "STARTED".
const CLIENT: &str = r#"
url, pw, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
specs = sys.argv[4:]
s = login(url, pw, "bench-net")
x = s.xenapi
net = x.network.get_all()[0]
for spec in specs:
    name, args = spec.split(",", 1)
    vm = pvh_vm(x, name, "/boot/guest/vmlinux", mib, args, "preserve")
    x.VIF.create({
        "device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "1500",
        "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
        "locking_mode": "network_default", "ipv4_allowed": [], "ipv6_allowed": [],
    })
    x.VM.start(vm, False, False)
    print("started", name, flush=True)
s.xenapi.session.logout()
print("STARTED", flush=True)
"#;

/// How long the guests get from their start to A's `DONE`.
fn measure_timeout(quick: bool) -> Duration {
    Duration::from_secs(if quick { 400 } else { 1000 })
}

/// Runs xcp-rs's side; the `RESULT` lines.
fn ours(
    p: &crate::build::Platform,
    k: &Kernel,
    initramfs: &Path,
    server: &HostServer,
    dir: &Path,
    quick: bool,
) -> Result<Vec<String>, String> {
    let guests = [k.vmlinux.clone(), initramfs.to_path_buf()];
    let (launch, url) = ours_launch(p, &guests, dir)?;
    let py = python();
    eprintln!("bench net: xcp-rs (netdom)");
    let run = Run::start("bench-net-xcp", &launch);
    let result = (|| {
        run.wait_for("dom0: XenAPI ready at", Duration::from_secs(200))?;
        let (ok, output) = xcp_qemu_tests::clients::run(
            Command::new(&py).args([
                "-c",
                &format!("{PY_CLIENT_PRELUDE}{CLIENT}"),
                &url,
                PLATFORM_PASSWORD,
                &GUEST_MIB.to_string(),
                &format!("net-b,{}", guest_args('b', server.port, quick)),
                &format!("net-a,{}", guest_args('a', server.port, quick)),
            ]),
            300,
        );
        if !ok || !output.contains("STARTED") {
            return Err(format!("the XenAPI client failed:\n{output}"));
        }
        if !server.wait_done(measure_timeout(quick)) {
            return Err("guest A did not finish its measurements".into());
        }
        Ok(server.results())
    })();
    finish_side(run, "net-xcp.log", result)
}

/// Runs the baseline's side; the `RESULT` lines.
fn baseline(
    p: &crate::build::Platform,
    k: &Kernel,
    initramfs: &Path,
    server: &HostServer,
    dir: &Path,
    quick: bool,
) -> Result<Vec<String>, String> {
    let modules = k.with_dependencies(BASELINE_NET_MODULES)?;
    let order: Vec<String> = modules
        .iter()
        .filter_map(|m| Path::new(m).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let mut files: Entries = vec![
        ("etc/xen/scripts".into(), 0o040755, Vec::new()),
        (
            "etc/xen/scripts/vif-bench".into(),
            0o100755,
            VIF_SCRIPT.as_bytes().to_vec(),
        ),
        (
            "mod/net.order".into(),
            0o100644,
            format!("{}\n", order.join("\n")).into_bytes(),
        ),
    ];
    for (file, path) in [
        ("vmlinux", &k.vmlinux),
        ("initramfs", &initramfs.to_path_buf()),
    ] {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push((format!("guest/{file}"), 0o100644, data));
    }
    for role in ['a', 'b'] {
        let text = format!(
            "name = \"net-{role}\"\ntype = \"pvh\"\nkernel = \"/guest/vmlinux\"\n\
             ramdisk = \"/guest/initramfs\"\nextra = \"{}\"\n\
             memory = {GUEST_MIB}\nvcpus = 1\n\
             vif = ['bridge=br0,script=/etc/xen/scripts/vif-bench']\n\
             on_poweroff = \"destroy\"\non_reboot = \"destroy\"\non_crash = \"preserve\"\n",
            guest_args(role, server.port, quick)
        );
        files.push((
            format!("etc/xen/net-{role}.cfg"),
            0o100644,
            text.into_bytes(),
        ));
    }
    let init = format!("{BASELINE_DOM0_PRELUDE}{BASELINE_INIT}");
    let initrd = baseline_initramfs(k, &modules, files, &init, dir)?;
    let launch = baseline_launch(p, k, "", initrd, true);
    eprintln!("bench net: baseline (Linux dom0, netback, bridge)");
    let run = Run::start("bench-net-baseline", &launch);
    let result = (|| {
        run.wait_for("BENCH_DOM0_READY", Duration::from_secs(300))?;
        if !server.wait_done(measure_timeout(quick)) {
            return Err("guest A did not finish its measurements".into());
        }
        Ok(server.results())
    })();
    finish_side(run, "net-baseline.log", result)
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

/// The measurements: key in `RESULT` lines, label, unit.
const MEASURES: &[Measure] = &[
    ("g2g", "guest -> guest TCP", "MB/s"),
    ("host_to_guest", "host -> guest TCP (via 10.0.2.2)", "MB/s"),
    ("guest_to_host", "guest -> host TCP (via 10.0.2.2)", "MB/s"),
    ("udp_received", "guest -> guest UDP 64 B, received", "pkt/s"),
    ("udp_sent", "guest -> guest UDP 64 B, sent", "pkt/s"),
    ("ping_rtt", "guest -> guest ping, average RTT", "ms"),
];

/// Per measure of [`MEASURES`], its samples from `RESULT` lines:
/// `g2g|host_to_guest|guest_to_host RUN BYTES SECONDS` (MB/s, 10^6 bytes)
/// and `udp RUN SENT RECEIVED RECEIVER_SECONDS` (sent over `udp_secs`),
/// `ping RUN AVERAGE_MS`.
fn samples(results: &[String], udp_secs: u32) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); MEASURES.len()];
    let index = |k: &str| MEASURES.iter().position(|(m, _, _)| *m == k);
    for r in results {
        let w: Vec<&str> = r.split_whitespace().collect();
        let num = |i: usize| w.get(i).and_then(|s| s.parse::<f64>().ok());
        match (w.first().copied(), num(2), num(3), num(4)) {
            (Some("udp"), Some(sent), Some(received), Some(secs)) => {
                if secs > 0.0 {
                    out[index("udp_received").expect("a measure")].push(received / secs);
                }
                out[index("udp_sent").expect("a measure")].push(sent / f64::from(udp_secs));
            }
            (Some("ping"), Some(rtt), _, _) => {
                out[index("ping_rtt").expect("a measure")].push(rtt);
            }
            (Some(k), Some(bytes), Some(secs), _) if k != "udp" && secs > 0.0 => {
                if let Some(i) = index(k) {
                    out[i].push(bytes / secs / 1e6);
                }
            }
            _ => {}
        }
    }
    out
}

fn figure(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(x) if unit != "pkt/s" => format!("{x:.2} {unit}"),
        Some(x) => format!("{x:.0} {unit}"),
        None => "-".into(),
    }
}

/// Runs both sides, prints the table, writes target/bench/net.json.
pub fn run(p: &crate::build::Platform, dir: &Path) -> Result<(), String> {
    std::env::set_var("XCP_HOST_TIME", "1");
    let quick = std::env::var("XCP_BENCH_NET_QUICK").is_ok_and(|v| v == "1");
    let (bytes, runs, udp_secs) = sizes(quick);
    let scratch = p.dir.join("scratch/bench-net");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let k = kernel_files(&scratch)?;
    let initramfs = guest_initramfs(&k, &scratch)?;
    let server = HostServer::start()?;
    let only = std::env::var("XCP_BENCH_NET_SIDE").unwrap_or_default();
    let ours = if only == "baseline" {
        Err("skipped (XCP_BENCH_NET_SIDE)".to_string())
    } else {
        ours(p, &k, &initramfs, &server, &scratch, quick)
    };
    server.reset();
    let base = if only == "xcp" {
        Err("skipped (XCP_BENCH_NET_SIDE)".to_string())
    } else {
        baseline(p, &k, &initramfs, &server, &scratch, quick)
    };
    let short = |r: &Result<Vec<String>, String>| match r {
        Ok(_) => None,
        Err(e) => Some(e.lines().next().unwrap_or("").to_string()),
    };
    let ours_samples = ours.as_ref().map(|r| samples(r, udp_secs)).ok();
    let base_samples = base.as_ref().map(|r| samples(r, udp_secs)).ok();
    println!(
        "network, Debian {} PVH guests (256 MiB, 1 vCPU, MTU 1500), QEMU TCG -smp 1 (no KVM), \
         {} MiB per TCP transfer, UDP for {udp_secs} s, median of {runs} rounds, guest-timed",
        k.version,
        bytes >> 20
    );
    let rows = side_by_side(
        MEASURES,
        ours_samples.as_ref(),
        base_samples.as_ref(),
        ("xcp-rs (netdom)", "baseline (netback)"),
        36,
        figure,
    );
    for (side, r) in [("xcp-rs", &ours), ("baseline", &base)] {
        if let Some(e) = short(r) {
            println!("  {side}: not measured: {e}");
        }
    }
    println!("  ratio: xcp-rs / baseline (rates: higher is better for xcp-rs; RTT: lower is)");
    let v: Value = json!({
        "runs": runs,
        "tcp_bytes": bytes,
        "udp_seconds": udp_secs,
        "udp_payload_bytes": UDP_SIZE,
        "kernel_version": k.version,
        "guest": {"memory_mib": GUEST_MIB, "vcpus": 1, "mtu": 1500},
        "qemu": "q35, -cpu max,-rdtscp,-pku, -smp 1, 2048 MiB, TCG",
        "clock": "each guest's CLOCK_MONOTONIC, connect to last byte (TCP), first to last datagram received (UDP)",
        "results": {"xcp_rs": ours.as_ref().ok(), "baseline": base.as_ref().ok()},
        "errors": {"xcp_rs": short(&ours), "baseline": short(&base)},
        "measures": rows,
    });
    std::fs::write(
        dir.join("net.json"),
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    match (&ours, &base) {
        (Err(e), _) => Err(format!("bench net: xcp-rs: {e}")),
        (_, Err(e)) => Err(format!("bench net: baseline: {e}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_rates() {
        let r: Vec<String> = [
            "g2g 1 16000000 10.0",
            "g2g 2 16000000 8.0",
            "host_to_guest 1 2000000 1.0",
            "udp 1 50000 20000 9.5",
            "ping 1 1.25",
            "g2g 3",
            "nonsense",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = samples(&r, 10);
        assert_eq!(s[0], [1.6, 2.0]);
        assert_eq!(s[1], [2.0]);
        assert!(s[2].is_empty());
        assert!((s[3][0] - 20000.0 / 9.5).abs() < 1e-9);
        assert_eq!(s[4], [5000.0]);
        assert_eq!(s[5], [1.25]);
        assert_eq!(crate::bench::median(s[0].clone()), 2.0);
    }

    #[test]
    fn the_client_is_python() {
        super::super::common::assert_python_parses(&format!("{PY_CLIENT_PRELUDE}{CLIENT}"));
    }

    #[test]
    fn guests_read_their_role_from_the_command_line() {
        let a = guest_args('a', 4242, true);
        assert!(a.contains("nb_role=a") && a.contains("nb_port=4242"));
        assert!(a.starts_with("console=hvc0 "));
    }
}
