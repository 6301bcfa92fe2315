//! The SR behind the storage channel: [`xcp_sr::Sr`] as the server's
//! [`Repo`], and how stordom finds it on its disk at boot.
//!
//! A disk with an SR is opened; a blank disk (its first blocks all zero, as
//! a new sparse file is) is formatted; anything else is left alone and
//! served read-only with the reason: stordom never formats a disk that
//! holds something, and an SR whose metadata fails its checks is reported,
//! never rebuilt over.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xcp_sr::{BlockDev, Error, OpenError, Sr};
use xcp_storwire::{error_text, Stats, StorError, Uuid, Vdi};

use crate::server::Repo;
use crate::vbds::{sectors_of, Disks, VdiDisk};
use xcp_blkback::IoStatus;

/// Blocks that must read zero for a disk to count as blank.
pub const BLANK_BLOCKS: u64 = 16;

/// The SR, or why there is none.
pub enum SrRepo<D: BlockDev> {
    /// Open.
    Open(alloc::boxed::Box<Sr<D>>),
    /// The disk holds no usable SR: every request but status and reads of
    /// nothing is refused with this.
    Unusable(String),
}

/// What stordom found on its disk.
pub struct Found<D: BlockDev> {
    /// The SR (or why none).
    pub repo: SrRepo<D>,
    /// Whether it was formatted now.
    pub formatted: bool,
}

/// Opens the SR on `dev`, formatting a blank disk.
pub fn open_or_format<D: BlockDev>(dev: D) -> Found<D> {
    let unusable = |why: String| Found {
        repo: SrRepo::Unusable(why),
        formatted: false,
    };
    let mut dev = match Sr::open(dev) {
        Ok(sr) => {
            return Found {
                repo: SrRepo::Open(alloc::boxed::Box::new(sr)),
                formatted: false,
            }
        }
        Err((OpenError::NotFormatted, dev)) => dev,
        Err((e, _)) => return unusable(format!("the SR on the disk cannot be opened: {e:?}")),
    };
    match is_blank(&mut dev) {
        Ok(true) => {}
        Ok(false) => {
            return unusable(String::from(
                "the disk holds something that is not an SR: not formatting it",
            ))
        }
        Err(e) => return unusable(format!("reading the disk: {e:?}")),
    }
    match Sr::format(dev) {
        Ok(sr) => Found {
            repo: SrRepo::Open(alloc::boxed::Box::new(sr)),
            formatted: true,
        },
        Err((e, _)) => unusable(format!("formatting the disk: {e:?}")),
    }
}

