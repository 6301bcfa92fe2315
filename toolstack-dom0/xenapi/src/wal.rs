//! The write-ahead log: framing, the `Storage` trait it is written through,
//! and an in-memory fake storage.
//!
//! The engine replies to a call only after its frame is appended and
//! synced, so an acknowledged change survives a crash. A crash can leave
//! only a torn tail (the last, never acknowledged, write); damage anywhere
//! else is corruption, and cutting there would silently drop acknowledged
//! records. So the log says which is which:
//!
//! - Format 2 (written since this change): a log header [`LOG_MAGIC`]
//!   `| version 2: u32 le | crc32(magic, version): u32 le` (16 bytes), then
//!   frames `FRAME_MAGIC: 4 | seq: u64 le | len: u32 le | crc32(payload):
//!   u32 le | crc32(the 20 bytes before): u32 le | payload`. `seq` counts
//!   the log's frames from 0. A bad frame (magic, header checksum, length,
//!   payload checksum or sequence wrong) is followed by a scan for the next
//!   intact frame at any byte offset: none means a torn tail, which is cut;
//!   one means corruption in the middle, which [`read_log`] reports
//!   ([`Damage`]) and reads past. [`FRAME_MAGIC`] starts with 0xF7, a byte
//!   that never occurs in UTF-8, so a JSON payload cannot hold a false
//!   frame start, and the header checksum rules out chance matches.
//! - Format 1 (logs written before, `len: u32 le | crc32(payload): u32 le |
//!   payload`, no header): read with its old rules, the reader stops at the
//!   first bad frame. It is told apart by its first four bytes, a length of
//!   at most [`MAX_FRAME`], which [`LOG_MAGIC`]'s are not. Corruption in
//!   the middle is still told from a tail: by a bad frame whose length is
//!   plausible and is followed right after by an intact old frame, by an
//!   intact old frame further on (found by its payload's start, `{"ops"`,
//!   which every payload the engine wrote has), or by a format-2 frame past
//!   the bad point (a damaged format-2 header). The engine rewrites a
//!   format-1 log as format 2 when it opens it.
//!
//! A damaged last frame with nothing intact after it cannot be told from a
//! torn write; it is cut, as before.

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
        if self.fail {
            return Err(StorageError("injected failure"));
        }
        self.durable.truncate(len as usize);
        self.buffered.clear();
        Ok(())
    }
    fn replace(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        if self.fail {
            return Err(StorageError("injected failure"));
        }
        self.durable = bytes.to_vec();
        self.buffered.clear();
        Ok(())
    }
}

/// The first 8 bytes of a format-2 log. Read as a format-1 length it is
/// far above [`MAX_FRAME`], so the formats cannot be confused.
pub const LOG_MAGIC: [u8; 8] = *b"XCPRSWAL";
/// The format [`log_header`] writes.
pub const LOG_VERSION: u32 = 2;
/// Bytes of the log header.
pub const LOG_HEADER_LEN: usize = 16;
/// The first 4 bytes of every format-2 frame (0xF7 never occurs in UTF-8).
pub const FRAME_MAGIC: [u8; 4] = [0xF7, b'W', b'A', b'L'];
/// Bytes of a format-2 frame header.
pub const FRAME_HEADER_LEN: usize = 24;

