//! Disk images in and out of VDIs: the stordom half of xapi's
//! `/import_raw_vdi` and `/export_raw_vdi` (dom0 terminates the HTTP
//! request and moves the body in [`MAX_CHUNK`] pieces over the storage
//! channel; the image's format is decoded and encoded here, in the domain
//! that holds the disk, never in dom0).
//!
//! An import is written as it arrives and made durable by its end (SR
//! commit and disk flush before [`Transfers::import_end`] answers). A raw
//! image is written over the VDI's first bytes a cluster at a time; a
//! cluster of zeros is discarded rather than written, so an image's holes
//! stay thin. A VHD image is decoded by `xcp-vhd` and replaces the whole
//! VDI (the VDI is discarded first: what the image does not hold reads
//! zero, and zeros the image holds are not written).
//!
//! What a client can make stordom hold: [`MAX_TRANSFERS`] transfers, each
//! one cluster of pending raw bytes, or a VHD decoder's tables (bounded by
//! [`vhd_limits`]), or an export's list of allocated blocks (one `u32` per
//! 2 MiB block of the VDI).

use alloc::vec::Vec;

use xcp_storwire::{error_text, Format, StorError, Uuid, MAX_CHUNK, MAX_TRANSFERS};

use crate::server::Repo;

/// The unit a raw import writes or discards (the SR's data cluster).
const CLUSTER: usize = 64 * 1024;
/// A sector.
const SECTOR: u64 = 512;

/// The bounds of a VHD image stordom decodes: its tables are the
/// memory a client makes stordom hold per import.
pub fn vhd_limits() -> xcp_vhd::Limits {
    xcp_vhd::Limits {
        max_virtual_size: 2040 << 30,
        max_bat_entries: 65536,
    }
}

enum Import {
    /// Raw bytes from `base` on, at most one cluster, not yet written.
    Raw {
        base: u64,
        pending: Vec<u8>,
    },
    Vhd(alloc::boxed::Box<xcp_vhd::Reader>),
}

enum Export {
    Raw,
    Vhd(alloc::boxed::Box<xcp_vhd::Writer>),
}

enum Kind {
    Import(Import),
    Export(Export),
}

struct Transfer {
    id: u32,
    uuid: Uuid,
    /// The image's whole length.
    len: u64,
    /// The VDI's size when the transfer began.
    size: u64,
    /// Image bytes moved so far.
    at: u64,
    kind: Kind,
}

/// The transfers under way.
#[derive(Default)]
pub struct Transfers {
    list: Vec<Transfer>,
    last_id: u32,
}

fn invalid(what: &str) -> StorError {
    StorError::Invalid(error_text(what))
}

fn unknown() -> StorError {
    StorError::Protocol(error_text("no such transfer"))
}

/// A VHD decoding error as the import's refusal.
fn vhd_error(e: xcp_vhd::VhdError<StorError>) -> StorError {
    match e {
        xcp_vhd::VhdError::Sink(e) => e,
        other => invalid(&alloc::format!("{}", other.map_sink(|_| ""))),
    }
}

