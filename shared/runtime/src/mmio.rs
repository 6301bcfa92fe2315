//! A passed-through device's memory BARs, mapped uncached into the window.
//!
//! Read first: xen/include/public/xen.h ("MMU-UPDATE REQUESTS": DOMID_IO),
//! xen/arch/x86/mm.c `get_page_from_l1e` and xen/include/xsm/dummy.h
//! `xsm_update_va_mapping`. Frames that are not RAM belong to Xen's `dom_io`;
//! when an L1 entry names one, Xen checks the *caller's* I/O-memory rights
//! (`XEN_DOMCTL_iomem_permission`, which dom0 grants for the device's BARs;
//! "DOMID_IO reverts to caller for privilege checks") and refuses (EPERM)
//! anything outside them, whichever owner the request names. So we map with
//! plain `update_va_mapping` (DOMID_SELF): its `_otherdomain` form naming
//! DOMID_IO is refused to a domU by Xen 4.17's default XSM policy (seen on
//! the rig: EPERM), while `mmu_update` would need the L1 entry's machine
//! address. Cache attributes in a PV L1 entry are only accepted from a
//! domain that has I/O rights or an assigned device (`l1_disallow_mask`);
//! device registers are mapped PCD|PWT, which Xen's PAT layout for PV guests
//! makes UC, so every load and store reaches the device in program order.
//!
//! Every live region is listed in a registry so the virtio HAL can turn a
//! BAR address into a pointer ([`phys_to_virt`]); a region leaves the
//! registry, and its window slots are cleared and freed, when its guard
//! drops.

use alloc::vec::Vec;

use xen_sys::xen::UVMF_INVLPG;
use xen_sys::xen::{PTE_ACCESSED, PTE_DIRTY, PTE_NX, PTE_PRESENT, PTE_RW, PTE_USER};
use xen_sys::Errno;

const PAGE: u64 = xen_sys::PAGE_SIZE as u64;
/// Page-level write-through (PAT index bit 0).
const PTE_PWT: u64 = 1 << 3;
/// Page-level cache disable (PAT index bit 1): with PWT, PAT entry 3 = UC.
const PTE_PCD: u64 = 1 << 4;
/// Present, writable, kernel-accessible (PV kernels run in ring 3), never
/// executed, uncached.
const MMIO_PROT: u64 =
    PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY | PTE_PCD | PTE_PWT | PTE_NX;

/// (first machine address, length, virtual address) of every live region.
static REGISTRY: spin::Mutex<Vec<(u64, u64, u64)>> = spin::Mutex::new(Vec::new());

/// Machine address range `[phys, phys + len)` of device memory, mapped
/// uncached at consecutive window slots; unmapped on drop.
#[derive(Debug)]
pub struct MmioRegion {
    phys: u64,
    len: u64,
    /// Address of the first mapped page (phys rounded down).
    base_va: u64,
    pages: usize,
}

