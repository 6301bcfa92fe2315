//! A guest that writes garbage into its blkif ring is disconnected;
//! another guest's disk I/O goes on.
//!
//! A Debian PVH guest with a VBD on stordom's SR (as `guests_disk.rs`,
//! through PyPI's XenAPI) makes ext4 and starts writing files in the
//! background, each `fsync`ed, noting each one's sha256 once the write
//! returned (as `guests_disk_restart.rs`). Meanwhile a second VM, a PV
//! guest whose kernel is the test testdom with `blkfront-fuzz=<seed>`
//! (`qemu-tests/testdom/src/blkfront_fuzz.rs`) and a VBD of its own,
//! connects like a blkfront, does honest I/O (checked), sends wrong but
//! legal requests (each must be answered with an error, the VBD staying
//! connected), then writes garbage into its ring until stordom disconnects
//! it, closes, starts again with a fresh ring, three times over.
//!
//! Checked: the fuzzer finished with at least one disconnect; stordom
//! logged each (`vbd<D>.51712: disconnected: <fault>`, a WARN) and was
//! never rebuilt; the writer wrote every file, each reads back with its
//! sha256, and `e2fsck -fn` finds the filesystem clean.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{python_with_xenapi, shipped_launch_with_guests};
use xcp_qemu_tests::linux::{disk_guest, PY_CONSOLE, PY_NET};
use xcp_qemu_tests::{Artifacts, Run};

/// The documented default password of the shipped platform.toml.
const PASSWORD: &str = "xcp-rs";
/// The fuzzer's seed (a failing seed replays: the garbage is the same).
const SEED: u64 = 15;
/// The hostile VM's name (its console lines in dom0's log start with it).
const HOSTILE: &str = "hostile";
/// Files the writer writes (512 KiB each, fsync'd).
const FILES: u32 = 200;

const CLIENT: &str = r#"
import re, sys, time
import XenAPI
url, pw, seed, hostile, files = sys.argv[1:6]
files = int(files)

s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-disk-hostile-test")
x = s.xenapi
sr = x.pool.get_default_SR(x.pool.get_all()[0])

def disk(vm, name, mib):
    vdi = x.VDI.create({
        "name_label": name, "name_description": "", "SR": sr,
        "virtual_size": str(mib << 20), "type": "user", "sharable": False,
        "read_only": False, "other_config": {},
    })
    x.VBD.create({
        "VM": vm, "VDI": vdi, "userdevice": "0", "bootable": False, "mode": "RW",
        "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
        "qos_algorithm_type": "", "qos_algorithm_params": {},
    })

vm = linux_vm(x, "disk-writer")
disk(vm, "disk-writer-root", 256)
x.VM.start(vm, False, False)
c = Console(s, url, vm)
c.read_until(b"guest: ready", 300)
must(c, "mkfs.ext4 -q -F /dev/xvda && mount -t ext4 /dev/xvda /mnt", 300)
# A writer in the background (the shell still reads the console): each
# file is written and fsync'd, and only then its sum is noted (and that
# note fsync'd too). The markers are computed by the guest's shell, so the
# console's echo of this line never matches them.
c.send((
    f"( for i in $(seq 1 {files}); do "
    "dd if=/dev/urandom of=/mnt/f$i bs=64k count=8 conv=fsync 2>/dev/null || break; "
    "sha256sum /mnt/f$i >> /mnt/acked; sync /mnt/acked; "
    "echo \"WROTE-$((i + 1000))\"; done; echo \"WRITER-$((7 * 11))-END\" ) &\r"
).encode())
c.read_until(b"WROTE-1003", 300)
print("the writer is writing", flush=True)

mib = str(32 << 20)
hvm = x.VM.create({
    "name_label": hostile, "domain_type": "pv",
    "PV_kernel": "/boot/guest/testdom.elf", "PV_args": f"blkfront-fuzz={seed}",
    "memory_static_max": mib, "memory_dynamic_max": mib,
    "memory_dynamic_min": mib, "memory_static_min": mib,
    "VCPUs_max": "1", "VCPUs_at_startup": "1",
    "actions_after_crash": "preserve",
})
disk(hvm, "hostile-disk", 16)
start = time.monotonic()
x.VM.start(hvm, False, False)
h = Console(s, url, hvm)
h.read_until(re.compile(rb"blkfront-fuzz: (done, \d+ disconnects|gave up)"), 300)
lines = [l.strip() for l in h.seen.decode(errors="replace").splitlines() if "blkfront-fuzz:" in l]
for l in lines:
    print("hostile:", l)
