//! Streaming VHD: a push reader and a pull writer (pure, no_std + alloc).
//!
//! read first: DESIGN.md (what is accepted, limits, memory); "Virtual Hard
//! Disk Image Format Specification" (Microsoft, 2006).
//!
//! For stordom's `/import_raw_vdi?format=vhd` and
//! `/export_raw_vdi?format=vhd`: the HTTP body streams through in pieces
//! of any size, never whole in memory. [`Reader`] takes a fixed or dynamic
//! VHD from an untrusted client, front to back, and hands the disk's data
//! to a sink; every field is checked, every failure is a [`VhdError`]
//! value, and memory is bounded by the caller's [`Limits`]. [`Writer`]
//! lays out a dynamic VHD of a sparse disk as a sequence of [`Piece`]s:
//! metadata bytes it makes, and ranges of the disk the caller reads.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod format;
mod reader;
mod writer;

use core::fmt;

pub use format::Geometry;
pub use reader::Reader;
pub use writer::{Piece, Writer};

/// A sector: the unit of every offset and length the sink sees.
pub const SECTOR: u64 = 512;
/// The block size [`Writer`] uses (and the spec's default): 2 MiB.
pub const DEFAULT_BLOCK_SIZE: u32 = 2 << 20;
/// The smallest block size [`Reader`] takes: 4 KiB, one byte of bitmap.
pub const MIN_BLOCK_SIZE: u32 = 8 * SECTOR as u32;
/// The largest block size [`Reader`] takes: 16 MiB (a 4 KiB bitmap).
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;
/// The most bytes of one sink call: 64 KiB.
pub const MAX_SINK_LEN: usize = 64 << 10;

/// Where a [`Reader`] sends the disk's data: `sink(disk_offset, data)`.
pub type Sink<'a, E> = dyn FnMut(u64, &[u8]) -> Result<(), E> + 'a;

/// What a [`Reader`] may be made to hold or accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest virtual size accepted, in bytes.
    pub max_virtual_size: u64,
    /// The most BAT entries ("Max Table Entries") accepted; the reader
    /// holds 8 bytes per present entry.
    pub max_bat_entries: u32,
}

impl Default for Limits {
    /// 2040 GiB (the VHD maximum) and 65536 entries (128 GiB at 2 MiB
    /// blocks; at most 512 KiB of sorted BAT).
    fn default() -> Limits {
        Limits {
            max_virtual_size: format::MAX_DISK_SIZE,
            max_bat_entries: 65536,
        }
    }
}

/// The kind of VHD a stream held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Disk type 2: the data, then the footer.
    Fixed,
    /// Disk type 3: blocks, only those the image holds.
    Dynamic,
}

/// What a whole, valid stream held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The disk's size in bytes (the footer's current size).
    pub virtual_size: u64,
    /// Fixed or dynamic.
    pub kind: Kind,
    /// Bytes handed to the sink.
    pub data_bytes: u64,
}

/// Why a stream was refused (or a [`Writer`] could not be made).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VhdError<E> {
    /// The sink failed; the reader takes nothing more.
    Sink(E),
    /// The stream is not a well-formed VHD: why.
    Format(&'static str),
    /// A well-formed VHD of a kind this reader does not take: which.
    Unsupported(&'static str),
    /// Beyond the caller's [`Limits`] (or the format's): what.
    TooLarge(&'static str),
    /// The stream ended before its end (or before its declared length).
    Truncated,
    /// More bytes than the declared stream length.
    TrailingBytes,
    /// An earlier call failed; the reader takes nothing more.
    Failed,
    /// Memory for the BAT could not be reserved.
    NoMemory,
    /// A [`Writer`] was asked for something impossible: what.
    Invalid(&'static str),
}

impl<E> VhdError<E> {
    /// The same error with the sink's error changed by `f`.
    pub fn map_sink<F>(self, f: impl FnOnce(E) -> F) -> VhdError<F> {
        match self {
            VhdError::Sink(e) => VhdError::Sink(f(e)),
            VhdError::Format(s) => VhdError::Format(s),
            VhdError::Unsupported(s) => VhdError::Unsupported(s),
            VhdError::TooLarge(s) => VhdError::TooLarge(s),
            VhdError::Truncated => VhdError::Truncated,
            VhdError::TrailingBytes => VhdError::TrailingBytes,
            VhdError::Failed => VhdError::Failed,
            VhdError::NoMemory => VhdError::NoMemory,
            VhdError::Invalid(s) => VhdError::Invalid(s),
        }
    }
}

impl<E: fmt::Display> fmt::Display for VhdError<E> {
    /// A short reason a user can read in a task's `error_info`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VhdError::Sink(e) => write!(f, "{e}"),
            VhdError::Format(s) => write!(f, "VHD: not a valid VHD: {s}"),
            VhdError::Unsupported(s) => write!(f, "VHD: unsupported: {s}"),
            VhdError::TooLarge(s) => write!(f, "VHD: too large: {s}"),
            VhdError::Truncated => f.write_str("VHD: the stream ended early"),
            VhdError::TrailingBytes => f.write_str("VHD: more bytes than the stream length"),
            VhdError::Failed => f.write_str("VHD: the stream failed earlier"),
            VhdError::NoMemory => f.write_str("VHD: out of memory for the block table"),
            VhdError::Invalid(s) => write!(f, "VHD: invalid request: {s}"),
        }
    }
}
