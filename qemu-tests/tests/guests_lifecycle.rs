//! A real OS through its whole life on Xen, driven by PyPI's `XenAPI`
//! through netdom: images that are not kernels (a corrupt ELF, Debian's
//! bzImage with its xz stream damaged, a truncated ELF, a cpio archive) fail
//! `VM.start` cleanly and
//! the platform serves on; a VM that does not fit is refused with
//! `HOST_NOT_ENOUGH_FREE_MEMORY`; `pause`/`unpause`/`hard_reboot` on
//! Debian's Linux (PVH); and 20 start / clean-shutdown cycles (every other
//! one through `Async.VM.clean_shutdown` and its task, as Xen Orchestra
//! does) after which Xen's free memory (host_metrics) is back where it
//! started.
//!
//! The guest is Debian 12's kernel (the ELF vmlinux from its bzImage, as in
//! guests.rs) with a busybox initramfs whose /init says "ready" on its
//! console; each cycle waits for that line on the VM's XenAPI console
//! before `VM.clean_shutdown` (Linux's orderly power-off runs
//! /sbin/poweroff, which needs its init up).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{
    client_output, netdom_xenapi_xenstore_launch, python_with_xenapi, run,
};
use xcp_qemu_tests::linux::{debian_vmlinuz, extract_vmlinux, initramfs, INIT_PRELUDE, PY_CONSOLE};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "lifecycle-pw";
const CYCLES: usize = 20;

/// The guest's /init after [`INIT_PRELUDE`]: says it is ready.
const INIT: &str = r#"
echo "lifecycle-guest: ready"
while true; do sleep 1000; done
"#;

/// The client: bad images, a VM too big, pause/unpause/hard_reboot, then
/// the cycles. Its last line is "CLIENT OK".
const CLIENT: &str = r#"
import sys
import time
import XenAPI
url, pw, cycles = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "lifecycle-qemu-test")
x = s.xenapi
mib = lambda n: str(n << 20)

def vm_with(name, kernel, memory=256):
    return x.VM.create({
        "name_label": name, "domain_type": "pvh",
        "memory_static_max": mib(memory), "memory_dynamic_max": mib(memory),
        "memory_dynamic_min": mib(memory), "VCPUs_max": "1", "VCPUs_at_startup": "1",
        "PV_kernel": kernel, "PV_ramdisk": "/boot/guest/initramfs",
        "PV_args": "console=hvc0",
        "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
        "actions_after_crash": "destroy",
    })

def free():
    host = x.host.get_all()[0]
    return int(x.host_metrics.get_memory_free(x.host.get_metrics(host)))

def wait_ready(vm, secs=240):
    c = Console(s, url, vm)
    c.read_until(b"lifecycle-guest: ready", secs)
    c.close()

for name in ["corrupt", "corrupt-xz", "truncated", "not-a-kernel"]:
    vm = vm_with(name, "/boot/guest/" + name)
    try:
        x.VM.start(vm, False, False)
        print(name, "STARTED")
        sys.exit(1)
    except XenAPI.Failure as f:
        print(name, "refused:", f.details[0], " ".join(f.details[1:])[:160])
    assert x.VM.get_power_state(vm) == "Halted"
    x.VM.destroy(vm)

big = vm_with("too-big", "/boot/guest/vmlinux", memory=1 << 20)
try:
    x.VM.start(big, False, False)
    print("too-big STARTED")
    sys.exit(1)
except XenAPI.Failure as f:
    print("too-big refused:", f.details)
    assert f.details[0] == "HOST_NOT_ENOUGH_FREE_MEMORY", f.details
    assert int(f.details[1]) > int(f.details[2]), f.details
x.VM.destroy(big)

vm = vm_with("debian", "/boot/guest/vmlinux")
before = free()
print("free before", before)
x.VM.start(vm, False, False)
metrics = x.VM.get_metrics(vm)
print("memory_actual", x.VM_metrics.get_memory_actual(metrics))
assert int(x.VM_metrics.get_memory_actual(metrics)) == 256 << 20
assert before - free() >= 256 << 20, (before, free())
wait_ready(vm)
x.VM.pause(vm)
assert x.VM.get_power_state(vm) == "Paused"
x.VM.unpause(vm)
assert x.VM.get_power_state(vm) == "Running"
print("paused and unpaused")
d1 = x.VM.get_domid(vm)
x.VM.hard_reboot(vm)
d2 = x.VM.get_domid(vm)
assert d1 != d2 and x.VM.get_power_state(vm) == "Running", (d1, d2)
wait_ready(vm)
print("hard_reboot: domid", d1, "->", d2, "and init ran again")
x.VM.clean_shutdown(vm)
assert x.VM.get_power_state(vm) == "Halted"

