//! Guests no one here wrote, booted through XenAPI: Debian 12's Linux as a
//! PV VM (`domain_type = "pv"`) with two vCPUs, built by dom0's PV builder.
//!
//! The kernel is Debian's `linux-image-*-amd64` that `cargo xtask`'s deps
//! step unpacks (target/debian-kernel); as in guests.rs, the ELF vmlinux
//! comes out of its bzImage on the host and travels as the guest file
//! /boot/guest/vmlinux. PyPI's `XenAPI` reaches dom0 through netdom (as in
//! netdom_xenapi.rs), with the xenstore domain running, creates the VM with
//! `VCPUs_max` = 2 and starts it.
//! Linux writes to its PV console (`console=hvc0`; `earlyprintk=xen` puts
//! its early lines in the same ring), which dom0 relays into its own log
//! as `[debian-pv] ...` lines. Linux's xenbus needs the xenstore ring and
//! the tree dom0 wrote (`/sys/hypervisor/uuid` is Xen's domain handle, the
//! VM's uuid). The initramfs's /init (busybox-static) writes a marker with
//! the online CPU count and that uuid to the console, reads its own `name`
//! from xenstore through xenbus (`/dev/xen/xenbus`), then powers the
//! guest off, which dom0 notices (the VM's `actions_after_shutdown`,
//! destroy, leaves it Halted). Two more cases boot Debian's bzImage as it
//! ships (xz: its dictionary is lent from the guest's RAM) and the same
//! ELF repacked as a gzip bzImage, both streamed through `xcp_kimage`.
//! In the first case the VM's `VCPUs_params` give it weight 384 and cap
//! 50 (the others get xapi's defaults, 256 and 0): dom0's serial line shows
//! Xen's read-back for its domain (then weight 448, and cap 0, as the
//! client sets them with `VM.add_to_VCPUs_params_live` on the running VM),
//! and, from boot,
//! dom0's own weight (1024) and each service domain's (512).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{
    client_output, netdom_xenapi_xenstore_launch, python_with_xenapi, run,
};
use xcp_qemu_tests::linux::{debian_vmlinuz, extract_vmlinux, gzip_bzimage, initramfs};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "guest-pw";

/// Creates and starts the PV VM; prints its domid, uuid and domain type.
const CLIENT: &str = r#"
import sys
import XenAPI
url, pw, kernel, weighted = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-pv-qemu-test")
vm = s.xenapi.VM.create({
    "name_label": "debian-pv",
    "domain_type": "pv",
    "memory_static_max": str(256 << 20),
    "memory_dynamic_max": str(256 << 20),
    "memory_dynamic_min": str(256 << 20),
    "VCPUs_max": "2",
    "VCPUs_at_startup": "2",
    "PV_kernel": kernel,
    "PV_ramdisk": "/boot/guest/initramfs",
    "PV_args": "console=hvc0 earlyprintk=xen",
    "actions_after_crash": "preserve",
    "actions_after_reboot": "destroy",
    "actions_after_shutdown": "destroy",
})
# Its CPU share, as xapi users set it: dom0 gives it to the domain before
# it runs and logs Xen's read-back.
if weighted == "weighted":
    s.xenapi.VM.set_VCPUs_params(vm, {"weight": "384", "cap": "50"})
s.xenapi.VM.start(vm, False, False)
if weighted == "weighted":
    # And live, on the running VM: the weight changes, then the cap goes
    # (a 2-vCPU PV Linux capped at half a CPU under TCG was seen with its
    # busybox's heap corrupt at /init, 2 runs in 5: not understood yet).
    s.xenapi.VM.add_to_VCPUs_params_live(vm, "weight", "448")
    s.xenapi.VM.add_to_VCPUs_params_live(vm, "cap", "0")
    print("live params", sorted(s.xenapi.VM.get_VCPUs_params(vm).items()))
print("domid", s.xenapi.VM.get_domid(vm))
print("uuid", s.xenapi.VM.get_uuid(vm))
print("power", s.xenapi.VM.get_power_state(vm))
metrics = s.xenapi.VM.get_metrics(vm)
print("domain type", s.xenapi.VM_metrics.get_current_domain_type(metrics))
s.xenapi.session.logout()
print("CLIENT OK")
"#;

