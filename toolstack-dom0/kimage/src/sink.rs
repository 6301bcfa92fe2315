//! Where loaded bytes go: the consumer-side trait dom0 implements over the
//! guest's memory, and two fakes beside it.
//!
//! dom0's sink writes through foreign mappings page by page; it refuses an
//! address outside the guest's RAM (or any other it does not like) and the
//! refusal ends the load as [`crate::KimageError::SinkRefused`].

use alloc::vec;
use alloc::vec::Vec;

use crate::error::Refusal;

/// Receives a kernel's loadable bytes by guest-physical address.
///
/// A load calls [`Sink::write`] for each PT_LOAD segment's file bytes, in
/// increasing address order within the segment and in file order across
/// segments, then [`Sink::zero`] once for the segment's zero-filled tail
/// (`p_memsz - p_filesz`, the bss). Segments never overlap in physical
/// memory (the loader checks before the first write). A refused call ends
/// the load; what was written before stays written, so the caller discards
/// the guest as a whole on error.
pub trait Sink {
    /// Copies `bytes` to guest-physical `paddr..paddr + bytes.len()`.
    fn write(&mut self, paddr: u64, bytes: &[u8]) -> Result<(), Refusal>;
    /// Zeroes guest-physical `paddr..paddr + len`.
    fn zero(&mut self, paddr: u64, len: u64) -> Result<(), Refusal>;
}

/// A sink that only counts: what a load would write, without memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountingSink {
    /// Bytes passed to [`Sink::write`].
    pub written: u64,
    /// Bytes passed to [`Sink::zero`].
    pub zeroed: u64,
    /// Number of [`Sink::write`] calls.
    pub writes: u64,
    /// The largest single write.
    pub largest_write: usize,
    /// One past the highest address touched.
    pub end: u64,
}

impl Sink for CountingSink {
    fn write(&mut self, paddr: u64, bytes: &[u8]) -> Result<(), Refusal> {
        self.written += bytes.len() as u64;
        self.writes += 1;
        self.largest_write = self.largest_write.max(bytes.len());
        self.end = self.end.max(paddr.saturating_add(bytes.len() as u64));
        Ok(())
    }

    fn zero(&mut self, paddr: u64, len: u64) -> Result<(), Refusal> {
        self.zeroed += len;
        self.end = self.end.max(paddr.saturating_add(len));
        Ok(())
    }
}

/// A fake guest RAM: `size` bytes from guest-physical `base`, filled with
/// 0xAA so zero-fills show. Refuses anything outside it, as dom0's sink
/// refuses addresses outside the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemorySink {
    /// Guest-physical address of `ram[0]`.
    pub base: u64,
    /// The guest's memory.
    pub ram: Vec<u8>,
}

impl MemorySink {
    /// A RAM of `size` bytes at `base` (the caller bounds `size`).
    pub fn new(base: u64, size: usize) -> Self {
        MemorySink {
            base,
            ram: vec![0xaa; size],
        }
    }

    fn range(&self, paddr: u64, len: u64) -> Result<core::ops::Range<usize>, Refusal> {
        let refuse = Refusal {
            paddr,
            reason: "outside guest RAM",
        };
        let start = paddr.checked_sub(self.base).ok_or(refuse)?;
        let end = start.checked_add(len).ok_or(refuse)?;
        if end > self.ram.len() as u64 {
            return Err(refuse);
        }
        Ok(start as usize..end as usize)
    }
}

impl Sink for MemorySink {
    fn write(&mut self, paddr: u64, bytes: &[u8]) -> Result<(), Refusal> {
        let r = self.range(paddr, bytes.len() as u64)?;
        self.ram[r].copy_from_slice(bytes);
        Ok(())
    }

    fn zero(&mut self, paddr: u64, len: u64) -> Result<(), Refusal> {
        let r = self.range(paddr, len)?;
        self.ram[r].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sink_refuses_outside_its_ram() {
        let mut m = MemorySink::new(0x1000, 16);
        assert_eq!(m.write(0x1000, &[1, 2]), Ok(()));
        assert_eq!(m.zero(0x100e, 2), Ok(()));
        assert_eq!(&m.ram[..3], &[1, 2, 0xaa]);
        assert_eq!(&m.ram[14..], &[0, 0]);
        assert!(m.write(0xfff, &[1]).is_err());
        assert!(m.write(0x100f, &[1, 2]).is_err());
        assert!(m.zero(u64::MAX, 2).is_err());
    }

    #[test]
    fn counting_sink_counts() {
        let mut c = CountingSink::default();
        c.write(10, &[0; 5]).expect("counts");
        c.zero(15, 5).expect("counts");
        assert_eq!((c.written, c.zeroed, c.writes, c.end), (5, 5, 1, 20));
    }
}
