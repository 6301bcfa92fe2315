//! The xenstore ring page: layout, page access, and the byte copies with
//! their index checks, for either end.
//!
//! Read first: xs_wire.h `struct xenstore_domain_interface`,
//! docs/misc/xenstore-ring.txt. The page holds two 1024-byte byte rings,
//! `req` (the client produces, the server consumes) and `rsp` (the server
//! produces, the client consumes), then free-running u32 indexes and the
//! feature/connection/error words. The server reads `req` and writes `rsp`;
//! the client writes `req` and reads `rsp`: [`consume`] and [`produce`] take
//! the [`Ring`] they work on.
//!
//! The page is any [`SharedPage`] (the workspace's one page trait, from
//! `xcp-ring`): the runtime's mapped grants and frames, or memory in tests.
//!
//! The peer may write anything at any time, so each index is loaded once
//! and checked (`prod - cons` never above the 1024-byte ring, else
//! [`BadIndexes`]: the server's XENSTORE_ERROR_RINGIDX), and bytes are
//! copied out once before anyone parses them (XSA-155).

use alloc::vec::Vec;

use xen_abi::io::xs_wire as abi;

/// XENSTORE_RING_SIZE.
pub const XENSTORE_RING_SIZE: u32 = abi::XENSTORE_RING_SIZE as u32;
pub use xen_abi::io::xs_wire::{
    OFF_CONNECTION as CONNECTION, OFF_ERROR as ERROR, OFF_REQ as REQ, OFF_REQ_CONS as REQ_CONS,
    OFF_REQ_PROD as REQ_PROD, OFF_RSP as RSP, OFF_RSP_CONS as RSP_CONS, OFF_RSP_PROD as RSP_PROD,
    OFF_SERVER_FEATURES as SERVER_FEATURES, XENSTORE_SERVER_FEATURE_ERROR,
    XENSTORE_SERVER_FEATURE_RECONNECTION,
};

pub use xcp_ring::SharedPage;

/// One of the page's two byte rings: the direction bytes flow in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    /// `req[]`, client to server.
    Req,
    /// `rsp[]`, server to client.
    Rsp,
}

impl Ring {
    /// Offsets of the ring's bytes, its consumer index and its producer
    /// index.
    const fn offsets(self) -> (usize, usize, usize) {
        match self {
            Ring::Req => (REQ, REQ_CONS, REQ_PROD),
            Ring::Rsp => (RSP, RSP_CONS, RSP_PROD),
        }
    }
}

/// A ring index pair out of range (`prod - cons` above the ring size): the
/// peer corrupted the page. The server answers it with
/// XENSTORE_ERROR_RINGIDX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadIndexes;

/// Load `ring`'s `(cons, prod)` once each and check them: `prod - cons`
/// (free-running, wrapping) is never above the ring size.
fn load_indexes(page: &impl SharedPage, ring: Ring) -> Result<(u32, u32), BadIndexes> {
    let (_, cons_at, prod_at) = ring.offsets();
    let cons = page.load_u32(cons_at);
    let prod = page.load_u32(prod_at);
    if prod.wrapping_sub(cons) > XENSTORE_RING_SIZE {
        return Err(BadIndexes);
    }
    Ok((cons, prod))
}

