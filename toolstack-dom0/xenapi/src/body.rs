//! A reply body written straight into relay-sized chunks, with fallible
//! allocation and a size bound.
//!
//! A big read (`VM.get_all_records` with 1,000 VMs is 6.8 MB of XML) is
//! never held as one contiguous buffer: the codecs write into [`Body`],
//! which fills chunks of [`CHUNK`] bytes (`xcp_relay::MAX_CHUNK`, one
//! `FromToolstack::Data` message each). The HTTP head, written once the
//! length is known, becomes the first chunk ([`Body::into_response`]), and
//! the relay path hands the chunks on without copying them
//! ([`crate::relayed`]). A body that would pass its bound, or whose next
//! chunk cannot be allocated, stops growing and reports
//! [`Body::overflowed`]: the engine then answers with an error instead
//! (issue #12: running out of memory refuses the request, never panics).

use alloc::vec::Vec;
use core::fmt;

/// Bytes per chunk: one relay `Data` message.
pub const CHUNK: usize = xcp_relay::MAX_CHUNK;

/// A body being written.
#[derive(Debug, Default)]
pub struct Body {
    /// The head's slot (empty until [`Body::into_response`]), then the
    /// body's chunks; nothing at all while the body is empty.
    chunks: Vec<Vec<u8>>,
    len: usize,
    limit: usize,
    overflowed: bool,
}

impl Body {
    /// An empty body that may grow to `limit` bytes.
    pub fn new(limit: usize) -> Body {
        Body {
            chunks: Vec::new(),
            len: 0,
            limit,
            overflowed: false,
        }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True once a write passed the bound or could not allocate; the body
    /// is then incomplete and must not be sent.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Appends `bytes`, or marks the body overflowed.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.len + bytes.len() > self.limit {
            self.overflow();
            return;
        }
        while !bytes.is_empty() {
            let room = match self.chunks.len() {
                0 | 1 => 0,
                _ => self.chunks.last().map_or(0, |c| CHUNK - c.len()),
            };
            if room == 0 {
                let slots = if self.chunks.is_empty() { 2 } else { 1 };
                let mut chunk = Vec::new();
                if self.chunks.try_reserve(slots).is_err()
                    || chunk.try_reserve_exact(CHUNK).is_err()
                {
                    self.overflow();
                    return;
                }
                if self.chunks.is_empty() {
                    // The head's slot, so the head never shifts the list.
                    self.chunks.push(Vec::new());
                }
                self.chunks.push(chunk);
                continue;
            }
            let n = room.min(bytes.len());
            let last = self.chunks.last_mut().expect("a chunk with room exists");
            last.extend_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }

    /// Gives back what an overflowed body held.
    fn overflow(&mut self) {
        self.overflowed = true;
        self.chunks = Vec::new();
        self.len = 0;
    }

    /// The response: `head` (written for this body's length) as the first
    /// chunk, then the body's chunks, moved, not copied.
    pub fn into_response(self, head: Vec<u8>) -> Response {
        let mut chunks = self.chunks;
        let len = self.len + head.len();
        match chunks.first_mut() {
            Some(slot) => *slot = head,
            None => chunks = alloc::vec![head],
        }
        Response { chunks, len }
    }
}

impl fmt::Write for Body {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// A whole HTTP response as chunks of at most [`CHUNK`] bytes (the head
/// may be its own, shorter, first chunk).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    chunks: Vec<Vec<u8>>,
    len: usize,
}

impl Response {
    /// A response held in one buffer (small replies: errors, 503s), cut
    /// into chunks.
    pub fn from_bytes(bytes: Vec<u8>) -> Response {
        let len = bytes.len();
        if len <= CHUNK {
            return Response {
                chunks: alloc::vec![bytes],
                len,
            };
        }
        Response {
            chunks: bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect(),
            len,
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks in order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(Vec::as_slice)
    }

    /// The chunks, moved out.
    pub fn into_chunks(self) -> Vec<Vec<u8>> {
        self.chunks
    }

    /// The whole response in one buffer (tests and host tools).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn fills_whole_chunks_then_prepends_the_head() {
        let mut b = Body::new(1 << 20);
        let piece = [b'x'; 1000];
        for _ in 0..40 {
            b.push(&piece);
        }
        let _ = b.write_str("end");
        assert_eq!(b.len(), 40_003);
        let r = b.into_response(b"HEAD".to_vec());
        let sizes: Vec<usize> = r.chunks().map(<[u8]>::len).collect();
        assert_eq!(sizes, [4, CHUNK, CHUNK, 40_003 - 2 * CHUNK]);
        assert_eq!(r.len(), 40_007);
        assert_eq!(&r.to_vec()[..6], b"HEADxx");
    }

    #[test]
    fn a_body_past_its_bound_gives_back_what_it_held() {
        let mut b = Body::new(100);
        b.push(&[0; 60]);
        assert!(!b.overflowed());
        b.push(&[0; 60]);
        assert!(b.overflowed());
        assert!(b.is_empty());
        b.push(b"more");
        assert_eq!(b.into_response(b"H".to_vec()).to_vec(), b"H");
    }

    #[test]
    fn a_big_buffer_is_cut_into_chunks() {
        let r = Response::from_bytes(alloc::vec![7; CHUNK * 2 + 1]);
        assert_eq!(r.chunks().count(), 3);
        assert_eq!(r.to_vec().len(), CHUNK * 2 + 1);
    }
}
