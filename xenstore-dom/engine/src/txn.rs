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
//! unprivileged domains, and events are deduplicated per path.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{XsError, XsResult};
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
            next_local_generation: 1 << 62,
        }
    }

    /// Number of nodes this transaction has touched.
    pub fn touched(&self) -> usize {
        self.entries.len()
    }

    /// Queue a watch event to fire if and when this commits.
    pub fn record(&mut self, event: Event) {
        self.events.insert(event.path.clone(), event);
    }

    /// A view of the live tree through this transaction.
    pub fn view<'a>(&'a mut self, store: &'a Store) -> TxView<'a> {
        TxView { txn: self, store }
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

    fn touch<'s>(&'s mut self, store: &Store, path: &str) -> XsResult<&'s mut Entry> {
        if !self.entries.contains_key(path) {
            if self.max_entries != 0 && self.entries.len() >= self.max_entries {
                return Err(XsError::Enospc);
            }
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

/// A transaction's view of the tree, implementing [`Db`].
pub struct TxView<'a> {
    txn: &'a mut Txn,
    store: &'a Store,
}

impl TxView<'_> {
    /// Record a write of `path`; the owner of what it replaces, if any.
    fn replace(&mut self, path: &str, node: Option<Node>) -> XsResult<Option<u16>> {
        let store = self.store;
        let entry = self.txn.touch(store, path)?;
        let old_owner = match &entry.write {
            Some(written) => written.as_ref().map(|n| n.perms.owner()),
            None => store.node(path).map(|n| n.perms.owner()),
        };
        entry.write = Some(node);
        Ok(old_owner)
    }
}

impl Db for TxView<'_> {
    fn get(&mut self, path: &str) -> XsResult<Option<&Node>> {
        let store = self.store;
        let entry = self.txn.touch(store, path)?;
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
        assert!(tx.view(&store).get("/a").unwrap().is_some());
        store.put("/a", Node::new(Perms::owned_by(0))).unwrap();
        assert_eq!(tx.commit(&mut store).unwrap_err(), XsError::Eagain);
    }

    #[test]
    fn create_then_delete_inside_commits_nothing() {
        let mut store = Store::new();
        let mut tx = Txn::new(0);
        {
            let mut v = tx.view(&store);
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
        let mut v = tx.view(&store);
        v.get("/a").unwrap();
        v.get("/b").unwrap();
        assert_eq!(v.get("/c").unwrap_err(), XsError::Enospc);
        assert!(v.get("/a").is_ok());
    }
}
