//! A run of another domain's frames mapped at consecutive addresses, for
//! as long as a guard lives (dom0's domain builder lends a guest's own RAM
//! to the kernel decompressor this way).
//!
//! Read first: xen/include/public/xen.h ("MMU-UPDATE REQUESTS": the
//! `foreigndom` argument), xen/arch/x86/mm.c `mod_l1_entry` (for a
//! translated — HVM/PVH — page owner the frame in the entry is a *gfn*,
//! looked up in the owner's p2m) and `do_mmu_update` (the low 16 bits of
//! `foreigndom` name the page owner; the tables stay ours).
//!
//! The region sits 64 MiB above the window, under the same L2 table (made
//! at boot), so it costs nothing while unused: its L1 tables (one per
//! 2 MiB mapped, 4 KiB each) are taken from the frame allocator when a run
//! is mapped and given back when it is unmapped. One run at a time (dom0
//! builds one domain at a time): a second is refused with EBUSY. The
//! mappings are filled 64 entries per `mmu_update`, so 32 MiB costs 128
//! hypercalls to map and as many to clear, instead of 8,192 each.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use xen_sys::xen::{MmuUpdate, MmuextOp, DOMID_SELF, MMUEXT_TLB_FLUSH_LOCAL, PTE_NX, UVMF_INVLPG};
use xen_sys::Errno;

use crate::frames::Pfn;
use crate::paging::{
    alloc_frame, free_frame, pfn_to_mfn, pfn_to_va, DATA_PROT, RO_PROT, TABLE_PROT, WINDOW_BASE,
};

const PAGE: u64 = xen_sys::PAGE_SIZE as u64;
/// Where runs are mapped: 64 MiB above the window's start, L2 entries
/// 32 and up of the window's L2 table.
pub const RUN_BASE: u64 = WINDOW_BASE + (64 << 20);
/// The longest run: 64 MiB (twice the 32 MiB xz dictionary of Linux's
/// `xz_wrap.sh`), 32 L1 tables while mapped.
pub const RUN_MAX_PAGES: usize = 16384;
const ENTRIES: usize = 512;
const L1_TABLES: usize = RUN_MAX_PAGES / ENTRIES;
/// `mmu_update` entries per call (1 KiB on the stack).
const BATCH: usize = 64;
const _: () = assert!(RUN_BASE.is_multiple_of(PAGE * ENTRIES as u64));
const _: () =
    assert!((RUN_BASE >> 21) & 511 >= 32 && ((RUN_BASE >> 21) & 511) + L1_TABLES as u64 <= 512);

/// Machine frame of the L2 table covering the window and the run region
/// (recorded by boot).
static L2_MFN: AtomicU64 = AtomicU64::new(0);
/// A run is mapped (or its region could not be cleared and is given up).
static BUSY: AtomicBool = AtomicBool::new(false);

/// Boot records the L2 table the runs hang their L1 tables from.
pub(crate) fn set_l2(mfn: u64) {
    L2_MFN.store(mfn, Ordering::Release);
}

/// One L1 table of a run, by how far it got (so drop undoes just that).
#[derive(Clone, Copy)]
enum Table {
    /// Not taken.
    None,
    /// A frame of ours, still mapped writable in the direct map.
    Writable(Pfn),
    /// Zeroed and mapped read-only, not yet a page table.
    ReadOnly(Pfn),
    /// Hooked into the L2 table: a live page table.
    Hooked(Pfn),
}

/// `count` frames of another domain mapped writable (never executable:
/// dom0 does not run guest bytes) at consecutive addresses from
/// [`RUN_BASE`]; unmapped, and the L1 tables given back, on drop.
pub struct ForeignRun {
    pages: usize,
    tables: [Table; L1_TABLES],
}

