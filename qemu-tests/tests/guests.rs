//! Guests no one here wrote, booted through XenAPI: Debian 12's Linux, its
//! bzImage as it ships (xz, 32 MiB dictionary: dom0 lends it from the
//! guest's own RAM), as a PVH VM (`domain_type = "pvh"`) and as a PV VM
//! (`"pv"`), each with 2 vCPUs.
//!
//! The kernel is Debian's `linux-image-*-amd64` that `cargo xtask`'s deps
//! step downloads and unpacks (target/debian-kernel), packed as the guest
//! file /boot/guest/vmlinuz. PyPI's `XenAPI` reaches dom0 through netdom
//! (as in netdom_xenapi.rs); the platform runs the xenstore domain, so the
//! VM is introduced to it and Linux's xenbus comes up. Linux's
//! `earlyprintk=xen` writes its first lines through Xen's console
//! hypercall (PVH: `(dN) ...` on the serial line) or its console ring
//! (PV); from `console=hvc0` on, its console is the ring dom0 relays,
//! which the client reads through the VM's XenAPI console (`CONNECT` on
//! its location, through netdom). The initramfs (`PV_ramdisk`, made here:
//! busybox-static and an `/init` script) prints what the guest sees of
//! itself (vCPUs, `/sys/hypervisor/uuid`, and its `domid` and `name` read
//! from xenstore through `/dev/xen/xenbus`), then runs the lines typed at
//! the console. The client types one, then `VM.clean_reboot`s it (Linux
//! acknowledges `control/shutdown` and reboots; the VM runs again in a new
//! domain, whose init the client sees on the new console) and
//! `VM.clean_shutdown`s it (Linux powers itself off: Halted); `event.from`
//! shows the power-state changes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{
    client_output, netdom_xenapi_xenstore_launch, python_with_xenapi, run,
};
use xcp_qemu_tests::linux::{debian_vmlinuz, initramfs, INIT_PRELUDE, PY_CONSOLE};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "guest-pw";

