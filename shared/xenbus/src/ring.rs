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
//! out once before they are parsed. The page is any [`SharedPage`] (the
//! workspace's one page trait); the layout and the copies with their index
//! checks come from `xcp-xs-wire`, shared with the engine; tests use a
//! `RefCell<[u8; 4096]>`.

use alloc::vec::Vec;

use xcp_xs_wire::ring::{consume, produce, Ring};
pub use xcp_xs_wire::ring::{
    BadIndexes, SharedPage, CONNECTION, ERROR, REQ, REQ_CONS, REQ_PROD, RSP, RSP_CONS, RSP_PROD,
    SERVER_FEATURES, XENSTORE_RING_SIZE, XENSTORE_SERVER_FEATURE_ERROR,
    XENSTORE_SERVER_FEATURE_RECONNECTION,
};

/// Copy as much of `data` as fits into the request ring and advance
/// `req_prod`. Returns how many bytes went (then notify the server).
pub fn push_requests(page: &impl SharedPage, data: &[u8]) -> Result<usize, BadIndexes> {
    produce(page, Ring::Req, data)
}

/// Copy up to `max` reply bytes out of the response ring into `out` and
/// advance `rsp_cons`. Returns how many were taken (then notify: the
/// server may be waiting for room).
pub fn take_responses(
    page: &impl SharedPage,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<usize, BadIndexes> {
    consume(page, Ring::Rsp, out, max)
}

/// The server's `error` field, if it advertises XENSTORE_SERVER_FEATURE_ERROR
/// and has set one (1 COMM, 2 RINGIDX, 3 PROTO).
pub fn server_error(page: &impl SharedPage) -> Option<u32> {
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
    use core::cell::RefCell;

    #[test]
    fn requests_go_out_and_replies_come_in() {
        let mut page = RefCell::new([0u8; 4096]);
        assert_eq!(push_requests(&page, b"abc"), Ok(3));
        assert_eq!(&page.get_mut()[REQ..REQ + 3], b"abc");
        assert_eq!(page.load_u32(REQ_PROD), 3);
        page.get_mut()[RSP..RSP + 2].copy_from_slice(b"ok");
        page.store_u32(RSP_PROD, 2);
        let mut out = Vec::new();
        assert_eq!(take_responses(&page, &mut out, 100), Ok(2));
        assert_eq!(out, b"ok");
        assert_eq!(page.load_u32(RSP_CONS), 2);
    }

    #[test]
    fn error_field_only_counts_when_advertised() {
        let page = RefCell::new([0u8; 4096]);
        page.store_u32(ERROR, 3);
        assert_eq!(server_error(&page), None);
        page.store_u32(SERVER_FEATURES, XENSTORE_SERVER_FEATURE_ERROR);
        assert_eq!(server_error(&page), Some(3));
    }
}
