//! Fake disks for tests: a plain one in memory and one that loses power.
//!
//! [`CrashDisk`] keeps the durable image apart from the writes issued
//! since the last flush. A power cut (after a chosen number of block
//! writes, or at any moment) keeps an arbitrary subset of those pending
//! writes, chosen by a seed, each block whole or not at all: what a disk
//! with a volatile write cache may do.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use crate::budget::BLOCK_SIZE;
use crate::dev::{BlockDev, DevError};

/// A disk in memory; every write durable at once.
#[derive(Clone, Debug)]
pub struct MemDisk {
    /// The disk's bytes.
    pub image: Vec<u8>,
}

impl MemDisk {
    /// A zeroed disk of `blocks` blocks.
    pub fn new(blocks: u64) -> MemDisk {
        MemDisk {
            image: vec![0; blocks as usize * BLOCK_SIZE],
        }
    }
}

fn range(len: usize, block: u64, n: usize) -> Result<core::ops::Range<usize>, DevError> {
    let start = (block as usize)
        .checked_mul(BLOCK_SIZE)
        .ok_or(DevError::OutOfRange)?;
    let end = start.checked_add(n).ok_or(DevError::OutOfRange)?;
    if !n.is_multiple_of(BLOCK_SIZE) || end > len {
        return Err(DevError::OutOfRange);
    }
    Ok(start..end)
}

impl BlockDev for MemDisk {
    fn blocks(&self) -> u64 {
        (self.image.len() / BLOCK_SIZE) as u64
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
        let r = range(self.image.len(), block, buf.len())?;
        buf.copy_from_slice(&self.image[r]);
        Ok(())
    }
    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), DevError> {
        let r = range(self.image.len(), block, buf.len())?;
        self.image[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DevError> {
        Ok(())
    }
}

/// A disk that loses its unflushed writes, some or all, in a power cut.
#[derive(Clone, Debug)]
pub struct CrashDisk {
    durable: Vec<u8>,
    pending: Vec<(u64, Box<[u8; BLOCK_SIZE]>)>,
    /// Block writes issued so far.
    pub writes: u64,
    /// Flushes completed so far.
    pub flushes: u64,
    /// Block writes and flushes issued so far (where a power cut can fall).
    pub ops: u64,
    cut_at: Option<u64>,
    dead: bool,
}

impl CrashDisk {
    /// A zeroed disk of `blocks` blocks.
    pub fn new(blocks: u64) -> CrashDisk {
        CrashDisk::from_image(vec![0; blocks as usize * BLOCK_SIZE])
    }

    /// A disk holding `image` (durable).
    pub fn from_image(image: Vec<u8>) -> CrashDisk {
        CrashDisk {
            durable: image,
            pending: Vec::new(),
            writes: 0,
            flushes: 0,
            ops: 0,
            cut_at: None,
            dead: false,
        }
    }

    /// The power goes out when the `n`th device operation (block write or
    /// flush, counting from 0) is issued: it and everything after fail
    /// with [`DevError::Gone`], and the writes pending then may be lost.
    pub fn cut_power_at(&mut self, n: u64) {
        self.cut_at = Some(n);
    }

    /// Whether the power went out.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Writes issued since the last flush.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The image after a power cut now: the durable bytes plus the subset
    /// of pending writes `seed` picks (seed 0: none; 1: all; else each
    /// kept or lost by a xorshift stream), applied in issue order.
    pub fn crash_image(&self, seed: u64) -> Vec<u8> {
        let mut img = self.durable.clone();
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for (b, data) in &self.pending {
            let keep = match seed {
                0 => false,
                1 => true,
                _ => {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x & 1 == 1
                }
            };
            if keep {
                let at = *b as usize * BLOCK_SIZE;
                img[at..at + BLOCK_SIZE].copy_from_slice(&data[..]);
            }
        }
        img
    }
}

impl CrashDisk {
    /// Counts one operation; fails it if the power is (or now goes) out.
    fn power(&mut self) -> Result<(), DevError> {
        if self.dead || self.cut_at == Some(self.ops) {
            self.dead = true;
            return Err(DevError::Gone);
        }
        self.ops += 1;
        Ok(())
    }
}

impl BlockDev for CrashDisk {
    fn blocks(&self) -> u64 {
        (self.durable.len() / BLOCK_SIZE) as u64
    }

    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
        if self.dead {
            return Err(DevError::Gone);
        }
        let r = range(self.durable.len(), block, buf.len())?;
        buf.copy_from_slice(&self.durable[r]);
        for (b, data) in &self.pending {
            if (block..block + (buf.len() / BLOCK_SIZE) as u64).contains(b) {
                let at = (*b - block) as usize * BLOCK_SIZE;
                buf[at..at + BLOCK_SIZE].copy_from_slice(&data[..]);
            }
        }
        Ok(())
    }

    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), DevError> {
        range(self.durable.len(), block, buf.len())?;
        for (i, chunk) in buf.chunks_exact(BLOCK_SIZE).enumerate() {
            self.power()?;
            let mut b = Box::new([0u8; BLOCK_SIZE]);
            b.copy_from_slice(chunk);
            self.pending.push((block + i as u64, b));
            self.writes += 1;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DevError> {
        self.power()?;
        for (b, data) in core::mem::take(&mut self.pending) {
            let at = b as usize * BLOCK_SIZE;
            self.durable[at..at + BLOCK_SIZE].copy_from_slice(&data[..]);
        }
        self.flushes += 1;
        Ok(())
    }
}
