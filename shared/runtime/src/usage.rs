//! Memory use with high-water marks: the heap's bytes and the frame
//! allocator's frames, and the figures a domain reports about itself.
//!
//! Pure accounting, tested on the host. The heap (`heap.rs`) and the frame
//! allocator ([`crate::frames`]) each keep a [`Meter`]; [`MemoryUse`] is
//! the snapshot a domain hands on: to dom0's `mem` console command over
//! the relay channel (netdom), or under its xenstore home as
//! [`MemoryUse::entries`] (xenstore-dom), or directly (dom0 itself).

/// A count in use now and the most it has been since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meter {
    now: u64,
    peak: u64,
}

impl Meter {
    /// Nothing in use.
    pub const fn new() -> Self {
        Meter { now: 0, peak: 0 }
    }

    /// `n` more in use.
    pub fn take(&mut self, n: u64) {
        self.now = self.now.saturating_add(n);
        self.peak = self.peak.max(self.now);
    }

    /// `n` given back (never below zero: a bookkeeping slip must not
    /// wrap the figure round).
    pub fn give(&mut self, n: u64) {
        self.now = self.now.saturating_sub(n);
    }

    /// In use now.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The high-water mark.
    pub fn peak(&self) -> u64 {
        self.peak
    }
}

/// One domain's memory as the runtime sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Bytes given to the heap at boot.
    pub heap_bytes: u64,
    /// Bytes allocated now (the sum of the layouts' sizes: talc's own
    /// tags and padding are not counted).
    pub heap_in_use: u64,
    /// The most `heap_in_use` has been.
    pub heap_peak: u64,
    /// Frames the frame allocator manages (what boot did not give the
    /// heap, the page tables or the image).
    pub frames: u64,
    /// Frames handed out now.
    pub frames_in_use: u64,
    /// The most `frames_in_use` has been.
    pub frames_peak: u64,
}

/// The keys of [`MemoryUse::entries`], in order.
pub const KEYS: [&str; 6] = [
    "heap-bytes",
    "heap-in-use",
    "heap-peak",
    "frames",
    "frames-in-use",
    "frames-peak",
];

impl MemoryUse {
    /// The figures as xenstore entries (decimal values), under a domain's
    /// `data/memory/` directory.
    pub fn entries(&self) -> [(&'static str, u64); 6] {
        let values = [
            self.heap_bytes,
            self.heap_in_use,
            self.heap_peak,
            self.frames,
            self.frames_in_use,
            self.frames_peak,
        ];
        let mut out = [("", 0); 6];
        for (slot, (key, value)) in out.iter_mut().zip(KEYS.iter().zip(values)) {
            *slot = (*key, value);
        }
        out
    }

    /// The figures back from the values `read` gives for each key of
    /// [`KEYS`]; None if one is missing or not a decimal number.
    pub fn from_entries(mut read: impl FnMut(&str) -> Option<u64>) -> Option<Self> {
        let mut values = [0u64; 6];
        for (value, key) in values.iter_mut().zip(KEYS) {
            *value = read(key)?;
        }
        let [heap_bytes, heap_in_use, heap_peak, frames, frames_in_use, frames_peak] = values;
        Some(MemoryUse {
            heap_bytes,
            heap_in_use,
            heap_peak,
            frames,
            frames_in_use,
            frames_peak,
        })
    }
}

/// This domain's figures now.
#[cfg(target_os = "none")]
pub fn memory_use() -> MemoryUse {
    let heap = crate::heap::usage();
    let (frames, used) = crate::paging::frame_use();
    MemoryUse {
        heap_bytes: heap.0,
        heap_in_use: heap.1.now(),
        heap_peak: heap.1.peak(),
        frames,
        frames_in_use: used.now(),
        frames_peak: used.peak(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_keeps_the_high_water_mark() {
        let mut m = Meter::new();
        m.take(10);
        m.take(5);
        m.give(12);
        assert_eq!((m.now(), m.peak()), (3, 15));
        m.take(4);
        assert_eq!((m.now(), m.peak()), (7, 15));
        m.take(20);
        assert_eq!((m.now(), m.peak()), (27, 27));
        // Giving back more than is in use stops at zero.
        m.give(100);
        assert_eq!((m.now(), m.peak()), (0, 27));
        m.take(u64::MAX);
        m.take(1);
        assert_eq!(m.now(), u64::MAX);
    }

    #[test]
    fn entries_round_trip() {
        let u = MemoryUse {
            heap_bytes: 1,
            heap_in_use: 2,
            heap_peak: 3,
            frames: 4,
            frames_in_use: 5,
            frames_peak: 6,
        };
        let e = u.entries();
        assert_eq!(e[0], ("heap-bytes", 1));
        assert_eq!(e[5], ("frames-peak", 6));
        let back = MemoryUse::from_entries(|k| e.iter().find(|(n, _)| *n == k).map(|(_, v)| *v));
        assert_eq!(back, Some(u));
        // One key missing: nothing.
        assert_eq!(
            MemoryUse::from_entries(|k| (k != "frames").then_some(1)),
            None
        );
    }
}
