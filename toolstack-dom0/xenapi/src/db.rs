//! The in-memory object database: one table per class, records as field
//! vectors in schema order, a uuid index, and the one-to-many relations xapi
//! maintains (a VBD's `VM` field is mirrored in that VM's `VBDs` set).
//!
//! Every mutation is recorded as a [`Change`]; the engine drains them at the
//! end of a call into one WAL record and into the event log.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::schema::{class, class_id, classes, ClassId};
use crate::value::{Value, NULL_REF};

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Add,
    /// Modified.
    Mod,
    /// Destroyed.
    Del,
}

impl ChangeKind {
    /// xapi's `event_operation` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Add => "add",
            ChangeKind::Mod => "mod",
            ChangeKind::Del => "del",
        }
    }
}

/// One object changed by the current call.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Its class.
    pub class: ClassId,
    /// Its ref.
    pub reference: String,
    /// What happened (merged over the call).
    pub kind: ChangeKind,
    /// For `Del`, the record as it was.
    pub last: Option<Vec<Value>>,
}

/// A (child class, child ref field, parent class, parent set field) link.
pub const RELATIONS: &[(&str, &str, &str, &str)] = &[
    ("VBD", "VM", "VM", "VBDs"),
    ("VBD", "VDI", "VDI", "VBDs"),
    ("VIF", "VM", "VM", "VIFs"),
    ("VIF", "network", "network", "VIFs"),
    ("VDI", "SR", "SR", "VDIs"),
    ("VDI", "snapshot_of", "VDI", "snapshots"),
    ("PBD", "SR", "SR", "PBDs"),
    ("PBD", "host", "host", "PBDs"),
    ("PIF", "host", "host", "PIFs"),
    ("PIF", "network", "network", "PIFs"),
    ("console", "VM", "VM", "consoles"),
    ("VM", "resident_on", "host", "resident_VMs"),
    ("VM", "snapshot_of", "VM", "snapshots"),
    ("VM", "parent", "VM", "children"),
];

/// One class's objects.
#[derive(Default, Clone, Debug)]
pub struct Table {
    /// ref -> record (fields in schema order).
    pub objects: BTreeMap<String, Vec<Value>>,
    by_uuid: BTreeMap<String, String>,
}

/// The whole database.
#[derive(Clone, Debug)]
pub struct Db {
    tables: Vec<Table>,
    /// Pending changes keyed by object, with the order they were first made.
    changes: BTreeMap<(ClassId, String), (u64, Change)>,
    change_seq: u64,
    bytes: usize,
}

impl Default for Db {
    fn default() -> Self {
        Db::new()
    }
}

impl Db {
    /// An empty database.
    pub fn new() -> Db {
        Db {
            tables: classes().iter().map(|_| Table::default()).collect(),
            changes: BTreeMap::new(),
            change_seq: 0,
            bytes: 0,
        }
    }

    /// Approximate heap bytes held by all records (for the memory quota).
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    fn account(&mut self, reference: &str, rec: &[Value], add: bool) {
        let n = 64 + reference.len() + rec.iter().map(Value::approx_size).sum::<usize>();
        self.bytes = if add {
            self.bytes.saturating_add(n)
        } else {
            self.bytes.saturating_sub(n)
        };
    }

    /// The table of `class`.
    pub fn table(&self, c: ClassId) -> &Table {
        &self.tables[c]
    }

    /// Number of objects of `class`.
    pub fn count(&self, c: ClassId) -> usize {
        self.tables[c].objects.len()
    }

    /// The record of `reference`.
    pub fn get(&self, c: ClassId, reference: &str) -> Option<&Vec<Value>> {
        self.tables[c].objects.get(reference)
    }

    /// Field `f` of `reference`.
    pub fn field(&self, c: ClassId, reference: &str, f: &str) -> Option<&Value> {
        let i = class(c).field_index(f)?;
        self.get(c, reference).map(|r| &r[i])
    }

