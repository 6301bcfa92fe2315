//! Host tools that turn built domain images into a bootable platform: the
//! bundle (one cpio of every image plus `platform.toml`, since Xen hands dom0
//! a single module), `grub.cfg`, the ISO, and the QEMU command line.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use xcp_bundle::{Bundle, PlatformConfig};

pub mod qemu;

/// Where Debian's xen-hypervisor-4.17-amd64 installs Xen.
pub const XEN_GZ: &str = "/boot/xen-4.17-amd64.gz";

/// GRUB's modules in the images that boot VMs from their own disks:
/// partition tables, the file systems Linux distributions boot from,
/// what a distribution's `grub.cfg` uses (`search`, `test`, `loadenv`,
/// `linux`/`initrd`), and the kernel and initrd compressions.
pub const PVGRUB_MODULES: &[&str] = &[
    "part_msdos",
    "part_gpt",
    "ext2",
    "fat",
    "iso9660",
    "search",
    "search_fs_file",
    "search_fs_uuid",
    "search_label",
    "configfile",
    "normal",
    "linux",
    "echo",
    "test",
    "sleep",
    "loadenv",
    "xzio",
    "gzio",
    "lzopio",
    "zstd",
];

/// Builds GRUB's Xen images into `out` with Debian's grub-mkimage
/// (package grub-xen-bin): one for PVH guests (`i386-xen_pvh`) and one
/// for PV guests (`x86_64-xen`), each with `boot/pvgrub.cfg` embedded.
/// Returns their bundle entries.
///
/// The embedded configuration runs in GRUB's rescue parser, before the
/// `normal` module (no comments, no `if`): it finds the disk holding
/// `/boot/grub/grub.cfg` and makes it the prefix, and `normal` then runs
/// that grub.cfg, as pygrub reads it in xapi's dom0.
pub fn pvgrub_images(out: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("pvgrub.cfg");
    let mut entries = Vec::new();
    for (format, entry) in [
        ("i386-xen_pvh", xcp_bundle::PVGRUB_PVH),
        ("x86_64-xen", xcp_bundle::PVGRUB_PV),
    ] {
        let modules = Path::new("/usr/lib/grub").join(format);
        if !modules.is_dir() {
            return Err(format!(
                "{}: missing (Debian package grub-xen-bin, which `cargo xtask build` installs)",
                modules.display()
            ));
        }
        let file = out.join(format!("pvgrub-{format}.elf"));
        let status = Command::new("grub-mkimage")
            .args(["-O", format, "-p", "/boot/grub", "-c"])
            .arg(&config)
            .arg("-o")
            .arg(&file)
            .args(PVGRUB_MODULES)
            .status()
            .map_err(|e| format!("grub-mkimage: {e} (Debian package grub-common)"))?;
        if !status.success() {
            return Err(format!("grub-mkimage -O {format} failed: {status}"));
        }
        entries.push((entry.to_string(), file));
    }
    Ok(entries)
}

/// Reads and checks the platform config at `path`.
pub fn load_config(path: &Path) -> Result<(String, PlatformConfig), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = PlatformConfig::parse(&text).map_err(|e| e.to_string())?;
    Ok((text, config))
}

/// Builds the bundle: `platform.toml` first, then each `(name, file)` image.
/// Checks the result the way dom0 will (every configured image present).
pub fn assemble_bundle(config_text: &str, images: &[(String, PathBuf)]) -> Result<Vec<u8>, String> {
    let mut contents: Vec<(String, Vec<u8>)> = vec![(
        xcp_bundle::CONFIG_NAME.to_string(),
        config_text.as_bytes().to_vec(),
    )];
    for (name, path) in images {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        contents.push((name.clone(), data));
    }
    let files: Vec<(&str, &[u8])> = contents
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let archive = xcp_bundle::write_newc(&files);
    let parsed = Bundle::parse(&archive).map_err(|e| e.to_string())?;
    PlatformConfig::from_bundle(&parsed).map_err(|e| e.to_string())?;
    Ok(archive)
}

/// The bundle entries of guest files `files` (`cargo xtask run --guest
/// FILE`): each as `boot/guest/<its file name>`. Refuses a name that is
/// not one path component and two files of the same name.
pub fn guest_entries(files: &[PathBuf]) -> Result<Vec<(String, PathBuf)>, String> {
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("--guest {}: no file name in UTF-8", file.display()))?;
        xcp_bundle::check_guest_name(name)
            .map_err(|e| format!("--guest {}: {e}", file.display()))?;
        if !file.is_file() {
            return Err(format!("--guest {}: not a file", file.display()));
        }
        let entry = format!("{}{name}", xcp_bundle::GUEST_PREFIX);
        if let Some((_, other)) = entries.iter().find(|(e, _)| *e == entry) {
            return Err(format!(
                "--guest {} and --guest {} both name /boot/guest/{name}",
                other.display(),
                file.display()
            ));
        }
        entries.push((entry, file.clone()));
    }
    Ok(entries)
}

