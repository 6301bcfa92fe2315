//! The event log behind `event.from` and the legacy `event.next`.
//!
//! Every committed change gets an id, in commit order, and is kept (with its
//! snapshot) in a bounded window. A token names the last id a client has
//! seen, plus the boot epoch; `event.from` returns every retained event after
//! it. A token older than the window, or from another boot, gets EVENTS_LOST
//! and the client re-reads everything.
//!
//! While the window has room every change is kept, so a client sees each
//! change once, in order. When it has none, it makes room as xapi's
//! `event.from` answers (each object changed since a generation once, in
//! its state now) before it loses anything: an event whose object changed
//! again later in the window gives up its snapshot and is no longer sent
//! (a tombstone keeps its place and id), oldest first; only when no such
//! event is left does the oldest event go, and then every token before it
//! gets EVENTS_LOST. So however often a few objects change (50 VMs
//! starting at once), the window holds at least each one's latest state.
//! A client whose token is before a tombstone gets the object's newer
//! event; if the object's `add` is no longer sent, a `mod` comes as its
//! `add` (a `del` stays a `del`). The search for an object's earlier event when it changes looks
//! back at most [`SUPERSEDE_LOOKBACK`] events (a bounded cost per commit;
//! an older one is simply never superseded).

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::db::ChangeKind;
use crate::error::{ApiError, EVENTS_LOST, EVENT_FROM_TOKEN_PARSE_FAILURE};
use crate::schema::{class, class_id_nocase, ClassId};
use crate::value::Value;

/// Events kept for `event.from` / `event.next`.
pub const DEFAULT_CAPACITY: usize = 8192;
/// Events looked back at, newest first, for an object's earlier event
/// when it changes again.
pub const SUPERSEDE_LOOKBACK: usize = 512;
/// Snapshot bytes kept for `event.from` / `event.next` (approximate, as
/// `Value::approx_size` counts them): dom0's budget share,
/// [`crate::budget::EVENT_APPROX_BYTES`].
pub const DEFAULT_MAX_BYTES: usize = crate::budget::EVENT_APPROX_BYTES;

/// One committed change.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Its id (1, 2, ...).
    pub id: u64,
    /// When it committed (XenAPI datetime).
    pub timestamp: String,
    /// Class of the object.
    pub class: ClassId,
    /// add / mod / del.
    pub kind: ChangeKind,
    /// The object's ref.
    pub reference: String,
    /// The object's record after the change (before it, for `del`).
    pub snapshot: Value,
    /// The id of the object's `add` if it is in the window (this event's
    /// own id for an `add`); 0 if not.
    pub created: u64,
    /// The object changed again later in the window: this event may give
    /// up its snapshot for room.
    pub has_newer: bool,
    /// It gave up its snapshot: never sent.
    pub superseded: bool,
}

impl Event {
    /// Bytes the window counts for it.
    fn cost(&self) -> usize {
        if self.superseded {
            0
        } else {
            self.snapshot.approx_size() + self.reference.len() + 64
        }
    }

    /// The event record as xapi sends it.
    pub fn to_value(&self) -> Value {
        let mut m = alloc::collections::BTreeMap::new();
        m.insert("id".to_string(), Value::Int(self.id as i64));
        m.insert(
            "timestamp".to_string(),
            Value::DateTime(self.timestamp.clone()),
        );
        m.insert(
            "class".to_string(),
            Value::String(class(self.class).name.to_ascii_lowercase()),
        );
        m.insert("operation".to_string(), Value::str(self.kind.as_str()));
        m.insert("ref".to_string(), Value::String(self.reference.clone()));
        let uuid = match &self.snapshot {
            Value::Map(r) => r.get("uuid").cloned().unwrap_or(Value::str("")),
            _ => Value::str(""),
        };
        m.insert("obj_uuid".to_string(), uuid);
        m.insert("snapshot".to_string(), self.snapshot.clone());
        Value::Map(m)
    }
}

/// What a client subscribed to: `*`, a class name, or `class/ref`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Every class.
    All,
    /// One class.
    Class(ClassId),
    /// One object.
    Object(ClassId, String),
}

impl Subscription {
    /// Parses a list of subscription strings; unknown classes are ignored.
    pub fn parse_all(names: &[String]) -> Vec<Subscription> {
        let mut out = Vec::new();
        for n in names {
            if n == "*" {
                out.push(Subscription::All);
            } else if let Some((c, r)) = n.split_once('/') {
                if let Some(c) = class_id_nocase(c) {
                    out.push(Subscription::Object(c, r.to_string()));
                }
            } else if let Some(c) = class_id_nocase(n) {
                out.push(Subscription::Class(c));
            }
        }
        out
    }

    /// True if `e` matches.
    pub fn matches(&self, c: ClassId, reference: &str) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Class(x) => *x == c,
            Subscription::Object(x, r) => *x == c && r == reference,
        }
    }
}

/// The bounded event window.
#[derive(Clone, Debug)]
pub struct EventLog {
    events: VecDeque<Event>,
    last_id: u64,
    /// The newest live (not superseded) event dropped from the window:
    /// a token before it missed a change.
    lost_upto: u64,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    epoch: String,
}

