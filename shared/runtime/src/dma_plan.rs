//! DMA bookkeeping with no hypercalls: region sizes and machine-contiguity
//! checks, tested on the host. [`crate::dma`] and the virtio HAL use them.

/// Largest region [`crate::dma::DmaRegion`] hands out: 2^4 pages (64 KiB),
/// enough for a 1024-entry split virtqueue; Xen caps a domU's extents at
/// order 9 anyway.
pub const MAX_ORDER: u32 = 4;

const PAGE: u64 = xen_sys::PAGE_SIZE as u64;

/// The extent order that holds `pages` pages, or None for zero or more
/// than 2^[`MAX_ORDER`].
pub fn order_for(pages: usize) -> Option<u32> {
    if pages == 0 || pages > 1 << MAX_ORDER {
        return None;
    }
    Some(pages.next_power_of_two().trailing_zeros())
}

/// Pages a buffer of `len` bytes starting `offset` bytes into a page spans.
pub fn pages_spanned(offset: u64, len: u64) -> u64 {
    (offset % PAGE + len).div_ceil(PAGE)
}

/// If the `n` frames from `first_pfn` are backed by consecutive machine
/// frames (per `pfn_to_mfn`), the first one.
pub fn machine_run(first_pfn: u64, n: u64, pfn_to_mfn: impl Fn(u64) -> Option<u64>) -> Option<u64> {
    let base = pfn_to_mfn(first_pfn)?;
    for i in 1..n {
        if pfn_to_mfn(first_pfn + i)? != base.checked_add(i)? {
            return None;
        }
    }
    Some(base)
}

/// The bus (machine) address of `len` bytes at pseudo-physical address
/// `paddr`, if the device can reach them as one piece (no copy needed).
pub fn direct_bus_addr(
    paddr: u64,
    len: u64,
    pfn_to_mfn: impl Fn(u64) -> Option<u64>,
) -> Option<u64> {
    if len == 0 {
        return None;
    }
    let offset = paddr % PAGE;
    let mfn = machine_run(paddr / PAGE, pages_spanned(offset, len), pfn_to_mfn)?;
    Some(mfn * PAGE + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders() {
        assert_eq!(order_for(0), None);
        assert_eq!(order_for(1), Some(0));
        assert_eq!(order_for(2), Some(1));
        assert_eq!(order_for(3), Some(2));
        assert_eq!(order_for(16), Some(4));
        assert_eq!(order_for(17), None);
    }

    #[test]
    fn spans() {
        assert_eq!(pages_spanned(0, 4096), 1);
        assert_eq!(pages_spanned(1, 4096), 2);
        assert_eq!(pages_spanned(4000, 96), 1);
        assert_eq!(pages_spanned(4000, 97), 2);
        assert_eq!(pages_spanned(8192 + 10, 1), 1);
    }

    /// pfn 10..13 → mfn 100..103; 13 → 200 (a break); 14 → 201; 20 not ours.
    fn p2m(pfn: u64) -> Option<u64> {
        match pfn {
            10..=12 => Some(90 + pfn),
            13 => Some(200),
            14 => Some(201),
            _ => None,
        }
    }

    #[test]
    fn runs_stop_at_breaks_and_foreign_frames() {
        assert_eq!(machine_run(10, 3, p2m), Some(100));
        assert_eq!(machine_run(10, 4, p2m), None);
        assert_eq!(machine_run(13, 2, p2m), Some(200));
        assert_eq!(machine_run(14, 2, p2m), None);
        assert_eq!(machine_run(20, 1, p2m), None);
        assert_eq!(machine_run(u64::MAX, 1, |_| Some(u64::MAX)), Some(u64::MAX));
        assert_eq!(machine_run(0, 2, |_| Some(u64::MAX)), None);
    }

    #[test]
    fn buffers_within_a_run_are_direct_others_are_not() {
        // Inside one page.
        assert_eq!(
            direct_bus_addr(10 * 4096 + 8, 100, p2m),
            Some(100 * 4096 + 8)
        );
        // Across pfn 11→12 (machine-contiguous).
        assert_eq!(
            direct_bus_addr(11 * 4096 + 4000, 200, p2m),
            Some(101 * 4096 + 4000)
        );
        // Across pfn 12→13 (not contiguous): needs a bounce buffer.
        assert_eq!(direct_bus_addr(12 * 4096 + 4000, 200, p2m), None);
        // Ends exactly at a page boundary: one page only.
        assert_eq!(direct_bus_addr(12 * 4096, 4096, p2m), Some(102 * 4096));
        assert_eq!(direct_bus_addr(12 * 4096, 0, p2m), None);
        assert_eq!(direct_bus_addr(20 * 4096, 1, p2m), None);
    }
}
