//! Request checks: a blkif request copied off the ring becomes disk work,
//! an indirect-page fetch, or an immediate response.
//!
//! read first: blkif.h (the ops, `BLKIF_MAX_SEGMENTS_PER_REQUEST`,
//! indirect segments, discard), `wire.rs`.
//!
//! What a bad request costs the frontend (Linux blkback answers the same
//! way, so blkfront already handles these):
//!
//! | request                                              | answer             |
//! |------------------------------------------------------|--------------------|
//! | unknown op, RESERVED_1, or an op not offered         | BLKIF_RSP_EOPNOTSUPP |
//! | secure discard when `discard-secure` was not offered  | BLKIF_RSP_EOPNOTSUPP |
//! | 0 or > 11 segments (read/write), > 11 (flush/barrier) | BLKIF_RSP_ERROR    |
//! | indirect: op not read/write, 0 or > max segments      | BLKIF_RSP_ERROR    |
//! | a segment with first_sect > last_sect or last_sect > 7 | BLKIF_RSP_ERROR   |
//! | sectors (or a discard range) past the end of the disk  | BLKIF_RSP_ERROR    |
//! | write, barrier/flush with data, discard on read-only  | BLKIF_RSP_ERROR    |
//!
//! These are per-request: the frontend stays connected. What disconnects it
//! (a [`crate::Fault`]) is what leaves the ring itself untrustworthy: index
//! nonsense, an `id` reused while in flight on the same ring (a response
//! could not be told apart), unparsable keys.

use alloc::vec::Vec;

use crate::wire::{
    RawSegment, Request, BLKIF_DISCARD_SECURE, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
    SECTORS_PER_PAGE, SECTOR_SIZE, SEGMENTS_PER_INDIRECT_PAGE, SEGMENT_SIZE,
};

/// One data segment: a byte range of one frontend page. Its disk sectors
/// follow the previous segment's (blkif segments are contiguous on disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The frontend's grant of the page.
    pub gref: u32,
    /// Byte offset in the page (`first_sect × 512`).
    pub offset: u16,
    /// Bytes (`(last_sect − first_sect + 1) × 512`, 512..=4096).
    pub len: u16,
}

/// What the board does to the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoOp {
    /// Read from `sector` into the segments, in order.
    Read {
        /// First 512-byte sector.
        sector: u64,
        /// Where the data goes.
        segments: Vec<Segment>,
    },
    /// Write the segments, in order, from `sector`.
    Write {
        /// First 512-byte sector.
        sector: u64,
        /// Where the data comes from.
        segments: Vec<Segment>,
        /// A barrier or flush with data: once written, make this and every
        /// completed write durable before completing.
        flush: bool,
    },
    /// Make every completed write durable (flush, or a barrier without
    /// data).
    Flush,
    /// The range is no longer in use.
    Discard {
        /// First 512-byte sector.
        sector: u64,
        /// Sectors (≥ 1).
        count: u64,
        /// BLKIF_DISCARD_SECURE (only when `discard-secure` was offered).
        secure: bool,
    },
}

impl IoOp {
    /// Data bytes the segments cover (0 for flush and discard).
    pub fn data_len(&self) -> usize {
        match self {
            IoOp::Read { segments, .. } | IoOp::Write { segments, .. } => {
                segments.iter().map(|s| usize::from(s.len)).sum()
            }
            IoOp::Flush | IoOp::Discard { .. } => 0,
        }
    }
}

/// What the VBD negotiated and the disk it serves: the context of checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) sectors: u64,
    pub(crate) readonly: bool,
    pub(crate) flush: bool,
    pub(crate) barrier: bool,
    pub(crate) discard: bool,
    pub(crate) discard_secure: bool,
    pub(crate) max_indirect_segments: u32,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Work for the board.
    Io(IoOp),
    /// A barrier: wait until the VBD has nothing in flight, then this.
    Barrier(IoOp),
    /// Fetch `pages` indirect pages (their first `bytes` bytes in all),
    /// then check the segments with [`check_indirect_segments`].
    Fetch {
        op: u8,
        nr_segments: u16,
        grefs: Vec<u32>,
        bytes: usize,
    },
    /// Answer at once with this status.
    Reply(i16),
}

