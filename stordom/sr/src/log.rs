//! The toolstack's database log: a hidden byte stream in the SR.
//!
//! read first: toolstack-dom0/xenapi/src/wal.rs (the `Storage` trait whose
//! semantics these match: append, sync = `flush`, read_all, truncate,
//! replace).
//!
//! The log is a map like a VDI's, plus a length in the superblock. Every
//! change is durable at the next `flush`. `log_replace` writes the new
//! bytes into a second map (staging) and swaps the two in one in-memory
//! step, so any commit, early or not, holds either the old log or the new
//! one whole; the old map is then freed through staging. A crash may leave
//! staging holding junk: the next replace frees it first.

use alloc::vec::Vec;

use crate::budget::{CLUSTER_SIZE, MAX_LOG_BYTES};
use crate::error::Error;
use crate::format::{map_cover, LOG_LEVEL};
use crate::store::Sr;
use crate::tree::Tree;
use crate::BlockDev;

impl<D: BlockDev> Sr<D> {
    /// Bytes in the log.
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// Appends bytes at the end of the log.
    pub fn log_append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.writable()?;
        let end = self
            .log_len
            .checked_add(bytes.len() as u64)
            .filter(|e| *e <= MAX_LOG_BYTES)
            .ok_or(Error::LogFull)?;
        self.write_at(Tree::Log, self.log_len, bytes)?;
        self.log_len = end;
        self.changed = true;
        Ok(())
    }

    /// Reads up to `buf.len()` log bytes from `offset`; how many were read.
    pub fn log_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let n = self.log_len.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.read_at(Tree::Log, offset, &mut buf[..n])?;
        Ok(n)
    }

    /// The whole log (at most [`MAX_LOG_BYTES`]).
    pub fn log_read_all(&mut self) -> Result<Vec<u8>, Error> {
        let mut v = Vec::new();
        v.try_reserve_exact(self.log_len as usize)
            .map_err(|_| Error::NoMemory)?;
        v.resize(self.log_len as usize, 0);
        self.read_at(Tree::Log, 0, &mut v)?;
        Ok(v)
    }

    /// Cuts the log to `len` bytes.
    pub fn log_truncate(&mut self, len: u64) -> Result<(), Error> {
        self.writable()?;
        if len > self.log_len {
            return Err(Error::OutOfRange);
        }
        let keep = len.div_ceil(CLUSTER_SIZE as u64);
        self.discard_clusters(Tree::Log, keep, map_cover(LOG_LEVEL), false)?;
        self.log_len = len;
        self.changed = true;
        Ok(())
    }

    /// Replaces the whole log with `bytes`: after a crash, the old log or
    /// the new one, never a mix.
    pub fn log_replace(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.writable()?;
        if bytes.len() as u64 > MAX_LOG_BYTES {
            return Err(Error::LogFull);
        }
        let all = map_cover(LOG_LEVEL);
        self.discard_clusters(Tree::Staging, 0, all, false)?;
        self.write_at(Tree::Staging, 0, bytes)?;
        core::mem::swap(&mut self.log_root, &mut self.staging_root);
        self.log_len = bytes.len() as u64;
        self.changed = true;
        self.discard_clusters(Tree::Staging, 0, all, false)
    }
}