h.close()
out, _ = run_in(c, "echo \"ACKED-$((0))-$(wc -l < /mnt/acked)-\"", 60)
acked = int(re.search(rb"ACKED-0-(\d+)-", out).group(1))
print(f"the fuzzer was done after {time.monotonic() - start:.1f} s; the writer had written {acked} of {files} files then", flush=True)
x.VM.hard_shutdown(hvm)
print("hostile VM shut down:", x.VM.get_power_state(hvm), flush=True)

c.read_until(b"WRITER-77-END", 900)
done = len(re.findall(rb"WROTE-1\d\d\d", c.seen))
print("the writer wrote", done, "files", flush=True)
assert done == files, (done, c.seen[-3000:])
out = must(c, "sha256sum -c /mnt/acked >/dev/null && echo sums $(( $(wc -l < /mnt/acked) + 1000 ))", 300)
assert f"sums {1000 + done}".encode() in out, out[-800:]
print("every file reads back with its sha256", flush=True)
must(c, "umount /mnt && e2fsck -fn /dev/xvda", 300)
print("e2fsck -fn: clean", flush=True)
x.VM.clean_shutdown(vm)
x.session.logout()
print("HOSTILE OK", flush=True)
"#;

#[test]
fn a_fuzzed_blkfront_is_disconnected_and_another_guests_disk_goes_on() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests-disk-hostile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let a = Artifacts::from_env();
    let mut guests = disk_guest(&dir).to_vec();
    // The test testdom (with `blkfront-fuzz`) as the hostile VM's kernel,
    // /boot/guest/testdom.elf.
    let testdom = dir.join("testdom.elf");
    std::fs::copy(a.path("testdom-test.elf"), &testdom).unwrap();
    guests.push(testdom);
    let disk = dir.join("sr.img");
    assert!(xcp_boot::qemu::sparse_disk(&disk, 2 << 30).expect("disk file"));
    let (mut launch, url) = shipped_launch_with_guests(&a, &dir, &guests);
    launch.timeout_secs = 1500;
    launch.devices.disk = Some(disk);
    let qemu = Run::start("guests-disk-hostile", &launch);
    qemu.wait_for(&format!("XenAPI ready at {url}"), Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e}\nserial log:\n{}", qemu.lines().join("\n")));
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let script = dir.join("client.py");
    std::fs::write(&script, format!("{PY_CONSOLE}{PY_NET}{CLIENT}")).unwrap();
    let out = Command::new("timeout")
        .arg("1200")
        .arg(&py)
        .arg(&script)
        .args([
            url.as_str(),
            PASSWORD,
            &SEED.to_string(),
            HOSTILE,
            &FILES.to_string(),
        ])
        .output()
        .expect("python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    eprintln!("client output:\n{text}");
    assert!(
        out.status.success() && text.contains("HOSTILE OK"),
        "client:\n{text}\nserial log:\n{log}"
    );
    // The hostile VM's own account, read from its console by the client
    // (dom0 also relays it into the serial log as `[hostile] ...`).
    let hostile: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("hostile: ") && l.contains("blkfront-fuzz:"))
        .collect();
    let all = hostile.join("\n");
    let done: u32 = hostile
        .iter()
        .find_map(|l| l.split_once("blkfront-fuzz: done, "))
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the fuzzer did not finish:\n{all}\nclient:\n{text}"));
    assert!(done >= 1, "{all}");
    let thrown_out = hostile
        .iter()
        .filter(|l| l.contains("backend disconnected us"))
        .count();
    assert_eq!(thrown_out as u32, done, "{all}");
    // Before each round's garbage, honest I/O and wrong but legal requests
    // were answered and the VBD stayed up.
    for marker in ["data checked", "answered with errors, still connected"] {
        let n = hostile.iter().filter(|l| l.contains(marker)).count();
        assert!(n as u32 >= done, "{marker:?}: {n}\n{all}");
    }
    // stordom disconnected the VBD itself: each time the fuzzer read the
    // engine's fault from the backend's `error` key.
    let faults = hostile
        .iter()
        .filter(|l| l.contains("its error key: Ring(") || l.contains("its error key: DuplicateId("))
        .count();
    assert!(faults >= 1, "{all}");
    // stordom was never rebuilt.
    for marker in ["restarting stordom", "rebuilt stordom"] {
        assert!(!log.contains(marker), "{marker:?}:\n{log}");
    }
    // stordom's own account: each disconnect, a WARN with the engine's
    // fault.
    let stordom: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("stordom") && l.contains(".51712: disconnected: "))
        .collect();
    eprintln!("hostile:\n{all}\nstordom:\n{}", stordom.join("\n"));
    assert_eq!(
        stordom.len() as u32,
        done,
        "stordom logged {} of {done} disconnects:\n{}",
        stordom.len(),
        xcp_qemu_tests::excerpt(log)
    );
    assert!(
        stordom.iter().all(|l| l.contains("WARN")),
        "{}",
        stordom.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
