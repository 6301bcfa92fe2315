//! Debian 12's **unmodified** bzImage (xz payload, x86 BCJ, 32 MiB
//! dictionary) booted as a PVH VM through XenAPI: dom0 decompresses it
//! with the dictionary lent from the guest's own RAM (the top 32 MiB of
//! its low RAM, mapped into dom0 for the load), so dom0's heap does not
//! grow by the dictionary. dom0 logs its heap figures around the build;
//! this test reads them back.
//!
//! First a VM too small for its kernel plus the dictionary is refused
//! clearly (and the mapping given back); then the real one starts twice
//! (each build maps the dictionary run again). Otherwise as guests.rs: PyPI's `XenAPI` reaches dom0 through netdom,
//! creates and starts the VM; `earlyprintk=xen` shows Linux's boot in
//! Xen's log as `(dN) ...`; the initramfs's `/init` writes a marker to
//! /dev/kmsg and powers the guest off, which leaves the VM Halted.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{client_output, netdom_xenapi_launch, python_with_xenapi, run};
use xcp_qemu_tests::linux::{debian_vmlinuz, initramfs};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "guest-pw";
/// Debian's xz dictionary (Linux's `xz_wrap.sh`: `dict=32MiB`).
const DICTIONARY: u64 = 32 << 20;

/// Creates and starts the PVH VM from the bzImage; prints its domid.
const CLIENT: &str = r#"
import sys
import XenAPI
url, pw = sys.argv[1], sys.argv[2]
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-bzimage-qemu-test")
def create(name, mib):
    return s.xenapi.VM.create({
        "name_label": name,
        "domain_type": "pvh",
        "memory_static_max": str(mib << 20),
        "memory_dynamic_max": str(mib << 20),
        "memory_dynamic_min": str(mib << 20),
        "VCPUs_max": "1",
        "VCPUs_at_startup": "1",
        "PV_kernel": "/boot/guest/vmlinuz",
        "PV_ramdisk": "/boot/guest/initramfs",
        # As guests.rs: dom0 does not drain a PVH guest's console ring yet.
        "PV_args": "console=tty0 earlyprintk=xen keep_bootcon",
        "actions_after_crash": "preserve",
        "actions_after_reboot": "destroy",
        "actions_after_shutdown": "destroy",
    })
# 96 MiB: the kernel (16 MiB up to about 82 MiB) reaches into the
# dictionary at the top 32 MiB. Refused, and the run is given back (the
# next VM maps it again).
small = create("debian-small", 96)
try:
    s.xenapi.VM.start(small, False, False)
    print("small started")
except XenAPI.Failure as f:
    print("small refused", f.details)
print("small power", s.xenapi.VM.get_power_state(small))
vm = create("debian-bzimage", 256)
s.xenapi.VM.start(vm, False, False)
print("domid", s.xenapi.VM.get_domid(vm))
print("power", s.xenapi.VM.get_power_state(vm))
# Its /init powers it off; then start it again: the second build maps the
# dictionary run again (the first was given back).
import time
for _ in range(600):
    if s.xenapi.VM.get_power_state(vm) == "Halted":
        break
    time.sleep(0.5)
print("halted", s.xenapi.VM.get_power_state(vm))
s.xenapi.VM.start(vm, False, False)
print("domid2", s.xenapi.VM.get_domid(vm))
print("power2", s.xenapi.VM.get_power_state(vm))
s.xenapi.session.logout()
print("CLIENT OK")
"#;

const INIT: &str = "#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
echo \"pvh-bzimage: init ran as pid $$ on $(/bin/busybox uname -r)\" > /dev/kmsg
/bin/busybox poweroff -f
";

/// The numbers after each `key` in dom0's heap line.
fn figure(line: &str, key: &str) -> (u64, u64) {
    let rest = line
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key:?} in {line}"));
    let mut nums = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().expect("a number"));
    (nums.next().expect("before"), nums.next().expect("after"))
}

