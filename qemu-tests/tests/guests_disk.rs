//! A guest's own disk, end to end on real Xen: a Debian Linux PVH guest
//! booted through PyPI's XenAPI (through netdom) with a VBD on a VDI of
//! stordom's SR. Linux's own xen-blkfront connects to stordom's blkback;
//! the guest makes an ext4 filesystem on `/dev/xvda`, writes a random file
//! and fifty small ones, syncs, checks the filesystem with `e2fsck` and
//! shuts down cleanly. QEMU is then stopped and started again on the same
//! disk file: the VM and its VDI are still in XenAPI, the guest boots
//! again, `e2fsck` finds the filesystem clean and every file reads back
//! with its sha256.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{python_with_xenapi, shipped_launch_with_guests};
use xcp_qemu_tests::linux::{disk_guest, PY_CONSOLE, PY_NET};
use xcp_qemu_tests::{Artifacts, Run};

/// The documented default password of the shipped platform.toml.
const PASSWORD: &str = "xcp-rs";

const CLIENT: &str = r#"
import re, sys, time
import XenAPI
url, pw, mode = sys.argv[1:4]

s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-disk-qemu-test")
x = s.xenapi
pool = x.pool.get_all()[0]
sr = x.pool.get_default_SR(pool)

def halt(vm):
    x.VM.clean_shutdown(vm)
    deadline = time.monotonic() + 120
    while x.VM.get_power_state(vm) != "Halted":
        assert time.monotonic() < deadline, x.VM.get_power_state(vm)
        time.sleep(0.5)

def boot(vm):
    x.VM.start(vm, False, False)
    c = Console(s, url, vm)
    c.read_until(b"guest: ready", 300)
    m = re.search(rb"guest: disk (\d+)", c.seen)
    assert m, c.seen[-2000:]
    print("DISK guest sees", int(m.group(1)), "sectors", flush=True)
    assert int(m.group(1)) == (256 << 20) // 512, m.group(1)
    vbd = x.VM.get_VBDs(vm)[0]
    assert x.VBD.get_currently_attached(vbd)
    return c

if mode == "make":
    vm = linux_vm(x, "disk-guest")
    vdi = x.VDI.create({
        "name_label": "disk-guest-root", "name_description": "", "SR": sr,
        "virtual_size": str(256 << 20), "type": "user", "sharable": False,
        "read_only": False, "other_config": {},
    })
    x.VBD.create({
        "VM": vm, "VDI": vdi, "userdevice": "0", "bootable": False, "mode": "RW",
        "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
        "qos_algorithm_type": "", "qos_algorithm_params": {},
    })
    c = boot(vm)
    must(c, "mkfs.ext4 -q -F /dev/xvda", 300)
    must(c, "mount -t ext4 /dev/xvda /mnt", 60)
    out = must(c, "dd if=/dev/urandom of=/mnt/blob bs=1M count=16 2>/dev/null && sha256sum /mnt/blob | tee /mnt/blob.sum", 300)
    made = re.findall(rb"([0-9a-f]{64})  /mnt/blob", out)[-1].decode()
    must(c, "mkdir /mnt/d && for i in $(seq 1 50); do echo file $i > /mnt/d/f$i; done", 120)
    must(c, "sync && umount /mnt", 120)
    must(c, "e2fsck -fn /dev/xvda", 300)
    print("DISK wrote", made, "vm", x.VM.get_uuid(vm), "vdi", x.VDI.get_uuid(vdi), flush=True)
    halt(vm)
else:
    vms = x.VM.get_by_name_label("disk-guest")
    assert len(vms) == 1, vms
    vm = vms[0]
    assert x.VM.get_power_state(vm) == "Halted"
    vdi = x.VBD.get_VDI(x.VM.get_VBDs(vm)[0])
    c = boot(vm)
    must(c, "e2fsck -fn /dev/xvda", 300)
    must(c, "mount -t ext4 /dev/xvda /mnt", 60)
    out = must(c, "sha256sum -c /mnt/blob.sum && cat /mnt/blob.sum", 300)
    kept = re.findall(rb"([0-9a-f]{64})  /mnt/blob", out)[-1].decode()
    out = must(c, "echo files $(( $(ls /mnt/d | wc -l) + 1000 )) && cat /mnt/d/f50", 60)
    assert b"files 1050" in out, out[-500:]
    must(c, "umount /mnt", 60)
    print("DISK found", kept, "vm", x.VM.get_uuid(vm), "vdi", x.VDI.get_uuid(vdi), flush=True)
    halt(vm)
x.session.logout()
print("DISK OK", flush=True)
"#;

/// Boots the platform with the guest files on `disk`, runs the client in
/// `mode`, stops QEMU; returns the client's output.
fn boot(dir: &Path, disk: &Path, guests: &[std::path::PathBuf], mode: &str) -> String {
    let a = Artifacts::from_env();
    let (mut launch, url) = shipped_launch_with_guests(&a, dir, guests);
    launch.timeout_secs = 1200;
    launch.devices.disk = Some(disk.to_path_buf());
    let qemu = Run::start(&format!("guests-disk-{mode}"), &launch);
    qemu.wait_for(&format!("XenAPI ready at {url}"), Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e}\nserial log:\n{}", qemu.lines().join("\n")));
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let script = dir.join("client.py");
    std::fs::write(&script, format!("{PY_CONSOLE}{PY_NET}{CLIENT}")).unwrap();
    let out = Command::new("timeout")
        .arg("900")
        .arg(&py)
        .arg(&script)
        .args([&url, PASSWORD, mode])
        .output()
        .expect("python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = qemu.finish(Duration::from_millis(500));
    assert!(
        out.status.success() && text.contains("DISK OK"),
        "{mode}:\n{text}\nserial log:\n{}",
        outcome.log
    );
    text
}

#[test]
fn a_guest_filesystem_on_its_vbd_survives_a_platform_reboot() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests-disk");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let guests = disk_guest(&dir);
    let disk = dir.join("sr.img");
    assert!(xcp_boot::qemu::sparse_disk(&disk, 2 << 30).expect("disk file"));
    let made = boot(&dir, &disk, &guests, "make");
    let found = boot(&dir, &disk, &guests, "check");
    let field = |text: &str, word: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_once(&format!(" {word} ")))
            .filter_map(|(_, rest)| rest.split(' ').next().map(String::from))
            .collect()
    };
    assert_eq!(
        field(&made, "wrote"),
        field(&found, "found"),
        "{made}\n{found}"
    );
    assert_eq!(field(&made, "vm"), field(&found, "vm"));
    assert_eq!(field(&made, "vdi"), field(&found, "vdi"));
    eprintln!("{made}{found}");
    let _ = std::fs::remove_dir_all(&dir);
}
