//! Machine-contiguous memory for device DMA in a 64-bit PV domain.
//!
//! Read first: xen/include/public/memory.h (`XENMEM_exchange`), Linux's
//! arch/x86/xen/mmu_pv.c `xen_create_contiguous_region`. A PV domain's
//! pseudo-physical frames are backed by arbitrary machine frames, but a
//! device addresses machine memory: with the IOMMU on, Xen maps a PV
//! domain's frames 1:1 (bus address = machine address) into the device's
//! IOMMU context, and confines the device to them. So a buffer the device
//! reads as one piece must be machine-contiguous.
//!
//! A region of 2^order pages is taken from the heap (contiguous in the
//! direct map, so contiguous pfns), its direct-map entries are cleared (Xen
//! only takes back frames nothing maps), and XENMEM_exchange trades its
//! 2^order single frames for one 2^order extent. Then the three views are
//! made to agree again for each pfn: the P2M entry (ours to write), the M2P
//! entry (`MMU_MACHPHYS_UPDATE`; Xen 4.17 already sets it for a PV domain,
//! we state it anyway as Linux does) and the direct-map entry. One page is
//! always contiguous, so single pages skip the exchange.
//!
//! The pure part (sizes, contiguity checks) is in [`crate::dma_plan`].

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use xen_sys::memory::{MemoryExchange, MemoryReservation};
use xen_sys::xen::{MmuUpdate, DOMID_SELF, MMU_MACHPHYS_UPDATE, UVMF_INVLPG};
use xen_sys::Errno;

use crate::dma_plan;
use crate::paging::{pfn_to_mfn, va_to_pfn, DATA_PROT};

const PAGE: usize = xen_sys::PAGE_SIZE;

static EXCHANGES: AtomicU64 = AtomicU64::new(0);

/// How many extents XENMEM_exchange has given this domain so far.
pub fn exchanges() -> u64 {
    EXCHANGES.load(Ordering::Relaxed)
}

/// Why DMA memory could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// Zero pages, or more than [`dma_plan::MAX_ORDER`] allows.
    BadSize(usize),
    /// The heap has no room.
    OutOfMemory,
    /// Xen refused the exchange (the original frames are back in place).
    Exchange(Errno),
}

/// `pages` pages of zeroed, machine-contiguous memory in the direct map;
/// returned to the heap on drop (its frames stay contiguous and ours).
#[derive(Debug)]
pub struct DmaRegion {
    va: NonNull<u8>,
    order: u32,
    pages: usize,
}

// SAFETY: the region is plain memory owned by this guard; nothing ties it to
// one thread.
unsafe impl Send for DmaRegion {}

impl DmaRegion {
    /// Allocates `pages` machine-contiguous pages (rounded up to a power of
    /// two underneath).
    pub fn alloc(pages: usize) -> Result<DmaRegion, DmaError> {
        let order = dma_plan::order_for(pages).ok_or(DmaError::BadSize(pages))?;
        let layout = layout(order);
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc(layout) };
        let va = NonNull::new(ptr).ok_or(DmaError::OutOfMemory)?;
        let region = DmaRegion { va, order, pages };
        if order > 0 {
            // On failure `region` drops and goes back to the heap: exchange
            // restored its original frames.
            exchange(va.as_ptr() as u64, order)?;
        }
        // SAFETY: the whole 2^order-page allocation is ours and mapped
        // writable (again, after an exchange).
        unsafe { core::ptr::write_bytes(va.as_ptr(), 0, PAGE << order) };
        let bus = region.bus_addr();
        let contiguous = dma_plan::machine_run(va_to_pfn(region.va()), 1 << order, pfn_to_mfn);
        assert_eq!(
            contiguous,
            Some(bus >> 12),
            "DMA region is machine-contiguous"
        );
        let pfn0 = va_to_pfn(region.va());
        for k in 0..1u64 << order {
            let pfn = crate::paging::mfn_to_pfn((bus >> 12) + k);
            assert_eq!(pfn, pfn0 + k, "M2P agrees with the P2M");
        }
        Ok(region)
    }

    /// Its address in the direct map.
    pub fn va(&self) -> u64 {
        self.va.as_ptr() as u64
    }

    /// Its pointer.
    pub fn ptr(&self) -> NonNull<u8> {
        self.va
    }

    /// The address the device uses (the machine address).
    pub fn bus_addr(&self) -> u64 {
        crate::paging::virt_to_machine(self.va()).expect("DMA memory is in the direct map")
    }

    /// Pages asked for.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Its bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `pages` pages from `va` are owned by this guard, which is
        // borrowed mutably.
        unsafe { core::slice::from_raw_parts_mut(self.va.as_ptr(), self.pages * PAGE) }
    }

    /// Gives up ownership: the region lives until [`DmaRegion::from_raw`]
    /// takes it back.
    pub fn into_raw(self) -> NonNull<u8> {
        let va = self.va;
        core::mem::forget(self);
        va
    }

    /// Takes back a region given up with [`DmaRegion::into_raw`].
    ///
    /// # Safety
    /// `va` and `pages` are what `into_raw` and `alloc` had, and the region
    /// was not taken back before.
    pub unsafe fn from_raw(va: NonNull<u8>, pages: usize) -> DmaRegion {
        let order = dma_plan::order_for(pages).expect("a size alloc accepted");
        DmaRegion { va, order, pages }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `alloc` with this very layout.
        unsafe { alloc::alloc::dealloc(self.va.as_ptr(), layout(self.order)) };
    }
}