impl ForeignRun {
    /// Maps frames `first..first + count` of `domid` (gfns for an HVM or
    /// PVH domain, machine frames for a PV one). EINVAL for an empty or
    /// overflowing run, ENOSPC above [`RUN_MAX_PAGES`], EBUSY while another
    /// run is mapped, ENOMEM without frames for the tables, or Xen's error
    /// for a frame it would not map (the run is then cleared again).
    ///
    /// The bytes are shared with `domid`: map only a domain that does not
    /// run (one under construction), or treat them as hostile.
    pub fn map(domid: u16, first: u64, count: usize) -> Result<ForeignRun, Errno> {
        if count == 0
            || first
                .checked_add(count as u64)
                .is_none_or(|e| e > (1 << 40))
        {
            return Err(Errno::EINVAL);
        }
        Self::map_each(domid, count, |page| first + page as u64)
    }

    /// Maps `frames` of `domid`, in order, at consecutive addresses: a PV
    /// domain's RAM by the machine frames its p2m lists. Errors as for
    /// [`ForeignRun::map`].
    pub fn map_frames(domid: u16, frames: &[u64]) -> Result<ForeignRun, Errno> {
        if frames.is_empty() || frames.iter().any(|&f| f >= 1 << 40) {
            return Err(Errno::EINVAL);
        }
        Self::map_each(domid, frames.len(), |page| frames[page])
    }

