//! Map trees: lookup, copy-on-write paths, byte reads and writes, discard.
//!
//! read first: DESIGN.md "Format" (maps) and "Copy-on-write".
//!
//! A map is a radix tree of 4 KiB nodes, 508 entries each; a leaf maps 508
//! data clusters (31.75 MiB), a level-1 root 15.7 GiB, a level-2 root
//! 7.8 TiB. A VDI, the log and the staging log each have one. A node is
//! writable when the dirty set holds it (it was written by no commit) and
//! its refcount is 1 (nothing else shares it); anything else is copied
//! first. A data cluster is overwritten in place only when it was
//! allocated since the last commit and is not shared: a cluster the last
//! commit knows may still be read through the old tree (a snapshot
//! destroyed since, say), so it is copied too.

use alloc::vec;
use alloc::vec::Vec;

use crate::budget::{BLOCK_SIZE, CLUSTER_SIZE};
use crate::error::Error;
use crate::format::{
    entry, index_at, map_cover, set_entry, FANOUT, KIND_MAP, LOG_LEVEL, RECORDS_PER_BLOCK,
};
use crate::store::Sr;
use crate::BlockDev;

/// Which map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tree {
    /// A VDI's, by table slot.
    Vdi(usize),
    /// The log's.
    Log,
    /// The log being replaced (or the old one being freed).
    Staging,
}

/// What a discard finds at a cluster.
enum Probe {
    /// Nothing mapped up to this cluster.
    Hole(u64),
    /// A shared subtree at this level lies wholly in the range, up to the
    /// second cluster: drop the reference, copy nothing.
    Shared(u8, u64),
    /// A leaf to clear entries in.
    Leaf,
}

const CL: u64 = CLUSTER_SIZE as u64;

impl<D: BlockDev> Sr<D> {
    pub(crate) fn root_of(&self, t: Tree) -> (u64, u8) {
        match t {
            Tree::Vdi(i) => self.vdis[i].map_or((0, 0), |r| (r.root, r.level)),
            Tree::Log => (self.log_root, LOG_LEVEL),
            Tree::Staging => (self.staging_root, LOG_LEVEL),
        }
    }

    pub(crate) fn set_root(&mut self, t: Tree, root: u64) {
        match t {
            Tree::Vdi(i) => {
                if let Some(r) = self.vdis[i].as_mut() {
                    r.root = root;
                    self.table_dirty[i / RECORDS_PER_BLOCK] = true;
                }
            }
            Tree::Log => self.log_root = root,
            Tree::Staging => self.staging_root = root,
        }
        self.changed = true;
    }

    fn add_allocated(&mut self, t: Tree, delta: i64) {
        if let Tree::Vdi(i) = t {
            if let Some(r) = self.vdis[i].as_mut() {
                r.allocated = r.allocated.saturating_add_signed(delta);
                self.table_dirty[i / RECORDS_PER_BLOCK] = true;
            }
        }
    }

    /// Entry `i` of map node `b` at `level`, checked: a node pointer inside
    /// the metadata area, a data pointer on a cluster of the data area.
    pub(crate) fn map_child(&mut self, b: u64, level: u8, i: usize) -> Result<u64, Error> {
        let e = entry(self.node(b, KIND_MAP, level)?, i);
        self.check_ptr(b, level, e)?;
        Ok(e)
    }

    pub(crate) fn check_ptr(&mut self, b: u64, level: u8, e: u64) -> Result<(), Error> {
        if e == 0 || (level == 0 && self.geo.is_data(e)) || (level > 0 && self.geo.is_meta(e)) {
            Ok(())
        } else if level == 0 {
            Err(self.corrupt(b, "data pointer not on a cluster of the data area"))
        } else {
            Err(self.corrupt(b, "node pointer outside the metadata area"))
        }
    }

    /// The data cluster mapped at `cluster`, or 0.
    pub(crate) fn lookup(&mut self, t: Tree, cluster: u64) -> Result<u64, Error> {
        let (mut b, mut level) = self.root_of(t);
        loop {
            if b == 0 {
                return Ok(0);
            }
            let e = self.map_child(b, level, index_at(cluster, level))?;
            if level == 0 {
                return Ok(e);
            }
            b = e;
            level -= 1;
        }
    }

