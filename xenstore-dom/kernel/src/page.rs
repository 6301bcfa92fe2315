//! The engine's `RingPage` over a mapped page (`xcp_ring::SharedPage`).
//!
//! Read first: xenstore-engine `ring.rs`. The runtime's `GrantMapping`
//! implements `SharedPage` with volatile byte copies and acquire loads /
//! release stores of the indexes: a producer index is loaded (acquire)
//! before the bytes it covers are read, and bytes are written before the
//! index that publishes them is stored (release), which is the ordering
//! docs/misc/xenstore-ring.txt asks for.

use xenstore_engine::ring::RingPage;

/// A mapped ring page, as the engine's ring helpers see it.
#[derive(Debug)]
pub struct SharedRing<P>(pub P);

impl<P: xcp_ring::SharedPage> RingPage for SharedRing<P> {
    fn load_u32(&self, offset: usize) -> u32 {
        self.0.load_u32(offset)
    }
    fn store_u32(&mut self, offset: usize, value: u32) {
        self.0.store_u32(offset, value)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.0.read(offset, buf)
    }
    fn write(&mut self, offset: usize, buf: &[u8]) {
        self.0.write(offset, buf)
    }
}
