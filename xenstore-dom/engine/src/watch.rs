//! Watches: registration records and matching of change events.
//!
//! Read first: docs/misc/xenstore.txt "Watches". An event on path P fires
//! every watch whose path is P or an ancestor of P; the recursive removal
//! of an ancestor of a watch's path fires that watch with its own path.
//! A watcher only hears about nodes it may read (XSA-115): the event
//! carries the node's permissions (the old ones for a removal, and for a
//! watch inside a removed subtree the old permissions of the watched node,
//! so "an application may rely on being sent a watch when a path which it
//! _is_ able to read is deleted even if that leaves only a nonexistent
//! unreadable parent"). Special
//! `@introduceDomain` / `@releaseDomain` events go to privileged callers
//! and to domains those special nodes' permissions let read. An event whose
//! payload would exceed XENSTORE_PAYLOAD_MAX is not sent (XSA-324).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::path::{is_child, parent};
use crate::perms::{Caller, Perms};
use crate::wire::PAYLOAD_MAX;

/// A connection handle given out by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// A change to report to watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Canonical path that changed (or a special `@` name).
    pub path: String,
    /// Permissions governing who may hear of it.
    pub perms: Perms,
    /// A recursive removal: watches below `path` fire too.
    pub removed: bool,
    /// For a removal: removed nodes below `path` whose permissions differ
    /// from their parent's (every other removed node has its nearest
    /// listed ancestor's, or `perms`).
    pub below: BTreeMap<String, Perms>,
}

impl Event {
    /// A node was created or changed.
    pub fn changed(path: &str, perms: Perms) -> Event {
        Event {
            path: String::from(path),
            perms,
            removed: false,
            below: BTreeMap::new(),
        }
    }

    /// A node and its subtree were removed; `below` as in [`Event::below`].
    pub fn removed(path: &str, perms: Perms, below: BTreeMap<String, Perms>) -> Event {
        Event {
            path: String::from(path),
            perms,
            removed: true,
            below,
        }
    }

    /// The permissions that governed `path` (inside a removed subtree).
    fn perms_at(&self, path: &str) -> &Perms {
        let mut cur = Some(path);
        while let Some(p) = cur {
            if p.len() <= self.path.len() {
                break;
            }
            if let Some(perms) = self.below.get(p) {
                return perms;
            }
            cur = parent(p);
        }
        &self.perms
    }
}

/// One registered watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The connection that owns it.
    pub conn: ConnId,
    /// Absolute watched path or special `@` name.
    pub path: String,
    /// The client's token, echoed in events.
    pub token: Vec<u8>,
    /// Set when the client gave a relative path: `prefix` is stripped from
    /// reported paths.
    pub relative_prefix: Option<String>,
}

impl Watch {
    /// The path to report for `event` and the permissions that decide who
    /// may hear of it, if this watch matches it.
    pub fn matches<'a>(&'a self, event: &'a Event) -> Option<(&'a str, &'a Perms)> {
        if is_child(&event.path, &self.path) {
            Some((&event.path, &event.perms))
        } else if event.removed && is_child(&self.path, &event.path) {
            Some((&self.path, event.perms_at(&self.path)))
        } else {
            None
        }
    }

    /// The WATCH_EVENT payload `<epath>|<token>|`, or `None` if it would
    /// not fit in one message (XSA-324).
    pub fn event_payload(&self, epath: &str) -> Option<Vec<u8>> {
        let shown = match &self.relative_prefix {
            Some(prefix) => epath.strip_prefix(prefix.as_str()).unwrap_or(epath),
            None => epath,
        };
        let len = shown.len() + 1 + self.token.len() + 1;
        if len > PAYLOAD_MAX {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(shown.as_bytes());
        out.push(0);
        out.extend_from_slice(&self.token);
        out.push(0);
        Some(out)
    }
}

/// Whether `caller` may hear about a node with these permissions.
pub fn may_see(caller: &Caller, perms: &Perms) -> bool {
    caller.privileged || perms.rights(caller).read
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn watch(path: &str, rel: Option<&str>) -> Watch {
        Watch {
            conn: ConnId(1),
            path: path.into(),
            token: b"tok".to_vec(),
            relative_prefix: rel.map(String::from),
        }
    }

    #[test]
    fn matching_rules() {
        let p = Perms::owned_by(0);
        let w = watch("/a/b", None);
        let at = |e: &Event| w.matches(e).map(|(path, _)| String::from(path));
        assert_eq!(
            at(&Event::changed("/a/b/c", p.clone())),
            Some("/a/b/c".into())
        );
        assert_eq!(at(&Event::changed("/a/b", p.clone())), Some("/a/b".into()));
        assert_eq!(at(&Event::changed("/a", p.clone())), None);
        assert_eq!(
            at(&Event::removed("/a", p.clone(), BTreeMap::new())),
            Some("/a/b".into())
        );
        assert_eq!(at(&Event::changed("/a/bc", p.clone())), None);
        let root = watch("/", None);
        assert!(root.matches(&Event::changed("/x", p.clone())).is_some());
        assert!(root.matches(&Event::changed("@releaseDomain", p)).is_none());
    }

    #[test]
    fn removal_uses_the_watched_nodes_old_perms() {
        let top = Perms::owned_by(0);
        let mine = Perms::owned_by(5);
        let mut below = BTreeMap::new();
        below.insert(String::from("/a/b"), mine.clone());
        let e = Event::removed("/a", top.clone(), below);
        assert_eq!(watch("/a/b/c", None).matches(&e).map(|m| m.1), Some(&mine));
        assert_eq!(watch("/a/b", None).matches(&e).map(|m| m.1), Some(&mine));
        assert_eq!(watch("/a/x", None).matches(&e).map(|m| m.1), Some(&top));
        assert_eq!(watch("/", None).matches(&e).map(|m| m.1), Some(&top));
    }

    #[test]
    fn relative_and_oversize() {
        let w = watch("/local/domain/3/x", Some("/local/domain/3/"));
        assert_eq!(
            w.event_payload("/local/domain/3/x/y").unwrap(),
            b"x/y\0tok\0"
        );
        let mut big = watch("/a", None);
        big.token = vec![b't'; PAYLOAD_MAX - 4];
        assert!(big.event_payload("/a").is_some());
        assert!(big.event_payload("/a/b").is_none());
    }
}
