//! A guest that boots from its own disk, as an orchestrator makes one, on
//! real Xen, driven by a stock client (PyPI XenAPI and Python's
//! http.client, through netdom):
//!
//! - A bootable disk image made at test time (MBR, ext4, Debian's kernel,
//!   an initramfs, `/boot/grub/grub.cfg` with a random token on the
//!   kernel's command line) is imported with `PUT /import_raw_vdi`.
//! - A VM is cloned from the built-in "Generic Linux PVH" template and
//!   provisioned (its template's 8 GiB disk, empty), gets the imported VDI
//!   as a second disk and a VIF with an empty MAC, and starts.
//! - GRUB (`PV_bootloader` "pygrub": the bundle's `i386-xen_pvh` image)
//!   reads the guest's grub.cfg through stordom's blkback and boots the
//!   guest's kernel; the guest sees the token, takes a DHCP lease, pings
//!   netdom, writes a file to its disk and reports its address in xenstore
//!   as xe-guest-utilities does, which the client reads back from
//!   `VM_guest_metrics`.
//! - A CD drive plugged empty into the running guest gets a medium with
//!   `VBD.insert` (the guest sees the drive and reads the medium) and
//!   loses it with `VBD.eject` (the drive leaves the guest).
//! - The guest shuts down cleanly; the client saw every power state change
//!   through `event.from`, and the file the guest wrote is in the VDI it
//!   exports.
//! - Snapshot, change the disk, revert, boot: the change is gone. Clone:
//!   both VMs boot at once, each sees its own writes only. The clone boots
//!   again as a PV guest, through GRUB's `x86_64-xen` image.
//! - That VM made a template, Xen Orchestra's New-VM sequence through its
//!   unmodified npm `xen-api` client (`tests/clients/xo_create_vm.mjs`)
//!   makes a VM of it that boots from its cloned disk and reports its
//!   address.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{free_port, node_modules_with_xen_api, python_with_xenapi, Peer};
use xcp_qemu_tests::linux::{bootable_disk, netdom_ip, PY_CONSOLE, PY_NET};
use xcp_qemu_tests::{Artifacts, Run};

/// The documented default password of the shipped platform.toml.
const PASSWORD: &str = "xcp-rs";

/// Python helpers for the clients of guests that boot from their disks:
/// `import_image(x, sid, url, sr, path, name)` makes a VDI of the image's
/// size and PUTs the image into it; `export_file(sid, url, vdi, out,
/// name)` GETs the VDI and reads file `name` from its first partition's
/// ext4 with debugfs; `Events(url, pw)` follows `event.from` for VMs on a
/// session of its own (`.states(vm)`: the power states it saw, in order);
/// `from_template(x, name, sr)` clones "Generic Linux PVH" and provisions
/// it (256 MiB).
pub const PY_DISK_BOOT: &str = r#"
import http.client as _http, subprocess as _sp, threading as _threading, urllib.parse as _up, os as _os, time as _time
import XenAPI as _XenAPI

def import_image(x, sid, url, sr, path, name):
    size = _os.path.getsize(path)
    vdi = x.VDI.create({"name_label": name, "name_description": "", "SR": sr,
        "virtual_size": str(size), "type": "user", "sharable": False,
        "read_only": False, "other_config": {}})
    u = _up.urlparse(url)
    c = _http.HTTPConnection(u.hostname, u.port, timeout=900)
    c.putrequest("PUT", "/import_raw_vdi?" + _up.urlencode({"session_id": sid, "vdi": vdi, "format": "raw"}))
    c.putheader("Content-Length", str(size))
    c.endheaders()
    with open(path, "rb") as f:
        while True:
            b = f.read(256 * 1024)
            if not b:
                break
            c.send(b)
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, (r.status, body[:300])
    return vdi

def export_file(sid, url, vdi, out, name):
    u = _up.urlparse(url)
    c = _http.HTTPConnection(u.hostname, u.port, timeout=900)
    c.request("GET", "/export_raw_vdi?" + _up.urlencode({"session_id": sid, "vdi": vdi, "format": "raw"}))
    r = c.getresponse()
    assert r.status == 200, r.status
    with open(out, "wb") as f:
        # The first partition starts at 1 MiB.
        skip = 1 << 20
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            if skip:
                cut = min(skip, len(b))
                b, skip = b[cut:], skip - cut
            f.write(b)
    c.close()
    got = _sp.run(["debugfs", "-R", f"cat {name}", out], capture_output=True)
    return got.stdout

