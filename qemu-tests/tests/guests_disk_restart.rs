//! stordom crashed while a guest writes to its disk: a Debian PVH guest
//! with a VBD on stordom's SR makes ext4 and starts writing files, each
//! `fsync`ed, noting each one's sha256 once the write returned; the
//! operator crashes stordom on dom0's console in the middle. dom0 rebuilds
//! stordom under its old domid and writes the guest's VBD directory again;
//! the new stordom finds blkfront still Connected, takes its ring over
//! where the old one stopped answering, and the guest's writes go on (the
//! requests the old stordom took but never answered are done again). Every
//! file the guest saw written reads back with its sha256, and `e2fsck`
//! finds the filesystem clean.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{python_with_xenapi, shipped_launch_with_guests, Peer};
use xcp_qemu_tests::linux::{disk_guest, PY_CONSOLE, PY_NET};
use xcp_qemu_tests::{Artifacts, Run};

/// The documented default password of the shipped platform.toml.
const PASSWORD: &str = "xcp-rs";

const CLIENT: &str = r#"
import re, sys, time
import XenAPI
url, pw = sys.argv[1], sys.argv[2]

s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-disk-restart-test")
x = s.xenapi
sr = x.pool.get_default_SR(x.pool.get_all()[0])
vm = linux_vm(x, "disk-writer")
vdi = x.VDI.create({
    "name_label": "disk-writer-root", "name_description": "", "SR": sr,
    "virtual_size": str(256 << 20), "type": "user", "sharable": False,
    "read_only": False, "other_config": {},
})
x.VBD.create({
    "VM": vm, "VDI": vdi, "userdevice": "0", "bootable": False, "mode": "RW",
    "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
    "qos_algorithm_type": "", "qos_algorithm_params": {},
})
x.VM.start(vm, False, False)
c = Console(s, url, vm)
c.read_until(b"guest: ready", 300)
must(c, "mkfs.ext4 -q -F /dev/xvda && mount -t ext4 /dev/xvda /mnt", 300)
# A writer in the background (the shell still reads the console): each
# file is written and fsync'd (dd conv=fsync), and only then its sum is
# noted (and that note fsync'd too). The markers are computed by the
# guest's shell, so the console's echo of this line never matches them.
c.send((
    "( for i in $(seq 1 300); do "
    "dd if=/dev/urandom of=/mnt/f$i bs=64k count=8 conv=fsync 2>/dev/null || break; "
    "sha256sum /mnt/f$i >> /mnt/acked; sync /mnt/acked; "
    "echo \"WROTE-$((i + 1000))\"; done; echo \"WRITER-$((7 * 11))-END\" ) &\r"
).encode())
c.read_until(b"WROTE-1005", 300)
print("RESTART crash now", flush=True)
sys.stdin.readline()
c.read_until(b"WRITER-77-END", 900)
done = len(re.findall(rb"WROTE-1\d\d\d", c.seen))
print("RESTART the guest wrote", done, "files", flush=True)
assert done == 300, (done, c.seen[-3000:])
out = must(c, "sha256sum -c /mnt/acked >/dev/null && echo sums $(( $(wc -l < /mnt/acked) + 1000 ))", 300)
assert f"sums {1000 + done}".encode() in out, out[-800:]
must(c, "umount /mnt && e2fsck -fn /dev/xvda", 300)
x.VM.clean_shutdown(vm)
print("RESTART OK", flush=True)
"#;

#[test]
fn a_guest_writing_rides_out_a_stordom_crash() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests-disk-restart");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let guests = disk_guest(&dir);
    let disk = dir.join("sr.img");
    assert!(xcp_boot::qemu::sparse_disk(&disk, 2 << 30).expect("disk file"));
    let a = Artifacts::from_env();
    let (mut launch, url) = shipped_launch_with_guests(&a, &dir, &guests);
    launch.timeout_secs = 1500;
    launch.devices.disk = Some(disk);
    let qemu = Run::start("guests-disk-restart", &launch);
    let step = |what: &str, r: Result<String, String>| {
        r.unwrap_or_else(|e| panic!("{what}: {e}\nserial log:\n{}", qemu.lines().join("\n")))
    };
    step(
        "XenAPI ready",
        qemu.wait_for(&format!("XenAPI ready at {url}"), Duration::from_secs(180)),
    );
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let script = dir.join("client.py");
    std::fs::write(&script, format!("{PY_CONSOLE}{PY_NET}{CLIENT}")).unwrap();
    let mut cmd = Command::new(&py);
    cmd.arg(&script).args([url.as_str(), PASSWORD]);
    let mut client = Peer::spawn("guests_disk_restart client", &cmd, 1200);
    step(
        "the guest writes",
        client.wait_for("RESTART crash now", Duration::from_secs(900)),
    );
    qemu.type_line("crash stordom").unwrap();
    step(
        "dom0 rebuilds stordom",
        qemu.wait_for("rebuilt stordom as domid", Duration::from_secs(120)),
    );
    client.answer("go").unwrap();
    let ok = client.wait_for("RESTART OK", Duration::from_secs(900));
    let (fine, out) = client.finish(Duration::from_secs(60));
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    assert!(
        ok.is_ok() && fine,
        "{ok:?}\nclient:\n{out}\nserial log:\n{log}"
    );
    for marker in [
        "restarting stordom with the disk",
        "guest VBD(s) handed to the rebuilt stordom",
    ] {
        assert!(log.contains(marker), "{marker:?}:\n{log}");
    }
    // The crash came in the middle of the writes: dom0 relays the guest's
    // console into the serial log (a little late: it drains consoles
    // between events), so files show up both before the old stordom
    // stopped and after the new one took the ring over.
    let lines: Vec<&str> = log.lines().collect();
    let at = |marker: &str| {
        lines
            .iter()
            .position(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no {marker:?}:\n{log}"))
    };
    let (crashed, rebuilt) = (at("domain stordom (domid"), at("rebuilt stordom as domid"));
    let wrote = |range: &[&str]| range.iter().filter(|l| l.contains("] WROTE-1")).count();
    let before = wrote(&lines[..crashed]);
    let after = wrote(&lines[rebuilt..]);
    eprintln!("files written before the crash: {before}, after the rebuild: {after}");
    assert!(
        before >= 1 && after >= 5,
        "{before} before, {after} after:\n{log}"
    );
    eprintln!("{out}");
    for line in log
        .lines()
        .filter(|l| l.contains("stordom") && !l.contains("DEBUG"))
    {
        eprintln!("{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
