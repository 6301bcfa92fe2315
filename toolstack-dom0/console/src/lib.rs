//! The console relay engine: what dom0 does with each domain's PV console
//! ring (xenconsoled's role), kept pure so it is tested on the host.
//!
//! Read first: xen/include/public/io/console.h. The domain produces into
//! `out[2048]` and advances `out_prod`; we copy `out[out_cons..out_prod]` out
//! once, advance `out_cons`, split the bytes into lines prefixed with the
//! domain's name, and keep the last [`HISTORY_BYTES`] per domain for XenAPI.
//! The domain controls both the bytes and `out_prod`: a producer more than a
//! ring ahead is a protocol error; we skip to its producer (losing what we
//! cannot trust) and count the event rather than read garbage.
//!
//! Input goes the other way: dom0 produces into `in[1024]` and advances
//! `in_prod`; the domain consumes and advances `in_cons`. [`input_room`]
//! checks the domain's `in_cons` against our `in_prod` the same way.
//!
//! A reader of the history (a client attached to the text console) holds
//! a position in the stream of every byte the domain wrote
//! ([`DomainConsole::written`]) and reads on from it
//! ([`DomainConsole::read_from`]) at its own pace: a reader more than the
//! history behind skips what was dropped, so nothing a reader does makes
//! dom0 hold more than the history.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use xen_abi::io::console::{
    OFF_IN, OFF_IN_CONS, OFF_IN_PROD, OFF_OUT, OFF_OUT_CONS, OFF_OUT_PROD, XENCONS_IN_SIZE,
    XENCONS_OUT_SIZE,
};

/// Size of the `out` ring (io/console.h's `xencons_interface`, from xen-abi).
pub const OUT_RING: u32 = XENCONS_OUT_SIZE as u32;
/// Size of the `in` ring.
pub const IN_RING: u32 = XENCONS_IN_SIZE as u32;
/// Offset of `in` in the page.
pub const IN_OFFSET: usize = OFF_IN;
/// Offset of `out` in the page.
pub const OUT_OFFSET: usize = OFF_OUT;
/// Offsets of the four indexes in the page: `in_cons`.
pub const IN_CONS: usize = OFF_IN_CONS;
/// `in_prod`
pub const IN_PROD: usize = OFF_IN_PROD;
/// `out_cons`
pub const OUT_CONS: usize = OFF_OUT_CONS;
/// `out_prod`
pub const OUT_PROD: usize = OFF_OUT_PROD;
/// History kept per domain.
pub const HISTORY_BYTES: usize = 64 * 1024;
/// Longest line before we cut it (a domain that never sends `\n`).
pub const MAX_LINE: usize = 512;

/// Which bytes of `out[]` to consume for indexes `(cons, prod)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Nothing new.
    Empty,
    /// `len` bytes starting at ring position `start` (may wrap).
    Bytes {
        /// Ring position of the first byte (already masked).
        start: u32,
        /// Number of bytes.
        len: u32,
    },
    /// `prod - cons` exceeds the ring: the producer is lying or corrupt.
    Overrun,
}

/// Decides what to read for the ring indexes the domain published.
pub fn pending(cons: u32, prod: u32) -> Pending {
    let len = prod.wrapping_sub(cons);
    if len == 0 {
        Pending::Empty
    } else if len > OUT_RING {
        Pending::Overrun
    } else {
        Pending::Bytes {
            start: cons % OUT_RING,
            len,
        }
    }
}

/// Copies the pending bytes out of a snapshot of `out[]`.
pub fn copy_out(out: &[u8; OUT_RING as usize], start: u32, len: u32, into: &mut Vec<u8>) {
    for i in 0..len {
        into.push(out[((start + i) % OUT_RING) as usize]);
    }
}

/// Where dom0 may write into `in[]` for the domain's `in_cons` and our
/// `in_prod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// `len` free bytes from ring position `start` (may wrap; 0: full).
    Bytes {
        /// Ring position of the first free byte (already masked).
        start: u32,
        /// Free bytes.
        len: u32,
    },
    /// `in_prod - in_cons` exceeds the ring: the domain's `in_cons` is
    /// corrupt (it consumed bytes we never produced).
    Overrun,
}

/// Decides where input may go for `in_cons` (the domain's) and `in_prod`
/// (ours).
pub fn input_room(cons: u32, prod: u32) -> Room {
    let used = prod.wrapping_sub(cons);
    if used > IN_RING {
        Room::Overrun
    } else {
        Room::Bytes {
            start: prod % IN_RING,
            len: IN_RING - used,
        }
    }
}

