//! The refcount tree: counts of map nodes and data clusters.
//!
//! read first: DESIGN.md "Format" (units) and "Copy-on-write".
//!
//! One radix tree indexed by unit (metadata blocks, then data clusters);
//! leaves hold 2032 `u16` counts, interior nodes 508 pointers, the depth
//! fixed by the disk size. Its own nodes have one owner (this tree) and
//! are not counted, so changing a count copies at most one path of this
//! tree and never changes another count.

use alloc::boxed::Box;
use alloc::vec;

use crate::error::Error;
use crate::format::{
    count, entry, index_at, new_node, set_count, set_entry, FANOUT, KIND_RC, RC_PER_LEAF,
};
use crate::store::Sr;
use crate::BlockDev;

impl<D: BlockDev> Sr<D> {
    /// Marks every refcount-tree node used and every counted unit used.
    pub(crate) fn walk_rc_tree(&mut self) -> Result<(), Error> {
        if self.rc_root == 0 {
            return Ok(());
        }
        // (block, level, first leaf key under it)
        let mut stack = vec![(self.rc_root, self.geo.rc_level, 0u64)];
        while let Some((b, level, key)) = stack.pop() {
            let node = *self.node(b, KIND_RC, level)?;
            self.mark_owned(b)?;
            if level == 0 {
                for i in 0..RC_PER_LEAF {
                    if count(&node, i as usize) == 0 {
                        continue;
                    }
                    let unit = key * RC_PER_LEAF + i;
                    if unit >= self.geo.units() {
                        return Err(self.corrupt(b, "refcount for a unit past the disk"));
                    }
                    let fresh = if unit < self.geo.meta_blocks {
                        self.meta_used.set(unit)
                    } else {
                        self.data_used.set(unit - self.geo.meta_blocks)
                    };
                    if !fresh {
                        return Err(self.corrupt(b, "a counted block is also a refcount node"));
                    }
                }
                continue;
            }
            let span = FANOUT.pow(u32::from(level) - 1);
            for i in 0..FANOUT {
                let child = entry(&node, i as usize);
                if child != 0 {
                    if !self.geo.is_meta(child) {
                        return Err(self.corrupt(b, "refcount child outside the metadata area"));
                    }
                    stack.push((child, level - 1, key + i * span));
                }
            }
        }
        Ok(())
    }

    /// The count of a unit.
    pub(crate) fn rc_get(&mut self, unit: u64) -> Result<u16, Error> {
        let (mut b, mut level) = (self.rc_root, self.geo.rc_level);
        let leaf = unit / RC_PER_LEAF;
        loop {
            if b == 0 {
                return Ok(0);
            }
            let n = self.node(b, KIND_RC, level)?;
            if level == 0 {
                return Ok(count(n, (unit % RC_PER_LEAF) as usize));
            }
            b = entry(n, index_at(leaf, level - 1));
            level -= 1;
        }
    }

    /// An owned (uncounted) node made writable: `b` itself if the dirty set
    /// holds it, else a copy in a new block (the old one freed at commit),
    /// or a new empty node if `b` is 0.
    fn owned_mut(&mut self, b: u64, kind: u8, level: u8) -> Result<u64, Error> {
        if b != 0 && self.dirty.contains_key(&b) {
            self.node(b, kind, level)?;
            return Ok(b);
        }
        let copy = if b == 0 {
            new_node(kind, level)
        } else {
            *self.node(b, kind, level)?
        };
        let nb = self.alloc_meta(false)?;
        self.dirty.insert(nb, Box::new(copy));
        if b != 0 {
            self.pending.push(self.geo.unit(b));
        }
        Ok(nb)
    }

    /// Sets the count of a unit.
    pub(crate) fn rc_set(&mut self, unit: u64, v: u16) -> Result<(), Error> {
        let leaf = unit / RC_PER_LEAF;
        let mut parent: Option<(u64, usize)> = None;
        let (mut b, mut level) = (self.rc_root, self.geo.rc_level);
        loop {
            let nb = self.owned_mut(b, KIND_RC, level)?;
            if nb != b {
                match parent {
                    None => {
                        self.rc_root = nb;
                        self.changed = true;
                    }
                    Some((p, i)) => set_entry(self.dirty_mut(p)?, i, nb),
                }
            }
            if level == 0 {
                set_count(self.dirty_mut(nb)?, (unit % RC_PER_LEAF) as usize, v);
                return Ok(());
            }
            let i = index_at(leaf, level - 1);
            let child = entry(self.dirty_mut(nb)?, i);
            if child != 0 && !self.geo.is_meta(child) {
                return Err(self.corrupt(nb, "refcount child outside the metadata area"));
            }
            parent = Some((nb, i));
            b = child;
            level -= 1;
        }
    }

    /// Adds a reference to a map node or data cluster.
    pub(crate) fn incref(&mut self, block: u64) -> Result<(), Error> {
        let unit = self.geo.unit(block);
        match self.rc_get(unit)? {
            0 => Err(self.corrupt(block, "a referenced block has refcount 0")),
            u16::MAX => Err(Error::TooShared),
            v => self.rc_set(unit, v + 1),
        }
    }

    /// Drops a reference; at zero the block is freed at the next commit.
    /// The caller has dealt with the block's own children.
    pub(crate) fn decref(&mut self, block: u64) -> Result<u16, Error> {
        let unit = self.geo.unit(block);
        let v = self.rc_get(unit)?;
        if v == 0 {
            return Err(self.corrupt(block, "refcount underflow"));
        }
        self.rc_set(unit, v - 1)?;
        if v == 1 {
            self.pending.push(unit);
            self.dirty.remove(&block);
            self.fresh.remove(&unit);
        }
        Ok(v - 1)
    }
}
