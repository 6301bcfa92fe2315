//! What the side-by-side benches (`guests`, `net`) share: Debian's guest
//! kernel, the shipped platform booted with guest files in its bundle, and
//! the Linux-dom0 baseline made from Debian packages.
//!
//! - **xcp-rs**: [`ours_launch`] is the shipped platform (toolstack in
//!   dom0, xenstore-dom, netdom with QEMU's NIC forwarded from a free
//!   127.0.0.1 port) with the guest files packed as `/boot/guest/<name>`;
//!   PyPI's XenAPI ([`python`]) drives it through netdom.
//! - **baseline**: Linux as a PV dom0 with Debian's own Xen 4.17 tools (C
//!   xenstored, xen-init-dom0, xenconsoled, `xl`), downloaded with
//!   `apt-get download`, unpacked with `dpkg-deb -x` and cached in
//!   target/bench/baseline ([`baseline_tools`]), packed into a newc
//!   initramfs ([`baseline_initramfs`]) whose /init starts with
//!   [`BASELINE_DOM0_PRELUDE`]; booted by [`baseline_launch`].
//!
//! Both boot the same Xen (Debian's xen-hypervisor-4.17) on the same QEMU
//! command line (`xcp_boot::qemu::Launch`). Serial lines carry the host
//! time they arrived at when `XCP_HOST_TIME` is set ([`host`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use xcp_qemu_tests::linux::{extract_vmlinux, newc};
use xcp_qemu_tests::{Launch, Media};

/// The shipped platform's root password (boot/platform.toml's comment).
pub(super) const PLATFORM_PASSWORD: &str = "xcp-rs";
/// Xen's command line for the baseline, as the rig measured it: a 512 MiB
/// PV dom0 with one vCPU.
const BASELINE_XEN: &str = "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all \
                            console_timestamps=boot dom0_mem=512M,max:512M dom0_max_vcpus=1 smap=0";
/// Debian 12 packages the baseline dom0 runs (beside the kernel, which
/// the deps step unpacked in target/debian-kernel).
const BASELINE_PACKAGES: &[&str] = &[
    "busybox-static",
    "xen-utils-4.17",
    "xen-utils-common",
    "xenstore-utils",
    "libc6",
    "libxenstore4",
    "libxentoolcore1",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenmisc4.17",
    "libxentoollog1",
    "libxendevicemodel1",
    "libxenhypfs1",
    "libyajl2",
    "libgcc-s1",
    "libncurses6",
    "libtinfo6",
    "libext2fs2",
    "libuuid1",
    "libzstd1",
    "zlib1g",
    "liblzma5",
];
/// dom0 kernel modules the tools need (under the kernel's
/// lib/modules/<version>/kernel).
const BASELINE_MODULES: &[&str] = &[
    "drivers/xen/xen-evtchn.ko",
    "drivers/xen/xen-privcmd.ko",
    "drivers/xen/xen-gntdev.ko",
    "drivers/xen/xen-gntalloc.ko",
    "drivers/xen/xenfs/xenfs.ko",
];

/// The start of the baseline dom0's /init: the tools as the rig starts
/// them (the modules of [`BASELINE_MODULES`] from /mod), all but
/// xenconsoled, whose options each bench picks.
pub(super) const BASELINE_DOM0_PRELUDE: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/sbin
/bin/busybox --install -s /bin
export PATH=/usr/lib/xen-4.17/bin:/usr/bin:/bin:/usr/sbin:/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen/console /run/xenstored /run/lock /var/lib/xen /var/log/xen /var/lib/xenstored
for m in xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs; do
    insmod /mod/$m.ko 2>&1 | sed "s/^/BENCH_INSMOD $m: /"
done
mount -t xenfs xenfs /proc/xen
xenstored -N > /tmp/xenstored.log 2>&1 &
for i in $(seq 1 200); do [ -S /run/xenstored/socket ] && break; sleep 0.05; done
xen-init-dom0 2>&1 | sed 's/^/BENCH_INITDOM0 /'
"#;