    /// The ref of the object with this uuid.
    pub fn by_uuid(&self, c: ClassId, uuid: &str) -> Option<&String> {
        self.tables[c].by_uuid.get(uuid)
    }

    /// Takes the changes recorded since the last call.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let mut v: Vec<(u64, Change)> = core::mem::take(&mut self.changes).into_values().collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, c)| c).collect()
    }

    /// True if changes are pending.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    fn note(&mut self, c: ClassId, reference: &str, kind: ChangeKind, last: Option<Vec<Value>>) {
        let key = (c, String::from(reference));
        if let Some((_, ch)) = self.changes.get_mut(&key) {
            match (ch.kind, kind) {
                (ChangeKind::Add, ChangeKind::Del) => {
                    self.changes.remove(&key);
                }
                (ChangeKind::Add, _) => {}
                (_, k) => {
                    ch.kind = k;
                    ch.last = last;
                }
            }
            return;
        }
        self.change_seq += 1;
        let change = Change {
            class: c,
            reference: key.1.clone(),
            kind,
            last,
        };
        self.changes.insert(key, (self.change_seq, change));
    }

    /// Records a `Mod` of an existing object without changing it
    /// (`event.inject`).
    pub fn touch(&mut self, c: ClassId, reference: &str) {
        if self.get(c, reference).is_some() {
            self.note(c, reference, ChangeKind::Mod, None);
        }
    }

    /// Inserts or replaces a record and maintains relations. Returns false if
    /// the record has the wrong number of fields (a caller bug).
    pub fn put(&mut self, c: ClassId, reference: &str, record: Vec<Value>) -> bool {
        if record.len() != class(c).fields.len() {
            return false;
        }
        let old = self.tables[c].objects.get(reference).cloned();
        if let Some(old) = &old {
            self.account(reference, old, false);
            self.unlink(c, reference, old);
            if let Some(u) = uuid_of(c, old) {
                self.tables[c].by_uuid.remove(&u);
            }
        }
        self.link(c, reference, &record);
        if let Some(u) = uuid_of(c, &record) {
            self.tables[c].by_uuid.insert(u, String::from(reference));
        }
        self.account(reference, &record, true);
        self.tables[c]
            .objects
            .insert(String::from(reference), record);
        let kind = if old.is_some() {
            ChangeKind::Mod
        } else {
            ChangeKind::Add
        };
        self.note(c, reference, kind, None);
        true
    }

    /// Removes an object and its relation links. Returns the old record.
    pub fn delete(&mut self, c: ClassId, reference: &str) -> Option<Vec<Value>> {
        let old = self.tables[c].objects.remove(reference)?;
        self.account(reference, &old, false);
        self.unlink(c, reference, &old);
        if let Some(u) = uuid_of(c, &old) {
            self.tables[c].by_uuid.remove(&u);
        }
        self.note(c, reference, ChangeKind::Del, Some(old.clone()));
        Some(old)
    }

    /// Sets field `f` of an existing object (relations maintained).
    pub fn set(&mut self, c: ClassId, reference: &str, f: usize, v: Value) -> bool {
        let Some(mut rec) = self.tables[c].objects.get(reference).cloned() else {
            return false;
        };
        if rec[f] == v {
            return true;
        }
        rec[f] = v;
        self.put(c, reference, rec)
    }

    /// Sets field `name` of an existing object.
    pub fn set_named(&mut self, c: ClassId, reference: &str, name: &str, v: Value) -> bool {
        match class(c).field_index(name) {
            Some(f) => self.set(c, reference, f, v),
            None => false,
        }
    }

    fn link(&mut self, c: ClassId, reference: &str, rec: &[Value]) {
        self.relink(c, reference, rec, true);
    }

    fn unlink(&mut self, c: ClassId, reference: &str, rec: &[Value]) {
        self.relink(c, reference, rec, false);
    }

    fn relink(&mut self, c: ClassId, reference: &str, rec: &[Value], add: bool) {
        let name = class(c).name;
        for (child, child_field, parent, parent_field) in RELATIONS {
            if *child != name {
                continue;
            }
            let (Some(pc), Some(cf)) = (class_id(parent), class(c).field_index(child_field)) else {
                continue;
            };
            let Some(parent_ref) = rec[cf].as_str() else {
                continue;
            };
            if parent_ref == NULL_REF {
                continue;
            }
            let pf = class(pc).field(parent_field);
            let Some(prec) = self.tables[pc].objects.get_mut(parent_ref) else {
                continue;
            };
            if let Value::Array(set) = &mut prec[pf] {
                let present = set.iter().any(|x| x.as_str() == Some(reference));
                let n = Value::str(reference).approx_size();
                if add && !present {
                    set.push(Value::str(reference));
                    self.bytes = self.bytes.saturating_add(n);
                } else if !add && present {
                    set.retain(|x| x.as_str() != Some(reference));
                    self.bytes = self.bytes.saturating_sub(n);
                } else {
                    continue;
                }
                let parent_ref = String::from(parent_ref);
                self.note(pc, &parent_ref, ChangeKind::Mod, None);
            }
        }
    }

    /// Loads a record during WAL replay: no change is recorded and relation
    /// sets are taken from the record as logged.
    pub fn load(&mut self, c: ClassId, reference: &str, record: Vec<Value>) {
        self.unload(c, reference);
        self.account(reference, &record, true);
        if let Some(u) = uuid_of(c, &record) {
            self.tables[c].by_uuid.insert(u, String::from(reference));
        }
        self.tables[c]
            .objects
            .insert(String::from(reference), record);
    }

    /// Removes a record during WAL replay.
    pub fn unload(&mut self, c: ClassId, reference: &str) {
        if let Some(old) = self.tables[c].objects.remove(reference) {
            self.account(reference, &old, false);
            if let Some(u) = uuid_of(c, &old) {
                self.tables[c].by_uuid.remove(&u);
            }
        }
    }
}

