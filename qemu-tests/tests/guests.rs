//! Guests no one here wrote, booted through XenAPI: Debian 12's Linux as a
//! PVH VM (`domain_type = "pvh"`), built by dom0's PVH builder.
//!
//! The kernel is Debian's `linux-image-*-amd64` that `cargo xtask`'s deps
//! step downloads and unpacks (target/debian-kernel); this test takes the
//! ELF vmlinux out of its bzImage (the payload is xz with the x86 filter,
//! 32 MiB dictionary: `xz -d` on the host, so dom0 needs no dictionary)
//! and packs it as the guest file /boot/guest/vmlinux. PyPI's `XenAPI`
//! reaches dom0 through netdom (as in netdom_xenapi.rs), creates the VM
//! and starts it. Linux's `earlyprintk=xen` writes through the HVM console
//! hypercall into Xen's log (`guest_loglvl=all`), so its banner shows on
//! the serial line as `(dN) ...`. Its initramfs (`PV_ramdisk`, made here:
//! busybox-static and an `/init` script) writes a marker to /dev/kmsg,
//! which the same boot console prints, then powers the guest off, which
//! dom0 notices (the VM's `actions_after_shutdown`, destroy, leaves it
//! Halted).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{netdom_xenapi_launch, python_with_xenapi, run};
use xcp_qemu_tests::{Artifacts, Run};

const PASSWORD: &str = "guest-pw";

/// Creates and starts the PVH VM; prints its domid and domain type.
const CLIENT: &str = r#"
import sys
import XenAPI
url, pw = sys.argv[1], sys.argv[2]
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "guests-qemu-test")
vm = s.xenapi.VM.create({
    "name_label": "debian-pvh",
    "domain_type": "pvh",
    "memory_static_max": str(256 << 20),
    "memory_dynamic_max": str(256 << 20),
    "memory_dynamic_min": str(256 << 20),
    "VCPUs_max": "1",
    "VCPUs_at_startup": "1",
    "PV_kernel": "/boot/guest/vmlinux",
    "PV_ramdisk": "/boot/guest/initramfs",
    # Not hvc0: dom0 does not drain a PVH guest's console ring yet, and
    # Linux's hvc_xen spins (interrupts off, SCHEDOP_yield) on a full ring.
    "PV_args": "console=tty0 earlyprintk=xen keep_bootcon",
    "actions_after_crash": "preserve",
    "actions_after_reboot": "destroy",
    "actions_after_shutdown": "destroy",
})
s.xenapi.VM.start(vm, False, False)
print("domid", s.xenapi.VM.get_domid(vm))
print("power", s.xenapi.VM.get_power_state(vm))
metrics = s.xenapi.VM.get_metrics(vm)
print("domain type", s.xenapi.VM_metrics.get_current_domain_type(metrics))
s.xenapi.session.logout()
print("CLIENT OK")
"#;

/// What the guest's /init does: mount devtmpfs, say the marker through
/// the kernel log, power off.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
echo \"pvh-guest: init ran as pid $$ on $(/bin/busybox uname -r)\" > /dev/kmsg
/bin/busybox poweroff -f
";

/// A cpio "newc" archive (Linux Documentation/driver-api/early-userspace/
/// buffer-format.rst) of `(name, mode, data)` entries.
fn newc(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let pad = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(4), 0);
    let trailer: (&str, u32, &[u8]) = ("TRAILER!!!", 0, &[]);
    for (i, (name, mode, data)) in entries.iter().chain([&trailer]).enumerate() {
        let fields = [
            i as u32 + 1,
            *mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad(&mut out);
        out.extend_from_slice(data);
        pad(&mut out);
    }
    out
}

/// The guest's initramfs: busybox and [`INIT`], written to `dir/initramfs`.
fn initramfs(dir: &Path) -> PathBuf {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    let archive = newc(&[
        ("bin", 0o040755, &[]),
        ("dev", 0o040755, &[]),
        ("proc", 0o040755, &[]),
        ("bin/busybox", 0o100755, &busybox),
        ("init", 0o100755, INIT.as_bytes()),
    ]);
    let path = dir.join("initramfs");
    std::fs::write(&path, archive).unwrap();
    path
}