/// The host time of a line stamped by `XCP_HOST_TIME` (`... {host S.sss}`).
pub(super) fn host(line: &str) -> Option<f64> {
    let open = line.rfind("{host ")?;
    line[open + 6..].trim_end().strip_suffix('}')?.parse().ok()
}

/// A line without its host stamp.
pub(super) fn unstamped(line: &str) -> &str {
    line.rfind(" {host ").map_or(line, |i| &line[..i])
}

/// Adds the serial log to an error.
pub(super) fn with_log_of(lines: &[String]) -> impl Fn(String) -> String + '_ {
    move |e| format!("{e}\nlog:\n{}", lines.join("\n"))
}

/// Debian's guest kernel: its bzImage, the ELF inside it, its version.
pub(super) struct Kernel {
    pub vmlinuz: PathBuf,
    pub vmlinux: PathBuf,
    /// The kernel's version (its lib/modules directory name).
    pub version: String,
}

/// Debian's kernel as the deps step unpacked it, copied to `dir/vmlinuz`
/// (the guest files keep these names in the bundle: /boot/guest/...), and
/// the ELF inside it at `dir/vmlinux`.
pub(super) fn kernel_files(dir: &Path) -> Result<Kernel, String> {
    let boot = crate::deps::guest_kernel_dir().join("root/boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let version = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or("vmlinuz name")?
        .to_string();
    let copy = dir.join("vmlinuz");
    std::fs::copy(&vmlinuz, &copy).map_err(|e| format!("{}: {e}", copy.display()))?;
    let vmlinux = extract_vmlinux(&copy, dir);
    Ok(Kernel {
        vmlinuz: copy,
        vmlinux,
        version,
    })
}

impl Kernel {
    /// The directory of its modules (lib/modules/<version>/kernel).
    pub fn modules(&self) -> PathBuf {
        crate::deps::guest_kernel_dir()
            .join("root/lib/modules")
            .join(&self.version)
            .join("kernel")
    }

    /// The bytes of module `rel` (e.g. `drivers/net/xen-netfront.ko`).
    pub fn module(&self, rel: &str) -> Result<Vec<u8>, String> {
        let path = self.modules().join(rel);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Modules `names` (as `lsmod` spells them, e.g. `virtio_net`) with
    /// the modules they depend on, each after its dependencies: paths
    /// under the kernel's modules directory, an order for `insmod`. The
    /// package carries no modules.dep (depmod runs at install), so the
    /// dependencies come from each module's `.modinfo` `depends=` field.
    pub fn with_dependencies(&self, names: &[&str]) -> Result<Vec<String>, String> {
        let base = self.modules();
        let mut index = std::collections::HashMap::new();
        let mut dirs = vec![base.clone()];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .flatten()
            {
                let path = e.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if let Some(stem) = path.file_name().and_then(|n| n.to_str()) {
                    if let Some(stem) = stem.strip_suffix(".ko") {
                        let rel = path.strip_prefix(&base).map_err(|e| e.to_string())?;
                        index.insert(stem.replace('-', "_"), rel.to_string_lossy().into_owned());
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut todo: Vec<(String, bool)> =
            names.iter().rev().map(|n| (n.to_string(), false)).collect();
        // Depth first: a module goes out after its dependencies.
        while let Some((name, expanded)) = todo.pop() {
            let key = name.replace('-', "_");
            let rel = index
                .get(&key)
                .ok_or_else(|| format!("no module {name} under {}", base.display()))?;
            if out.contains(rel) {
                continue;
            }
            if expanded {
                out.push(rel.clone());
                continue;
            }
            todo.push((name, true));
            for d in module_depends(&self.module(rel)?) {
                todo.push((d, false));
            }
        }
        Ok(out)
    }
}

/// The `depends=` field of a module's `.modinfo` (comma-separated names).
fn module_depends(ko: &[u8]) -> Vec<String> {
    const FIELD: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(FIELD.len()).position(|w| w == FIELD) else {
        return Vec::new();
    };
    let rest = &ko[at + FIELD.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// Python the benches' XenAPI clients start with: `login(url, pw, who)`
/// (retrying for 120 s while the platform comes up) and `pvh_vm(x, name,
/// kernel, mib, args, after_crash)` (a 1-vCPU PVH VM with
/// /boot/guest/initramfs; powering off or rebooting destroys it).
pub(super) const PY_CLIENT_PRELUDE: &str = r#"
import sys
import time
import XenAPI

def login(url, pw, who):
    deadline = time.monotonic() + 120
    while True:
        try:
            s = XenAPI.Session(url)
            s.xenapi.login_with_password("root", pw, "1.0", who)
            return s
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)

def pvh_vm(x, name, kernel, mib, args, after_crash):
    return x.VM.create({
        "name_label": name,
        "domain_type": "pvh",
        "memory_static_max": str(mib << 20),
        "memory_dynamic_max": str(mib << 20),
        "memory_dynamic_min": str(mib << 20),
        "VCPUs_max": "1",
        "VCPUs_at_startup": "1",
        "PV_kernel": kernel,
        "PV_ramdisk": "/boot/guest/initramfs",
        "PV_args": args,
        "actions_after_crash": after_crash,
        "actions_after_reboot": "destroy",
        "actions_after_shutdown": "destroy",
    })
"#;

/// The python with PyPI's XenAPI (a venv under target/tmp).
pub(super) fn python() -> PathBuf {
    xcp_qemu_tests::clients::python_with_xenapi(&crate::build::workspace_root().join("target/tmp"))
}

/// The shipped platform with `guests` in its bundle (written to
/// `dir/bundle.cpio`), QEMU's NIC forwarded from a free 127.0.0.1 port,
/// 2048 MiB; the launch and the XenAPI URL through netdom.
pub(super) fn ours_launch(
    p: &crate::build::Platform,
    guests: &[PathBuf],
    dir: &Path,
) -> Result<(Launch, String), String> {
    let root = crate::build::workspace_root();
    let (text, config) = xcp_boot::load_config(&root.join("boot/platform.toml"))?;
    let mut images: Vec<(String, PathBuf)> = config
        .domains
        .iter()
        .map(|d| (d.image.clone(), p.dir.join(&d.image)))
        .collect();
    images.extend(xcp_boot::guest_entries(guests)?);
    let bundle = xcp_boot::assemble_bundle(&text, &images)?;
    let bundle_path = dir.join("bundle.cpio");
    std::fs::write(&bundle_path, &bundle).map_err(|e| e.to_string())?;
    let port = super::netdom::free_port()?;
    let url = format!("http://127.0.0.1:{port}/");
    let mut launch = p.launch(&format!("xenapi-url={url}"));
    if let Media::Direct {
        xen_cmdline,
        bundle: b,
        ..
    } = &mut launch.media
    {
        *xen_cmdline = xcp_boot::xen_cmdline_for(&config.platform.xen_cmdline, &bundle)?;
        *b = bundle_path;
    }
    launch.devices.nic = Some(Some(port));
    launch.memory_mib = 2048;
    launch.timeout_secs = 1500;
    Ok((launch, url))
}

/// The baseline's Linux dom0 booted with `cmdline` and `initrd` on the
/// same QEMU command line as xcp-rs (with QEMU's NIC when `nic`).
pub(super) fn baseline_launch(
    p: &crate::build::Platform,
    k: &Kernel,
    cmdline: &str,
    initrd: PathBuf,
    nic: bool,
) -> Launch {
    let mut launch = Launch {
        media: Media::Direct {
            xen: p.dir.join("xen"),
            xen_cmdline: BASELINE_XEN.into(),
            dom0: k.vmlinuz.clone(),
            dom0_cmdline: format!("console=hvc0 earlyprintk=xen {cmdline}"),
            bundle: initrd,
        },
        memory_mib: 2048,
        timeout_secs: 1500,
        devices: Default::default(),
    };
    if nic {
        launch.devices.nic = Some(None);
    }
    launch
}

/// Downloads the baseline's packages (once) into `debs` and unpacks them
/// into `root` (once).
fn baseline_tools(debs: &Path, root: &Path) -> Result<(), String> {
    std::fs::create_dir_all(debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    let have = |package: &str| {
        std::fs::read_dir(debs).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&format!("{package}_")) && n.ends_with(".deb")
            })
        })
    };
    let missing: Vec<&str> = BASELINE_PACKAGES
        .iter()
        .copied()
        .filter(|p| !have(p))
        .collect();
    if !missing.is_empty() {
        let download = || {
            crate::run(
                Command::new("apt-get")
                    .arg("download")
                    .args(&missing)
                    .current_dir(debs),
            )
        };
        if download().is_err() {
            // Stale package lists on a fresh machine, as deps.rs does.
            crate::run(Command::new("apt-get").arg("update"))?;
            download()?;
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(debs)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".deb"))
        .collect();
    names.sort();
    let names = names.join("\n");
    // Unpacked once per set of .debs.
    let done = root.join(".unpacked");
    if std::fs::read_to_string(&done).is_ok_and(|n| n == names) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in std::fs::read_dir(debs)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "deb") {
            crate::run(Command::new("dpkg-deb").arg("-x").arg(&path).arg(root))?;
        }
    }
    std::fs::write(&done, names).map_err(|e| e.to_string())
}

