//! `VM.clean_shutdown` / `VM.clean_reboot` as xapi does them: the guest is
//! asked through `control/shutdown`, the call parks until the guest stops,
//! and fails with `VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT` or
//! `VM_SHUTDOWN_TIMEOUT` when it does not answer in time.

use xenapi::engine::Handled;
use xenapi::hypervisor::FakeState;
use xenapi::lifecycle::{AfterStop, StopReason};
use xenapi::power::{CLEAN_ACK_MS, CLEAN_TIMEOUT_MS};
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

mod common;
use common::*;

/// An engine whose guests have a xenstore tree, a session and a running
/// VM whose stop policies would otherwise `restart` (so the tests see the
/// clean calls override them); returns (session, vm, domid).
fn setup() -> (E, Value, Value, u32) {
    let mut e = open(MemStorage::default());
    e.hypervisor().with_xenstore = true;
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "guest");
    for field in ["actions_after_shutdown", "actions_after_reboot"] {
        ok(
            &mut e,
            &format!("VM.set_{field}"),
            vec![sid.clone(), vm.clone(), s("restart")],
        );
    }
    let f = Value::Bool(false);
    ok(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f],
    );
    let domid = ok(&mut e, "VM.get_domid", vec![sid.clone(), vm.clone()])
        .as_int()
        .unwrap() as u32;
    (e, sid, vm, domid)
}

