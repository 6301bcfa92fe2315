//! Xen shared rings (io/ring.h): pure front and back ends over a `SharedPage`.
//!
//! read first: io/ring.h (Debian `libxen-dev`: /usr/include/xen/io/ring.h).
//!
//! The shared page layout is `sring`'s: a 64-byte header {req_prod, req_event,
//! rsp_prod, rsp_event, pvt, __pad} then `RING_SIZE` slots, each as large as
//! the larger of the request and response (the C union). [`FrontRing`] and
//! [`BackRing`] implement the `RING_*` macros with the same wrapping u32
//! arithmetic and the same bytes on the page (`tests/c_peer.rs` proves it
//! against the C header). Entries are copied out of shared memory once
//! (RING_COPY_REQUEST) before anyone looks at them, and every index the peer
//! controls is bounded: nonsense is a [`RingError`] the caller turns into a
//! disconnect of that peer only.
#![no_std]
#![forbid(unsafe_code)]

mod back;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
mod front;
pub mod sring;

pub use back::BackRing;
pub use front::FrontRing;

use core::sync::atomic::{fence, Ordering};

/// One shared page (or a contiguous run of pages) as the consumer sees it.
///
/// The one page abstraction of the workspace: the io/ring.h rings here, the
/// xenstore ring copies (`xcp-xs-wire`), the xenbus client, the xenstore
/// board and the byte channels all take it. The runtime implements it with
/// volatile accesses over a mapped grant or frame; `RefCell<[u8; N]>` and
/// `fake::MemPage` implement it over memory. `&self` everywhere because
/// the peer changes the page under us. Offsets out of `0..len()` are a bug of
/// the caller (this crate never makes one) and may panic.
pub trait SharedPage {
    /// Size in bytes (4096 for one page).
    fn len(&self) -> usize;
    /// Copies `out.len()` bytes starting at `offset` out of the page.
    fn read(&self, offset: usize, out: &mut [u8]);
    /// Copies `data` into the page at `offset`.
    fn write(&self, offset: usize, data: &[u8]);
    /// Loads a little-endian u32 at `offset` (4-aligned) with Acquire semantics.
    fn load_u32(&self, offset: usize) -> u32;
    /// Stores a little-endian u32 at `offset` (4-aligned) with Release semantics.
    fn store_u32(&self, offset: usize, v: u32);
    /// Full barrier (`xen_mb()`): orders a store before a later load.
    ///
    /// The default is a SeqCst fence (`mfence` on x86_64), which is what
    /// ring.h's `xen_mb()` needs between publishing an index and reading the
    /// peer's event index.
    fn mb(&self) {
        fence(Ordering::SeqCst);
    }
    /// True when the page has no bytes (never for a real page).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: SharedPage + ?Sized> SharedPage for &T {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        (**self).read(offset, out)
    }
    fn write(&self, offset: usize, data: &[u8]) {
        (**self).write(offset, data)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        (**self).load_u32(offset)
    }
    fn store_u32(&self, offset: usize, v: u32) {
        (**self).store_u32(offset, v)
    }
    fn mb(&self) {
        (**self).mb()
    }
}

/// A page in ordinary memory (a test, a simulation, a host tool): plain
/// little-endian accesses through the `RefCell`. Owners that hold it
/// mutably reach the bytes directly with `RefCell::get_mut`.
impl<const N: usize> SharedPage for core::cell::RefCell<[u8; N]> {
    fn len(&self) -> usize {
        N
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.borrow()[offset..offset + out.len()]);
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn load_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }
    fn store_u32(&self, offset: usize, v: u32) {
        self.write(offset, &v.to_le_bytes());
    }
}

/// Largest request or response [`RingEntry::SIZE`] supported (copy-out buffers
/// live on the stack; blkif's 112-byte request fits with room to spare).
pub const MAX_ENTRY_SIZE: usize = 512;

/// A request or response type carried in ring slots, as its C struct's bytes.
///
/// `SIZE` must be the C `sizeof` (including tail padding) so that the slot
/// size, `max(req, rsp)`, matches the C union and therefore `RING_SIZE`.
pub trait RingEntry: Sized {
    /// `sizeof` the C struct, 1..=[`MAX_ENTRY_SIZE`].
    const SIZE: usize;
    /// Writes exactly `SIZE` bytes into `out` (`out.len() == SIZE`).
    fn encode(&self, out: &mut [u8]);
    /// Reads a value from exactly `SIZE` bytes copied out of the page. Total:
    /// any bytes give a value; validating fields is the caller's job.
    fn decode(bytes: &[u8]) -> Self;
}

/// Why a ring operation failed. Small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Protocol error: the frontend's req_prod claims more requests than can
    /// be outstanding (RING_REQUEST_PROD_OVERFLOW, or `req_prod - req_cons`
    /// beyond the ring size). Disconnect the frontend.
    RequestOverflow,
    /// Protocol error: the backend's rsp_prod runs past the requests we
    /// pushed (RING_RESPONSE_PROD_OVERFLOW and stricter). Disconnect it.
    ResponseOverflow,
    /// Local: no free request slot (RING_FULL); wait for responses.
    Full,
    /// Local: a response without an unanswered consumed request.
    NoRequestPending,
    /// Local: the page cannot hold one slot after the header, or an entry is
    /// larger than [`MAX_ENTRY_SIZE`].
    BadGeometry,
}

impl RingError {
    /// True for errors caused by the peer (disconnect it), false for misuse
    /// or back-pressure on our side.
    pub fn is_protocol_error(self) -> bool {
        matches!(
            self,
            RingError::RequestOverflow | RingError::ResponseOverflow
        )
    }
}

#[cfg(test)]
mod tests;
