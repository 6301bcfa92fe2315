//! stordom's end of the storage channel (`xcp_storwire`): each request
//! from dom0's toolstack applied to the SR ([`Repo`]) and answered.
//!
//! Every change that dom0 counts on is durable before its answer: log
//! truncation and replacement, and every VDI operation, commit the SR;
//! appends wait for dom0's [`Op::LogSync`]. A replacement is staged in
//! memory (at most [`MAX_REPLACE_BYTES`], the bound stordom's memory is
//! sized for) and swapped in by one atomic SR commit.

use alloc::string::String;
use alloc::vec::Vec;

use crate::transfer::Transfers;
use xcp_storwire::{
    error_text, Answer, Op, Reply, Request, Stats, Status, StorError, Uuid, Vdi, MAX_CHUNK,
    MAX_REPLACE_BYTES, VDIS_PER_REPLY,
};

/// The SR as the server uses it.
pub trait Repo {
    /// The database log's length.
    fn log_len(&self) -> u64;
    /// Reads log bytes from `offset` into `buf`; how many.
    fn log_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, StorError>;
    /// Appends to the log (durable at the next flush).
    fn log_append(&mut self, bytes: &[u8]) -> Result<(), StorError>;
    /// Cuts the log (durable at the next flush).
    fn log_truncate(&mut self, len: u64) -> Result<(), StorError>;
    /// Replaces the log atomically (durable at the next flush).
    fn log_replace(&mut self, bytes: &[u8]) -> Result<(), StorError>;
    /// Commits every earlier change and flushes the disk.
    fn flush(&mut self) -> Result<(), StorError>;
    /// Why the SR is read-only, if it is.
    fn read_only(&self) -> Option<String>;
    /// The SR's sizes.
    fn stats(&self) -> Stats;
    /// Every VDI.
    fn vdis(&self) -> Vec<Vdi>;
    /// A new VDI.
    fn create(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), StorError>;
    /// Removes a VDI.
    fn destroy(&mut self, uuid: Uuid) -> Result<(), StorError>;
    /// Grows a VDI.
    fn resize(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), StorError>;
    /// A read-only snapshot sharing `src`'s blocks.
    fn snapshot(&mut self, src: Uuid, new: Uuid) -> Result<(), StorError>;
    /// A writable clone sharing `src`'s blocks.
    fn clone_vdi(&mut self, src: Uuid, new: Uuid) -> Result<(), StorError>;
    /// A VDI's size and whether it can be written.
    fn vdi_info(&self, uuid: Uuid) -> Result<(u64, bool), StorError>;
    /// Reads whole sectors at byte `offset` of a VDI.
    fn vdi_read(&mut self, uuid: Uuid, offset: u64, buf: &mut [u8]) -> Result<(), StorError>;
    /// Writes whole sectors at byte `offset` of a VDI (durable at the next
    /// flush).
    fn vdi_write(&mut self, uuid: Uuid, offset: u64, bytes: &[u8]) -> Result<(), StorError>;
    /// Discards whole sectors: they read zero after.
    fn vdi_discard(&mut self, uuid: Uuid, offset: u64, len: u64) -> Result<(), StorError>;
    /// The first byte at or after `from` in a data cluster the VDI holds.
    fn next_allocated(&mut self, uuid: Uuid, from: u64) -> Result<Option<u64>, StorError>;
}

/// A replacement being staged.
struct Staged {
    len: u64,
    bytes: Vec<u8>,
}

/// The server.
pub struct Server<R: Repo> {
    repo: R,
    staged: Option<Staged>,
    formatted: bool,
    transfers: Transfers,
}

impl<R: Repo> Server<R> {
    /// Serves `repo`; `formatted` when stordom made it at this boot.
    pub fn new(repo: R, formatted: bool) -> Self {
        Server {
            repo,
            staged: None,
            formatted,
            transfers: Transfers::default(),
        }
    }

    /// The SR.
    pub fn repo_mut(&mut self) -> &mut R {
        &mut self.repo
    }

    /// Applies `request` and answers it.
    pub fn handle(&mut self, request: Request) -> Reply {
        Reply {
            id: request.id,
            result: self.apply(request.op),
        }
    }