/// The header a format-2 log starts with.
pub fn log_header() -> [u8; LOG_HEADER_LEN] {
    let mut h = [0u8; LOG_HEADER_LEN];
    h[..8].copy_from_slice(&LOG_MAGIC);
    h[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
    let sum = crc32(&h[..12]);
    h[12..].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Frames one payload as frame number `seq` of a format-2 log.
pub fn frame(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER_LEN);
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    let head = crc32(&out);
    out.extend_from_slice(&head.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Frames one payload in format 1 (logs written before format 2; kept to
/// test that they still read).
pub fn frame_v1(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The good frames of a format-1 log and the length of the good prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct Frames<'a> {
    /// Payloads of every intact frame, in order.
    pub payloads: Vec<&'a [u8]>,
    /// Bytes covered by intact frames; anything after is a torn tail.
    pub good_len: usize,
}

fn u32_at(log: &[u8], pos: usize) -> Option<u32> {
    let b = log.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(log: &[u8], pos: usize) -> Option<u64> {
    let b = log.get(pos..pos.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// The format-1 frame at `pos`: its payload, or `None` if it is damaged.
/// An empty payload counts as damage: the engine never wrote one (every
/// frame is a JSON object), and eight zero bytes, a length 0 with the empty
/// payload's checksum 0, would otherwise read as a frame wherever a damaged
/// length points into zeros.
fn v1_frame_at(log: &[u8], pos: usize) -> Option<&[u8]> {
    let len = u32_at(log, pos)? as usize;
    let sum = u32_at(log, pos.checked_add(4)?)?;
    if len == 0 || len > MAX_FRAME {
        return None;
    }
    let start = pos.checked_add(8)?;
    let payload = log.get(start..start.checked_add(len)?)?;
    (crc32(payload) == sum).then_some(payload)
}

/// Splits a format-1 log into intact frames, stopping at the first damaged
/// one (the old rules).
pub fn read_frames(log: &[u8]) -> Frames<'_> {
    let mut payloads = Vec::new();
    let mut pos = 0usize;
    while let Some(p) = v1_frame_at(log, pos) {
        payloads.push(p);
        pos += 8 + p.len();
    }
    Frames {
        payloads,
        good_len: pos,
    }
}

/// An intact format-2 frame: its sequence number and payload.
fn v2_frame_at(log: &[u8], pos: usize) -> Option<(u64, &[u8])> {
    let head = log.get(pos..pos.checked_add(FRAME_HEADER_LEN)?)?;
    if head[..4] != FRAME_MAGIC || crc32(&head[..20]) != u32_at(head, 20)? {
        return None;
    }
    let seq = u64_at(head, 4)?;
    let len = u32_at(head, 12)? as usize;
    if len > MAX_FRAME {
        return None;
    }
    let start = pos + FRAME_HEADER_LEN;
    let payload = log.get(start..start.checked_add(len)?)?;
    (crc32(payload) == u32_at(head, 16)?).then_some((seq, payload))
}

/// The first intact format-2 frame starting after `pos`, if any.
fn resync(log: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos.checked_add(1)?;
    while at.checked_add(FRAME_HEADER_LEN)? <= log.len() {
        // Only offsets where the magic is are worth a checksum.
        let rest = log.get(at..)?;
        let skip = rest.windows(4).position(|w| w == FRAME_MAGIC)?;
        at += skip;
        if v2_frame_at(log, at).is_some() {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// The log's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// No bytes at all (a new log: the engine writes [`log_header`]).
    Empty,
    /// Format 1: no header, `len | crc | payload` frames.
    V1,
    /// Format 2: [`log_header`], then sequenced frames.
    V2,
}

/// Corruption in the middle of a log: bytes that hold no intact frame,
/// followed by an intact one. Records in them are lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the first bad byte (a frame or the log header).
    pub offset: usize,
    /// Bytes skipped up to the next intact frame.
    pub len: usize,
    /// Frames lost, as their sequence numbers tell (format 2; 0 when
    /// unknown).
    pub frames_lost: u64,
}

/// What [`read_log`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct LogRead<'a> {
    /// The format it is in.
    pub format: Format,
    /// Payloads of every intact frame, in log order (also those after
    /// damage in the middle).
    pub payloads: Vec<&'a [u8]>,
    /// Where the torn tail starts (the log's length when there is none):
    /// everything from here on is never parsed and may be cut.
    pub good_len: usize,
    /// Corruption in the middle, in log order (empty for a healthy log).
    pub damage: Vec<Damage>,
    /// The sequence number the next appended frame gets (format 2).
    pub next_seq: u64,
}

/// Reads a log of either format (see the module documentation): intact
/// frames, where a torn tail starts, and any corruption in the middle.
/// Total: any bytes give an answer, never a panic.
pub fn read_log(log: &[u8]) -> LogRead<'_> {
    let mut out = LogRead {
        format: Format::Empty,
        payloads: Vec::new(),
        good_len: 0,
        damage: Vec::new(),
        next_seq: 0,
    };
    if log.is_empty() {
        return out;
    }
    let v1 = u32_at(log, 0).is_some_and(|len| len as usize <= MAX_FRAME)
        && log.get(..8) != Some(&LOG_MAGIC[..]);
    if v1 {
        out.format = Format::V1;
        read_v1(log, 0, &mut out);
        return out;
    }
    out.format = Format::V2;
    let header_ok = log.get(..LOG_HEADER_LEN) == Some(&log_header()[..]);
    if header_ok {
        read_v2(log, LOG_HEADER_LEN, Some(0), &mut out);
        return out;
    }
    // A damaged header (or a format-1 log whose first length is
    // damaged): what follows decides whether it was torn (a log whose
    // creation never finished) or corrupted.
    if let Some(at) = resync(log, 0) {
        out.damage.push(Damage {
            offset: 0,
            len: at,
            frames_lost: 0,
        });
        read_v2(log, at, None, &mut out);
    } else if let Some(at) = resync_v1(log, 0) {
        out.format = Format::V1;
        out.damage.push(Damage {
            offset: 0,
            len: at,
            frames_lost: 0,
        });
        read_v1(log, at, &mut out);
    }
    out
}

/// What every format-1 payload the engine wrote starts with.
const V1_PAYLOAD_START: &[u8] = b"{\"ops\"";

/// The first intact format-1 frame starting after `pos`, if any. Only
/// frames whose payload starts as the engine's do are looked for, so the
/// scan checksums few candidates.
fn resync_v1(log: &[u8], pos: usize) -> Option<usize> {
    let mut from = pos.checked_add(9)?;
    loop {
        let rest = log.get(from..)?;
        let q = from
            + rest
                .windows(V1_PAYLOAD_START.len())
                .position(|w| w == V1_PAYLOAD_START)?;
        let start = q - 8;
        if v1_frame_at(log, start).is_some() {
            return Some(start);
        }
        from = q + 1;
    }
}

/// Reads format-1 frames from `pos` with the old rules, then tells a torn
/// tail from damage: a bad frame of plausible length followed right after
/// by an intact one, an intact frame further on, or format-2 frames.
fn read_v1<'a>(log: &'a [u8], mut pos: usize, out: &mut LogRead<'a>) {
    loop {
        let f = read_frames(log.get(pos..).unwrap_or(&[]));
        out.payloads.extend(f.payloads);
        pos += f.good_len;
        if pos >= log.len() {
            out.good_len = log.len();
            return;
        }
        // Where the bad frame's own length points, if an intact frame is
        // there, or the first intact frame after it: the earlier of the two
        // (a damaged length can point past intact frames).
        let jump = u32_at(log, pos)
            .map(|len| len as usize)
            .filter(|len| *len <= MAX_FRAME)
            .and_then(|len| pos.checked_add(8)?.checked_add(len))
            .filter(|next| v1_frame_at(log, *next).is_some());
        let next = match (jump, resync_v1(log, pos)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(next) = next {
            out.damage.push(Damage {
                offset: pos,
                len: next - pos,
                frames_lost: 0,
            });
            pos = next;
            continue;
        }
        if let Some(at) = resync(log, pos) {
            out.damage.push(Damage {
                offset: pos,
                len: at - pos,
                frames_lost: 0,
            });
            out.format = Format::V2;
            read_v2(log, at, None, out);
            return;
        }
        out.good_len = pos;
        return;
    }
}

/// Reads format-2 frames from `pos`, the first expected to be number
/// `expect` (any, if `None`).
fn read_v2<'a>(log: &'a [u8], mut pos: usize, mut expect: Option<u64>, out: &mut LogRead<'a>) {
    loop {
        match v2_frame_at(log, pos) {
            Some((seq, p)) if expect.is_none_or(|e| e == seq) => {
                out.payloads.push(p);
                pos += FRAME_HEADER_LEN + p.len();
                expect = Some(seq.saturating_add(1));
            }
            _ => {
                let Some(at) = resync(log, pos) else {
                    out.good_len = pos;
                    out.next_seq = expect.unwrap_or(0);
                    return;
                };
                let seq = v2_frame_at(log, at).map_or(0, |(s, _)| s);
                out.damage.push(Damage {
                    offset: pos,
                    len: at - pos,
                    frames_lost: expect.map_or(0, |e| seq.saturating_sub(e)),
                });
                pos = at;
                expect = None;
            }
        }
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

    fn log_of(payloads: &[&[u8]]) -> Vec<u8> {
        let mut log = log_header().to_vec();
        for (i, p) in payloads.iter().enumerate() {
            log.extend(frame(i as u64, p));
        }
        log
    }

    #[test]
    fn v1_torn_tail_is_cut() {
        let mut log = frame_v1(b"one");
        log.extend(frame_v1(b"two"));
        let good = log.len();
        log.extend(&frame_v1(b"three")[..6]);
        let r = read_log(&log);
        assert_eq!(r.format, Format::V1);
        assert_eq!(r.payloads, [&b"one"[..], &b"two"[..]]);
        assert_eq!(r.good_len, good);
        assert!(r.damage.is_empty());
    }

    #[test]
    fn v1_corrupt_payload_with_intact_frame_after_is_damage() {
        let mut log = frame_v1(b"one");
        let at = log.len();
        let mut bad = frame_v1(b"two");
        bad[9] ^= 1;
        log.extend(bad);
        log.extend(frame_v1(b"three"));
        assert_eq!(read_frames(&log).payloads.len(), 1);
        let r = read_log(&log);
        assert_eq!(r.payloads, [&b"one"[..], &b"three"[..]]);
        assert_eq!(r.damage.len(), 1);
        assert_eq!(r.damage[0].offset, at);
        assert_eq!(r.good_len, log.len());
    }

    #[test]
    fn v2_torn_tail_at_every_byte_is_cut() {
        let full = log_of(&[b"one", b"two", b"three"]);
        let last = log_of(&[b"one", b"two"]).len();
        for cut in last..full.len() {
            let r = read_log(&full[..cut]);
            assert_eq!(r.format, Format::V2);
            assert_eq!(r.payloads, [&b"one"[..], &b"two"[..]], "cut {cut}");
            assert_eq!(r.good_len, last, "cut {cut}");
            assert!(r.damage.is_empty(), "cut {cut}");
            assert_eq!(r.next_seq, 2);
        }
        let r = read_log(&full);
        assert_eq!(r.payloads.len(), 3);
        assert_eq!(r.next_seq, 3);
    }

    #[test]
    fn v2_flip_in_a_middle_frame_is_damage_and_the_rest_reads() {
        let payloads: [&[u8]; 4] = [b"zero", b"one", b"two", b"three"];
        let log = log_of(&payloads);
        let start = log_of(&payloads[..1]).len();
        let end = log_of(&payloads[..2]).len();
        for at in start..end {
            for bit in [0x01u8, 0x80] {
                let mut bad = log.clone();
                bad[at] ^= bit;
                let r = read_log(&bad);
                assert_eq!(r.damage.len(), 1, "byte {at}");
                assert_eq!(r.damage[0].offset, start, "byte {at}");
                assert_eq!(r.damage[0].len, end - start, "byte {at}");
                assert_eq!(r.payloads, [&b"zero"[..], &b"two"[..], &b"three"[..]]);
                assert_eq!(r.good_len, bad.len());
                assert_eq!(r.next_seq, 4);
            }
        }
    }

    #[test]
    fn v2_damaged_header_is_damage_when_frames_follow() {
        let mut log = log_of(&[b"one"]);
        log[2] ^= 0x40;
        let r = read_log(&log);
        assert_eq!(r.damage.len(), 1);
        assert_eq!(r.damage[0].offset, 0);
        assert_eq!(r.payloads, [&b"one"[..]]);
        // A header alone, torn: nothing to keep, nothing corrupt.
        let header = log_header();
        let r = read_log(&header[..10]);
        assert!(r.damage.is_empty());
        assert_eq!(r.good_len, 0);
    }

    #[test]
    fn v2_replayed_or_stale_frame_is_not_accepted_in_sequence() {
        let mut log = log_of(&[b"one", b"two"]);
        log.extend(frame(1, b"stale"));
        let r = read_log(&log);
        assert_eq!(r.payloads, [&b"one"[..], &b"two"[..]]);
        assert_eq!(r.good_len, log_of(&[b"one", b"two"]).len());
    }

    #[test]
    fn v1_damage_in_a_length_or_at_the_start_is_found_by_the_payloads() {
        let one = frame_v1(br#"{"ops":[1]}"#);
        let two = frame_v1(br#"{"ops":[2]}"#);
        let three = frame_v1(br#"{"ops":[3]}"#);
        for (at, payloads) in [
            (
                one.len() + 2,
                [&br#"{"ops":[1]}"#[..], &br#"{"ops":[3]}"#[..]],
            ),
            (3, [&br#"{"ops":[2]}"#[..], &br#"{"ops":[3]}"#[..]]),
        ] {
            let mut log = [one.clone(), two.clone(), three.clone()].concat();
            log[at] ^= 0x40;
            let r = read_log(&log);
            assert_eq!(r.format, Format::V1, "byte {at}");
            assert_eq!(r.damage.len(), 1, "byte {at}");
            assert_eq!(r.payloads, payloads, "byte {at}");
            assert_eq!(r.good_len, log.len());
        }
        // A torn last frame is still a tail.
        let log = [one.clone(), two[..5].to_vec()].concat();
        let r = read_log(&log);
        assert!(r.damage.is_empty());
        assert_eq!(r.good_len, one.len());
    }

    #[test]
    fn formats_are_told_apart() {
        assert_eq!(read_log(&[]).format, Format::Empty);
        assert_eq!(read_log(&frame_v1(b"x")).format, Format::V1);
        assert_eq!(read_log(&log_header()).format, Format::V2);
        assert!(u32::from_le_bytes([b'X', b'C', b'P', b'R']) as usize > MAX_FRAME);
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
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..8),
            cut in 0usize..1000,
        ) {
            let mut log = Vec::new();
            for p in &payloads { log.extend(frame_v1(p)); }
            let f = read_frames(&log);
            prop_assert_eq!(f.payloads.len(), payloads.len());
            let cut = cut.min(log.len());
            let g = read_frames(&log[..cut]);
            prop_assert!(g.payloads.len() <= payloads.len());
            for (a, b) in g.payloads.iter().zip(payloads.iter()) { prop_assert_eq!(*a, &b[..]); }
        }

        #[test]
        fn v2_any_single_flip_keeps_every_other_record(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 2..8),
            which in any::<proptest::sample::Index>(),
            offset in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
            let log = log_of(&refs);
            // A frame that is not the last: damage, never a cut.
            let k = which.index(refs.len() - 1);
            let start = log_of(&refs[..k]).len();
            let end = log_of(&refs[..k + 1]).len();
            let at = start + offset.index(end - start);
            let mut bad = log.clone();
            bad[at] ^= 1 << bit;
            let r = read_log(&bad);
            let mut want = refs.clone();
            want.remove(k);
            prop_assert_eq!(r.damage.len(), 1);
            prop_assert_eq!(r.damage[0].offset, start);
            prop_assert_eq!(r.payloads, want);
            prop_assert_eq!(r.good_len, bad.len());
        }

        #[test]
        fn v1_any_single_flip_keeps_every_other_record(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 2..8),
            which in any::<proptest::sample::Index>(),
            offset in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            // Payloads as the engine writes them: `{"ops"...`.
            let payloads: Vec<Vec<u8>> = bodies
                .iter()
                .map(|b| [&br#"{"ops":"#[..], b].concat())
                .collect();
            let frames: Vec<Vec<u8>> = payloads.iter().map(|p| frame_v1(p)).collect();
            let k = which.index(frames.len() - 1);
            let start: usize = frames[..k].iter().map(Vec::len).sum();
            let mut log = frames.concat();
            let at = start + offset.index(frames[k].len());
            log[at] ^= 1 << bit;
            let r = read_log(&log);
            let mut want: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
            want.remove(k);
            prop_assert_eq!(r.damage.len(), 1);
            prop_assert_eq!(r.payloads, want);
            prop_assert_eq!(r.good_len, log.len());
        }

        #[test]
        fn v2_any_cut_is_a_prefix_and_never_damage(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 0..8),
            cut in any::<proptest::sample::Index>(),
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
            let log = log_of(&refs);
            let cut = cut.index(log.len() + 1);
            let r = read_log(&log[..cut]);
            prop_assert!(r.damage.is_empty());
            prop_assert!(r.good_len <= cut);
            prop_assert_eq!(&r.payloads[..], &refs[..r.payloads.len()]);
            // Every whole frame in the prefix is kept.
            let whole = (0..=refs.len()).rev().find(|n| log_of(&refs[..*n]).len() <= cut);
            if cut >= LOG_HEADER_LEN {
                prop_assert_eq!(Some(r.payloads.len()), whole);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let r = read_log(&bytes);
            prop_assert!(r.good_len <= bytes.len());
            for d in &r.damage {
                prop_assert!(d.offset.saturating_add(d.len) <= bytes.len());
            }
        }
    }
}
