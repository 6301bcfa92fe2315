//! dom0's end: one request at a time over a [`Link`], each reply matched
//! by id and checked against the bounds of the protocol, with a deadline.
//!
//! The client keeps the log length it has seen acknowledged, so appends
//! name it ([`crate::Op::LogAppend`]'s `at`) and a reply claiming more or
//! fewer bytes than asked is refused as [`CallError::Unexpected`].

use alloc::string::String;
use alloc::vec::Vec;

use crate::{Answer, Format, Op, Reply, Request, Stats, Status, StorError, Uuid, Vdi};
use crate::{MAX_CHUNK, MAX_REPLACE_BYTES, VDIS_PER_REPLY};

/// How the client reaches stordom.
pub trait Link {
    /// Queues `request` for stordom and kicks it.
    fn send(&mut self, request: &Request) -> Result<(), LinkError>;
    /// The next reply, if one is in.
    fn recv(&mut self) -> Result<Option<Reply>, LinkError>;
    /// Blocks until a reply may be in or `deadline_ns` passes.
    fn wait(&mut self, deadline_ns: u64);
    /// Now, in nanoseconds on the clock `wait` uses.
    fn now_ns(&self) -> u64;
}

/// The channel failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkError(pub String);

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The channel failed.
    Link(LinkError),
    /// No reply before the deadline.
    Timeout,
    /// stordom refused.
    Refused(StorError),
    /// The reply broke the protocol (wrong kind, out of bounds).
    Unexpected(&'static str),
    /// dom0 asked for more than the protocol allows.
    TooLarge,
}

/// The client.
pub struct Client<L: Link> {
    link: L,
    next_id: u32,
    timeout_ns: u64,
    /// The log length stordom last confirmed.
    log_len: u64,
}

impl<L: Link> Client<L> {
    /// A client over `link`; each call waits at most `timeout_ns`.
    pub fn new(link: L, timeout_ns: u64) -> Self {
        Client {
            link,
            next_id: 1,
            timeout_ns,
            log_len: 0,
        }
    }

