//! The engine's state, its metadata blocks and the commit.
//!
//! read first: DESIGN.md "Commit protocol" and "Copy-on-write".
//!
//! Metadata is copy-on-write: a node that the last commit wrote is never
//! modified; it is copied to a free block, the copy goes into the dirty
//! set, and the old block is freed at the next commit. Blocks and clusters
//! freed before a commit stay marked used in memory until that commit's
//! superblock is durable, so the old tree stays whole on disk until then.
//!
//! The refcount tree counts references to map nodes and data clusters
//! (lazily, as in Rodeh's "B-trees, shadowing and clones"). Its own nodes
//! and the VDI table's blocks have one owner each and are not counted: the
//! open walk finds them. So changing a count never needs another count
//! changed, and there is no allocation recursion.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use crate::budget::{
    BLOCK_SIZE, COMMIT_RUN_BYTES, MAX_CACHED_NODES, MAX_DIRTY_NODES, MAX_FRESH_DATA,
    MAX_PENDING_FREE, MAX_VDIS, NODE_HEADROOM,
};
use crate::dev::{whole_blocks, BlockDev, DevError};
use crate::error::{Corruption, Error, OpenError};
use crate::format::{
    flags, new_node, seal_node, verify_node, Block, Geometry, Record, Superblock, FANOUT, KIND_MAP,
    KIND_TABLE, MAX_MAP_LEVEL, NODE_HEADER, RC_PER_LEAF, RECORDS_PER_BLOCK, RECORD_SIZE,
    TABLE_BLOCKS,
};
use crate::space::Bitmap;

/// A storage repository over a block device.
pub struct Sr<D: BlockDev> {
    pub(crate) dev: D,
    pub(crate) geo: Geometry,
    pub(crate) generation: u64,
    pub(crate) rc_root: u64,
    pub(crate) log_root: u64,
    pub(crate) log_len: u64,
    pub(crate) staging_root: u64,
    pub(crate) vdis: Vec<Option<Record>>,
    pub(crate) table: [u64; TABLE_BLOCKS],
    pub(crate) table_dirty: [bool; TABLE_BLOCKS],
    /// A superblock field changed since the last commit.
    pub(crate) changed: bool,
    pub(crate) meta_used: Bitmap,
    pub(crate) data_used: Bitmap,
    /// Units freed since the last commit.
    pub(crate) pending: Vec<u64>,
    /// Data units allocated since the last commit (safe to overwrite).
    pub(crate) fresh: BTreeSet<u64>,
    pub(crate) dirty: BTreeMap<u64, Box<Block>>,
    cache: BTreeMap<u64, Box<Block>>,
    cache_order: VecDeque<u64>,
    meta_cursor: u64,
    data_cursor: u64,
    pub(crate) max_dirty: usize,
    /// Metadata blocks one step may need (see `step_need`).
    pub(crate) step_need: usize,
    /// Why the SR is read-only, if it is.
    pub(crate) broken: Option<Error>,
}

/// A failed `open`: why, and the device back.
pub type OpenFailed<D> = (OpenError, D);

impl<D: BlockDev> Sr<D> {
    fn empty(dev: D, geo: Geometry) -> Sr<D> {
        // The most nodes one map-node copy can dirty: every refcount-tree
        // node on a small disk, NODE_HEADROOM on a big one. A step copies
        // at most a whole path and then clears one leaf.
        let mut rc_nodes = 0u64;
        let mut per = geo.units().div_ceil(RC_PER_LEAF);
        for _ in 0..=geo.rc_level {
            rc_nodes += per;
            per = per.div_ceil(FANOUT);
        }
        let per_node = (rc_nodes as usize).min(NODE_HEADROOM) + 4;
        let step_need = (usize::from(MAX_MAP_LEVEL) + 2) * per_node + TABLE_BLOCKS + 8;
        Sr {
            dev,
            geo,
            generation: 0,
            rc_root: 0,
            log_root: 0,
            log_len: 0,
            staging_root: 0,
            vdis: vec![None; MAX_VDIS],
            table: [0; TABLE_BLOCKS],
            table_dirty: [false; TABLE_BLOCKS],
            changed: false,
            meta_used: Bitmap::new(geo.meta_blocks),
            data_used: Bitmap::new(geo.data_clusters),
            pending: Vec::new(),
            fresh: BTreeSet::new(),
            dirty: BTreeMap::new(),
            cache: BTreeMap::new(),
            cache_order: VecDeque::new(),
            meta_cursor: 0,
            data_cursor: 0,
            max_dirty: MAX_DIRTY_NODES,
            step_need,
            broken: None,
        }
    }

