//! An in-memory [`SharedPage`] for tests: both ends share one `&MemPage`.
//!
//! Single-threaded (`RefCell`), so "the other end changes the page under us"
//! is simulated by interleaving calls, and a hostile peer by [`MemPage::poke`].

use core::cell::RefCell;

use crate::SharedPage;

/// Bytes in a `MemPage`.
pub const PAGE_SIZE: usize = xen_abi::PAGE_SIZE;

/// One zeroed 4096-byte page in ordinary memory.
pub struct MemPage {
    bytes: RefCell<[u8; PAGE_SIZE]>,
}

impl Default for MemPage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemPage {
    /// A zeroed page.
    pub fn new() -> Self {
        MemPage {
            bytes: RefCell::new([0; PAGE_SIZE]),
        }
    }

    /// A page holding `bytes`.
    pub fn from_bytes(bytes: &[u8; PAGE_SIZE]) -> Self {
        MemPage {
            bytes: RefCell::new(*bytes),
        }
    }

    /// A copy of the whole page.
    pub fn snapshot(&self) -> [u8; PAGE_SIZE] {
        *self.bytes.borrow()
    }

    /// Replaces the whole page (e.g. after a C peer worked on a copy).
    pub fn restore(&self, bytes: &[u8; PAGE_SIZE]) {
        *self.bytes.borrow_mut() = *bytes;
    }

    /// Writes arbitrary bytes as a hostile peer would; `offset` wraps into
    /// the page and the write is clipped at its end.
    pub fn poke(&self, offset: usize, data: &[u8]) {
        let offset = offset % PAGE_SIZE;
        let end = (offset + data.len()).min(PAGE_SIZE);
        self.bytes.borrow_mut()[offset..end].copy_from_slice(&data[..end - offset]);
    }
}

impl SharedPage for MemPage {
    fn len(&self) -> usize {
        PAGE_SIZE
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.bytes.borrow()[offset..offset + out.len()]);
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.bytes.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn load_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }
    fn store_u32(&self, offset: usize, v: u32) {
        self.write(offset, &v.to_le_bytes());
    }
    fn mb(&self) {}
}
