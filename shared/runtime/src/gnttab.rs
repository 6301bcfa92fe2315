//! Grant tables v1: granting our frames to a peer, mapping a peer's grants
//! into the window, and batched GNTTABOP_copy.
//!
//! Read first: xen/include/public/grant_table.h. Our table is set up with
//! GNTTABOP_setup_table and mapped into window slots. A grant entry is
//! published by writing `domid` and `frame`, a write barrier, then `flags`;
//! it is revoked only when neither GTF_reading nor GTF_writing is set (the
//! peer no longer maps it), by atomically swapping `flags` to 0.
//!
//! Every grant and mapping we hold is bounded: our table has
//! [`TABLE_FRAMES`] × 512 entries, and mappings are bounded by window slots.
//! Mappings are guards that unmap on drop, so error paths give them back.

use core::sync::atomic::{fence, AtomicU16, Ordering};

use xen_sys::grant_table::{
    self as gt, GnttabCopy, GnttabMapGrantRef, GnttabUnmapGrantRef, GrantRef, GNTMAP_HOST_MAP,
    GNTMAP_READONLY, GNTTAB_NR_RESERVED_ENTRIES, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY,
    GTF_WRITING,
};
use xen_sys::xen::{DomId, DOMID_SELF};

use crate::slots::Slots;

/// Frames of our own grant table (512 v1 entries each).
pub const TABLE_FRAMES: usize = 4;
const ENTRIES: usize = TABLE_FRAMES * 512;

/// Why a grant operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The table is not set up.
    NotReady,
    /// No free grant reference or window slot.
    Exhausted,
    /// The peer still maps the grant: access cannot end yet.
    InUse,
    /// Not a reference we granted.
    BadRef,
    /// Xen refused (`GNTST_*` status or errno).
    Xen(gt::GnttabError),
}

struct Table {
    entries: u64,
    refs: Slots,
}

static TABLE: spin::Mutex<Option<Table>> = spin::Mutex::new(None);

/// Sets up our grant table and maps it; called once by boot code that needs
/// grants (domains that only map others' grants need not).
pub fn init() -> Result<(), GrantError> {
    let mut table = TABLE.lock();
    if table.is_some() {
        return Ok(());
    }
    let mut frames = [0u64; TABLE_FRAMES];
    // SAFETY: `frames` is TABLE_FRAMES long and lives across the call.
    unsafe { gt::setup_table(DOMID_SELF, &mut frames) }.map_err(GrantError::Xen)?;
    let first =
        crate::paging::map_machine_frames(&frames, true).map_err(|_| GrantError::Exhausted)?;
    let mut refs = Slots::new(ENTRIES);
    for _ in 0..GNTTAB_NR_RESERVED_ENTRIES {
        refs.take();
    }
    *table = Some(Table {
        entries: first,
        refs,
    });
    Ok(())
}

fn entry_ptr(base: u64, gref: GrantRef) -> *mut gt::GrantEntryV1 {
    (base as *mut gt::GrantEntryV1).wrapping_add(gref as usize)
}

fn flags_of(base: u64, gref: GrantRef) -> &'static AtomicU16 {
    // SAFETY: the table stays mapped for the domain's life and `flags` is an
    // aligned u16 that Xen updates atomically, so we access it atomically.
    unsafe { AtomicU16::from_ptr(core::ptr::addr_of_mut!((*entry_ptr(base, gref)).flags)) }
}

/// Grants `domid` access to our frame `pfn`; returns the reference.
pub fn grant_access(domid: DomId, pfn: u64, readonly: bool) -> Result<GrantRef, GrantError> {
    let mfn = crate::paging::pfn_to_mfn(pfn).ok_or(GrantError::BadRef)?;
    let mut guard = TABLE.lock();
    let table = guard.as_mut().ok_or(GrantError::NotReady)?;
    let gref = table.refs.take().ok_or(GrantError::Exhausted)? as GrantRef;
    let entry = entry_ptr(table.entries, gref);
    // SAFETY: the entry is ours (its flags are 0, so Xen ignores it) and in
    // the mapped table; domid and frame must be visible before flags.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*entry).domid), domid);
    }
    // SAFETY: as above.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*entry).frame), mfn as u32);
    }
    fence(Ordering::Release);
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    flags_of(table.entries, gref).store(flags, Ordering::Release);
    Ok(gref)
}

/// Ends access to `gref`; refuses while the peer still maps it.
pub fn end_access(gref: GrantRef) -> Result<(), GrantError> {
    let mut guard = TABLE.lock();
    let table = guard.as_mut().ok_or(GrantError::NotReady)?;
    if gref < GNTTAB_NR_RESERVED_ENTRIES || !table.refs.is_taken(gref as usize) {
        return Err(GrantError::BadRef);
    }
    let flags = flags_of(table.entries, gref);
    let mut current = flags.load(Ordering::Acquire);
    loop {
        if current & (GTF_READING | GTF_WRITING) != 0 {
            return Err(GrantError::InUse);
        }
        match flags.compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => current = now,
        }
    }
    table.refs.release(gref as usize);
    Ok(())
}

