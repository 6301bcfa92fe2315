//! The storage protocol: how dom0's toolstack keeps its database log in
//! stordom's SR and asks it for SR and VDI operations, over an inter-domain
//! channel (stordom/DESIGN.md, "The channel").
//!
//! dom0 sends a [`Request`] and waits for the [`Reply`] with the same `id`:
//! one request at a time, so stordom holds at most one request's bytes per
//! channel. Messages travel as postcard over `xcp-channel`; postcard
//! numbers variants by position, so new variants go at the end of their
//! enum.
//!
//! What "acknowledged" means: a [`Op::LogSync`] is answered only after
//! stordom's SR committed every earlier log change and the disk flushed
//! it. [`Op::LogAppend`] names the log length it expects (`at`), so a
//! request resent to a rebuilt stordom is applied once: stordom appends
//! when its log is `at` long, answers at once when the bytes are already
//! there, and refuses a log shorter than `at` (acknowledged bytes lost).
//!
//! stordom is a peer dom0 trusts no more than it must: every length in a
//! reply is bounded here ([`MAX_CHUNK`], [`VDIS_PER_REPLY`]) and checked by the
//! [`client`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod client;
pub mod uuid;

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Largest `bytes` in one message (larger log reads and writes are split).
pub const MAX_CHUNK: usize = 32 * 1024;
/// Most VDIs in one [`Answer::Vdis`] (a listing takes as many requests as
/// it needs).
pub const VDIS_PER_REPLY: usize = 256;
/// Longest error text in a [`StorError`].
pub const MAX_ERROR_TEXT: usize = 256;
/// Largest database snapshot a [`Op::LogReplaceCommit`] may stage: stordom
/// holds the staged bytes until the commit (its memory is sized for it).
pub const MAX_REPLACE_BYTES: u64 = 16 << 20;
/// The channel message size both ends use: a chunk and its framing.
pub const MAX_MESSAGE: usize = MAX_CHUNK + 1024;

/// A VDI's name on the SR (the XenAPI uuid's 16 bytes).
pub type Uuid = [u8; 16];

/// dom0 → stordom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the reply.
    pub id: u32,
    /// What to do.
    pub op: Op,
}

/// The operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// The SR's state ([`Answer::Status`]).
    Status,
    /// Up to `max` (≤ [`MAX_CHUNK`]) log bytes from `offset`
    /// ([`Answer::LogData`]).
    LogRead {
        /// First byte.
        offset: u64,
        /// Most bytes.
        max: u32,
    },
    /// Appends `bytes` (≤ [`MAX_CHUNK`]) to a log `at` bytes long.
    LogAppend {
        /// The log length dom0 expects before the append.
        at: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Makes every earlier log change durable (SR commit and disk flush).
    LogSync,
    /// Cuts the log to `len` bytes, durably.
    LogTruncate {
        /// New length.
        len: u64,
    },
    /// Starts staging a replacement log of `len` bytes
    /// (≤ [`MAX_REPLACE_BYTES`]); drops any earlier staging.
    LogReplaceBegin {
        /// Its whole length.
        len: u64,
    },
    /// The next staged bytes (≤ [`MAX_CHUNK`]).
    LogReplaceChunk {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Replaces the log with the staged bytes (all `len` of them)
    /// atomically and durably.
    LogReplaceCommit,
    /// The SR's sizes ([`Answer::Stats`]).
    SrStats,
    /// Up to [`VDIS_PER_REPLY`] VDIs whose uuid sorts after `after`
    /// (from the first with `None`), in uuid order ([`Answer::Vdis`]).
    VdiList {
        /// The last uuid of the previous reply.
        after: Option<Uuid>,
    },
    /// A new empty VDI.
    VdiCreate {
        /// Its name.
        uuid: Uuid,
        /// Its size in bytes (a multiple of 512).
        virtual_size: u64,
    },
    /// Removes a VDI (its blocks freed once nothing shares them).
    VdiDestroy {
        /// Its name.
        uuid: Uuid,
    },
    /// Grows a VDI.
    VdiResize {
        /// Its name.
        uuid: Uuid,
        /// The new size in bytes.
        virtual_size: u64,
    },
    /// A read-only snapshot of `src` named `new`, sharing its blocks.
    VdiSnapshot {
        /// The VDI.
        src: Uuid,
        /// The snapshot's name.
        new: Uuid,
    },
    /// A writable clone of `src` named `new`, sharing its blocks.
    VdiClone {
        /// The VDI.
        src: Uuid,
        /// The clone's name.
        new: Uuid,
    },
    /// Starts writing a `len`-byte image in `format` into VDI `uuid`
    /// ([`Answer::Transfer`]; at most [`MAX_TRANSFERS`] at once). A VHD
    /// image replaces the VDI's whole contents; a raw one its first `len`
    /// bytes.
    ImportBegin {
        /// The VDI.
        uuid: Uuid,
        /// The image's format.
        format: Format,
        /// The image's whole length.
        len: u64,
    },
    /// The image's next bytes (≤ [`MAX_CHUNK`]), in order.
    ImportData {
        /// The transfer.
        id: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The image ended: checks it was whole, makes it durable (SR commit
    /// and disk flush) and forgets the transfer.
    ImportEnd {
        /// The transfer.
        id: u32,
    },
    /// Starts reading VDI `uuid` as an image in `format`
    /// ([`Answer::Transfer`] with the image's whole length).
    ExportBegin {
        /// The VDI.
        uuid: Uuid,
        /// The image's format.
        format: Format,
    },
    /// The image's next bytes, at most `max` (≤ [`MAX_CHUNK`])
    /// ([`Answer::Data`]; empty at the end, which forgets the transfer).
    ExportData {
        /// The transfer.
        id: u32,
        /// Most bytes.
        max: u32,
    },
    /// Forgets a transfer (its client went away).
    TransferAbort {
        /// The transfer.
        id: u32,
    },
}

/// Most imports and exports stordom keeps at once.
pub const MAX_TRANSFERS: usize = 4;

/// A disk image's format on the wire (xapi's `format=` of
/// `/import_raw_vdi` and `/export_raw_vdi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// The disk's bytes as they are.
    Raw,
    /// A VHD (fixed or dynamic on import; dynamic on export).
    Vhd,
}

/// stordom → dom0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's.
    pub id: u32,
    /// What came of it.
    pub result: Result<Answer, StorError>,
}

/// A successful reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Done, nothing to say.
    Done,
    /// The SR's state.
    Status(Status),
    /// Log bytes from the requested offset.
    LogData {
        /// The bytes (fewer than asked only at the end).
        bytes: Vec<u8>,
        /// The log's whole length.
        log_len: u64,
    },
    /// The SR's sizes.
    Stats(Stats),
    /// VDIs in uuid order; `more` when others follow the last.
    Vdis {
        /// At most [`VDIS_PER_REPLY`].
        vdis: Vec<Vdi>,
        /// Whether to ask again after the last.
        more: bool,
    },
    /// A transfer began.
    Transfer {
        /// Its number, for the transfer's later requests.
        id: u32,
        /// The image's whole length.
        len: u64,
    },
    /// Image bytes (≤ [`MAX_CHUNK`]).
    Data {
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// What stordom's SR is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The database log's length.
    pub log_len: u64,
    /// Set when the SR is read-only (corrupt metadata or a device error):
    /// what stordom found.
    pub read_only: Option<String>,
    /// Whether stordom made the SR on a blank disk at this boot.
    pub formatted: bool,
}

/// The SR's sizes, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The disk.
    pub physical_size: u64,
    /// Allocated (data and metadata).
    pub physical_utilisation: u64,
    /// Sum of the VDIs' virtual sizes.
    pub virtual_allocation: u64,
}