    /// Formats `dev` as an empty SR (any old SR on it is lost) and opens it.
    pub fn format(mut dev: D) -> Result<Sr<D>, OpenFailed<D>> {
        let Some(geo) = Geometry::for_blocks(dev.blocks()) else {
            return Err((OpenError::TooSmall, dev));
        };
        // Both slots cleared first, so an old SR's newer generation cannot
        // win over the new one; the commit's first flush orders this.
        if let Err(e) = dev.write(0, &[0; 2 * BLOCK_SIZE]) {
            return Err((OpenError::Failed(Error::Device(e)), dev));
        }
        let mut sr = Sr::empty(dev, geo);
        sr.changed = true;
        match sr.commit() {
            Ok(()) => Ok(sr),
            Err(e) => Err((OpenError::Failed(e), sr.dev)),
        }
    }

    /// Opens the SR on `dev`: the newest valid superblock, its refcount
    /// tree (to learn which blocks are used) and its VDI table, each
    /// checked; then finishes any destroy a crash interrupted.
    pub fn open(mut dev: D) -> Result<Sr<D>, OpenFailed<D>> {
        let blocks = dev.blocks();
        let mut best: Option<Superblock> = None;
        let mut damage: Option<Corruption> = None;
        for slot in 0..2u64 {
            let mut b = [0u8; BLOCK_SIZE];
            if blocks <= slot {
                break;
            }
            if let Err(e) = dev.read(slot, &mut b) {
                return Err((OpenError::Failed(Error::Device(e)), dev));
            }
            match Superblock::decode(&b, blocks) {
                Ok(sb) if best.is_none_or(|x| sb.generation > x.generation) => best = Some(sb),
                Ok(_) => {}
                Err("no SR superblock magic") => {}
                Err(what) => damage = Some(Corruption { block: slot, what }),
            }
        }
        let Some(sb) = best else {
            let e = match damage {
                Some(c) => OpenError::Failed(Error::Corrupt(c)),
                None => OpenError::NotFormatted,
            };
            return Err((e, dev));
        };
        let mut sr = Sr::empty(dev, sb.geo);
        sr.generation = sb.generation;
        sr.rc_root = sb.rc_root;
        sr.log_root = sb.log_root;
        sr.log_len = sb.log_len;
        sr.staging_root = sb.staging_root;
        sr.table = sb.table;
        match sr.load_state() {
            Ok(()) => Ok(sr),
            Err(e) => Err((OpenError::Failed(e), sr.dev)),
        }
    }

