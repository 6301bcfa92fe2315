//! Linux guests for the QEMU cases: Debian's kernel as the deps step
//! unpacked it (target/debian-kernel), the ELF vmlinux inside its bzImage,
//! and busybox initramfs archives made at test time.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A cpio "newc" archive (Linux Documentation/driver-api/early-userspace/
/// buffer-format.rst) of `(name, mode, data)` entries.
pub fn newc(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
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

/// A guest initramfs: busybox-static and `init` as /init, written to
/// `dir/initramfs`.
pub fn initramfs(dir: &Path, init: &str) -> PathBuf {
    initramfs_with(dir, init, &[])
}

/// [`initramfs`] with more files: `(path, mode, bytes)`, their
/// directories listed before them.
pub fn initramfs_with(dir: &Path, init: &str, extra: &[(&str, u32, Vec<u8>)]) -> PathBuf {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    let mut entries: Vec<(&str, u32, &[u8])> = vec![
        ("bin", 0o040755, &[]),
        ("dev", 0o040755, &[]),
        ("proc", 0o040755, &[]),
        ("sys", 0o040755, &[]),
        ("bin/busybox", 0o100755, &busybox),
        ("init", 0o100755, init.as_bytes()),
    ];
    entries.extend(extra.iter().map(|(n, m, d)| (*n, *m, d.as_slice())));
    let archive = newc(&entries);
    let path = dir.join("initramfs");
    std::fs::write(&path, archive).unwrap();
    path
}

/// A module of Debian's kernel (`rel` under `lib/modules/*/kernel/`,
/// e.g. `drivers/net/xen-netfront.ko`), as the deps step unpacked it.
pub fn debian_module(rel: &str) -> Vec<u8> {
    let modules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debian-kernel/root/lib/modules");
    let version = std::fs::read_dir(&modules)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask build`)", modules.display()))
        .flatten()
        .next()
        .unwrap_or_else(|| panic!("no kernel version under {}", modules.display()))
        .path();
    let path = version.join("kernel").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Debian's vmlinuz, as the deps step unpacked it.
pub fn debian_vmlinuz() -> PathBuf {
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
pub fn extract_vmlinux(bzimage: &Path, dir: &Path) -> PathBuf {
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

/// `vmlinux` repacked as a bzImage with a gzip payload (Linux's
/// `CONFIG_KERNEL_GZIP` form: `gzip -n -9`, the uncompressed size in 4
/// bytes after it), written to `dir/vmlinuz-gzip`. Only the setup header
/// fields a domain builder reads are set (boot protocol 2.15,
/// `payload_offset`/`payload_length`): Xen's builders never run the
/// bzImage's own code.
pub fn gzip_bzimage(vmlinux: &Path, dir: &Path) -> PathBuf {
    let elf = std::fs::read(vmlinux).unwrap();
    let out = Command::new("gzip")
        .args(["-n", "-9", "-c"])
        .arg(vmlinux)
        .output()
        .expect("gzip runs");
    assert!(out.status.success(), "gzip: {:?}", out.status);
    let mut payload = out.stdout;
    payload.extend_from_slice(&(elf.len() as u32).to_le_bytes());
    let setup_sects = 4u8;
    let pm_start = (usize::from(setup_sects) + 1) * 512;
    let mut image = vec![0u8; pm_start];
    image[0x1f1] = setup_sects;
    image[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    image[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
    image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    image.extend_from_slice(&payload);
    let path = dir.join("vmlinuz-gzip");
    std::fs::write(&path, image).unwrap();
    path
}

/// The start of a guest's /init: busybox's applets installed, devtmpfs,
/// proc and sysfs mounted, and /sbin/poweroff and /sbin/reboot as Linux's
/// orderly power-off and reboot (`control/shutdown`) run them: busybox's
/// own would only signal init, which a shell script as pid 1 ignores.
pub const INIT_PRELUDE: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /tmp
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
for op in poweroff reboot; do
    rm -f /sbin/$op
    printf '#!/bin/busybox sh\n/bin/busybox %s -f\n' $op > /sbin/$op
    chmod 755 /sbin/$op
done
"#;

/// busybox udhcpc's hook (`udhcpc -s`): applies the lease to the
/// interface and the default route.
pub const DHCP_SCRIPT: &str = r#"#!/bin/busybox sh
case "$1" in
bound|renew)
    ifconfig "$interface" "$ip" netmask "$subnet" up
    [ -n "$router" ] && route add default gw "$router" dev "$interface"
    ;;
esac
exit 0
"#;

/// Python for the clients: `Console(session, url, vm)` attaches to a
/// running VM's text console as xapi's clients do (`CONNECT` on its
/// console's `location` with the session, through netdom), checks the
/// `200`, and `read_until(marker, secs)` reads until `marker` (exiting the
/// client with what it saw if it does not come); `send(bytes)`, `close()`.
/// Prepend it to a client script.
pub const PY_CONSOLE: &str = r#"
import socket as _socket, sys as _sys, time as _time, urllib.parse as _urlparse

class Console:
    def __init__(self, session, url, vm):
        x = session.xenapi
        con = x.console.get_record(x.VM.get_consoles(vm)[0])
        loc = _urlparse.urlsplit(con["location"])
        where = _urlparse.urlsplit(url)
        self.c = _socket.create_connection((where.hostname, where.port), timeout=30)
        self.c.sendall(f"CONNECT {loc.path}?{loc.query}&session_id={session._session} HTTP/1.0\r\n\r\n".encode())
        self.seen = b""
        self.read_until(b"\r\n\r\n", 30)
        assert self.seen.startswith(b"HTTP/1.1 200"), self.seen

    def read_until(self, marker, secs):
        """Reads until `marker` (bytes, or a compiled bytes regex) is seen."""
        deadline = _time.monotonic() + secs
        found = (lambda: marker.search(self.seen)) if hasattr(marker, "search") else (lambda: marker in self.seen)
        while not found():
            if _time.monotonic() > deadline:
                print("console so far:", self.seen[-3000:])
                _sys.exit(1)
            try:
                chunk = self.c.recv(4096)
            except _socket.timeout:
                continue
            if not chunk:
                print("console closed; so far:", self.seen[-3000:])
                _sys.exit(1)
            self.seen += chunk

    def send(self, data):
        self.c.sendall(data)

    def close(self):
        self.c.close()
"#;

/// A networked guest's /init after [`INIT_PRELUDE`]: Debian's
/// xen-netfront loaded, a DHCP lease on eth0 (`udhcpc` with
/// [`DHCP_SCRIPT`]), `guest: ip <addr>/<len> mac <mac>` and
/// `guest: ready` on the console, then a shell reading the console.
pub const NET_INIT: &str = r#"
insmod /lib/xen-netfront.ko
for i in $(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -t 30 -T 2 -s /bin/dhcp-script
echo "guest: ip $(ip -4 addr show eth0 | awk '/inet /{print $2}') mac $(cat /sys/class/net/eth0/address)"
echo "guest: ready"
while read -r line; do eval "$line"; done
"#;

/// A networked Linux guest's files in `dir`: Debian's vmlinuz and an
/// initramfs with [`NET_INIT`], xen-netfront and [`DHCP_SCRIPT`]; booted
/// as `/boot/guest/vmlinuz` and `/boot/guest/initramfs`.
pub fn net_guest(dir: &Path) -> [PathBuf; 2] {
    let vmlinuz = dir.join("vmlinuz");
    std::fs::copy(debian_vmlinuz(), &vmlinuz).unwrap();
    let initrd = initramfs_with(
        dir,
        &format!("{INIT_PRELUDE}{NET_INIT}"),
        &[
            ("lib", 0o040755, Vec::new()),
            (
                "lib/xen-netfront.ko",
                0o100644,
                debian_module("drivers/net/xen-netfront.ko"),
            ),
            ("bin/dhcp-script", 0o100755, DHCP_SCRIPT.as_bytes().to_vec()),
        ],
    );
    [vmlinuz, initrd]
}

/// netdom's own address, as its DHCP lease line in the serial log
/// (`lines`) says; QEMU's first lease when there is none.
pub fn netdom_ip(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| {
            let rest = l.split("DHCP lease ").nth(1)?;
            Some(rest.split('/').next()?.to_string())
        })
        .unwrap_or_else(|| "10.0.2.15".into())
}

/// Python for the networked guests' clients, after [`PY_CONSOLE`]:
/// `net_vif(x, net, vm, device)` makes a VIF as xapi's clients do (empty
/// MAC: dom0 makes one); `linux_vm(x, name)` a 256 MiB PVH VM booting
/// [`net_guest`]'s files; `net_ready(s, url, vm, vif, mac, name)` attaches
/// to its console, waits for [`NET_INIT`]'s `guest: ready`, checks the MAC
/// and the VIF attached, and returns `(console, ip)`; `run_in(c, line,
/// secs)` runs a shell line in a guest and returns its output and exit
/// status, `must` fails the client unless it is 0. The console echoes what
/// is typed: every marker these helpers (and the checks after them) look
/// for is computed by the guest's shell (`$((...))`), so the echo never
/// matches it.
pub const PY_NET: &str = r#"
import re as _re

def net_vif(x, net, vm, device):
    return x.VIF.create({
        "device": device, "network": net, "VM": vm, "MAC": "", "MTU": "1500",
        "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
        "locking_mode": "network_default", "ipv4_allowed": [], "ipv6_allowed": [],
    })

def linux_vm(x, name):
    return x.VM.create({
        "name_label": name,
        "domain_type": "pvh",
        "memory_static_max": str(256 << 20),
        "memory_dynamic_max": str(256 << 20),
        "memory_dynamic_min": str(256 << 20),
        "VCPUs_max": "1",
        "VCPUs_at_startup": "1",
        "PV_kernel": "/boot/guest/vmlinuz",
        "PV_ramdisk": "/boot/guest/initramfs",
        "PV_args": "console=hvc0",
        "actions_after_crash": "preserve",
        "actions_after_reboot": "destroy",
        "actions_after_shutdown": "destroy",
    })

def net_ready(s, url, vm, v, mac, name):
    x = s.xenapi
    c = Console(s, url, vm)
    c.read_until(b"guest: ready", 300)
    m = _re.search(rb"guest: ip (\S+)/\d+ mac (\S+)", c.seen)
    assert m, c.seen[-2000:]
    ip, seen_mac = m.group(1).decode(), m.group(2).decode()
    print(name, "lease", ip, "mac in the guest", seen_mac)
    assert seen_mac == mac, (seen_mac, mac)
    assert x.VIF.get_currently_attached(v)
    return c, ip

_step = [0]
def run_in(c, line, secs):
    """Runs `line` in the guest; returns its output and exit status."""
    _step[0] += 1
    n = 1000 + _step[0]
    before = len(c.seen)
    c.send(f"{line}; echo \"DONE-$((1000+{_step[0]}))-rc$?-\"\r".encode())
    c.read_until(_re.compile(rf"DONE-{n}-rc(\d+)-".encode()), secs)
    out = c.seen[before:]
    rc = int(_re.search(rf"DONE-{n}-rc(\d+)-".encode(), out).group(1))
    return out, rc

def must(c, line, secs):
    out, rc = run_in(c, line, secs)
    assert rc == 0, (line, rc, out[-1500:])
    return out
"#;

/// A disk guest's /init after [`INIT_PRELUDE`]: Debian's xen-blkfront,
/// ext4 and what it needs loaded (all modules in Debian), `guest: disk
/// <sectors>` for `/dev/xvda` and `guest: ready` on the console, then a
/// shell reading the console.
pub const DISK_INIT: &str = r#"
for m in xen-blkfront crc16 crc32c_generic mbcache jbd2 ext4; do insmod /lib/$m.ko; done
for i in $(seq 1 100); do [ -b /dev/xvda ] && break; sleep 0.1; done
mkdir -p /mnt
echo "guest: disk $(cat /sys/block/xvda/size)"
echo "guest: ready"
while read -r line; do eval "$line"; done
"#;

/// The modules [`DISK_INIT`] loads, by their paths under the kernel's
/// `kernel/` directory, in load order.
const DISK_MODULES: &[(&str, &str)] = &[
    ("xen-blkfront", "drivers/block/xen-blkfront.ko"),
    ("crc16", "lib/crc16.ko"),
    ("crc32c_generic", "crypto/crc32c_generic.ko"),
    ("mbcache", "fs/mbcache.ko"),
    ("jbd2", "fs/jbd2/jbd2.ko"),
    ("ext4", "fs/ext4/ext4.ko"),
];

/// The host's e2fsprogs programs a disk guest runs, with the shared
/// libraries they load (Debian 12's own: the guest runs Debian 12's kernel).
const E2FS_PROGRAMS: &[&str] = &["/sbin/mke2fs", "/sbin/e2fsck"];

/// `program` and the libraries `ldd` names for it: (path in the guest,
/// bytes).
fn with_libraries(program: &str) -> Vec<(String, Vec<u8>)> {
    let out = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .unwrap_or_else(|e| panic!("ldd {program}: {e}"));
    assert!(out.status.success(), "ldd {program} failed");
    let mut files = vec![(
        program.trim_start_matches('/').to_string(),
        std::fs::read(program).unwrap_or_else(|e| panic!("{program}: {e}")),
    )];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            files.push((path.trim_start_matches('/').to_string(), bytes));
        }
    }
    files
}

/// `files` as initramfs entries: each directory listed once, before what
/// is in it; a path given twice (a library two programs load) kept once.
fn tree(files: Vec<(String, u32, Vec<u8>)>) -> Vec<(String, u32, Vec<u8>)> {
    let mut out: Vec<(String, u32, Vec<u8>)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (path, mode, bytes) in files {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let d = path[..at + i].to_string();
            if seen.insert(d.clone()) {
                out.push((d, 0o040755, Vec::new()));
            }
            at += i + 1;
        }
        if seen.insert(path.clone()) {
            out.push((path, mode, bytes));
        }
    }
    out
}

