//! Guests no one here wrote, booted through XenAPI: Debian 12's Linux as a
//! PVH VM (`domain_type = "pvh"`), built by dom0's PVH builder.
//!
//! The kernel is Debian's `linux-image-*-amd64` that `cargo xtask`'s deps
//! step downloads and unpacks (target/debian-kernel); this test takes the
//! ELF vmlinux out of its bzImage (the payload is xz with the x86 filter,
//! 32 MiB dictionary: `xz -d` on the host, so dom0 needs no dictionary)
//! and packs it as the guest file /boot/guest/vmlinux. PyPI's `XenAPI`
//! reaches dom0 through netdom (as in netdom_xenapi.rs), creates the VM
//! and starts it. Linux's `earlyprintk=xen` writes through the HVM console
//! hypercall into Xen's log (`guest_loglvl=all`), so its banner shows on
//! the serial line as `(dN) ...`. Its initramfs (`PV_ramdisk`, made here:
//! busybox-static and an `/init` script) writes a marker to /dev/kmsg,
//! which the same boot console prints, then powers the guest off, which
//! dom0 notices (the VM's `actions_after_shutdown`, destroy, leaves it
//! Halted).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{netdom_xenapi_launch, python_with_xenapi, run};
use xcp_qemu_tests::linux::{debian_vmlinuz, extract_vmlinux, initramfs};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "guest-pw";

/// Creates and starts the PVH VM; prints its domid and domain type.
const CLIENT: &str = r#"
import sys
import XenAPI
url, pw = sys.argv[1], sys.argv[2]
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-qemu-test")
vm = s.xenapi.VM.create({
    "name_label": "debian-pvh",
    "domain_type": "pvh",
    "memory_static_max": str(256 << 20),
    "memory_dynamic_max": str(256 << 20),
    "memory_dynamic_min": str(256 << 20),
    "VCPUs_max": "1",
    "VCPUs_at_startup": "1",
    "PV_kernel": "/boot/guest/vmlinux",
    "PV_ramdisk": "/boot/guest/initramfs",
    # Not hvc0: dom0 does not drain a PVH guest's console ring yet, and
    # Linux's hvc_xen spins (interrupts off, SCHEDOP_yield) on a full ring.
    "PV_args": "console=tty0 earlyprintk=xen keep_bootcon",
    "actions_after_crash": "preserve",
    "actions_after_reboot": "destroy",
    "actions_after_shutdown": "destroy",
})
s.xenapi.VM.start(vm, False, False)
print("domid", s.xenapi.VM.get_domid(vm))
print("power", s.xenapi.VM.get_power_state(vm))
metrics = s.xenapi.VM.get_metrics(vm)
print("domain type", s.xenapi.VM_metrics.get_current_domain_type(metrics))
s.xenapi.session.logout()
print("CLIENT OK")
"#;

/// What the guest's /init does: mount devtmpfs, say the marker through
/// the kernel log, power off.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
echo \"pvh-guest: init ran as pid $$ on $(/bin/busybox uname -r)\" > /dev/kmsg
/bin/busybox poweroff -f
";

#[test]
fn debian_linux_boots_as_a_pvh_vm_through_xenapi() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-pvh");
    let vmlinux = extract_vmlinux(&debian_vmlinuz(), &dir);
    let initrd = initramfs(&dir, INIT);
    let (mut launch, url) = netdom_xenapi_launch(&a, &dir, PASSWORD, &[vmlinux, initrd]);
    launch.memory_mib = 2048;
    launch.timeout_secs = 400;
    let qemu = Run::start("guests-pvh", &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(200));
    let client = ready
        .as_ref()
        .ok()
        .map(|_| run(Command::new(&py).args(["-c", CLIENT, &url, PASSWORD]), 240));
    let banner = client
        .as_ref()
        .filter(|(ok, _)| *ok)
        .map(|_| qemu.wait_for("Linux version 6.1", Duration::from_secs(120)));
    let init = banner
        .as_ref()
        .filter(|b| b.is_ok())
        .map(|_| qemu.wait_for("pvh-guest: init ran as pid 1", Duration::from_secs(120)));
    // /init powers the guest off: dom0 notices and applies
    // actions_after_shutdown = destroy.
    let stopped = init.as_ref().filter(|i| i.is_ok()).map(|_| {
        qemu.wait_for(
            "dom0: xenapi: VM debian-pvh (domid",
            Duration::from_secs(60),
        )
    });
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    if let Err(e) = ready {
        panic!("{e}");
    }
    let (ok, output) = client.expect("the client ran");
    assert!(
        ok && output.trim_end().ends_with("CLIENT OK"),
        "client failed:\n{output}\nlog:\n{}",
        xcp_qemu_tests::excerpt(log)
    );
    assert!(output.contains("power Running"), "{output}");
    assert!(output.contains("domain type pvh"), "{output}");
    let domid: u32 = output
        .lines()
        .find_map(|l| l.strip_prefix("domid "))
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or_else(|| panic!("no domid in {output}"));
    let banner = banner.expect("waited for the banner");
    let line = banner.unwrap_or_else(|e| panic!("{e}"));
    // Xen prefixes what the guest's console hypercall writes with its domid.
    assert!(line.starts_with(&format!("(d{domid}) ")), "{line}");
    // The initramfs's /init ran as Linux's first process.
    let init_line = init
        .expect("waited for /init")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        init_line.starts_with(&format!("(d{domid}) ")),
        "{init_line}"
    );
    assert!(init_line.contains("on 6.1.0-"), "{init_line}");
    assert!(log.contains("as PVH domid"), "{log}");
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