class Events:
    def __init__(self, url, pw):
        self.s = _XenAPI.Session(url)
        self.s.xenapi.login_with_password("root", pw, "1.0", "disk-boot-events")
        self.seen = []
        self.token = ""
        _threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            r = getattr(self.s.xenapi.event, "from")(["vm"], self.token, 30.0)
            self.token = r["token"]
            for ev in r["events"]:
                snap = ev.get("snapshot") or {}
                if ev["operation"] in ("add", "mod") and "power_state" in snap:
                    self.seen.append((ev["ref"], snap["power_state"]))

    def states(self, vm):
        out = []
        for ref, state in self.seen:
            if ref == vm and (not out or out[-1] != state):
                out.append(state)
        return out

def from_template(x, name, sr):
    t = [v for v in x.VM.get_by_name_label("Generic Linux PVH") if x.VM.get_is_a_template(v)][0]
    vm = x.VM.clone(t, name)
    x.VM.provision(vm)
    x.VM.set_memory_limits(vm, str(256 << 20), str(256 << 20), str(256 << 20), str(256 << 20))
    x.VM.set_VCPUs_max(vm, "1")
    x.VM.set_VCPUs_at_startup(vm, "1")
    return vm

def attach(x, vm, vdi, device):
    return x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": device, "bootable": True,
        "mode": "RW", "type": "Disk", "empty": False, "other_config": {},
        "qos_algorithm_type": "", "qos_algorithm_params": {}})
"#;

const CLIENT: &str = r#"
import os, re, subprocess, sys, time
import XenAPI
url, pw, netdom_ip, image, token, work, node_modules, xo_script = sys.argv[1:9]
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "disk-boot-qemu-test")
x = s.xenapi
sid = s._session
sr = x.pool.get_default_SR(x.pool.get_all()[0])
events = Events(url, pw)

vdi = import_image(x, sid, url, sr, image, "boot disk")
print("imported the boot disk:", x.VDI.get_virtual_size(vdi), "bytes")
vm = from_template(x, "disk-boot", sr)
print("cloned and provisioned:", x.VM.get_name_label(vm), "PV_bootloader", x.VM.get_PV_bootloader(vm),
      "disks", [x.VBD.get_userdevice(b) for b in x.VM.get_VBDs(vm)])
assert x.VM.get_PV_bootloader(vm) == "pygrub" and x.VM.get_PV_kernel(vm) == ""
attach(x, vm, vdi, "1")
net = x.network.get_all()[0]
v = net_vif(x, net, vm, "0")
mac = x.VIF.get_MAC(v)
x.VM.start(vm, False, False)
c, ip = net_ready(s, url, vm, v, mac, "disk-boot")
line = re.search(rb"guest: cmdline ([^\r\n]*)", c.seen).group(1).decode()
print("the guest's command line:", line)
assert f"xcp_token={token}" in line, line
disks = re.search(rb"guest: disks ([^\r\n]*)", c.seen).group(1).decode()
print("the guest's disks:", disks)
assert "xvda" in disks and "xvdb" in disks, disks

must(c, f"ping -c 3 -W 5 {netdom_ip}", 60)
print("the guest pinged netdom at", netdom_ip)
must(c, "mount /dev/xvdb1 /mnt && echo \"written by $(cat /proc/sys/kernel/random/boot_id)\" > /mnt/written && cat /mnt/written && umount /mnt && sync", 120)
boot_id = re.search(rb"written by ([0-9a-f-]{36})", c.seen).group(1).decode()
print("the guest wrote /written on its boot disk:", boot_id)

deadline = time.monotonic() + 60
nets = {}
while time.monotonic() < deadline:
    gm = x.VM.get_guest_metrics(vm)
    if gm != "OpaqueRef:NULL":
        nets = x.VM_guest_metrics.get_networks(gm)
        if ip in nets.values():
            break
    time.sleep(1)
print("VM_guest_metrics networks", nets)
assert ip in nets.values(), (ip, nets)
gm = x.VM.get_guest_metrics(vm)
osv = x.VM_guest_metrics.get_os_version(gm)
print("VM_guest_metrics os_version", osv, "PV drivers", x.VM_guest_metrics.get_PV_drivers_version(gm))
assert "Debian" in osv.get("name", ""), osv