/// The disk guest's extra initramfs files: ext4's modules as
/// `lib/<name>.ko` and the host's e2fsprogs programs with their libraries
/// (`mke2fs` also as `mkfs.ext4`).
fn disk_files() -> Vec<(String, u32, Vec<u8>)> {
    let mut files: Vec<(String, u32, Vec<u8>)> = DISK_MODULES
        .iter()
        .map(|(name, rel)| (format!("lib/{name}.ko"), 0o100644, debian_module(rel)))
        .collect();
    for program in E2FS_PROGRAMS {
        for (path, bytes) in with_libraries(program) {
            files.push((path, 0o100755, bytes));
        }
    }
    let mke2fs = files
        .iter()
        .find(|(p, _, _)| p == "sbin/mke2fs")
        .map(|(_, _, b)| b.clone())
        .expect("mke2fs");
    files.push(("sbin/mkfs.ext4".to_string(), 0o100755, mke2fs));
    files
}

fn as_entries(files: &[(String, u32, Vec<u8>)]) -> Vec<(&str, u32, Vec<u8>)> {
    files
        .iter()
        .map(|(p, m, b)| (p.as_str(), *m, b.clone()))
        .collect()
}

/// A disk guest's files in `dir`: Debian's vmlinuz and an initramfs with
/// [`DISK_INIT`], ext4's modules and the host's `mke2fs` (also as
/// `mkfs.ext4`) and `e2fsck`; booted as `/boot/guest/vmlinuz` and
/// `/boot/guest/initramfs`.
pub fn disk_guest(dir: &Path) -> [PathBuf; 2] {
    let vmlinuz = dir.join("vmlinuz");
    std::fs::copy(debian_vmlinuz(), &vmlinuz).unwrap();
    let files = tree(disk_files());
    let initrd = initramfs_with(
        dir,
        &format!("{INIT_PRELUDE}{DISK_INIT}"),
        &as_entries(&files),
    );
    [vmlinuz, initrd]
}

