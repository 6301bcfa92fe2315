//! What a fresh Debian 12 machine lacks: Debian packages (installed with
//! apt-get when we are root, else the exact command is printed) and the
//! kernel target (rustup reads rust-toolchain.toml).

use std::process::Command;

/// Debian packages the build and the tests need.
pub const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "xen-hypervisor-4.17-amd64",
    "libxen-dev",
    "grub-pc-bin",
    "grub-common",
    // GRUB's Xen images, which boot a VM from its own disk
    // (PV_bootloader "pygrub"; xcp_boot::pvgrub_images).
    "grub-xen-bin",
    "xorriso",
    "mtools",
    "gzip",
    // Unpacks the guest kernel's payload at test time (xz --x86).
    "xz-utils",
    // The guest's initramfs (qemu-tests/tests/guests.rs).
    "busybox-static",
    // Real xenstore peers (xenstore-utils, pyxs) and the hosted oxenstored
    // baseline of the xenstore benchmark.
    "xenstore-utils",
    "python3-pyxs",
    "xen-utils-4.17",
    // Real XenAPI clients run in a venv (PyPI XenAPI) and with npm (xen-api).
    "python3-venv",
    "nodejs",
    // The tests' process handling (kill, pkill, pgrep) and pseudo-terminal
    // (`script`, for `cargo xtask run` as a person types it).
    "procps",
    "bsdutils",
    // A disk guest's mkfs.ext4 and e2fsck (qemu-tests/tests/guests_disk.rs
    // packs the host's, with their libraries, into its initramfs).
    "e2fsprogs",
    // qemu-img, which xcp-vhd's tests check VHD files against
    // (stordom/vhd/tests/qemu_img.rs).
    "qemu-utils",
];

/// Commands that may come from outside Debian; their package is installed
/// only when the command is missing.
const COMMANDS: &[(&str, &str)] = &[("npm", "npm")];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Where [`guest_kernel`] unpacks Debian's guest kernel package (the
/// PVH QEMU test, qemu-tests/tests/guests.rs, boots its vmlinuz).
pub fn guest_kernel_dir() -> std::path::PathBuf {
    crate::build::workspace_root().join("target/debian-kernel")
}

/// Debian 12's `linux-image-amd64` and the versioned package it depends on,
/// downloaded with apt (not installed) and unpacked in
/// [`guest_kernel_dir`], once.
fn guest_kernel() -> Result<(), String> {
    let dir = guest_kernel_dir();
    let unpacked = dir.join("root/boot");
    let has_kernel = std::fs::read_dir(&unpacked).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    });
    if has_kernel {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let download = |package: &str| -> Result<(), String> {
        let ok = Command::new("apt-get")
            .args(["download", package])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        if is_root() {
            crate::run(Command::new("apt-get").arg("update"))?;
        }
        crate::run(
            Command::new("apt-get")
                .args(["download", package])
                .current_dir(&dir),
        )
    };
    let debs = |prefix: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                            && p.extension().is_some_and(|x| x == "deb")
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    if debs("linux-image-amd64_").is_empty() {
        download("linux-image-amd64")?;
    }
    let meta = debs("linux-image-amd64_")
        .pop()
        .ok_or("apt-get download linux-image-amd64 left no .deb")?;
    let depends = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&meta)
        .arg("Depends")
        .output()
        .map_err(|e| format!("dpkg-deb: {e}"))?;
    let depends = String::from_utf8_lossy(&depends.stdout);
    let versioned = depends
        .split(',')
        .map(|d| d.trim().split(' ').next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
        .ok_or_else(|| format!("linux-image-amd64 depends on no versioned kernel: {depends}"))?
        .to_string();
    if debs(&format!("{versioned}_")).is_empty() {
        download(&versioned)?;
    }
    let deb = debs(&format!("{versioned}_"))
        .pop()
        .ok_or_else(|| format!("apt-get download {versioned} left no .deb"))?;
    crate::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.join("root")),
    )?;
    eprintln!("Guest kernel: {versioned} in {}", unpacked.display());
    Ok(())
}

/// Installs missing packages, the kernel target and the guest kernel.
pub fn ensure() -> Result<(), String> {
    let mut missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    for (command, package) in COMMANDS {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {command}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        let install = format!(
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
            missing.join(" ")
        );
        if !is_root() {
            return Err(format!(
                "missing Debian packages; run as root:\n  {install}"
            ));
        }
        eprintln!("Installing {}", missing.join(" "));
        crate::run(Command::new("sh").arg("-c").arg(&install))?;
    }
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(crate::build::workspace_root())
        .output()
        .map_err(|e| format!("rustup: {e}"))?;
    if !String::from_utf8_lossy(&targets.stdout).contains("x86_64-unknown-none") {
        crate::run(
            Command::new("rustup")
                .args(["target", "add", "x86_64-unknown-none"])
                .current_dir(crate::build::workspace_root()),
        )?;
    }
    guest_kernel()
}
