//! Builds the platform into target/xcp: Xen (uncompressed, for QEMU's
//! -kernel), the kernels, the bundle, grub.cfg, and on request the ISO.
//!
//! The shipped images (dom0, the bundle's kernels) are built without any
//! test feature. The test images the QEMU self-tests boot are built by a
//! second cargo invocation with their features ([`TEST_KERNELS`]): cargo
//! unifies features per invocation, so the test features (and what they
//! turn on in shared crates, such as the runtime's `dma-escape`) never
//! reach a shipped image. `xtask/tests/shipped_images.rs` checks the result.

use std::path::{Path, PathBuf};

use xcp_boot::qemu::{Launch, Media};

/// Kernel packages and the bundle entry of each image (dom0 is not in the
/// bundle: it is the kernel Xen starts).
const KERNELS: &[(&str, &str, Option<&str>)] = &[
    ("toolstack-dom0", "toolstack-dom0", None),
    ("xcp-testdom", "testdom", Some("testdom.elf")),
    ("xenstore-dom", "xenstore-dom", Some("xenstore-dom.elf")),
    ("netdom", "netdom", Some("netdom.elf")),
    ("stordom", "stordom", Some("stordom.elf")),
];

/// Test images: package, binary, the features that make it a test image,
/// and its name in target/xcp. The QEMU harness boots them for the
/// self-tests (`qemu-tests/src/lib.rs`); no bundle xtask makes holds them.
pub const TEST_KERNELS: &[(&str, &str, &str, &str)] = &[
    (
        "toolstack-dom0",
        "toolstack-dom0",
        "selftest",
        "toolstack-dom0-test",
    ),
    ("xcp-testdom", "testdom", "selftest", "testdom-test.elf"),
    ("netdom", "netdom", "dma-escape", "netdom-test.elf"),
];

/// Test-only guests: package, binary and name in target/xcp. Built with
/// the test images (the QEMU tests and `cargo xtask bench vms` pass them
/// as guest files); never in the shipped bundle.
pub const TEST_GUESTS: &[(&str, &str, &str)] = &[("xcp-tinyvm", "tinyvm", "tinyvm.elf")];

/// `-p <pkg> ... --features <pkg>/<feature>,...` for the test images (and
/// `-p <pkg>` for the test guests).
pub fn test_kernel_args() -> Vec<String> {
    let mut args: Vec<String> = TEST_KERNELS
        .iter()
        .map(|(p, _, _, _)| p)
        .chain(TEST_GUESTS.iter().map(|(p, _, _)| p))
        .flat_map(|p| ["-p".to_string(), p.to_string()])
        .collect();
    let features: Vec<String> = TEST_KERNELS
        .iter()
        .map(|(p, _, f, _)| format!("{p}/{f}"))
        .collect();
    args.extend(["--features".to_string(), features.join(",")]);
    args
}

/// `-p <pkg>` for every kernel package.
pub fn kernel_package_args() -> Vec<String> {
    KERNELS
        .iter()
        .flat_map(|(p, _, _)| ["-p".to_string(), p.to_string()])
        .collect()
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// The built platform.
pub struct Platform {
    /// target/xcp
    pub dir: PathBuf,
    xen_cmdline: String,
}

impl Platform {
    /// A direct-boot launch with `dom0_cmdline`.
    pub fn launch(&self, dom0_cmdline: &str) -> Launch {
        Launch {
            media: Media::Direct {
                xen: self.dir.join("xen"),
                xen_cmdline: self.xen_cmdline.clone(),
                dom0: self.dir.join("toolstack-dom0"),
                dom0_cmdline: dom0_cmdline.to_string(),
                bundle: self.dir.join("bundle.cpio"),
            },
            memory_mib: 1024,
            timeout_secs: 90,
            devices: Default::default(),
        }
    }
}

/// The guest files of `build` / `iso`: `--guest FILE`, repeatable.
pub fn guest_options(args: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut guests = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match (word.as_str(), words.next()) {
            ("--guest", Some(file)) => guests.push(PathBuf::from(file)),
            ("--guest", None) => return Err("--guest takes a file".to_string()),
            (other, _) => return Err(format!("unknown option {other:?} (only --guest FILE)")),
        }
    }
    Ok(guests)
}