/// The /init of a guest that boots from its own disk, after
/// [`INIT_PRELUDE`]: the disk, ext4 and network modules loaded, a DHCP
/// lease on eth0, then `guest: cmdline <the kernel's command line>`,
/// `guest: disks <block devices>`, the lines [`NET_INIT`] prints (`guest:
/// ip ... mac ...`, `guest: ready`) and a shell reading the console. Once
/// it has its lease, `/bin/guest-agent` writes what xe-guest-utilities'
/// daemon writes in xenstore at boot (OS, PV drivers version, memory,
/// eth0's address).
pub const DISK_BOOT_INIT: &str = r#"
for m in xen-blkfront crc16 crc32c_generic mbcache jbd2 ext4 xen-netfront; do insmod /lib/$m.ko; done
for i in $(seq 1 100); do [ -b /dev/xvda ] && break; sleep 0.1; done
mkdir -p /mnt
for i in $(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -t 30 -T 2 -s /bin/dhcp-script
guest-agent
echo "guest: cmdline $(cat /proc/cmdline)"
echo "guest: disks $(ls /sys/block | tr '\n' ' ')"
echo "guest: ip $(ip -4 addr show eth0 | awk '/inet /{print $2}') mac $(cat /sys/class/net/eth0/address)"
echo "guest: ready"
while read -r line; do eval "$line"; done
"#;

/// The guest agent of [`DISK_BOOT_INIT`]: the keys xe-guest-utilities'
/// `xe-daemon` writes (OS under `data/`, the PV drivers' version under
/// `attr/PVAddons/`, eth0's IPv4 address as `attr/vif/0/ipv4/0`, memory
/// in KiB), with Debian's `xenstore-write` over `/dev/xen/xenbus`.
pub const GUEST_AGENT: &str = r#"#!/bin/busybox sh
ip=$(ip -4 addr show eth0 | awk '/inet /{split($2, a, "/"); print a[1]}')
total=$(awk '/MemTotal/{print $2}' /proc/meminfo)
free=$(awk '/MemFree/{print $2}' /proc/meminfo)
exec xenstore-write     data/os_name "Debian GNU/Linux 12 (bookworm)"     data/os_uname "$(uname -r)"     data/os_distro debian     data/os_majorver 12     data/os_minorver 0     attr/PVAddons/MajorVersion 8     attr/PVAddons/MinorVersion 4     attr/PVAddons/MicroVersion 0     attr/PVAddons/BuildVersion 1     attr/PVAddons/Installed 1     attr/vif/0/ipv4/0 "$ip"     data/meminfo_total "$total"     data/meminfo_free "$free"     data/updated 1
"#;

/// A disk image that boots by itself, written to `dir/boot-disk.raw`: an
/// MBR with one Linux partition from 1 MiB holding an ext4 file system
/// (made by the host's mke2fs from a directory) with `/boot/vmlinuz`
/// (Debian's), `/boot/initrd.img` ([`DISK_BOOT_INIT`], the modules, the
/// guest agent) and `/boot/grub/grub.cfg`, whose one entry boots them
/// with `console=hvc0 xcp_token=<token>`: a guest that sees the token in
/// its command line was booted by that grub.cfg.
pub fn bootable_disk(dir: &Path, token: &str) -> PathBuf {
    const MIB: u64 = 1 << 20;
    const DISK_MIB: u64 = 64;
    let mut files = disk_files();
    files.push((
        "lib/xen-netfront.ko".to_string(),
        0o100644,
        debian_module("drivers/net/xen-netfront.ko"),
    ));
    files.push((
        "bin/dhcp-script".to_string(),
        0o100755,
        DHCP_SCRIPT.as_bytes().to_vec(),
    ));
    files.push((
        "bin/guest-agent".to_string(),
        0o100755,
        GUEST_AGENT.as_bytes().to_vec(),
    ));
    for (path, bytes) in with_libraries("/usr/bin/xenstore-write") {
        files.push((path, 0o100755, bytes));
    }
    let files = tree(files);
    let initrd = initramfs_with(
        dir,
        &format!("{INIT_PRELUDE}{DISK_BOOT_INIT}"),
        &as_entries(&files),
    );
    let root = dir.join("disk-root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("boot/grub")).unwrap();
    std::fs::copy(debian_vmlinuz(), root.join("boot/vmlinuz")).unwrap();
    std::fs::rename(&initrd, root.join("boot/initrd.img")).unwrap();
    std::fs::write(
        root.join("boot/grub/grub.cfg"),
        format!(
            "set timeout=0\nset default=0\n\
             menuentry 'xcp-rs disk guest' {{\n\
             \x20 linux /boot/vmlinuz console=hvc0 xcp_token={token}\n\
             \x20 initrd /boot/initrd.img\n\
             }}\n"
        ),
    )
    .unwrap();
    let image = dir.join("boot-disk.raw");
    let f = std::fs::File::create(&image).unwrap();
    f.set_len(DISK_MIB * MIB).unwrap();
    drop(f);
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-E"])
        .arg(format!("offset={MIB}"))
        .arg("-d")
        .arg(&root)
        .arg(&image)
        .arg(format!("{}M", DISK_MIB - 1))
        .output()
        .expect("mke2fs runs (e2fsprogs)");
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The MBR: one active Linux (0x83) partition, LBA 2048 onwards.
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[0] = 0x80;
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[4] = 0x83;
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&((MIB / 512) as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&(((DISK_MIB - 1) * MIB / 512) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    use std::io::{Seek, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.write_all(&mbr).unwrap();
    image
}
