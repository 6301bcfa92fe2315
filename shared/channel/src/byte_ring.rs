//! One direction of the channel: a byte ring on one shared page.
//!
//! read first: xs_wire.h (`struct xenstore_domain_interface`),
//! docs/misc/xenstore-ring.txt, and this crate's README.md (page layout).
//!
//! Like the xenstore ring: the producer copies bytes in and advances `prod`;
//! the consumer copies bytes out and advances `cons`; both are free-running
//! u32 and a byte's position is `index & (DATA_SIZE - 1)`. Each side keeps
//! its own index privately and never reads it back from the page; the peer's
//! index is re-read and `prod - cons` is never trusted beyond the data size.
//! No heap: bytes move between caller slices and the page.

use xcp_ring::SharedPage;

/// Offset of `prod` (u32, written by the producer only).
pub const PROD: usize = 0;
/// Offset of `cons` (u32, written by the consumer only).
pub const CONS: usize = 4;
/// Offset of `cons_waiting` (u32, consumer only): nonzero while the consumer
/// sleeps waiting for data; the producer kicks after moving `prod`.
pub const CONS_WAITING: usize = 8;
/// Offset of `prod_waiting` (u32, producer only): nonzero while the producer
/// is blocked for space; the consumer kicks after moving `cons`.
pub const PROD_WAITING: usize = 12;
/// Size of the header; the data area starts here.
pub const HEADER_SIZE: usize = 16;
/// Smallest data area accepted.
pub const MIN_DATA_SIZE: u32 = 16;

/// The peer moved its index out of range: `prod - cons` beyond the data size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexOutOfRange;

/// The page cannot hold a data area of at least [`MIN_DATA_SIZE`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageTooSmall;

/// Data area size for a page of `page_len` bytes: the largest power of two
/// fitting after the header (2048 for one 4096-byte page).
pub fn data_size(page_len: usize) -> Result<u32, PageTooSmall> {
    let room = page_len.saturating_sub(HEADER_SIZE).min(1 << 31) as u32;
    let size = if room == 0 {
        0
    } else {
        1u32 << (31 - room.leading_zeros())
    };
    if size < MIN_DATA_SIZE {
        return Err(PageTooSmall);
    }
    Ok(size)
}

/// Zeroes the header (prod, cons and both waiting flags).
pub fn init_header<P: SharedPage>(page: &P) {
    page.write(0, &[0; HEADER_SIZE]);
}

/// Copies `data` into the ring at free-running index `idx` (may wrap).
fn copy_in<P: SharedPage>(page: &P, size: u32, idx: u32, data: &[u8]) {
    let start = (idx & (size - 1)) as usize;
    let first = data.len().min(size as usize - start);
    page.write(HEADER_SIZE + start, &data[..first]);
    page.write(HEADER_SIZE, &data[first..]);
}

/// Copies `out.len()` bytes out of the ring from index `idx` (may wrap).
fn copy_out<P: SharedPage>(page: &P, size: u32, idx: u32, out: &mut [u8]) {
    let start = (idx & (size - 1)) as usize;
    let first = out.len().min(size as usize - start);
    let (a, b) = out.split_at_mut(first);
    page.read(HEADER_SIZE + start, a);
    page.read(HEADER_SIZE, b);
}

/// The producing end of a byte ring.
pub struct Producer<P: SharedPage> {
    page: P,
    prod: u32,
    size: u32,
    waiting: bool,
}

impl<P: SharedPage> Producer<P> {
    /// Attaches at index 0 (the page header must be zeroed).
    pub fn new(page: P) -> Result<Self, PageTooSmall> {
        let size = data_size(page.len())?;
        Ok(Producer {
            page,
            prod: 0,
            size,
            waiting: false,
        })
    }

    /// The page.
    pub fn page(&self) -> &P {
        &self.page
    }

    /// Data area size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Our private producer index.
    pub fn prod(&self) -> u32 {
        self.prod
    }

    /// Free bytes, after checking the consumer's `cons`.
    pub fn free(&self) -> Result<u32, IndexOutOfRange> {
        let used = self.prod.wrapping_sub(self.page.load_u32(CONS));
        if used > self.size {
            return Err(IndexOutOfRange);
        }
        Ok(self.size - used)
    }

    /// Copies as much of `data` as fits, then publishes `prod` (Release).
    /// Returns the number of bytes written.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, IndexOutOfRange> {
        let n = (self.free()? as usize).min(data.len());
        if n == 0 {
            return Ok(0);
        }
        copy_in(&self.page, self.size, self.prod, &data[..n]);
        self.prod = self.prod.wrapping_add(n as u32);
        self.page.store_u32(PROD, self.prod);
        Ok(n)
    }

    /// After publishing: does the consumer sleep waiting for data? (Full
    /// barrier first, like RING_PUSH_*_AND_CHECK_NOTIFY.)
    pub fn consumer_waiting(&self) -> bool {
        self.page.mb();
        self.page.load_u32(CONS_WAITING) != 0
    }

    /// Sets or clears `prod_waiting` (written only when it changes). Setting
    /// is followed by a full barrier: re-check [`Self::free`] before sleeping.
    pub fn set_waiting(&mut self, waiting: bool) {
        if self.waiting != waiting {
            self.page.store_u32(PROD_WAITING, waiting as u32);
            self.waiting = waiting;
        }
        if waiting {
            self.page.mb();
        }
    }
}