impl Transfers {
    /// Transfers under way.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn add(&mut self, uuid: Uuid, len: u64, size: u64, kind: Kind) -> Result<u32, StorError> {
        if self.list.len() >= MAX_TRANSFERS {
            return Err(StorError::NoSpace);
        }
        self.list.try_reserve(1).map_err(|_| StorError::NoSpace)?;
        self.last_id = self.last_id.wrapping_add(1).max(1);
        let id = self.last_id;
        self.list.push(Transfer {
            id,
            uuid,
            len,
            size,
            at: 0,
            kind,
        });
        Ok(id)
    }

    fn find(&mut self, id: u32) -> Result<usize, StorError> {
        self.list
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(unknown)
    }

    /// Forgets transfer `id` (nothing is undone: an import's bytes written
    /// so far stay).
    pub fn abort(&mut self, id: u32) {
        self.list.retain(|t| t.id != id);
    }

    /// Starts an import of a `len`-byte image into `uuid`.
    pub fn import<R: Repo>(
        &mut self,
        repo: &mut R,
        uuid: Uuid,
        format: Format,
        len: u64,
    ) -> Result<u32, StorError> {
        if let Some(why) = repo.read_only() {
            return Err(StorError::ReadOnly(error_text(&why)));
        }
        let (size, writable) = repo.vdi_info(uuid)?;
        if !writable {
            return Err(StorError::ReadOnly(error_text("the VDI is read-only")));
        }
        if self.list.len() >= MAX_TRANSFERS {
            return Err(StorError::NoSpace);
        }
        let import = match format {
            Format::Raw => {
                if !len.is_multiple_of(SECTOR) {
                    return Err(invalid("a raw image is whole 512-byte sectors"));
                }
                if len > size {
                    return Err(invalid("the image is larger than the VDI"));
                }
                Import::Raw {
                    base: 0,
                    pending: Vec::new(),
                }
            }
            Format::Vhd => {
                // The image replaces the VDI: what it leaves out reads zero.
                repo.vdi_discard(uuid, 0, size)?;
                Import::Vhd(alloc::boxed::Box::new(xcp_vhd::Reader::new(
                    len,
                    vhd_limits(),
                )))
            }
        };
        self.add(uuid, len, size, Kind::Import(import))
    }

    /// The image's next bytes.
    pub fn import_data<R: Repo>(
        &mut self,
        repo: &mut R,
        id: u32,
        bytes: &[u8],
    ) -> Result<(), StorError> {
        let i = self.find(id)?;
        let r = Self::feed(repo, &mut self.list[i], bytes);
        if r.is_err() {
            self.list.remove(i);
        }
        r
    }

    fn feed<R: Repo>(repo: &mut R, t: &mut Transfer, bytes: &[u8]) -> Result<(), StorError> {
        if t.at + bytes.len() as u64 > t.len {
            return Err(StorError::Protocol(error_text(
                "image bytes past the image's length",
            )));
        }
        let uuid = t.uuid;
        let Kind::Import(import) = &mut t.kind else {
            return Err(unknown());
        };
        match import {
            Import::Raw { base, pending } => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let take = rest.len().min(CLUSTER - pending.len());
                    if pending.capacity() < CLUSTER {
                        pending
                            .try_reserve_exact(CLUSTER - pending.len())
                            .map_err(|_| StorError::NoSpace)?;
                    }
                    pending.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if pending.len() == CLUSTER {
                        put_raw(repo, uuid, *base, pending)?;
                        *base += CLUSTER as u64;
                        pending.clear();
                    }
                }
            }
            Import::Vhd(reader) => {
                let size = t.size;
                let mut sink = |offset: u64, data: &[u8]| -> Result<(), StorError> {
                    if offset.saturating_add(data.len() as u64) > size {
                        return Err(invalid("the image is larger than the VDI"));
                    }
                    // The VDI was discarded at the start: zeros are there.
                    if data.iter().all(|&b| b == 0) {
                        return Ok(());
                    }
                    repo.vdi_write(uuid, offset, data)
                };
                reader.feed(bytes, &mut sink).map_err(vhd_error)?;
                if reader.virtual_size().is_some_and(|v| v > size) {
                    return Err(invalid("the image is larger than the VDI"));
                }
            }
        }
        t.at += bytes.len() as u64;
        Ok(())
    }

    /// The image ended: writes what is pending, checks the image was whole
    /// and makes it durable.
    pub fn import_end<R: Repo>(&mut self, repo: &mut R, id: u32) -> Result<(), StorError> {
        let i = self.find(id)?;
        let t = self.list.remove(i);
        if t.at != t.len {
            return Err(invalid("the image ended before its length"));
        }
        match t.kind {
            Kind::Import(Import::Raw { base, pending }) => {
                if !pending.is_empty() {
                    put_raw(repo, t.uuid, base, &pending)?;
                }
            }
            Kind::Import(Import::Vhd(reader)) => {
                let size = t.size;
                let summary = (*reader).finish::<StorError>().map_err(vhd_error)?;
                if summary.virtual_size > size {
                    return Err(invalid("the image is larger than the VDI"));
                }
            }
            Kind::Export(_) => return Err(unknown()),
        }
        repo.flush()
    }

    /// Starts an export of `uuid`: the transfer and the image's length.
    pub fn export<R: Repo>(
        &mut self,
        repo: &mut R,
        uuid: Uuid,
        format: Format,
    ) -> Result<(u32, u64), StorError> {
        let (size, _) = repo.vdi_info(uuid)?;
        if self.list.len() >= MAX_TRANSFERS {
            return Err(StorError::NoSpace);
        }
        let (export, len) = match format {
            Format::Raw => (Export::Raw, size),
            Format::Vhd => {
                let blocks = allocated_blocks(repo, uuid, size)?;
                let writer = xcp_vhd::Writer::dynamic(size, blocks, uuid, 0)
                    .map_err(|e| invalid(&alloc::format!("{}", e.map_sink(|_| ""))))?;
                let len = writer.total_len();
                (Export::Vhd(alloc::boxed::Box::new(writer)), len)
            }
        };
        let id = self.add(uuid, len, size, Kind::Export(export))?;
        Ok((id, len))
    }

    /// The image's next bytes, at most `max` (whole sectors); empty at the
    /// end, which forgets the transfer.
    pub fn export_data<R: Repo>(
        &mut self,
        repo: &mut R,
        id: u32,
        max: usize,
    ) -> Result<Vec<u8>, StorError> {
        let i = self.find(id)?;
        let r = Self::produce(repo, &mut self.list[i], max.min(MAX_CHUNK));
        // The end, or a failure, ends the transfer.
        if !r.as_ref().is_ok_and(|bytes| !bytes.is_empty()) {
            self.list.remove(i);
        }
        r
    }

    fn produce<R: Repo>(repo: &mut R, t: &mut Transfer, max: usize) -> Result<Vec<u8>, StorError> {
        let max = max - max % SECTOR as usize;
        if max == 0 {
            return Err(invalid("an export reads whole sectors"));
        }
        let uuid = t.uuid;
        let mut out = Vec::new();
        out.try_reserve_exact(max).map_err(|_| StorError::NoSpace)?;
        match &mut t.kind {
            Kind::Export(Export::Raw) => {
                let n = (t.len - t.at).min(max as u64) as usize;
                out.resize(n, 0);
                read_sparse(repo, uuid, t.at, &mut out)?;
            }
            Kind::Export(Export::Vhd(writer)) => {
                while out.len() < max {
                    match writer.next(max - out.len()) {
                        xcp_vhd::Piece::Bytes(b) => out.extend_from_slice(&b),
                        xcp_vhd::Piece::Data { offset, len } => {
                            let from = out.len();
                            out.resize(from + len as usize, 0);
                            read_sparse(repo, uuid, offset, &mut out[from..])?;
                        }
                        xcp_vhd::Piece::End => break,
                    }
                }
            }
            Kind::Import(_) => return Err(unknown()),
        }
        t.at += out.len() as u64;
        if t.at > t.len {
            return Err(StorError::Failed(error_text(
                "the image ran past its announced length",
            )));
        }
        Ok(out)
    }
}

