//! Guest files: kernels and ramdisks the bundle carries for XenAPI VMs, as
//! XCP's dom0 carries them in `/boot/guest`. `cargo xtask run --guest FILE`
//! packs FILE as entry `boot/guest/<FILE's name>`; a VM names it as
//! `PV_kernel` / `PV_ramdisk` = `/boot/guest/<name>`.
//!
//! Bootloaders: GRUB's Xen images (`grub-mkimage -O i386-xen_pvh` and
//! `-O x86_64-xen`, built by `cargo xtask build`), which a VM whose
//! `PV_bootloader` is `pygrub` boots to read its own `/boot/grub/grub.cfg`
//! from its disk: entries [`PVGRUB_PVH`] and [`PVGRUB_PV`].
//!
//! Guest files and bootloaders live in dom0's memory (Xen loads the whole
//! bundle there), so whoever packs them grows dom0's memory by their size
//! (xcp-boot `grow_dom0_mem`, [`guest_bytes`]).

use core::fmt;

use crate::Bundle;

/// Where guest files sit in the bundle.
pub const GUEST_PREFIX: &str = "boot/guest/";

/// GRUB for PVH guests (`grub-mkimage -O i386-xen_pvh`).
pub const PVGRUB_PVH: &str = "boot/bootloader/pvgrub-pvh.elf";
/// GRUB for PV guests (`grub-mkimage -O x86_64-xen`).
pub const PVGRUB_PV: &str = "boot/bootloader/pvgrub-pv.elf";
/// Every bootloader entry a bundle may carry.
pub const BOOTLOADERS: [&str; 2] = [PVGRUB_PVH, PVGRUB_PV];

/// Longest guest file name (a cpio name is short; a xenstore-sized value).
pub const MAX_GUEST_NAME: usize = 128;

/// Why a name cannot name a guest file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestNameError {
    /// The name is empty.
    Empty,
    /// The name is `.` or `..`.
    Dots,
    /// The name holds a `/` (it would name a directory).
    Slash,
    /// The name holds a NUL or another control character.
    Control,
    /// The name is longer than [`MAX_GUEST_NAME`] bytes.
    TooLong,
}

impl fmt::Display for GuestNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuestNameError::Empty => "the name is empty",
            GuestNameError::Dots => "the name is . or ..",
            GuestNameError::Slash => "the name holds a /",
            GuestNameError::Control => "the name holds a control character",
            GuestNameError::TooLong => "the name is longer than 128 bytes",
        })
    }
}

/// Checks that `name` can name a guest file (one path component).
pub fn check_guest_name(name: &str) -> Result<(), GuestNameError> {
    if name.is_empty() {
        return Err(GuestNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(GuestNameError::Dots);
    }
    if name.contains('/') {
        return Err(GuestNameError::Slash);
    }
    if name.chars().any(char::is_control) {
        return Err(GuestNameError::Control);
    }
    if name.len() > MAX_GUEST_NAME {
        return Err(GuestNameError::TooLong);
    }
    Ok(())
}

/// The guest file name of bundle entry `entry`, if it is a guest file.
pub fn guest_file_name(entry: &str) -> Option<&str> {
    let name = entry.strip_prefix(GUEST_PREFIX)?;
    check_guest_name(name).ok().map(|()| name)
}

/// Bytes the bundle's guest files and bootloaders hold: what dom0's
/// memory grows by for them.
pub fn guest_bytes(bundle: &Bundle<'_>) -> u64 {
    bundle
        .entries()
        .iter()
        .filter(|e| guest_file_name(e.name).is_some() || BOOTLOADERS.contains(&e.name))
        .map(|e| e.data.len() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_names_are_one_path_component() {
        assert_eq!(check_guest_name("vmlinux"), Ok(()));
        assert_eq!(check_guest_name("initrd-6.1.img"), Ok(()));
        assert_eq!(check_guest_name(""), Err(GuestNameError::Empty));
        assert_eq!(check_guest_name("."), Err(GuestNameError::Dots));
        assert_eq!(check_guest_name(".."), Err(GuestNameError::Dots));
        assert_eq!(check_guest_name("a/b"), Err(GuestNameError::Slash));
        assert_eq!(check_guest_name("../x"), Err(GuestNameError::Slash));
        assert_eq!(check_guest_name("a\0b"), Err(GuestNameError::Control));
        assert_eq!(check_guest_name("a\nb"), Err(GuestNameError::Control));
        let long = "x".repeat(MAX_GUEST_NAME + 1);
        assert_eq!(check_guest_name(&long), Err(GuestNameError::TooLong));
    }

    #[test]
    fn guest_entries_are_found_and_counted() {
        assert_eq!(guest_file_name("boot/guest/vmlinux"), Some("vmlinux"));
        assert_eq!(guest_file_name("boot/guest/"), None);
        assert_eq!(guest_file_name("boot/guest/a/b"), None);
        assert_eq!(guest_file_name("boot/guest/.."), None);
        assert_eq!(guest_file_name("testdom.elf"), None);
        let archive = crate::write_newc(&[
            ("platform.toml", b"x"),
            ("boot/guest/k", b"12345"),
            ("boot/guest/r", b"678"),
            ("netdom.elf", b"9999999"),
            (PVGRUB_PVH, b"ab"),
            ("boot/bootloader/other.elf", b"cdefg"),
        ]);
        let bundle = Bundle::parse(&archive).unwrap();
        assert_eq!(guest_bytes(&bundle), 10);
    }
}
