//! The xenstore ring page: index checks and byte copies, over a page trait.
//!
//! Read first: xs_wire.h `struct xenstore_domain_interface`,
//! docs/misc/xenstore-ring.txt. The guest owns `req_prod` and `rsp_cons`
//! and may write anything at any time, so each index is loaded once,
//! checked (`prod - cons` never above the 1024-byte ring, else
//! XENSTORE_ERROR_RINGIDX), and request bytes are copied out once before
//! the engine parses them (XSA-155). The board implements [`RingPage`] over
//! the mapped page with the barriers Xen's ring protocol needs; tests use a
//! plain `[u8; 4096]`.

use alloc::vec::Vec;

pub use xcp_xs_wire::ring::{
    RingPage, SharedRing, CONNECTION, ERROR, REQ, REQ_CONS, REQ_PROD, RSP, RSP_CONS, RSP_PROD,
    SERVER_FEATURES, XENSTORE_RING_SIZE as RING_SIZE,
};

/// Values of the `error` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// XENSTORE_ERROR_COMM.
    Comm = 1,
    /// XENSTORE_ERROR_RINGIDX: an index pair is out of range.
    RingIdx = 2,
    /// XENSTORE_ERROR_PROTO: a message broke the protocol.
    Proto = 3,
}

/// Copy up to `max` request bytes out of the ring into `out` and advance
/// `req_cons`. Returns how many were taken.
pub fn take_requests(
    page: &mut impl RingPage,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<usize, RingError> {
    let cons = page.load_u32(REQ_CONS);
    let prod = page.load_u32(REQ_PROD);
    let avail = prod.wrapping_sub(cons);
    if avail > RING_SIZE {
        return Err(RingError::RingIdx);
    }
    let n = (avail as usize).min(max);
    let start = (cons % RING_SIZE) as usize;
    let first = n.min(RING_SIZE as usize - start);
    let base = out.len();
    out.resize(base + n, 0);
    page.read(REQ + start, &mut out[base..base + first]);
    page.read(REQ, &mut out[base + first..base + n]);
    page.store_u32(REQ_CONS, cons.wrapping_add(n as u32));
    Ok(n)
}

/// Copy as much of `data` as fits into the response ring and advance
/// `rsp_prod`. Returns how many bytes went (the board then notifies).
pub fn put_responses(page: &mut impl RingPage, data: &[u8]) -> Result<usize, RingError> {
    let cons = page.load_u32(RSP_CONS);
    let prod = page.load_u32(RSP_PROD);
    let used = prod.wrapping_sub(cons);
    if used > RING_SIZE {
        return Err(RingError::RingIdx);
    }
    let n = data.len().min((RING_SIZE - used) as usize);
    let start = (prod % RING_SIZE) as usize;
    let first = n.min(RING_SIZE as usize - start);
    page.write(RSP + start, &data[..first]);
    page.write(RSP, &data[first..n]);
    page.store_u32(RSP_PROD, prod.wrapping_add(n as u32));
    Ok(n)
}

/// Record an error for the guest to see (`error` field).
pub fn set_error(page: &mut impl RingPage, error: RingError) {
    page.store_u32(ERROR, error as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_advances() {
        let mut page = [0u8; 4096];
        page.store_u32(REQ_CONS, 1020);
        page.store_u32(REQ_PROD, 1028);
        page[1020..1024].copy_from_slice(b"abcd");
        page[0..4].copy_from_slice(b"efgh");
        let mut out = Vec::new();
        assert_eq!(take_requests(&mut page, &mut out, 100), Ok(8));
        assert_eq!(out, b"abcdefgh");
        assert_eq!(page.load_u32(REQ_CONS), 1028);
        page.store_u32(RSP_PROD, u32::MAX - 1);
        page.store_u32(RSP_CONS, u32::MAX - 1);
        assert_eq!(put_responses(&mut page, b"xyz"), Ok(3));
        assert_eq!(page.load_u32(RSP_PROD), 1);
    }

    #[test]
    fn full_response_ring_takes_nothing() {
        let mut page = [0u8; 4096];
        page.store_u32(RSP_PROD, 1024);
        assert_eq!(put_responses(&mut page, b"x"), Ok(0));
    }
}