#[test]
fn debians_xz_bzimage_boots_as_a_pvh_vm_with_the_dictionary_in_guest_ram() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-bzimage");
    // The bzImage as Debian ships it, under a short guest name.
    let vmlinuz = dir.join("vmlinuz");
    std::fs::copy(debian_vmlinuz(), &vmlinuz).unwrap();
    assert_eq!(
        &std::fs::read(&vmlinuz).unwrap()[0x202..0x206],
        b"HdrS",
        "a bzImage"
    );
    let initrd = initramfs(&dir, INIT);
    let (mut launch, url) = netdom_xenapi_launch(&a, &dir, PASSWORD, &[vmlinuz, initrd]);
    launch.memory_mib = 2048;
    launch.timeout_secs = 600;
    let qemu = Run::start("guests-bzimage", &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(200));
    let client = ready
        .as_ref()
        .ok()
        .map(|_| run(Command::new(&py).args(["-c", CLIENT, &url, PASSWORD]), 400));
    let ran = client.as_ref().filter(|(ok, _)| *ok);
    let heap = ran.map(|_| qemu.wait_for("PVH build of debian-bzimage", Duration::from_secs(10)));
    let banner = ran.map(|_| qemu.wait_for("Linux version 6.1", Duration::from_secs(120)));
    let init = ran.map(|_| {
        qemu.wait_for_nth(
            "pvh-bzimage: init ran as pid 1",
            2,
            Duration::from_secs(180),
        )
    });
    let stopped = ran.map(|_| {
        qemu.wait_for_nth(
            "dom0: xenapi: VM debian-bzimage (domid",
            2,
            Duration::from_secs(60),
        )
    });
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    let output = client_output(ready, client, log, "CLIENT OK");
    // The VM too small for its kernel and the dictionary: a clear refusal.
    let refused = output
        .lines()
        .find(|l| l.starts_with("small refused"))
        .unwrap_or_else(|| panic!("the small VM was not refused: {output}"));
    eprintln!("{refused}");
    assert!(
        refused.contains("memory too small") && refused.contains("give the VM more memory"),
        "{refused}"
    );
    assert!(output.contains("small power Halted"), "{output}");
    assert!(output.contains("power Running"), "{output}");
    assert!(output.contains("halted Halted"), "{output}");
    assert!(output.contains("power2 Running"), "{output}");
    let domid_of = |key: &str| -> u32 {
        output
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|d| d.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key:?} in {output}"))
    };
    let (domid, domid2) = (domid_of("domid "), domid_of("domid2 "));
    // dom0's heap around the build: its peak stayed far below what
    // holding the dictionary would have made it.
    let heap = heap
        .expect("waited for the heap line")
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("dom0 around the build: {heap}");
    let (in_use_before, in_use_after) = figure(&heap, "heap in use");
    let (_, peak_after) = figure(&heap, "(peak");
    let grew = peak_after.saturating_sub(in_use_before);
    eprintln!(
        "dom0 heap: in use {in_use_before} -> {in_use_after} bytes; peak after the build {peak_after} \
         ({grew} bytes above the in-use figure before it; the dictionary is {DICTIONARY})"
    );
    assert!(
        grew < DICTIONARY / 8,
        "dom0's heap peaked {grew} bytes above its use before the build: {heap}"
    );
    assert!(log.contains("as PVH domid"), "{log}");
    let line = banner
        .expect("waited for the banner")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.starts_with(&format!("(d{domid}) ")), "{line}");
    // Both boots reached /init (the second line is the second domain's).
    init.expect("waited for /init")
        .unwrap_or_else(|e| panic!("{e}"));
    for id in [domid, domid2] {
        let marker = format!("(d{id}) ");
        assert!(
            log.lines().any(|l| l.starts_with(&marker)
                && l.contains("pvh-bzimage: init ran as pid 1 on 6.1.0-")),
            "no /init line from d{id}"
        );
    }
    stopped
        .expect("waited for the stops")
        .unwrap_or_else(|e| panic!("{e}"));
    for id in [domid, domid2] {
        assert!(
            log.contains(&format!(
                "(domid {id}) stopped: poweroff; actions_after_shutdown: destroyed, Halted"
            )),
            "domid {id} did not stop"
        );
    }
    // The second build's heap figures too.
    let second = log
        .lines()
        .filter(|l| l.contains("PVH build of debian-bzimage"))
        .nth(1)
        .unwrap_or_else(|| panic!("no second build line"));
    eprintln!("dom0 around the second build: {second}");
    let (before2, _) = figure(second, "heap in use");
    let (_, peak2) = figure(second, "(peak");
    assert!(
        peak2.saturating_sub(before2) < DICTIONARY / 8,
        "second build: {second}"
    );
}
