//! `check`: the fsck. Walks every tree and verifies the SR's invariants.
//!
//! read first: DESIGN.md "Hostile metadata".
//!
//! 1. Every refcount equals the references to its unit: from VDI records,
//!    the log and staging roots, and the entries of every map node
//!    reachable from them (each node's entries counted once, however many
//!    parents share it).
//! 2. Every block is free xor used: used in memory exactly when counted,
//!    owned (a refcount-tree node or a VDI table block, referenced by no
//!    map), or freed since the last commit.
//! 3. Sizes agree: a VDI maps nothing past its virtual size and its
//!    allocation equals the clusters its map points to; the log maps
//!    nothing past its length.
//!
//! Counting is done [`CHECK_WINDOW`] units at a time, one walk per window,
//! so its memory stays bounded on a large disk.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use crate::budget::{CHECK_WINDOW, CLUSTER_SIZE};
use crate::error::Error;
use crate::format::{
    entry, flags, map_cover, FANOUT, KIND_MAP, KIND_RC, KIND_TABLE, LOG_LEVEL, TABLE_BLOCKS,
};
use crate::space::Bitmap;
use crate::store::Sr;
use crate::BlockDev;

/// What `check` found (it found nothing wrong).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Metadata blocks in use.
    pub metadata_blocks: u64,
    /// Data clusters in use.
    pub data_clusters: u64,
    /// Distinct map nodes reachable.
    pub map_nodes: u64,
    /// Walks over the trees (one per window of units).
    pub passes: u32,
}

impl<D: BlockDev> Sr<D> {
    /// Walks everything and verifies the invariants (module docs of
    /// `check.rs`); a violation is a corruption (the SR turns read-only).
    pub fn check(&mut self) -> Result<CheckReport, Error> {
        let owned = self.owned_blocks()?;
        let pending: BTreeSet<u64> = self.pending.iter().copied().collect();
        let roots = self.roots();
        let units = self.geo.units();
        let mut report = CheckReport {
            metadata_blocks: self.meta_used.used(),
            data_clusters: self.data_used.used(),
            map_nodes: 0,
            passes: 0,
        };
        let mut w0 = 0;
        while w0 < units {
            let w1 = (w0 + CHECK_WINDOW).min(units);
            let counts = self.count_refs(&roots, w0, w1, &mut report.map_nodes)?;
            report.passes += 1;
            for u in w0..w1 {
                let b = self.geo.unit_block(u);
                let refs = counts[(u - w0) as usize];
                if self.rc_get(u)? != refs {
                    return Err(self.corrupt(b, "refcount differs from the references found"));
                }
                let is_owned = u < self.geo.meta_blocks && owned.get(u);
                if is_owned && refs > 0 {
                    return Err(self.corrupt(b, "an owned block is also referenced by a map"));
                }
                let used = if u < self.geo.meta_blocks {
                    self.meta_used.get(u)
                } else {
                    self.data_used.get(u - self.geo.meta_blocks)
                };
                let should = refs > 0 || is_owned || pending.contains(&u);
                if used != should {
                    let what = if used {
                        "a used block nothing references (leak)"
                    } else {
                        "a referenced block is marked free"
                    };
                    return Err(self.corrupt(b, what));
                }
            }
            w0 = w1;
        }
        self.check_sizes()?;
        Ok(report)
    }

    /// Every map root with its level.
    fn roots(&self) -> Vec<(u64, u8)> {
        let mut roots: Vec<(u64, u8)> = self
            .vdis
            .iter()
            .flatten()
            .map(|r| (r.root, r.level))
            .collect();
        roots.push((self.log_root, LOG_LEVEL));
        roots.push((self.staging_root, LOG_LEVEL));
        roots.retain(|(b, _)| *b != 0);
        roots
    }

