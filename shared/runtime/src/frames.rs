//! The frame allocator: hands out pseudo-physical frames (pfns) of the domain.
//!
//! Pure bookkeeping, tested on the host. A bump pointer over the frames left
//! after boot plus a free list of frames given back; every frame handed out is
//! counted so `free_frames()` is exact, and double frees are refused.

use alloc::collections::BTreeSet;

/// A pseudo-physical frame number.
pub type Pfn = u64;

/// Why the allocator refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free frame left.
    OutOfFrames,
    /// The frame was never handed out or is already free.
    NotAllocated(Pfn),
}

/// Allocates single frames from `[next, end)` and a free set.
#[derive(Debug)]
pub struct FrameAllocator {
    next: Pfn,
    end: Pfn,
    freed: BTreeSet<Pfn>,
    start: Pfn,
}

impl FrameAllocator {
    /// Manages the frames `[start, end)`.
    pub fn new(start: Pfn, end: Pfn) -> Self {
        let start = start.min(end);
        FrameAllocator {
            next: start,
            end,
            freed: BTreeSet::new(),
            start,
        }
    }

    /// Takes one frame.
    pub fn alloc(&mut self) -> Result<Pfn, FrameError> {
        if let Some(pfn) = self.freed.pop_first() {
            return Ok(pfn);
        }
        if self.next < self.end {
            let pfn = self.next;
            self.next += 1;
            return Ok(pfn);
        }
        Err(FrameError::OutOfFrames)
    }

    /// Gives a frame back.
    pub fn free(&mut self, pfn: Pfn) -> Result<(), FrameError> {
        if pfn < self.start || pfn >= self.next || self.freed.contains(&pfn) {
            return Err(FrameError::NotAllocated(pfn));
        }
        if pfn + 1 == self.next {
            self.next -= 1;
            // Fold trailing free frames back into the bump range.
            while self.next > self.start && self.freed.remove(&(self.next - 1)) {
                self.next -= 1;
            }
        } else {
            self.freed.insert(pfn);
        }
        Ok(())
    }

    /// Frames still available.
    pub fn free_frames(&self) -> u64 {
        (self.end - self.next) + self.freed.len() as u64
    }

    /// Frames this allocator manages in all.
    pub fn total_frames(&self) -> u64 {
        self.end - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_counts_are_exact() {
        let mut a = FrameAllocator::new(10, 14);
        assert_eq!(a.free_frames(), 4);
        let f: alloc::vec::Vec<_> = (0..4).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(f, [10, 11, 12, 13]);
        assert_eq!(a.alloc(), Err(FrameError::OutOfFrames));
        a.free(11).unwrap();
        assert_eq!(a.free_frames(), 1);
        assert_eq!(a.alloc(), Ok(11));
        for p in [10, 11, 12, 13] {
            a.free(p).unwrap();
        }
        assert_eq!(a.free_frames(), 4);
        assert_eq!(a.total_frames(), 4);
    }

    #[test]
    fn refuses_double_and_foreign_frees() {
        let mut a = FrameAllocator::new(0, 8);
        let p = a.alloc().unwrap();
        let _q = a.alloc().unwrap();
        a.free(p).unwrap();
        assert_eq!(a.free(p), Err(FrameError::NotAllocated(p)));
        assert_eq!(a.free(7), Err(FrameError::NotAllocated(7)));
        assert_eq!(a.free(100), Err(FrameError::NotAllocated(100)));
    }

    #[test]
    fn empty_range() {
        let mut a = FrameAllocator::new(5, 3);
        assert_eq!(a.free_frames(), 0);
        assert_eq!(a.alloc(), Err(FrameError::OutOfFrames));
    }
}
