//! The work the engine hands the board, and what the board hands back.
//!
//! read first: xen/include/public/grant_table.h (`GNTTABOP_copy`), `vbd.rs`.
//!
//! The engine never touches guest memory. A [`DiskIo`] names the
//! frontend's pages (grant, byte offset, length) in disk order; the board
//! allocates a buffer of [`DiskIo::buffer_len`] bytes, grant-copies into it
//! (write) or out of it (read) around the storage operation, and calls
//! [`crate::Vbd::complete`]. An indirect request first needs its segment
//! list: an [`IndirectFetch`] asks the board to copy the first bytes of a
//! few frontend pages, and [`crate::Vbd::indirect_fetched`] turns them into
//! the request's `DiskIo`. Copies need only `GNTCOPY_source_gref` /
//! `GNTCOPY_dest_gref` on the guest side; nothing is ever mapped.

use alloc::vec::Vec;

pub use crate::request::{IoOp, Segment};

/// Identifies a request to the engine that issued it. Plain data: the
/// board keeps it with the work and gives it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token {
    pub(crate) generation: u64,
    pub(crate) seq: u64,
}

/// One request's disk work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskIo {
    /// The queue (ring) it came from.
    pub queue: u16,
    /// Give it back to [`crate::Vbd::complete`].
    pub token: Token,
    /// The frontend's domain (the `domid` of every grant copy).
    pub domid: u16,
    /// What to do.
    pub op: IoOp,
}

impl DiskIo {
    /// Bytes of buffer the board needs: the segments' lengths summed (0 for
    /// flush and discard). Buffer offset of a segment = sum of the lengths
    /// before it; its disk sector = `sector` + that offset / 512.
    pub fn buffer_len(&self) -> usize {
        self.op.data_len()
    }
}

/// Copy the start of each of these frontend pages into one buffer, in
/// order, then call [`crate::Vbd::indirect_fetched`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndirectFetch {
    /// The queue it came from.
    pub queue: u16,
    /// Give it back with the bytes.
    pub token: Token,
    /// The frontend's domain.
    pub domid: u16,
    /// (grant, bytes from offset 0 of that page), in order; each ≤ 4096.
    pub pages: Vec<(u32, usize)>,
}

impl IndirectFetch {
    /// Bytes of the whole fetch.
    pub fn len(&self) -> usize {
        self.pages.iter().map(|(_, n)| n).sum()
    }

    /// Never true for a fetch the engine made.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Something for the board to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Do this disk work, then [`crate::Vbd::complete`].
    Io(DiskIo),
    /// Fetch indirect segments, then [`crate::Vbd::indirect_fetched`].
    Fetch(IndirectFetch),
}

/// How the board's work ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoStatus {
    /// Done (BLKIF_RSP_OKAY).
    Ok,
    /// A grant copy or the storage failed (BLKIF_RSP_ERROR).
    Error,
    /// The storage cannot do it, e.g. discard on a thick SR
    /// (BLKIF_RSP_EOPNOTSUPP).
    NotSupported,
}

/// What [`crate::Vbd::poll`] produced.
#[derive(Debug, Default)]
pub struct Poll {
    /// Work for the board, in ring order.
    pub work: Vec<Work>,
    /// Kick the queue's event channel (immediate responses were pushed).
    pub notify: bool,
    /// [`crate::REQUESTS_PER_POLL`] requests were taken: more may wait;
    /// poll again after serving the others.
    pub again: bool,
    /// A request waits for budget (or a barrier for the queue to drain):
    /// poll this queue again after a completion.
    pub blocked: bool,
}

/// What [`crate::Vbd::indirect_fetched`] produced.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The request's disk work, when its segments were good.
    pub io: Option<DiskIo>,
    /// Kick the queue's event channel (the request was answered).
    pub notify: bool,
}
