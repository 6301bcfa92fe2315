//! blkif ring entries: requests (read/write/flush/barrier, discard,
//! indirect), segments and responses, in the x86_64 (native) layout.
//!
//! read first: xen/include/public/io/blkif.h (Debian `libxen-dev`:
//! /usr/include/xen/io/blkif.h), io/ring.h.
//!
//! A ring slot holds a `struct blkif_request` (112 bytes) or one of the
//! structs blkif.h says to cast it to by `operation`. [`Request`] keeps the
//! slot's bytes as they were copied out of shared memory (once) and reads
//! each view's fields with `from_le_bytes`; no accessor can panic. Nothing
//! here validates: `request.rs` does.
//!
//! | struct (x86_64)          | size | fields (offset)                                    |
//! |--------------------------|-----:|----------------------------------------------------|
//! | blkif_request_segment    | 8    | gref u32 (0), first_sect u8 (4), last_sect u8 (5)   |
//! | blkif_request            | 112  | operation u8 (0), nr_segments u8 (1), handle u16 (2), id u64 (8), sector_number u64 (16), seg\[11\] (24) |
//! | blkif_request_discard    | 32   | operation u8 (0), flag u8 (1), handle u16 (2), id u64 (8), sector_number u64 (16), nr_sectors u64 (24) |
//! | blkif_request_indirect   | 64   | operation u8 (0), indirect_op u8 (1), nr_segments u16 (2), id u64 (8), sector_number u64 (16), handle u16 (24), indirect_grefs\[8\] (28) |
//! | blkif_response           | 16   | id u64 (0), operation u8 (8), status i16 (10)       |
//!
//! The 32-bit (`x86_32-abi`) layout packs these differently: an i386
//! frontend (GRUB's `i386-xen_pvh`, a 32-bit guest) aligns `u64` to 4, so
//! a slot is 108 bytes and every field after `handle` moves down by 4.
//! [`Request32`] reads such a slot and gives the native [`Request`]
//! (Linux blkback's `blkif_get_x86_32_req` does the same), so everything
//! after the ring sees one layout; [`Response32`] is the 12-byte response.
//!
//! | struct (x86_32)          | size | fields (offset)                                    |
//! |--------------------------|-----:|----------------------------------------------------|
//! | blkif_request            | 108  | operation u8 (0), nr_segments u8 (1), handle u16 (2), id u64 (4), sector_number u64 (12), seg\[11\] (20) |
//! | blkif_request_discard    | 28   | operation u8 (0), flag u8 (1), handle u16 (2), id u64 (4), sector_number u64 (12), nr_sectors u64 (20) |
//! | blkif_request_indirect   | 64   | operation u8 (0), indirect_op u8 (1), nr_segments u16 (2), id u64 (4), sector_number u64 (12), handle u16 (20), indirect_grefs\[8\] (24) |
//! | blkif_response           | 12   | id u64 (0), operation u8 (8), status i16 (10)       |

use xcp_ring::RingEntry;

/// Xen's page size: a grant is one page.
pub const PAGE_SIZE: usize = 4096;
/// The sector unit of every sector field (`feature-large-sector-size` is
/// not offered, so sectors are always 512 bytes).
pub const SECTOR_SIZE: usize = 512;
/// Sectors in a page: `last_sect` is at most this minus one.
pub const SECTORS_PER_PAGE: u8 = (PAGE_SIZE / SECTOR_SIZE) as u8;

/// `BLKIF_OP_READ`.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`.
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1`: never valid from a frontend.
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD`.
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT`.
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: segments of a direct request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`: grefs in an indirect request.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// `BLKIF_DISCARD_SECURE`: the discard flag asking for a secure erase.
pub const BLKIF_DISCARD_SECURE: u8 = 1;

/// `BLKIF_RSP_EOPNOTSUPP`.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// `BLKIF_RSP_ERROR`.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_OKAY`.
pub const BLKIF_RSP_OKAY: i16 = 0;

/// `VDISK_CDROM` bit of `info`.
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE` bit of `info`.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY` bit of `info`.
pub const VDISK_READONLY: u32 = 0x4;

