//! `memory_op` (xen/include/public/memory.h): reservations, the memory map,
//! exchange and add_to_physmap.

use crate::hypercall;
use crate::xen::{DomId, XenPfn};

/// `XENMEM_increase_reservation`
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// `XENMEM_decrease_reservation`
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// `XENMEM_maximum_ram_page`
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// `XENMEM_current_reservation`
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// `XENMEM_maximum_reservation`
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// `XENMEM_populate_physmap`
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// `XENMEM_add_to_physmap`
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_memory_map`
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// `XENMEM_machine_memory_map`
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// `XENMEM_exchange`
pub const XENMEM_EXCHANGE: u32 = 11;
/// `XENMEM_set_memory_map`
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// `XENMEM_maximum_gpfn`
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// `XENMEM_remove_from_physmap`
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;

/// `XENMAPSPACE_shared_info`
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `XENMAPSPACE_gmfn`
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `XENMAPSPACE_gmfn_range`
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;

/// `struct xen_memory_reservation`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MemoryReservation {
    /// Guest handle: the extent list (in: gpfns to populate / release;
    /// out for increase_reservation: mfns).
    pub extent_start: *mut XenPfn,
    /// Number of extents.
    pub nr_extents: u64,
    /// Each extent is 2^extent_order pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    /// The domain whose reservation changes.
    pub domid: DomId,
}

/// `struct xen_memory_exchange`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MemoryExchange {
    /// Pages to give up.
    pub in_: MemoryReservation,
    /// Pages to receive.
    pub out: MemoryReservation,
    /// Progress, for restarts.
    pub nr_exchanged: u64,
}

/// `struct xen_add_to_physmap`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AddToPhysmap {
    /// Domain whose physmap changes.
    pub domid: DomId,
    /// Number of pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`
    pub space: u32,
    /// Index into the space.
    pub idx: u64,
    /// Where the page appears.
    pub gpfn: XenPfn,
}

/// `struct xen_memory_map`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MemoryMap {
    /// In: capacity of `buffer` in entries; out: entries written.
    pub nr_entries: u32,
    /// Guest handle: an array of e820 entries.
    pub buffer: *mut E820Entry,
}

/// An e820 entry as XENMEM_memory_map returns it.
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

/// Calls `memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` expects, valid across the call, and
/// the operation must not take away memory the program still uses.
#[cfg(target_arch = "x86_64")]
pub unsafe fn memory_op<T>(cmd: u32, arg: *mut T) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    crate::Errno::check(unsafe {
        hypercall::hypercall2(hypercall::MEMORY_OP, cmd as u64, arg as u64)
    })
}
