//! netdom crashed under guest traffic: two Debian Linux PVH guests with
//! VIFs (through XenAPI, on the shipped platform as `cargo xtask run`
//! boots it), A fetching 64 MiB from B over TCP through netdom's bridge.
//! Mid-transfer the operator crashes netdom on dom0's console; dom0
//! rebuilds it under its old domid and writes the VIFs' backend
//! directories again; the new netdom takes the frontends over in place
//! (their grants and event channels name that domid; their rings resume
//! after the last response the old netdom published). Linux's netfront
//! never leaves Connected, the interface and its address stay, and the
//! transfer completes with the right sha256. The XenAPI session survives
//! (the console attachments, TCP connections through netdom, are made
//! again).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{python_with_xenapi, shipped_launch_with_guests, Peer};
use xcp_qemu_tests::linux::{net_guest, PY_CONSOLE, PY_NET};
use xcp_qemu_tests::{Artifacts, Run};

/// The shipped platform's root password (boot/platform.toml).
const PASSWORD: &str = "xcp-rs";

const CLIENT: &str = r#"
import re, sys, time
import XenAPI
url, pw = sys.argv[1:3]
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-net-restart")
x = s.xenapi
net = x.network.get_all()[0]
guests = {}
for name in ("rs-a", "rs-b"):
    vm = linux_vm(x, name)
    v = net_vif(x, net, vm, "0")
    x.VM.start(vm, False, False)
    guests[name] = (vm, v, x.VIF.get_MAC(v))
vms = {name: g[0] for name, g in guests.items()}

def ready(name):
    return net_ready(s, url, *guests[name], name)

a, a_ip = ready("rs-a")
b, b_ip = ready("rs-b")
# Markers are computed by the guest's shell: the console's echo of the
# typed line never matches them.
b.send(b"mkdir -p /www && dd if=/dev/urandom of=/www/blob bs=1M count=64 2>/dev/null && echo \"SUM-$((0))-$(sha256sum /www/blob | cut -c1-64)\" && httpd -p 8080 -h /www && echo \"SERVING-$((0))\"\r")
b.read_until(re.compile(rb"SERVING-0"), 300)
b_sum = re.search(rb"SUM-0-([0-9a-f]{64})", b.seen).group(1).decode()
a.send(f"(echo \"XSTART-$((0))\"; wget -q -O - http://{b_ip}:8080/blob | sha256sum > /tmp/got; echo \"XDONE-$((0))-$(cut -c1-64 /tmp/got)\") &\r".encode())
a.read_until(re.compile(rb"XSTART-0"), 60)
# Progress on the console every 5 s (and a console that never idles).
a.send(b"(while sleep 5; do echo \"rx-bytes $(cat /sys/class/net/eth0/statistics/rx_bytes) tx-bytes $(cat /sys/class/net/eth0/statistics/tx_bytes)\"; done) &\r")
time.sleep(3)
print("TRANSFER STARTED", flush=True)
a.close()
b.close()
# The test crashes netdom now and says "go" once XenAPI is back.
assert sys.stdin.readline().strip() == "go"
deadline = time.monotonic() + 900
while True:
    try:
        a = Console(s, url, vms["rs-a"])
        break
    except Exception as e:
        if time.monotonic() > deadline:
            raise
        print("console not back yet:", e, flush=True)
        time.sleep(2)
a.read_until(re.compile(rb"XDONE-0-[0-9a-f]*"), 240)
got = re.search(rb"XDONE-0-([0-9a-f]*)", a.seen).group(1).decode()
print("transfer across the netdom crash:", "sha256 matches" if got == b_sum else f"DIFFERS {got} {b_sum}", flush=True)
assert got == b_sum, (got, b_sum)
a.send(f"ping -c 2 -W 5 {b_ip} >/dev/null; echo \"PING-$((0))-rc$?\"\r".encode())
a.read_until(re.compile(rb"PING-0-rc\d"), 60)
assert b"PING-0-rc0" in a.seen, a.seen[-500:]
print("A still pings B")
for vm in vms.values():
    x.VM.clean_shutdown(vm)
x.session.logout()
print("CLIENT OK", flush=True)
"#;

#[test]
fn a_transfer_between_guests_survives_a_netdom_crash() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let case = "guests-net-restart";
    let dir = a.scratch(case);
    let (mut launch, url) = shipped_launch_with_guests(&a, &dir, &net_guest(&dir));
    launch.memory_mib = 2048;
    launch.timeout_secs = 1500;
    let qemu = Run::start(case, &launch);
    let ready = format!("XenAPI ready at {url}");
    let step = |what: &str, r: Result<String, String>| {
        r.unwrap_or_else(|e| panic!("{what}: {e}\nserial log:\n{}", qemu.lines().join("\n")))
    };
    step(
        "XenAPI ready",
        qemu.wait_for(&ready, Duration::from_secs(200)),
    );
    let mut client = Command::new(&py);
    client.args([
        "-c",
        &format!("{PY_CONSOLE}{PY_NET}{CLIENT}"),
        &url,
        PASSWORD,
    ]);
    let mut peer = Peer::spawn("guests", &client, 1400);
    step(
        "the transfer runs",
        peer.wait_for("TRANSFER STARTED", Duration::from_secs(600)),
    );
    qemu.type_line("crash netdom").unwrap();
    let rebuilt = step(
        "dom0 rebuilds netdom",
        qemu.wait_for("rebuilt netdom as domid", Duration::from_secs(120)),
    );
    step(
        "the VIFs go to the new netdom",
        qemu.wait_for(
            "guest VIF(s) handed to the rebuilt netdom",
            Duration::from_secs(60),
        ),
    );
    step(
        "XenAPI is back",
        qemu.wait_for_nth(&ready, 2, Duration::from_secs(120)),
    );
    peer.answer("go").unwrap();
    let done = peer.wait_for("CLIENT OK", Duration::from_secs(1000));
    let (ok, out) = peer.finish(Duration::from_secs(30));
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    std::fs::write(dir.join("serial.log"), log).unwrap();
    eprintln!("client output:\n{out}\n(serial log in {})", dir.display());
    assert!(
        done.is_ok() && ok,
        "client:\n{out}\n{}",
        xcp_qemu_tests::excerpt(log)
    );
    assert!(out.contains("sha256 matches"), "{out}");
    // Rebuilt under the domid it had: the one the first build logged.
    let first = log
        .lines()
        .find_map(|l| l.split("built netdom as domid ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .expect("netdom's first build");
    let again = rebuilt
        .split("rebuilt netdom as domid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("domid");
    assert_eq!(first, again, "{rebuilt}");
}