/// `sizeof(struct blkif_request_segment)`.
pub const SEGMENT_SIZE: usize = 8;
/// Segments in one indirect page (`PAGE_SIZE / sizeof(segment)`).
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = PAGE_SIZE / SEGMENT_SIZE;
/// `sizeof(struct blkif_request)`.
pub const REQUEST_SIZE: usize = 112;
/// `sizeof(struct blkif_request_discard)`.
pub const DISCARD_REQUEST_SIZE: usize = 32;
/// `sizeof(struct blkif_request_indirect)` (x86_64: no i386 pad).
pub const INDIRECT_REQUEST_SIZE: usize = 64;
/// `sizeof(struct blkif_response)`.
pub const RESPONSE_SIZE: usize = 16;

const SEG_OFFSET: usize = 24;
const INDIRECT_HANDLE: usize = 24;
const INDIRECT_GREFS: usize = 28;

/// `struct blkif_request_segment`: a page of the frontend's and the sectors
/// in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSegment {
    /// Grant of the data page.
    pub gref: u32,
    /// First sector in the page (inclusive).
    pub first_sect: u8,
    /// Last sector in the page (inclusive).
    pub last_sect: u8,
}

impl RawSegment {
    /// Reads a segment from its 8 bytes (`b.len() >= 8`, else zeros).
    pub fn decode(b: &[u8]) -> RawSegment {
        let mut s = [0u8; SEGMENT_SIZE];
        if let Some(src) = b.get(..SEGMENT_SIZE) {
            s.copy_from_slice(src);
        }
        RawSegment {
            gref: u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
            first_sect: s[4],
            last_sect: s[5],
        }
    }

    /// Its 8 bytes (padding zeroed).
    pub fn encode(&self) -> [u8; SEGMENT_SIZE] {
        let g = self.gref.to_le_bytes();
        [
            g[0],
            g[1],
            g[2],
            g[3],
            self.first_sect,
            self.last_sect,
            0,
            0,
        ]
    }
}

/// One request slot as copied out of the ring: 112 bytes, read through
/// the view its `operation` selects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Request {
    bytes: [u8; REQUEST_SIZE],
}

impl core::fmt::Debug for Request {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Request(op {}, id {}, sector {})",
            self.operation(),
            self.id(),
            self.sector_number()
        )
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

impl Request {
    /// A request from its slot bytes.
    pub fn from_bytes(bytes: [u8; REQUEST_SIZE]) -> Request {
        Request { bytes }
    }

    /// The slot bytes.
    pub fn as_bytes(&self) -> &[u8; REQUEST_SIZE] {
        &self.bytes
    }

    /// `operation` (every view).
    pub fn operation(&self) -> u8 {
        self.bytes[0]
    }

    /// `id` (every view, offset 8).
    pub fn id(&self) -> u64 {
        u64_at(&self.bytes, 8)
    }

    /// `sector_number` (every view, offset 16).
    pub fn sector_number(&self) -> u64 {
        u64_at(&self.bytes, 16)
    }

    /// `blkif_request.nr_segments`.
    pub fn nr_segments(&self) -> u8 {
        self.bytes[1]
    }

    /// `blkif_request.handle` (and the discard view's).
    pub fn handle(&self) -> u16 {
        u16_at(&self.bytes, 2)
    }

    /// `blkif_request.seg[i]` for `i < 11` (zeros beyond).
    pub fn segment(&self, i: usize) -> RawSegment {
        let at = SEG_OFFSET + i * SEGMENT_SIZE;
        RawSegment::decode(self.bytes.get(at..).unwrap_or(&[]))
    }

    /// `blkif_request_discard.flag`.
    pub fn discard_flag(&self) -> u8 {
        self.bytes[1]
    }

    /// `blkif_request_discard.nr_sectors`.
    pub fn discard_nr_sectors(&self) -> u64 {
        u64_at(&self.bytes, 24)
    }

    /// `blkif_request_indirect.indirect_op`.
    pub fn indirect_op(&self) -> u8 {
        self.bytes[1]
    }

    /// `blkif_request_indirect.nr_segments`.
    pub fn indirect_nr_segments(&self) -> u16 {
        u16_at(&self.bytes, 2)
    }

    /// `blkif_request_indirect.handle`.
    pub fn indirect_handle(&self) -> u16 {
        u16_at(&self.bytes, INDIRECT_HANDLE)
    }

    /// `blkif_request_indirect.indirect_grefs[i]` for `i < 8` (0 beyond).
    pub fn indirect_gref(&self, i: usize) -> u32 {
        if i >= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST {
            return 0;
        }
        u32_at(&self.bytes, INDIRECT_GREFS + 4 * i)
    }

