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
