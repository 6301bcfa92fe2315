//! Many VMs at once (the short form of `cargo xtask bench vms`): a
//! template of [`VMS`] tiny PVH guests (tinyvm, `GUEST_MIB` MiB, a few
//! KiB of kernel), cloned and provisioned through PyPI's `XenAPI` via
//! netdom; `Async.VM.start` of every VM at once (one thread and session per
//! VM, released together), every task succeeds and every VM is Running;
//! every guest reports itself (`VM_guest_metrics.os_version` has `name:
//! tinyvm`, which dom0's bounded poll reads at 8 guests a second); one
//! `Async.VM.clean_reboot` brings a VM back Running with a new domid and
//! it reports again; then `Async.VM.clean_shutdown` of every VM at once
//! (the guests acknowledge `control/shutdown` and power off), every task
//! succeeds, every VM is Halted, and Xen's free memory is back (within
//! 1 MiB: no guest's memory is kept).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{
    client_output, netdom_xenapi_xenstore_launch, python_with_xenapi, run,
};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "many-pw";
/// VMs at once (issue #16: 50 tiny PVH VMs).
const VMS: usize = 50;
/// The guest's memory: the least a PVH build accepts
/// (`xcp_builder::MIN_PVH_MEMORY`); tinyvm uses about 120 KiB of it.
const GUEST_MIB: u32 = 2;

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
    "PV_kernel": "/boot/guest/tinyvm.elf", "PV_ramdisk": "", "PV_args": "",
    "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
    "actions_after_crash": "destroy",
})
x.VM.set_is_a_template(tmpl, True)
vms = []
t = time.monotonic()
for i in range(n):
    vm = x.VM.clone(tmpl, "many-%d" % i)
    x.VM.provision(vm)
    assert not x.VM.get_is_a_template(vm)
    vms.append(vm)
print(n, "VMs of %d MiB cloned and provisioned in %.1f s" % (mib, time.monotonic() - t), flush=True)
host = x.host.get_all()[0]
free = lambda: int(x.host_metrics.get_memory_free(x.host.get_metrics(host)))
before = free()

