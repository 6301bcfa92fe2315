//! What one VBD may make stordom hold, and how many VBDs fit.
//!
//! read first: DESIGN.md "Bounds"; blkif.h (ring geometry,
//! indirect segments).
//!
//! Every bound a frontend can drive is a constant here, sized so that
//! [`MAX_VBDS`] VBDs together stay within [`BLKBACK_HEAP_BUDGET`] of
//! stordom's ~32 MiB heap:
//!
//! ```text
//! ring pages   MAX_QUEUES × (4096 << MAX_RING_PAGE_ORDER)   = 4 × 16 KiB =  65536
//! io buffers   IO_BYTES_PER_VBD (segments × 4 KiB + indirect pages)   = 524288
//! bookkeeping  MAX_REQUESTS_PER_VBD × REQUEST_OVERHEAD     = 64 × 1024  =  65536
//! fixed        VBD_FIXED (engine struct, queues, actions)               =   8192
//!                                                          VBD_MEMORY   = 663552
//! MAX_VBDS = 12:  12 × 663552 = 7962624 ≤ BLKBACK_HEAP_BUDGET = 8 MiB
//! ```
//!
//! The io buffers are the board's (it allocates one buffer per
//! [`crate::DiskIo`] of [`crate::DiskIo::buffer_len`] bytes and one per
//! [`crate::IndirectFetch`]), but the engine only hands out work while the
//! VBD's count stays within [`IO_BYTES_PER_VBD`] and
//! [`MAX_REQUESTS_PER_VBD`]; a request that does not fit waits on its
//! ring (back-pressure, as Linux blkback waits for a free `pending_req`)
//! until completions return budget. Each queue may hold 1/num_queues of
//! both, or one request of any size when it holds nothing: a busy queue
//! cannot starve its siblings, and since the largest request fits the
//! VBD's budget alone every queue makes progress. Per queue, requests in flight are bounded by
//! the ring itself (the frontend cannot have more outstanding than slots).

use crate::wire::{
    ring_slots, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, PAGE_SIZE,
    SEGMENTS_PER_INDIRECT_PAGE,
};

/// The largest ring we accept: `max-ring-page-order` (4 pages, 128 slots).
pub const MAX_RING_PAGE_ORDER: u32 = 2;
/// The most queues (rings) a VBD may have: `multi-queue-max-queues`.
pub const MAX_QUEUES: u32 = 4;
/// The most segments of an indirect request we accept
/// (`feature-max-indirect-segments`): 256 KiB per request.
pub const MAX_INDIRECT_SEGMENTS: u32 = 64;
/// Indirect pages the largest indirect request needs.
pub const MAX_INDIRECT_PAGES: usize =
    (MAX_INDIRECT_SEGMENTS as usize).div_ceil(SEGMENTS_PER_INDIRECT_PAGE);
/// Bytes of io buffers a VBD may have out with the board.
pub const IO_BYTES_PER_VBD: usize = 512 * 1024;
/// Requests a VBD may have out with the board (all queues together).
pub const MAX_REQUESTS_PER_VBD: usize = 64;
/// Bookkeeping bytes counted per request in flight: its segment list, its
/// pending record and its id in the in-flight set.
pub const REQUEST_OVERHEAD: usize = 1024;
/// The engine's own state per VBD beyond the per-request records.
pub const VBD_FIXED: usize = 8192;
/// Requests one [`crate::Vbd::poll`] of a queue takes off its ring, so a
/// busy frontend cannot hold the board's loop: the board serves the other
/// queues and VBDs, then polls again.
pub const REQUESTS_PER_POLL: usize = 32;
/// Everything one VBD may make stordom hold (see the module docs).
pub const VBD_MEMORY: usize = MAX_QUEUES as usize * (PAGE_SIZE << MAX_RING_PAGE_ORDER)
    + IO_BYTES_PER_VBD
    + MAX_REQUESTS_PER_VBD * REQUEST_OVERHEAD
    + VBD_FIXED;
/// stordom heap set aside for all VBDs' blkback state and io buffers.
pub const BLKBACK_HEAP_BUDGET: usize = 8 * 1024 * 1024;
/// VBDs stordom serves at once.
pub const MAX_VBDS: usize = 12;

/// Buffer bytes counted for a request of `segments` data pages and
/// `indirect_pages` indirect pages.
pub const fn io_cost(segments: usize, indirect_pages: usize) -> usize {
    (segments + indirect_pages) * PAGE_SIZE
}

const _: () = assert!(MAX_VBDS * VBD_MEMORY <= BLKBACK_HEAP_BUDGET, "VBDs fit");
const _: () = assert!(
    (MAX_VBDS + 1) * VBD_MEMORY > BLKBACK_HEAP_BUDGET,
    "MAX_VBDS is as many as fit"
);
const _: () = assert!(
    io_cost(MAX_INDIRECT_SEGMENTS as usize, MAX_INDIRECT_PAGES) <= IO_BYTES_PER_VBD,
    "the largest indirect request fits a VBD's budget alone"
);
const _: () = assert!(
    io_cost(BLKIF_MAX_SEGMENTS_PER_REQUEST, 0) <= IO_BYTES_PER_VBD,
    "the largest direct request fits"
);
const _: () = assert!(
    MAX_INDIRECT_PAGES <= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
    "indirect grefs fit the request"
);
const _: () = assert!(
    MAX_INDIRECT_SEGMENTS as usize * core::mem::size_of::<crate::request::Segment>() + 256
        <= REQUEST_OVERHEAD,
    "a request's records fit its overhead"
);
const _: () = assert!(ring_slots(MAX_RING_PAGE_ORDER) as usize >= MAX_REQUESTS_PER_VBD / 2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(MAX_INDIRECT_PAGES, 1);
        assert_eq!(VBD_MEMORY, 663_552);
        assert_eq!(io_cost(11, 0), 45_056);
    }
}