fn is_blank<D: BlockDev>(dev: &mut D) -> Result<bool, xcp_sr::DevError> {
    let mut block = [0u8; xcp_sr::budget::BLOCK_SIZE];
    for b in 0..BLANK_BLOCKS.min(dev.blocks()) {
        dev.read(b, &mut block)?;
        if block.iter().any(|&x| x != 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn stor_error(e: Error) -> StorError {
    match e {
        Error::NotFound => StorError::NotFound,
        Error::Exists => StorError::Exists,
        Error::NoSpace | Error::TooManyVdis | Error::LogFull | Error::NoMemory => {
            StorError::NoSpace
        }
        Error::ReadOnly => StorError::ReadOnly(String::from("the SR is read-only")),
        Error::Device(d) => StorError::Failed(error_text(&format!("the disk failed: {d:?}"))),
        Error::Corrupt(c) => StorError::Failed(error_text(&format!(
            "corrupt metadata in block {}: {}",
            c.block, c.what
        ))),
        other => StorError::Invalid(error_text(&format!("{other:?}"))),
    }
}

impl<D: BlockDev> SrRepo<D> {
    fn sr(&mut self) -> Result<&mut Sr<D>, StorError> {
        match self {
            SrRepo::Open(sr) => Ok(&mut **sr),
            SrRepo::Unusable(why) => Err(StorError::ReadOnly(error_text(why))),
        }
    }
}

impl<D: BlockDev> Repo for SrRepo<D> {
    fn log_len(&self) -> u64 {
        match self {
            SrRepo::Open(sr) => sr.log_len(),
            SrRepo::Unusable(_) => 0,
        }
    }

    fn log_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, StorError> {
        self.sr()?.log_read(offset, buf).map_err(stor_error)
    }

    fn log_append(&mut self, bytes: &[u8]) -> Result<(), StorError> {
        self.sr()?.log_append(bytes).map_err(stor_error)
    }

    fn log_truncate(&mut self, len: u64) -> Result<(), StorError> {
        self.sr()?.log_truncate(len).map_err(stor_error)
    }

    fn log_replace(&mut self, bytes: &[u8]) -> Result<(), StorError> {
        self.sr()?.log_replace(bytes).map_err(stor_error)
    }

    fn flush(&mut self) -> Result<(), StorError> {
        self.sr()?.flush().map_err(stor_error)
    }

    fn read_only(&self) -> Option<String> {
        match self {
            SrRepo::Open(sr) => sr.read_only().map(|e| format!("{:?}", stor_error(e))),
            SrRepo::Unusable(why) => Some(why.clone()),
        }
    }

    fn stats(&self) -> Stats {
        match self {
            SrRepo::Open(sr) => {
                let info = sr.sr_info();
                Stats {
                    physical_size: info.physical_size,
                    physical_utilisation: info.physical_utilisation,
                    virtual_allocation: info.virtual_allocation,
                }
            }
            SrRepo::Unusable(_) => Stats {
                physical_size: 0,
                physical_utilisation: 0,
                virtual_allocation: 0,
            },
        }
    }

    fn vdis(&self) -> Vec<Vdi> {
        let SrRepo::Open(sr) = self else {
            return Vec::new();
        };
        sr.list()
            .into_iter()
            .filter_map(|uuid| sr.info(uuid).ok())
            .map(|info| Vdi {
                uuid: info.uuid,
                virtual_size: info.virtual_size,
                physical_utilisation: info.physical_utilisation,
                read_only: info.snapshot || info.read_only,
                parent: info.parent,
            })
            .collect()
    }

    fn create(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), StorError> {
        self.sr()?.create(uuid, virtual_size).map_err(stor_error)
    }

    fn destroy(&mut self, uuid: Uuid) -> Result<(), StorError> {
        self.sr()?.destroy(uuid).map_err(stor_error)
    }

    fn resize(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), StorError> {
        self.sr()?.resize(uuid, virtual_size).map_err(stor_error)
    }

    fn snapshot(&mut self, src: Uuid, new: Uuid) -> Result<(), StorError> {
        self.sr()?.snapshot(src, new).map_err(stor_error)
    }

    fn clone_vdi(&mut self, src: Uuid, new: Uuid) -> Result<(), StorError> {
        self.sr()?.clone_vdi(src, new).map_err(stor_error)
    }

    fn vdi_info(&self, uuid: Uuid) -> Result<(u64, bool), StorError> {
        let SrRepo::Open(sr) = self else {
            return Err(StorError::NotFound);
        };
        let info = sr.info(uuid).map_err(stor_error)?;
        let writable = !(info.snapshot || info.read_only || sr.read_only().is_some());
        Ok((info.virtual_size, writable))
    }

    fn vdi_read(&mut self, uuid: Uuid, offset: u64, buf: &mut [u8]) -> Result<(), StorError> {
        let sector = sector_at(offset)?;
        self.sr()?.read(uuid, sector, buf).map_err(stor_error)
    }

    fn vdi_write(&mut self, uuid: Uuid, offset: u64, bytes: &[u8]) -> Result<(), StorError> {
        let sector = sector_at(offset)?;
        self.sr()?.write(uuid, sector, bytes).map_err(stor_error)
    }

    fn vdi_discard(&mut self, uuid: Uuid, offset: u64, len: u64) -> Result<(), StorError> {
        let sector = sector_at(offset)?;
        let count = sector_at(len)?;
        if count == 0 {
            return Ok(());
        }
        self.sr()?.discard(uuid, sector, count).map_err(stor_error)
    }

    fn next_allocated(&mut self, uuid: Uuid, from: u64) -> Result<Option<u64>, StorError> {
        self.sr()?.next_allocated(uuid, from).map_err(stor_error)
    }
}

/// The sector at byte `offset`, which must be a sector's start.
fn sector_at(offset: u64) -> Result<u64, StorError> {
    if !offset.is_multiple_of(512) {
        return Err(StorError::Invalid(error_text("not on a sector boundary")));
    }
    Ok(offset / 512)
}

/// A guest VBD's answer for an SR error: a VDI that cannot be written
/// (snapshot, read-only SR) or a range past its end is the request's
/// fault; a device failure or corruption fails it too (the SR has gone
/// read-only and says why to dom0).
fn io_status(r: Result<(), Error>) -> IoStatus {
    match r {
        Ok(()) => IoStatus::Ok,
        Err(e) => {
            log::debug!("VBD I/O refused by the SR: {e:?}");
            IoStatus::Error
        }
    }
}

impl<D: BlockDev> Disks for SrRepo<D> {
    fn info(&self, vdi: Uuid) -> Option<VdiDisk> {
        let SrRepo::Open(sr) = self else {
            return None;
        };
        let info = sr.info(vdi).ok()?;
        Some(VdiDisk {
            sectors: sectors_of(info.virtual_size),
            read_only: info.snapshot || info.read_only || sr.read_only().is_some(),
        })
    }

    fn read(&mut self, vdi: Uuid, sector: u64, buf: &mut [u8]) -> IoStatus {
        match self {
            SrRepo::Open(sr) => io_status(sr.read(vdi, sector, buf)),
            SrRepo::Unusable(_) => IoStatus::Error,
        }
    }

    fn write(&mut self, vdi: Uuid, sector: u64, buf: &[u8]) -> IoStatus {
        match self {
            SrRepo::Open(sr) => io_status(sr.write(vdi, sector, buf)),
            SrRepo::Unusable(_) => IoStatus::Error,
        }
    }

    fn flush(&mut self) -> IoStatus {
        match self {
            SrRepo::Open(sr) => io_status(sr.flush()),
            SrRepo::Unusable(_) => IoStatus::Error,
        }
    }

    fn discard(&mut self, vdi: Uuid, sector: u64, count: u64) -> IoStatus {
        match self {
            SrRepo::Open(sr) => io_status(sr.discard(vdi, sector, count)),
            SrRepo::Unusable(_) => IoStatus::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Server;
    use xcp_sr::fake::MemDisk;
    use xcp_storwire::{Answer, Format, Op, Request};

    fn call<D: BlockDev>(s: &mut Server<SrRepo<D>>, op: Op) -> Result<Answer, StorError> {
        s.handle(Request { id: 1, op }).result
    }

    fn log_of<D: BlockDev>(s: &mut Server<SrRepo<D>>) -> Vec<u8> {
        match call(
            s,
            Op::LogRead {
                offset: 0,
                max: 1 << 20,
            },
        ) {
            Ok(Answer::LogData { bytes, .. }) => bytes,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_blank_disk_is_formatted_once_and_its_log_and_vdis_survive_reopening() {
        let found = open_or_format(MemDisk::new(4096));
        assert!(found.formatted);
        let mut s = Server::new(found.repo, true);
        let append = Op::LogAppend {
            at: 0,
            bytes: b"record one".to_vec(),
        };
        assert_eq!(call(&mut s, append), Ok(Answer::Done));
        assert_eq!(call(&mut s, Op::LogSync), Ok(Answer::Done));
        let vdi = Op::VdiCreate {
            uuid: [5; 16],
            virtual_size: 1 << 20,
        };
        assert_eq!(call(&mut s, vdi), Ok(Answer::Done));
        let SrRepo::Open(sr) = core::mem::replace(s.repo_mut(), SrRepo::Unusable(String::new()))
        else {
            panic!("open");
        };
        let found = open_or_format(sr.into_dev());
        assert!(!found.formatted, "an SR is opened, never formatted again");
        let mut s = Server::new(found.repo, false);
        assert_eq!(log_of(&mut s), b"record one");
        match call(&mut s, Op::VdiList { after: None }) {
            Ok(Answer::Vdis { vdis, more: false }) => {
                assert_eq!(vdis.len(), 1);
                assert_eq!(vdis[0].uuid, [5; 16]);
                assert_eq!(vdis[0].virtual_size, 1 << 20);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_disk_holding_something_else_is_not_formatted() {
        let mut disk = MemDisk::new(4096);
        let mut block = [0u8; xcp_sr::budget::BLOCK_SIZE];
        block[100] = 0xeb;
        disk.write(7, &block).expect("written");
        let found = open_or_format(disk);
        assert!(!found.formatted);
        let mut s = Server::new(found.repo, false);
        match call(&mut s, Op::Status) {
            Ok(Answer::Status(status)) => {
                let why = status.read_only.expect("read-only");
                assert!(why.contains("not an SR"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let append = Op::LogAppend {
            at: 0,
            bytes: b"x".to_vec(),
        };
        assert!(matches!(call(&mut s, append), Err(StorError::ReadOnly(_))));
    }

    #[test]
    fn a_damaged_sr_is_reported_and_not_formatted_over() {
        let found = open_or_format(MemDisk::new(4096));
        let SrRepo::Open(sr) = found.repo else {
            panic!("open");
        };
        let mut disk = sr.into_dev();
        // Both superblock slots scribbled on.
        let junk = [0x5a; xcp_sr::budget::BLOCK_SIZE];
        disk.write(0, &junk).expect("written");
        disk.write(1, &junk).expect("written");
        let found = open_or_format(disk);
        assert!(!found.formatted);
        let mut s = Server::new(found.repo, false);
        match call(&mut s, Op::Status) {
            Ok(Answer::Status(status)) => assert!(status.read_only.is_some()),
            other => panic!("{other:?}"),
        }
    }

    /// Moves `image` into `uuid` in 20,000-byte pieces.
    fn import<D: BlockDev>(s: &mut Server<SrRepo<D>>, uuid: Uuid, format: Format, image: &[u8]) {
        let len = image.len() as u64;
        let Ok(Answer::Transfer { id, .. }) = call(s, Op::ImportBegin { uuid, format, len }) else {
            panic!("begin")
        };
        for chunk in image.chunks(20_000) {
            let bytes = chunk.to_vec();
            assert_eq!(call(s, Op::ImportData { id, bytes }), Ok(Answer::Done));
        }
        assert_eq!(call(s, Op::ImportEnd { id }), Ok(Answer::Done));
    }

    fn export<D: BlockDev>(s: &mut Server<SrRepo<D>>, uuid: Uuid, format: Format) -> Vec<u8> {
        let Ok(Answer::Transfer { id, len }) = call(s, Op::ExportBegin { uuid, format }) else {
            panic!("begin")
        };
        let mut out = Vec::new();
        loop {
            match call(s, Op::ExportData { id, max: 32 * 1024 }) {
                Ok(Answer::Data { bytes }) if bytes.is_empty() => break,
                Ok(Answer::Data { bytes }) => out.extend_from_slice(&bytes),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(out.len() as u64, len);
        out
    }

    #[test]
    fn images_on_the_real_sr_stay_thin_and_survive_reopening() {
        let found = open_or_format(MemDisk::new(16384));
        let mut s = Server::new(found.repo, true);
        let (a, b) = ([1u8; 16], [2u8; 16]);
        for uuid in [a, b] {
            let op = Op::VdiCreate {
                uuid,
                virtual_size: 8 << 20,
            };
            assert_eq!(call(&mut s, op), Ok(Answer::Done));
        }
        // 1 MiB of data, 4 MiB of zeros, 1 MiB of data.
        let mut image = vec![0u8; 6 << 20];
        for (i, b) in image.iter_mut().enumerate() {
            if !(1 << 20..5 << 20).contains(&i) {
                *b = (i * 7 + i / 4096) as u8 | 1;
            }
        }
        import(&mut s, a, Format::Raw, &image);
        let vhd = export(&mut s, a, Format::Vhd);
        import(&mut s, b, Format::Vhd, &vhd);
        let SrRepo::Open(sr) = found_repo(s) else {
            panic!("open")
        };
        // Reopened from the disk: the imports were durable.
        let sr = Sr::open(sr.into_dev()).map_err(|e| e.0).expect("reopen");
        let mut s = Server::new(SrRepo::Open(alloc::boxed::Box::new(sr)), false);
        for uuid in [a, b] {
            let back = export(&mut s, uuid, Format::Raw);
            assert_eq!(&back[..image.len()], &image[..]);
            assert!(back[image.len()..].iter().all(|&x| x == 0));
        }
        let vdis = s.repo_mut().vdis();
        for v in vdis {
            // The 2 MiB of data, and at most a cluster at each edge of the
            // zero run (a piece of the stream may straddle it).
            assert!(
                v.physical_utilisation <= (2 << 20) + 2 * 65536,
                "{v:?}: the zeros are holes"
            );
        }
    }

    fn found_repo<D: BlockDev>(mut s: Server<SrRepo<D>>) -> SrRepo<D> {
        core::mem::replace(s.repo_mut(), SrRepo::Unusable(String::new()))
    }
}