/// Creates and starts the VM (name, domain_type, kernel from argv),
/// attaches to its console, checks what the guest says of itself, types a
/// command, reboots and shuts it down cleanly. Runs after
/// [`PY_CONSOLE`]; its last line is "CLIENT OK".
const CLIENT: &str = r#"
import sys
import XenAPI
url, pw, name, dtype, kernel = sys.argv[1:6]
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-qemu-test")
vm = s.xenapi.VM.create({
    "name_label": name,
    "domain_type": dtype,
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
uuid = s.xenapi.VM.get_uuid(vm)
s.xenapi.VM.start(vm, False, False)
domid = s.xenapi.VM.get_domid(vm)
print("domid", domid)
print("power", s.xenapi.VM.get_power_state(vm))
metrics = s.xenapi.VM.get_metrics(vm)
print("domain type", s.xenapi.VM_metrics.get_current_domain_type(metrics))
c = Console(s, url, vm)
c.read_until(b"guest: ready", 240)
line = c.seen[c.seen.index(b"guest: init"):].split(b"\n")[0].decode().strip()
print("guest says:", line)
want = f"cpus 2 uuid {uuid} domid {domid} name {name}"
assert want in line, (want, line)
c.send(b"echo typed-$((6 * 7))\r")
c.read_until(b"typed-42", 60)
print("typed: the guest ran the line")
c.close()
token = getattr(s.xenapi.event, "from")(["vm"], "", 1.0)["token"]
# Linux acknowledges control/shutdown and reboots itself; the call
# returns once the VM runs again, in a new domain.
s.xenapi.VM.clean_reboot(vm)
domid2 = s.xenapi.VM.get_domid(vm)
print("clean_reboot: power", s.xenapi.VM.get_power_state(vm), "new domid", domid2)
assert domid2 != domid, (domid, domid2)
c = Console(s, url, vm)
c.read_until(b"guest: ready", 240)
print("rebooted: the guest's init ran again")
c.close()
s.xenapi.VM.clean_shutdown(vm)
print("clean_shutdown: power", s.xenapi.VM.get_power_state(vm))
assert s.xenapi.VM.get_power_state(vm) == "Halted"
states = []
batch = getattr(s.xenapi.event, "from")(["vm"], token, 1.0)
for ev in batch["events"]:
    if ev["ref"] == vm and "snapshot" in ev:
        state = ev["snapshot"]["power_state"]
        if not states or states[-1] != state:
            states.append(state)
print("power states seen by event.from:", states)
assert "Halted" in states and "Running" in states, states
assert states[-1] == "Halted", states
s.xenapi.session.logout()
print("CLIENT OK")
"#;

/// The guest's /init after [`INIT_PRELUDE`]: what the guest sees of
/// itself, then a shell reading the console.
const INIT: &str = r#"
# XS_READ (2) of a path relative to the guest's home, through the xenbus
# device: a 16-byte header (type, req_id, tx_id, len), the path and NUL.
xs_read_once() {
    n=$(( ${#1} + 1 ))
    exec 3<>/dev/xen/xenbus
    printf "\002\000\000\000\001\000\000\000\000\000\000\000\\$(printf %o $n)\000\000\000$1\000" >&3
    # The reply's header, then its `len` bytes: Linux's xenbus device may
    # hand the header over in a read of its own.
    len=$(dd bs=16 count=1 iflag=fullblock <&3 2>/dev/null | od -An -tu4 -j12 -N4 | tr -d ' ')
    [ "${len:-0}" -gt 0 ] && dd bs="$len" count=1 iflag=fullblock <&3 2>/dev/null
    exec 3>&-
}
# The PV guest (2 vCPUs) read an empty value twice in CI (once domid, once
# name; never locally, cause not found): read again, saying so on the
# console, at most ten times.
xs_read() {
    for try in 1 2 3 4 5 6 7 8 9 10; do
        v=$(xs_read_once "$1")
        [ -n "$v" ] && break
        echo "guest: xs_read $1 came back empty (try $try)" >&2
        sleep 0.2
    done
    printf %s "$v"
}
echo "guest: init ran as pid $$ on $(uname -r) cpus $(nproc) uuid $(cat /sys/hypervisor/uuid) domid $(xs_read domid) name $(xs_read name)"
echo "guest: ready"
while read -r line; do eval "$line"; done
"#;

#[test]
fn debian_linux_boots_as_a_pvh_vm_through_xenapi() {
    boot("guests-pvh", "debian-pvh", "pvh");
}

#[test]
fn debian_linux_boots_as_a_pv_vm_through_xenapi() {
    boot("guests-pv-console", "debian-pv", "pv");
}

/// Boots Debian's bzImage, as it ships, as VM `vm` of `domain_type`
/// `dtype` with the client above, and checks what dom0 saw.
fn boot(case: &str, vm: &str, dtype: &str) {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch(case);
    let vmlinuz = dir.join("vmlinuz");
    std::fs::copy(debian_vmlinuz(), &vmlinuz).unwrap();
    let initrd = initramfs(&dir, &format!("{INIT_PRELUDE}{INIT}"));
    let (mut launch, url) = netdom_xenapi_xenstore_launch(&a, &dir, PASSWORD, &[vmlinuz, initrd]);
    launch.memory_mib = 2048;
    launch.timeout_secs = 600;
    let qemu = Run::start(case, &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(200));
    let client = ready.as_ref().ok().map(|_| {
        run(
            Command::new(&py).args([
                "-c",
                &format!("{PY_CONSOLE}{CLIENT}"),
                &url,
                PASSWORD,
                vm,
                dtype,
                "/boot/guest/vmlinuz",
            ]),
            400,
        )
    });
    // The client saw the VM halt; dom0 logs each stop.
    let stopped = client.as_ref().filter(|(ok, _)| *ok).map(|_| {
        qemu.wait_for_nth(
            &format!("dom0: xenapi: VM {vm} (domid"),
            2,
            Duration::from_secs(30),
        )
    });
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    let output = client_output(ready, client, log, "CLIENT OK");
    eprintln!("client output:\n{output}");
    assert!(output.contains("power Running"), "{output}");
    assert!(
        output.contains(&format!("domain type {dtype}\n")),
        "{output}"
    );
    let domid: u32 = output
        .lines()
        .find_map(|l| l.strip_prefix("domid "))
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or_else(|| panic!("no domid in {output}"));
    // Linux's banner: through Xen's console hypercall for PVH (prefixed
    // with the domid), through the console ring dom0 relays for PV.
    let banner = |l: &&str| {
        l.contains("Linux version 6.1")
            && (l.starts_with(&format!("(d{domid}) ")) || l.contains(&format!("[{vm}] ")))
    };
    assert!(
        log.lines().any(|l| banner(&l)),
        "no banner from d{domid}:\n{}",
        xcp_qemu_tests::excerpt(log)
    );
    // Its console as dom0 relays it (at DEBUG, prefixed with the VM's name).
    assert!(
        log.contains(&format!("[{vm}] guest: init ran as pid 1 on 6.1.0-")),
        "{}",
        xcp_qemu_tests::excerpt(log)
    );
    stopped
        .expect("waited for the stops")
        .unwrap_or_else(|e| panic!("{e}"));
    // actions_after_reboot is destroy: the clean reboot overrides it.
    assert!(
        log.contains(&format!(
            "(domid {domid}) stopped: reboot; actions_after_reboot: restarted as domid"
        )),
        "{}",
        xcp_qemu_tests::excerpt(log)
    );
    assert!(
        log.contains("stopped: poweroff; actions_after_shutdown: destroyed, Halted"),
        "{}",
        xcp_qemu_tests::excerpt(log)
    );
    assert!(log.contains("(control/shutdown)"), "{log}");
}