t0 = time.monotonic()
for i in range(cycles):
    x.VM.start(vm, False, False)
    wait_ready(vm)
    if i % 2:
        x.VM.clean_shutdown(vm)
    else:
        # As Xen Orchestra does it: the task stays pending until the guest
        # has powered itself off.
        task = x.Async.VM.clean_shutdown(vm)
        deadline = time.monotonic() + 120
        while x.task.get_status(task) == "pending":
            assert time.monotonic() < deadline, "the task did not end"
            time.sleep(0.2)
        assert x.task.get_status(task) == "success", x.task.get_record(task)
    assert x.VM.get_power_state(vm) == "Halted", i
print(f"{cycles} start/clean_shutdown cycles in {time.monotonic() - t0:.0f} s")
# dom0 reads Xen's free memory every second.
deadline = time.monotonic() + 20
while free() != before and time.monotonic() < deadline:
    time.sleep(1)
print("free after", free(), "before", before)
assert free() == before, (before, free())
x.session.logout()
print("CLIENT OK")
"#;

#[test]
fn a_linux_vm_lives_and_dies_cleanly_and_gives_its_memory_back() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-lifecycle");
    let vmlinux = extract_vmlinux(&debian_vmlinuz(), &dir);
    let initrd = initramfs(&dir, &format!("{INIT_PRELUDE}{INIT}"));
    let elf = std::fs::read(&vmlinux).unwrap();
    // An ELF whose program headers are garbage.
    let mut corrupt = elf.clone();
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    corrupt[phoff..phoff + 56 * 2].fill(0xa5);
    let corrupt_path = dir.join("corrupt");
    std::fs::write(&corrupt_path, corrupt).unwrap();
    // Debian's bzImage with bytes of its xz payload overwritten.
    let mut corrupt_xz = std::fs::read(debian_vmlinuz()).unwrap();
    let mid = corrupt_xz.len() / 2;
    corrupt_xz[mid..mid + 4096].fill(0x5a);
    let corrupt_xz_path = dir.join("corrupt-xz");
    std::fs::write(&corrupt_xz_path, corrupt_xz).unwrap();
    // The first MiB of the kernel.
    let truncated_path = dir.join("truncated");
    std::fs::write(&truncated_path, &elf[..1 << 20]).unwrap();
    // A cpio archive is no kernel.
    let not_kernel_path = dir.join("not-a-kernel");
    std::fs::copy(&initrd, &not_kernel_path).unwrap();
    let guests = [
        vmlinux,
        initrd,
        corrupt_path,
        corrupt_xz_path,
        truncated_path,
        not_kernel_path,
    ];
    let (mut launch, url) = netdom_xenapi_xenstore_launch(&a, &dir, PASSWORD, &guests);
    launch.memory_mib = 2048;
    launch.timeout_secs = 1200;
    let qemu = Run::start("guests-lifecycle", &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(200));
    let client = ready.as_ref().ok().map(|_| {
        run(
            Command::new(&py).args([
                "-c",
                &format!("{PY_CONSOLE}{CLIENT}"),
                &url,
                PASSWORD,
                &CYCLES.to_string(),
            ]),
            1000,
        )
    });
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    let output = client_output(ready, client, log, "CLIENT OK");
    eprintln!("client output:\n{output}");
    // Each bad image is refused with what was wrong with it.
    for (name, why) in [
        ("corrupt", "ELF"),
        ("corrupt-xz", "xz"),
        ("truncated", "truncated"),
        ("not-a-kernel", "neither ELF64 nor bzImage"),
    ] {
        let line = output
            .lines()
            .find(|l| l.starts_with(&format!("{name} refused:")))
            .unwrap_or_else(|| panic!("no refusal of {name}:\n{output}"));
        assert!(line.contains(why), "{line}");
    }
    assert!(
        !log.contains("panicked"),
        "{}",
        xcp_qemu_tests::excerpt(log)
    );
}
