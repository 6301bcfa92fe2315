//! Page-table hypercalls of a 64-bit PV guest: mmu_update, mmuext_op,
//! update_va_mapping and update_va_mapping_otherdomain.
//!
//! Read first: xen/include/public/xen.h ("MMU-UPDATE REQUESTS", "MMU EXTENDED
//! OPERATIONS"). A PV guest never writes its page tables directly: every
//! entry goes through Xen, which checks that the guest owns the frame.

use crate::hypercall;
use crate::xen::{DomId, MmuUpdate, MmuextOp};

/// Applies `updates` to page tables (or the M2P), on behalf of `foreigndom`'s
/// frames when it is not `DOMID_SELF`. Returns how many were applied.
///
/// # Safety
/// Each update must keep every mapping the program relies on valid.
#[cfg(target_arch = "x86_64")]
pub unsafe fn mmu_update(updates: &[MmuUpdate], foreigndom: DomId) -> Result<u64, crate::Errno> {
    let mut done: u32 = 0;
    // SAFETY: the array and `done` live across the call; the caller vouches
    // for the effect of each update.
    let ret = unsafe {
        hypercall::hypercall4(
            hypercall::MMU_UPDATE,
            updates.as_ptr() as u64,
            updates.len() as u64,
            core::ptr::addr_of_mut!(done) as u64,
            foreigndom as u64,
        )
    };
    crate::Errno::check(ret).map(|_| u64::from(done))
}

/// Runs extended MMU operations (pin, unpin, flush, new base pointer...).
///
/// # Safety
/// Each operation must keep every mapping the program relies on valid.
#[cfg(target_arch = "x86_64")]
pub unsafe fn mmuext_op(ops: &[MmuextOp], foreigndom: DomId) -> Result<u64, crate::Errno> {
    let mut done: u32 = 0;
    // SAFETY: the array and `done` live across the call.
    let ret = unsafe {
        hypercall::hypercall4(
            hypercall::MMUEXT_OP,
            ops.as_ptr() as u64,
            ops.len() as u64,
            core::ptr::addr_of_mut!(done) as u64,
            foreigndom as u64,
        )
    };
    crate::Errno::check(ret).map(|_| u64::from(done))
}

/// Sets the page-table entry mapping `va` to `pte`, with `UVMF_*` flush flags.
///
/// # Safety
/// `va` must lie in a range the program manages itself, and no live reference
/// may point into a page this unmaps or remaps.
#[cfg(target_arch = "x86_64")]
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<u64, crate::Errno> {
    // SAFETY: integer arguments; the caller vouches for the effect.
    crate::Errno::check(unsafe {
        hypercall::hypercall3(hypercall::UPDATE_VA_MAPPING, va, pte, flags)
    })
}

/// Like [`update_va_mapping`], with the frame in `pte` owned by `domid`.
///
/// # Safety
/// As for [`update_va_mapping`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn update_va_mapping_otherdomain(
    va: u64,
    pte: u64,
    flags: u64,
    domid: DomId,
) -> Result<u64, crate::Errno> {
    // SAFETY: integer arguments; the caller vouches for the effect.
    crate::Errno::check(unsafe {
        hypercall::hypercall4(
            hypercall::UPDATE_VA_MAPPING_OTHERDOMAIN,
            va,
            pte,
            flags,
            domid as u64,
        )
    })
}