    fn header(operation: u8, byte1: u8, id: u64, sector: u64) -> Request {
        let mut bytes = [0u8; REQUEST_SIZE];
        bytes[0] = operation;
        bytes[1] = byte1;
        bytes[8..16].copy_from_slice(&id.to_le_bytes());
        bytes[16..24].copy_from_slice(&sector.to_le_bytes());
        Request { bytes }
    }

    /// A direct request (`blkif_request`): read, write, barrier or flush.
    /// Segments beyond 11 are left out (and `nr_segments` says how many
    /// were given, clipped to 255).
    pub fn direct(
        operation: u8,
        handle: u16,
        id: u64,
        sector: u64,
        segments: &[RawSegment],
    ) -> Request {
        let n = u8::try_from(segments.len()).unwrap_or(u8::MAX);
        let mut r = Request::header(operation, n, id, sector);
        r.bytes[2..4].copy_from_slice(&handle.to_le_bytes());
        for (i, s) in segments
            .iter()
            .take(BLKIF_MAX_SEGMENTS_PER_REQUEST)
            .enumerate()
        {
            let at = SEG_OFFSET + i * SEGMENT_SIZE;
            r.bytes[at..at + SEGMENT_SIZE].copy_from_slice(&s.encode());
        }
        r
    }

    /// A discard request (`blkif_request_discard`).
    pub fn discard(handle: u16, id: u64, sector: u64, nr_sectors: u64, flag: u8) -> Request {
        let mut r = Request::header(BLKIF_OP_DISCARD, flag, id, sector);
        r.bytes[2..4].copy_from_slice(&handle.to_le_bytes());
        r.bytes[24..32].copy_from_slice(&nr_sectors.to_le_bytes());
        r
    }

    /// An indirect request (`blkif_request_indirect`); grefs beyond 8 are
    /// left out.
    pub fn indirect(
        indirect_op: u8,
        nr_segments: u16,
        handle: u16,
        id: u64,
        sector: u64,
        grefs: &[u32],
    ) -> Request {
        let mut r = Request::header(BLKIF_OP_INDIRECT, indirect_op, id, sector);
        r.bytes[2..4].copy_from_slice(&nr_segments.to_le_bytes());
        r.bytes[INDIRECT_HANDLE..INDIRECT_HANDLE + 2].copy_from_slice(&handle.to_le_bytes());
        for (i, g) in grefs
            .iter()
            .take(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST)
            .enumerate()
        {
            let at = INDIRECT_GREFS + 4 * i;
            r.bytes[at..at + 4].copy_from_slice(&g.to_le_bytes());
        }
        r
    }
}

impl RingEntry for Request {
    const SIZE: usize = REQUEST_SIZE;
    fn encode(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.bytes);
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut b = [0u8; REQUEST_SIZE];
        let n = bytes.len().min(REQUEST_SIZE);
        b[..n].copy_from_slice(&bytes[..n]);
        Request { bytes: b }
    }
}

/// `sizeof(struct blkif_request)` in the x86_32 layout.
pub const REQUEST32_SIZE: usize = 108;
/// `sizeof(struct blkif_response)` in the x86_32 layout.
pub const RESPONSE32_SIZE: usize = 12;

/// Where a native slot's bytes come from in an x86_32 slot, by view:
/// `(native offset, x86_32 offset, length)`. Bytes 0..4 (operation, the
/// second byte, handle or nr_segments) are the same in both.
fn layout32(operation: u8) -> &'static [(usize, usize, usize)] {
    match operation {
        // id, sector_number, handle, indirect_grefs[8].
        BLKIF_OP_INDIRECT => &[
            (8, 4, 16),
            (INDIRECT_HANDLE, 20, 2),
            (INDIRECT_GREFS, 24, 32),
        ],
        // id, sector_number, nr_sectors.
        BLKIF_OP_DISCARD => &[(8, 4, 24)],
        // id, sector_number, seg[11].
        _ => &[(8, 4, 16 + 11 * SEGMENT_SIZE)],
    }
}

/// A request slot of an `x86_32-abi` ring: 108 bytes, read as the native
/// [`Request`] it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request32(pub Request);

