//! The PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h): what a
//! PVH guest finds at `%ebx` when it enters 32-bit protected mode.
//!
//! Read first: arch-x86/hvm/start_info.h and docs/misc/pvh.pandoc. Version 0
//! has no memory map (ask `XENMEM_memory_map`); version 1 adds `memmap_*`.

use core::mem::{offset_of, size_of};

/// `XEN_HVM_START_MAGIC_VALUE`: "xEn3" with the 0x80 bit of the "E" set.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `XEN_HVM_MEMMAP_TYPE_RAM`
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// `XEN_HVM_MEMMAP_TYPE_RESERVED`
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// `XEN_HVM_MEMMAP_TYPE_ACPI`
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// `XEN_HVM_MEMMAP_TYPE_NVS`
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// `XEN_HVM_MEMMAP_TYPE_UNUSABLE`
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// `XEN_HVM_MEMMAP_TYPE_DISABLED`
pub const XEN_HVM_MEMMAP_TYPE_DISABLED: u32 = 6;
/// `XEN_HVM_MEMMAP_TYPE_PMEM`
pub const XEN_HVM_MEMMAP_TYPE_PMEM: u32 = 7;

/// `struct hvm_start_info`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Version of this structure (0 or 1).
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Number of modules.
    pub nr_modules: u32,
    /// Physical address of the `hvm_modlist_entry` array.
    pub modlist_paddr: u64,
    /// Physical address of the command line.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP.
    pub rsdp_paddr: u64,
    /// Version 1: physical address of the `hvm_memmap_table_entry` array.
    pub memmap_paddr: u64,
    /// Version 1: entries in the memory map (0: none given).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct hvm_modlist_entry`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Physical address of its command line.
    pub cmdline_paddr: u64,
    /// Reserved.
    pub reserved: u64,
}

/// `struct hvm_memmap_table_entry`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmMemmapTableEntry {
    /// Base address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*` (C field `type`).
    pub r#type: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// Byte offsets of `struct hvm_start_info` and its two tables, for code
/// that writes them as bytes (the PVH domain builder). Derived from the
/// layouts above; `tests/headers.rs` pins them to the header's numbers.
pub mod offsets {
    use super::*;

    /// `magic`
    pub const OFF_MAGIC: usize = offset_of!(HvmStartInfo, magic);
    /// `version`
    pub const OFF_VERSION: usize = offset_of!(HvmStartInfo, version);
    /// `flags`
    pub const OFF_FLAGS: usize = offset_of!(HvmStartInfo, flags);
    /// `nr_modules`
    pub const OFF_NR_MODULES: usize = offset_of!(HvmStartInfo, nr_modules);
    /// `modlist_paddr`
    pub const OFF_MODLIST_PADDR: usize = offset_of!(HvmStartInfo, modlist_paddr);
    /// `cmdline_paddr`
    pub const OFF_CMDLINE_PADDR: usize = offset_of!(HvmStartInfo, cmdline_paddr);
    /// `rsdp_paddr`
    pub const OFF_RSDP_PADDR: usize = offset_of!(HvmStartInfo, rsdp_paddr);
    /// `memmap_paddr` (version 1)
    pub const OFF_MEMMAP_PADDR: usize = offset_of!(HvmStartInfo, memmap_paddr);
    /// `memmap_entries` (version 1)
    pub const OFF_MEMMAP_ENTRIES: usize = offset_of!(HvmStartInfo, memmap_entries);
    /// `sizeof(struct hvm_start_info)`
    pub const OFF_END: usize = size_of::<HvmStartInfo>();
    /// `hvm_modlist_entry.paddr`
    pub const OFF_MOD_PADDR: usize = offset_of!(HvmModlistEntry, paddr);
    /// `hvm_modlist_entry.size`
    pub const OFF_MOD_SIZE: usize = offset_of!(HvmModlistEntry, size);
    /// `hvm_modlist_entry.cmdline_paddr`
    pub const OFF_MOD_CMDLINE_PADDR: usize = offset_of!(HvmModlistEntry, cmdline_paddr);
    /// `sizeof(struct hvm_modlist_entry)`
    pub const OFF_MOD_END: usize = size_of::<HvmModlistEntry>();
    /// `hvm_memmap_table_entry.addr`
    pub const OFF_MEMMAP_ADDR: usize = offset_of!(HvmMemmapTableEntry, addr);
    /// `hvm_memmap_table_entry.size`
    pub const OFF_MEMMAP_SIZE: usize = offset_of!(HvmMemmapTableEntry, size);
    /// `hvm_memmap_table_entry.type`
    pub const OFF_MEMMAP_TYPE: usize = offset_of!(HvmMemmapTableEntry, r#type);
    /// `sizeof(struct hvm_memmap_table_entry)`
    pub const OFF_MEMMAP_END: usize = size_of::<HvmMemmapTableEntry>();
}

const _: () = assert!(size_of::<HvmStartInfo>() == 56);
const _: () = assert!(size_of::<HvmModlistEntry>() == 32);
const _: () = assert!(size_of::<HvmMemmapTableEntry>() == 24);