    fn load_state(&mut self) -> Result<(), Error> {
        self.walk_rc_tree()?;
        for t in 0..TABLE_BLOCKS {
            let b = self.table[t];
            if b == 0 {
                continue;
            }
            let node = *self.node(b, KIND_TABLE, 0)?;
            self.mark_owned(b)?;
            for j in 0..RECORDS_PER_BLOCK {
                let at = NODE_HEADER + j * RECORD_SIZE;
                let rec = Record::decode(&node[at..at + RECORD_SIZE], &self.geo)
                    .map_err(|what| self.corrupt(b, what))?;
                let slot = t * RECORDS_PER_BLOCK + j;
                if let Some(r) = rec {
                    if slot >= MAX_VDIS {
                        return Err(self.corrupt(b, "record past the VDI table's end"));
                    }
                    if self.vdis.iter().flatten().any(|o| o.uuid == r.uuid) {
                        return Err(self.corrupt(b, "two VDIs with one uuid"));
                    }
                    self.vdis[slot] = Some(r);
                }
            }
        }
        let mut roots: Vec<u64> = self.vdis.iter().flatten().map(|r| r.root).collect();
        roots.push(self.log_root);
        roots.push(self.staging_root);
        for root in roots {
            if root != 0 && self.rc_get(self.geo.unit(root))? == 0 {
                return Err(self.corrupt(root, "a root with no refcount"));
            }
        }
        // Finish destroys a crash interrupted (a full metadata area leaves
        // the rest hidden until a later open).
        for slot in 0..MAX_VDIS {
            if self.vdis[slot].is_some_and(|r| r.flags & flags::DELETING != 0) {
                match self.destroy_slot(slot) {
                    Err(Error::NoSpace) => break,
                    r => r?,
                }
            }
        }
        Ok(())
    }

    pub(crate) fn mark_owned(&mut self, b: u64) -> Result<(), Error> {
        if self.meta_used.set(self.geo.unit(b)) {
            Ok(())
        } else {
            Err(self.corrupt(b, "a metadata block used twice"))
        }
    }

    /// Records a corruption: the SR turns read-only.
    pub(crate) fn corrupt(&mut self, block: u64, what: &'static str) -> Error {
        let e = Error::Corrupt(Corruption { block, what });
        self.broken.get_or_insert(e);
        e
    }

    fn device(&mut self, e: DevError) -> Error {
        self.broken.get_or_insert(Error::Device(e));
        Error::Device(e)
    }

    /// Refuses changes once the SR is read-only.
    pub(crate) fn writable(&self) -> Result<(), Error> {
        match self.broken {
            Some(_) => Err(Error::ReadOnly),
            None => Ok(()),
        }
    }

