//! The xenstore ring page, server side: pull requests, push responses.
//!
//! Read first: xs_wire.h `struct xenstore_domain_interface`,
//! docs/misc/xenstore-ring.txt. The guest owns `req_prod` and `rsp_cons`
//! and may write anything at any time, so each index is loaded once,
//! checked (`prod - cons` never above the 1024-byte ring, else
//! XENSTORE_ERROR_RINGIDX), and request bytes are copied out once before
//! the engine parses them (XSA-155). The copies and index checks are
//! `xcp-xs-wire`'s, shared with the xenbus client; what is the server's own
//! is the `error` field it sets. The page is any [`SharedPage`] (the
//! workspace's one page trait): the board's mapped grants, with the barriers
//! Xen's ring protocol needs, or a `RefCell<[u8; 4096]>` in tests.

use alloc::vec::Vec;

use xen_abi::io::xs_wire as abi;

use xcp_xs_wire::ring::{consume, produce, BadIndexes, Ring};
pub use xcp_xs_wire::ring::{
    SharedPage, CONNECTION, ERROR, REQ, REQ_CONS, REQ_PROD, RSP, RSP_CONS, RSP_PROD,
    SERVER_FEATURES, XENSTORE_RING_SIZE as RING_SIZE,
};

/// Values of the `error` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// XENSTORE_ERROR_COMM.
    Comm = abi::XENSTORE_ERROR_COMM as isize,
    /// XENSTORE_ERROR_RINGIDX: an index pair is out of range.
    RingIdx = abi::XENSTORE_ERROR_RINGIDX as isize,
    /// XENSTORE_ERROR_PROTO: a message broke the protocol.
    Proto = abi::XENSTORE_ERROR_PROTO as isize,
}

impl From<BadIndexes> for RingError {
    fn from(_: BadIndexes) -> RingError {
        RingError::RingIdx
    }
}

/// Copy up to `max` request bytes out of the ring into `out` and advance
/// `req_cons`. Returns how many were taken.
pub fn take_requests(
    page: &impl SharedPage,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<usize, RingError> {
    Ok(consume(page, Ring::Req, out, max)?)
}

/// Copy as much of `data` as fits into the response ring and advance
/// `rsp_prod`. Returns how many bytes went (the board then notifies).
pub fn put_responses(page: &impl SharedPage, data: &[u8]) -> Result<usize, RingError> {
    Ok(produce(page, Ring::Rsp, data)?)
}

/// Record an error for the guest to see (`error` field).
pub fn set_error(page: &impl SharedPage, error: RingError) {
    page.store_u32(ERROR, error as u32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    #[test]
    fn requests_in_responses_out() {
        let mut page = RefCell::new([0u8; 4096]);
        page.store_u32(REQ_PROD, 3);
        page.get_mut()[REQ..REQ + 3].copy_from_slice(b"abc");
        let mut out = Vec::new();
        assert_eq!(take_requests(&page, &mut out, 100), Ok(3));
        assert_eq!(out, b"abc");
        assert_eq!(put_responses(&page, b"xyz"), Ok(3));
        assert_eq!(&page.get_mut()[RSP..RSP + 3], b"xyz");
        assert_eq!(page.load_u32(RSP_PROD), 3);
    }
}