    /// Maps `count` frames of `domid`, the `page`th being `frame(page)`.
    fn map_each(
        domid: u16,
        count: usize,
        frame: impl Fn(usize) -> u64,
    ) -> Result<ForeignRun, Errno> {
        if count > RUN_MAX_PAGES {
            return Err(Errno::ENOSPC);
        }
        let l2_mfn = L2_MFN.load(Ordering::Acquire);
        if l2_mfn == 0 {
            return Err(Errno::EINVAL);
        }
        if BUSY
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Errno::EBUSY);
        }
        // From here on, drop undoes whatever was done.
        let mut run = ForeignRun {
            pages: count,
            tables: [Table::None; L1_TABLES],
        };
        let first_l2 = ((RUN_BASE >> 21) & 511) as usize;
        for t in 0..count.div_ceil(ENTRIES) {
            let pfn = alloc_frame().map_err(|_| Errno::ENOMEM)?;
            run.tables[t] = Table::Writable(pfn);
            let va = pfn_to_va(pfn);
            // SAFETY: the frame was just handed out to us, is mapped
            // writable in the direct map and nothing else refers to it.
            unsafe { core::ptr::write_bytes(va as *mut u8, 0, PAGE as usize) };
            let mfn = pfn_to_mfn(pfn).expect("an allocated frame is ours");
            // SAFETY: remaps a frame we own (and nothing reads through a
            // reference) read-only, so Xen accepts it as a page table.
            unsafe { xen_sys::mm::update_va_mapping(va, (mfn << 12) | RO_PROT, UVMF_INVLPG) }?;
            run.tables[t] = Table::ReadOnly(pfn);
            let hook = [MmuUpdate {
                ptr: (l2_mfn << 12) + ((first_l2 + t) as u64) * 8,
                val: (mfn << 12) | TABLE_PROT,
            }];
            // SAFETY: fills an empty entry of the run region's L2 (ours,
            // nothing maps there) with a zeroed table: it maps nothing yet.
            unsafe { xen_sys::mm::mmu_update(&hook, DOMID_SELF) }?;
            run.tables[t] = Table::Hooked(pfn);
        }
        let mut batch = [MmuUpdate::default(); BATCH];
        let mut at = 0usize;
        while at < count {
            let n = BATCH.min(count - at);
            for (i, slot) in batch[..n].iter_mut().enumerate() {
                let page = at + i;
                *slot = MmuUpdate {
                    ptr: (run.table_mfn(page / ENTRIES) << 12) + (page % ENTRIES) as u64 * 8,
                    val: (frame(page) << 12) | DATA_PROT | PTE_NX,
                };
            }
            // SAFETY: fills empty entries of the run's own L1 tables (no
            // reference into the region exists yet) with `domid`'s frames;
            // Xen checks dom0 may map them. On failure drop clears them.
            unsafe { xen_sys::mm::mmu_update(&batch[..n], domid) }?;
            at += n;
        }
        Ok(run)
    }

    fn table_mfn(&self, t: usize) -> u64 {
        match self.tables[t] {
            Table::Hooked(pfn) => pfn_to_mfn(pfn).expect("a table frame is ours"),
            _ => unreachable!("entries are written only into hooked tables"),
        }
    }

    /// Pages mapped.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The run's bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `map` succeeded, so every page of the region's first
        // `pages` pages maps a frame writable until this guard drops; the
        // guard is borrowed mutably, so no other reference exists.
        unsafe { core::slice::from_raw_parts_mut(RUN_BASE as *mut u8, self.pages * PAGE as usize) }
    }

    /// Clears every entry and unhooks and frees the tables; false if the
    /// region could not be cleared (it is then given up for good).
    fn unmap(&mut self) -> bool {
        let first_l2 = ((RUN_BASE >> 21) & 511) as usize;
        let l2_mfn = L2_MFN.load(Ordering::Acquire);
        let mut clean = true;
        let mut batch = [MmuUpdate::default(); BATCH];
        for t in 0..L1_TABLES {
            let Table::Hooked(pfn) = self.tables[t] else {
                continue;
            };
            let mfn = pfn_to_mfn(pfn).expect("a table frame is ours");
            let entries = ENTRIES.min(self.pages - t * ENTRIES);
            let mut at = 0;
            while at < entries {
                let n = BATCH.min(entries - at);
                for (i, slot) in batch[..n].iter_mut().enumerate() {
                    *slot = MmuUpdate {
                        ptr: (mfn << 12) + ((at + i) * 8) as u64,
                        val: 0,
                    };
                }
                // SAFETY: clears entries of this run's own L1 (clearing an
                // empty one is a no-op); the guard is being dropped, so no
                // reference into the region is left.
                clean &= unsafe { xen_sys::mm::mmu_update(&batch[..n], DOMID_SELF) }.is_ok();
                at += n;
            }
        }
        let flush = [MmuextOp {
            cmd: MMUEXT_TLB_FLUSH_LOCAL,
            ..MmuextOp::default()
        }];
        // SAFETY: a TLB flush changes no mapping.
        clean &= unsafe { xen_sys::mm::mmuext_op(&flush, DOMID_SELF) }.is_ok();
        if !clean {
            // Some foreign frame may still be mapped: keep the tables (and
            // the region) rather than hand a live page table back.
            return false;
        }
        for t in 0..L1_TABLES {
            let (pfn, hooked) = match self.tables[t] {
                Table::None => continue,
                Table::Writable(pfn) => (pfn, None),
                Table::ReadOnly(pfn) => (pfn, Some(false)),
                Table::Hooked(pfn) => (pfn, Some(true)),
            };
            let pfn = match hooked {
                None => pfn,
                Some(hooked) => {
                    if hooked {
                        let unhook = [MmuUpdate {
                            ptr: (l2_mfn << 12) + ((first_l2 + t) as u64) * 8,
                            val: 0,
                        }];
                        // SAFETY: unhooks this run's own, now empty, L1.
                        if unsafe { xen_sys::mm::mmu_update(&unhook, DOMID_SELF) }.is_err() {
                            clean = false;
                            continue;
                        }
                    }
                    let mfn = pfn_to_mfn(pfn).expect("a table frame is ours");
                    // SAFETY: the frame is no page table any more (unhooked,
                    // or never hooked); mapping it writable again in the
                    // direct map is how every frame of ours is mapped.
                    let r = unsafe {
                        xen_sys::mm::update_va_mapping(
                            pfn_to_va(pfn),
                            (mfn << 12) | DATA_PROT,
                            UVMF_INVLPG,
                        )
                    };
                    if r.is_err() {
                        clean = false;
                        continue;
                    }
                    pfn
                }
            };
            self.tables[t] = Table::None;
            if free_frame(pfn).is_err() {
                log::error!("run table frame {pfn} freed twice");
            }
        }
        clean
    }
}

impl Drop for ForeignRun {
    fn drop(&mut self) {
        if self.unmap() {
            BUSY.store(false, Ordering::Release);
        } else {
            log::error!("foreign run: could not clear its mappings; the run region is given up");
        }
    }
}
