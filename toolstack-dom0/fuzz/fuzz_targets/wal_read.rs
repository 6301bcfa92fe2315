//! Fuzz target: the WAL reader never panics, its good prefix is within the
//! log, and replaying any log into an engine never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenapi::auth::PasswordHash;
use xenapi::engine::{Config, Engine};
use xenapi::hypervisor::FakeHypervisor;
use xenapi::rng::SeededEntropy;
use xenapi::wal::{read_frames, read_log, MemStorage};

fuzz_target!(|data: &[u8]| {
    let f = read_frames(data);
    assert!(f.good_len <= data.len());
    let r = read_log(data);
    assert!(r.good_len <= data.len());
    let storage = MemStorage {
        durable: data.to_vec(),
        ..MemStorage::default()
    };
    let mut e = SeededEntropy(1);
    let config = Config::new("root", PasswordHash::new("pw", 1, &mut e));
    let engine = Engine::open(config, FakeHypervisor::default(), storage, e);
    assert!(engine.is_ok());
});