/// Debian's vmlinuz, as the deps step unpacked it.
fn debian_vmlinuz() -> PathBuf {
    let boot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debian-kernel/root/boot");
    std::fs::read_dir(&boot)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `cargo xtask build`: its deps step downloads Debian's kernel)",
                boot.display()
            )
        })
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or_else(|| panic!("no vmlinuz-* in {}", boot.display()))
}

/// The ELF inside a bzImage with an xz payload, written to `dir/vmlinux`.
fn extract_vmlinux(bzimage: &Path, dir: &Path) -> PathBuf {
    let b = std::fs::read(bzimage).unwrap();
    let u32_at = |off: usize| u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
    assert_eq!(&b[0x202..0x206], b"HdrS", "not a bzImage");
    let setup_sects = match b[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248);
    let payload = &b[start..start + u32_at(0x24c)];
    assert_eq!(&payload[..6], b"\xfd7zXZ\0", "the payload is not xz");
    let xz = dir.join("payload.xz");
    std::fs::write(&xz, payload).unwrap();
    let out = Command::new("xz")
        .args(["-d", "-c", "--single-stream"])
        .arg(&xz)
        .output()
        .expect("xz runs (xz-utils)");
    assert!(
        out.status.success(),
        "xz: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&out.stdout[..4], b"\x7fELF");
    let vmlinux = dir.join("vmlinux");
    std::fs::write(&vmlinux, &out.stdout).unwrap();
    vmlinux
}

#[test]
fn debian_linux_boots_as_a_pvh_vm_through_xenapi() {
    let py = python_with_xenapi(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let a = Artifacts::from_env();
    let dir = a.scratch("guests-pvh");
    let vmlinux = extract_vmlinux(&debian_vmlinuz(), &dir);
    let initrd = initramfs(&dir);
    let (mut launch, url) = netdom_xenapi_launch(&a, &dir, PASSWORD, &[vmlinux, initrd]);
    launch.memory_mib = 2048;
    launch.timeout_secs = 400;
    let qemu = Run::start("guests-pvh", &launch);
    let ready = qemu.wait_for("xenapi relay ready", Duration::from_secs(200));
    let client = ready
        .as_ref()
        .ok()
        .map(|_| run(Command::new(&py).args(["-c", CLIENT, &url, PASSWORD]), 240));
    let banner = client
        .as_ref()
        .filter(|(ok, _)| *ok)
        .map(|_| qemu.wait_for("Linux version 6.1", Duration::from_secs(120)));
    let init = banner
        .as_ref()
        .filter(|b| b.is_ok())
        .map(|_| qemu.wait_for("pvh-guest: init ran as pid 1", Duration::from_secs(120)));
    // /init powers the guest off: dom0 notices and applies
    // actions_after_shutdown = destroy.
    let stopped = init.as_ref().filter(|i| i.is_ok()).map(|_| {
        qemu.wait_for(
            "dom0: xenapi: VM debian-pvh (domid",
            Duration::from_secs(60),
        )
    });
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    if let Err(e) = ready {
        panic!("{e}");
    }
    let (ok, output) = client.expect("the client ran");
    assert!(
        ok && output.trim_end().ends_with("CLIENT OK"),
        "client failed:\n{output}\nlog:\n{}",
        xcp_qemu_tests::excerpt(log)
    );
    assert!(output.contains("power Running"), "{output}");
    assert!(output.contains("domain type pvh"), "{output}");
    let domid: u32 = output
        .lines()
        .find_map(|l| l.strip_prefix("domid "))
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or_else(|| panic!("no domid in {output}"));
    let banner = banner.expect("waited for the banner");
    let line = banner.unwrap_or_else(|e| panic!("{e}"));
    // Xen prefixes what the guest's console hypercall writes with its domid.
    assert!(line.starts_with(&format!("(d{domid}) ")), "{line}");
    // The initramfs's /init ran as Linux's first process.
    let init_line = init
        .expect("waited for /init")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        init_line.starts_with(&format!("(d{domid}) ")),
        "{init_line}"
    );
    assert!(init_line.contains("on 6.1.0-"), "{init_line}");
    assert!(log.contains("as PVH domid"), "{log}");
    let stopped = stopped
        .expect("waited for the stop")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        stopped.contains(&format!(
            "(domid {domid}) stopped: poweroff; actions_after_shutdown: destroyed, Halted"
        )),
        "{stopped}"
    );
}
