//! The node tree and the `Db` view that operations run against.
//!
//! Nodes are kept in one map keyed by canonical path, each listing its
//! children by name, so walks are iterative (XSA-418: never recurse without
//! bound on a peer-built depth). Every change gives the node a fresh
//! generation from a global counter; transactions compare generations at
//! commit to detect conflicts. The store counts the nodes each domid owns
//! for the per-domain node quota.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XsResult;
use crate::perms::Perms;

/// One node: value, permissions, children names and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The octet string stored here.
    pub value: Vec<u8>,
    /// Owner and ACL.
    pub perms: Perms,
    /// Leaf names of the immediate children.
    pub children: BTreeSet<String>,
    /// Generation of the last change (set by the store on `put`).
    pub generation: u64,
}

impl Node {
    /// A fresh empty node with these permissions.
    pub fn new(perms: Perms) -> Node {
        Node {
            value: Vec::new(),
            perms,
            children: BTreeSet::new(),
            generation: 0,
        }
    }

    /// Length of the DIRECTORY listing: each child name plus its nul.
    pub fn children_len(&self) -> usize {
        self.children.iter().map(|c| c.len() + 1).sum()
    }
}

/// What operations need from a tree: the live store or a transaction's view.
pub trait Db {
    /// Look a node up (a transaction records what it saw).
    fn get(&mut self, path: &str) -> XsResult<Option<&Node>>;
    /// Create or replace a node.
    fn put(&mut self, path: &str, node: Node) -> XsResult<()>;
    /// Delete one node (not its children; callers walk those).
    fn del(&mut self, path: &str) -> XsResult<()>;
    /// Nodes owned by `domid` as this view sees them.
    fn owned(&self, domid: u16) -> u32;
}

/// The live tree.
#[derive(Debug)]
pub struct Store {
    nodes: BTreeMap<String, Node>,
    next_generation: u64,
    owned: BTreeMap<u16, u32>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// A tree holding only `/`, owned by dom0 with no access for others.
    pub fn new() -> Store {
        let mut store = Store {
            nodes: BTreeMap::new(),
            next_generation: 1,
            owned: BTreeMap::new(),
        };
        store.insert("/", Node::new(Perms::owned_by(0)));
        store
    }

    /// Read-only lookup.
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of nodes in the tree.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true: the root always exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The current global generation (the next one to hand out).
    pub fn generation(&self) -> u64 {
        self.next_generation
    }

    /// Hand out a fresh generation.
    pub fn bump(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    /// Nodes owned by `domid`.
    pub fn owned_by(&self, domid: u16) -> u32 {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    fn count(&mut self, domid: u16, up: bool) {
        let c = self.owned.entry(domid).or_insert(0);
        *c = if up {
            c.saturating_add(1)
        } else {
            c.saturating_sub(1)
        };
        if *c == 0 {
            self.owned.remove(&domid);
        }
    }

    fn insert(&mut self, path: &str, mut node: Node) {
        node.generation = self.bump();
        let owner = node.perms.owner();
        // Replace in place when the node exists: no new key to allocate.
        let old_owner = match self.nodes.get_mut(path) {
            Some(slot) => Some(core::mem::replace(slot, node).perms.owner()),
            None => {
                self.nodes.insert(String::from(path), node);
                None
            }
        };
        if old_owner != Some(owner) {
            if let Some(old) = old_owner {
                self.count(old, false);
            }
            self.count(owner, true);
        }
    }

    fn remove(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.count(old.perms.owner(), false);
        }
    }

    /// All paths in the tree whose node satisfies `pred` (a full scan).
    pub fn paths_where(&self, mut pred: impl FnMut(&Node) -> bool) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| pred(n))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Mutable access for whole-tree maintenance (domain cleanup). The
    /// caller must not change the owner through this (counts would drift).
    pub fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(path)
    }
}

impl Db for Store {
    fn get(&mut self, path: &str) -> XsResult<Option<&Node>> {
        Ok(self.nodes.get(path))
    }

    fn put(&mut self, path: &str, node: Node) -> XsResult<()> {
        self.insert(path, node);
        Ok(())
    }

    fn del(&mut self, path: &str) -> XsResult<()> {
        self.remove(path);
        Ok(())
    }

    fn owned(&self, domid: u16) -> u32 {
        self.owned_by(domid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_owner() {
        let mut s = Store::new();
        assert_eq!(s.owned_by(0), 1);
        s.put("/a", Node::new(Perms::owned_by(5))).unwrap();
        assert_eq!(s.owned_by(5), 1);
        s.put("/a", Node::new(Perms::owned_by(6))).unwrap();
        assert_eq!((s.owned_by(5), s.owned_by(6)), (0, 1));
        s.del("/a").unwrap();
        s.del("/a").unwrap();
        assert_eq!(s.owned_by(6), 0);
    }

    #[test]
    fn generations_increase() {
        let mut s = Store::new();
        s.put("/a", Node::new(Perms::owned_by(0))).unwrap();
        let g1 = s.node("/a").unwrap().generation;
        s.put("/a", Node::new(Perms::owned_by(0))).unwrap();
        assert!(s.node("/a").unwrap().generation > g1);
    }
}
