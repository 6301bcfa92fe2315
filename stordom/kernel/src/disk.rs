//! The SR's block device: virtio-blk through one machine-contiguous DMA
//! buffer. Every transfer goes through the buffer in pieces of at most
//! [`BUFFER_BYTES`], so the device always gets a buffer it can reach in
//! place (no bounce buffer is allocated per request, and no request is
//! larger than the queue's descriptors can carry).

use xcp_runtime::dma::{DmaError, DmaRegion};
use xcp_sr::{BlockDev, DevError};

use crate::domain::Disk;

/// The DMA buffer: 64 KiB (one SR cluster).
pub const BUFFER_BYTES: usize = 64 * 1024;
/// virtio-blk's sector.
const SECTOR: u64 = 512;
/// The SR's block.
const BLOCK: usize = xcp_sr::budget::BLOCK_SIZE;

/// The disk as the SR sees it.
pub struct VirtioDisk {
    disk: Disk,
    buffer: DmaRegion,
    blocks: u64,
}

impl VirtioDisk {
    /// `disk` of `sectors` 512-byte sectors, with its DMA buffer.
    pub fn new(disk: Disk, sectors: u64) -> Result<Self, DmaError> {
        let buffer = DmaRegion::alloc(BUFFER_BYTES / 4096)?;
        Ok(VirtioDisk {
            disk,
            buffer,
            blocks: sectors * SECTOR / BLOCK as u64,
        })
    }

    fn check(&self, block: u64, len: usize) -> Result<(), DevError> {
        let blocks = (len / BLOCK) as u64;
        if !len.is_multiple_of(BLOCK)
            || block
                .checked_add(blocks)
                .is_none_or(|end| end > self.blocks)
        {
            return Err(DevError::OutOfRange);
        }
        Ok(())
    }
}

fn sector_of(block: u64) -> usize {
    (block * (BLOCK as u64 / SECTOR)) as usize
}

impl BlockDev for VirtioDisk {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
        self.check(block, buf.len())?;
        for (i, piece) in buf.chunks_mut(BUFFER_BYTES).enumerate() {
            let at = block + (i * BUFFER_BYTES / BLOCK) as u64;
            let dma = &mut self.buffer.bytes_mut()[..piece.len()];
            self.disk
                .read_blocks(sector_of(at), dma)
                .map_err(|_| DevError::Io)?;
            piece.copy_from_slice(dma);
        }
        Ok(())
    }

    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), DevError> {
        self.check(block, buf.len())?;
        for (i, piece) in buf.chunks(BUFFER_BYTES).enumerate() {
            let at = block + (i * BUFFER_BYTES / BLOCK) as u64;
            let dma = &mut self.buffer.bytes_mut()[..piece.len()];
            dma.copy_from_slice(piece);
            self.disk
                .write_blocks(sector_of(at), dma)
                .map_err(|_| DevError::Io)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DevError> {
        self.disk.flush().map_err(|_| DevError::Io)
    }
}
