//! Replies written straight from the database: the big reads
//! (`<class>.get_all_records`, `event.from` from an empty token) are never
//! built as a cloned [`Value`] tree, the codecs walk the records instead.
//!
//! The codecs implement [`Emit`] (XML-RPC in [`crate::xmlrpc`], JSON in
//! [`crate::jsonrpc`]); a [`Payload`] drives it. A plain [`Value`] is a
//! payload, and so is a [`FromDb`]: a [`Streamed`] read over the database.
//! Both give the same bytes as the tree they stand for (maps in key
//! order), which the tests check against [`Streamed::to_value`].

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::db::Db;
use crate::events::Subscription;
use crate::schema::{class, classes, ClassId};
use crate::value::Value;

/// A writer of one wire encoding, driven value by value.
pub trait Emit {
    /// A whole value.
    fn value(&mut self, v: &Value);
    /// Opens a map (struct).
    fn map_start(&mut self);
    /// Starts entry `index` (0, 1, ...) of the open map, named `key`; its
    /// value follows.
    fn entry(&mut self, index: usize, key: &str);
    /// Ends the entry whose value was just written.
    fn entry_end(&mut self);
    /// Closes the map.
    fn map_end(&mut self);
    /// Opens an array.
    fn array_start(&mut self);
    /// Starts item `index` (0, 1, ...) of the open array.
    fn item(&mut self, index: usize);
    /// Closes the array.
    fn array_end(&mut self);
}

/// What a successful reply carries.
pub trait Payload {
    /// Writes it.
    fn emit(&self, e: &mut dyn Emit);
}

impl Payload for Value {
    fn emit(&self, e: &mut dyn Emit) {
        e.value(self)
    }
}

/// A read answered from the database as it is written.
#[derive(Clone, Debug, PartialEq)]
pub enum Streamed {
    /// `<class>.get_all_records`: ref → record.
    Records(ClassId),
    /// `<class>.get_record` of a ref the call checked.
    Record(ClassId, String),
    /// `<class>.get_<field>` (field index) of a ref the call checked.
    Field(ClassId, String, usize),
    /// `event.from` with the empty token: an `add` event for every object
    /// the subscriptions match, then the counts and the token.
    AllObjects {
        /// What the client subscribed to.
        subs: Vec<Subscription>,
        /// The current event id (every event carries it).
        id: i64,
        /// The call's time (XenAPI datetime).
        timestamp: String,
        /// `valid_ref_counts`.
        counts: Value,
        /// The token of the current event.
        token: String,
    },
}

/// A [`Streamed`] read over the database it reads.
pub struct FromDb<'a> {
    /// The database.
    pub db: &'a Db,
    /// The read.
    pub read: &'a Streamed,
}

/// Field indices of class `c` in name order (a record map's key order).
fn fields_by_name(c: ClassId) -> Vec<usize> {
    let fields = class(c).fields;
    let mut order: Vec<usize> = (0..fields.len()).collect();
    order.sort_by_key(|&i| fields[i].name);
    order
}

fn emit_record(e: &mut dyn Emit, c: ClassId, order: &[usize], rec: &[Value]) {
    let fields = class(c).fields;
    e.map_start();
    let mut n = 0;
    for &i in order {
        let Some(v) = rec.get(i) else { continue };
        e.entry(n, fields[i].name);
        e.value(v);
        e.entry_end();
        n += 1;
    }
    e.map_end();
}

/// Classes `event.from` reports (sessions are never broadcast).
fn event_classes() -> impl Iterator<Item = ClassId> {
    (0..classes().len()).filter(|&c| class(c).name != "session")
}

impl Streamed {
    /// True if an `AllObjects` read would report no event (the call then
    /// parks); `Records` always answers.
    pub fn is_empty(&self, db: &Db) -> bool {
        match self {
            Streamed::Records(_) | Streamed::Record(..) | Streamed::Field(..) => false,
            Streamed::AllObjects { subs, .. } => !event_classes().any(|c| {
                db.table(c)
                    .objects
                    .keys()
                    .any(|r| subs.iter().any(|s| s.matches(c, r)))
            }),
        }
    }

