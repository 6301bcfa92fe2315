//! Fuzz target: `SR.scan` over whatever listing the SR (a peer: the
//! storage domain) gives. Never panics; afterwards every VDI the SR lists
//! under a well-formed uuid has a record that is not missing and has the
//! listed size, every other record of the SR is missing, and a second
//! scan changes nothing.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xenapi::auth::PasswordHash;
use xenapi::engine::{Config, Engine};
use xenapi::hypervisor::FakeHypervisor;
use xenapi::rng::SeededEntropy;
use xenapi::storage::is_uuid;
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

type E = Engine<FakeHypervisor, MemStorage, SeededEntropy>;

const NOW: Instant = Instant(1_700_000_000_000);

fn base() -> &'static (E, Value, Value) {
    static BASE: OnceLock<(E, Value, Value)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut e = SeededEntropy(1);
        let config = Config::new("root", PasswordHash::new("pw", 1, &mut e));
        let mut engine = Engine::open(config, FakeHypervisor::default(), MemStorage::default(), e)
            .expect("open");
        engine.seed(NOW, "fuzz", "127.0.0.1").expect("seed");
        let sid = engine
            .call_value(
                NOW,
                "session.login_with_password",
                vec![Value::str("root"), Value::str("pw")],
            )
            .expect("login");
        let Ok(Value::Array(srs)) = engine.call_value(NOW, "SR.get_all", vec![sid.clone()]) else {
            panic!("SR.get_all")
        };
        // One VDI the database knows, for the listing to keep or lose.
        let mut rec = std::collections::BTreeMap::new();
        rec.insert("SR".to_string(), srs[0].clone());
        rec.insert("virtual_size".to_string(), Value::Int(1 << 20));
        rec.insert("type".to_string(), Value::str("user"));
        engine
            .call_value(NOW, "VDI.create", vec![sid.clone(), Value::Map(rec)])
            .expect("VDI.create");
        (engine, sid, srs[0].clone())
    })
}

fn name(chunk: &[u8]) -> String {
    // Even first byte: a well-formed uuid from the bytes; odd: raw text.
    match chunk.first() {
        Some(b) if b % 2 == 0 => {
            let mut hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            hex.push_str(&"0".repeat(32));
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
        }
        _ => String::from_utf8_lossy(chunk).into_owned(),
    }
}

fn field(e: &mut E, sid: &Value, f: &str, r: &Value) -> Value {
    e.call_value(NOW, &format!("VDI.get_{f}"), vec![sid.clone(), r.clone()])
        .expect("VDI field")
}

fuzz_target!(|data: &[u8]| {
    let (base, sid, sr) = base();
    let mut e = base.clone();
    let fake = e.hypervisor().storage.as_mut().expect("fake SR");
    // The known VDI stays on the SR unless the input starts with 0xFF.
    if data.first() == Some(&0xFF) {
        fake.vdis.clear();
    }
    let mut names: Vec<String> = fake.vdis.keys().cloned().collect();
    for chunk in data.split(|b| *b == 0xFE).take(64) {
        let n = name(chunk.get(..16).unwrap_or(chunk));
        let size = chunk
            .get(16..24)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .unwrap_or(4096);
        let of = chunk
            .get(24)
            .and_then(|i| names.get(usize::from(*i) % names.len().max(1)).cloned());
        fake.vdis.insert(n.clone(), (size, size / 2, of));
        names.push(n);
    }
    let listed = fake.vdis.clone();
    let r = e.call_value(NOW, "SR.scan", vec![sid.clone(), sr.clone()]);
    assert!(r.is_ok(), "{r:?}");
    let Ok(Value::Array(all)) = e.call_value(NOW, "SR.get_VDIs", vec![sid.clone(), sr.clone()])
    else {
        panic!("SR.get_VDIs")
    };
    let mut seen = 0;
    for v in &all {
        let loc = field(&mut e, sid, "location", v);
        let loc = loc.as_str().expect("location");
        let missing = field(&mut e, sid, "missing", v) == Value::Bool(true);
        match listed.get(loc) {
            Some((size, _, _)) => {
                assert!(!missing, "{loc} listed but missing");
                let want = i64::try_from(*size).unwrap_or(i64::MAX);
                assert_eq!(field(&mut e, sid, "virtual_size", v), Value::Int(want));
                seen += 1;
            }
            None => assert!(missing, "{loc} not listed but present"),
        }
    }
    assert_eq!(seen, listed.keys().filter(|k| is_uuid(k)).count());
    let r = e.call_value(NOW, "SR.scan", vec![sid.clone(), sr.clone()]);
    assert!(r.is_ok(), "{r:?}");
    let Ok(Value::Array(again)) = e.call_value(NOW, "SR.get_VDIs", vec![sid.clone(), sr.clone()])
    else {
        panic!("SR.get_VDIs")
    };
    assert_eq!(again.len(), all.len());
});