/// Writes one raw cluster's worth (or the image's tail) at `base`: a run
/// of zeros is discarded instead, so holes stay thin.
fn put_raw<R: Repo>(repo: &mut R, uuid: Uuid, base: u64, bytes: &[u8]) -> Result<(), StorError> {
    if bytes.iter().all(|&b| b == 0) {
        repo.vdi_discard(uuid, base, bytes.len() as u64)
    } else {
        repo.vdi_write(uuid, base, bytes)
    }
}

/// Reads `buf.len()` bytes at `offset`, skipping the SR for a range it
/// holds no cluster of (it reads zero).
fn read_sparse<R: Repo>(
    repo: &mut R,
    uuid: Uuid,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), StorError> {
    let end = offset + buf.len() as u64;
    match repo.next_allocated(uuid, offset)? {
        Some(at) if at < end => repo.vdi_read(uuid, offset, buf),
        _ => {
            buf.fill(0);
            Ok(())
        }
    }
}

/// The indices of the 2 MiB VHD blocks of `uuid` that hold data.
fn allocated_blocks<R: Repo>(repo: &mut R, uuid: Uuid, size: u64) -> Result<Vec<u32>, StorError> {
    let block = u64::from(xcp_vhd::DEFAULT_BLOCK_SIZE);
    let limit = vhd_limits().max_bat_entries as usize;
    let mut out: Vec<u32> = Vec::new();
    let mut from = 0;
    while from < size {
        let Some(at) = repo.next_allocated(uuid, from)? else {
            break;
        };
        let b = at / block;
        if out.len() >= limit {
            return Err(invalid("the VDI is too large for a VHD export"));
        }
        out.try_reserve(1).map_err(|_| StorError::NoSpace)?;
        out.push(u32::try_from(b).map_err(|_| invalid("the VDI is too large for VHD"))?);
        from = (b + 1) * block;
    }
    Ok(out)
}
