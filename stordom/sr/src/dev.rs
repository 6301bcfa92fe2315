//! The block device the SR runs over.
//!
//! Fixed 4096-byte blocks. A write is not durable until a later `flush`
//! returns; until then the device may reorder writes and a power cut may
//! keep any subset of them (each block whole or not at all). A read sees
//! every earlier write, flushed or not.

use crate::budget::BLOCK_SIZE;

/// A device failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevError {
    /// The device reported an I/O error.
    Io,
    /// A block past the end of the device.
    OutOfRange,
    /// The device is gone (a simulated power cut, an unplugged disk).
    Gone,
}

/// A disk of fixed 4096-byte blocks.
pub trait BlockDev {
    /// Blocks on the device.
    fn blocks(&self) -> u64;
    /// Reads `buf.len() / 4096` consecutive blocks from `block` on.
    /// `buf.len()` is a nonzero multiple of [`BLOCK_SIZE`].
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), DevError>;
    /// Writes `buf.len() / 4096` consecutive blocks from `block` on.
    /// `buf.len()` is a nonzero multiple of [`BLOCK_SIZE`].
    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), DevError>;
    /// Returns once every earlier write is durable.
    fn flush(&mut self) -> Result<(), DevError>;
}

/// Whole blocks in `len` bytes, if `len` is a nonzero multiple of a block.
pub(crate) fn whole_blocks(len: usize) -> Option<u64> {
    (len != 0 && len.is_multiple_of(BLOCK_SIZE)).then_some((len / BLOCK_SIZE) as u64)
}
