//! A bitmap of used blocks or clusters.

use alloc::vec;
use alloc::vec::Vec;

/// One bit per unit; set is used.
#[derive(Clone, Debug)]
pub struct Bitmap {
    words: Vec<u64>,
    len: u64,
    used: u64,
}

impl Bitmap {
    /// `len` units, all free (the caller bounds `len` by the budget).
    pub fn new(len: u64) -> Bitmap {
        Bitmap {
            words: vec![0; len.div_ceil(64) as usize],
            len,
            used: 0,
        }
    }

    /// Units in the map.
    pub fn units(&self) -> u64 {
        self.len
    }

    /// Units set.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Whether unit `i` is set (units past the end read as set).
    pub fn get(&self, i: u64) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_none_or(|w| w & (1 << (i % 64)) != 0)
    }

    /// Sets unit `i`; false if it was set already or is past the end.
    pub fn set(&mut self, i: u64) -> bool {
        match self.words.get_mut((i / 64) as usize) {
            Some(w) if i < self.len && *w & (1 << (i % 64)) == 0 => {
                *w |= 1 << (i % 64);
                self.used += 1;
                true
            }
            _ => false,
        }
    }

    /// Clears unit `i`.
    pub fn clear(&mut self, i: u64) {
        if let Some(w) = self.words.get_mut((i / 64) as usize) {
            if *w & (1 << (i % 64)) != 0 {
                *w &= !(1 << (i % 64));
                self.used -= 1;
            }
        }
    }

    /// The first clear unit at or after `from`, wrapping around.
    pub fn find_free(&self, from: u64) -> Option<u64> {
        if self.used >= self.len {
            return None;
        }
        let n = self.words.len();
        let start = (from.min(self.len) / 64) as usize;
        for k in 0..=n {
            let wi = (start + k) % n;
            let w = self.words[wi];
            if w != u64::MAX {
                let bit = (!w).trailing_zeros() as u64;
                let i = wi as u64 * 64 + bit;
                if i < self.len {
                    return Some(i);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_find() {
        let mut b = Bitmap::new(130);
        assert_eq!(b.find_free(0), Some(0));
        for i in 0..130 {
            assert!(b.set(i));
        }
        assert!(!b.set(5));
        assert!(!b.set(130));
        assert_eq!(b.find_free(0), None);
        b.clear(129);
        assert_eq!(b.find_free(3), Some(129));
        b.clear(2);
        assert_eq!(b.find_free(129), Some(129));
        assert!(b.set(129));
        assert_eq!(b.find_free(129), Some(2), "wraps around");
        assert_eq!(b.used(), 129);
        assert!(b.get(500));
    }
}
