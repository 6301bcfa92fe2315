//! The VDI operations: create, destroy, resize, snapshot, clone, I/O in
//! sectors, discard, flush, and the accounting.
//!
//! read first: DESIGN.md "API".

use alloc::vec::Vec;

use crate::budget::{CLUSTER_SIZE, MAX_DIRTY_NODES, MAX_VDI_SIZE, SECTOR_SIZE};
use crate::error::Error;
use crate::format::{flags, level_for, map_cover, Record, RECORDS_PER_BLOCK};
use crate::store::Sr;
use crate::tree::Tree;
use crate::BlockDev;

/// A VDI's 16-byte id, chosen by the caller.
pub type Uuid = [u8; 16];

/// What `info` tells about a VDI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VdiInfo {
    /// Its id.
    pub uuid: Uuid,
    /// Virtual size in bytes.
    pub virtual_size: u64,
    /// Bytes of data clusters its map points to (shared ones included).
    pub physical_utilisation: u64,
    /// A snapshot (read-only).
    pub snapshot: bool,
    /// Writes are refused.
    pub read_only: bool,
    /// The VDI it was snapshotted or cloned from.
    pub parent: Option<Uuid>,
}

/// What `sr_info` tells about the SR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrInfo {
    /// Bytes of the disk the SR uses.
    pub physical_size: u64,
    /// Bytes allocated: superblocks, metadata blocks and data clusters
    /// (blocks freed since the last flush still count).
    pub physical_utilisation: u64,
    /// Sum of the VDIs' virtual sizes (snapshots included).
    pub virtual_allocation: u64,
    /// VDIs (snapshots included).
    pub vdis: usize,
    /// Why the SR is read-only, if it is.
    pub read_only: Option<Error>,
}

impl<D: BlockDev> Sr<D> {
    pub(crate) fn slot(&self, uuid: &Uuid) -> Result<usize, Error> {
        self.vdis
            .iter()
            .position(|r| r.is_some_and(|r| r.uuid == *uuid && r.flags & flags::DELETING == 0))
            .ok_or(Error::NotFound)
    }

    fn new_slot(&self, uuid: &Uuid) -> Result<usize, Error> {
        if *uuid == [0; 16] {
            return Err(Error::Invalid);
        }
        if self.vdis.iter().flatten().any(|r| r.uuid == *uuid) {
            return Err(Error::Exists);
        }
        self.vdis
            .iter()
            .position(Option::is_none)
            .ok_or(Error::TooManyVdis)
    }

    fn put(&mut self, slot: usize, r: Option<Record>) {
        self.vdis[slot] = r;
        self.table_dirty[slot / RECORDS_PER_BLOCK] = true;
    }

    /// Creates an empty VDI of `virtual_size` bytes (a multiple of 512).
    pub fn create(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), Error> {
        self.writable()?;
        check_size(virtual_size)?;
        let slot = self.new_slot(&uuid)?;
        self.make_room(0)?;
        let r = Record {
            uuid,
            virtual_size,
            root: 0,
            allocated: 0,
            level: level_for(virtual_size.div_ceil(CLUSTER_SIZE as u64)),
            flags: 0,
            parent: [0; 16],
        };
        self.put(slot, Some(r));
        Ok(())
    }

    /// Destroys a VDI; its clusters are freed unless shared.
    pub fn destroy(&mut self, uuid: Uuid) -> Result<(), Error> {
        self.writable()?;
        let slot = self.slot(&uuid)?;
        self.destroy_slot(slot)
    }

    /// Marks the record deleting (so a crash midway finishes the destroy
    /// at open), unmaps everything, drops the record.
    pub(crate) fn destroy_slot(&mut self, slot: usize) -> Result<(), Error> {
        self.make_room(0)?;
        let Some(mut r) = self.vdis[slot] else {
            return Ok(());
        };
        r.flags |= flags::DELETING;
        self.put(slot, Some(r));
        if r.root != 0 {
            if self.rc_get(self.geo.unit(r.root))? > 1 {
                self.set_root(Tree::Vdi(slot), 0);
                self.decref(r.root)?;
            } else {
                self.discard_clusters(Tree::Vdi(slot), 0, map_cover(r.level), false)?;
            }
        }
        self.put(slot, None);
        Ok(())
    }

