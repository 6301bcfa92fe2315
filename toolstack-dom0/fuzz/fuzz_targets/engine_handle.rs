//! Fuzz target: whole requests through the engine (HTTP, both codecs,
//! dispatch) never panic, on a seeded host with a logged-in session.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenapi::auth::PasswordHash;
use xenapi::engine::{Config, Engine};
use xenapi::hypervisor::FakeHypervisor;
use xenapi::rng::SeededEntropy;
use xenapi::value::Instant;
use xenapi::wal::MemStorage;

fuzz_target!(|data: &[u8]| {
    let mut e = SeededEntropy(1);
    let config = Config::new("root", PasswordHash::new("pw", 1, &mut e));
    let Ok(mut engine) = Engine::open(config, FakeHypervisor::default(), MemStorage::default(), e)
    else {
        return;
    };
    let now = Instant(1_700_000_000_000);
    let _ = engine.seed(now, "fuzz", "127.0.0.1");
    let _ = engine.handle(now, None, data);
    engine.run_jobs(now);
});