# A CD drive on the running guest: plugged empty (no device: a PV or PVH
# guest has no emulated drive), a medium inserted (the drive appears and
# reads the medium), ejected (the drive goes), unplugged.
cd_token = "xcp-cd-" + token
medium_path = f"{work}/cd-medium.raw"
with open(medium_path, "wb") as f:
    f.write((cd_token + "\n").encode().ljust(1 << 20, b"\0"))
medium = import_image(x, sid, url, sr, medium_path, "cd medium")
cd = x.VBD.create({"VM": vm, "VDI": "OpaqueRef:NULL", "userdevice": "3", "bootable": False,
    "mode": "RO", "type": "CD", "empty": True, "other_config": {},
    "qos_algorithm_type": "", "qos_algorithm_params": {}})
x.VBD.plug(cd)
assert x.VBD.get_currently_attached(cd) and x.VBD.get_empty(cd)
xvdd = "echo \"CD-$((1))-$([ -e /sys/block/xvdd ] && echo yes || echo no)\""
out = must(c, xvdd, 30)
assert re.search(rb"CD-1-no", out), out[-300:]
x.VBD.insert(cd, medium)
assert x.VBD.get_VDI(cd) == medium and not x.VBD.get_empty(cd)
out = must(c, "for i in $(seq 120); do [ -e /sys/block/xvdd ] && break; sleep 0.5; done; "
              "head -c 64 /dev/xvdd | head -n 1", 90)
assert cd_token.encode() in out, out[-300:]
print("VBD.insert: the running guest read the medium:", cd_token)
x.VBD.eject(cd)
assert x.VBD.get_empty(cd) and x.VBD.get_VDI(cd) == "OpaqueRef:NULL"
out = must(c, "for i in $(seq 120); do [ -e /sys/block/xvdd ] || break; sleep 0.5; done; " + xvdd, 90)
assert re.search(rb"CD-1-no", out), out[-300:]
print("VBD.eject: the drive left the running guest")
x.VBD.unplug(cd)
x.VBD.destroy(cd)
x.VDI.destroy(medium)

c.close()
x.VM.clean_shutdown(vm)
assert x.VM.get_power_state(vm) == "Halted"
deadline = time.monotonic() + 30
while time.monotonic() < deadline and events.states(vm)[-1:] != ["Halted"]:
    time.sleep(0.5)
print("power states seen through event.from:", events.states(vm))
states = events.states(vm)
assert states[0] == "Halted" and "Running" in states and states[-1] == "Halted", states

got = export_file(sid, url, vdi, f"{work}/exported.part", "/written")
print("exported /written:", got)
assert got.decode().strip() == f"written by {boot_id}", got

def boot(vm, name):
    x.VM.start(vm, False, False)
    v = x.VM.get_VIFs(vm)[0]
    c, _ = net_ready(s, url, vm, v, x.VIF.get_MAC(v), name)
    must(c, "mount /dev/xvdb1 /mnt", 60)
    return c

def halt(vm, c):
    must(c, "umount /mnt && sync", 60)
    c.close()
    x.VM.clean_shutdown(vm)
    assert x.VM.get_power_state(vm) == "Halted"

def has(c, path):
    out = must(c, f"echo \"HAS-$((1))-$([ -e {path} ] && echo yes || echo no)\"", 30)
    return re.search(rb"HAS-1-(yes|no)", out).group(1) == b"yes"

# Snapshot, change the disk, revert, boot: the change is gone.
snap = x.VM.snapshot(vm, "before the change")
assert x.VM.get_is_a_snapshot(snap) and x.VM.get_snapshot_of(snap) == vm
assert snap in x.VM.get_snapshots(vm)
c = boot(vm, "disk-boot")
must(c, "echo changed > /mnt/changed", 30)
assert has(c, "/mnt/changed") and has(c, "/mnt/written")
halt(vm, c)
x.VM.revert(snap)
c = boot(vm, "disk-boot")
assert not has(c, "/mnt/changed"), "the change survived the revert"
assert has(c, "/mnt/written")
print("snapshot, change, revert, boot: the change is gone, the earlier write is there")
halt(vm, c)

# Clone: both boot at once, each sees its own writes only.
clone = x.VM.clone(vm, "disk-boot-clone")
if x.VM.get_is_a_template(clone):
    x.VM.provision(clone)
