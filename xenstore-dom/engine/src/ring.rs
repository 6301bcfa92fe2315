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

/// XENSTORE_RING_SIZE.
pub const RING_SIZE: u32 = 1024;
/// Offset of `req[]`.
pub const REQ: usize = 0;
/// Offset of `rsp[]`.
pub const RSP: usize = 1024;
/// Offset of `req_cons`.
pub const REQ_CONS: usize = 2048;
/// Offset of `req_prod`.
pub const REQ_PROD: usize = 2052;
/// Offset of `rsp_cons`.
pub const RSP_CONS: usize = 2056;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 2060;
/// Offset of `server_features`.
pub const SERVER_FEATURES: usize = 2064;
/// Offset of `connection`.
pub const CONNECTION: usize = 2068;
/// Offset of `error`.
pub const ERROR: usize = 2072;

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

/// Access to a mapped ring page. Implementations order loads and stores
/// as the ring protocol requires (read barrier after loading a producer
/// index, write barrier before publishing one).
pub trait RingPage {
    /// Load the u32 at `offset` (one of the index/field offsets).
    fn load_u32(&self, offset: usize) -> u32;
    /// Store a u32 at `offset`.
    fn store_u32(&mut self, offset: usize, value: u32);
    /// Copy `buf.len()` bytes out of the page at `offset`.
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copy `buf` into the page at `offset`.
    fn write(&mut self, offset: usize, buf: &[u8]);
}

impl RingPage for [u8; 4096] {
    fn load_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self[offset..offset + 4]);
        u32::from_le_bytes(b)
    }
    fn store_u32(&mut self, offset: usize, value: u32) {
        self[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self[offset..offset + buf.len()]);
    }
    fn write(&mut self, offset: usize, buf: &[u8]) {
        self[offset..offset + buf.len()].copy_from_slice(buf);
    }
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
