//! stordom's storage repository: thin copy-on-write VDIs over one disk.
//!
//! read first: DESIGN.md (format, commit protocol, crash behaviour,
//! memory); Rodeh, "B-trees, shadowing, and clones" (ACM TOS 2008) for the
//! lazy refcounts.
//!
//! An [`Sr`] runs over a [`BlockDev`] of 4 KiB blocks and keeps on it the
//! VDIs guests use (through blkback), their snapshots and clones (O(1):
//! they share the map's root), and the toolstack's database log. I/O is in
//! 512-byte sectors; [`Sr::flush`] is the commit: when it returns Ok,
//! everything before it is durable, and a power cut at any moment leaves
//! the last commit (or the one in flight) whole. Everything read from the
//! disk is checked (checksums, bounds); corruption is an error naming the
//! block and turns the SR read-only, never a panic. Memory is bounded by
//! [`budget`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod budget;
mod check;
pub mod dev;
mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod format;
mod log;
mod refcount;
mod space;
mod store;
mod tree;
mod vdi;

pub use check::CheckReport;
pub use dev::{BlockDev, DevError};
pub use error::{Corruption, Error, OpenError};
pub use store::{OpenFailed, Sr};
pub use vdi::{SrInfo, Uuid, VdiInfo};
