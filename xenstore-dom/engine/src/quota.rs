//! Per-domain quotas, with C xenstored's defaults and GET/SET_QUOTA names.
//!
//! Read first: docs/misc/xenstore.txt "GET_QUOTA / SET_QUOTA". A value of 0
//! disables that check. Privileged domains are never limited. The byte
//! limits (`memory`, `memory-soft`) are C xenstored's XSA-326 quota-memory
//! (`-Q memory=`, `-q memory=`); see `memory.rs`.

use alloc::string::String;

use crate::memory::{DEFAULT_HARD, DEFAULT_SOFT};

/// The limits that apply to one unprivileged domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes a domain may own (C default 1000).
    pub nodes: u32,
    /// Watches a domain may hold (128).
    pub watches: u32,
    /// Largest value in bytes (2048).
    pub node_size: u32,
    /// Open transactions per domain (10).
    pub transactions: u32,
    /// Permission entries per node (5).
    pub permissions: u32,
    /// Nodes one transaction may touch (1024).
    pub transaction_nodes: u32,
    /// Replies queued before the domain's input is left unread (20).
    pub outstanding: u32,
    /// Watch events queued before further ones are dropped (256).
    pub queued_events: u32,
    /// Bytes a domain may make us hold; a request that would reach it
    /// fails with ENOMEM (C: 2.5 MiB hard `memory`).
    pub memory: u32,
    /// Bytes above which the domain is reported once (C: 2 MiB soft).
    pub memory_soft: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            nodes: 1000,
            watches: 128,
            node_size: 2048,
            transactions: 10,
            permissions: 5,
            transaction_nodes: 1024,
            outstanding: 20,
            queued_events: 256,
            memory: DEFAULT_HARD,
            memory_soft: DEFAULT_SOFT,
        }
    }
}

/// The GET_QUOTA names, in the order GET_QUOTA without arguments lists them.
pub const NAMES: [&str; 10] = [
    "nodes",
    "watches",
    "transactions",
    "node-size",
    "permissions",
    "transaction-nodes",
    "outstanding",
    "queued-events",
    "memory",
    "memory-soft",
];

impl Quotas {
    /// The value of a named quota.
    pub fn get(&self, name: &[u8]) -> Option<u32> {
        Some(match name {
            b"nodes" => self.nodes,
            b"watches" => self.watches,
            b"transactions" => self.transactions,
            b"node-size" => self.node_size,
            b"permissions" => self.permissions,
            b"transaction-nodes" => self.transaction_nodes,
            b"outstanding" => self.outstanding,
            b"queued-events" => self.queued_events,
            b"memory" => self.memory,
            b"memory-soft" => self.memory_soft,
            _ => return None,
        })
    }

    /// Set a named quota; false if the name is unknown.
    pub fn set(&mut self, name: &[u8], value: u32) -> bool {
        let slot = match name {
            b"nodes" => &mut self.nodes,
            b"watches" => &mut self.watches,
            b"transactions" => &mut self.transactions,
            b"node-size" => &mut self.node_size,
            b"permissions" => &mut self.permissions,
            b"transaction-nodes" => &mut self.transaction_nodes,
            b"outstanding" => &mut self.outstanding,
            b"queued-events" => &mut self.queued_events,
            b"memory" => &mut self.memory,
            b"memory-soft" => &mut self.memory_soft,
            _ => return false,
        };
        *slot = value;
        true
    }

    /// All names separated by blanks (GET_QUOTA with no argument).
    pub fn names() -> String {
        let mut s = String::new();
        for (i, n) in NAMES.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(n);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_defaults_and_names() {
        let mut q = Quotas::default();
        assert_eq!(
            (q.nodes, q.watches, q.node_size, q.transactions),
            (1000, 128, 2048, 10)
        );
        assert_eq!(
            (q.permissions, q.transaction_nodes, q.outstanding),
            (5, 1024, 20)
        );
        assert_eq!((q.memory, q.memory_soft), (2_621_440, 2_097_152));
        for n in NAMES {
            assert!(q.get(n.as_bytes()).is_some());
            assert!(q.set(n.as_bytes(), 7));
            assert_eq!(q.get(n.as_bytes()), Some(7));
        }
        assert!(!q.set(b"bogus", 1));
        assert!(Quotas::names().starts_with("nodes watches"));
    }
}
