//! The xenstore ring page, client side: push requests, pull replies.
//!
//! Read first: xs_wire.h `struct xenstore_domain_interface`,
//! docs/misc/xenstore-ring.txt. The page holds two 1024-byte byte rings:
//! `req` at 0 (we produce, the server consumes) and `rsp` at 1024 (the
//! server produces, we consume), then free-running u32 indexes `req_cons`
//! 2048, `req_prod` 2052, `rsp_cons` 2056, `rsp_prod` 2060, and
//! `server_features` 2064, `connection` 2068, `error` 2072.
//!
//! The server may write anything at any time, so each index is loaded once
//! and checked (`prod - cons` never above 1024) and reply bytes are copied
//! out once before they are parsed. [`RingPage`] and the layout come from
//! `xcp-xs-wire`, shared with the engine; tests use a plain `[u8; 4096]`.

use alloc::vec::Vec;

pub use xcp_xs_wire::ring::{
    RingPage, SharedRing, CONNECTION, ERROR, REQ, REQ_CONS, REQ_PROD, RSP, RSP_CONS, RSP_PROD,
    SERVER_FEATURES, XENSTORE_RING_SIZE, XENSTORE_SERVER_FEATURE_ERROR,
    XENSTORE_SERVER_FEATURE_RECONNECTION,
};

/// A ring index pair out of range: the page is corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadIndexes;

/// Copy as much of `data` as fits into the request ring and advance
/// `req_prod`. Returns how many bytes went (then notify the server).
pub fn push_requests(page: &mut impl RingPage, data: &[u8]) -> Result<usize, BadIndexes> {
    let cons = page.load_u32(REQ_CONS);
    let prod = page.load_u32(REQ_PROD);
    let used = prod.wrapping_sub(cons);
    if used > XENSTORE_RING_SIZE {
        return Err(BadIndexes);
    }
    let n = data.len().min((XENSTORE_RING_SIZE - used) as usize);
    let start = (prod % XENSTORE_RING_SIZE) as usize;
    let first = n.min(XENSTORE_RING_SIZE as usize - start);
    page.write(REQ + start, &data[..first]);
    page.write(REQ, &data[first..n]);
    // `n <= 1024`: the cast is exact.
    page.store_u32(REQ_PROD, prod.wrapping_add(n as u32));
    Ok(n)
}

/// Copy up to `max` reply bytes out of the response ring into `out` and
/// advance `rsp_cons`. Returns how many were taken (then notify: the
/// server may be waiting for room).
pub fn take_responses(
    page: &mut impl RingPage,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<usize, BadIndexes> {
    let cons = page.load_u32(RSP_CONS);
    let prod = page.load_u32(RSP_PROD);
    let avail = prod.wrapping_sub(cons);
    if avail > XENSTORE_RING_SIZE {
        return Err(BadIndexes);
    }
    let n = (avail as usize).min(max);
    let start = (cons % XENSTORE_RING_SIZE) as usize;
    let first = n.min(XENSTORE_RING_SIZE as usize - start);
    let base = out.len();
    out.resize(base + n, 0);
    page.read(RSP + start, &mut out[base..base + first]);
    page.read(RSP, &mut out[base + first..base + n]);
    page.store_u32(RSP_CONS, cons.wrapping_add(n as u32));
    Ok(n)
}

/// The server's `error` field, if it advertises XENSTORE_SERVER_FEATURE_ERROR
/// and has set one (1 COMM, 2 RINGIDX, 3 PROTO).
pub fn server_error(page: &impl RingPage) -> Option<u32> {
    if page.load_u32(SERVER_FEATURES) & XENSTORE_SERVER_FEATURE_ERROR == 0 {
        return None;
    }
    match page.load_u32(ERROR) {
        0 => None,
        e => Some(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_wrap_and_stop_when_full() {
        let mut page = [0u8; 4096];
        page.store_u32(REQ_CONS, 1020);
        page.store_u32(REQ_PROD, 1020);
        assert_eq!(push_requests(&mut page, b"abcdefgh"), Ok(8));
        assert_eq!(&page[1020..1024], b"abcd");
        assert_eq!(&page[0..4], b"efgh");
        assert_eq!(page.load_u32(REQ_PROD), 1028);
        assert_eq!(push_requests(&mut page, &[1u8; 2000]), Ok(1016));
        assert_eq!(push_requests(&mut page, b"x"), Ok(0));
    }

    #[test]
    fn responses_wrap_across_u32_overflow() {
        let mut page = [0u8; 4096];
        page.store_u32(RSP_CONS, u32::MAX - 1);
        page.store_u32(RSP_PROD, 2);
        page[RSP + 1022..RSP + 1024].copy_from_slice(b"ab");
        page[RSP..RSP + 2].copy_from_slice(b"cd");
        let mut out = Vec::new();
        assert_eq!(take_responses(&mut page, &mut out, 100), Ok(4));
        assert_eq!(out, b"abcd");
        assert_eq!(page.load_u32(RSP_CONS), 2);
    }

    #[test]
    fn impossible_indexes_are_refused() {
        let mut page = [0u8; 4096];
        page.store_u32(RSP_PROD, 1025);
        assert_eq!(
            take_responses(&mut page, &mut Vec::new(), 10),
            Err(BadIndexes)
        );
        page.store_u32(REQ_CONS, 5);
        assert_eq!(push_requests(&mut page, b"x"), Err(BadIndexes));
    }

    #[test]
    fn shared_pages_work_through_the_adapter() {
        let mut ring = SharedRing(xcp_ring::fake::MemPage::new());
        assert_eq!(push_requests(&mut ring, b"abc"), Ok(3));
        assert_eq!(ring.load_u32(REQ_PROD), 3);
        let mut out = [0u8; 3];
        ring.read(REQ, &mut out);
        assert_eq!(&out, b"abc");
    }

    #[test]
    fn error_field_only_counts_when_advertised() {
        let mut page = [0u8; 4096];
        page.store_u32(ERROR, 3);
        assert_eq!(server_error(&page), None);
        page.store_u32(SERVER_FEATURES, XENSTORE_SERVER_FEATURE_ERROR);
        assert_eq!(server_error(&page), Some(3));
    }
}
