//! The node tree and the `Db` view that operations run against.
//!
//! Nodes are kept in one map keyed by canonical path, each listing its
//! children by name, so walks are iterative (XSA-418: never recurse without
//! bound on a peer-built depth). Every change gives the node a fresh
//! generation from a global counter; transactions compare generations at
//! commit to detect conflicts. The store counts the nodes each domid owns
//! for the per-domain node quota, and the bytes they hold (`memory.rs`).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XsResult;
use crate::memory::stored_bytes;
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
    /// How many more bytes `domid` would be charged if `node` were put at
    /// `path` now (negative if fewer): in the live tree the owner pays, in
    /// a transaction the domain that opened it pays for every copy.
    fn charge(&self, domid: u16, path: &str, node: &Node) -> i64;
    /// Bytes the caller may still be charged in this request (`None`:
    /// unlimited); an operation whose charges exceed it fails with ENOMEM
    /// before changing anything.
    fn budget(&self) -> Option<usize>;
}

/// The live tree with a caller's byte budget for one request.
pub struct LiveView<'a> {
    /// The tree.
    pub store: &'a mut Store,
    /// What the caller may still be charged (`None`: unlimited).
    pub budget: Option<usize>,
}

impl Db for LiveView<'_> {
    fn get(&mut self, path: &str) -> XsResult<Option<&Node>> {
        self.store.get(path)
    }

    fn put(&mut self, path: &str, node: Node) -> XsResult<()> {
        self.store.put(path, node)
    }

    fn del(&mut self, path: &str) -> XsResult<()> {
        self.store.del(path)
    }

    fn owned(&self, domid: u16) -> u32 {
        self.store.owned_by(domid)
    }

    fn charge(&self, domid: u16, path: &str, node: &Node) -> i64 {
        self.store.charge(domid, path, node)
    }

    fn budget(&self) -> Option<usize> {
        self.budget
    }
}

/// The live tree.
#[derive(Debug)]
pub struct Store {
    nodes: BTreeMap<String, Node>,
    next_generation: u64,
    owned: BTreeMap<u16, u32>,
    bytes: BTreeMap<u16, usize>,
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
            bytes: BTreeMap::new(),
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

    /// Bytes the nodes owned by `domid` hold.
    pub fn bytes_of(&self, domid: u16) -> usize {
        self.bytes.get(&domid).copied().unwrap_or(0)
    }

    /// Every domid charged for bytes, with its bytes.
    pub fn charged(&self) -> impl Iterator<Item = (u16, usize)> + '_ {
        self.bytes.iter().map(|(d, b)| (*d, *b))
    }

    /// Bytes owned by `domid`, recomputed from every node (a full scan,
    /// for audits: it must equal [`Store::bytes_of`]).
    pub fn recount_bytes(&self, domid: u16) -> usize {
        self.nodes
            .iter()
            .filter(|(_, n)| n.perms.owner() == domid)
            .map(|(p, n)| stored_bytes(p, n))
            .sum()
    }

    fn add_bytes(&mut self, domid: u16, n: usize, up: bool) {
        let b = self.bytes.entry(domid).or_insert(0);
        // Only ever subtracts what was added for the same node: no underflow.
        *b = if up { *b + n } else { b.saturating_sub(n) };
        if *b == 0 {
            self.bytes.remove(&domid);
        }
    }

    fn insert(&mut self, path: &str, mut node: Node) {
        node.generation = self.bump();
        let owner = node.perms.owner();
        self.add_bytes(owner, stored_bytes(path, &node), true);
        // Replace in place when the node exists: no new key to allocate.
        let old = match self.nodes.get_mut(path) {
            Some(slot) => {
                let old = core::mem::replace(slot, node);
                Some((old.perms.owner(), stored_bytes(path, &old)))
            }
            None => {
                self.nodes.insert(String::from(path), node);
                None
            }
        };
        if let Some((old_owner, old_bytes)) = old {
            self.add_bytes(old_owner, old_bytes, false);
        }
        let old_owner = old.map(|(o, _)| o);
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
            self.add_bytes(old.perms.owner(), stored_bytes(path, &old), false);
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

    /// Drop `domid`'s ACL entries from the node at `path` (domain
    /// cleanup), keeping its generation and re-charging its owner.
    pub fn forget_acl(&mut self, path: &str, domid: u16) {
        let Some(node) = self.nodes.get_mut(path) else {
            return;
        };
        let owner = node.perms.owner();
        let before = stored_bytes(path, node);
        node.perms.forget(domid);
        let after = stored_bytes(path, node);
        self.add_bytes(owner, before, false);
        self.add_bytes(owner, after, true);
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

    fn charge(&self, domid: u16, path: &str, node: &Node) -> i64 {
        let mut delta = 0i64;
        if node.perms.owner() == domid {
            delta += stored_bytes(path, node) as i64;
        }
        if let Some(old) = self.nodes.get(path) {
            if old.perms.owner() == domid {
                delta -= stored_bytes(path, old) as i64;
            }
        }
        delta
    }

    fn budget(&self) -> Option<usize> {
        None
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
    fn bytes_follow_owner_and_size() {
        let mut s = Store::new();
        let mut n = Node::new(Perms::owned_by(5));
        n.value = alloc::vec![0; 100];
        assert_eq!(s.charge(5, "/a", &n), stored_bytes("/a", &n) as i64);
        s.put("/a", n.clone()).unwrap();
        assert_eq!(s.bytes_of(5), s.recount_bytes(5));
        assert_eq!(s.bytes_of(5), 2 + 100 + crate::memory::NODE_OVERHEAD + 4);
        let mut m = Node::new(Perms::owned_by(6));
        m.value = alloc::vec![0; 10];
        assert_eq!(s.charge(5, "/a", &m), -(s.bytes_of(5) as i64));
        s.put("/a", m).unwrap();
        assert_eq!((s.bytes_of(5), s.bytes_of(6)), (0, s.recount_bytes(6)));
        s.del("/a").unwrap();
        assert_eq!(s.bytes_of(6), 0);
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
