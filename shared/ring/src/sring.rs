//! The shared ring header and slot geometry (`struct __name##_sring`).
//!
//! read first: io/ring.h, `DEFINE_RING_TYPES`, `SHARED_RING_INIT`, `__RING_SIZE`.
//!
//! | offset | size | field                        |
//! |-------:|-----:|------------------------------|
//! | 0      | 4    | req_prod (front writes)      |
//! | 4      | 4    | req_event (back writes)      |
//! | 8      | 4    | rsp_prod (back writes)       |
//! | 12     | 4    | rsp_event (front writes)     |
//! | 16     | 4    | pvt (netif/tapif private)    |
//! | 20     | 44   | __pad                        |
//! | 64     | ...  | `ring[RING_SIZE]` slots      |

use crate::{RingEntry, RingError, SharedPage, MAX_ENTRY_SIZE};

/// Offset of req_prod.
pub const REQ_PROD: usize = 0;
/// Offset of req_event.
pub const REQ_EVENT: usize = 4;
/// Offset of rsp_prod.
pub const RSP_PROD: usize = 8;
/// Offset of rsp_event.
pub const RSP_EVENT: usize = 12;
/// Offset of the 4-byte `pvt` union.
pub const PVT: usize = 16;
/// Offset of `__pad[44]`.
pub const PAD: usize = 20;
/// Size of the header; the first slot starts here.
pub const HEADER_SIZE: usize = 64;

/// `__RD32`: rounds down to a power of two (0 stays 0).
pub const fn round_down_pow2(x: u32) -> u32 {
    if x == 0 {
        0
    } else {
        1 << (31 - x.leading_zeros())
    }
}

/// The slot size of a ring of `Req`/`Rsp`: the size of the C union.
pub const fn slot_size<Req: RingEntry, Rsp: RingEntry>() -> usize {
    if Req::SIZE > Rsp::SIZE {
        Req::SIZE
    } else {
        Rsp::SIZE
    }
}

/// `__RING_SIZE`: slots of `slot` bytes fitting a `page_len` page after the
/// header, rounded down to a power of two.
pub const fn ring_size(page_len: usize, slot: usize) -> u32 {
    if slot == 0 || page_len <= HEADER_SIZE {
        return 0;
    }
    let n = (page_len - HEADER_SIZE) / slot;
    let n = if n > u32::MAX as usize {
        u32::MAX
    } else {
        n as u32
    };
    round_down_pow2(n)
}

/// Checks the geometry of a ring of `Req`/`Rsp` on `page`; returns RING_SIZE.
pub(crate) fn checked_ring_size<P: SharedPage, Req: RingEntry, Rsp: RingEntry>(
    page: &P,
) -> Result<u32, RingError> {
    if Req::SIZE == 0 || Rsp::SIZE == 0 || Req::SIZE > MAX_ENTRY_SIZE || Rsp::SIZE > MAX_ENTRY_SIZE
    {
        return Err(RingError::BadGeometry);
    }
    match ring_size(page.len(), slot_size::<Req, Rsp>()) {
        0 => Err(RingError::BadGeometry),
        n => Ok(n),
    }
}

/// Offset of the slot holding ring index `idx` on a ring of `nr_ents` slots.
pub(crate) fn slot_offset(idx: u32, nr_ents: u32, slot: usize) -> usize {
    HEADER_SIZE + (idx & (nr_ents - 1)) as usize * slot
}

/// `SHARED_RING_INIT`: producers 0, event indexes 1, pvt and __pad zeroed.
pub fn shared_ring_init<P: SharedPage>(page: &P) {
    page.store_u32(REQ_PROD, 0);
    page.store_u32(RSP_PROD, 0);
    page.store_u32(REQ_EVENT, 1);
    page.store_u32(RSP_EVENT, 1);
    page.write(PVT, &[0; HEADER_SIZE - PVT]);
}

/// The event-index test of `RING_PUSH_*_AND_CHECK_NOTIFY`: did the producer
/// move from `old` to `new` across the peer's `event`?
pub const fn need_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_match_rd32() {
        // blkif: 112-byte request -> 32 slots; netif tx 12 -> 256; 16 -> 128.
        assert_eq!(ring_size(4096, 112), 32);
        assert_eq!(ring_size(4096, 12), 256);
        assert_eq!(ring_size(4096, 16), 128);
        assert_eq!(ring_size(4096, 8), 256);
        assert_eq!(ring_size(4096, 4032), 1);
        assert_eq!(ring_size(4096, 4033), 0);
        assert_eq!(ring_size(64, 1), 0);
        assert_eq!(ring_size(8192, 16), 256);
        assert_eq!(round_down_pow2(u32::MAX), 1 << 31);
    }

    #[test]
    fn notify_test_wraps() {
        assert!(need_notify(0, 1, 1));
        assert!(!need_notify(1, 2, 1));
        assert!(need_notify(u32::MAX, 1, 0));
        assert!(!need_notify(5, 5, 5));
    }
}