    /// Refcount-tree nodes and table blocks, each owned once.
    fn owned_blocks(&mut self) -> Result<Bitmap, Error> {
        let mut owned = Bitmap::new(self.geo.meta_blocks);
        let mut stack = Vec::new();
        if self.rc_root != 0 {
            stack.push((self.rc_root, self.geo.rc_level));
        }
        while let Some((b, level)) = stack.pop() {
            let n = *self.node(b, KIND_RC, level)?;
            if !owned.set(self.geo.unit(b)) {
                return Err(self.corrupt(b, "a refcount node reached twice"));
            }
            if level > 0 {
                for i in 0..FANOUT as usize {
                    let c = entry(&n, i);
                    if c != 0 {
                        stack.push((c, level - 1));
                    }
                }
            }
        }
        for t in 0..TABLE_BLOCKS {
            let b = self.table[t];
            if b != 0 {
                self.node(b, KIND_TABLE, 0)?;
                if !owned.set(self.geo.unit(b)) {
                    return Err(self.corrupt(b, "a table block used twice"));
                }
            }
        }
        Ok(owned)
    }

    /// References to units in `[w0, w1)`.
    fn count_refs(
        &mut self,
        roots: &[(u64, u8)],
        w0: u64,
        w1: u64,
        nodes: &mut u64,
    ) -> Result<Vec<u16>, Error> {
        let mut counts = vec![0u16; (w1 - w0) as usize];
        let mut visited = Bitmap::new(self.geo.meta_blocks);
        let mut stack = Vec::new();
        for &(root, level) in roots {
            self.add_ref(&mut counts, w0, w1, root)?;
            if visited.set(self.geo.unit(root)) {
                stack.push((root, level));
            }
        }
        *nodes = 0;
        while let Some((b, level)) = stack.pop() {
            *nodes += 1;
            let n = *self.node(b, KIND_MAP, level)?;
            for i in 0..FANOUT as usize {
                let e = entry(&n, i);
                self.check_ptr(b, level, e)?;
                if e == 0 {
                    continue;
                }
                self.add_ref(&mut counts, w0, w1, e)?;
                if level > 0 && visited.set(self.geo.unit(e)) {
                    stack.push((e, level - 1));
                }
            }
        }
        Ok(counts)
    }

    fn add_ref(&mut self, counts: &mut [u16], w0: u64, w1: u64, b: u64) -> Result<(), Error> {
        let u = self.geo.unit(b);
        if (w0..w1).contains(&u) {
            let c = &mut counts[(u - w0) as usize];
            *c = c
                .checked_add(1)
                .ok_or(Error::TooShared)
                .map_err(|_| self.corrupt(b, "more than 65535 references"))?;
        }
        Ok(())
    }

    /// Nothing mapped past a VDI's size or the log's length; allocations
    /// equal what the maps point to.
    fn check_sizes(&mut self) -> Result<(), Error> {
        let cl = CLUSTER_SIZE as u64;
        for slot in 0..self.vdis.len() {
            let Some(r) = self.vdis[slot] else { continue };
            let limit = r.virtual_size.div_ceil(cl);
            let mapped = self.mapped_below(r.root, r.level, limit)?;
            if r.flags & flags::DELETING == 0 && mapped != r.allocated {
                let b = self.table[slot / crate::format::RECORDS_PER_BLOCK];
                return Err(self.corrupt(b, "VDI allocation differs from its map"));
            }
        }
        let limit = self.log_len.div_ceil(cl);
        self.mapped_below(self.log_root, LOG_LEVEL, limit)?;
        Ok(())
    }

    /// Clusters mapped under `root`; an error if any is at or past `limit`.
    fn mapped_below(&mut self, root: u64, level: u8, limit: u64) -> Result<u64, Error> {
        if root == 0 {
            return Ok(0);
        }
        if limit > map_cover(level) {
            return Err(self.corrupt(root, "map too shallow for its size"));
        }
        let mut mapped = 0;
        let mut stack = vec![(root, level, 0u64)];
        while let Some((b, level, first)) = stack.pop() {
            let n = *self.node(b, KIND_MAP, level)?;
            let span = if level == 0 { 1 } else { map_cover(level - 1) };
            for i in 0..FANOUT {
                let e = entry(&n, i as usize);
                if e == 0 {
                    continue;
                }
                let at = first + i * span;
                if at >= limit {
                    return Err(self.corrupt(b, "a mapping past the end"));
                }
                if level == 0 {
                    mapped += 1;
                } else {
                    stack.push((e, level - 1, at));
                }
            }
        }
        Ok(mapped)
    }
}