/// Entries of a newc archive: (name, mode, data).
pub(super) type Entries = Vec<(String, u32, Vec<u8>)>;

/// Adds `dir` (below `base`) to `out` as archive paths, leaving out what
/// the tools do not need (documentation, locales, gconv).
fn add_tree(base: &Path, dir: &Path, out: &mut Entries) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = path
            .strip_prefix(base)
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        if [
            "usr/share",
            "usr/lib/x86_64-linux-gnu/gconv",
            "usr/lib/locale",
        ]
        .contains(&name.as_str())
            || name.starts_with('.')
        {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| e.to_string())?;
            out.push((
                name,
                0o120777,
                target.to_string_lossy().into_owned().into_bytes(),
            ));
        } else if meta.is_dir() {
            out.push((name, 0o040000 | mode, Vec::new()));
            add_tree(base, &path, out)?;
        } else if meta.is_file() {
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.push((name, 0o100000 | mode, data));
        }
    }
    Ok(())
}

/// Builds the baseline dom0's initramfs at `dir/dom0.cpio`: the tools,
/// [`BASELINE_MODULES`] and `modules` (paths under the kernel's
/// lib/modules/<version>/kernel) as /mod/<file name>, then `files`
/// (their directories listed before them) and `init` as /init.
pub(super) fn baseline_initramfs(
    k: &Kernel,
    modules: &[String],
    files: Entries,
    init: &str,
    dir: &Path,
) -> Result<PathBuf, String> {
    let cache = crate::build::workspace_root().join("target/bench/baseline");
    let tools = cache.join("root");
    baseline_tools(&cache.join("debs"), &tools)?;
    let mut e: Entries = Vec::new();
    for d in [
        "dev", "proc", "sys", "run", "tmp", "mnt", "mod", "guest", "var", "var/lib", "var/log",
        "etc", "etc/xen",
    ] {
        e.push((d.into(), 0o040755, Vec::new()));
    }
    add_tree(&tools, &tools, &mut e)?;
    e.push(("var/run".into(), 0o120777, b"../run".to_vec()));
    e.push(("var/lock".into(), 0o120777, b"../run/lock".to_vec()));
    for m in BASELINE_MODULES
        .iter()
        .copied()
        .chain(modules.iter().map(String::as_str))
    {
        let name = Path::new(m).file_name().expect("a module file name");
        e.push((
            format!("mod/{}", name.to_string_lossy()),
            0o100644,
            k.module(m)?,
        ));
    }
    e.extend(files);
    e.push(("init".into(), 0o100755, init.as_bytes().to_vec()));
    let refs: Vec<(&str, u32, &[u8])> = e
        .iter()
        .map(|(n, m, d)| (n.as_str(), *m, d.as_slice()))
        .collect();
    let path = dir.join("dom0.cpio");
    std::fs::write(&path, newc(&refs)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Fails unless python3 parses `source` (the clients are only run by a
/// bench's QEMU run).
/// `source` (a guest program, C) written to `dir/<name>.c` and compiled
/// static with the host's cc; the binary's bytes. `part` names the bench
/// part in the error.
pub(super) fn compile_static(
    dir: &Path,
    name: &str,
    source: &str,
    part: &str,
) -> Result<Vec<u8>, String> {
    let src = dir.join(format!("{name}.c"));
    let out = dir.join(name);
    std::fs::write(&src, source).map_err(|e| e.to_string())?;
    crate::run(
        Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&src),
    )
    .map_err(|e| format!("{e} (bench {part} compiles its guest program with the host's cc)"))?;
    std::fs::read(&out).map_err(|e| e.to_string())
}

/// One measure of a side-by-side table: (JSON key, label, unit).
pub(super) type Measure = (&'static str, &'static str, &'static str);

/// Prints a side-by-side table of medians, xcp-rs against the baseline,
/// with their ratio (`headers`: the two sides' column titles, `figure`
/// formats a median in its unit, `width` the label column), and returns
/// its rows for the JSON: each measure's samples and medians.
pub(super) fn side_by_side(
    measures: &[Measure],
    ours: Option<&Vec<Vec<f64>>>,
    base: Option<&Vec<Vec<f64>>>,
    headers: (&str, &str),
    width: usize,
    figure: impl Fn(Option<f64>, &str) -> String,
) -> Vec<serde_json::Value> {
    let median = |v: &[f64]| (!v.is_empty()).then(|| super::median(v.to_vec()));
    println!(
        "  {:<width$} {:>16} {:>18} {:>9}",
        "", headers.0, headers.1, "ratio"
    );
    let mut rows = Vec::new();
    for (i, (key, label, unit)) in measures.iter().enumerate() {
        let o = ours.and_then(|s| median(&s[i]));
        let b = base.and_then(|s| median(&s[i]));
        let ratio = match (o, b) {
            (Some(o), Some(b)) if b > 0.0 => format!("{:.2}x", o / b),
            _ => "-".into(),
        };
        println!(
            "  {label:<width$} {:>16} {:>18} {ratio:>9}",
            figure(o, unit),
            figure(b, unit)
        );
        rows.push(serde_json::json!({
            "measure": key, "label": label, "unit": unit,
            "xcp_rs": {"samples": ours.map(|s| s[i].clone()), "median": o},
            "baseline": {"samples": base.map(|s| s[i].clone()), "median": b},
        }));
    }
    rows
}

#[cfg(test)]
pub(super) fn assert_python_parses(source: &str) {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("a pipe")
        .write_all(source.as_bytes())
        .expect("python3 reads");
    assert!(child.wait().expect("python3 exits").success(), "{source}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_stamps_parse_and_strip() {
        let l = "[    2.5] dom0: xenapi: starting VM bench-elf {host 3.132}";
        assert_eq!(host(l), Some(3.132));
        assert_eq!(
            unstamped(l),
            "[    2.5] dom0: xenapi: starting VM bench-elf"
        );
        assert_eq!(host("no stamp"), None);
    }

    #[test]
    fn module_depends_reads_the_modinfo_field() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=virtio_ring,virtio\0intree=Y\0";
        assert_eq!(module_depends(ko), ["virtio_ring", "virtio"]);
        assert!(module_depends(b"\0depends=\0name=x\0").is_empty());
        assert!(module_depends(b"no field").is_empty());
    }
}
