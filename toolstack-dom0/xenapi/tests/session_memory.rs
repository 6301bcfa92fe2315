//! Measures what one session makes dom0 hold at worst, against the
//! documented [`SESSION_BYTES`]: the session table's bound ([`MAX_SESSIONS`])
//! is derived from it. One test per binary: the counting allocator is global.

use xenapi::event_api::{MAX_REGISTRATIONS, MAX_SUBSCRIPTION_REF_BYTES};
use xenapi::session::{MAX_ORIGINATOR_BYTES, MAX_SESSIONS, SESSION_BYTES, SESSION_TABLE_BYTES};
use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;
mod memory;

const _: () = assert!(MAX_SESSIONS * SESSION_BYTES <= SESSION_TABLE_BYTES);

#[global_allocator]
static GLOBAL: memory::Counting = memory::Counting;

#[test]
fn worst_case_session_fits_session_bytes() {
    const N: usize = 200;
    let mut e = open(MemStorage::default());
    // Warm up: the password cache, the first B-tree nodes.
    login(&mut e);
    let subs: Vec<Value> = (0..MAX_REGISTRATIONS)
        .map(|i| {
            let r = format!(
                "OpaqueRef:{i:0>width$}",
                width = MAX_SUBSCRIPTION_REF_BYTES - 10
            );
            s(&format!("VM/{r}"))
        })
        .collect();
    let before = memory::net();
    for i in 0..N {
        let originator = format!("{i:0>MAX_ORIGINATOR_BYTES$}");
        let sid = ok(
            &mut e,
            "session.login_with_password",
            vec![s("root"), s("pw"), s("1.0"), s(&originator)],
        );
        ok(
            &mut e,
            "event.register",
            vec![sid, Value::Array(subs.clone())],
        );
    }
    let per_session = (memory::net() - before) as usize / N;
    println!("one worst-case session holds {per_session} bytes");
    assert!(
        per_session <= SESSION_BYTES,
        "a session holds {per_session} B, more than SESSION_BYTES = {SESSION_BYTES}"
    );
}