/// Builds everything but the ISO, the bundle with the guest files
/// `guests` (each as `/boot/guest/<name>`; dom0's memory grows by their
/// size, `xcp_boot::grow_dom0_mem`).
pub fn platform(guests: &[PathBuf]) -> Result<Platform, String> {
    // Check the guest files before the long build.
    let guest_entries = xcp_boot::guest_entries(guests)?;
    let root = workspace_root();
    crate::run(
        crate::cargo()
            .args(["build", "--release", "--target", "x86_64-unknown-none"])
            .args(kernel_package_args()),
    )?;
    let out = root.join("target/xcp");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let built = root.join("target/x86_64-unknown-none/release");
    let mut images = Vec::new();
    for (_, bin, entry) in KERNELS {
        let from = built.join(bin);
        // Every kernel also lands in target/xcp under its bundle name, so
        // tests can make bundles of their own.
        let name = entry.unwrap_or(bin);
        let image = std::fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        replace(&out.join(name), &image)?;
        // The bundle reads the copy: the test build below overwrites
        // cargo's.
        if let Some(name) = entry {
            images.push((name.to_string(), out.join(name)));
        }
    }
    // The test images, in a second invocation (see the module docs).
    crate::run(
        crate::cargo()
            .args(["build", "--release", "--target", "x86_64-unknown-none"])
            .args(test_kernel_args()),
    )?;
    let test_images = TEST_KERNELS
        .iter()
        .map(|(_, bin, _, name)| (bin, name))
        .chain(TEST_GUESTS.iter().map(|(_, bin, name)| (bin, name)));
    for (bin, name) in test_images {
        let from = built.join(bin);
        let image = std::fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        replace(&out.join(name), &image)?;
    }
    let config_path = root.join("boot/platform.toml");
    let (text, config) = xcp_boot::load_config(&config_path)?;
    replace(&out.join("platform.toml"), text.as_bytes())?;
    images.extend(xcp_boot::pvgrub_images(&out)?);
    images.extend(guest_entries);
    let bundle = xcp_boot::assemble_bundle(&text, &images)?;
    replace(&out.join("bundle.cpio"), &bundle)?;
    let xen_cmdline = xcp_boot::xen_cmdline_for(&config.platform.xen_cmdline, &bundle)?;
    let grub = xcp_boot::grub_cfg(&xen_cmdline, &config.platform.dom0_cmdline);
    replace(&out.join("grub.cfg"), grub.as_bytes())?;
    let xen = out.join("xen");
    if !xen.is_file() {
        let tmp = xen.with_extension(format!("tmp{}", std::process::id()));
        xcp_boot::unpack_xen(&tmp)?;
        std::fs::rename(&tmp, &xen).map_err(|e| format!("{}: {e}", xen.display()))?;
    }
    eprintln!(
        "platform built in {} ({} byte bundle)",
        out.display(),
        bundle.len()
    );
    if !guests.is_empty() {
        eprintln!("guest files in /boot/guest; Xen's command line: {xen_cmdline}");
    }
    Ok(Platform {
        dir: out,
        xen_cmdline,
    })
}

/// Puts `bytes` at `path` unless it holds them already, through a rename:
/// a QEMU starting meanwhile (a test, another `cargo xtask run`) reads the
/// old file or the new one, never a half-written one.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds the platform (with the guest files `guests`) and its ISO.
pub fn iso(guests: &[PathBuf]) -> Result<PathBuf, String> {
    let p = platform(guests)?;
    let grub = std::fs::read_to_string(p.dir.join("grub.cfg")).map_err(|e| e.to_string())?;
    let iso = p.dir.join("xcp.iso");
    xcp_boot::make_iso(
        &iso,
        &p.dir.join("toolstack-dom0"),
        &p.dir.join("bundle.cpio"),
        &grub,
    )?;
    Ok(iso)
}