def all_at_once(op):
    # Fresh sessions: a connection left idle meanwhile may be gone (QEMU's
    # user network).
    sessions = [login("guests-many-%s-%d" % (op, i)) for i in range(n)]
    go = threading.Barrier(n)
    results = [None] * n
    def one(i):
        sx = sessions[i].xenapi
        go.wait()
        t0 = time.monotonic()
        args = [vms[i], False, False] if op == "start" else [vms[i]]
        task = getattr(sx.Async.VM, op)(*args)
        deadline = time.monotonic() + 300
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
    took = time.monotonic() - t
    each = sorted(r[1] for r in results if r)
    print(op, "of", n, "at once: %d tasks success in %.1f s;" % (
              sum(1 for r in results if r and r[0] == "success"), took),
          "each p50 %.1f s, p99 %.1f s, max %.1f s" % (
              each[len(each) // 2], each[min(len(each) - 1, (len(each) * 99) // 100)], each[-1]),
          flush=True)
    for sx in sessions:
        sx.xenapi.session.logout()
    assert all(r and r[0] == "success" for r in results), results

def reported(vm):
    gm = x.VM.get_guest_metrics(vm)
    if gm == "OpaqueRef:NULL":
        return False
    return x.VM_guest_metrics.get_os_version(gm).get("name") == "tinyvm"

def wait_reported(which, seconds):
    t = time.monotonic()
    deadline = t + seconds
    missing = list(which)
    while missing and time.monotonic() < deadline:
        missing = [vm for vm in missing if not reported(vm)]
        if missing:
            time.sleep(1)
    assert not missing, "%d guests never reported" % len(missing)
    return time.monotonic() - t

all_at_once("start")
s = login("guests-many")
x = s.xenapi
states = [x.VM.get_power_state(vm) for vm in vms]
assert states == ["Running"] * n, states
domids = [x.VM.get_domid(vm) for vm in vms]
assert len(set(domids)) == n
print("all", n, "Running", flush=True)
print("all", n, "reported os_version name tinyvm in %.1f s" % wait_reported(vms, 120), flush=True)

# One clean reboot: the guest acknowledges, reboots, comes back with a new
# domid and reports again.
task = x.Async.VM.clean_reboot(vms[0])
deadline = time.monotonic() + 60
while x.task.get_status(task) == "pending" and time.monotonic() < deadline:
    time.sleep(0.5)
assert x.task.get_status(task) == "success", x.task.get_error_info(task)
assert x.VM.get_power_state(vms[0]) == "Running"
assert x.VM.get_domid(vms[0]) != domids[0], (domids[0], x.VM.get_domid(vms[0]))
# (Its VM_guest_metrics record outlives the reboot, as xapi's does: the
# test also finds the new domain's own lines on Xen's serial line.)
print("clean reboot: Running again as domid", x.VM.get_domid(vms[0]),
      "reported in %.1f s" % wait_reported(vms[:1], 60), flush=True)
print("REBOOTED-DOMID", x.VM.get_domid(vms[0]), flush=True)

all_at_once("clean_shutdown")
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
# guest's pages).
assert before - free() < 1 << 20, (before, free())
x.session.logout()
print("CLIENT OK")
"#;

#[test]
fn many_vms_start_and_stop_at_once() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-many");
    let (mut launch, url) =
        netdom_xenapi_xenstore_launch(&a, &dir, PASSWORD, &[a.path("tinyvm.elf")]);
    launch.memory_mib = 1024 + VMS as u32 * (GUEST_MIB + 4);
    launch.timeout_secs = 400;
    let qemu = Run::start("guests-many", &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(200));
    let client = ready.as_ref().ok().map(|_| {
        run(
            Command::new(&py).args([
                "-c",
                CLIENT,
                &url,
                PASSWORD,
                &VMS.to_string(),
                &GUEST_MIB.to_string(),
            ]),
            360,
        )
    });
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    let output = client_output(ready, client, log, "CLIENT OK");
    eprintln!("client output:\n{output}");
    assert!(output.contains(&format!("all {VMS} Running")), "{output}");
    assert!(output.contains(&format!("all {VMS} Halted")), "{output}");
    // Every guest's own word on Xen's serial line (its debug port: `(dN)
    // [stamp] tinyvm: ...`, which Xen may print in the middle of another
    // line; dom0 also relays the first 8 consoles, as `[name] tinyvm: ...`):
    // up, ready, and how it ended (VMS + 1 domains: the reboot made one).
    let from_xen = |text: &str| guest_lines(log, text);
    let up = from_xen("tinyvm: up").len();
    let ready = from_xen("tinyvm: ready");
    let off = from_xen("tinyvm: powering off").len();
    let reboot = from_xen("tinyvm: rebooting").len();
    eprintln!(
        "guest lines on Xen's serial line: {up} up, {} ready, {off} powering off, {reboot} rebooting",
        ready.len()
    );
    assert_eq!((up, ready.len(), off, reboot), (VMS + 1, VMS + 1, VMS, 1));
    let rebooted: u32 = output
        .lines()
        .find_map(|l| l.strip_prefix("REBOOTED-DOMID "))
        .and_then(|d| d.trim().parse().ok())
        .expect("the client names the rebooted VM's domid");
    assert!(
        ready.contains(&rebooted),
        "the rebooted guest talked to xenstore again"
    );
    assert!(
        !log.contains("panicked") && !log.contains("tinyvm: panic"),
        "{}",
        xcp_qemu_tests::excerpt(log)
    );
}

/// The domids of the guest lines `(dN) [stamp] <text>` in `log`, wherever
/// they start in a serial line.
fn guest_lines(log: &str, text: &str) -> Vec<u32> {
    log.match_indices(text)
        .filter_map(|(at, _)| {
            // "(d53) [   15.938686] ": the prefix is at most 24 bytes back.
            let mut start = at.saturating_sub(24);
            while !log.is_char_boundary(start) {
                start += 1;
            }
            let before = &log[start..at];
            let open = before.rfind("(d")?;
            let close = before[open..].find(')')?;
            before[open + 2..open + close].parse().ok()
        })
        .collect()
}

#[test]
fn guest_lines_are_found_inside_other_lines() {
    let log = "(d3) [    2.89] tinyvm: up\n\
               [    2.96] dom0: xenapi: PVH build of many-4,(d3) [    2.97] tinyvm: ready\n\
               [    9.28] dom0: DEBUG [many-0] tinyvm: ready\n\
               (d53) [   15.95] tinyvm: ready, watching control/shutdown\n";
    assert_eq!(guest_lines(log, "tinyvm: up"), [3]);
    assert_eq!(guest_lines(log, "tinyvm: ready"), [3, 53]);
}
