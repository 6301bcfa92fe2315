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
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use xen_abi::io::console::{
    OFF_IN_CONS, OFF_IN_PROD, OFF_OUT, OFF_OUT_CONS, OFF_OUT_PROD, XENCONS_OUT_SIZE,
};

/// Size of the `out` ring (io/console.h's `xencons_interface`, from xen-abi).
pub const OUT_RING: u32 = XENCONS_OUT_SIZE as u32;
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

/// One domain's relay state: partial line and history.
#[derive(Debug, Clone)]
pub struct DomainConsole {
    name: String,
    partial: Vec<u8>,
    history: VecDeque<u8>,
    overruns: u64,
}

impl DomainConsole {
    /// State for the domain called `name`.
    pub fn new(name: &str) -> Self {
        DomainConsole {
            name: String::from(name),
            partial: Vec::new(),
            history: VecDeque::new(),
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

    proptest! {
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
