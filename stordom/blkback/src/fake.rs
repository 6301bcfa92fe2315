//! Test doubles (feature `fake`): ring pages of any size, an in-memory grant
//! table, an in-memory disk, and a scripted blkfront.
//!
//! [`FakeGrants`] stands in for `GNTTABOP_copy`: pages are keyed by
//! (domid, gref), and a copy naming a page never granted fails as Xen's
//! would (`GNTST_bad_gntref`). [`run`] does what the board does with a
//! [`DiskIo`] against a [`MemDisk`], and checks every segment against the
//! engine's invariants (inside its page, inside the disk), so a test that
//! runs work through here proves the engine emitted sane work.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use xcp_ring::{FrontRing, RingError, SharedPage};

use crate::io::{DiskIo, IndirectFetch, IoOp, IoStatus};
use crate::wire::{Request, Response, PAGE_SIZE, SECTOR_SIZE};

/// A contiguous run of zeroed pages in memory: a multi-page ring as the
/// board would map it (`xcp_ring::fake::MemPage` is a single page).
pub struct MemPages {
    bytes: RefCell<Vec<u8>>,
}

impl MemPages {
    /// `n` zeroed pages.
    pub fn new(n: usize) -> Self {
        MemPages {
            bytes: RefCell::new(vec![0; n * PAGE_SIZE]),
        }
    }

    /// Writes arbitrary bytes as a hostile peer would; `offset` wraps into
    /// the run and the write is clipped at its end.
    pub fn poke(&self, offset: usize, data: &[u8]) {
        let mut b = self.bytes.borrow_mut();
        if b.is_empty() {
            return;
        }
        let offset = offset % b.len();
        let end = (offset + data.len()).min(b.len());
        b[offset..end].copy_from_slice(&data[..end - offset]);
    }
}

impl SharedPage for MemPages {
    fn len(&self) -> usize {
        self.bytes.borrow().len()
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.bytes.borrow()[offset..offset + out.len()]);
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.bytes.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn load_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }
    fn store_u32(&self, offset: usize, v: u32) {
        self.write(offset, &v.to_le_bytes());
    }
    fn mb(&self) {}
}

/// Granted pages by (domid, gref).
#[derive(Default)]
pub struct FakeGrants {
    pages: BTreeMap<(u16, u32), Box<[u8; PAGE_SIZE]>>,
    /// Copies run so far.
    pub copies: usize,
}

impl FakeGrants {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants a zeroed page, then writes `bytes` at `offset` in it.
    pub fn grant(&mut self, domid: u16, gref: u32, offset: usize, bytes: &[u8]) {
        let page = self
            .pages
            .entry((domid, gref))
            .or_insert_with(|| Box::new([0; PAGE_SIZE]));
        page[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Ends a grant.
    pub fn revoke(&mut self, domid: u16, gref: u32) {
        self.pages.remove(&(domid, gref));
    }

    /// A granted page.
    pub fn page(&self, domid: u16, gref: u32) -> Option<&[u8; PAGE_SIZE]> {
        self.pages.get(&(domid, gref)).map(|p| &**p)
    }

    /// Runs an indirect fetch: the bytes, or `None` when a copy fails.
    /// Panics when the engine asked for more than a page (a test failure).
    pub fn fetch(&mut self, f: &IndirectFetch) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(f.len());
        for &(gref, n) in &f.pages {
            assert!(n > 0 && n <= PAGE_SIZE, "fetch of {n} bytes");
            let page = self.pages.get(&(f.domid, gref))?;
            out.extend_from_slice(&page[..n]);
            self.copies += 1;
        }
        Some(out)
    }
}

/// A disk in memory, with a record of flushes and discards.
pub struct MemDisk {
    /// The bytes (sectors × 512).
    pub bytes: Vec<u8>,
    /// Flushes done.
    pub flushes: usize,
    /// Discards done (the range is zeroed).
    pub discards: usize,
}

impl MemDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn new(sectors: u64) -> Self {
        MemDisk {
            bytes: vec![0; sectors as usize * SECTOR_SIZE],
            flushes: 0,
            discards: 0,
        }
    }
}