/// The consuming end of a byte ring.
pub struct Consumer<P: SharedPage> {
    page: P,
    cons: u32,
    size: u32,
    waiting: bool,
}

impl<P: SharedPage> Consumer<P> {
    /// Attaches at index 0 (the page header must be zeroed).
    pub fn new(page: P) -> Result<Self, PageTooSmall> {
        let size = data_size(page.len())?;
        Ok(Consumer {
            page,
            cons: 0,
            size,
            waiting: false,
        })
    }

    /// The page.
    pub fn page(&self) -> &P {
        &self.page
    }

    /// Data area size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Our private consumer index.
    pub fn cons(&self) -> u32 {
        self.cons
    }

    /// Bytes available, after checking the producer's `prod` (Acquire).
    pub fn available(&self) -> Result<u32, IndexOutOfRange> {
        let avail = self.page.load_u32(PROD).wrapping_sub(self.cons);
        if avail > self.size {
            return Err(IndexOutOfRange);
        }
        Ok(avail)
    }

    /// Copies up to `out.len()` available bytes out, then publishes `cons`.
    /// Returns the number of bytes read.
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, IndexOutOfRange> {
        let n = (self.available()? as usize).min(out.len());
        if n == 0 {
            return Ok(0);
        }
        copy_out(&self.page, self.size, self.cons, &mut out[..n]);
        self.cons = self.cons.wrapping_add(n as u32);
        self.page.store_u32(CONS, self.cons);
        Ok(n)
    }

    /// After publishing `cons`: is the producer blocked for space?
    pub fn producer_waiting(&self) -> bool {
        self.page.mb();
        self.page.load_u32(PROD_WAITING) != 0
    }

    /// Sets or clears `cons_waiting` (written only when it changes). Setting
    /// is followed by a full barrier: re-check [`Self::available`] before
    /// sleeping (RING_FINAL_CHECK_FOR_*).
    pub fn set_waiting(&mut self, waiting: bool) {
        if self.waiting != waiting {
            self.page.store_u32(CONS_WAITING, waiting as u32);
            self.waiting = waiting;
        }
        if waiting {
            self.page.mb();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xcp_ring::fake::MemPage;

    #[test]
    fn geometry() {
        assert_eq!(data_size(4096), Ok(2048));
        assert_eq!(data_size(8192), Ok(4096));
        assert_eq!(data_size(4112), Ok(4096));
        assert_eq!(data_size(31), Err(PageTooSmall));
        assert_eq!(data_size(32), Ok(16));
    }

    #[test]
    fn bytes_wrap_at_data_end() {
        let page = MemPage::new();
        let mut p = Producer::new(&page).unwrap();
        let mut c = Consumer::new(&page).unwrap();
        let mut buf = [0u8; 2048];
        assert_eq!(p.write(&[1; 2040]), Ok(2040));
        assert_eq!(c.read(&mut buf), Ok(2040));
        assert_eq!(p.write(&[2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), Ok(10));
        let snap = page.snapshot();
        assert_eq!(snap[0..8], [0x02, 0x08, 0, 0, 0xf8, 0x07, 0, 0]); // prod 2050, cons 2040
        assert_eq!(snap[16 + 2040..16 + 2048], [2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(snap[16..18], [10, 11]);
        assert_eq!(c.read(&mut buf[..4]), Ok(4));
        assert_eq!(buf[..4], [2, 3, 4, 5]);
        assert_eq!(c.read(&mut buf), Ok(6));
        assert_eq!(buf[..6], [6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn full_and_out_of_range() {
        let page = MemPage::new();
        let mut p = Producer::new(&page).unwrap();
        let c = Consumer::new(&page).unwrap();
        assert_eq!(p.write(&[0; 3000]), Ok(2048));
        assert_eq!(p.write(&[0; 1]), Ok(0));
        page.store_u32(CONS, 5); // consumer beyond what we produced? no: 2048-5 used
        assert_eq!(p.free(), Ok(5));
        page.store_u32(CONS, 2049); // cons past prod
        assert_eq!(p.free(), Err(IndexOutOfRange));
        page.store_u32(PROD, 2049);
        assert_eq!(c.available(), Err(IndexOutOfRange));
        page.store_u32(PROD, u32::MAX);
        assert_eq!(c.available(), Err(IndexOutOfRange));
    }

    #[test]
    fn waiting_flags_at_documented_offsets() {
        let page = MemPage::new();
        let mut p = Producer::new(&page).unwrap();
        let mut c = Consumer::new(&page).unwrap();
        c.set_waiting(true);
        assert_eq!(page.load_u32(CONS_WAITING), 1);
        assert!(p.consumer_waiting());
        p.set_waiting(true);
        assert_eq!(page.load_u32(PROD_WAITING), 1);
        assert!(c.producer_waiting());
        c.set_waiting(false);
        p.set_waiting(false);
        assert_eq!(page.snapshot()[..16], [0; 16]);
    }
}