/// Consumer side: copy up to `max` bytes out of `ring` into `out` and
/// advance its `cons`. Returns how many were taken (the caller then
/// notifies: the producer may be waiting for room).
pub fn consume(
    page: &impl SharedPage,
    ring: Ring,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<usize, BadIndexes> {
    let (data, cons_at, _) = ring.offsets();
    let (cons, prod) = load_indexes(page, ring)?;
    let n = (prod.wrapping_sub(cons) as usize).min(max);
    let start = (cons % XENSTORE_RING_SIZE) as usize;
    let first = n.min(XENSTORE_RING_SIZE as usize - start);
    let base = out.len();
    out.resize(base + n, 0);
    page.read(data + start, &mut out[base..base + first]);
    page.read(data, &mut out[base + first..base + n]);
    // `n <= 1024`: the cast is exact.
    page.store_u32(cons_at, cons.wrapping_add(n as u32));
    Ok(n)
}

/// Producer side: copy as much of `bytes` as fits into `ring` and advance
/// its `prod`. Returns how many bytes went (the caller then notifies).
pub fn produce(page: &impl SharedPage, ring: Ring, bytes: &[u8]) -> Result<usize, BadIndexes> {
    let (data, _, prod_at) = ring.offsets();
    let (cons, prod) = load_indexes(page, ring)?;
    let used = prod.wrapping_sub(cons);
    let n = bytes.len().min((XENSTORE_RING_SIZE - used) as usize);
    let start = (prod % XENSTORE_RING_SIZE) as usize;
    let first = n.min(XENSTORE_RING_SIZE as usize - start);
    page.write(data + start, &bytes[..first]);
    page.write(data, &bytes[first..n]);
    // `n <= 1024`: the cast is exact.
    page.store_u32(prod_at, prod.wrapping_add(n as u32));
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    #[test]
    fn requests_wrap_and_advance() {
        let mut page = RefCell::new([0u8; 4096]);
        page.store_u32(REQ_CONS, 1020);
        page.store_u32(REQ_PROD, 1028);
        page.get_mut()[1020..1024].copy_from_slice(b"abcd");
        page.get_mut()[0..4].copy_from_slice(b"efgh");
        let mut out = Vec::new();
        assert_eq!(consume(&page, Ring::Req, &mut out, 100), Ok(8));
        assert_eq!(out, b"abcdefgh");
        assert_eq!(page.load_u32(REQ_CONS), 1028);
        page.store_u32(RSP_PROD, u32::MAX - 1);
        page.store_u32(RSP_CONS, u32::MAX - 1);
        assert_eq!(produce(&page, Ring::Rsp, b"xyz"), Ok(3));
        assert_eq!(page.load_u32(RSP_PROD), 1);
    }

    #[test]
    fn full_response_ring_takes_nothing() {
        let page = RefCell::new([0u8; 4096]);
        page.store_u32(RSP_PROD, 1024);
        assert_eq!(produce(&page, Ring::Rsp, b"x"), Ok(0));
    }

    #[test]
    fn requests_wrap_and_stop_when_full() {
        let mut page = RefCell::new([0u8; 4096]);
        page.store_u32(REQ_CONS, 1020);
        page.store_u32(REQ_PROD, 1020);
        assert_eq!(produce(&page, Ring::Req, b"abcdefgh"), Ok(8));
        assert_eq!(&page.get_mut()[1020..1024], b"abcd");
        assert_eq!(&page.get_mut()[0..4], b"efgh");
        assert_eq!(page.load_u32(REQ_PROD), 1028);
        assert_eq!(produce(&page, Ring::Req, &[1u8; 2000]), Ok(1016));
        assert_eq!(produce(&page, Ring::Req, b"x"), Ok(0));
    }

    #[test]
    fn responses_wrap_across_u32_overflow() {
        let mut page = RefCell::new([0u8; 4096]);
        page.store_u32(RSP_CONS, u32::MAX - 1);
        page.store_u32(RSP_PROD, 2);
        page.get_mut()[RSP + 1022..RSP + 1024].copy_from_slice(b"ab");
        page.get_mut()[RSP..RSP + 2].copy_from_slice(b"cd");
        let mut out = Vec::new();
        assert_eq!(consume(&page, Ring::Rsp, &mut out, 100), Ok(4));
        assert_eq!(out, b"abcd");
        assert_eq!(page.load_u32(RSP_CONS), 2);
    }

    #[test]
    fn impossible_indexes_are_refused() {
        let page = RefCell::new([0u8; 4096]);
        page.store_u32(RSP_PROD, 1025);
        assert_eq!(
            consume(&page, Ring::Rsp, &mut Vec::new(), 10),
            Err(BadIndexes)
        );
        assert_eq!(produce(&page, Ring::Rsp, b"x"), Err(BadIndexes));
        page.store_u32(REQ_CONS, 5);
        assert_eq!(produce(&page, Ring::Req, b"x"), Err(BadIndexes));
        assert_eq!(
            consume(&page, Ring::Req, &mut Vec::new(), 10),
            Err(BadIndexes)
        );
        // Nothing moved.
        assert_eq!(page.load_u32(REQ_CONS), 5);
        assert_eq!(page.load_u32(RSP_CONS), 0);
    }
}
