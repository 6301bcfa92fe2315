//! Slot bookkeeping for the reserved virtual window (foreign and grant
//! mappings): which of its page slots are taken. Pure and host-tested.

use alloc::vec;
use alloc::vec::Vec;

/// A fixed number of slots, each free or taken.
#[derive(Debug, Clone)]
pub struct Slots {
    words: Vec<u64>,
    len: usize,
    taken: usize,
}

impl Slots {
    /// `len` free slots.
    pub fn new(len: usize) -> Self {
        Slots {
            words: vec![0; len.div_ceil(64)],
            len,
            taken: 0,
        }
    }

    /// Takes the lowest free slot.
    pub fn take(&mut self) -> Option<usize> {
        for (w, word) in self.words.iter_mut().enumerate() {
            if *word != u64::MAX {
                let bit = (!*word).trailing_zeros() as usize;
                let slot = w * 64 + bit;
                if slot >= self.len {
                    return None;
                }
                *word |= 1 << bit;
                self.taken += 1;
                return Some(slot);
            }
        }
        None
    }

    /// Takes `n` consecutive free slots; returns the first.
    pub fn take_run(&mut self, n: usize) -> Option<usize> {
        if n == 0 || n > self.len {
            return None;
        }
        let mut run = 0;
        for slot in 0..self.len {
            if self.is_taken(slot) {
                run = 0;
                continue;
            }
            run += 1;
            if run == n {
                let first = slot + 1 - n;
                for s in first..=slot {
                    self.words[s / 64] |= 1 << (s % 64);
                }
                self.taken += n;
                return Some(first);
            }
        }
        None
    }

    /// Gives a slot back; false if it was not taken.
    pub fn release(&mut self, slot: usize) -> bool {
        if !self.is_taken(slot) {
            return false;
        }
        self.words[slot / 64] &= !(1 << (slot % 64));
        self.taken -= 1;
        true
    }

    /// True when `slot` is in range and taken.
    pub fn is_taken(&self, slot: usize) -> bool {
        slot < self.len && self.words[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// Slots currently taken.
    pub fn taken(&self) -> usize {
        self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_release_and_exhaust() {
        let mut s = Slots::new(70);
        for i in 0..70 {
            assert_eq!(s.take(), Some(i));
        }
        assert_eq!(s.take(), None);
        assert!(s.release(65));
        assert!(!s.release(65));
        assert!(!s.release(700));
        assert_eq!(s.take(), Some(65));
        assert_eq!(s.taken(), 70);
    }

    #[test]
    fn runs_skip_taken_slots() {
        let mut s = Slots::new(10);
        assert_eq!(s.take(), Some(0));
        assert_eq!(s.take_run(3), Some(1));
        assert!(s.release(2));
        assert_eq!(s.take_run(2), Some(4));
        assert_eq!(s.take_run(0), None);
        assert_eq!(s.take_run(11), None);
        assert_eq!(s.taken(), 5);
    }
}