    fn apply(&mut self, op: Op) -> Result<Answer, StorError> {
        let done = |r: Result<(), StorError>| r.map(|()| Answer::Done);
        match op {
            Op::Status => Ok(Answer::Status(Status {
                log_len: self.repo.log_len(),
                read_only: self.repo.read_only(),
                formatted: self.formatted,
            })),
            Op::LogRead { offset, max } => {
                let log_len = self.repo.log_len();
                let want = (max as usize)
                    .min(MAX_CHUNK)
                    .min(log_len.saturating_sub(offset) as usize);
                let mut bytes = Vec::new();
                bytes
                    .try_reserve_exact(want)
                    .map_err(|_| StorError::NoSpace)?;
                bytes.resize(want, 0);
                let got = self.repo.log_read(offset, &mut bytes)?;
                bytes.truncate(got);
                Ok(Answer::LogData { bytes, log_len })
            }
            Op::LogAppend { at, bytes } => {
                if bytes.len() > MAX_CHUNK {
                    return Err(protocol("an append past the chunk size"));
                }
                let log_len = self.repo.log_len();
                let end = at.saturating_add(bytes.len() as u64);
                if log_len < at {
                    return Err(StorError::LogLost { log_len });
                }
                // Resent after a rebuild: the bytes are there already.
                if log_len >= end {
                    return Ok(Answer::Done);
                }
                if log_len > at {
                    self.repo.log_truncate(at)?;
                }
                done(self.repo.log_append(&bytes))
            }
            Op::LogSync => done(self.repo.flush()),
            Op::LogTruncate { len } => {
                if len > self.repo.log_len() {
                    return Err(StorError::Invalid(error_text("truncate past the end")));
                }
                self.repo.log_truncate(len)?;
                done(self.repo.flush())
            }
            Op::LogReplaceBegin { len } => {
                self.staged = None;
                if len > MAX_REPLACE_BYTES {
                    return Err(StorError::NoSpace);
                }
                let mut bytes = Vec::new();
                bytes
                    .try_reserve_exact(len as usize)
                    .map_err(|_| StorError::NoSpace)?;
                self.staged = Some(Staged { len, bytes });
                Ok(Answer::Done)
            }
            Op::LogReplaceChunk { bytes } => {
                let Some(staged) = self.staged.as_mut() else {
                    return Err(protocol("a replacement chunk without a begin"));
                };
                if bytes.len() > MAX_CHUNK
                    || staged.bytes.len() as u64 + bytes.len() as u64 > staged.len
                {
                    self.staged = None;
                    return Err(protocol("a replacement past its length"));
                }
                staged.bytes.extend_from_slice(&bytes);
                Ok(Answer::Done)
            }
            Op::LogReplaceCommit => {
                let Some(staged) = self.staged.take() else {
                    return Err(protocol("a replacement commit without a begin"));
                };
                if staged.bytes.len() as u64 != staged.len {
                    return Err(protocol("a replacement commit short of its length"));
                }
                self.repo.log_replace(&staged.bytes)?;
                done(self.repo.flush())
            }
            Op::SrStats => Ok(Answer::Stats(self.repo.stats())),
            Op::VdiList { after } => {
                let mut all = self.repo.vdis();
                all.sort_unstable_by_key(|v| v.uuid);
                let from = match after {
                    Some(a) => all.partition_point(|v| v.uuid <= a),
                    None => 0,
                };
                let rest = all.get(from..).unwrap_or_default();
                let vdis: Vec<Vdi> = rest.iter().take(VDIS_PER_REPLY).copied().collect();
                Ok(Answer::Vdis {
                    more: rest.len() > vdis.len(),
                    vdis,
                })
            }
            Op::VdiCreate { uuid, virtual_size } => {
                self.repo.create(uuid, virtual_size)?;
                done(self.repo.flush())
            }
            Op::VdiDestroy { uuid } => {
                self.repo.destroy(uuid)?;
                done(self.repo.flush())
            }
            Op::VdiResize { uuid, virtual_size } => {
                self.repo.resize(uuid, virtual_size)?;
                done(self.repo.flush())
            }
            Op::VdiSnapshot { src, new } => {
                self.repo.snapshot(src, new)?;
                done(self.repo.flush())
            }
            Op::VdiClone { src, new } => {
                self.repo.clone_vdi(src, new)?;
                done(self.repo.flush())
            }
            Op::ImportBegin { uuid, format, len } => {
                let id = self.transfers.import(&mut self.repo, uuid, format, len)?;
                Ok(Answer::Transfer { id, len })
            }
            Op::ImportData { id, bytes } => {
                if bytes.len() > MAX_CHUNK {
                    return Err(protocol("image data past the chunk size"));
                }
                done(self.transfers.import_data(&mut self.repo, id, &bytes))
            }
            Op::ImportEnd { id } => done(self.transfers.import_end(&mut self.repo, id)),
            Op::ExportBegin { uuid, format } => {
                let (id, len) = self.transfers.export(&mut self.repo, uuid, format)?;
                Ok(Answer::Transfer { id, len })
            }
            Op::ExportData { id, max } => {
                let max = (max as usize).min(MAX_CHUNK);
                let bytes = self.transfers.export_data(&mut self.repo, id, max)?;
                Ok(Answer::Data { bytes })
            }
            Op::TransferAbort { id } => {
                self.transfers.abort(id);
                Ok(Answer::Done)
            }
        }
    }
}

fn protocol(what: &str) -> StorError {
    StorError::Protocol(error_text(what))
}

#[cfg(test)]
mod tests;
