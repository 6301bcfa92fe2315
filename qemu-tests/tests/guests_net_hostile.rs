//! A guest that writes garbage into its rings is disconnected; the other
//! guests' transfers go on (issue #14).
//!
//! Two Debian Linux PVH guests with VIFs (as `guests_net.rs`, through
//! PyPI's XenAPI) take leases through netdom's bridge and ping each other;
//! A starts fetching a random file from B (busybox `httpd`, sha256
//! checked) in the background. Meanwhile a third VM, a PV guest whose
//! kernel is the test testdom with `netfront-fuzz=<seed>`
//! (`qemu-tests/testdom/src/netfront_fuzz.rs`), connects its VIF, fills its
//! rings with garbage until netdom disconnects it (backend Closing),
//! closes, starts again with fresh rings, three times over; before each
//! round's garbage it sends an ARP request (answered OKAY) and runts and
//! packets with bogus grants, which netdom must answer with errors without
//! disconnecting it.
//!
//! Checked: A's copy of the file has B's sha256; the hostile VM logged its
//! three disconnects (its console is relayed into dom0's log as
//! `[hostile] ...`); netdom logged each (`vif<D>.0: disconnected: <fault>`,
//! one of them an rx ring fault) and never stopped (no `domain netdom ...
//! stopped`, no rebuild); after the hostile VM is shut down A and B still
//! ping each other.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{
    client_output, netdom_xenapi_xenstore_launch, python_with_xenapi, run,
};
use xcp_qemu_tests::linux::{net_guest, netdom_ip, PY_CONSOLE, PY_NET};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "hostile-pw";
/// MiB B serves to A while the hostile VM fuzzes.
const BLOB_MIB: u32 = 32;
/// The fuzzer's seed (a failing seed replays: the garbage is the same).
const SEED: u64 = 14;
/// The hostile VM's name (its console lines in dom0's log start with it).
const HOSTILE: &str = "hostile";

const CLIENT: &str = r#"
import re, sys, time
import XenAPI
url, pw, netdom_ip, blob_mib, seed, hostile = sys.argv[1:7]

s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-net-hostile-qemu-test")
x = s.xenapi
net = x.network.get_all()[0]

guests = {}
for name in ("net-a", "net-b"):
    vm = linux_vm(x, name)
    v = net_vif(x, net, vm, "0")
    x.VM.start(vm, False, False)
    guests[name] = (vm, v, x.VIF.get_MAC(v))

a, a_ip = net_ready(s, url, *guests["net-a"], "net-a")
b, b_ip = net_ready(s, url, *guests["net-b"], "net-b")
must(a, f"ping -c 3 -W 5 {b_ip}", 60)
print("A pinged B")

out = must(b, f"mkdir -p /www && dd if=/dev/urandom of=/www/blob bs=1M count={blob_mib} 2>/dev/null && echo \"SUM-$((0))-$(sha256sum /www/blob | cut -c1-64)\" && httpd -p 8080 -h /www", 300)
b_sum = re.search(rb"SUM-0-([0-9a-f]{64})", out).group(1).decode()
# The transfer runs in the background while the hostile VM comes and goes
# (`& true`: run_in appends `; echo ...`, and `&;` would end the guest's
# shell, its pid 1).
must(a, f"rm -f /tmp/got /tmp/got.rc; (wget -q -O - http://{b_ip}:8080/blob | sha256sum | cut -c1-64 > /tmp/got; echo $? > /tmp/got.rc) </dev/null >/dev/null 2>&1 & true", 30)
start = time.monotonic()
print(f"A fetches {blob_mib} MiB from B in the background")

mib = str(32 << 20)
hvm = x.VM.create({
    "name_label": hostile, "domain_type": "pv",
    "PV_kernel": "/boot/guest/testdom.elf", "PV_args": f"netfront-fuzz={seed}",
    "memory_static_max": mib, "memory_dynamic_max": mib,
    "memory_dynamic_min": mib, "memory_static_min": mib,
    "VCPUs_max": "1", "VCPUs_at_startup": "1",
    "actions_after_crash": "preserve",
})
hv = net_vif(x, net, hvm, "0")
x.VM.start(hvm, False, False)
h = Console(s, url, hvm)
h.read_until(re.compile(rb"netfront-fuzz: (done, \d+ disconnects|gave up)"), 300)
lines = [l.strip() for l in h.seen.decode(errors="replace").splitlines() if "netfront-fuzz:" in l]
for l in lines:
    print("hostile:", l)
