//! A VM start builds its domain a step per pass of dom0's loop
//! (`Hypervisor::build_step`): other calls are served between the steps,
//! one build runs at a time, and a build whose caller goes (a cancelled
//! task, a connection that stopped coming back) is given up.

mod common;

use common::*;
use xenapi::engine::Handled;
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

fn start(e: &mut E, sid: &Value, vm: &Value) -> Value {
    ok(
        e,
        "Async.VM.start",
        vec![
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ],
    )
}

fn status(e: &mut E, sid: &Value, task: &Value) -> Value {
    ok(e, "task.get_status", vec![sid.clone(), task.clone()])
}

fn power(e: &mut E, sid: &Value, vm: &Value) -> Value {
    get(e, sid, "VM", "power_state", vm)
}

fn uuid(e: &mut E, sid: &Value, vm: &Value) -> String {
    get(e, sid, "VM", "uuid", vm).as_str().unwrap().to_string()
}

#[test]
fn a_start_builds_a_step_per_pass_with_other_calls_served_between() {
    let mut e = open(MemStorage::default());
    e.hypervisor().build_steps = 3;
    let sid = login(&mut e);
    let (a, b) = (new_vm(&mut e, &sid, "a"), new_vm(&mut e, &sid, "b"));
    let (ua, ub) = (uuid(&mut e, &sid, &a), uuid(&mut e, &sid, &b));
    let (ta, tb) = (start(&mut e, &sid, &a), start(&mut e, &sid, &b));
    // Each pass: one step of a's build; between passes the engine answers
    // others (b's start waits its turn, nothing of it begun).
    for pass in 0..3 {
        assert!(!e.run_next_job(T0), "pass {pass}: a's build goes on");
        assert_eq!(status(&mut e, &sid, &ta), s("pending"));
        assert_eq!(power(&mut e, &sid, &a), s("Halted"));
        assert!(e.building() && e.has_jobs());
    }
    assert!(e.run_next_job(T0), "the last step: a is built and starts");
    assert_eq!(status(&mut e, &sid, &ta), s("success"));
    assert_eq!(power(&mut e, &sid, &a), s("Running"));
    assert_eq!(e.hypervisor().build_step_calls, vec![ua.clone(); 4]);
    assert_eq!(status(&mut e, &sid, &tb), s("pending"));
    e.run_jobs(T0);
    assert_eq!(status(&mut e, &sid, &tb), s("success"));
    assert_eq!(power(&mut e, &sid, &b), s("Running"));
    let calls = &e.hypervisor().build_step_calls;
    assert_eq!(calls[4..], vec![ub; 4][..]);
    assert!(!e.has_jobs());
}

#[test]
fn a_vm_being_built_cannot_be_started_again_or_destroyed() {
    let mut e = open(MemStorage::default());
    e.hypervisor().build_steps = 3;
    let sid = login(&mut e);
    let a = new_vm(&mut e, &sid, "a");
    let ta = start(&mut e, &sid, &a);
    e.run_next_job(T0);
    let again = vec![
        sid.clone(),
        a.clone(),
        Value::Bool(false),
        Value::Bool(false),
    ];
    let p = fails(&mut e, "VM.start", again, "OTHER_OPERATION_IN_PROGRESS");
    assert_eq!(p[0], "VM");
    fails(
        &mut e,
        "VM.destroy",
        vec![sid.clone(), a.clone()],
        "OTHER_OPERATION_IN_PROGRESS",
    );
    e.run_jobs(T0);
    assert_eq!(status(&mut e, &sid, &ta), s("success"));
    assert_eq!(e.hypervisor().domains.len(), 1, "one domain, not two");
}

