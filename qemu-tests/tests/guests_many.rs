//! Many VMs at once (the short form of `cargo xtask bench vms`): a tiny
//! PVH template (Debian's ELF vmlinux, a busybox initramfs, 96 MiB),
//! cloned and provisioned [`VMS`] times through PyPI's `XenAPI` via
//! netdom; `Async.VM.start` of every VM at once (one thread and session
//! per VM, released together), every task succeeds and every VM is
//! Running; then `Async.VM.hard_shutdown` of every VM at once while the
//! guests boot, every task succeeds and every VM is Halted, and Xen's
//! free memory is back (within 1 MiB: no guest's memory is kept). (The clean shutdown of many VMs at
//! once, which waits for each guest's /init, is `cargo xtask bench vms`'s:
//! 8 Linux boots sharing one emulated CPU take about 6 minutes.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{
    client_output, netdom_xenapi_xenstore_launch, python_with_xenapi, run,
};
use xcp_qemu_tests::linux::{debian_vmlinuz, extract_vmlinux, initramfs, INIT_PRELUDE, PY_CONSOLE};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "many-pw";
/// VMs at once: as many as dom0 relays consoles for.
const VMS: usize = 8;
const GUEST_MIB: u32 = 96;

/// The guest's /init after [`INIT_PRELUDE`]: says it is ready.
const INIT: &str = r#"
echo "many-guest: ready"
while true; do sleep 1000; done
"#;

/// The client; its last line is "CLIENT OK".
const CLIENT: &str = r#"
import sys, threading, time
import XenAPI
url, pw, n, mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def login(who):
    s = XenAPI.Session(url)
    s.xenapi.login_with_password("root", pw, "1.0", who)
    return s

s = login("guests-many")
x = s.xenapi
m = str(mib << 20)
tmpl = x.VM.create({
    "name_label": "many-tiny", "domain_type": "pvh",
    "memory_static_max": m, "memory_dynamic_max": m, "memory_dynamic_min": m,
    "VCPUs_max": "1", "VCPUs_at_startup": "1",
    "PV_kernel": "/boot/guest/vmlinux", "PV_ramdisk": "/boot/guest/initramfs",
    "PV_args": "console=hvc0 quiet mitigations=off",
    "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
    "actions_after_crash": "destroy",
})
x.VM.set_is_a_template(tmpl, True)
vms = []
for i in range(n):
    vm = x.VM.clone(tmpl, "many-%d" % i)
    x.VM.provision(vm)
    assert not x.VM.get_is_a_template(vm)
    vms.append(vm)
host = x.host.get_all()[0]
free = lambda: int(x.host_metrics.get_memory_free(x.host.get_metrics(host)))
before = free()

def all_at_once(op):
    # Fresh sessions: a connection left idle while the guests boot may be
    # gone (QEMU's user network).
    sessions = [login("guests-many-%s-%d" % (op, i)) for i in range(n)]
    go = threading.Barrier(n)
    results = [None] * n
    def one(i):
        sx = sessions[i].xenapi
        go.wait()
        t0 = time.monotonic()
        args = [vms[i], False, False] if op == "start" else [vms[i]]
        task = getattr(sx.Async.VM, op)(*args)
        deadline = time.monotonic() + 600
        while sx.task.get_status(task) == "pending":
            if time.monotonic() > deadline:
                results[i] = ("timeout", 0.0)
                return
            time.sleep(0.5)
        status = sx.task.get_status(task)
        if status != "success":
            print(op, i, status, sx.task.get_error_info(task), flush=True)
        results[i] = (status, time.monotonic() - t0)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(op, "of", n, "at once: tasks", [r[0] for r in results],
          "in %.1f s;" % (time.monotonic() - t),
          "each %s s" % sorted(round(r[1], 1) for r in results), flush=True)
    for sx in sessions:
        sx.xenapi.session.logout()
    assert all(r and r[0] == "success" for r in results), results

all_at_once("start")
s = login("guests-many")
x = s.xenapi
states = [x.VM.get_power_state(vm) for vm in vms]
assert states == ["Running"] * n, states
assert len(set(x.VM.get_domid(vm) for vm in vms)) == n
print("all", n, "Running", flush=True)
# Straight on, while the guests boot (a clean shutdown would wait for
# each /init: minutes for 8 Linux boots sharing one emulated CPU; the
# bench does that).
all_at_once("hard_shutdown")
s = login("guests-many")
x = s.xenapi
states = [x.VM.get_power_state(vm) for vm in vms]
assert states == ["Halted"] * n, states
print("all", n, "Halted", flush=True)
deadline = time.monotonic() + 20
while free() != before and time.monotonic() < deadline:
    time.sleep(1)
print("free before", before, "after", free(), flush=True)
# Every guest's memory back: a run with clean shutdowns saw Xen keep
# 84 KiB after the first time 8 guests ran at once (its own heap, not a
# guest's pages: one VM is 96 MiB).
assert before - free() < 1 << 20, (before, free())
x.session.logout()
print("CLIENT OK")
"#;

#[test]
fn many_vms_start_and_stop_at_once() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-many");
    let vmlinux = extract_vmlinux(&debian_vmlinuz(), &dir);
    let initrd = initramfs(&dir, &format!("{INIT_PRELUDE}{INIT}"));
    let (mut launch, url) = netdom_xenapi_xenstore_launch(&a, &dir, PASSWORD, &[vmlinux, initrd]);
    launch.memory_mib = 1024 + VMS as u32 * (GUEST_MIB + 8);
    launch.timeout_secs = 600;
    let qemu = Run::start("guests-many", &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(200));
    let client = ready.as_ref().ok().map(|_| {
        run(
            Command::new(&py).args([
                "-c",
                &format!("{PY_CONSOLE}{CLIENT}"),
                &url,
                PASSWORD,
                &VMS.to_string(),
                &GUEST_MIB.to_string(),
            ]),
            540,
        )
    });
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    let output = client_output(ready, client, log, "CLIENT OK");
    eprintln!("client output:\n{output}");
    assert!(output.contains(&format!("all {VMS} Running")), "{output}");
    assert!(output.contains(&format!("all {VMS} Halted")), "{output}");
    assert!(
        !log.contains("panicked"),
        "{}",
        xcp_qemu_tests::excerpt(log)
    );
}