    /// Grows a VDI; shrinking is refused.
    pub fn resize(&mut self, uuid: Uuid, new_size: u64) -> Result<(), Error> {
        self.writable()?;
        check_size(new_size)?;
        let slot = self.slot(&uuid)?;
        let Some(mut r) = self.vdis[slot] else {
            return Err(Error::NotFound);
        };
        if new_size < r.virtual_size {
            return Err(Error::Shrink);
        }
        self.make_room(0)?;
        let want = level_for(new_size.div_ceil(CLUSTER_SIZE as u64));
        while r.level < want {
            // A new root above the old one; the old root's one reference
            // moves from the record to the new root.
            if r.root != 0 {
                let nb = self.new_map_node(r.level + 1)?;
                crate::format::set_entry(self.dirty_mut(nb)?, 0, r.root);
                r.root = nb;
            }
            r.level += 1;
        }
        r.virtual_size = new_size;
        self.put(slot, Some(r));
        Ok(())
    }

    /// A read-only snapshot of `src`, sharing its map (O(1)).
    pub fn snapshot(&mut self, src: Uuid, new: Uuid) -> Result<(), Error> {
        self.share(src, new, flags::SNAPSHOT | flags::READ_ONLY)
    }

    /// A writable clone of `src`, sharing its map (O(1)).
    pub fn clone_vdi(&mut self, src: Uuid, new: Uuid) -> Result<(), Error> {
        self.share(src, new, 0)
    }

    fn share(&mut self, src: Uuid, new: Uuid, flags: u8) -> Result<(), Error> {
        self.writable()?;
        let from = self.slot(&src)?;
        let slot = self.new_slot(&new)?;
        let Some(r) = self.vdis[from] else {
            return Err(Error::NotFound);
        };
        self.make_room(0)?;
        if r.root != 0 {
            self.incref(r.root)?;
        }
        self.put(
            slot,
            Some(Record {
                uuid: new,
                flags,
                parent: src,
                ..r
            }),
        );
        Ok(())
    }

    /// The VDIs' ids, in table order.
    pub fn list(&self) -> Vec<Uuid> {
        self.vdis
            .iter()
            .flatten()
            .filter(|r| r.flags & flags::DELETING == 0)
            .map(|r| r.uuid)
            .collect()
    }

    /// What is known about one VDI.
    pub fn info(&self, uuid: Uuid) -> Result<VdiInfo, Error> {
        let r = self.vdis[self.slot(&uuid)?].ok_or(Error::NotFound)?;
        Ok(VdiInfo {
            uuid,
            virtual_size: r.virtual_size,
            physical_utilisation: r.allocated * CLUSTER_SIZE as u64,
            snapshot: r.flags & flags::SNAPSHOT != 0,
            read_only: r.flags & flags::READ_ONLY != 0,
            parent: (r.parent != [0; 16]).then_some(r.parent),
        })
    }

    /// The slot and byte range of sector I/O, checked.
    fn io(&self, uuid: &Uuid, sector: u64, len: u64) -> Result<(usize, u64), Error> {
        let slot = self.slot(uuid)?;
        let r = self.vdis[slot].ok_or(Error::NotFound)?;
        if !len.is_multiple_of(SECTOR_SIZE as u64) {
            return Err(Error::Invalid);
        }
        let start = sector
            .checked_mul(SECTOR_SIZE as u64)
            .ok_or(Error::OutOfRange)?;
        if start.checked_add(len).is_none_or(|e| e > r.virtual_size) {
            return Err(Error::OutOfRange);
        }
        Ok((slot, start))
    }

    fn io_writable(&self, uuid: &Uuid, sector: u64, len: u64) -> Result<(usize, u64), Error> {
        self.writable()?;
        let (slot, start) = self.io(uuid, sector, len)?;
        if self.vdis[slot].is_some_and(|r| r.flags & flags::READ_ONLY != 0) {
            return Err(Error::VdiReadOnly);
        }
        Ok((slot, start))
    }

    /// Reads whole sectors from `sector` on; never-written ones are zero.
    pub fn read(&mut self, uuid: Uuid, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        let (slot, start) = self.io(&uuid, sector, buf.len() as u64)?;
        self.read_at(Tree::Vdi(slot), start, buf)
    }

