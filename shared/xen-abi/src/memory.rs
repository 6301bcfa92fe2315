//! The e820 entry of `XENMEM_memory_map` / `XENMEM_set_memory_map`
//! (xen/include/public/memory.h).
//!
//! Read first: memory.h (`struct xen_memory_map`: "Entries in the buffer are
//! in the same format as returned by the BIOS INT 0x15 EAX=0xE820 call") and
//! the ACPI spec, 15.1 "INT 15H, E820H": base, length, type, packed into 20
//! bytes. The type numbers are `XEN_HVM_MEMMAP_TYPE_*`
//! (`crate::hvm_start_info`), which are the e820 types.

use core::mem::{offset_of, size_of};

/// An e820 entry as `XENMEM_memory_map` returns it and
/// `XENMEM_set_memory_map` takes it: 20 bytes, packed.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// 1 = RAM, 2 = reserved, ...
    pub kind: u32,
}

/// Byte offsets of [`E820Entry`], for code that writes the table as bytes.
pub mod e820 {
    use super::*;

    /// `addr`
    pub const OFF_ADDR: usize = offset_of!(E820Entry, addr);
    /// `size`
    pub const OFF_SIZE: usize = offset_of!(E820Entry, size);
    /// `type`
    pub const OFF_TYPE: usize = offset_of!(E820Entry, kind);
    /// `sizeof` one entry (20).
    pub const OFF_END: usize = size_of::<E820Entry>();
}

const _: () = assert!(size_of::<E820Entry>() == 20);
