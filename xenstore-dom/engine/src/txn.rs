//! Transactions: a write overlay with generation-checked commit.
//!
//! Read first: docs/misc/xenstore.txt "Transactions". Writes in a
//! transaction go to an overlay; every node touched, read or written,
//! remembers the generation it had in the live tree (or that it was
//! absent). Reads of nodes the transaction has not written go to the live
//! tree, so a read costs a path and a generation, never a copy of the node.
//! Commit fails with EAGAIN if any touched node changed meanwhile (so a
//! transaction never commits after seeing a mix of states); otherwise the
//! written nodes are applied and their watch events fire. The overlay is
//! bounded by the per-transaction node quota (1024 by default) for
//! unprivileged domains, and events are deduplicated per path. What the
//! overlay holds (every touched path, every written copy) is charged to
//! the domain that opened the transaction (C's `get_acc_domid`), and a
//! touch or write beyond the caller's byte budget fails with ENOMEM.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{XsError, XsResult};
use crate::memory::{node_bytes, ENTRY_OVERHEAD};
use crate::store::{Db, Node, Store};
use crate::watch::Event;

#[derive(Clone, Debug)]
struct Entry {
    /// Generation in the live tree when first touched; `None` if absent.
    base: Option<u64>,
    /// What this transaction wrote: `Some(None)` deleted, `None` only read.
    write: Option<Option<Node>>,
}

/// One open transaction.
#[derive(Clone, Debug)]
pub struct Txn {
    entries: BTreeMap<String, Entry>,
    events: BTreeMap<String, Event>,
    owned_delta: BTreeMap<u16, i64>,
    /// Most nodes the overlay may hold; 0 = unbounded.
    max_entries: usize,
    /// Bytes the overlay holds (see `memory.rs`).
    held: usize,
    next_local_generation: u64,
}

impl Txn {
    /// An empty transaction touching at most `max_entries` nodes (0 = any).
    pub fn new(max_entries: usize) -> Txn {
        Txn {
            entries: BTreeMap::new(),
            events: BTreeMap::new(),
            owned_delta: BTreeMap::new(),
            max_entries,
            held: 0,
            next_local_generation: 1 << 62,
        }
    }

    /// Number of nodes this transaction has touched.
    pub fn touched(&self) -> usize {
        self.entries.len()
    }

    /// Bytes this transaction holds, charged to the domain that opened it.
    pub fn held(&self) -> usize {
        self.held
    }

    /// [`Txn::held`] recomputed from the overlay (for audits).
    pub fn recount_bytes(&self) -> usize {
        self.entries.iter().map(|(p, e)| entry_bytes(p, e)).sum()
    }

    /// Queue a watch event to fire if and when this commits.
    pub fn record(&mut self, event: Event) {
        self.events.insert(event.path.clone(), event);
    }

    /// A view of the live tree through this transaction; the caller may
    /// be charged at most `budget` more bytes through it (`None`: any).
    pub fn view<'a>(&'a mut self, store: &'a Store, budget: Option<usize>) -> TxView<'a> {
        TxView {
            txn: self,
            store,
            budget,
        }
    }

    /// Check for conflicts and apply; the events to fire on success.
    pub fn commit(self, store: &mut Store) -> XsResult<Vec<Event>> {
        for (path, entry) in &self.entries {
            if store.node(path).map(|n| n.generation) != entry.base {
                return Err(XsError::Eagain);
            }
        }
        for (path, entry) in self.entries {
            match entry.write {
                Some(Some(node)) => store.put(&path, node)?,
                Some(None) => store.del(&path)?,
                None => {}
            }
        }
        Ok(self.events.into_values().collect())
    }

    fn touch<'s>(
        &'s mut self,
        store: &Store,
        path: &str,
        budget: &mut Option<usize>,
    ) -> XsResult<&'s mut Entry> {
        if !self.entries.contains_key(path) {
            if self.max_entries != 0 && self.entries.len() >= self.max_entries {
                return Err(XsError::Enospc);
            }
            let cost = ENTRY_OVERHEAD + path.len();
            if let Some(b) = budget {
                *b = b.checked_sub(cost).ok_or(XsError::Enomem)?;
            }
            self.held += cost;
            let base = store.node(path).map(|n| n.generation);
            self.entries
                .insert(String::from(path), Entry { base, write: None });
        }
        self.entries.get_mut(path).ok_or(XsError::Enomem)
    }

    fn adjust(&mut self, domid: u16, by: i64) {
        *self.owned_delta.entry(domid).or_insert(0) += by;
    }
}

/// Bytes one overlay entry holds.
fn entry_bytes(path: &str, entry: &Entry) -> usize {
    let written = match &entry.write {
        Some(Some(node)) => node_bytes(node),
        _ => 0,
    };
    ENTRY_OVERHEAD + path.len() + written
}

/// A transaction's view of the tree, implementing [`Db`].
pub struct TxView<'a> {
    txn: &'a mut Txn,
    store: &'a Store,
    budget: Option<usize>,
}