/// The operation echoed in the response: an indirect request's inner op
/// (what blkfront matches its completion against).
pub(crate) fn response_op(req: &Request) -> u8 {
    if req.operation() == BLKIF_OP_INDIRECT {
        req.indirect_op()
    } else {
        req.operation()
    }
}

/// Checks segments and the range they cover from `sector`.
pub(crate) fn check_segments(
    raw: impl Iterator<Item = RawSegment>,
    sector: u64,
    limits: &Limits,
) -> Result<Vec<Segment>, i16> {
    let mut segments = Vec::new();
    let mut sectors: u64 = 0;
    for s in raw {
        if s.first_sect > s.last_sect || s.last_sect >= SECTORS_PER_PAGE {
            return Err(BLKIF_RSP_ERROR);
        }
        let n = u16::from(s.last_sect - s.first_sect) + 1;
        sectors += u64::from(n);
        // ≤ 8 sectors of 512 bytes: fits u16.
        segments.push(Segment {
            gref: s.gref,
            offset: u16::from(s.first_sect) * SECTOR_SIZE as u16,
            len: n * SECTOR_SIZE as u16,
        });
    }
    match sector.checked_add(sectors) {
        Some(end) if end <= limits.sectors => Ok(segments),
        _ => Err(BLKIF_RSP_ERROR),
    }
}

fn direct(req: &Request, limits: &Limits, write: bool, flush: bool) -> Verdict {
    let n = usize::from(req.nr_segments());
    let data_optional = flush;
    if n > BLKIF_MAX_SEGMENTS_PER_REQUEST || (n == 0 && !data_optional) {
        return Verdict::Reply(BLKIF_RSP_ERROR);
    }
    if n == 0 {
        return Verdict::Io(IoOp::Flush);
    }
    if write && limits.readonly {
        return Verdict::Reply(BLKIF_RSP_ERROR);
    }
    let sector = req.sector_number();
    match check_segments((0..n).map(|i| req.segment(i)), sector, limits) {
        Err(status) => Verdict::Reply(status),
        Ok(segments) if write => Verdict::Io(IoOp::Write {
            sector,
            segments,
            flush,
        }),
        Ok(segments) => Verdict::Io(IoOp::Read { sector, segments }),
    }
}

/// Decides what `req` becomes.
pub(crate) fn classify(req: &Request, limits: &Limits) -> Verdict {
    match req.operation() {
        BLKIF_OP_READ => direct(req, limits, false, false),
        BLKIF_OP_WRITE => direct(req, limits, true, false),
        BLKIF_OP_FLUSH_DISKCACHE if limits.flush => direct(req, limits, true, true),
        BLKIF_OP_WRITE_BARRIER if limits.barrier => match direct(req, limits, true, true) {
            Verdict::Io(op) => Verdict::Barrier(op),
            other => other,
        },
        BLKIF_OP_DISCARD if limits.discard => {
            let secure = req.discard_flag() & BLKIF_DISCARD_SECURE != 0;
            if secure && !limits.discard_secure {
                return Verdict::Reply(BLKIF_RSP_EOPNOTSUPP);
            }
            if limits.readonly {
                return Verdict::Reply(BLKIF_RSP_ERROR);
            }
            let (sector, count) = (req.sector_number(), req.discard_nr_sectors());
            match sector.checked_add(count) {
                Some(end) if end > limits.sectors => Verdict::Reply(BLKIF_RSP_ERROR),
                None => Verdict::Reply(BLKIF_RSP_ERROR),
                // Nothing to discard: done.
                Some(_) if count == 0 => Verdict::Reply(BLKIF_RSP_OKAY),
                Some(_) => Verdict::Io(IoOp::Discard {
                    sector,
                    count,
                    secure,
                }),
            }
        }
        BLKIF_OP_INDIRECT if limits.max_indirect_segments > 0 => {
            let op = req.indirect_op();
            let n = req.indirect_nr_segments();
            if (op != BLKIF_OP_READ && op != BLKIF_OP_WRITE)
                || n == 0
                || u32::from(n) > limits.max_indirect_segments
                || (op == BLKIF_OP_WRITE && limits.readonly)
                || req.sector_number() >= limits.sectors
            {
                return Verdict::Reply(BLKIF_RSP_ERROR);
            }
            let pages = usize::from(n).div_ceil(SEGMENTS_PER_INDIRECT_PAGE);
            Verdict::Fetch {
                op,
                nr_segments: n,
                grefs: (0..pages).map(|i| req.indirect_gref(i)).collect(),
                bytes: usize::from(n) * SEGMENT_SIZE,
            }
        }
        _ => Verdict::Reply(BLKIF_RSP_EOPNOTSUPP),
    }
}