/// One VDI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vdi {
    /// Its name.
    pub uuid: Uuid,
    /// Its size.
    pub virtual_size: u64,
    /// Bytes its blocks take.
    pub physical_utilisation: u64,
    /// A read-only snapshot.
    pub read_only: bool,
    /// The VDI it was snapshotted or cloned from, if any.
    pub parent: Option<Uuid>,
}

/// Why stordom refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorError {
    /// The SR is read-only (the text says why).
    ReadOnly(String),
    /// Metadata or the disk failed (the text says what).
    Failed(String),
    /// No such VDI.
    NotFound,
    /// A VDI with that name exists.
    Exists,
    /// The SR is full, or a bound was reached.
    NoSpace,
    /// A size, range or argument is not acceptable (the text says which).
    Invalid(String),
    /// The log is shorter than `at`: bytes dom0 saw acknowledged are gone.
    LogLost {
        /// The log's length.
        log_len: u64,
    },
    /// The request broke the protocol (a replace chunk without a begin, a
    /// chunk too large).
    Protocol(String),
}

/// `text` cut to [`MAX_ERROR_TEXT`] bytes at a character boundary.
pub fn error_text(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    String::from(&text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_messages_fit_the_channel() {
        let append = Request {
            id: u32::MAX,
            op: Op::LogAppend {
                at: u64::MAX,
                bytes: alloc::vec![0xff; MAX_CHUNK],
            },
        };
        let bytes = postcard::to_allocvec(&append).expect("encodes");
        assert!(bytes.len() <= MAX_MESSAGE, "{}", bytes.len());
        let data = Reply {
            id: u32::MAX,
            result: Ok(Answer::LogData {
                bytes: alloc::vec![0xff; MAX_CHUNK],
                log_len: u64::MAX,
            }),
        };
        let bytes = postcard::to_allocvec(&data).expect("encodes");
        assert!(bytes.len() <= MAX_MESSAGE, "{}", bytes.len());
        let vdi = Vdi {
            uuid: [0xff; 16],
            virtual_size: u64::MAX,
            physical_utilisation: u64::MAX,
            read_only: true,
            parent: Some([0xff; 16]),
        };
        let list = Reply {
            id: u32::MAX,
            result: Ok(Answer::Vdis {
                vdis: alloc::vec![vdi; VDIS_PER_REPLY],
                more: true,
            }),
        };
        let bytes = postcard::to_allocvec(&list).expect("encodes");
        assert!(bytes.len() <= MAX_MESSAGE, "{}", bytes.len());
        let error = Reply {
            id: 1,
            result: Err(StorError::Failed(error_text(&"x".repeat(10_000)))),
        };
        let bytes = postcard::to_allocvec(&error).expect("encodes");
        assert!(bytes.len() <= MAX_MESSAGE, "{}", bytes.len());
    }

    #[test]
    fn error_text_is_cut_at_a_character() {
        let long = "é".repeat(MAX_ERROR_TEXT);
        let cut = error_text(&long);
        assert!(cut.len() <= MAX_ERROR_TEXT);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(error_text("short"), "short");
    }
}