/// Splits `len` bytes from ring position `start` of a ring of `size` into
/// at most two runs `(position, length)` that do not wrap (the second may
/// be empty).
pub fn runs(start: u32, len: u32, size: u32) -> [(usize, usize); 2] {
    let start = start % size;
    let len = len.min(size);
    let first = len.min(size - start);
    [
        (start as usize, first as usize),
        (0, (len - first) as usize),
    ]
}

/// One domain's relay state: partial line and history.
#[derive(Debug, Clone)]
pub struct DomainConsole {
    name: String,
    partial: Vec<u8>,
    history: VecDeque<u8>,
    /// Bytes the domain wrote since we connected.
    written: u64,
    overruns: u64,
}

impl DomainConsole {
    /// State for the domain called `name`.
    pub fn new(name: &str) -> Self {
        DomainConsole {
            name: String::from(name),
            partial: Vec::new(),
            history: VecDeque::new(),
            written: 0,
            overruns: 0,
        }
    }

    /// Notes a ring overrun (reported once as a line of its own).
    pub fn overrun(&mut self) -> String {
        self.overruns += 1;
        alloc::format!("[{}] console ring overrun: output lost", self.name)
    }

    /// Feeds bytes the domain wrote; returns whole lines, prefixed
    /// `[name] `, with control characters other than tab replaced.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        for &b in bytes {
            if self.history.len() == HISTORY_BYTES {
                self.history.pop_front();
            }
            self.history.push_back(b);
        }
        self.written += bytes.len() as u64;
        let mut lines = Vec::new();
        for &b in bytes {
            match b {
                b'\n' => lines.push(self.take_line()),
                b'\r' => {}
                _ => {
                    self.partial.push(b);
                    if self.partial.len() >= MAX_LINE {
                        lines.push(self.take_line());
                    }
                }
            }
        }
        lines
    }

    fn take_line(&mut self) -> String {
        let text: String = String::from_utf8_lossy(&self.partial)
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        self.partial.clear();
        alloc::format!("[{}] {}", self.name, text)
    }

    /// The last [`HISTORY_BYTES`] the domain wrote.
    pub fn history(&self) -> Vec<u8> {
        self.history.iter().copied().collect()
    }

    /// Bytes the domain wrote since we connected: the position after the
    /// last byte of the history.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// At most `max` bytes the domain wrote from position `from` on, and
    /// the position after them. A reader behind the history (its bytes
    /// were dropped) gets the history from its start; one ahead (it cannot
    /// be) gets nothing.
    pub fn read_from(&self, from: u64, max: usize) -> (Vec<u8>, u64) {
        let first = self.written - self.history.len() as u64;
        let from = from.clamp(first, self.written);
        let skip = (from - first) as usize;
        let bytes: Vec<u8> = self.history.iter().skip(skip).take(max).copied().collect();
        let next = from + bytes.len() as u64;
        (bytes, next)
    }

    /// Overruns seen so far.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pending_handles_wrap_and_overrun() {
        assert_eq!(pending(5, 5), Pending::Empty);
        assert_eq!(pending(10, 15), Pending::Bytes { start: 10, len: 5 });
        assert_eq!(
            pending(u32::MAX - 1, 3),
            Pending::Bytes {
                start: (u32::MAX - 1) % OUT_RING,
                len: 5
            }
        );
        assert_eq!(
            pending(0, OUT_RING),
            Pending::Bytes {
                start: 0,
                len: OUT_RING
            }
        );
        assert_eq!(pending(0, OUT_RING + 1), Pending::Overrun);
        assert_eq!(pending(100, 50), Pending::Overrun);
    }

    #[test]
    fn copy_out_wraps() {
        let mut out = [0u8; 2048];
        out[2046] = b'a';
        out[2047] = b'b';
        out[0] = b'c';
        let mut v = Vec::new();
        copy_out(&out, 2046, 3, &mut v);
        assert_eq!(v, b"abc");
    }

    #[test]
    fn lines_are_prefixed_and_split() {
        let mut c = DomainConsole::new("testdom");
        assert!(c.feed(b"hel").is_empty());
        let lines = c.feed(b"lo\r\nworld\n\x1b[0m\n");
        assert_eq!(
            lines,
            ["[testdom] hello", "[testdom] world", "[testdom] ?[0m"]
        );
        assert_eq!(c.history(), b"hello\r\nworld\n\x1b[0m\n");
    }

    #[test]
    fn long_lines_are_cut_and_history_is_bounded() {
        let mut c = DomainConsole::new("d");
        let lines = c.feed(&[b'x'; MAX_LINE * 2 + 3]);
        assert_eq!(lines.len(), 2);
        let big = alloc::vec![b'y'; HISTORY_BYTES + 100];
        c.feed(&big);
        assert_eq!(c.history().len(), HISTORY_BYTES);
        assert!(c.history().iter().all(|&b| b == b'y'));
        assert!(c.overrun().contains("overrun"));
        assert_eq!(c.overruns(), 1);
    }

    #[test]
    fn input_room_checks_the_domains_index() {
        assert_eq!(
            input_room(0, 0),
            Room::Bytes {
                start: 0,
                len: IN_RING
            }
        );
        assert_eq!(
            input_room(10, 1010),
            Room::Bytes {
                start: 1010,
                len: 24
            }
        );
        assert_eq!(input_room(0, IN_RING), Room::Bytes { start: 0, len: 0 });
        assert_eq!(input_room(0, IN_RING + 1), Room::Overrun);
        // The domain claims to have consumed past what we produced.
        assert_eq!(input_room(5, 4), Room::Overrun);
        assert_eq!(
            input_room(u32::MAX, 2),
            Room::Bytes {
                start: 2,
                len: IN_RING - 3
            }
        );
    }

    #[test]
    fn runs_split_at_the_ring_end() {
        assert_eq!(runs(1020, 10, IN_RING), [(1020, 4), (0, 6)]);
        assert_eq!(runs(0, 10, IN_RING), [(0, 10), (0, 0)]);
        assert_eq!(runs(5000, 5000, IN_RING), [(904, 120), (0, 904)]);
    }

    #[test]
    fn readers_read_on_from_their_position() {
        let mut c = DomainConsole::new("d");
        c.feed(b"hello ");
        let (bytes, at) = c.read_from(0, 3);
        assert_eq!((bytes.as_slice(), at), (&b"hel"[..], 3));
        c.feed(b"world");
        let (bytes, at) = c.read_from(at, 100);
        assert_eq!((bytes.as_slice(), at), (&b"lo world"[..], 11));
        assert_eq!(c.read_from(at, 100), (Vec::new(), 11));
        // A reader past the end (it cannot be) gets nothing.
        assert_eq!(c.read_from(99, 100), (Vec::new(), 11));
        // A reader the history left behind resumes at its start.
        c.feed(&alloc::vec![b'z'; HISTORY_BYTES]);
        let (bytes, at) = c.read_from(3, 10);
        assert_eq!(bytes, [b'z'; 10]);
        assert_eq!(at, 11 + 10);
        assert_eq!(c.written(), 11 + HISTORY_BYTES as u64);
    }

    proptest! {
        #[test]
        fn input_room_and_runs_stay_in_the_ring(cons in any::<u32>(), prod in any::<u32>(), want in 0u32..5000) {
            if let Room::Bytes { start, len } = input_room(cons, prod) {
                prop_assert!(start < IN_RING && len <= IN_RING);
                let n = want.min(len);
                let [(a, la), (b, lb)] = runs(start, n, IN_RING);
                prop_assert_eq!(la + lb, n as usize);
                prop_assert!(a + la <= IN_RING as usize && b + lb <= IN_RING as usize);
            } else {
                prop_assert!(prod.wrapping_sub(cons) > IN_RING);
            }
        }

        #[test]
        fn readers_never_read_outside_the_history(writes in proptest::collection::vec(0usize..40_000, 0..6), from in any::<u64>(), max in 0usize..100_000) {
            let mut c = DomainConsole::new("p");
            for n in writes {
                c.feed(&alloc::vec![b'a'; n]);
            }
            let (bytes, next) = c.read_from(from, max);
            prop_assert!(bytes.len() <= max && bytes.len() <= HISTORY_BYTES);
            prop_assert!(next <= c.written());
            prop_assert_eq!(next - bytes.len() as u64, from.clamp(c.written() - c.history().len() as u64, c.written()));
        }

        #[test]
        fn any_bytes_any_indexes_never_panic(cons in any::<u32>(), prod in any::<u32>(), bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut out = [0u8; 2048];
            for (i, b) in bytes.iter().take(2048).enumerate() { out[i] = *b; }
            let mut v = Vec::new();
            if let Pending::Bytes { start, len } = pending(cons, prod) {
                copy_out(&out, start, len, &mut v);
                prop_assert!(v.len() <= 2048);
            }
            let mut c = DomainConsole::new("p");
            for line in c.feed(&bytes) {
                prop_assert!(line.len() <= MAX_LINE * 4 + 8);
            }
        }
    }
}