/// What the guest's /init does: mount devtmpfs, proc and sysfs, write the
/// marker to the console, read its own `name` from xenstore through
/// Linux's xenbus (`/dev/xen/xenbus` takes raw xs_wire messages: an
/// `XS_READ` (2) of the relative path "name", req_id and tx_id 0, then the
/// 16-byte reply header and the value), say it, power off. (The initramfs
/// has no /dev/console node, so /init starts without stdio; it writes to
/// devtmpfs's.)
const INIT: &str = "#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo \"pv-guest: init ran as pid $$ on $(/bin/busybox uname -r) cpus=$(/bin/busybox nproc) uuid=$(/bin/busybox cat /sys/hypervisor/uuid)\" > /dev/console
exec 3<>/dev/xen/xenbus
/bin/busybox printf '\\002\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\005\\000\\000\\000name\\000' >&3
echo \"pv-guest: xenstore says name=$(/bin/busybox head -c 25 <&3 | /bin/busybox tail -c 9)\" > /dev/console
/bin/busybox poweroff -f
";

#[test]
fn debian_linux_boots_as_a_pv_vm_with_two_vcpus_through_xenapi() {
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-pv");
    let vmlinux = extract_vmlinux(&debian_vmlinuz(), &dir);
    boot_pv(&a, &dir, "guests-pv", vmlinux, true);
}

/// Debian's bzImage as it ships (xz, x86 BCJ, a 32 MiB dictionary): dom0
/// lends the dictionary from the top of the new domain's own RAM and
/// decompresses it twice through `xcp_kimage` (once to plan, once into the
/// guest's kernel pages).
#[test]
fn debian_linux_from_its_own_xz_bzimage_boots_as_a_pv_vm() {
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-pv-xz");
    let vmlinuz = dir.join("vmlinuz");
    std::fs::copy(debian_vmlinuz(), &vmlinuz).unwrap();
    boot_pv(&a, &dir, "guests-pv-xz", vmlinuz, false);
}

/// The same kernel as a bzImage with a gzip payload (repacked on the
/// host): dom0 decompresses it through `xcp_kimage` from its own heap (a
/// gzip window is 32 KiB).
#[test]
fn debian_linux_from_a_gzip_bzimage_boots_as_a_pv_vm() {
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-pv-bzimage");
    let vmlinux = extract_vmlinux(&debian_vmlinuz(), &dir);
    let bzimage = gzip_bzimage(&vmlinux, &dir);
    std::fs::remove_file(&vmlinux).unwrap();
    boot_pv(&a, &dir, "guests-pv-bzimage", bzimage, false);
}

