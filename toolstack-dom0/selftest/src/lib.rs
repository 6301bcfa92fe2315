//! The contract between dom0's self-tests and testdom, shared by both
//! kernels (and the QEMU cases that read their logs): parameter syntax, the
//! grant-test control page, and the data patterns both sides verify.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Pages moved per grant-test round (1 MiB).
pub const GRANT_PAGES: usize = 256;
/// Rounds (16 × 1 MiB = 16 MiB each way).
pub const GRANT_ROUNDS: u32 = 16;
/// Control page: `count` (u32) at 0, grant references (u32 each) from 4,
/// the round dom0 asks for at [`ROUND_OFFSET`], the round testdom finished
/// at [`DONE_OFFSET`].
pub const ROUND_OFFSET: usize = 4088;
/// See [`ROUND_OFFSET`].
pub const DONE_OFFSET: usize = 4092;
/// Most references the control page can list.
pub const MAX_GREFS: usize = (ROUND_OFFSET - 4) / 4;

// The control page must list every page of a round.
const _: () = assert!(MAX_GREFS >= GRANT_PAGES);

/// Messages exchanged in the channel test.
pub const CHANNEL_MESSAGES: u32 = 10_000;

/// dom0 → testdom in the channel test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// 0, 1, 2, ... in order.
    pub seq: u32,
    /// [`payload`]`(seq)`.
    pub payload: Vec<u8>,
}

/// testdom → dom0: what testdom saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's sequence number.
    pub seq: u32,
    /// Its payload's length.
    pub len: u32,
    /// [`checksum`] of its payload.
    pub sum: u64,
}

/// The payload of ping `seq`: 0 to 5000 bytes (some larger than the
/// 2048-byte ring, so they stream), derived from `seq`.
pub fn payload(seq: u32) -> Vec<u8> {
    let mut x = seq.wrapping_mul(2_654_435_761).wrapping_add(12345);
    let len = (x % 5001) as usize;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// An order-sensitive checksum (FNV-1a, 64-bit).
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The u64 at `word` of page `page` in round `round`, as dom0 writes it.
pub fn pattern(round: u32, page: u32, word: u32) -> u64 {
    ((round as u64) << 48)
        ^ ((page as u64) << 32)
        ^ (word as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What testdom writes back: the bitwise complement.
pub fn answer(round: u32, page: u32, word: u32) -> u64 {
    !pattern(round, page, word)
}

/// Fills a page with `f(word)` as little-endian u64s.
pub fn fill(page: &mut [u8; 4096], f: impl Fn(u32) -> u64) {
    for (i, chunk) in page.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&f(i as u32).to_le_bytes());
    }
}

/// Index of the first word of `page` that differs from `f(word)`.
pub fn first_mismatch(page: &[u8; 4096], f: impl Fn(u32) -> u64) -> Option<u32> {
    page.chunks_exact(8).enumerate().find_map(|(i, chunk)| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        (u64::from_le_bytes(word) != f(i as u32)).then_some(i as u32)
    })
}

/// Parses `a,b,c` into three numbers.
pub fn three(arg: &str) -> Option<(u32, u32, u32)> {
    let mut it = arg.split(',').map(|p| p.parse::<u32>().ok());
    let v = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_by_round_page_and_word() {
        assert_ne!(pattern(0, 0, 1), pattern(0, 0, 2));
        assert_ne!(pattern(0, 1, 1), pattern(0, 2, 1));
        assert_ne!(pattern(1, 1, 1), pattern(2, 1, 1));
        assert_eq!(answer(3, 4, 5), !pattern(3, 4, 5));
    }

    #[test]
    fn fill_and_check() {
        let mut page = [0u8; 4096];
        fill(&mut page, |w| pattern(1, 2, w));
        assert_eq!(first_mismatch(&page, |w| pattern(1, 2, w)), None);
        page[100] ^= 1;
        assert_eq!(first_mismatch(&page, |w| pattern(1, 2, w)), Some(12));
    }

    #[test]
    fn payloads_vary_and_checksums_see_order() {
        assert_ne!(payload(1), payload(2));
        assert_eq!(payload(7), payload(7));
        assert!((0..200).any(|s| payload(s).len() > 2048));
        assert!((0..200).all(|s| payload(s).len() <= 5000));
        assert_ne!(checksum(b"ab"), checksum(b"ba"));
    }

    #[test]
    fn parses_parameters() {
        assert_eq!(three("1,2,3"), Some((1, 2, 3)));
        assert_eq!(three("1,2"), None);
        assert_eq!(three("1,2,3,4"), None);
        assert_eq!(three("1,x,3"), None);
    }
}