impl RingEntry for Request32 {
    const SIZE: usize = REQUEST32_SIZE;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        let b = &self.0.bytes;
        out[..4].copy_from_slice(&b[..4]);
        for &(native, at, len) in layout32(b[0]) {
            out[at..at + len].copy_from_slice(&b[native..native + len]);
        }
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut slot = [0u8; REQUEST32_SIZE];
        let n = bytes.len().min(REQUEST32_SIZE);
        slot[..n].copy_from_slice(&bytes[..n]);
        let mut b = [0u8; REQUEST_SIZE];
        b[..4].copy_from_slice(&slot[..4]);
        for &(native, at, len) in layout32(slot[0]) {
            b[native..native + len].copy_from_slice(&slot[at..at + len]);
        }
        Request32(Request { bytes: b })
    }
}

/// A response slot of an `x86_32-abi` ring: the native fields, 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response32(pub Response);

impl RingEntry for Response32 {
    const SIZE: usize = RESPONSE32_SIZE;
    fn encode(&self, out: &mut [u8]) {
        let mut native = [0u8; RESPONSE_SIZE];
        self.0.encode(&mut native);
        out.copy_from_slice(&native[..RESPONSE32_SIZE]);
    }
    fn decode(bytes: &[u8]) -> Self {
        Response32(Response::decode(bytes))
    }
}

/// `struct blkif_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's `id`, echoed.
    pub id: u64,
    /// The request's `operation`, echoed.
    pub operation: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
}

impl RingEntry for Response {
    const SIZE: usize = RESPONSE_SIZE;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8] = self.operation;
        out[10..12].copy_from_slice(&self.status.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Self {
        Response {
            id: u64_at(bytes, 0),
            operation: bytes.get(8).copied().unwrap_or(0),
            status: u16_at(bytes, 10) as i16,
        }
    }
}

/// Ring slots for a ring of `1 << order` pages (`__CONST_RING_SIZE(blkif,
/// PAGE_SIZE << order)`): 32 for one page.
pub const fn ring_slots(order: u32) -> u32 {
    xcp_ring::sring::ring_size(PAGE_SIZE << order, REQUEST_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_request_bytes() {
        let r = Request::direct(
            BLKIF_OP_WRITE,
            0x0203,
            0x1122_3344_5566_7788,
            0x99,
            &[RawSegment {
                gref: 0xaabb_ccdd,
                first_sect: 1,
                last_sect: 6,
            }],
        );
        let b = r.as_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 1);
        assert_eq!(&b[2..4], &[3, 2]);
        assert_eq!(&b[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&b[24..32], &[0xdd, 0xcc, 0xbb, 0xaa, 1, 6, 0, 0]);
        let back = Request::decode(b);
        assert_eq!(back.segment(0).last_sect, 6);
        assert_eq!(back.segment(11), RawSegment::default());
        assert_eq!(back.segment(usize::MAX / 16), RawSegment::default());
    }

    #[test]
    fn indirect_and_discard_views() {
        let r = Request::indirect(BLKIF_OP_READ, 300, 5, 9, 77, &[1, 2, 3]);
        assert_eq!(r.operation(), BLKIF_OP_INDIRECT);
        assert_eq!(r.indirect_nr_segments(), 300);
        assert_eq!(r.indirect_handle(), 5);
        assert_eq!(r.indirect_gref(2), 3);
        assert_eq!(r.indirect_gref(3), 0);
        assert_eq!(r.indirect_gref(8), 0);
        let d = Request::discard(1, 2, 3, 4, BLKIF_DISCARD_SECURE);
        assert_eq!(d.discard_nr_sectors(), 4);
        assert_eq!(d.discard_flag(), 1);
        // A short slot (impossible from a ring) decodes to zeros, no panic.
        let short = Request::decode(&[5, 0, 0]);
        assert_eq!(short.operation(), 5);
        assert_eq!(short.id(), 0);
    }

    #[test]
    fn response_bytes() {
        let mut out = [0xffu8; RESPONSE_SIZE];
        Response {
            id: 7,
            operation: 3,
            status: BLKIF_RSP_EOPNOTSUPP,
        }
        .encode(&mut out);
        assert_eq!(out, [7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0xfe, 0xff, 0, 0, 0, 0]);
        assert_eq!(Response::decode(&out).status, -2);
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(ring_slots(0), 32);
        assert_eq!(ring_slots(1), 64);
        assert_eq!(ring_slots(4), 512);
    }
}
