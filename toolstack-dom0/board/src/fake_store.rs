//! An in-memory xenstore for the host tests of [`crate::vif_tree`]: nodes
//! with values and permissions, transactions that commit whole or not at
//! all, and commits that can be made to conflict (EAGAIN).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use xcp_xenbus::{Error, Perm, TxId, XsErrno};

use crate::vif_tree::Store;

/// The nodes: path to (value, permissions).
pub type Nodes = BTreeMap<String, (Vec<u8>, Vec<Perm>)>;

/// An in-memory xenstore.
#[derive(Clone, Debug, Default)]
pub struct FakeStore {
    /// The committed nodes.
    pub nodes: Nodes,
    /// The open transaction's copy of the nodes.
    open: Option<(TxId, Nodes)>,
    next_tx: u32,
    /// Commits to answer EAGAIN before one succeeds.
    pub conflicts: usize,
    /// Transactions committed.
    pub committed: usize,
    /// Transactions started.
    pub started: usize,
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('/').filter(|i| *i > 0).map(|i| &path[..i])
}

impl FakeStore {
    /// An empty store whose first `n` commits conflict.
    pub fn conflicting(n: usize) -> FakeStore {
        FakeStore {
            conflicts: n,
            ..FakeStore::default()
        }
    }

    fn nodes_mut(&mut self, tx: TxId) -> Result<&mut Nodes, Error> {
        if tx == TxId::NONE {
            return Ok(&mut self.nodes);
        }
        match &mut self.open {
            Some((open, nodes)) if *open == tx => Ok(nodes),
            _ => Err(Error::Xs(XsErrno::Enoent)),
        }
    }

    /// A node's value as text.
    pub fn value(&self, path: &str) -> Option<&str> {
        self.nodes
            .get(path)
            .and_then(|(v, _)| core::str::from_utf8(v).ok())
    }

    /// A node's permissions.
    pub fn perms(&self, path: &str) -> Option<&[Perm]> {
        self.nodes.get(path).map(|(_, p)| p.as_slice())
    }
}

impl Store for FakeStore {
    fn transaction_start(&mut self) -> Result<TxId, Error> {
        self.next_tx += 1;
        let tx = TxId(self.next_tx);
        self.open = Some((tx, self.nodes.clone()));
        self.started += 1;
        Ok(tx)
    }
    fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<(), Error> {
        let Some((open, nodes)) = self.open.take() else {
            return Err(Error::Xs(XsErrno::Enoent));
        };
        if open != tx {
            return Err(Error::Xs(XsErrno::Enoent));
        }
        if !commit {
            return Ok(());
        }
        if self.conflicts > 0 {
            self.conflicts -= 1;
            return Err(Error::Xs(XsErrno::Eagain));
        }
        self.nodes = nodes;
        self.committed += 1;
        Ok(())
    }
    fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), Error> {
        let nodes = self.nodes_mut(tx)?;
        // Missing parents are made, each with its parent's permissions
        // (as xenstored makes them).
        let mut missing = Vec::new();
        let mut p = parent(path);
        while let Some(dir) = p {
            if nodes.contains_key(dir) {
                break;
            }
            missing.push(String::from(dir));
            p = parent(dir);
        }
        let mut perms = p
            .and_then(|d| nodes.get(d))
            .map(|(_, perms)| perms.clone())
            .unwrap_or_else(|| alloc::vec![Perm::new(0, xcp_xenbus::Access::None)]);
        for dir in missing.into_iter().rev() {
            nodes.insert(dir, (Vec::new(), perms.clone()));
        }
        if let Some((old, kept)) = nodes.get_mut(path) {
            *old = value.to_vec();
            perms = kept.clone();
        }
        nodes.insert(String::from(path), (value.to_vec(), perms));
        Ok(())
    }
    fn set_perms(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Result<(), Error> {
        let nodes = self.nodes_mut(tx)?;
        let node = nodes.get_mut(path).ok_or(Error::Xs(XsErrno::Enoent))?;
        node.1 = perms.to_vec();
        Ok(())
    }
    fn read(&mut self, tx: TxId, path: &str) -> Result<Vec<u8>, Error> {
        let nodes = self.nodes_mut(tx)?;
        nodes
            .get(path)
            .map(|(v, _)| v.clone())
            .ok_or(Error::Xs(XsErrno::Enoent))
    }
    fn directory(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, Error> {
        let nodes = self.nodes_mut(tx)?;
        if !nodes.contains_key(path) {
            return Err(Error::Xs(XsErrno::Enoent));
        }
        let below = alloc::format!("{path}/");
        Ok(nodes
            .keys()
            .filter_map(|p| p.strip_prefix(&below))
            .filter(|rest| !rest.contains('/'))
            .map(String::from)
            .collect())
    }
    fn rm(&mut self, tx: TxId, path: &str) -> Result<(), Error> {
        let nodes = self.nodes_mut(tx)?;
        if !nodes.contains_key(path) {
            return Err(Error::Xs(XsErrno::Enoent));
        }
        let below = alloc::format!("{path}/");
        nodes.retain(|p, _| p != path && !p.starts_with(&below));
        Ok(())
    }
}