mac_a = x.VIF.get_MAC(x.VM.get_VIFs(vm)[0])
mac_b = x.VIF.get_MAC(x.VM.get_VIFs(clone)[0])
assert mac_a != mac_b, (mac_a, mac_b)
a = boot(vm, "disk-boot")
b = boot(clone, "disk-boot-clone")
must(a, "echo a > /mnt/mine-a && sync", 30)
must(b, "echo b > /mnt/mine-b && sync", 30)
assert has(a, "/mnt/mine-a") and not has(a, "/mnt/mine-b")
assert has(b, "/mnt/mine-b") and not has(b, "/mnt/mine-a")
assert has(b, "/mnt/written")
print("clone: both VMs booted from their own disks, each sees its own writes only")
halt(vm, a)
halt(clone, b)

# The clone as a PV guest, on its own: GRUB's x86_64-xen image loads the
# same kernel from the same disk. (Alone: a PV and a PVH Linux sharing the
# one vCPU of QEMU's TCG lost the PVH guest's FPU state once.)
x.VM.set_domain_type(clone, "pv")
b = boot(clone, "disk-boot-clone")
out = must(b, "echo \"TYPE-$((1))-$(cat /sys/hypervisor/guest_type 2>/dev/null || echo unknown)-\"", 30)
guest_type = re.search(rb"TYPE-1-(\w+)-", out).group(1).decode()
print("the clone booted again as", guest_type, "through GRUB's PV image")
assert guest_type == "PV", guest_type
assert has(b, "/mnt/mine-b") and not has(b, "/mnt/mine-a")
halt(clone, b)

# Xen Orchestra's New-VM sequence through its npm xen-api client, from a
# template made of this VM: its disks are cloned, GRUB boots the clone.
x.VM.set_is_a_template(vm, True)
xo = subprocess.run(["node", xo_script, url, pw, node_modules, x.VM.get_uuid(vm)],
                    capture_output=True, text=True, timeout=700)
print(xo.stdout + xo.stderr)
assert xo.returncode == 0 and "XO OK" in xo.stdout, xo.returncode
s.xenapi.session.logout()
print("CLIENT OK")
"#;

#[test]
fn a_vm_from_a_template_boots_its_own_disk_with_grub() {
    let a = Artifacts::from_env();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let py = python_with_xenapi(cache);
    let modules = node_modules_with_xen_api(cache);
    let xo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/xo_create_vm.mjs");
    let case = "guests-disk-boot";
    let dir = a.scratch(case);
    // A token only this run's grub.cfg holds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let token = format!("{:016x}", nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let image = bootable_disk(&dir, &token);
    let disk = dir.join("sr.img");
    assert!(xcp_boot::qemu::sparse_disk(&disk, 16 << 30).expect("disk file"));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut launch = a.direct(&format!("xenapi-url={url}"), &a.path("bundle.cpio"));
    launch.memory_mib = 2048;
    launch.timeout_secs = 1400;
    launch.devices.nic = Some(Some(port));
    launch.devices.disk = Some(disk.clone());
    let qemu = Run::start(case, &launch);
    let fail = |what: &str, e: String| -> ! {
        panic!("{what}: {e}\nserial log:\n{}", qemu.lines().join("\n"))
    };
    qemu.wait_for(&format!("XenAPI ready at {url}"), Duration::from_secs(200))
        .unwrap_or_else(|e| fail("XenAPI ready", e));
    let netdom = netdom_ip(&qemu.lines());
    let mut cmd = Command::new(&py);
    cmd.args(["-c", &format!("{PY_CONSOLE}{PY_NET}{PY_DISK_BOOT}{CLIENT}")])
        .args([url.as_str(), PASSWORD, &netdom])
        .arg(&image)
        .arg(&token)
        .arg(&dir)
        .arg(&modules)
        .arg(&xo);
    let client = Peer::spawn("disk-boot client", &cmd, 1200);
    let done = client.wait_for("CLIENT OK", Duration::from_secs(1180));
    let (ok, out) = client.finish(Duration::from_secs(30));
    if done.is_err() || !ok {
        fail("the client", format!("{done:?}\nclient:\n{out}"));
    }
    eprintln!("{out}");
    let outcome = qemu.finish(Duration::from_millis(500));
    assert!(
        outcome.log.contains("boots GRUB from its disk"),
        "{}",
        outcome.log
    );
    assert!(
        !outcome.log.contains("restarting stordom"),
        "{}",
        outcome.log
    );
    let _ = std::fs::remove_dir_all(&dir);
}