/// Grants we currently hold for peers.
pub fn grants_outstanding() -> usize {
    TABLE
        .lock()
        .as_ref()
        .map_or(0, |t| t.refs.taken() - GNTTAB_NR_RESERVED_ENTRIES as usize)
}

/// A peer's grant mapped into the window; unmapped on drop.
pub struct GrantMapping {
    slot: crate::paging::WindowSlot,
    handle: u32,
}

impl GrantMapping {
    /// Where the granted page is mapped.
    pub fn va(&self) -> u64 {
        self.slot.va()
    }

    /// Volatile access to the granted page.
    pub fn view(&self) -> crate::shared_page::PageView<'_> {
        // SAFETY: the grant is mapped for as long as this guard lives.
        unsafe { crate::shared_page::PageView::new(self.va()) }
    }
}

impl Drop for GrantMapping {
    fn drop(&mut self) {
        let mut op = [GnttabUnmapGrantRef {
            host_addr: self.slot.va(),
            dev_bus_addr: 0,
            handle: self.handle,
            status: 0,
        }];
        // SAFETY: unmaps the mapping this guard owns; no reference into the
        // page outlives the guard.
        let r = unsafe { gt::unmap_grant_refs(&mut op) };
        if r.is_err() || gt::check_status(op[0].status).is_err() {
            // Keep the slot out of circulation rather than reuse a live PTE.
            self.slot.leak();
            log::error!(
                "grant unmap failed: handle {} status {}",
                self.handle,
                op[0].status
            );
        }
    }
}

/// Maps `gref` of domain `domid` into the window.
pub fn map_grant(domid: DomId, gref: GrantRef, readonly: bool) -> Result<GrantMapping, GrantError> {
    let slot = crate::paging::WindowSlot::take().ok_or(GrantError::Exhausted)?;
    let mut op = [GnttabMapGrantRef {
        host_addr: slot.va(),
        flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
        r#ref: gref,
        dom: domid,
        status: 0,
        handle: 0,
        dev_bus_addr: 0,
    }];
    // SAFETY: maps into a window slot we own and that is empty.
    unsafe { gt::map_grant_refs(&mut op) }
        .map_err(|e| GrantError::Xen(gt::GnttabError::Errno(e)))?;
    gt::check_status(op[0].status).map_err(GrantError::Xen)?;
    Ok(GrantMapping {
        slot,
        handle: op[0].handle,
    })
}

/// Runs a batch of GNTTABOP_copy operations; fails on the first bad status.
pub fn copy(ops: &mut [GnttabCopy]) -> Result<(), GrantError> {
    // SAFETY: each op names grants/frames by reference, not by our pointers;
    // Xen checks every access.
    unsafe { gt::copy(ops) }.map_err(|e| GrantError::Xen(gt::GnttabError::Errno(e)))?;
    for op in ops.iter() {
        gt::check_status(op.status).map_err(GrantError::Xen)?;
    }
    Ok(())
}

/// One side of a grant copy.
#[derive(Clone, Copy, Debug)]
pub enum CopyEnd {
    /// A peer's grant.
    Grant {
        /// The granting domain.
        domid: DomId,
        /// Its grant reference.
        gref: GrantRef,
        /// Offset in the page.
        offset: u16,
    },
    /// One of our own frames.
    Local {
        /// Our pfn.
        pfn: u64,
        /// Offset in the page.
        offset: u16,
    },
}

impl CopyEnd {
    fn encode(self) -> Result<(gt::GnttabCopyPtr, bool), GrantError> {
        Ok(match self {
            CopyEnd::Grant {
                domid,
                gref,
                offset,
            } => (
                gt::GnttabCopyPtr {
                    u: gt::GnttabCopyPtrU { r#ref: gref },
                    domid,
                    offset,
                },
                true,
            ),
            CopyEnd::Local { pfn, offset } => (
                gt::GnttabCopyPtr {
                    // A PV guest's frames are named by machine frame.
                    u: gt::GnttabCopyPtrU {
                        gmfn: crate::paging::pfn_to_mfn(pfn).ok_or(GrantError::BadRef)?,
                    },
                    domid: DOMID_SELF,
                    offset,
                },
                false,
            ),
        })
    }
}

/// Builds one GNTTABOP_copy operation (`len` must not cross a page).
pub fn copy_op(source: CopyEnd, dest: CopyEnd, len: u16) -> Result<GnttabCopy, GrantError> {
    let (source, source_gref) = source.encode()?;
    let (dest, dest_gref) = dest.encode()?;
    let mut flags = 0;
    if source_gref {
        flags |= gt::GNTCOPY_SOURCE_GREF;
    }
    if dest_gref {
        flags |= gt::GNTCOPY_DEST_GREF;
    }
    Ok(GnttabCopy {
        source,
        dest,
        len,
        flags,
        status: 0,
    })
}