#[test]
fn a_cancelled_start_gives_its_build_up() {
    let mut e = open(MemStorage::default());
    e.hypervisor().build_steps = 3;
    let sid = login(&mut e);
    let (a, b) = (new_vm(&mut e, &sid, "a"), new_vm(&mut e, &sid, "b"));
    let ua = uuid(&mut e, &sid, &a);
    let (ta, tb) = (start(&mut e, &sid, &a), start(&mut e, &sid, &b));
    e.run_next_job(T0);
    e.run_next_job(T0);
    ok(&mut e, "task.cancel", vec![sid.clone(), ta.clone()]);
    assert_eq!(status(&mut e, &sid, &ta), s("cancelled"));
    assert_eq!(e.hypervisor().aborted_builds, vec![ua]);
    assert_eq!(power(&mut e, &sid, &a), s("Halted"));
    // The next start goes on.
    e.run_jobs(T0);
    assert_eq!(status(&mut e, &sid, &tb), s("success"));
    assert_eq!(e.hypervisor().domains.len(), 1);
}

/// `VM.start` of `vm` through the wire, as a relay serves it: the head
/// and body bytes.
fn wire_start(sid: &Value, vm: &Value) -> Vec<u8> {
    let body = xenapi::xmlrpc::encode_call(
        "VM.start",
        &[
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ],
    );
    let mut out = format!(
        "POST /RPC2 HTTP/1.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[test]
fn a_sync_start_parks_on_its_build_and_an_abandoned_one_is_undone() {
    let mut e = open(MemStorage::default());
    e.hypervisor().build_steps = 2;
    let sid = login(&mut e);
    let (a, b) = (new_vm(&mut e, &sid, "a"), new_vm(&mut e, &sid, "b"));
    let ua = uuid(&mut e, &sid, &a);
    // A sync start parks while its domain is built; served again with the
    // instant it first came (as the relay does), it carries the build on.
    let req = wire_start(&sid, &a);
    let first = T0;
    assert!(matches!(e.handle(first, None, &req), Handled::Park { .. }));
    assert!(e.building(), "the board keeps passing while a build runs");
    assert!(matches!(
        e.handle(first, Some(first), &req),
        Handled::Park { .. }
    ));
    assert!(matches!(
        e.handle(first, Some(first), &req),
        Handled::Reply { .. }
    ));
    assert_eq!(power(&mut e, &sid, &a), s("Running"));
    assert!(!e.building());
    // b's start parks, then its caller goes: nobody carries the build on.
    let req = wire_start(&sid, &b);
    let t = Instant(T0.0 + 1);
    assert!(matches!(e.handle(t, None, &req), Handled::Park { .. }));
    assert!(e.building());
    // Until it is stale, the board's passes leave it be; then it goes.
    assert!(!e.run_next_job(Instant(t.0 + 1_000)));
    assert!(e.building());
    assert!(!e.run_next_job(Instant(t.0 + xenapi::power::BUILD_STALE_MS + 1)));
    assert!(!e.building());
    let ub = uuid(&mut e, &sid, &b);
    assert_eq!(e.hypervisor().aborted_builds, vec![ub]);
    assert_eq!(power(&mut e, &sid, &b), s("Halted"));
    // And a later start of b builds it.
    let tb = start(&mut e, &sid, &b);
    e.run_jobs(Instant(t.0 + xenapi::power::BUILD_STALE_MS + 2));
    assert_eq!(status(&mut e, &sid, &tb), s("success"));
    let _ = ua;
}

#[test]
fn a_sync_start_whose_connection_closes_gives_its_build_up_at_once() {
    use std::collections::VecDeque;
    use xcp_relay::ToToolstack;
    use xenapi::relayed::Relayed;
    let mut e = open(MemStorage::default());
    e.hypervisor().build_steps = 3;
    let sid = login(&mut e);
    let a = new_vm(&mut e, &sid, "a");
    let ua = uuid(&mut e, &sid, &a);
    let mut r = Relayed::new();
    let mut out = VecDeque::new();
    let msg = ToToolstack::Data {
        conn: 4,
        bytes: wire_start(&sid, &a),
    };
    r.on_message(&mut e, T0, 1, msg, &mut out);
    assert!(e.building(), "parked on its build");
    assert!(out.is_empty(), "no reply yet: {out:?}");
    r.on_message(&mut e, T0, 1, ToToolstack::Closed { conn: 4 }, &mut out);
    assert!(!e.building());
    assert_eq!(e.hypervisor().aborted_builds, vec![ua]);
    assert_eq!(power(&mut e, &sid, &a), s("Halted"));
}