/// Checks the segments fetched from an indirect request's pages
/// (`bytes`: the fetched bytes, `nr_segments × 8` of them).
pub(crate) fn check_indirect_segments(
    op: u8,
    nr_segments: u16,
    sector: u64,
    bytes: &[u8],
    limits: &Limits,
) -> Result<IoOp, i16> {
    let n = usize::from(nr_segments);
    if bytes.len() != n * SEGMENT_SIZE {
        return Err(BLKIF_RSP_ERROR);
    }
    let raw = bytes.chunks_exact(SEGMENT_SIZE).map(RawSegment::decode);
    let segments = check_segments(raw, sector, limits)?;
    Ok(if op == BLKIF_OP_WRITE {
        IoOp::Write {
            sector,
            segments,
            flush: false,
        }
    } else {
        IoOp::Read { sector, segments }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::BLKIF_OP_RESERVED_1;

    const LIMITS: Limits = Limits {
        sectors: 100,
        readonly: false,
        flush: true,
        barrier: true,
        discard: true,
        discard_secure: false,
        max_indirect_segments: 64,
    };

    fn seg(gref: u32, first_sect: u8, last_sect: u8) -> RawSegment {
        RawSegment {
            gref,
            first_sect,
            last_sect,
        }
    }

    #[test]
    fn reads_and_writes() {
        let r = Request::direct(BLKIF_OP_READ, 0, 1, 10, &[seg(5, 0, 7), seg(6, 2, 3)]);
        let Verdict::Io(op) = classify(&r, &LIMITS) else {
            panic!("a read")
        };
        assert_eq!(op.data_len(), 4096 + 1024);
        assert_eq!(
            op,
            IoOp::Read {
                sector: 10,
                segments: alloc::vec![
                    Segment {
                        gref: 5,
                        offset: 0,
                        len: 4096
                    },
                    Segment {
                        gref: 6,
                        offset: 1024,
                        len: 1024
                    }
                ]
            }
        );
        // 10 sectors from 90 end exactly at the disk's end; 91 is past it.
        let fits = Request::direct(BLKIF_OP_WRITE, 0, 1, 90, &[seg(1, 0, 7), seg(1, 0, 1)]);
        assert!(matches!(
            classify(&fits, &LIMITS),
            Verdict::Io(IoOp::Write { .. })
        ));
        let past = Request::direct(BLKIF_OP_WRITE, 0, 1, 91, &[seg(1, 0, 7), seg(1, 0, 1)]);
        assert_eq!(classify(&past, &LIMITS), Verdict::Reply(BLKIF_RSP_ERROR));
        let wraps = Request::direct(BLKIF_OP_READ, 0, 1, u64::MAX, &[seg(1, 0, 0)]);
        assert_eq!(classify(&wraps, &LIMITS), Verdict::Reply(BLKIF_RSP_ERROR));
    }

    #[test]
    fn bad_segments_are_errors() {
        for s in [seg(1, 3, 2), seg(1, 0, 8), seg(1, 8, 8)] {
            let r = Request::direct(BLKIF_OP_READ, 0, 1, 0, &[s]);
            assert_eq!(classify(&r, &LIMITS), Verdict::Reply(BLKIF_RSP_ERROR));
        }
        let none = Request::direct(BLKIF_OP_READ, 0, 1, 0, &[]);
        assert_eq!(classify(&none, &LIMITS), Verdict::Reply(BLKIF_RSP_ERROR));
        let mut many = *Request::direct(BLKIF_OP_READ, 0, 1, 0, &[seg(1, 0, 0)]).as_bytes();
        many[1] = 12;
        assert_eq!(
            classify(&Request::from_bytes(many), &LIMITS),
            Verdict::Reply(BLKIF_RSP_ERROR)
        );
    }

    #[test]
    fn ops_not_offered_are_eopnotsupp() {
        let bare = Limits {
            flush: false,
            barrier: false,
            discard: false,
            max_indirect_segments: 0,
            ..LIMITS
        };
        for op in [
            BLKIF_OP_FLUSH_DISKCACHE,
            BLKIF_OP_WRITE_BARRIER,
            BLKIF_OP_DISCARD,
            BLKIF_OP_INDIRECT,
            BLKIF_OP_RESERVED_1,
            7,
            255,
        ] {
            let r = Request::direct(op, 0, 1, 0, &[]);
            assert_eq!(
                classify(&r, &bare),
                Verdict::Reply(BLKIF_RSP_EOPNOTSUPP),
                "{op}"
            );
        }
        let secure = Request::discard(0, 1, 0, 8, BLKIF_DISCARD_SECURE);
        assert_eq!(
            classify(&secure, &LIMITS),
            Verdict::Reply(BLKIF_RSP_EOPNOTSUPP)
        );
    }

    #[test]
    fn flush_barrier_discard_readonly() {
        let flush = Request::direct(BLKIF_OP_FLUSH_DISKCACHE, 0, 1, 0, &[]);
        assert_eq!(classify(&flush, &LIMITS), Verdict::Io(IoOp::Flush));
        let barrier = Request::direct(BLKIF_OP_WRITE_BARRIER, 0, 1, 0, &[seg(1, 0, 7)]);
        assert!(matches!(
            classify(&barrier, &LIMITS),
            Verdict::Barrier(IoOp::Write { flush: true, .. })
        ));
        let ro = Limits {
            readonly: true,
            ..LIMITS
        };
        assert_eq!(classify(&barrier, &ro), Verdict::Reply(BLKIF_RSP_ERROR));
        assert_eq!(classify(&flush, &ro), Verdict::Io(IoOp::Flush));
        let w = Request::direct(BLKIF_OP_WRITE, 0, 1, 0, &[seg(1, 0, 7)]);
        assert_eq!(classify(&w, &ro), Verdict::Reply(BLKIF_RSP_ERROR));
        let d = Request::discard(0, 1, 96, 4, 0);
        assert!(matches!(
            classify(&d, &LIMITS),
            Verdict::Io(IoOp::Discard { count: 4, .. })
        ));
        assert_eq!(classify(&d, &ro), Verdict::Reply(BLKIF_RSP_ERROR));
        let past = Request::discard(0, 1, 96, 5, 0);
        assert_eq!(classify(&past, &LIMITS), Verdict::Reply(BLKIF_RSP_ERROR));
        let wrap = Request::discard(0, 1, 1, u64::MAX, 0);
        assert_eq!(classify(&wrap, &LIMITS), Verdict::Reply(BLKIF_RSP_ERROR));
    }

    #[test]
    fn indirect() {
        let r = Request::indirect(BLKIF_OP_WRITE, 3, 0, 1, 4, &[77]);
        assert_eq!(
            classify(&r, &LIMITS),
            Verdict::Fetch {
                op: BLKIF_OP_WRITE,
                nr_segments: 3,
                grefs: alloc::vec![77],
                bytes: 24
            }
        );
        for bad in [
            Request::indirect(BLKIF_OP_WRITE, 65, 0, 1, 4, &[77]),
            Request::indirect(BLKIF_OP_WRITE, 0, 0, 1, 4, &[77]),
            Request::indirect(BLKIF_OP_DISCARD, 1, 0, 1, 4, &[77]),
            Request::indirect(BLKIF_OP_READ, 1, 0, 1, 100, &[77]),
        ] {
            assert_eq!(classify(&bad, &LIMITS), Verdict::Reply(BLKIF_RSP_ERROR));
        }
        let mut page = Vec::new();
        for s in [seg(1, 0, 7), seg(2, 0, 7), seg(3, 0, 7)] {
            page.extend_from_slice(&s.encode());
        }
        let op = check_indirect_segments(BLKIF_OP_WRITE, 3, 4, &page, &LIMITS).expect("good");
        assert_eq!(op.data_len(), 3 * 4096);
        assert_eq!(
            check_indirect_segments(BLKIF_OP_WRITE, 3, 90, &page, &LIMITS),
            Err(BLKIF_RSP_ERROR)
        );
        assert_eq!(
            check_indirect_segments(BLKIF_OP_WRITE, 3, 4, &page[..16], &LIMITS),
            Err(BLKIF_RSP_ERROR)
        );
    }
}