    pub(crate) fn dev_read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), Error> {
        let n = whole_blocks(buf.len()).ok_or(Error::Invalid)?;
        if block
            .checked_add(n)
            .is_none_or(|e| e > self.geo.total_blocks)
        {
            return Err(self.corrupt(block, "read past the SR's end"));
        }
        self.dev.read(block, buf).map_err(|e| self.device(e))
    }

    pub(crate) fn dev_write(&mut self, block: u64, buf: &[u8]) -> Result<(), Error> {
        let n = whole_blocks(buf.len()).ok_or(Error::Invalid)?;
        if block
            .checked_add(n)
            .is_none_or(|e| e > self.geo.total_blocks)
        {
            return Err(self.corrupt(block, "write past the SR's end"));
        }
        self.dev.write(block, buf).map_err(|e| self.device(e))
    }

    /// A metadata node, from the dirty set, the cache or the disk (checked
    /// there); its kind and level are checked on every use, so a pointer
    /// to the wrong node is caught wherever it leads.
    pub(crate) fn node(&mut self, b: u64, kind: u8, level: u8) -> Result<&Block, Error> {
        if !self.geo.is_meta(b) {
            return Err(self.corrupt(b, "node pointer outside the metadata area"));
        }
        if !self.dirty.contains_key(&b) && !self.cache.contains_key(&b) {
            let mut n = Box::new([0u8; BLOCK_SIZE]);
            self.dev_read(b, &mut n[..])?;
            verify_node(&n, b, kind, level).map_err(|what| self.corrupt(b, what))?;
            self.cache_insert(b, n);
        }
        let n = match self.dirty.get(&b).or_else(|| self.cache.get(&b)) {
            Some(n) => n,
            None => return Err(Error::NoMemory),
        };
        if n[4] != kind || n[5] != level {
            let what = if n[4] != kind {
                "node of the wrong kind"
            } else {
                "node at the wrong level"
            };
            self.broken
                .get_or_insert(Error::Corrupt(Corruption { block: b, what }));
            return Err(Error::Corrupt(Corruption { block: b, what }));
        }
        // Reborrow through the maps (the early return above ends the
        // first borrow).
        Ok(self
            .dirty
            .get(&b)
            .or_else(|| self.cache.get(&b))
            .expect("found just above"))
    }

    /// Caches node `b`, which the caller reads next: evicts the oldest
    /// others past [`MAX_CACHED_NODES`], never `b` itself. The order queue
    /// holds stale entries (nodes that left the cache for the dirty set, or
    /// came back later); it is compacted once it is twice the cache.
    fn cache_insert(&mut self, b: u64, n: Box<Block>) {
        if self.cache.insert(b, n).is_none() {
            self.cache_order.push_back(b);
        }
        if self.cache_order.len() > 2 * MAX_CACHED_NODES {
            // Keep each cached node's newest entry only.
            let mut seen = alloc::collections::BTreeSet::new();
            let mut kept = VecDeque::with_capacity(self.cache.len());
            for x in self.cache_order.drain(..).rev() {
                if self.cache.contains_key(&x) && seen.insert(x) {
                    kept.push_front(x);
                }
            }
            self.cache_order = kept;
        }
        // Each turn drops an entry or moves `b`'s to the back: bounded.
        for _ in 0..=self.cache_order.len() {
            if self.cache.len() <= MAX_CACHED_NODES {
                break;
            }
            match self.cache_order.pop_front() {
                Some(old) if old == b => self.cache_order.push_back(old),
                Some(old) => {
                    self.cache.remove(&old);
                }
                None => break,
            }
        }
    }

    /// A node in the dirty set, to modify.
    pub(crate) fn dirty_mut(&mut self, b: u64) -> Result<&mut Block, Error> {
        if !self.dirty.contains_key(&b) {
            return Err(self.corrupt(b, "a node changed twice through aliased pointers"));
        }
        Ok(self.dirty.get_mut(&b).expect("checked just above"))
    }

    pub(crate) fn alloc_meta(&mut self, counted: bool) -> Result<u64, Error> {
        let unit = self
            .meta_used
            .find_free(self.meta_cursor)
            .ok_or(Error::NoSpace)?;
        self.meta_used.set(unit);
        self.meta_cursor = unit + 1;
        let b = self.geo.unit_block(unit);
        self.cache.remove(&b);
        if counted {
            if self.rc_get(unit)? != 0 {
                return Err(self.corrupt(b, "a free block has a refcount"));
            }
            self.rc_set(unit, 1)?;
        }
        Ok(b)
    }

    /// A new, empty map node at `level`, counted once.
    pub(crate) fn new_map_node(&mut self, level: u8) -> Result<u64, Error> {
        let b = self.alloc_meta(true)?;
        self.dirty.insert(b, Box::new(new_node(KIND_MAP, level)));
        Ok(b)
    }

    /// A free data cluster, counted once; returns its first block.
    pub(crate) fn alloc_data(&mut self) -> Result<u64, Error> {
        let c = self
            .data_used
            .find_free(self.data_cursor)
            .ok_or(Error::NoSpace)?;
        self.data_used.set(c);
        self.data_cursor = c + 1;
        let unit = self.geo.meta_blocks + c;
        let b = self.geo.unit_block(unit);
        if self.rc_get(unit)? != 0 {
            return Err(self.corrupt(b, "a free cluster has a refcount"));
        }
        self.rc_set(unit, 1)?;
        self.fresh.insert(unit);
        Ok(b)
    }

    pub(crate) fn has_changes(&self) -> bool {
        self.changed
            || !self.dirty.is_empty()
            || !self.pending.is_empty()
            || !self.fresh.is_empty()
            || self.table_dirty.iter().any(|d| *d)
    }

    /// Makes sure the next step fits: commits early when the dirty set,
    /// the pending frees or the fresh clusters would pass their bounds, or
    /// to get freed space back; refuses with `NoSpace` if even that is not
    /// enough. True if it committed (the caller starts its step again).
    pub(crate) fn make_room(&mut self, data_need: u64) -> Result<bool, Error> {
        self.writable()?;
        let need = self.step_need;
        let over = self.dirty.len() + need > self.max_dirty
            || self.pending.len() + need > MAX_PENDING_FREE
            || self.fresh.len() + need > MAX_FRESH_DATA;
        let short = |s: &Self| {
            s.meta_used.units() - s.meta_used.used() < need as u64
                || s.data_used.units() - s.data_used.used() < data_need
        };
        if (over || short(self)) && self.has_changes() {
            self.commit()?;
            if short(self) {
                return Err(Error::NoSpace);
            }
            return Ok(true);
        }
        if short(self) {
            return Err(Error::NoSpace);
        }
        Ok(false)
    }

    /// Makes every change so far durable: new nodes and the VDI table are
    /// written to free blocks, flush, the superblock into the other slot,
    /// flush; then what the old tree alone used becomes free.
    pub(crate) fn commit(&mut self) -> Result<(), Error> {
        self.writable()?;
        if !self.has_changes() {
            return self.dev.flush().map_err(|e| self.device(e));
        }
        self.write_table()?;
        let dirty = core::mem::take(&mut self.dirty);
        let mut written = Vec::with_capacity(dirty.len());
        // Runs of consecutive blocks go out as one request.
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0;
        for (b, mut n) in dirty {
            seal_node(&mut n, b);
            let next = run_start + (run.len() / BLOCK_SIZE) as u64;
            if !run.is_empty() && (b != next || run.len() >= COMMIT_RUN_BYTES) {
                self.dev_write(run_start, &run)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = b;
            }
            run.extend_from_slice(&n[..]);
            written.push((b, n));
        }
        if !run.is_empty() {
            self.dev_write(run_start, &run)?;
        }
        self.dev.flush().map_err(|e| self.device(e))?;
        let Some(generation) = self.generation.checked_add(1) else {
            return Err(self.corrupt(self.generation % 2, "superblock generation exhausted"));
        };
        let sb = Superblock {
            generation,
            geo: self.geo,
            rc_root: self.rc_root,
            log_root: self.log_root,
            log_len: self.log_len,
            staging_root: self.staging_root,
            table: self.table,
        };
        let slot = sb.generation % 2;
        self.dev_write(slot, &sb.encode())?;
        self.dev.flush().map_err(|e| self.device(e))?;
        self.generation = sb.generation;
        for (b, n) in written {
            self.cache_insert(b, n);
        }
        for unit in core::mem::take(&mut self.pending) {
            let b = self.geo.unit_block(unit);
            self.cache.remove(&b);
            if unit < self.geo.meta_blocks {
                self.meta_used.clear(unit);
            } else {
                self.data_used.clear(unit - self.geo.meta_blocks);
            }
        }
        self.fresh.clear();
        self.changed = false;
        Ok(())
    }

    /// Writes changed VDI table blocks to new blocks.
    fn write_table(&mut self) -> Result<(), Error> {
        for t in 0..TABLE_BLOCKS {
            if !self.table_dirty[t] {
                continue;
            }
            let slots = t * RECORDS_PER_BLOCK..((t + 1) * RECORDS_PER_BLOCK).min(MAX_VDIS);
            let old = self.table[t];
            let nb = if self.vdis[slots.clone()].iter().all(Option::is_none) {
                0
            } else {
                let mut n = new_node(KIND_TABLE, 0);
                for (j, slot) in slots.enumerate() {
                    if let Some(r) = self.vdis[slot] {
                        let at = NODE_HEADER + j * RECORD_SIZE;
                        r.encode(&mut n[at..at + RECORD_SIZE]);
                    }
                }
                let nb = self.alloc_meta(false)?;
                self.dirty.insert(nb, Box::new(n));
                nb
            };
            if old != 0 {
                self.pending.push(self.geo.unit(old));
            }
            self.table[t] = nb;
            self.table_dirty[t] = false;
        }
        Ok(())
    }
}