impl MmioRegion {
    /// Maps `len` bytes of device memory at machine address `phys`. Fails
    /// with EPERM unless dom0 granted this domain the frames, ENOMEM when
    /// the window has no room, EINVAL for an empty or overflowing range.
    pub fn map(phys: u64, len: u64) -> Result<MmioRegion, Errno> {
        let end = phys.checked_add(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let first = phys & !(PAGE - 1);
        let pages = (end.div_ceil(PAGE) - first / PAGE) as usize;
        let base_va = crate::paging::take_window_run(pages).ok_or(Errno::ENOMEM)?;
        let mut region = MmioRegion {
            phys,
            len,
            base_va,
            pages: 0,
        };
        for i in 0..pages as u64 {
            let pte = (first + i * PAGE) | MMIO_PROT;
            // SAFETY: maps one device frame into a window slot this region
            // reserved and that is empty; Xen checks our right to the frame.
            // On failure the region drops and clears what was mapped.
            unsafe { xen_sys::mm::update_va_mapping(base_va + i * PAGE, pte, UVMF_INVLPG) }?;
            region.pages += 1;
        }
        // The slots not reached on failure were never mapped; on success
        // all are, and `pages` is what drop clears.
        REGISTRY.lock().push((phys, len, region.va()));
        Ok(region)
    }

    /// Where `phys` is mapped.
    pub fn va(&self) -> u64 {
        self.base_va + (self.phys & (PAGE - 1))
    }

    /// The machine address this region starts at.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: a region maps at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the 32-bit register at byte `offset` (volatile, uncached).
    pub fn read32(&self, offset: u64) -> u32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.len,
            "register out of range"
        );
        // SAFETY: in bounds (checked) of a mapping this guard owns; device
        // registers are read with one aligned volatile access.
        unsafe { core::ptr::read_volatile((self.va() + offset) as *const u32) }
    }

    /// Reads the 16-bit register at byte `offset` (volatile, uncached).
    pub fn read16(&self, offset: u64) -> u16 {
        assert!(
            offset.is_multiple_of(2) && offset + 2 <= self.len,
            "register out of range"
        );
        // SAFETY: in bounds (checked) of a mapping this guard owns; one
        // aligned volatile access.
        unsafe { core::ptr::read_volatile((self.va() + offset) as *const u16) }
    }

    /// Reads the 8-bit register at byte `offset` (volatile, uncached).
    pub fn read8(&self, offset: u64) -> u8 {
        assert!(offset < self.len, "register out of range");
        // SAFETY: in bounds (checked) of a mapping this guard owns; one
        // volatile byte access.
        unsafe { core::ptr::read_volatile((self.va() + offset) as *const u8) }
    }

    /// Writes the 8-bit register at byte `offset` (volatile, uncached);
    /// see [`MmioRegion::write16`] about pages Xen protects.
    pub fn write8(&self, offset: u64, value: u8) {
        assert!(offset < self.len, "register out of range");
        // SAFETY: in bounds (checked) of a device mapping this guard owns
        // (never RAM), one volatile byte access.
        unsafe { core::ptr::write_volatile((self.va() + offset) as *mut u8, value) }
    }

    /// Writes the 16-bit register at byte `offset` (volatile, uncached).
    /// Xen maps pages it protects (an MSI-X table) read-only: a write there
    /// faults, so callers write only registers the device lets drivers
    /// write.
    pub fn write16(&self, offset: u64, value: u16) {
        assert!(
            offset.is_multiple_of(2) && offset + 2 <= self.len,
            "register out of range"
        );
        // SAFETY: in bounds (checked) of a device mapping this guard owns
        // (never RAM), one aligned volatile access.
        unsafe { core::ptr::write_volatile((self.va() + offset) as *mut u16, value) }
    }
}

impl Drop for MmioRegion {
    fn drop(&mut self) {
        let va = self.va();
        REGISTRY.lock().retain(|&(_, _, v)| v != va);
        let mut cleared = true;
        for i in 0..self.pages as u64 {
            // SAFETY: clears an entry of a slot this region owns; no pointer
            // into the region outlives the guard (the HAL hands them only to
            // a driver the owner drops first).
            let r =
                unsafe { xen_sys::mm::update_va_mapping(self.base_va + i * PAGE, 0, UVMF_INVLPG) };
            cleared &= r.is_ok();
        }
        // Slots whose entry could not be cleared are never reused; slots
        // past a failed mapping were never filled.
        let total = ((self.phys + self.len).div_ceil(PAGE) - self.phys / PAGE) as usize;
        if cleared {
            crate::paging::release_window_run(self.base_va, total);
        } else {
            log::error!(
                "mmio: could not unmap {:#x}; window slots leaked",
                self.phys
            );
        }
    }
}

/// The virtual address of `[phys, phys + len)` if a live [`MmioRegion`]
/// covers all of it.
pub fn phys_to_virt(phys: u64, len: u64) -> Option<u64> {
    let end = phys.checked_add(len)?;
    REGISTRY
        .lock()
        .iter()
        .find(|&&(p, l, _)| p <= phys && end <= p + l)
        .map(|&(p, _, va)| va + (phys - p))
}