/// Does a [`DiskIo`] as the board would: grant copies around the disk
/// operation. Panics when the engine broke an invariant (a segment out of
/// its page, a range out of the disk): that is a test failure.
pub fn run(io: &DiskIo, grants: &mut FakeGrants, disk: &mut MemDisk) -> IoStatus {
    match &io.op {
        IoOp::Read { sector, segments }
        | IoOp::Write {
            sector, segments, ..
        } => {
            let write = matches!(io.op, IoOp::Write { .. });
            let mut at = *sector as usize * SECTOR_SIZE;
            for s in segments {
                let (off, len) = (usize::from(s.offset), usize::from(s.len));
                assert!(len > 0 && off + len <= PAGE_SIZE, "segment {s:?}");
                assert!(at + len <= disk.bytes.len(), "past the disk: {io:?}");
                let Some(page) = grants.pages.get_mut(&(io.domid, s.gref)) else {
                    return IoStatus::Error;
                };
                if write {
                    disk.bytes[at..at + len].copy_from_slice(&page[off..off + len]);
                } else {
                    page[off..off + len].copy_from_slice(&disk.bytes[at..at + len]);
                }
                grants.copies += 1;
                at += len;
            }
            if let IoOp::Write { flush: true, .. } = io.op {
                disk.flushes += 1;
            }
            IoStatus::Ok
        }
        IoOp::Flush => {
            disk.flushes += 1;
            IoStatus::Ok
        }
        IoOp::Discard { sector, count, .. } => {
            let start = *sector as usize * SECTOR_SIZE;
            let end = start + *count as usize * SECTOR_SIZE;
            assert!(end <= disk.bytes.len(), "discard past the disk: {io:?}");
            disk.bytes[start..end].fill(0);
            disk.discards += 1;
            IoStatus::Ok
        }
    }
}

/// A scripted blkfront: the front end of one queue's ring.
pub struct Blkfront<P: SharedPage> {
    /// The ring.
    pub ring: FrontRing<P, Request, Response>,
}

impl<P: SharedPage> Blkfront<P> {
    /// Initialises the shared ring (`SHARED_RING_INIT`), as blkfront does
    /// before it writes `ring-ref`.
    pub fn new(page: P) -> Result<Self, RingError> {
        Ok(Blkfront {
            ring: FrontRing::init(page)?,
        })
    }

    /// Queues requests and pushes them; true when the backend must be
    /// kicked.
    pub fn send(&mut self, requests: &[Request]) -> Result<bool, RingError> {
        for r in requests {
            self.ring.queue_request(r)?;
        }
        Ok(self.ring.push_requests())
    }

    /// Every response published so far.
    pub fn responses(&mut self) -> Result<Vec<Response>, RingError> {
        let mut v = Vec::new();
        while let Some(r) = self.ring.next_response()? {
            v.push(r);
        }
        Ok(v)
    }
}

/// The keys Linux blkfront writes for `queues` queues of `1 << order`
/// pages: queue q's ring page i has gref `first_gref + q × pages + i`,
/// its event channel is `first_port + q`.
pub fn frontend_keys(
    order: u32,
    queues: u32,
    first_gref: u32,
    first_port: u32,
) -> Vec<(String, Vec<u8>)> {
    let mut keys = vec![
        (String::from("protocol"), b"x86_64-abi".to_vec()),
        (String::from("feature-persistent"), b"1".to_vec()),
    ];
    if order > 0 {
        keys.push((String::from("ring-page-order"), format!("{order}").into()));
    }
    if queues > 1 {
        keys.push((
            String::from("multi-queue-num-queues"),
            format!("{queues}").into(),
        ));
    }
    let pages = 1u32 << order;
    for q in 0..queues {
        let p = if queues == 1 {
            String::new()
        } else {
            format!("queue-{q}/")
        };
        if order == 0 {
            keys.push((format!("{p}ring-ref"), format!("{}", first_gref + q).into()));
        } else {
            for i in 0..pages {
                keys.push((
                    format!("{p}ring-ref{i}"),
                    format!("{}", first_gref + q * pages + i).into(),
                ));
            }
        }
        keys.push((
            format!("{p}event-channel"),
            format!("{}", first_port + q).into(),
        ));
    }
    keys
}

/// The values of `keys` found in `store` (as a board reads xenstore:
/// absent keys are left out).
pub fn lookup<'a>(store: &'a [(String, Vec<u8>)], keys: &[String]) -> Vec<(&'a str, &'a [u8])> {
    keys.iter()
        .filter_map(|k| {
            store
                .iter()
                .find(|(n, _)| n == k)
                .map(|(n, v)| (n.as_str(), v.as_slice()))
        })
        .collect()
}