impl EventLog {
    /// An empty log for boot `epoch` keeping at most `capacity` events and
    /// about `max_bytes` of snapshots (the oldest go first).
    pub fn new(epoch: String, capacity: usize, max_bytes: usize) -> EventLog {
        EventLog {
            events: VecDeque::new(),
            last_id: 0,
            lost_upto: 0,
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
            epoch,
        }
    }

    /// Appends a committed change; returns its id.
    pub fn push(
        &mut self,
        timestamp: String,
        c: ClassId,
        kind: ChangeKind,
        reference: String,
        snapshot: Value,
    ) -> u64 {
        self.last_id += 1;
        let mut created = if kind == ChangeKind::Add {
            self.last_id
        } else {
            0
        };
        // The object's previous event, if recent, may give way to this one
        // when room is short.
        if let Some(old) = self
            .events
            .iter_mut()
            .rev()
            .take(SUPERSEDE_LOOKBACK)
            .find(|e| !e.superseded && e.class == c && e.reference == reference)
        {
            if created == 0 {
                created = old.created;
            }
            old.has_newer = true;
        }
        let event = Event {
            id: self.last_id,
            timestamp,
            class: c,
            kind,
            reference,
            snapshot,
            created,
            has_newer: false,
            superseded: false,
        };
        let size = event.cost();
        // Room: superseded snapshots first (nothing is lost), then the
        // oldest events (a loss for the tokens before them).
        while self.bytes.saturating_add(size) > self.max_bytes {
            let Some(old) = self
                .events
                .iter_mut()
                .find(|e| e.has_newer && !e.superseded)
            else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(old.cost());
            old.superseded = true;
            old.snapshot = Value::Nil;
        }
        while self.events.len() >= self.capacity
            || (!self.events.is_empty() && self.bytes.saturating_add(size) > self.max_bytes)
        {
            if let Some(old) = self.events.pop_front() {
                self.bytes = self.bytes.saturating_sub(old.cost());
                if !old.superseded {
                    self.lost_upto = old.id;
                }
            }
        }
        self.bytes = self.bytes.saturating_add(size);
        self.events.push_back(event);
        self.last_id
    }

    /// The id of the newest event (0 if none).
    pub fn current(&self) -> u64 {
        self.last_id
    }

    /// The token naming `id`.
    pub fn token(&self, id: u64) -> String {
        alloc::format!("{}.{:020}", self.epoch, id)
    }