impl TxView<'_> {
    /// Record a write of `path`; the owner of what it replaces, if any.
    fn replace(&mut self, path: &str, node: Option<Node>) -> XsResult<Option<u16>> {
        let store = self.store;
        let entry = self.txn.touch(store, path, &mut self.budget)?;
        let old_owner = match &entry.write {
            Some(written) => written.as_ref().map(|n| n.perms.owner()),
            None => store.node(path).map(|n| n.perms.owner()),
        };
        let before = match &entry.write {
            Some(Some(n)) => node_bytes(n),
            _ => 0,
        };
        let after = node.as_ref().map_or(0, node_bytes);
        entry.write = Some(node);
        // `before` was added when that copy was written: no underflow. The
        // budget was checked by the operation (`Db::charge`) beforehand.
        self.txn.held = self.txn.held - before + after;
        if let Some(b) = &mut self.budget {
            *b = b.saturating_sub(after.saturating_sub(before));
        }
        Ok(old_owner)
    }
}

impl Db for TxView<'_> {
    fn get(&mut self, path: &str) -> XsResult<Option<&Node>> {
        let store = self.store;
        let entry = self.txn.touch(store, path, &mut self.budget)?;
        Ok(match &entry.write {
            Some(written) => written.as_ref(),
            None => store.node(path),
        })
    }

    fn put(&mut self, path: &str, mut node: Node) -> XsResult<()> {
        node.generation = self.txn.next_local_generation;
        self.txn.next_local_generation += 1;
        let new_owner = node.perms.owner();
        let old_owner = self.replace(path, Some(node))?;
        if let Some(o) = old_owner {
            self.txn.adjust(o, -1);
        }
        self.txn.adjust(new_owner, 1);
        Ok(())
    }

    fn del(&mut self, path: &str) -> XsResult<()> {
        if let Some(o) = self.replace(path, None)? {
            self.txn.adjust(o, -1);
        }
        Ok(())
    }

    fn owned(&self, domid: u16) -> u32 {
        let base = i64::from(self.store.owned_by(domid));
        let delta = self.txn.owned_delta.get(&domid).copied().unwrap_or(0);
        u32::try_from((base + delta).max(0)).unwrap_or(u32::MAX)
    }

    fn charge(&self, _domid: u16, path: &str, node: &Node) -> i64 {
        let (touch, before) = match self.txn.entries.get(path) {
            None => (ENTRY_OVERHEAD + path.len(), 0),
            Some(Entry {
                write: Some(Some(n)),
                ..
            }) => (0, node_bytes(n)),
            Some(_) => (0, 0),
        };
        (touch + node_bytes(node)) as i64 - before as i64
    }

    fn budget(&self) -> Option<usize> {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::Perms;

    #[test]
    fn conflict_on_intervening_write() {
        let mut store = Store::new();
        store.put("/a", Node::new(Perms::owned_by(0))).unwrap();
        let mut tx = Txn::new(0);
        assert!(tx.view(&store, None).get("/a").unwrap().is_some());
        store.put("/a", Node::new(Perms::owned_by(0))).unwrap();
        assert_eq!(tx.commit(&mut store).unwrap_err(), XsError::Eagain);
    }

    #[test]
    fn create_then_delete_inside_commits_nothing() {
        let mut store = Store::new();
        let mut tx = Txn::new(0);
        {
            let mut v = tx.view(&store, None);
            v.put("/x", Node::new(Perms::owned_by(3))).unwrap();
            assert_eq!(v.owned(3), 1);
            v.del("/x").unwrap();
            assert_eq!(v.owned(3), 0);
        }
        tx.commit(&mut store).unwrap();
        assert!(store.node("/x").is_none());
        assert_eq!(store.owned_by(3), 0);
    }

    #[test]
    fn overlay_is_bounded() {
        let store = Store::new();
        let mut tx = Txn::new(2);
        let mut v = tx.view(&store, None);
        v.get("/a").unwrap();
        v.get("/b").unwrap();
        assert_eq!(v.get("/c").unwrap_err(), XsError::Enospc);
        assert!(v.get("/a").is_ok());
    }

    #[test]
    fn held_bytes_follow_the_overlay_and_budget() {
        let store = Store::new();
        let mut tx = Txn::new(0);
        let mut n = Node::new(Perms::owned_by(3));
        n.value = alloc::vec![7; 50];
        {
            let mut v = tx.view(&store, None);
            let c = v.charge(3, "/x", &n);
            v.put("/x", n.clone()).unwrap();
            assert_eq!(c as usize, ENTRY_OVERHEAD + 2 + node_bytes(&n));
        }
        assert_eq!(tx.held(), tx.recount_bytes());
        tx.view(&store, None).del("/x").unwrap();
        assert_eq!(tx.held(), ENTRY_OVERHEAD + 2);
        assert_eq!(tx.held(), tx.recount_bytes());
        let mut v = tx.view(&store, Some(ENTRY_OVERHEAD + 2));
        assert!(v.get("/y").is_ok());
        assert_eq!(v.get("/z").unwrap_err(), XsError::Enomem);
        assert_eq!(tx.held(), tx.recount_bytes());
    }
}
