//! Helpers the engine's scenario tests share: an engine with an in-memory
//! WAL, a fake hypervisor and seeded randomness, and calls that must
//! succeed or fail with a given code.
#![allow(dead_code)] // reason: each test binary uses a different subset

use std::collections::BTreeMap;

use xenapi::auth::PasswordHash;
use xenapi::engine::{Config, Engine};
use xenapi::hypervisor::FakeHypervisor;
use xenapi::rng::SeededEntropy;
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

pub type E = Engine<FakeHypervisor, MemStorage, SeededEntropy>;
pub const T0: Instant = Instant(1_795_507_615_000);

pub fn config() -> Config {
    let mut e = SeededEntropy(3);
    Config::new("root", PasswordHash::new("pw", 10, &mut e))
}

pub fn open(storage: MemStorage) -> E {
    open_with(config(), storage)
}

pub fn open_with(config: Config, storage: MemStorage) -> E {
    let mut e = Engine::open(config, FakeHypervisor::default(), storage, SeededEntropy(9)).unwrap();
    e.seed(T0, "host0", "127.0.0.1").unwrap();
    e
}

pub fn s(x: &str) -> Value {
    Value::str(x)
}

#[track_caller]
pub fn ok(e: &mut E, m: &str, p: Vec<Value>) -> Value {
    match e.call_value(T0, m, p) {
        Ok(v) => v,
        Err(err) => panic!("{m}: {err:?}"),
    }
}

#[track_caller]
pub fn fails(e: &mut E, m: &str, p: Vec<Value>, code: &str) -> Vec<String> {
    match e.call_value(T0, m, p) {
        Ok(v) => panic!("{m}: expected {code}, got {v:?}"),
        Err(err) => {
            assert_eq!(err.code, code, "{m}: {err:?}");
            err.params
        }
    }
}

pub fn login(e: &mut E) -> Value {
    ok(
        e,
        "session.login_with_password",
        vec![s("root"), s("pw"), s("1.0"), s("test")],
    )
}

pub fn new_vm(e: &mut E, sid: &Value, name: &str) -> Value {
    let mut rec = BTreeMap::new();
    rec.insert("name_label".to_string(), s(name));
    rec.insert("memory_static_max".to_string(), s("268435456"));
    ok(e, "VM.create", vec![sid.clone(), Value::Map(rec)])
}

/// `event.from(classes, token, 0)` that must succeed: its token and events.
pub fn event_from(e: &mut E, sid: &Value, classes: &[&str], token: Value) -> (Value, Vec<Value>) {
    let classes = Value::Array(classes.iter().map(|c| s(c)).collect());
    let Value::Map(b) = ok(
        e,
        "event.from",
        vec![sid.clone(), classes, token, Value::Float(0.0)],
    ) else {
        panic!("event.from returned no map")
    };
    let Some(Value::Array(events)) = b.get("events").cloned() else {
        panic!("event.from returned no events")
    };
    (b["token"].clone(), events)
}

/// A struct value from its fields.
pub fn map(fields: &[(&str, Value)]) -> Value {
    Value::Map(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// `class.get_<f>(r)` that must succeed.
#[track_caller]
pub fn get(e: &mut E, sid: &Value, class: &str, f: &str, r: &Value) -> Value {
    ok(e, &format!("{class}.get_{f}"), vec![sid.clone(), r.clone()])
}

/// The array a call returned.
#[track_caller]
pub fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("not an array: {other:?}"),
    }
}

/// The map a call returned.
#[track_caller]
pub fn smap(v: Value) -> BTreeMap<String, Value> {
    match v {
        Value::Map(m) => m,
        other => panic!("not a map: {other:?}"),
    }
}

/// The built-in template named `name` (exactly one).
#[track_caller]
pub fn template(e: &mut E, sid: &Value, name: &str) -> Value {
    let found = array(ok(e, "VM.get_by_name_label", vec![sid.clone(), s(name)]));
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    found[0].clone()
}

/// Runs an `Async.` call to its end: its task's result (the XML-RPC value
/// text unwrapped to a string) or its error_info.
#[track_caller]
pub fn run_async(e: &mut E, sid: &Value, m: &str, p: Vec<Value>) -> Result<String, Vec<Value>> {
    let task = ok(e, m, p);
    e.run_jobs(T0);
    let status = ok(e, "task.get_status", vec![sid.clone(), task.clone()]);
    if status == s("success") {
        let r = ok(e, "task.get_result", vec![sid.clone(), task]);
        let r = r.as_str().unwrap().to_string();
        Ok(r.trim_start_matches("<value>")
            .trim_end_matches("</value>")
            .to_string())
    } else {
        Err(array(ok(e, "task.get_error_info", vec![sid.clone(), task])))
    }
}

/// The default SR.
pub fn default_sr(e: &mut E, sid: &Value) -> Value {
    let pools = array(ok(e, "pool.get_all", vec![sid.clone()]));
    get(e, sid, "pool", "default_SR", &pools[0])
}

/// A user VDI of `size` bytes on the default SR.
pub fn new_vdi_of(e: &mut E, sid: &Value, size: i64, ty: &str) -> Value {
    let sr = default_sr(e, sid);
    ok(
        e,
        "VDI.create",
        vec![
            sid.clone(),
            map(&[
                ("SR", sr),
                ("virtual_size", Value::Int(size)),
                ("type", s(ty)),
                ("name_label", s("disk")),
            ]),
        ],
    )
}