    /// The first cluster at or after `c` and before `end` that map `t`
    /// maps, skipping unmapped subtrees whole (read only).
    pub(crate) fn next_mapped(
        &mut self,
        t: Tree,
        mut c: u64,
        end: u64,
    ) -> Result<Option<u64>, Error> {
        let (root, top) = self.root_of(t);
        let end = end.min(map_cover(top));
        'walk: while c < end {
            let (mut b, mut level) = (root, top);
            if b == 0 {
                return Ok(None);
            }
            while level > 0 {
                let child = self.map_child(b, level, index_at(c, level))?;
                if child == 0 {
                    let span = map_cover(level - 1);
                    c = c - c % span + span;
                    continue 'walk;
                }
                b = child;
                level -= 1;
            }
            // A leaf: scan its entries from `c` on.
            let leaf_end = (c - c % FANOUT + FANOUT).min(end);
            while c < leaf_end {
                if self.map_child(b, 0, index_at(c, 0))? != 0 {
                    return Ok(Some(c));
                }
                c += 1;
            }
        }
        Ok(None)
    }

    /// Makes the path to `cluster` writable down to `target` and returns
    /// that node; creates missing nodes if `create`, else `None` where the
    /// path ends. May commit early before the first copy, then starts again
    /// from the root.
    pub(crate) fn path_mut(
        &mut self,
        t: Tree,
        cluster: u64,
        target: u8,
        create: bool,
    ) -> Result<Option<u64>, Error> {
        'restart: loop {
            let (mut b, mut level) = self.root_of(t);
            let mut parent: Option<(u64, usize)> = None;
            // Commit early only before this pass changes anything: the
            // step's budget covers the whole path, and a commit midway
            // would make the copies above it need copying again.
            let mut changed = false;
            loop {
                if b == 0 && !create {
                    return Ok(None);
                }
                let writable =
                    b != 0 && self.dirty.contains_key(&b) && self.rc_get(self.geo.unit(b))? == 1;
                if !writable {
                    if !changed && self.make_room(0)? {
                        continue 'restart;
                    }
                    changed = true;
                    let nb = if b == 0 {
                        self.new_map_node(level)?
                    } else {
                        self.cow_map_node(b, level)?
                    };
                    match parent {
                        None => self.set_root(t, nb),
                        Some((p, i)) => set_entry(self.dirty_mut(p)?, i, nb),
                    }
                    b = nb;
                }
                if level == target {
                    self.node(b, KIND_MAP, level)?;
                    return Ok(Some(b));
                }
                let i = index_at(cluster, level);
                let child = self.map_child(b, level, i)?;
                parent = Some((b, i));
                b = child;
                level -= 1;
            }
        }
    }

    /// Copies map node `b` to a new block. Shared: the copy adds a
    /// reference to each child and `b` loses one. Not shared: the copy
    /// takes over the children and `b` is freed at commit.
    fn cow_map_node(&mut self, b: u64, level: u8) -> Result<u64, Error> {
        let rc = self.rc_get(self.geo.unit(b))?;
        if rc == 0 {
            return Err(self.corrupt(b, "a map node in use has refcount 0"));
        }
        let copy = *self.node(b, KIND_MAP, level)?;
        if rc > 1 {
            for i in 0..FANOUT as usize {
                let e = entry(&copy, i);
                self.check_ptr(b, level, e)?;
                if e != 0 {
                    self.incref(e)?;
                }
            }
        }
        self.decref(b)?;
        let nb = self.new_map_node(level)?;
        *self.dirty_mut(nb)? = copy;
        Ok(nb)
    }

    /// Reads `buf.len()` bytes at byte `offset` of a map (holes read zero).
    pub(crate) fn read_at(&mut self, t: Tree, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        let mut tmp: Vec<u8> = Vec::new();
        while done < buf.len() {
            let pos = offset + done as u64;
            let (c, off) = (pos / CL, (pos % CL) as usize);
            let n = (CLUSTER_SIZE - off).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            let p = self.lookup(t, c)?;
            if p == 0 {
                out.fill(0);
            } else {
                let b0 = off / BLOCK_SIZE;
                let b1 = (off + n).div_ceil(BLOCK_SIZE);
                tmp.resize((b1 - b0) * BLOCK_SIZE, 0);
                self.dev_read(p + b0 as u64, &mut tmp)?;
                let s = off - b0 * BLOCK_SIZE;
                out.copy_from_slice(&tmp[s..s + n]);
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `data` at byte `offset` of a map, cluster by cluster.
    pub(crate) fn write_at(&mut self, t: Tree, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (c, off) = (pos / CL, (pos % CL) as usize);
            let n = (CLUSTER_SIZE - off).min(data.len() - done);
            self.write_cluster(t, c, off, &data[done..done + n], false)?;
            done += n;
        }
        Ok(())
    }

    /// Writes `bytes` at `off` in cluster `c`. With `zeroing` (a partial
    /// discard), an unmapped cluster is left alone: it reads zero already.
    pub(crate) fn write_cluster(
        &mut self,
        t: Tree,
        c: u64,
        off: usize,
        bytes: &[u8],
        zeroing: bool,
    ) -> Result<(), Error> {
        if zeroing && self.lookup(t, c)? == 0 {
            return Ok(());
        }
        self.make_room(1)?;
        let Some(leaf) = self.path_mut(t, c, 0, true)? else {
            return Err(Error::NoSpace);
        };
        let i = index_at(c, 0);
        let old = self.map_child(leaf, 0, i)?;
        if old != 0 {
            let unit = self.geo.unit(old);
            let rc = self.rc_get(unit)?;
            if rc == 0 {
                return Err(self.corrupt(old, "a mapped cluster has refcount 0"));
            }
            if rc == 1 && self.fresh.contains(&unit) {
                return self.write_in_place(old, off, bytes);
            }
        } else if zeroing {
            return Ok(());
        }
        let mut buf = vec![0u8; CLUSTER_SIZE];
        if old != 0 && !(off == 0 && bytes.len() == CLUSTER_SIZE) {
            self.dev_read(old, &mut buf)?;
        }
        buf[off..off + bytes.len()].copy_from_slice(bytes);
        let new = self.alloc_data()?;
        self.dev_write(new, &buf)?;
        set_entry(self.dirty_mut(leaf)?, i, new);
        if old != 0 {
            self.decref(old)?;
        } else {
            self.add_allocated(t, 1);
        }
        Ok(())
    }

    fn write_in_place(&mut self, cluster: u64, off: usize, bytes: &[u8]) -> Result<(), Error> {
        let b0 = off / BLOCK_SIZE;
        let end = off + bytes.len();
        let b1 = end.div_ceil(BLOCK_SIZE);
        let mut buf = vec![0u8; (b1 - b0) * BLOCK_SIZE];
        if !off.is_multiple_of(BLOCK_SIZE) || !end.is_multiple_of(BLOCK_SIZE) {
            self.dev_read(cluster + b0 as u64, &mut buf)?;
        }
        let s = off - b0 * BLOCK_SIZE;
        buf[s..s + bytes.len()].copy_from_slice(bytes);
        self.dev_write(cluster + b0 as u64, &buf)
    }

    /// What a discard of `[c, end)` meets at cluster `c`.
    fn probe(&mut self, t: Tree, c: u64, end: u64) -> Result<Probe, Error> {
        let (mut b, mut level) = self.root_of(t);
        if b == 0 {
            return Ok(Probe::Hole(end));
        }
        if c == 0 && end >= map_cover(level) && self.rc_get(self.geo.unit(b))? > 1 {
            return Ok(Probe::Shared(level, end));
        }
        while level > 0 {
            let child = self.map_child(b, level, index_at(c, level))?;
            let span = map_cover(level - 1);
            let stop = (c - c % span + span).min(end);
            if child == 0 {
                return Ok(Probe::Hole(stop));
            }
            if c.is_multiple_of(span) && c + span <= end && self.rc_get(self.geo.unit(child))? > 1 {
                return Ok(Probe::Shared(level - 1, stop));
            }
            b = child;
            level -= 1;
        }
        Ok(Probe::Leaf)
    }

    /// Mapped clusters under node `b` at `level` (read only).
    fn count_mapped(&mut self, b: u64, level: u8) -> Result<u64, Error> {
        let mut total = 0;
        let mut stack = vec![(b, level)];
        while let Some((b, level)) = stack.pop() {
            for i in 0..FANOUT as usize {
                let e = self.map_child(b, level, i)?;
                if e != 0 {
                    if level == 0 {
                        total += 1;
                    } else {
                        stack.push((e, level - 1));
                    }
                }
            }
        }
        Ok(total)
    }

    /// Unmaps every cluster in `[c, end)`: one leaf or one shared subtree a
    /// step, each step a whole tree (so commits may fall between). With
    /// `counting`, the VDI's allocation follows.
    pub(crate) fn discard_clusters(
        &mut self,
        t: Tree,
        mut c: u64,
        end: u64,
        counting: bool,
    ) -> Result<(), Error> {
        let (_, top) = self.root_of(t);
        let end = end.min(map_cover(top));
        while c < end {
            match self.probe(t, c, end)? {
                Probe::Hole(stop) => c = stop,
                Probe::Shared(level, stop) => {
                    self.make_room(0)?;
                    let (root, top) = self.root_of(t);
                    let (child, at) = if level == top {
                        (root, None)
                    } else {
                        let Some(p) = self.path_mut(t, c, level + 1, false)? else {
                            return Err(Error::NoSpace);
                        };
                        let i = index_at(c, level + 1);
                        (self.map_child(p, level + 1, i)?, Some((p, i)))
                    };
                    if child != 0 {
                        if counting {
                            let n = self.count_mapped(child, level)?;
                            self.add_allocated(t, -(n as i64));
                        }
                        match at {
                            None => self.set_root(t, 0),
                            Some((p, i)) => set_entry(self.dirty_mut(p)?, i, 0),
                        }
                        self.decref(child)?;
                        self.prune(t, c, level + 1)?;
                    }
                    c = stop;
                }
                Probe::Leaf => {
                    self.make_room(0)?;
                    let stop = (c - c % FANOUT + FANOUT).min(end);
                    let Some(leaf) = self.path_mut(t, c, 0, false)? else {
                        c = stop;
                        continue;
                    };
                    let mut freed = 0;
                    for cc in c..stop {
                        let i = index_at(cc, 0);
                        let e = self.map_child(leaf, 0, i)?;
                        if e != 0 {
                            set_entry(self.dirty_mut(leaf)?, i, 0);
                            self.decref(e)?;
                            freed += 1;
                        }
                    }
                    if counting {
                        self.add_allocated(t, -freed);
                    }
                    self.prune(t, c, 0)?;
                    c = stop;
                }
            }
        }
        Ok(())
    }

    /// Frees empty nodes on the (writable) path to `c`, from `from` up.
    fn prune(&mut self, t: Tree, c: u64, from: u8) -> Result<(), Error> {
        let (root, top) = self.root_of(t);
        if root == 0 || from > top {
            return Ok(());
        }
        // path[k] is the node at level top - k
        let mut path = vec![root];
        let mut level = top;
        while level > from {
            let child = self.map_child(
                *path.last().expect("root pushed"),
                level,
                index_at(c, level),
            )?;
            if child == 0 {
                return Ok(());
            }
            path.push(child);
            level -= 1;
        }
        let mut level = from;
        while let Some(b) = path.pop() {
            let empty = {
                let n = self.node(b, KIND_MAP, level)?;
                (0..FANOUT as usize).all(|i| entry(n, i) == 0)
            };
            if !empty {
                break;
            }
            match path.last() {
                None => self.set_root(t, 0),
                Some(&p) => set_entry(self.dirty_mut(p)?, index_at(c, level + 1), 0),
            }
            self.decref(b)?;
            level += 1;
        }
        Ok(())
    }
}
