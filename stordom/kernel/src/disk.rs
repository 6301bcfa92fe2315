//! The SR's block device: virtio-blk through one machine-contiguous DMA
//! buffer. Every transfer goes through the buffer in pieces of at most
//! [`BUFFER_BYTES`], so the device always gets a buffer it can reach in
//! place (no bounce buffer is allocated per request, and no request is
//! larger than the queue's descriptors can carry).
//!
//! While the device works on a read or a write stordom sleeps on the
//! disk's MSI-X event channel (`Irq`), so other domains run; without one
//! it spins. A flush always spins: virtio-drivers 0.13 has no
//! non-blocking flush.

use xcp_runtime::dma::{DmaError, DmaRegion};
use xcp_sr::{BlockDev, DevError};

use crate::domain::Disk;

/// The DMA buffer: 64 KiB (one SR cluster).
pub const BUFFER_BYTES: usize = 64 * 1024;
/// virtio-blk's sector.
const SECTOR: u64 = 512;
/// The SR's block.
const BLOCK: usize = xcp_sr::budget::BLOCK_SIZE;

/// Longest sleep waiting for the disk: a safety net should an interrupt
/// be lost, not the datapath.
pub const SAFETY_POLL_NS: u64 = 10_000_000;

/// The disk's queue interrupt: MSI-X entry 0, bound as `pirq` to `port`.
#[derive(Clone, Copy, Debug)]
pub struct Irq {
    /// The pirq dom0 mapped the entry to.
    pub pirq: u32,
    /// Its event channel.
    pub port: u32,
}

/// The disk as the SR sees it.
pub struct VirtioDisk {
    disk: Disk,
    buffer: DmaRegion,
    blocks: u64,
    irq: Option<Irq>,
    /// Wake-ups by the disk's interrupt.
    interrupts: u64,
}

/// Sleeps until the disk interrupts (or the safety deadline); spins once
/// without an interrupt.
fn wait(irq: Option<Irq>, interrupts: &mut u64) {
    let Some(Irq { pirq, port }) = irq else {
        core::hint::spin_loop();
        return;
    };
    let deadline = xcp_runtime::time::now_ns() + SAFETY_POLL_NS;
    if xcp_runtime::event_loop::poll_one(port, deadline) {
        if let Err(e) = xcp_runtime::evtchn::eoi_pirq(pirq) {
            log::warn!("EOI of pirq {pirq}: {e}");
        }
        *interrupts += 1;
        if *interrupts == 1 {
            // The proof MSI-X works (the QEMU tests look for it).
            log::debug!("first disk interrupt wake-up");
        }
    }
}

impl VirtioDisk {
    /// `disk` of `sectors` 512-byte sectors, with its DMA buffer.
    pub fn new(disk: Disk, sectors: u64, irq: Option<Irq>) -> Result<Self, DmaError> {
        let buffer = DmaRegion::alloc(BUFFER_BYTES / 4096)?;
        Ok(VirtioDisk {
            disk,
            buffer,
            blocks: sectors * SECTOR / BLOCK as u64,
            irq,
            interrupts: 0,
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
            let (irq, interrupts) = (self.irq, &mut self.interrupts);
            xcp_runtime::virtio_blk_io::read_blocks(&mut self.disk, sector_of(at), dma, || {
                wait(irq, interrupts)
            })
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
            let (irq, interrupts) = (self.irq, &mut self.interrupts);
            xcp_runtime::virtio_blk_io::write_blocks(&mut self.disk, sector_of(at), dma, || {
                wait(irq, interrupts)
            })
            .map_err(|_| DevError::Io)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DevError> {
        self.disk.flush().map_err(|_| DevError::Io)
    }
}
