//! Fuzz target: whole requests through the engine (HTTP, both codecs,
//! dispatch, commit) never panic. The engine is seeded once with
//! deterministic entropy and a root session whose ref is fixed
//! (`OpaqueRef:` + the first uuid after seeding), so corpus entries can make
//! authenticated calls; each input runs against a clone.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xenapi::auth::PasswordHash;
use xenapi::engine::{Config, Engine};
use xenapi::hypervisor::FakeHypervisor;
use xenapi::rng::SeededEntropy;
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

type E = Engine<FakeHypervisor, MemStorage, SeededEntropy>;

const NOW: Instant = Instant(1_700_000_000_000);

fn base() -> &'static E {
    static BASE: OnceLock<E> = OnceLock::new();
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
        if std::env::var_os("XENAPI_FUZZ_PRINT_SESSION").is_some() {
            eprintln!("fuzz session: {sid:?}");
        }
        engine
    })
}

fuzz_target!(|data: &[u8]| {
    let mut engine = base().clone();
    let mut buf = data;
    // Serve pipelined requests the way a board would.
    for _ in 0..8 {
        match engine.handle(NOW, None, buf) {
            xenapi::engine::Handled::Reply {
                consumed, close, ..
            } => {
                engine.run_jobs(NOW);
                if close || consumed == 0 || consumed > buf.len() {
                    break;
                }
                buf = &buf[consumed..];
            }
            _ => break,
        }
    }
});