fn layout(order: u32) -> Layout {
    Layout::from_size_align(PAGE << order, PAGE).expect("page-aligned power-of-two size")
}

/// Trades the 2^order frames behind direct-map range `va` for one extent.
fn exchange(va: u64, order: u32) -> Result<(), DmaError> {
    let n = 1usize << order;
    let pfn0 = va_to_pfn(va);
    let mut in_mfns = [0u64; 1 << dma_plan::MAX_ORDER];
    for (i, mfn) in in_mfns[..n].iter_mut().enumerate() {
        *mfn = pfn_to_mfn(pfn0 + i as u64).expect("heap frames are ours");
    }
    for i in 0..n as u64 {
        // SAFETY: the heap just gave us these pages and nothing references
        // them; Xen takes back only frames no page table maps.
        let r = unsafe { xen_sys::mm::update_va_mapping(va + i * 4096, 0, UVMF_INVLPG) };
        r.expect("unmap our own direct-map page");
    }
    // For a PV domain `out` holds the gpfn on the way in (Xen sets the M2P
    // from it) and the machine frame on the way out.
    let mut out = [pfn0];
    let mut op = MemoryExchange {
        in_: MemoryReservation {
            extent_start: in_mfns.as_mut_ptr(),
            nr_extents: n as u64,
            extent_order: 0,
            mem_flags: 0,
            domid: DOMID_SELF,
        },
        out: MemoryReservation {
            extent_start: out.as_mut_ptr(),
            nr_extents: 1,
            extent_order: order,
            mem_flags: 0,
            domid: DOMID_SELF,
        },
        nr_exchanged: 0,
    };
    // SAFETY: both extent lists live across the call, and the frames given
    // up are unmapped (above) and referenced by nothing else.
    let result = unsafe { xen_sys::memory::exchange(&mut op) };
    // One output extent: Xen exchanges all of it or none.
    let new_base = match result {
        Ok(_) if op.nr_exchanged == n as u64 => Some(out[0]),
        _ => None,
    };
    let mfns: [u64; 1 << dma_plan::MAX_ORDER] = match new_base {
        Some(base) => core::array::from_fn(|i| base + i as u64),
        None => in_mfns,
    };
    let mut m2p = [MmuUpdate::default(); 1 << dma_plan::MAX_ORDER];
    for i in 0..n {
        let pfn = pfn0 + i as u64;
        // SAFETY: the direct map and M2P are brought in line just below,
        // before anything reads this memory.
        unsafe { crate::paging::set_pfn_to_mfn(pfn, mfns[i]) };
        m2p[i] = MmuUpdate {
            ptr: (mfns[i] << 12) | MMU_MACHPHYS_UPDATE,
            val: pfn,
        };
    }
    // SAFETY: states pfn ↔ mfn for frames that are ours.
    let r = unsafe { xen_sys::mm::mmu_update(&m2p[..n], DOMID_SELF) };
    r.expect("M2P update of our own frames");
    for (i, mfn) in mfns[..n].iter().enumerate() {
        // SAFETY: maps our own frame back at the direct-map address of its
        // pfn (the entry cleared above).
        let r = unsafe {
            xen_sys::mm::update_va_mapping(
                va + i as u64 * 4096,
                (mfn << 12) | DATA_PROT,
                UVMF_INVLPG,
            )
        };
        r.expect("remap our own direct-map page");
    }
    match (new_base, result) {
        (Some(base), _) => {
            EXCHANGES.fetch_add(1, Ordering::Relaxed);
            log::debug!("dma: {n} frames from pfn {pfn0:#x} exchanged for mfns {base:#x}..");
            Ok(())
        }
        (None, Err(e)) => Err(DmaError::Exchange(e)),
        (None, Ok(_)) => Err(DmaError::Exchange(Errno::ENOMEM)),
    }
}