const MIB: u64 = 1 << 20;

/// Xen's command line with dom0's memory grown by `extra` bytes rounded
/// up to MiB: `dom0_mem=48M,max:48M` becomes `dom0_mem=50M,max:50M` for
/// 1.5 MiB. Guest files live in dom0's memory (Xen loads the whole bundle
/// there), so dom0's heap budget (xenapi `budget.rs`) holds only if dom0
/// grows by their size. Needs `dom0_mem=<N>M` (and `max:<N>M`, if given)
/// in MiB.
pub fn grow_dom0_mem(xen_cmdline: &str, extra: u64) -> Result<String, String> {
    let grow = extra.div_ceil(MIB);
    if grow == 0 {
        return Ok(xen_cmdline.to_string());
    }
    let mut found = false;
    let mut words = Vec::new();
    for word in xen_cmdline.split(' ') {
        let Some(value) = word.strip_prefix("dom0_mem=") else {
            words.push(word.to_string());
            continue;
        };
        found = true;
        let mut parts = Vec::new();
        for part in value.split(',') {
            let (prefix, size) = match part.strip_prefix("max:") {
                Some(size) => ("max:", size),
                None => ("", part),
            };
            let mib: u64 = size
                .strip_suffix('M')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    format!("dom0_mem={value}: dom0's memory must be given in MiB (<N>M) to grow it for guest files")
                })?;
            parts.push(format!("{prefix}{}M", mib + grow));
        }
        words.push(format!("dom0_mem={}", parts.join(",")));
    }
    if !found {
        return Err(format!(
            "Xen's command line has no dom0_mem= to grow for guest files: {xen_cmdline}"
        ));
    }
    Ok(words.join(" "))
}

/// Xen's command line for booting `archive`: `xen_cmdline` with dom0's
/// memory grown by the bundle's guest files ([`grow_dom0_mem`]).
pub fn xen_cmdline_for(xen_cmdline: &str, archive: &[u8]) -> Result<String, String> {
    let bundle = Bundle::parse(archive).map_err(|e| e.to_string())?;
    grow_dom0_mem(xen_cmdline, xcp_bundle::guest::guest_bytes(&bundle))
}

/// The GRUB configuration: Xen by multiboot2 with its command line, dom0 and
/// the bundle as modules, everything on the serial console.
pub fn grub_cfg(xen_cmdline: &str, dom0_cmdline: &str) -> String {
    format!(
        "# Generated by xcp-boot: Xen 4.17, the xcp-rs dom0 and the platform bundle.\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         set timeout=0\n\
         set default=0\n\
         menuentry \"xcp-rs\" {{\n\
         \x20   multiboot2 /boot/xen.gz {xen_cmdline}\n\
         \x20   module2 /boot/toolstack-dom0 {dom0_cmdline}\n\
         \x20   module2 /boot/bundle.cpio\n\
         }}\n"
    )
}

/// Writes Xen uncompressed to `out` (QEMU's `-kernel` cannot load the .gz).
pub fn unpack_xen(out: &Path) -> Result<(), String> {
    let gz = std::fs::File::open(XEN_GZ)
        .map_err(|e| format!("{XEN_GZ}: {e} (install xen-hypervisor-4.17-amd64)"))?;
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let status = Command::new("gzip")
        .arg("-dc")
        .stdin(gz)
        .stdout(file)
        .status()
        .map_err(|e| format!("gzip: {e}"))?;
    if !status.success() {
        return Err(format!("gzip -dc {XEN_GZ} failed: {status}"));
    }
    Ok(())
}