h.close()
out, _ = run_in(a, "echo \"RUNNING-$((0))-$([ -e /tmp/got.rc ] && echo no || echo yes)\"", 30)
running = re.search(rb"RUNNING-0-(\w+)", out).group(1).decode()
print(f"the fuzzer was done after {time.monotonic() - start:.1f} s; A's transfer still running then: {running}")
assert any("done, 3 disconnects" in l for l in lines), lines
x.VM.hard_shutdown(hvm)
print("hostile VM shut down:", x.VM.get_power_state(hvm))

out = must(a, "for i in $(seq 1 900); do [ -e /tmp/got.rc ] && break; sleep 1; done; echo \"GOT-$((0))-$(cat /tmp/got)-\"", 960)
took = time.monotonic() - start
a_sum = re.search(rb"GOT-0-([0-9a-f]*)-", out).group(1).decode()
print(f"A fetched {blob_mib} MiB from B in {took:.1f} s: sha256 {'matches' if a_sum == b_sum else 'DIFFERS'}")
assert a_sum == b_sum, (a_sum, b_sum)

must(a, f"ping -c 3 -W 5 {b_ip}", 60)
must(b, f"ping -c 3 -W 5 {a_ip}", 60)
print("after the hostile VM: A and B still ping each other")

a.close()
b.close()
for name, (vm, v, mac) in guests.items():
    x.VM.clean_shutdown(vm)
    assert x.VM.get_power_state(vm) == "Halted"
print("both guests shut down")
s.xenapi.session.logout()
print("CLIENT OK")
"#;

#[test]
fn a_fuzzed_netfront_is_disconnected_and_the_other_guests_go_on() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let case = "guests-net-hostile";
    let dir = a.scratch(case);
    let [vmlinuz, initrd] = net_guest(&dir);
    // The test testdom (with `netfront-fuzz`) as the hostile VM's kernel,
    // /boot/guest/testdom.elf.
    let testdom = dir.join("testdom.elf");
    std::fs::copy(a.path("testdom-test.elf"), &testdom).unwrap();
    let (mut launch, url) =
        netdom_xenapi_xenstore_launch(&a, &dir, PASSWORD, &[vmlinuz, initrd, testdom]);
    launch.memory_mib = 2048;
    launch.timeout_secs = 1500;
    let qemu = Run::start(case, &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(200));
    let netdom_ip = netdom_ip(&qemu.lines());
    let client = ready.as_ref().ok().map(|_| {
        run(
            Command::new(&py).args([
                "-c",
                &format!("{PY_CONSOLE}{PY_NET}{CLIENT}"),
                &url,
                PASSWORD,
                &netdom_ip,
                &BLOB_MIB.to_string(),
                &SEED.to_string(),
                HOSTILE,
            ]),
            1300,
        )
    });
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    let output = client_output(ready, client, log, "CLIENT OK");
    eprintln!("client output:\n{output}");
    assert!(output.contains("sha256 matches"), "{output}");
    assert!(output.contains("still ping each other"), "{output}");
    let excerpt = || xcp_qemu_tests::excerpt(log);
    // The hostile VM's own account, relayed into dom0's log.
    let prefix = format!("[{HOSTILE}] ");
    let hostile: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&prefix) && l.contains("netfront-fuzz:"))
        .collect();
    let thrown_out = hostile
        .iter()
        .filter(|l| l.contains("netfront-fuzz: backend disconnected us (state 5)"))
        .count();
    assert_eq!(thrown_out, 3, "{}", hostile.join("\n"));
    // Before each round's garbage, wrong but legal packets were answered
    // with errors and the VIF stayed up.
    let survived = hostile
        .iter()
        .filter(|l| l.contains("answered with errors, still connected"))
        .count();
    assert_eq!(survived, 3, "{}", hostile.join("\n"));
    assert!(
        hostile
            .iter()
            .any(|l| l.contains("netfront-fuzz: done, 3 disconnects")),
        "{}",
        hostile.join("\n")
    );
    // netdom's account: each disconnect, with the engine's fault.
    let netdom: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[netdom]") && l.contains(": disconnected: "))
        .collect();
    eprintln!("netdom:\n{}", netdom.join("\n"));
    assert_eq!(netdom.len(), 3, "{}", excerpt());
    // Round 2 starts with garbage in the rx ring, found when QEMU's
    // gateway answers the fuzzer's ARP request; the others break tx.
    assert!(
        netdom.iter().any(|l| l.contains("disconnected: RxRing(")),
        "{}",
        excerpt()
    );
    assert!(
        netdom.iter().any(|l| l.contains("disconnected: Tx(")),
        "{}",
        excerpt()
    );
    // netdom never stopped: dom0 would have said so (and rebuilt it).
    assert!(
        !log.lines().any(|l| {
            (l.contains("domain netdom (domid") && l.contains("stopped"))
                || l.contains("rebuilt netdom")
        }),
        "{}",
        excerpt()
    );
}