/// Boots `kernel` (packed as `/boot/guest/<its file name>`) as the PV VM
/// and checks what the module doc says; `weighted`: with the VM's
/// `VCPUs_params` (the first case only: the others check the builds).
fn boot_pv(a: &Artifacts, dir: &Path, name: &str, kernel: std::path::PathBuf, weighted: bool) {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let guest_path = format!(
        "/boot/guest/{}",
        kernel.file_name().unwrap().to_string_lossy()
    );
    let initrd = initramfs(dir, INIT);
    let (mut launch, url) = netdom_xenapi_xenstore_launch(a, dir, PASSWORD, &[kernel, initrd]);
    launch.memory_mib = 2048;
    launch.timeout_secs = 360;
    let qemu = Run::start(name, &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(150));
    let client = ready.as_ref().ok().map(|_| {
        run(
            Command::new(&py).args([
                "-c",
                CLIENT,
                &url,
                PASSWORD,
                &guest_path,
                if weighted { "weighted" } else { "default" },
            ]),
            180,
        )
    });
    // dom0 relays the guest's console lines into its log, prefixed with
    // the VM's name.
    let banner = client
        .as_ref()
        .filter(|(ok, _)| *ok)
        .map(|_| qemu.wait_for("] Linux version 6.1", Duration::from_secs(90)));
    let init = banner
        .as_ref()
        .filter(|b| b.is_ok())
        .map(|_| qemu.wait_for("[debian-pv] pv-guest: init ran", Duration::from_secs(120)));
    let xenstore = init.as_ref().filter(|i| i.is_ok()).map(|_| {
        qemu.wait_for(
            "[debian-pv] pv-guest: xenstore says",
            Duration::from_secs(30),
        )
    });
    // /init powers the guest off: dom0 notices and applies
    // actions_after_shutdown = destroy.
    let stopped = xenstore
        .as_ref()
        .filter(|i| i.is_ok())
        .map(|_| qemu.wait_for("dom0: xenapi: VM debian-pv (domid", Duration::from_secs(60)));
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    let output = client_output(ready, client, log, "CLIENT OK");
    assert!(output.contains("power Running"), "{output}");
    assert!(output.contains("domain type pv\n"), "{output}");
    let field = |name: &str| -> String {
        output
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {output}"))
    };
    let domid: u32 = field("domid ").parse().expect("a domid");
    let uuid = field("uuid ");
    let banner = banner.expect("waited for the banner");
    let banner = banner.unwrap_or_else(|e| panic!("{e}\n{}", xcp_qemu_tests::excerpt(log)));
    // Relayed by dom0 from the VM's console ring (`earlyprintk=xen` marks
    // the lines Linux wrote before hvc0 took over with "(early)").
    assert!(banner.contains("dom0: DEBUG [debian-pv] "), "{banner}");
    assert!(
        log.contains(&format!("built VM debian-pv as domid {domid}")),
        "{log}"
    );
    assert_weights(log, domid, weighted);
    // The initramfs's /init ran as Linux's first process, saw both vCPUs
    // online, and read the VM's uuid through xenbus/Xen as its handle.
    let init_line = init
        .expect("waited for /init")
        .unwrap_or_else(|e| panic!("{e}\n{}", xcp_qemu_tests::excerpt(log)));
    assert!(init_line.contains("as pid 1 on 6.1.0-"), "{init_line}");
    assert!(init_line.contains(" cpus=2 "), "{init_line}");
    assert!(
        init_line.contains(&format!("uuid={uuid} "))
            || init_line.trim_end().ends_with(&format!("uuid={uuid}")),
        "{init_line} (VM uuid {uuid})"
    );
    // Its xenbus reads the tree dom0 wrote, through xenstore-dom.
    let xenstore = xenstore
        .expect("waited for the xenstore read")
        .unwrap_or_else(|e| panic!("{e}\n{}", xcp_qemu_tests::excerpt(log)));
    assert!(
        xenstore
            .trim_end()
            .ends_with("xenstore says name=debian-pv"),
        "{xenstore}"
    );
    let stopped = stopped
        .expect("waited for the stop")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        stopped.contains(&format!(
            "(domid {domid}) stopped: poweroff; actions_after_shutdown: destroyed, Halted"
        )),
        "{stopped}"
    );
}

/// Xen's read-back of each domain's CPU share, as dom0 logs it: dom0's
/// and the service domains' (xenstore, netdom) at boot, and the VM's
/// (`VCPUs_params` weight 384, cap 50 when `weighted`, else xapi's
/// defaults, 256 and 0) at its start.
fn assert_weights(log: &str, vm_domid: u32, weighted: bool) {
    let excerpt = || xcp_qemu_tests::excerpt(log);
    assert!(
        log.contains("dom0: sched: domid 0 weight 1024 cap 0"),
        "dom0's own weight:\n{}",
        excerpt()
    );
    for name in ["xenstore", "netdom"] {
        let built = format!("dom0: built {name} as domid ");
        let domid: u32 = log
            .lines()
            .find_map(|l| l.split_once(&built).map(|(_, rest)| rest))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{name} not built:\n{}", excerpt()));
        assert!(
            log.contains(&format!("dom0: sched: domid {domid} weight 512 cap 0")),
            "{name}'s weight:\n{}",
            excerpt()
        );
    }
    let (weight, cap) = if weighted { (384, 50) } else { (256, 0) };
    assert!(
        log.contains(&format!(
            "dom0: sched: domid {vm_domid} weight {weight} cap {cap}"
        )),
        "the VM's VCPUs_params:\n{}",
        excerpt()
    );
    // VM.add_to_VCPUs_params_live's weight, then cap, on the running
    // domain.
    if weighted {
        for (weight, cap) in [(448, 50), (448, 0)] {
            assert!(
                log.contains(&format!(
                    "dom0: sched: domid {vm_domid} weight {weight} cap {cap}"
                )),
                "the live weight and cap:\n{}",
                excerpt()
            );
        }
    }
}
