//! virtio-blk requests that let the caller sleep while the device works.
//!
//! virtio-drivers 0.13's `VirtIOBlk::read_blocks` and `write_blocks` spin
//! on the used ring until the device answers: a driver domain spinning
//! keeps its vCPU from every other domain on that CPU for as long as the
//! disk takes. These submit the request (`*_blocks_nb`), call `wait` until
//! the device has used it (stordom sleeps on its MSI-X event channel
//! there), and complete it: one request in flight, the buffers borrowed
//! until it is done.

use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::Transport;
use virtio_drivers::Hal;

/// Reads whole sectors from `sector` into `buf`, calling `wait` until the
/// device answered.
pub fn read_blocks<H: Hal, T: Transport>(
    blk: &mut VirtIOBlk<H, T>,
    sector: usize,
    buf: &mut [u8],
    mut wait: impl FnMut(),
) -> virtio_drivers::Result {
    let mut req = BlkReq::default();
    let mut resp = BlkResp::default();
    // SAFETY: `req`, `buf` and `resp` are not touched again until
    // `complete_read_blocks` below gets the same three back, and nothing
    // returns before it (`wait` cannot end this function early).
    let token = unsafe { blk.read_blocks_nb(sector, &mut req, buf, &mut resp) }?;
    while blk.peek_used() != Some(token) {
        wait();
    }
    // SAFETY: the same buffers `read_blocks_nb` took for `token`.
    unsafe { blk.complete_read_blocks(token, &req, buf, &mut resp) }
}

/// Writes whole sectors from `sector` on, calling `wait` until the device
/// answered.
pub fn write_blocks<H: Hal, T: Transport>(
    blk: &mut VirtIOBlk<H, T>,
    sector: usize,
    buf: &[u8],
    mut wait: impl FnMut(),
) -> virtio_drivers::Result {
    let mut req = BlkReq::default();
    let mut resp = BlkResp::default();
    // SAFETY: as in `read_blocks`: the buffers stay untouched until
    // `complete_write_blocks` gets them back.
    let token = unsafe { blk.write_blocks_nb(sector, &mut req, buf, &mut resp) }?;
    while blk.peek_used() != Some(token) {
        wait();
    }
    // SAFETY: the same buffers `write_blocks_nb` took for `token`.
    unsafe { blk.complete_write_blocks(token, &req, buf, &mut resp) }
}
