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

/// `struct xen_remove_from_physmap`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RemoveFromPhysmap {
    /// Domain whose physmap changes.
    pub domid: DomId,
    /// The guest frame to empty.
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

pub use xen_abi::memory::E820Entry;

/// `struct xen_foreign_memory_map`: `XENMEM_set_memory_map`'s argument, a
/// domain and its e820.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForeignMemoryMap {
    /// The domain whose map is set.
    pub domid: DomId,
    /// The map (`nr_entries` entries at `buffer`).
    pub map: MemoryMap,
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

/// Calls a reservation sub-op (`increase`/`decrease_reservation`,
/// `populate_physmap`) on `extents`; returns how many extents were done
/// (possibly fewer than asked: the caller checks).
///
/// # Safety
/// As for [`memory_op`]; `extents` is read and (for increase and populate)
/// written by Xen.
#[cfg(target_arch = "x86_64")]
unsafe fn reservation_op(
    cmd: u32,
    domid: DomId,
    extent_order: u32,
    mem_flags: u32,
    extents: &mut [XenPfn],
) -> Result<u64, crate::Errno> {
    let mut arg = MemoryReservation {
        extent_start: extents.as_mut_ptr(),
        nr_extents: extents.len() as u64,
        extent_order,
        mem_flags,
        domid,
    };
    // SAFETY: `arg` and the extent list (nr_extents long) live across the
    // call; the caller vouches for the effect of the sub-op.
    unsafe { memory_op(cmd, &mut arg) }
}

/// Backs the guest frames `gpfns` of `domid` with fresh memory, each an
/// extent of 2^`extent_order` pages; returns the number of extents populated.
///
/// # Safety
/// The frames must be unpopulated holes the program expects to fill.
#[cfg(target_arch = "x86_64")]
pub unsafe fn populate_physmap(
    domid: DomId,
    extent_order: u32,
    mem_flags: u32,
    gpfns: &mut [XenPfn],
) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    unsafe {
        reservation_op(
            XENMEM_POPULATE_PHYSMAP,
            domid,
            extent_order,
            mem_flags,
            gpfns,
        )
    }
}

/// Gives the frames `gpfns` of `domid` back to Xen; returns the number of
/// extents released.
///
/// # Safety
/// Nothing may still reference the released frames (no mapping, no grant).
#[cfg(target_arch = "x86_64")]
pub unsafe fn decrease_reservation(
    domid: DomId,
    extent_order: u32,
    gpfns: &mut [XenPfn],
) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract; the caller gave up the frames.
    unsafe { reservation_op(XENMEM_DECREASE_RESERVATION, domid, extent_order, 0, gpfns) }
}

/// Allocates `mfns.len()` extents to `domid` and writes their machine frames
/// into `mfns` (PV); returns the number of extents allocated.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn increase_reservation(
    domid: DomId,
    extent_order: u32,
    mem_flags: u32,
    mfns: &mut [XenPfn],
) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    unsafe {
        reservation_op(
            XENMEM_INCREASE_RESERVATION,
            domid,
            extent_order,
            mem_flags,
            mfns,
        )
    }
}

/// Exchanges `exchange.in_` for `exchange.out`; progress is in `nr_exchanged`.
///
/// # Safety
/// The guest handles in both reservations must be valid across the call, and
/// nothing may still reference the frames given up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn exchange(exchange: &mut MemoryExchange) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    unsafe { memory_op(XENMEM_EXCHANGE, exchange) }
}

/// Maps `idx` of `space` (`XENMAPSPACE_*`) at guest frame `gpfn` of `domid`.
///
/// # Safety
/// Whatever `gpfn` held before is replaced: nothing may still reference it.
#[cfg(target_arch = "x86_64")]
pub unsafe fn add_to_physmap(
    domid: DomId,
    space: u32,
    idx: u64,
    gpfn: XenPfn,
) -> Result<(), crate::Errno> {
    let mut arg = AddToPhysmap {
        domid,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: `arg` lives across the call; the caller vouches for the frame.
    unsafe { memory_op(XENMEM_ADD_TO_PHYSMAP, &mut arg) }?;
    Ok(())
}

/// Empties guest frame `gpfn` of `domid` (what was mapped there, e.g. a
/// grant-table frame, goes back to its owner; a RAM page is freed).
///
/// # Safety
/// Nothing may still reference what `gpfn` held.
#[cfg(target_arch = "x86_64")]
pub unsafe fn remove_from_physmap(domid: DomId, gpfn: XenPfn) -> Result<(), crate::Errno> {
    let mut arg = RemoveFromPhysmap { domid, gpfn };
    // SAFETY: `arg` lives across the call; the caller vouches for the frame.
    unsafe { memory_op(XENMEM_REMOVE_FROM_PHYSMAP, &mut arg) }?;
    Ok(())
}

/// Fills `buf` with this domain's e820 memory map; returns the entries written.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn memory_map(buf: &mut [E820Entry]) -> Result<usize, crate::Errno> {
    let mut arg = MemoryMap {
        nr_entries: buf.len() as u32,
        buffer: buf.as_mut_ptr(),
    };
    // SAFETY: `arg` and `buf` (nr_entries entries) live across the call.
    unsafe { memory_op(XENMEM_MEMORY_MAP, &mut arg) }?;
    Ok((arg.nr_entries as usize).min(buf.len()))
}

/// Sets `domid`'s e820 memory map (what it reads with `XENMEM_memory_map`)
/// to `entries`.
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_memory_map(domid: DomId, entries: &mut [E820Entry]) -> Result<(), crate::Errno> {
    let mut arg = ForeignMemoryMap {
        domid,
        map: MemoryMap {
            nr_entries: entries.len() as u32,
            buffer: entries.as_mut_ptr(),
        },
    };
    // SAFETY: `arg` and `entries` (nr_entries of them) live across the call;
    // Xen only reads them.
    unsafe { memory_op(XENMEM_SET_MEMORY_MAP, &mut arg) }?;
    Ok(())
}

/// Fills `buf` with the host's e820 memory map (privileged); returns the
/// entries written.
///
/// # Safety
/// Must run in a privileged Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn machine_memory_map(buf: &mut [E820Entry]) -> Result<usize, crate::Errno> {
    let mut arg = MemoryMap {
        nr_entries: buf.len() as u32,
        buffer: buf.as_mut_ptr(),
    };
    // SAFETY: `arg` and `buf` (nr_entries entries) live across the call.
    unsafe { memory_op(XENMEM_MACHINE_MEMORY_MAP, &mut arg) }?;
    Ok((arg.nr_entries as usize).min(buf.len()))
}

/// Returns `domid`'s current reservation in pages.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn current_reservation(domid: DomId) -> Result<u64, crate::Errno> {
    let mut arg = domid;
    // SAFETY: the sub-op reads one domid_t, which lives across the call.
    unsafe { memory_op(XENMEM_CURRENT_RESERVATION, &mut arg) }
}

/// Returns `domid`'s maximum reservation in pages.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn maximum_reservation(domid: DomId) -> Result<u64, crate::Errno> {
    let mut arg = domid;
    // SAFETY: the sub-op reads one domid_t, which lives across the call.
    unsafe { memory_op(XENMEM_MAXIMUM_RESERVATION, &mut arg) }
}
