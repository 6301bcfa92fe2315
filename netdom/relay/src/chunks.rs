//! A byte queue that holds exactly what it counts.
//!
//! `VecDeque<u8>` doubles its capacity as it grows and never gives it back
//! while not empty, so what a connection's buffers hold in memory can be
//! twice or more what they contain, and stays so after a big reply has
//! drained. [`Chunks`] keeps the bytes as the `Vec`s they came in (dom0's
//! messages are moved in, not copied) or as exact copies (a client's
//! bytes), frees each chunk as soon as it is consumed, and reports
//! [`Chunks::held`]: every chunk's capacity plus [`CHUNK_OVERHEAD`]. The
//! relay's global cap counts that.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Bytes one chunk costs beyond its data: its `Vec` header in the queue
/// and the allocator's rounding, with headroom.
pub const CHUNK_OVERHEAD: usize = 48;
/// Client bytes are merged into the last chunk while it stays at most this
/// long (a trickle of small reads does not become many tiny chunks).
const MERGE_BELOW: usize = 1024;

/// A FIFO of bytes stored as chunks. See the module docs.
#[derive(Debug, Default)]
pub struct Chunks {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already consumed.
    offset: usize,
    len: usize,
    held: usize,
}

impl Chunks {
    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory the queue holds for its chunks (the queue's own
    /// ring of chunk headers is counted in [`CHUNK_OVERHEAD`]).
    pub fn held(&self) -> usize {
        self.held
    }

    /// What appending `n` bytes with [`Self::extend_from_slice`] adds to
    /// [`Self::held`] at most.
    pub fn cost_of_copy(n: usize) -> usize {
        n + CHUNK_OVERHEAD
    }

    /// What pushing `chunk` adds to [`Self::held`].
    pub fn cost_of(chunk: &Vec<u8>) -> usize {
        chunk.capacity() + CHUNK_OVERHEAD
    }

    /// Appends a copy of `bytes`, merging it into a small last chunk.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.chunks.back_mut() {
            // (The front chunk's consumed bytes stay before `offset`.)
            Some(last) if last.len() + bytes.len() <= MERGE_BELOW => {
                let mut joined = Vec::with_capacity(last.len() + bytes.len());
                joined.extend_from_slice(last);
                joined.extend_from_slice(bytes);
                self.held = self.held - last.capacity() + joined.capacity();
                *last = joined;
                self.len += bytes.len();
            }
            _ => self.push(bytes.to_vec()),
        }
    }

    /// Appends `chunk` as it is.
    pub fn push(&mut self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        self.held += Self::cost_of(&chunk);
        self.chunks.push_back(chunk);
    }

    /// The first contiguous bytes queued (empty if none).
    pub fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[self.offset..])
    }

    /// Drops the first `n` bytes (clamped to what is queued), freeing each
    /// chunk consumed whole.
    pub fn consume(&mut self, n: usize) {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front().expect("len counts the chunks' bytes");
            let left = front.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.pop_front();
        }
    }

    /// Takes the first `max` bytes (or fewer) out as one `Vec`.
    pub fn take(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.len);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let front = self.front();
            let k = front.len().min(n - out.len());
            out.extend_from_slice(&front[..k]);
            self.consume(k);
        }
        out
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        *self = Chunks::default();
    }

    fn pop_front(&mut self) {
        if let Some(c) = self.chunks.pop_front() {
            self.held -= Self::cost_of(&c);
        }
        self.offset = 0;
        if self.chunks.is_empty() {
            // The ring of headers goes too.
            self.chunks = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_and_memory_is_given_back() {
        let mut q = Chunks::default();
        q.extend_from_slice(b"ab");
        q.extend_from_slice(b"cd");
        q.push(b"efgh".to_vec());
        assert_eq!(q.len(), 8);
        assert_eq!(q.held(), 4 + 4 + 2 * CHUNK_OVERHEAD);
        assert_eq!(q.front(), b"abcd");
        q.consume(3);
        assert_eq!(q.front(), b"d");
        assert_eq!(q.take(3), b"def");
        assert_eq!(q.held(), 4 + CHUNK_OVERHEAD);
        q.extend_from_slice(b"i");
        assert_eq!(q.take(100), b"ghi");
        assert!(q.is_empty());
        assert_eq!(q.held(), 0);
        q.push(alloc::vec![7; 5000]);
        q.extend_from_slice(&[8; 10]);
        q.clear();
        assert_eq!((q.len(), q.held()), (0, 0));
    }

    #[test]
    fn a_trickle_stays_in_few_chunks() {
        let mut q = Chunks::default();
        for _ in 0..MERGE_BELOW {
            q.extend_from_slice(b"x");
            assert!(q.held() <= q.len() + CHUNK_OVERHEAD);
        }
        q.extend_from_slice(b"y");
        assert_eq!(q.held(), q.len() + 2 * CHUNK_OVERHEAD);
        assert!(q.held() <= 2 * Chunks::cost_of_copy(0) + q.len());
    }
}