    /// Writes whole sectors from `sector` on (durable at the next flush).
    pub fn write(&mut self, uuid: Uuid, sector: u64, buf: &[u8]) -> Result<(), Error> {
        let (slot, start) = self.io_writable(&uuid, sector, buf.len() as u64)?;
        self.write_at(Tree::Vdi(slot), start, buf)
    }

    /// Discards `count` sectors from `sector` on: they read zero after.
    /// Clusters wholly covered are freed (or their share dropped); the
    /// covered part of a partly covered cluster is zeroed.
    pub fn discard(&mut self, uuid: Uuid, sector: u64, count: u64) -> Result<(), Error> {
        let len = count
            .checked_mul(SECTOR_SIZE as u64)
            .ok_or(Error::OutOfRange)?;
        let (slot, start) = self.io_writable(&uuid, sector, len)?;
        let size = self.vdis[slot].map_or(0, |r| r.virtual_size);
        let end = start + len;
        let cl = CLUSTER_SIZE as u64;
        // The last cluster counts as whole when the range reaches the end.
        let whole_end = if end == size {
            end.div_ceil(cl)
        } else {
            end / cl
        };
        let whole_start = start.div_ceil(cl);
        let t = Tree::Vdi(slot);
        let zeros = alloc::vec![0u8; CLUSTER_SIZE];
        if whole_start >= whole_end {
            // Within one or two clusters, none whole.
            let mut pos = start;
            while pos < end {
                let (c, off) = (pos / cl, (pos % cl) as usize);
                let n = (cl - off as u64).min(end - pos) as usize;
                self.write_cluster(t, c, off, &zeros[..n], true)?;
                pos += n as u64;
            }
            return Ok(());
        }
        if start < whole_start * cl {
            let off = (start % cl) as usize;
            self.write_cluster(t, start / cl, off, &zeros[..CLUSTER_SIZE - off], true)?;
        }
        if end > whole_end * cl {
            let n = (end - whole_end * cl) as usize;
            self.write_cluster(t, whole_end, 0, &zeros[..n], true)?;
        }
        self.discard_clusters(t, whole_start, whole_end, true)
    }

    /// The byte offset of the first data cluster ([`CLUSTER_SIZE`] bytes)
    /// at or after byte `from` that VDI `uuid` holds, if any: unwritten
    /// and discarded clusters read zero and are skipped (an export leaves
    /// them out).
    pub fn next_allocated(&mut self, uuid: Uuid, from: u64) -> Result<Option<u64>, Error> {
        let slot = self.slot(&uuid)?;
        let size = self.vdis[slot].map_or(0, |r| r.virtual_size);
        let cl = CLUSTER_SIZE as u64;
        let found = self.next_mapped(Tree::Vdi(slot), from / cl, size.div_ceil(cl))?;
        Ok(found.map(|c| (c * cl).max(from)))
    }

    /// Commits: when it returns Ok, every earlier write and change is
    /// durable.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.commit()
    }

    /// The SR's size and use.
    pub fn sr_info(&self) -> SrInfo {
        let bs = crate::budget::BLOCK_SIZE as u64;
        SrInfo {
            physical_size: self.geo.total_blocks * bs,
            physical_utilisation: (2 + self.meta_used.used()) * bs
                + self.data_used.used() * CLUSTER_SIZE as u64,
            virtual_allocation: self
                .vdis
                .iter()
                .flatten()
                .filter(|r| r.flags & flags::DELETING == 0)
                .map(|r| r.virtual_size)
                .sum(),
            vdis: self.list().len(),
            read_only: self.broken,
        }
    }

    /// Why the SR is read-only, if it is.
    pub fn read_only(&self) -> Option<Error> {
        self.broken
    }

    /// Lowers the dirty-node bound (a board short of memory; tests that
    /// want early commits). Never above [`MAX_DIRTY_NODES`].
    pub fn limit_dirty(&mut self, nodes: usize) {
        self.max_dirty = nodes.min(MAX_DIRTY_NODES);
    }

    /// Gives the device back.
    pub fn into_dev(self) -> D {
        self.dev
    }

    /// The device, to inspect (tests count its writes).
    pub fn dev(&self) -> &D {
        &self.dev
    }
}

fn check_size(size: u64) -> Result<(), Error> {
    if !size.is_multiple_of(SECTOR_SIZE as u64) {
        return Err(Error::Invalid);
    }
    if size > MAX_VDI_SIZE {
        return Err(Error::TooLarge);
    }
    Ok(())
}
