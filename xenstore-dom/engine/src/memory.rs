//! Byte accounting: what each domain makes xenstored hold (XSA-326).
//!
//! Read first: C xenstored 4.17 `xenstored_domain.c` `domain_memory_add` /
//! `domain_chk_quota` and `xenstored_core.c` `do_tdb_write`. Every node is
//! charged to its owner (path, value, permissions, children's names), a
//! transaction's overlay (every node it touched, and the copies it wrote)
//! to the domain that opened it, and queued output to its connection's
//! domain. The charges are kept in step on every change; `Engine::audit_bytes`
//! recomputes them from scratch so tests can prove there is no drift.
//!
//! Unlike C (which counts the tdb record bytes only), each charge includes a
//! fixed overhead for the allocator and the B-tree, so the figures stay
//! close to what the heap really holds.

use crate::store::Node;

/// C xenstored's default soft limit: 2 MiB (a warning, once).
pub const DEFAULT_SOFT: u32 = 2 * 1024 * 1024;
/// C xenstored's default hard limit: 2.5 MiB (requests refused, ENOMEM).
pub const DEFAULT_HARD: u32 = 2 * 1024 * 1024 + 512 * 1024;

/// Per node: the map entry, `Node`'s fields and the key `String`.
pub const NODE_OVERHEAD: usize = 128;
/// Per permission entry (a `Perm` is a domid and a letter).
pub const PERM_BYTES: usize = 4;
/// Per child name (a `String` in the parent's `BTreeSet`), plus its length.
pub const CHILD_OVERHEAD: usize = 32;
/// Per node a transaction touched: its `Entry` and key `String`.
pub const ENTRY_OVERHEAD: usize = 64;
/// Per queued output message: its `Vec` and queue slot.
pub const MESSAGE_OVERHEAD: usize = 32;

/// Bytes a node holds apart from its path.
pub fn node_bytes(node: &Node) -> usize {
    NODE_OVERHEAD
        + node.value.len()
        + node.perms.len() * PERM_BYTES
        + node
            .children
            .iter()
            .map(|c| c.len() + CHILD_OVERHEAD)
            .sum::<usize>()
}

/// Bytes a node at `path` holds in the live tree.
pub fn stored_bytes(path: &str, node: &Node) -> usize {
    path.len() + node_bytes(node)
}

/// Bytes one queued output message of `len` bytes holds.
pub fn message_bytes(len: usize) -> usize {
    len + MESSAGE_OVERHEAD
}

/// Something the board may log: a domain crossed a memory limit. Drained
/// with `Engine::take_notices`; at most [`NOTICES_MAX`] wait (older ones
/// are kept, newer dropped), so a board that never drains holds little.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `domid` went over its soft limit (reported once until it falls below).
    SoftExceeded {
        /// The domain.
        domid: u16,
    },
    /// `domid` fell back below its soft limit.
    BelowSoft {
        /// The domain.
        domid: u16,
    },
    /// A request of `domid` was refused at its hard limit (once until it
    /// falls below the soft limit again).
    HardRefused {
        /// The domain.
        domid: u16,
    },
    /// A request was refused because all guests together hold the global
    /// cap (once until total usage falls below it).
    GlobalRefused {
        /// The domain whose request was refused.
        domid: u16,
    },
}

/// Most notices kept until the board takes them.
pub const NOTICES_MAX: usize = 64;

/// Per-domain report state (C's `soft_quota_reported`/`hard_quota_reported`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reported {
    pub soft: bool,
    pub hard: bool,
}
