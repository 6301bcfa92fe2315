//! The write-ahead log: framing, the `Storage` trait it is written through,
//! and an in-memory fake storage.
//!
//! A frame is `len: u32 le | crc32(payload): u32 le | payload`. The reader
//! stops at the first frame that is short, oversized or fails its checksum:
//! everything before it is good, everything from it on is a torn tail that
//! the engine cuts (never parses). The engine replies to a call only after
//! its frame is appended and synced, so an acknowledged change survives a
//! crash.

use alloc::vec::Vec;

/// Largest frame payload accepted (a single call's changes).
pub const MAX_FRAME: usize = 64 << 20;

/// A storage failure (the board's I/O error, reduced to a message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageError(pub &'static str);

/// Where the log lives: a file on the host, a disk or a channel in dom0.
pub trait Storage {
    /// Appends bytes at the end of the log.
    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError>;
    /// Makes every appended byte durable.
    fn sync(&mut self) -> Result<(), StorageError>;
    /// Reads the whole log.
    fn read_all(&mut self) -> Result<Vec<u8>, StorageError>;
    /// Cuts the log to `len` bytes (drops a torn tail) and syncs.
    fn truncate(&mut self, len: u64) -> Result<(), StorageError>;
    /// Atomically replaces the whole log with `bytes` (compaction).
    fn replace(&mut self, bytes: &[u8]) -> Result<(), StorageError>;
}

/// A [`Storage`] that keeps nothing: for a database that is volatile anyway
/// (dom0's, until durable storage exists, `budget.rs`). Reads back empty;
/// counts what was written, for nothing but inspection.
#[derive(Default, Clone, Copy, Debug)]
pub struct Volatile {
    /// Bytes written since the last `replace` or `truncate`.
    pub written: u64,
}

impl Storage for Volatile {
    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.written = self.written.saturating_add(bytes.len() as u64);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn read_all(&mut self) -> Result<Vec<u8>, StorageError> {
        Ok(Vec::new())
    }

    fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        self.written = len;
        Ok(())
    }

    fn replace(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.written = bytes.len() as u64;
        Ok(())
    }
}

/// An in-memory [`Storage`] that keeps what was synced apart from what was
/// only appended, so tests can simulate a crash.
#[derive(Default, Clone, Debug)]
pub struct MemStorage {
    /// Bytes made durable by `sync`.
    pub durable: Vec<u8>,
    /// Bytes appended since the last sync.
    pub buffered: Vec<u8>,
    /// When set, every operation fails (to test failure paths).
    pub fail: bool,
}

impl MemStorage {
    /// What survives a crash now.
    pub fn crash(&self) -> MemStorage {
        MemStorage {
            durable: self.durable.clone(),
            ..MemStorage::default()
        }
    }
}

impl Storage for MemStorage {
    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        if self.fail {
            return Err(StorageError("injected failure"));
        }
        self.buffered.extend_from_slice(bytes);
        Ok(())
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        if self.fail {
            return Err(StorageError("injected failure"));
        }
        self.durable.append(&mut self.buffered);
        Ok(())
    }
    fn read_all(&mut self) -> Result<Vec<u8>, StorageError> {
        Ok(self.durable.clone())
    }
    fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        self.durable.truncate(len as usize);
        self.buffered.clear();
        Ok(())
    }
    fn replace(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.durable = bytes.to_vec();
        self.buffered.clear();
        Ok(())
    }
}

/// Frames one payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The good frames of a log and the length of the good prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct Frames<'a> {
    /// Payloads of every intact frame, in order.
    pub payloads: Vec<&'a [u8]>,
    /// Bytes covered by intact frames; anything after is a torn tail.
    pub good_len: usize,
}

/// Splits a log into intact frames, stopping at the first damaged one.
pub fn read_frames(log: &[u8]) -> Frames<'_> {
    let mut payloads = Vec::new();
    let mut pos = 0usize;
    while log.len() - pos >= 8 {
        let len = u32::from_le_bytes([log[pos], log[pos + 1], log[pos + 2], log[pos + 3]]) as usize;
        let sum = u32::from_le_bytes([log[pos + 4], log[pos + 5], log[pos + 6], log[pos + 7]]);
        if len > MAX_FRAME || log.len() - pos - 8 < len {
            break;
        }
        let payload = &log[pos + 8..pos + 8 + len];
        if crc32(payload) != sum {
            break;
        }
        payloads.push(payload);
        pos += 8 + len;
    }
    Frames {
        payloads,
        good_len: pos,
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn torn_tail_is_cut() {
        let mut log = frame(b"one");
        log.extend(frame(b"two"));
        let good = log.len();
        log.extend(&frame(b"three")[..6]);
        let f = read_frames(&log);
        assert_eq!(f.payloads, [&b"one"[..], &b"two"[..]]);
        assert_eq!(f.good_len, good);
    }

    #[test]
    fn corrupt_frame_stops_reading() {
        let mut log = frame(b"one");
        let mut bad = frame(b"two");
        bad[9] ^= 1;
        log.extend(bad);
        log.extend(frame(b"three"));
        assert_eq!(read_frames(&log).payloads.len(), 1);
    }

    #[test]
    fn mem_storage_crash_keeps_only_synced() {
        let mut s = MemStorage::default();
        s.append(b"a").unwrap();
        s.sync().unwrap();
        s.append(b"b").unwrap();
        assert_eq!(s.crash().durable, b"a");
    }

    proptest! {
        #[test]
        fn frames_roundtrip_and_any_prefix_is_a_prefix(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            cut in 0usize..1000,
        ) {
            let mut log = Vec::new();
            for p in &payloads { log.extend(frame(p)); }
            let f = read_frames(&log);
            prop_assert_eq!(f.payloads.len(), payloads.len());
            let cut = cut.min(log.len());
            let g = read_frames(&log[..cut]);
            prop_assert!(g.payloads.len() <= payloads.len());
            for (a, b) in g.payloads.iter().zip(payloads.iter()) { prop_assert_eq!(*a, &b[..]); }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let f = read_frames(&bytes);
            prop_assert!(f.good_len <= bytes.len());
        }
    }
}