/// Makes a BIOS-bootable ISO with grub-mkrescue (grub-pc-bin, xorriso):
/// `/boot/xen.gz`, `/boot/toolstack-dom0`, `/boot/bundle.cpio` and grub.cfg.
pub fn make_iso(out: &Path, dom0: &Path, bundle: &Path, grub_cfg: &str) -> Result<(), String> {
    let root = out.with_extension("iso.d");
    let _ = std::fs::remove_dir_all(&root);
    let boot = root.join("boot");
    std::fs::create_dir_all(boot.join("grub")).map_err(|e| e.to_string())?;
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, boot.join(to)).map_err(|e| format!("{}: {e}", from.display()))
    };
    copy(Path::new(XEN_GZ), "xen.gz")?;
    copy(dom0, "toolstack-dom0")?;
    copy(bundle, "bundle.cpio")?;
    std::fs::write(boot.join("grub/grub.cfg"), grub_cfg).map_err(|e| e.to_string())?;
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(&root)
        .output()
        .map_err(|e| {
            format!("grub-mkrescue: {e} (install grub-pc-bin grub-common xorriso mtools)")
        })?;
    if !output.status.success() {
        return Err(format!(
            "grub-mkrescue failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_names_xen_dom0_and_bundle() {
        let cfg = grub_cfg("console=com1 dom0_mem=64M", "test-exit");
        assert!(cfg.contains("multiboot2 /boot/xen.gz console=com1 dom0_mem=64M\n"));
        assert!(cfg.contains("module2 /boot/toolstack-dom0 test-exit\n"));
        assert!(cfg.contains("module2 /boot/bundle.cpio\n"));
        assert!(cfg.contains("serial --unit=0"));
    }

    #[test]
    fn dom0_memory_grows_by_the_guest_files_in_whole_mib() {
        let line = "console=com1 dom0_mem=48M,max:48M dom0_max_vcpus=1";
        assert_eq!(grow_dom0_mem(line, 0).unwrap(), line);
        assert_eq!(
            grow_dom0_mem(line, 1).unwrap(),
            "console=com1 dom0_mem=49M,max:49M dom0_max_vcpus=1"
        );
        assert_eq!(
            grow_dom0_mem(line, 3 * MIB / 2).unwrap(),
            "console=com1 dom0_mem=50M,max:50M dom0_max_vcpus=1"
        );
        assert_eq!(
            grow_dom0_mem("dom0_mem=64M", 2 * MIB).unwrap(),
            "dom0_mem=66M"
        );
        assert!(grow_dom0_mem("dom0_mem=1G", 1).unwrap_err().contains("MiB"));
        assert!(grow_dom0_mem("console=com1", 1)
            .unwrap_err()
            .contains("no dom0_mem="));
    }

    #[test]
    fn guest_files_are_packed_under_boot_guest_and_grow_dom0() {
        let dir = std::env::temp_dir().join(format!("xcp-boot-guest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("other")).unwrap();
        let kernel = dir.join("vmlinux");
        std::fs::write(&kernel, vec![7u8; (MIB + 1) as usize]).unwrap();
        let again = dir.join("other/vmlinux");
        std::fs::write(&again, b"x").unwrap();
        let entries = guest_entries(std::slice::from_ref(&kernel)).unwrap();
        assert_eq!(
            entries,
            [("boot/guest/vmlinux".to_string(), kernel.clone())]
        );
        let err = guest_entries(&[kernel.clone(), again]).unwrap_err();
        assert!(err.contains("both name /boot/guest/vmlinux"), "{err}");
        assert!(guest_entries(&[dir.join("..")]).is_err());
        assert!(guest_entries(&[dir.join("missing")])
            .unwrap_err()
            .contains("not a file"));
        // The shipped xen_cmdline, the bundle with the guest file: dom0
        // grows by 2 MiB (1 MiB + 1 byte, rounded up).
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("platform.toml");
        let (text, config) = load_config(&path).unwrap();
        let config_only: String = text.split("\n[[domain]]").next().unwrap().to_string();
        let archive = assemble_bundle(&config_only, &entries).unwrap();
        let line = xen_cmdline_for(&config.platform.xen_cmdline, &archive).unwrap();
        assert!(config.platform.xen_cmdline.contains("dom0_mem=49M,max:49M"));
        assert!(line.contains("dom0_mem=51M,max:51M"), "{line}");
        let bundle = Bundle::parse(&archive).unwrap();
        assert_eq!(
            bundle.get("boot/guest/vmlinux").unwrap().data.len(),
            (MIB + 1) as usize
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shipped_platform_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("platform.toml");
        let (_, config) = load_config(&path).unwrap();
        assert_eq!(config.platform.name, "xcp-rs");
        assert!(config.platform.xen_cmdline.contains("dom0_mem="));
    }

    #[test]
    fn bundles_carry_config_and_images_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("xcp-boot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("t.elf");
        std::fs::write(&image, b"\x7fELF...").unwrap();
        let config = "[platform]\nname = \"t\"\n[[domain]]\nname = \"t\"\nimage = \"t.elf\"\nmemory_mib = 4\n";
        let archive = assemble_bundle(config, &[("t.elf".into(), image.clone())]).unwrap();
        let bundle = Bundle::parse(&archive).unwrap();
        assert_eq!(bundle.entries()[0].name, "platform.toml");
        assert_eq!(bundle.get("t.elf").unwrap().data, b"\x7fELF...");
        // An image the config names but the bundle lacks is refused here, not at boot.
        let err = assemble_bundle(config, &[]).unwrap_err();
        assert!(err.contains("not in the bundle"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
