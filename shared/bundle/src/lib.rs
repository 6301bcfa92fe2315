//! The platform bundle: one cpio "newc" archive holding every domain image
//! and `platform.toml`, because Xen hands dom0 only one boot module.
//!
//! Read first: cpio(5) ("New ASCII Format"): a 110-byte header of the magic
//! `070701` and 13 eight-digit hex fields, the NUL-terminated name padded to
//! 4 bytes, the data padded to 4 bytes; the archive ends with an entry named
//! `TRAILER!!!`. The reader borrows from the archive and never copies;
//! every length is checked before use, so a corrupt bundle is an error value,
//! never a fault.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
mod cpio;
pub mod guest;
pub mod management;

pub use config::{DomainConfig, PlatformConfig};
pub use cpio::{write_newc, Bundle, BundleError, Entry, MAX_ENTRIES};
pub use guest::{
    check_guest_name, guest_file_name, GuestNameError, BOOTLOADERS, GUEST_PREFIX, PVGRUB_PV,
    PVGRUB_PVH,
};
pub use management::Management;

/// The name of the platform configuration inside the bundle.
pub const CONFIG_NAME: &str = "platform.toml";