    /// The link.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// The log length stordom last confirmed.
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// Sends `op` and waits for its answer.
    pub fn call(&mut self, op: Op) -> Result<Answer, CallError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.link
            .send(&Request { id, op })
            .map_err(CallError::Link)?;
        let deadline = self.link.now_ns().saturating_add(self.timeout_ns);
        loop {
            while let Some(reply) = self.link.recv().map_err(CallError::Link)? {
                // A reply to an earlier request that timed out: dropped.
                if reply.id == id {
                    return reply.result.map_err(CallError::Refused);
                }
            }
            if self.link.now_ns() >= deadline {
                return Err(CallError::Timeout);
            }
            self.link.wait(deadline);
        }
    }

    /// The SR's state; remembers its log length.
    pub fn status(&mut self) -> Result<Status, CallError> {
        match self.call(Op::Status)? {
            Answer::Status(status) => {
                self.log_len = status.log_len;
                Ok(status)
            }
            _ => Err(CallError::Unexpected("not a status")),
        }
    }

    /// The whole log, refused past `limit` bytes.
    pub fn log_read_all(&mut self, limit: u64) -> Result<Vec<u8>, CallError> {
        let mut out = Vec::new();
        loop {
            let offset = out.len() as u64;
            let answer = self.call(Op::LogRead {
                offset,
                max: MAX_CHUNK as u32,
            })?;
            let Answer::LogData { bytes, log_len } = answer else {
                return Err(CallError::Unexpected("not log data"));
            };
            if log_len > limit {
                return Err(CallError::TooLarge);
            }
            let left = log_len
                .checked_sub(offset)
                .ok_or(CallError::Unexpected("log data past the log's length"))?;
            let expected = left.min(MAX_CHUNK as u64) as usize;
            if bytes.len() != expected {
                return Err(CallError::Unexpected("log data of the wrong length"));
            }
            out.try_reserve(bytes.len())
                .map_err(|_| CallError::TooLarge)?;
            out.extend_from_slice(&bytes);
            if out.len() as u64 == log_len {
                self.log_len = log_len;
                return Ok(out);
            }
        }
    }

    /// Appends `bytes` (in chunks), not yet durable.
    pub fn log_append(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        for chunk in bytes.chunks(MAX_CHUNK) {
            let at = self.log_len;
            self.done(Op::LogAppend {
                at,
                bytes: chunk.to_vec(),
            })?;
            self.log_len = at + chunk.len() as u64;
        }
        Ok(())
    }

    /// Makes every earlier change durable.
    pub fn log_sync(&mut self) -> Result<(), CallError> {
        self.done(Op::LogSync)
    }

    /// Cuts the log to `len`, durably.
    pub fn log_truncate(&mut self, len: u64) -> Result<(), CallError> {
        self.done(Op::LogTruncate { len })?;
        self.log_len = self.log_len.min(len);
        Ok(())
    }

    /// Replaces the log with `bytes`, atomically and durably.
    pub fn log_replace(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        let len = bytes.len() as u64;
        if len > MAX_REPLACE_BYTES {
            return Err(CallError::TooLarge);
        }
        self.done(Op::LogReplaceBegin { len })?;
        for chunk in bytes.chunks(MAX_CHUNK) {
            self.done(Op::LogReplaceChunk {
                bytes: chunk.to_vec(),
            })?;
        }
        self.done(Op::LogReplaceCommit)?;
        self.log_len = len;
        Ok(())
    }

    /// The SR's sizes.
    pub fn sr_stats(&mut self) -> Result<Stats, CallError> {
        match self.call(Op::SrStats)? {
            Answer::Stats(stats) => Ok(stats),
            _ => Err(CallError::Unexpected("not stats")),
        }
    }

    /// Every VDI, refused past `limit` of them.
    pub fn vdi_list(&mut self, limit: usize) -> Result<Vec<Vdi>, CallError> {
        let mut out: Vec<Vdi> = Vec::new();
        loop {
            let after = out.last().map(|v| v.uuid);
            let Answer::Vdis { vdis, more } = self.call(Op::VdiList { after })? else {
                return Err(CallError::Unexpected("not a VDI list"));
            };
            if vdis.len() > VDIS_PER_REPLY || (more && vdis.is_empty()) {
                return Err(CallError::Unexpected("a VDI list out of bounds"));
            }
            // Strictly ascending, after the previous reply's last: no
            // repeats, so the listing ends.
            let mut last = after;
            for vdi in &vdis {
                if last.is_some_and(|l| vdi.uuid <= l) {
                    return Err(CallError::Unexpected("a VDI list out of order"));
                }
                last = Some(vdi.uuid);
            }
            if out.len() + vdis.len() > limit {
                return Err(CallError::TooLarge);
            }
            out.extend(vdis);
            if !more {
                return Ok(out);
            }
        }
    }

    /// A new VDI.
    pub fn vdi_create(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), CallError> {
        self.done(Op::VdiCreate { uuid, virtual_size })
    }

    /// Removes a VDI.
    pub fn vdi_destroy(&mut self, uuid: Uuid) -> Result<(), CallError> {
        self.done(Op::VdiDestroy { uuid })
    }

    /// Grows a VDI.
    pub fn vdi_resize(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), CallError> {
        self.done(Op::VdiResize { uuid, virtual_size })
    }

    /// A read-only snapshot.
    pub fn vdi_snapshot(&mut self, src: Uuid, new: Uuid) -> Result<(), CallError> {
        self.done(Op::VdiSnapshot { src, new })
    }

    /// A writable clone.
    pub fn vdi_clone(&mut self, src: Uuid, new: Uuid) -> Result<(), CallError> {
        self.done(Op::VdiClone { src, new })
    }

    /// Starts an import of a `len`-byte image into `uuid`: the transfer's
    /// number.
    pub fn import_begin(&mut self, uuid: Uuid, format: Format, len: u64) -> Result<u32, CallError> {
        match self.call(Op::ImportBegin { uuid, format, len })? {
            Answer::Transfer { id, len: echoed } if echoed == len => Ok(id),
            _ => Err(CallError::Unexpected("not the transfer asked for")),
        }
    }

    /// The image's next bytes (in chunks).
    pub fn import_data(&mut self, id: u32, bytes: &[u8]) -> Result<(), CallError> {
        for chunk in bytes.chunks(MAX_CHUNK) {
            self.done(Op::ImportData {
                id,
                bytes: chunk.to_vec(),
            })?;
        }
        Ok(())
    }

    /// Ends an import: durable when it returns Ok.
    pub fn import_end(&mut self, id: u32) -> Result<(), CallError> {
        self.done(Op::ImportEnd { id })
    }

    /// Starts an export of `uuid`: the transfer's number and the image's
    /// whole length.
    pub fn export_begin(&mut self, uuid: Uuid, format: Format) -> Result<(u32, u64), CallError> {
        match self.call(Op::ExportBegin { uuid, format })? {
            Answer::Transfer { id, len } => Ok((id, len)),
            _ => Err(CallError::Unexpected("not a transfer")),
        }
    }

    /// The image's next bytes, at most `max` (≤ [`MAX_CHUNK`]); empty at
    /// the end.
    pub fn export_data(&mut self, id: u32, max: u32) -> Result<Vec<u8>, CallError> {
        let max = max.min(MAX_CHUNK as u32);
        match self.call(Op::ExportData { id, max })? {
            Answer::Data { bytes } if bytes.len() <= max as usize => Ok(bytes),
            Answer::Data { .. } => Err(CallError::Unexpected("more image bytes than asked")),
            _ => Err(CallError::Unexpected("not image data")),
        }
    }

    /// Forgets a transfer.
    pub fn transfer_abort(&mut self, id: u32) -> Result<(), CallError> {
        self.done(Op::TransferAbort { id })
    }

    fn done(&mut self, op: Op) -> Result<(), CallError> {
        match self.call(op)? {
            Answer::Done => Ok(()),
            _ => Err(CallError::Unexpected("not done")),
        }
    }
}

#[cfg(test)]
mod tests;