fn uuid_of(c: ClassId, rec: &[Value]) -> Option<String> {
    let i = class(c).field_index("uuid")?;
    rec[i].as_str().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_follow_child_lifecycle() {
        let mut db = Db::new();
        let vm = class_id("VM").unwrap();
        let vbd = class_id("VBD").unwrap();
        db.put(vm, "OpaqueRef:vm", class(vm).default_record());
        let mut r = class(vbd).default_record();
        r[class(vbd).field("VM")] = Value::str("OpaqueRef:vm");
        db.put(vbd, "OpaqueRef:vbd", r);
        let vbds = db.field(vm, "OpaqueRef:vm", "VBDs").unwrap().clone();
        assert_eq!(vbds, Value::Array(alloc::vec![Value::str("OpaqueRef:vbd")]));
        let ch = db.take_changes();
        assert_eq!(ch.len(), 2);
        assert!(ch.iter().all(|c| c.kind == ChangeKind::Add));
        let before = db.approx_bytes();
        db.delete(vbd, "OpaqueRef:vbd");
        assert!(db.approx_bytes() < before);
        let vbds = db.field(vm, "OpaqueRef:vm", "VBDs").unwrap().clone();
        assert_eq!(vbds, Value::Array(alloc::vec![]));
        let ch = db.take_changes();
        assert_eq!(ch.len(), 2);
        assert!(ch
            .iter()
            .any(|c| c.class == vbd && c.kind == ChangeKind::Del));
        assert!(ch
            .iter()
            .any(|c| c.class == vm && c.kind == ChangeKind::Mod));
    }

    #[test]
    fn add_then_delete_in_one_call_leaves_no_change() {
        let mut db = Db::new();
        let vm = class_id("VM").unwrap();
        db.put(vm, "OpaqueRef:a", class(vm).default_record());
        db.delete(vm, "OpaqueRef:a");
        assert!(db.take_changes().is_empty());
    }
}