    /// Parses a token: `Ok(None)` for the empty token (start from a full
    /// snapshot), EVENTS_LOST for another boot's token.
    pub fn parse_token(&self, token: &str) -> Result<Option<u64>, ApiError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || ApiError::new(EVENT_FROM_TOKEN_PARSE_FAILURE, &[token]);
        let (epoch, id) = token.split_once('.').ok_or_else(bad)?;
        let id: u64 = id.parse().map_err(|_| bad())?;
        if epoch != self.epoch || id > self.last_id {
            return Err(ApiError::new(EVENTS_LOST, &[]));
        }
        Ok(Some(id))
    }

    /// Whether event `id` is in the window and sent.
    fn sent(&self, id: u64) -> bool {
        let first = self.events.front().map_or(u64::MAX, |e| e.id);
        id >= first
            && self
                .events
                .binary_search_by_key(&id, |e| e.id)
                .is_ok_and(|i| !self.events[i].superseded)
    }

    /// Events after `from` matching `subs`, as records for the client.
    /// EVENTS_LOST if a change after `from` was dropped.
    pub fn since(&self, from: u64, subs: &[Subscription]) -> Result<Vec<Value>, ApiError> {
        if from < self.lost_upto {
            return Err(ApiError::new(EVENTS_LOST, &[]));
        }
        let mut out = Vec::new();
        for e in &self.events {
            if e.id <= from
                || e.superseded
                || !subs.iter().any(|s| s.matches(e.class, &e.reference))
            {
                continue;
            }
            // Made after `from`, its `add` no longer sent: this `mod` is it.
            let unseen_add = e.kind == ChangeKind::Mod && e.created > from && !self.sent(e.created);
            let mut v = e.to_value();
            if unseen_add {
                if let Value::Map(m) = &mut v {
                    m.insert(
                        "operation".to_string(),
                        Value::str(ChangeKind::Add.as_str()),
                    );
                }
            }
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::class_id;

    fn push(log: &mut EventLog, r: &str) -> u64 {
        let vm = class_id("VM").unwrap();
        log.push(
            String::new(),
            vm,
            ChangeKind::Mod,
            r.to_string(),
            Value::Nil,
        )
    }

    fn push_kind(log: &mut EventLog, kind: ChangeKind, r: &str, bytes: usize) -> u64 {
        let vm = class_id("VM").unwrap();
        let snapshot = Value::String("x".repeat(bytes));
        log.push(String::new(), vm, kind, r.to_string(), snapshot)
    }

    fn ops(log: &EventLog, from: u64) -> Vec<(String, String, usize)> {
        let subs = Subscription::parse_all(&["*".to_string()]);
        log.since(from, &subs)
            .unwrap()
            .iter()
            .map(|e| match e {
                Value::Map(m) => (
                    m["ref"].as_str().unwrap().to_string(),
                    m["operation"].as_str().unwrap().to_string(),
                    match &m["snapshot"] {
                        Value::String(s) => s.len(),
                        _ => 0,
                    },
                ),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn with_room_every_change_is_kept() {
        let mut log = EventLog::new("e".to_string(), 100, 1 << 20);
        let t0 = log.current();
        push_kind(&mut log, ChangeKind::Add, "a", 10);
        push_kind(&mut log, ChangeKind::Mod, "a", 11);
        push_kind(&mut log, ChangeKind::Mod, "a", 12);
        let ops: Vec<_> = ops(&log, t0).into_iter().map(|(_, o, n)| (o, n)).collect();
        assert_eq!(
            ops,
            [
                ("add".to_string(), 10),
                ("mod".to_string(), 11),
                ("mod".to_string(), 12)
            ]
        );
    }

    #[test]
    fn an_object_changed_often_holds_one_snapshot_and_nothing_is_lost() {
        // Room for about three 1 KiB snapshots.
        let mut log = EventLog::new("e".to_string(), 8192, 3 * 1200);
        let t0 = log.current();
        push_kind(&mut log, ChangeKind::Add, "a", 1000);
        let t1 = log.current();
        for i in 0..1000 {
            push_kind(&mut log, ChangeKind::Mod, "a", 1000 + i % 7);
            push_kind(&mut log, ChangeKind::Mod, "b", 1000);
        }
        assert!(log.bytes <= 3 * 1200, "{}", log.bytes);
        // From before a's creation: a as an add, in its latest state; b
        // (made before the window) as a mod.
        let got = ops(&log, t0);
        assert!(got.len() <= 3, "{got:?}");
        let last = |r: &str| got.iter().rev().find(|(x, _, _)| x == r).cloned();
        assert_eq!(
            last("a"),
            Some(("a".to_string(), "add".to_string(), 1000 + 999 % 7))
        );
        assert_eq!(last("b"), Some(("b".to_string(), "mod".to_string(), 1000)));
        assert_eq!(
            got.iter().filter(|(_, o, _)| o == "add").count(),
            1,
            "{got:?}"
        );
        // From after it: a mod.
        assert_eq!(ops(&log, t1)[0].1, "mod");
        // Distinct objects past the bound are a loss.
        let mut small = EventLog::new("e".to_string(), 100, 3 * 1200);
        let s0 = small.current();
        for r in ["p", "q", "r", "s"] {
            push_kind(&mut small, ChangeKind::Mod, r, 1000);
        }
        assert_eq!(small.since(s0, &[]), Err(ApiError::new(EVENTS_LOST, &[])));
    }

    #[test]
    fn a_coalesced_object_made_and_gone_is_an_add_then_a_del() {
        // Room for about two 1 KiB snapshots: the add gives way.
        let mut log = EventLog::new("e".to_string(), 100, 2 * 1200);
        let t0 = log.current();
        push_kind(&mut log, ChangeKind::Add, "a", 1000);
        let t1 = log.current();
        push_kind(&mut log, ChangeKind::Mod, "a", 1000);
        push_kind(&mut log, ChangeKind::Del, "a", 1000);
        let ops0: Vec<_> = ops(&log, t0).into_iter().map(|(_, o, _)| o).collect();
        assert_eq!(ops0, ["add", "del"]);
        let ops1: Vec<_> = ops(&log, t1).into_iter().map(|(_, o, _)| o).collect();
        assert_eq!(ops1, ["mod", "del"]);
    }

    #[test]
    fn each_event_once_and_window_loss() {
        let mut log = EventLog::new("e".to_string(), 3, 1 << 20);
        let subs = Subscription::parse_all(&["vm".to_string()]);
        let t0 = log.current();
        push(&mut log, "a");
        push(&mut log, "b");
        let got = log.since(t0, &subs).unwrap();
        assert_eq!(got.len(), 2);
        let t1 = log.current();
        assert!(log.since(t1, &subs).unwrap().is_empty());
        push(&mut log, "c");
        push(&mut log, "d");
        push(&mut log, "e");
        assert_eq!(log.since(t0, &subs), Err(ApiError::new(EVENTS_LOST, &[])));
        assert_eq!(log.since(t1, &subs).unwrap().len(), 3);
        let tok = log.token(t1);
        assert_eq!(log.parse_token(&tok), Ok(Some(t1)));
        assert!(log.parse_token("other.00000000000000000001").is_err());
        assert_eq!(
            log.parse_token("garbage").unwrap_err().code,
            EVENT_FROM_TOKEN_PARSE_FAILURE
        );
        let none = Subscription::parse_all(&["sr".to_string()]);
        let mut small = EventLog::new("e".to_string(), 100, 200);
        push(&mut small, "a");
        push(&mut small, "b");
        push(&mut small, "c");
        assert!(small.since(0, &subs).is_err(), "byte bound evicts");
        assert!(log.since(t1, &none).unwrap().is_empty());
    }
}
