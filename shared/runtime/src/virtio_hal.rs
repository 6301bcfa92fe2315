//! `virtio_drivers::Hal` for a 64-bit PV domain that owns a passed-through
//! device behind the IOMMU: DMA memory from [`crate::dma`] (bus address =
//! machine address), BARs from [`crate::mmio`], and buffers shared in place
//! when they are machine-contiguous, through a bounce buffer otherwise.
//!
//! Read first: virtio-drivers' `Hal` docs (0.13), and the module docs of
//! `dma` and `mmio`. A driver's buffers (heap or stack) live in the direct
//! map; one that crosses into a pfn whose machine frame does not follow is
//! copied into a [`DmaRegion`] for the device and, for data the device
//! writes, copied back on `unshare`.

use alloc::collections::BTreeMap;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::dma::DmaRegion;
use crate::dma_plan;
use crate::paging::{nr_pages, pfn_to_mfn, VIRT_BASE};

/// Live bounce buffers by bus address: (virtual address, pages).
static BOUNCES: spin::Mutex<BTreeMap<u64, (u64, usize)>> = spin::Mutex::new(BTreeMap::new());
static SHARED_DIRECT: AtomicU64 = AtomicU64::new(0);
static SHARED_BOUNCED: AtomicU64 = AtomicU64::new(0);
/// A foreign bus address for the next receive buffer (0: none); see
/// [`escape_next_receive_buffer`].
#[cfg(feature = "dma-escape")]
static ESCAPE: AtomicU64 = AtomicU64::new(0);

/// The HAL; it has no state of its own beyond the bounce table.
pub struct XenHal;

/// How many buffers were shared in place and through bounce buffers.
pub fn share_counts() -> (u64, u64) {
    (
        SHARED_DIRECT.load(Ordering::Relaxed),
        SHARED_BOUNCED.load(Ordering::Relaxed),
    )
}

/// Bounce buffers currently lent to the device.
pub fn bounces_live() -> usize {
    BOUNCES.lock().len()
}

/// **Self-test only** (netdom's `dma-escape=`, netdom/DESIGN.md "DMA
/// confinement"): the next buffer shared for the device to write
/// (`DeviceToDriver`, a receive buffer) is given to the device at `bus`, a
/// machine address this domain does not own, instead of its own. The
/// buffer itself is never written by the device; the IOMMU must refuse the
/// device's write to `bus`. One buffer, once; nothing else arms it. Built
/// only with the `dma-escape` feature (netdom's test image).
#[cfg(feature = "dma-escape")]
pub fn escape_next_receive_buffer(bus: u64) {
    ESCAPE.store(bus, Ordering::Relaxed);
}

/// The bus address of `len` bytes at `va` if the device can use them in
/// place: inside the direct map and machine-contiguous.
fn direct_bus_addr(va: u64, len: u64) -> Option<u64> {
    let paddr = va.checked_sub(VIRT_BASE)?;
    if paddr.checked_add(len)? > nr_pages() * 4096 {
        return None;
    }
    dma_plan::direct_bus_addr(paddr, len, pfn_to_mfn)
}

// SAFETY: dma_alloc returns zeroed, page-aligned memory owned by nothing
// else until dma_dealloc (DmaRegion's contract); mmio_phys_to_virt returns
// only addresses of live MmioRegions, which the domain maps for as long as
// the driver runs; share returns addresses the device may use for exactly
// the buffer's bytes — except once when a self-test armed
// `escape_next_receive_buffer` (the `dma-escape` feature only): then the device is given a foreign address
// (dom0's bait frame) that the IOMMU must refuse, and the driver's own
// buffer is simply never filled, which is memory-safe for this domain.
unsafe impl Hal for XenHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match DmaRegion::alloc(pages) {
            Ok(region) => {
                let bus = region.bus_addr();
                (bus, region.into_raw())
            }
            Err(e) => {
                log::error!("virtio: no DMA memory for {pages} pages: {e:?}");
                // virtio-drivers treats bus address 0 as failure.
                (0, NonNull::dangling())
            }
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller passes back what dma_alloc returned, once.
        drop(unsafe { DmaRegion::from_raw(vaddr, pages) });
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let va = crate::mmio::phys_to_virt(paddr, size as u64)
            .unwrap_or_else(|| panic!("virtio: BAR range {paddr:#x}+{size:#x} is not mapped"));
        NonNull::new(va as *mut u8).expect("window addresses are not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len();
        #[cfg(feature = "dma-escape")]
        if direction == BufferDirection::DeviceToDriver {
            let foreign = ESCAPE.swap(0, Ordering::Relaxed);
            if foreign != 0 {
                log::warn!("virtio: receive buffer of {len} bytes handed to the device at foreign {foreign:#x} (dma-escape self-test)");
                // `unshare` finds no bounce for it and leaves the buffer.
                return foreign;
            }
        }
        if let Some(bus) = direct_bus_addr(va, len as u64) {
            SHARED_DIRECT.fetch_add(1, Ordering::Relaxed);
            return bus;
        }
        let pages = dma_plan::pages_spanned(0, len as u64) as usize;
        let mut bounce = DmaRegion::alloc(pages).expect("virtio: memory for a bounce buffer");
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller guarantees `buffer` is valid for reads and
            // not accessed by anyone else during this call.
            let src = unsafe { core::slice::from_raw_parts(va as *const u8, len) };
            bounce.bytes_mut()[..len].copy_from_slice(src);
        }
        let bus = bounce.bus_addr();
        let bounce_va = bounce.into_raw().as_ptr() as u64;
        BOUNCES.lock().insert(bus, (bounce_va, pages));
        SHARED_BOUNCED.fetch_add(1, Ordering::Relaxed);
        bus
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let Some((bounce_va, pages)) = BOUNCES.lock().remove(&paddr) else {
            return; // shared in place
        };
        let ptr = NonNull::new(bounce_va as *mut u8).expect("bounce buffers are not null");
        // SAFETY: `ptr`/`pages` came from into_raw in `share`, and the entry
        // was just removed, so this is the only taker.
        let bounce = unsafe { DmaRegion::from_raw(ptr, pages) };
        if direction != BufferDirection::DriverToDevice {
            let len = buffer.len();
            // SAFETY: the caller guarantees `buffer` is valid for writes and
            // not accessed by anyone else during this call.
            let dst = unsafe { core::slice::from_raw_parts_mut(buffer.as_ptr() as *mut u8, len) };
            // SAFETY: the bounce region has at least `len` bytes (sized in
            // `share`) and the device is done with it.
            let src = unsafe { core::slice::from_raw_parts(bounce.va() as *const u8, len) };
            dst.copy_from_slice(src);
        }
    }
}