/// The JSON-RPC request for `method(session, vm)` over HTTP.
fn request(method: &str, sid: &Value, vm: &Value) -> Vec<u8> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","method":"{method}","params":["{}","{}"],"id":1}}"#,
        sid.as_str().unwrap(),
        vm.as_str().unwrap()
    );
    format!(
        "POST /jsonrpc HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Runs the parked call again at `now`: its reply body, or `None` if it
/// parks again.
fn again(e: &mut E, now: Instant, req: &[u8]) -> Option<String> {
    match e.handle(now, Some(T0), req) {
        Handled::Park { .. } => None,
        Handled::Reply { bytes, .. } => Some(String::from_utf8_lossy(&bytes.to_vec()).into()),
        other => panic!("{other:?}"),
    }
}

fn power(e: &mut E, sid: &Value, vm: &Value) -> String {
    ok(e, "VM.get_power_state", vec![sid.clone(), vm.clone()])
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn clean_shutdown_asks_the_guest_and_answers_once_it_stopped() {
    let (mut e, sid, vm, d) = setup();
    let req = request("VM.clean_shutdown", &sid, &vm);
    let Handled::Park { until } = e.handle(T0, None, &req) else {
        panic!("the call waits for the guest");
    };
    assert_eq!(until, Instant(T0.0 + CLEAN_ACK_MS));
    assert_eq!(e.hypervisor().control[&d], "poweroff");
    assert_eq!(
        e.hypervisor().domains[&d],
        FakeState::Running,
        "asked, not forced"
    );
    // A second clean call on the same VM meanwhile is refused.
    let other = request("VM.clean_reboot", &sid, &vm);
    let Handled::Reply { bytes, .. } = e.handle(Instant(T0.0 + 1), None, &other) else {
        panic!()
    };
    assert!(String::from_utf8_lossy(&bytes.to_vec()).contains("OTHER_OPERATION_IN_PROGRESS"));
    // The guest acknowledges: the call now waits for the stop.
    e.hypervisor().control.insert(d, String::new());
    assert_eq!(again(&mut e, Instant(T0.0 + 100), &req), None);
    assert_eq!(power(&mut e, &sid, &vm), "Running");
    // The guest powers off; its `restart` policy is overridden: Halted.
    e.hypervisor().domains.insert(d, FakeState::Shutdown);
    let stopped = e
        .domain_stopped(Instant(T0.0 + 200), d, StopReason::Poweroff)
        .unwrap()
        .expect("handled");
    assert_eq!(stopped.outcome, AfterStop::Halted);
    let reply = again(&mut e, Instant(T0.0 + 201), &req).expect("answers");
    assert!(reply.contains("\"result\":\"\""), "{reply}");
    assert_eq!(power(&mut e, &sid, &vm), "Halted");
    assert!(e.hypervisor().domains.is_empty(), "destroyed");
}

#[test]
fn clean_reboot_starts_the_vm_again_whatever_its_policy() {
    let (mut e, sid, vm, d) = setup();
    ok(
        &mut e,
        "VM.set_actions_after_reboot",
        vec![sid.clone(), vm.clone(), s("destroy")],
    );
    let req = request("VM.clean_reboot", &sid, &vm);
    assert!(matches!(e.handle(T0, None, &req), Handled::Park { .. }));
    assert_eq!(e.hypervisor().control[&d], "reboot");
    e.hypervisor().control.insert(d, String::new());
    let stopped = e
        .domain_stopped(Instant(T0.0 + 50), d, StopReason::Reboot)
        .unwrap()
        .expect("handled");
    let AfterStop::Restarted { domid: new } = stopped.outcome else {
        panic!("{stopped:?}");
    };
    assert_ne!(new, d);
    let reply = again(&mut e, Instant(T0.0 + 51), &req).expect("answers");
    assert!(reply.contains("\"result\":\"\""), "{reply}");
    assert_eq!(power(&mut e, &sid, &vm), "Running");
    assert_eq!(e.hypervisor().domains[&new], FakeState::Running);
}

#[test]
fn a_guest_that_never_acknowledges_fails_the_call_and_keeps_running() {
    let (mut e, sid, vm, d) = setup();
    let req = request("VM.clean_shutdown", &sid, &vm);
    assert!(matches!(e.handle(T0, None, &req), Handled::Park { .. }));
    assert_eq!(again(&mut e, Instant(T0.0 + CLEAN_ACK_MS - 1), &req), None);
    let reply = again(&mut e, Instant(T0.0 + CLEAN_ACK_MS), &req).expect("answers");
    assert!(
        reply.contains("VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT"),
        "{reply}"
    );
    assert_eq!(power(&mut e, &sid, &vm), "Running");
    assert_eq!(e.hypervisor().domains[&d], FakeState::Running);
    // Nothing is left waiting: a new clean call is taken.
    let req2 = request("VM.clean_shutdown", &sid, &vm);
    let later = Instant(T0.0 + CLEAN_ACK_MS + 1);
    assert!(matches!(e.handle(later, None, &req2), Handled::Park { .. }));
}

#[test]
fn a_guest_that_acknowledges_but_never_stops_times_out() {
    let (mut e, sid, vm, d) = setup();
    let req = request("VM.clean_shutdown", &sid, &vm);
    assert!(matches!(e.handle(T0, None, &req), Handled::Park { .. }));
    e.hypervisor().control.insert(d, String::new());
    let Handled::Park { until } = e.handle(Instant(T0.0 + 10), Some(T0), &req) else {
        panic!()
    };
    assert_eq!(until, Instant(T0.0 + CLEAN_TIMEOUT_MS));
    let reply = again(&mut e, until, &req).expect("answers");
    assert!(reply.contains("VM_SHUTDOWN_TIMEOUT"), "{reply}");
    assert_eq!(power(&mut e, &sid, &vm), "Running");
}

#[test]
fn without_a_xenstore_tree_the_guest_is_shut_down_from_outside() {
    let (mut e, sid, vm, _) = setup();
    e.hypervisor().control.clear();
    let reply = match e.handle(T0, None, &request("VM.clean_shutdown", &sid, &vm)) {
        Handled::Reply { bytes, .. } => String::from_utf8_lossy(&bytes.to_vec()).to_string(),
        other => panic!("{other:?}"),
    };
    assert!(reply.contains("\"result\":\"\""), "{reply}");
    assert_eq!(power(&mut e, &sid, &vm), "Halted");
}

fn task_status(e: &mut E, sid: &Value, task: &Value) -> String {
    ok(e, "task.get_status", vec![sid.clone(), task.clone()])
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn async_clean_shutdown_keeps_its_task_pending_until_the_guest_stops() {
    let (mut e, sid, vm, d) = setup();
    let task = e
        .call_value(T0, "Async.VM.clean_shutdown", vec![sid.clone(), vm.clone()])
        .unwrap();
    e.run_jobs(Instant(T0.0 + 1));
    assert_eq!(e.hypervisor().control[&d], "poweroff", "asked, not forced");
    assert_eq!(task_status(&mut e, &sid, &task), "pending");
    assert!(e.has_parked_jobs());
    e.hypervisor().control.insert(d, String::new());
    e.run_jobs(Instant(T0.0 + 50));
    assert_eq!(
        task_status(&mut e, &sid, &task),
        "pending",
        "acked, not stopped"
    );
    e.domain_stopped(Instant(T0.0 + 60), d, StopReason::Poweroff)
        .unwrap()
        .expect("handled");
    e.run_jobs(Instant(T0.0 + 61));
    assert_eq!(task_status(&mut e, &sid, &task), "success");
    assert!(!e.has_parked_jobs());
    assert_eq!(power(&mut e, &sid, &vm), "Halted");
}

#[test]
fn a_cancelled_async_clean_shutdown_lets_the_next_one_through() {
    let (mut e, sid, vm, _) = setup();
    let task = e
        .call_value(T0, "Async.VM.clean_shutdown", vec![sid.clone(), vm.clone()])
        .unwrap();
    e.run_jobs(Instant(T0.0 + 1));
    ok(&mut e, "task.cancel", vec![sid.clone(), task.clone()]);
    assert_eq!(task_status(&mut e, &sid, &task), "cancelled");
    assert!(!e.has_parked_jobs());
    // Nothing waits on the old request: a new call is taken.
    let req = request("VM.clean_shutdown", &sid, &vm);
    assert!(matches!(
        e.handle(Instant(T0.0 + 2), None, &req),
        Handled::Park { .. }
    ));
}

#[test]
fn a_request_whose_caller_went_away_does_not_block_the_next() {
    let (mut e, sid, vm, d) = setup();
    // A synchronous call parks, then its connection goes: nobody runs it
    // again. The guest stops anyway.
    let first = request("VM.clean_reboot", &sid, &vm);
    assert!(matches!(e.handle(T0, None, &first), Handled::Park { .. }));
    e.domain_stopped(Instant(T0.0 + 5), d, StopReason::Reboot)
        .unwrap()
        .expect("handled");
    assert_eq!(power(&mut e, &sid, &vm), "Running");
    let second = request("VM.clean_shutdown", &sid, &vm);
    assert!(matches!(
        e.handle(Instant(T0.0 + 10), None, &second),
        Handled::Park { .. }
    ));
}
