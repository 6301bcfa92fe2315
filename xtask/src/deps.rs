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
    "xorriso",
    "mtools",
    "gzip",
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

/// Installs missing packages and the kernel target.
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
    Ok(())
}
