//! Message framing: `u32 little-endian length` then that many payload bytes.
//!
//! read first: this crate's README.md ("Framing").
//!
//! [`FrameParser`] reassembles frames from pieces of any size, so a message
//! larger than the ring streams through it. It answers like ocaml-xenstore's
//! parser: [`Parse::NeedMore`] | [`Parse::Message`] | [`Parse::Bad`]. The
//! length is checked against the maximum before anything is allocated.

use alloc::vec::Vec;

/// Bytes of the length prefix.
pub const LEN_SIZE: usize = 4;

/// Why a frame from the peer is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// The length prefix exceeds the maximum message size.
    TooLong(u32),
}

/// The parser's answer after a [`FrameParser::feed`].
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// The frame is incomplete; at least this many more bytes are needed.
    NeedMore(usize),
    /// A whole payload (without its length prefix).
    Message(Vec<u8>),
    /// The peer sent a frame we refuse; the stream cannot be resynchronised.
    Bad(BadFrame),
}

enum State {
    Len { got: usize, bytes: [u8; LEN_SIZE] },
    Body { len: usize, body: Vec<u8> },
    Broken(BadFrame),
}

/// Incremental frame parser with a maximum payload size.
pub struct FrameParser {
    max: usize,
    state: State,
}

impl FrameParser {
    /// A parser accepting payloads of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameParser {
            max,
            state: State::Len {
                got: 0,
                bytes: [0; LEN_SIZE],
            },
        }
    }

    /// Bytes the parser can take before it has a complete frame (feeding
    /// more than this returns the surplus unconsumed).
    pub fn wanted(&self) -> usize {
        match &self.state {
            State::Len { got, .. } => LEN_SIZE - got,
            State::Body { len, body } => len - body.len(),
            State::Broken(_) => 0,
        }
    }

    /// Consumes a prefix of `input`; returns how many bytes it took and the
    /// state reached. Once `Bad`, every later call returns `Bad` again.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Parse) {
        let mut used = 0;
        loop {
            match &mut self.state {
                State::Broken(bad) => return (used, Parse::Bad(*bad)),
                State::Len { got, bytes } => {
                    let n = (LEN_SIZE - *got).min(input.len() - used);
                    bytes[*got..*got + n].copy_from_slice(&input[used..used + n]);
                    *got += n;
                    used += n;
                    if *got < LEN_SIZE {
                        return (used, Parse::NeedMore(LEN_SIZE - *got));
                    }
                    let len = u32::from_le_bytes(*bytes);
                    if len as usize > self.max {
                        self.state = State::Broken(BadFrame::TooLong(len));
                        continue;
                    }
                    let len = len as usize;
                    self.state = State::Body {
                        len,
                        body: Vec::with_capacity(len),
                    };
                }
                State::Body { len, body } => {
                    let n = (*len - body.len()).min(input.len() - used);
                    body.extend_from_slice(&input[used..used + n]);
                    used += n;
                    if body.len() < *len {
                        return (used, Parse::NeedMore(*len - body.len()));
                    }
                    let body = core::mem::take(body);
                    self.state = State::Len {
                        got: 0,
                        bytes: [0; LEN_SIZE],
                    };
                    return (used, Parse::Message(body));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn whole_and_split_frames() {
        let mut p = FrameParser::new(16);
        let frame = [3, 0, 0, 0, 0xa, 0xb, 0xc, 2, 0, 0, 0, 1];
        assert_eq!(p.feed(&frame), (7, Parse::Message(vec![0xa, 0xb, 0xc])));
        assert_eq!(p.feed(&frame[7..]), (5, Parse::NeedMore(1)));
        assert_eq!(p.wanted(), 1);
        assert_eq!(p.feed(&[9]), (1, Parse::Message(vec![1, 9])));
        for b in [1u8, 0, 0] {
            assert!(matches!(p.feed(&[b]), (1, Parse::NeedMore(_))));
        }
        assert_eq!(p.feed(&[0, 0x55, 1]), (2, Parse::Message(vec![0x55])));
    }

    #[test]
    fn empty_payload() {
        let mut p = FrameParser::new(0);
        assert_eq!(p.feed(&[0, 0, 0, 0]), (4, Parse::Message(vec![])));
    }

    #[test]
    fn over_maximum_is_bad_forever() {
        let mut p = FrameParser::new(16);
        assert_eq!(
            p.feed(&[17, 0, 0, 0]),
            (4, Parse::Bad(BadFrame::TooLong(17)))
        );
        assert_eq!(p.feed(&[0]), (0, Parse::Bad(BadFrame::TooLong(17))));
        let mut q = FrameParser::new(1 << 16);
        assert_eq!(
            q.feed(&[0xff; 4]).1,
            Parse::Bad(BadFrame::TooLong(u32::MAX))
        );
    }
}
