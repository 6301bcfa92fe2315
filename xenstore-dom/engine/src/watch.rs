//! Watches: registration records and matching of change events.
//!
//! Read first: docs/misc/xenstore.txt "Watches". An event on path P fires
//! every watch whose path is P or an ancestor of P; the recursive removal
//! of an ancestor of a watch's path fires that watch with its own path.
//! A watcher only hears about nodes it may read (XSA-115): the event
//! carries the node's permissions (the old ones for a removal). Special
//! `@introduceDomain` / `@releaseDomain` events go to privileged callers
//! and to domains those special nodes' permissions let read. An event whose
//! payload would exceed XENSTORE_PAYLOAD_MAX is not sent (XSA-324).

use alloc::string::String;
use alloc::vec::Vec;

use crate::path::is_child;
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
}

impl Event {
    /// A node was created or changed.
    pub fn changed(path: &str, perms: Perms) -> Event {
        Event {
            path: String::from(path),
            perms,
            removed: false,
        }
    }

    /// A node and its subtree were removed.
    pub fn removed(path: &str, perms: Perms) -> Event {
        Event {
            path: String::from(path),
            perms,
            removed: true,
        }
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
    /// The path to report for `event`, if this watch matches it.
    pub fn matches<'a>(&'a self, event: &'a Event) -> Option<&'a str> {
        if is_child(&event.path, &self.path) {
            Some(&event.path)
        } else if event.removed && is_child(&self.path, &event.path) {
            Some(&self.path)
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

/// Whether `caller` may hear about `event`.
pub fn may_see(caller: &Caller, event: &Event) -> bool {
    caller.privileged || event.perms.rights(caller).read
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
        assert_eq!(
            w.matches(&Event::changed("/a/b/c", p.clone())),
            Some("/a/b/c")
        );
        assert_eq!(w.matches(&Event::changed("/a/b", p.clone())), Some("/a/b"));
        assert_eq!(w.matches(&Event::changed("/a", p.clone())), None);
        assert_eq!(w.matches(&Event::removed("/a", p.clone())), Some("/a/b"));
        assert_eq!(w.matches(&Event::changed("/a/bc", p.clone())), None);
        let root = watch("/", None);
        assert!(root.matches(&Event::changed("/x", p.clone())).is_some());
        assert!(root.matches(&Event::changed("@releaseDomain", p)).is_none());
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
