//! The frame allocator: hands out pseudo-physical frames (pfns) of the domain.
//!
//! Pure bookkeeping, tested on the host. A bump pointer over the frames left
//! after boot plus a free list of frames given back; every frame handed out is
//! counted so `free_frames()` is exact, and double frees are refused; the
//! frames in use now and at most are kept as a [`Meter`].

use alloc::collections::BTreeSet;

use crate::usage::Meter;

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

/// How boot divides the `free` pages left after the image and the tables:
/// `(heap, frames)`. A quarter goes to single frames (pages shared with
/// peers: rings, grants), at most `cap` (`entry!`'s `frames = N`): a
/// domain whose peers get few pages keeps the rest as heap.
pub fn split(free: u64, cap: u64) -> (u64, u64) {
    let frames = (free / 4).min(cap);
    (free - frames, frames)
}

/// Allocates single frames from `[next, end)` and a free set.
#[derive(Debug)]
pub struct FrameAllocator {
    next: Pfn,
    end: Pfn,
    freed: BTreeSet<Pfn>,
    start: Pfn,
    used: Meter,
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
            used: Meter::new(),
        }
    }

    /// Takes one frame.
    pub fn alloc(&mut self) -> Result<Pfn, FrameError> {
        let pfn = if let Some(pfn) = self.freed.pop_first() {
            pfn
        } else if self.next < self.end {
            self.next += 1;
            self.next - 1
        } else {
            return Err(FrameError::OutOfFrames);
        };
        self.used.take(1);
        Ok(pfn)
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
        self.used.give(1);
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

    /// Frames handed out now, and the most handed out at once.
    pub fn used(&self) -> Meter {
        self.used
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn boot_keeps_a_quarter_for_frames_up_to_the_cap() {
        assert_eq!(super::split(4000, u64::MAX), (3000, 1000));
        assert_eq!(super::split(4000, 64), (3936, 64));
        assert_eq!(super::split(3, u64::MAX), (3, 0));
        assert_eq!(super::split(0, 64), (0, 0));
    }

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
    fn use_and_its_peak_follow_allocs_and_frees() {
        let mut a = FrameAllocator::new(0, 8);
        let f: alloc::vec::Vec<_> = (0..5).map(|_| a.alloc().unwrap()).collect();
        a.free(f[1]).unwrap();
        a.free(f[4]).unwrap();
        assert_eq!((a.used().now(), a.used().peak()), (3, 5));
        // A refused free changes nothing.
        assert!(a.free(f[1]).is_err());
        assert_eq!(a.used().now(), 3);
        let _ = a.alloc().unwrap();
        assert_eq!((a.used().now(), a.used().peak()), (4, 5));
        // In use is always what is not free.
        assert_eq!(a.used().now(), a.total_frames() - a.free_frames());
        while a.alloc().is_ok() {}
        assert_eq!(a.alloc(), Err(FrameError::OutOfFrames));
        assert_eq!((a.used().now(), a.used().peak()), (8, 8));
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