    /// The tree this read stands for (in-process callers; never on the
    /// wire path).
    pub fn to_value(&self, db: &Db) -> Value {
        match self {
            Streamed::Records(c) => Value::Map(
                db.table(*c)
                    .objects
                    .iter()
                    .map(|(r, rec)| (r.clone(), crate::engine::record_value(*c, rec)))
                    .collect(),
            ),
            Streamed::Record(c, r) => db
                .get(*c, r)
                .map_or(Value::Nil, |rec| crate::engine::record_value(*c, rec)),
            Streamed::Field(c, r, f) => db
                .get(*c, r)
                .and_then(|rec| rec.get(*f))
                .cloned()
                .unwrap_or(Value::Nil),
            Streamed::AllObjects {
                subs,
                id,
                timestamp,
                counts,
                token,
            } => {
                let mut events = Vec::new();
                for c in event_classes() {
                    for (r, rec) in &db.table(c).objects {
                        if !subs.iter().any(|s| s.matches(c, r)) {
                            continue;
                        }
                        let mut m = BTreeMap::new();
                        m.insert("id".to_string(), Value::Int(*id));
                        m.insert("timestamp".to_string(), Value::DateTime(timestamp.clone()));
                        m.insert(
                            "class".to_string(),
                            Value::String(class(c).name.to_ascii_lowercase()),
                        );
                        m.insert("operation".to_string(), Value::str("add"));
                        m.insert("ref".to_string(), Value::String(r.clone()));
                        m.insert("obj_uuid".to_string(), uuid_of(c, rec));
                        m.insert("snapshot".to_string(), crate::engine::record_value(c, rec));
                        events.push(Value::Map(m));
                    }
                }
                let mut batch = BTreeMap::new();
                batch.insert("events".to_string(), Value::Array(events));
                batch.insert("valid_ref_counts".to_string(), counts.clone());
                batch.insert("token".to_string(), Value::String(token.clone()));
                Value::Map(batch)
            }
        }
    }
}

fn uuid_of(c: ClassId, rec: &[Value]) -> Value {
    class(c)
        .field_index("uuid")
        .and_then(|i| rec.get(i))
        .cloned()
        .unwrap_or(Value::str(""))
}

impl Payload for FromDb<'_> {
    fn emit(&self, e: &mut dyn Emit) {
        match self.read {
            Streamed::Records(c) => {
                let order = fields_by_name(*c);
                e.map_start();
                for (n, (r, rec)) in self.db.table(*c).objects.iter().enumerate() {
                    e.entry(n, r);
                    emit_record(e, *c, &order, rec);
                    e.entry_end();
                }
                e.map_end();
            }
            // The call checked the ref and nothing ran since: the record
            // is there (an empty string stands in should it not be).
            Streamed::Record(c, r) => match self.db.get(*c, r) {
                Some(rec) => emit_record(e, *c, &fields_by_name(*c), rec),
                None => e.value(&Value::str("")),
            },
            Streamed::Field(c, r, f) => match self.db.get(*c, r).and_then(|rec| rec.get(*f)) {
                Some(v) => e.value(v),
                None => e.value(&Value::str("")),
            },
            Streamed::AllObjects {
                subs,
                id,
                timestamp,
                counts,
                token,
            } => {
                // Keys in order: events, token, valid_ref_counts.
                e.map_start();
                e.entry(0, "events");
                e.array_start();
                let (id, timestamp) = (Value::Int(*id), Value::DateTime(timestamp.clone()));
                let operation = Value::str("add");
                let mut n = 0;
                for c in event_classes() {
                    let order = fields_by_name(c);
                    let class_name = Value::String(class(c).name.to_ascii_lowercase());
                    for (r, rec) in &self.db.table(c).objects {
                        if !subs.iter().any(|s| s.matches(c, r)) {
                            continue;
                        }
                        e.item(n);
                        n += 1;
                        // Keys in order: class, id, obj_uuid, operation,
                        // ref, snapshot, timestamp.
                        e.map_start();
                        let uuid = class(c).field_index("uuid").and_then(|i| rec.get(i));
                        let empty = Value::str("");
                        let reference = Value::String(r.clone());
                        let plain: [(&str, &Value); 5] = [
                            ("class", &class_name),
                            ("id", &id),
                            ("obj_uuid", uuid.unwrap_or(&empty)),
                            ("operation", &operation),
                            ("ref", &reference),
                        ];
                        for (k, (key, v)) in plain.into_iter().enumerate() {
                            e.entry(k, key);
                            e.value(v);
                            e.entry_end();
                        }
                        e.entry(5, "snapshot");
                        emit_record(e, c, &order, rec);
                        e.entry_end();
                        e.entry(6, "timestamp");
                        e.value(&timestamp);
                        e.entry_end();
                        e.map_end();
                    }
                }
                e.array_end();
                e.entry_end();
                e.entry(1, "token");
                e.value(&Value::String(token.clone()));
                e.entry_end();
                e.entry(2, "valid_ref_counts");
                e.value(counts);
                e.entry_end();
                e.map_end();
            }
        }
    }
}
