//! Core types of xen/include/public/xen.h for x86_64.
//!
//! The layouts and constants live in `xen-abi` (no `unsafe`) and are
//! re-exported here so `xen_sys::xen::...` paths keep working; what stays is
//! the read of Xen's machine-to-phys table, which needs `unsafe`.

pub use xen_abi::xen::*;

/// Reads the machine-to-phys entry of `mfn` from Xen's read-only M2P table.
///
/// # Safety
/// Only valid inside a 64-bit PV guest, where Xen maps the table at
/// [`MACH2PHYS_VIRT_START`]; `mfn` must be a frame the guest owns.
#[cfg(target_arch = "x86_64")]
pub unsafe fn machine_to_phys(mfn: u64) -> u64 {
    let table = MACH2PHYS_VIRT_START as *const u64;
    // SAFETY: Xen maps the M2P table read-only at this address in every PV
    // guest; the caller promises we are one and that mfn is in range.
    unsafe { core::ptr::read_volatile(table.add(mfn as usize)) }
}
