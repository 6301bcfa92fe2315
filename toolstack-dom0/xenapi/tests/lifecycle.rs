//! A VM's domain stopping on its own (`Engine::domain_stopped`): each
//! `actions_after_*` policy, events, WAL replay, the crash-loop cap, and
//! stops the engine must ignore.

use std::collections::BTreeMap;

use xenapi::hypervisor::FakeState;
use xenapi::lifecycle::{AfterStop, StopReason, MAX_AUTO_RESTARTS, RESTART_WINDOW_MS};
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

mod common;
use common::*;

/// A session and a started VM whose `field` is `policy`; returns (session,
/// vm, domid).
fn running_vm(e: &mut E, field: &str, policy: &str) -> (Value, Value, u32) {
    let sid = login(e);
    let vm = new_vm(e, &sid, "guest");
    ok(
        e,
        &format!("VM.set_{field}"),
        vec![sid.clone(), vm.clone(), s(policy)],
    );
    ok(
        e,
        "VM.start",
        vec![
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ],
    );
    let domid = domid(e, &sid, &vm);
    assert!(domid > 0);
    (sid, vm, domid as u32)
}

fn domid(e: &mut E, sid: &Value, vm: &Value) -> i64 {
    ok(e, "VM.get_domid", vec![sid.clone(), vm.clone()])
        .as_int()
        .unwrap()
}

fn power(e: &mut E, sid: &Value, vm: &Value) -> Value {
    ok(e, "VM.get_power_state", vec![sid.clone(), vm.clone()])
}

/// The guest shuts itself down: Xen holds the domain in the shutdown state.
fn guest_stops(e: &mut E, domid: u32) {
    e.hypervisor().domains.insert(domid, FakeState::Shutdown);
}

#[test]
fn crash_with_destroy_halts_the_vm_and_tells_event_from() {
    let mut e = open(MemStorage::default());
    let (sid, vm, d) = running_vm(&mut e, "actions_after_crash", "destroy");
    assert_eq!(e.running_domids(), [d]);
    let classes = Value::Array(vec![s("vm"), s("vm_metrics")]);
    let Value::Map(b) = ok(
        &mut e,
        "event.from",
        vec![sid.clone(), classes.clone(), s(""), Value::Float(0.0)],
    ) else {
        panic!()
    };
    let token = b["token"].clone();
    guest_stops(&mut e, d);
    let stopped = e.domain_stopped(T0, d, StopReason::Crash).unwrap().unwrap();
    assert_eq!(stopped.outcome, AfterStop::Halted);
    assert_eq!(stopped.policy, "actions_after_crash");
    assert_eq!(stopped.name, "guest");
    assert_eq!(Value::str(&stopped.vm), vm);
    assert!(e.hypervisor().domains.is_empty(), "the domain is destroyed");
    assert_eq!(power(&mut e, &sid, &vm), s("Halted"));
    assert_eq!(domid(&mut e, &sid, &vm), -1);
    assert_eq!(
        ok(&mut e, "VM.get_resident_on", vec![sid.clone(), vm.clone()]),
        s("OpaqueRef:NULL")
    );
    assert!(e.running_domids().is_empty());
    let Value::Map(b) = ok(
        &mut e,
        "event.from",
        vec![sid.clone(), classes, token, Value::Float(0.0)],
    ) else {
        panic!()
    };
    let Value::Array(events) = &b["events"] else {
        panic!()
    };
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|ev| {
            let Value::Map(m) = ev else { panic!() };
            (
                m["class"].as_str().unwrap().to_string(),
                m["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(seen.contains(&("vm".into(), "mod".into())), "{seen:?}");
    assert!(
        seen.contains(&("vm_metrics".into(), "mod".into())),
        "{seen:?}"
    );
    let snapshot = events
        .iter()
        .find_map(|ev| match ev {
            Value::Map(m) if m["class"] == s("vm") => Some(m["snapshot"].clone()),
            _ => None,
        })
        .unwrap();
    let Value::Map(snapshot) = snapshot else {
        panic!()
    };
    assert_eq!(snapshot["power_state"], s("Halted"));
    assert_eq!(snapshot["domid"], Value::Int(-1));
    let metrics = ok(&mut e, "VM.get_metrics", vec![sid.clone(), vm]);
    assert_eq!(
        ok(
            &mut e,
            "VM_metrics.get_current_domain_type",
            vec![sid, metrics]
        ),
        s("unspecified")
    );
}

#[test]
fn each_policy_value_does_what_it_names() {
    let cases = [
        ("actions_after_crash", "restart", StopReason::Crash, true),
        (
            "actions_after_crash",
            "coredump_and_restart",
            StopReason::Crash,
            true,
        ),
        (
            "actions_after_crash",
            "rename_restart",
            StopReason::Crash,
            true,
        ),
        (
            "actions_after_crash",
            "coredump_and_destroy",
            StopReason::Crash,
            false,
        ),
        ("actions_after_reboot", "restart", StopReason::Reboot, true),
        ("actions_after_reboot", "destroy", StopReason::Reboot, false),
        (
            "actions_after_shutdown",
            "restart",
            StopReason::Poweroff,
            true,
        ),
        (
            "actions_after_shutdown",
            "destroy",
            StopReason::Poweroff,
            false,
        ),
        ("actions_after_shutdown", "restart", StopReason::Other, true),
    ];
    for (field, policy, reason, restarts) in cases {
        let mut e = open(MemStorage::default());
        let (sid, vm, d) = running_vm(&mut e, field, policy);
        guest_stops(&mut e, d);
        let stopped = e.domain_stopped(T0, d, reason).unwrap().unwrap();
        assert_eq!(stopped.policy, field, "{policy} {reason:?}");
        let live: Vec<u32> = e.hypervisor().domains.keys().copied().collect();
        if restarts {
            let AfterStop::Restarted { domid: new } = stopped.outcome else {
                panic!("{field}={policy} {reason:?}: {:?}", stopped.outcome)
            };
            assert_ne!(new, d);
            assert_eq!(live, [new], "the old domain destroyed, a new one built");
            assert_eq!(
                e.hypervisor().domains[&new],
                FakeState::Running,
                "and unpaused"
            );
            assert_eq!(power(&mut e, &sid, &vm), s("Running"));
            assert_eq!(domid(&mut e, &sid, &vm), new as i64);
            assert_eq!(e.running_domids(), [new]);
        } else {
            assert_eq!(stopped.outcome, AfterStop::Halted, "{field}={policy}");
            assert!(live.is_empty());
            assert_eq!(power(&mut e, &sid, &vm), s("Halted"));
        }
    }
}

#[test]
fn preserve_leaves_the_domain_and_stops_watching_it() {
    let mut e = open(MemStorage::default());
    let (sid, vm, d) = running_vm(&mut e, "actions_after_crash", "preserve");
    guest_stops(&mut e, d);
    let before = e.generation();
    let stopped = e.domain_stopped(T0, d, StopReason::Crash).unwrap().unwrap();
    assert_eq!(stopped.outcome, AfterStop::Preserved);
    assert_eq!(e.hypervisor().domains[&d], FakeState::Shutdown);
    assert_eq!(power(&mut e, &sid, &vm), s("Running"));
    assert_eq!(domid(&mut e, &sid, &vm), d as i64);
    assert_eq!(e.generation(), before, "nothing changed, no event");
    assert!(e.running_domids().is_empty(), "no longer watched");
    assert_eq!(e.domain_stopped(T0, d, StopReason::Crash).unwrap(), None);
    // The user clears it up.
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    assert!(e.hypervisor().domains.is_empty());
    assert_eq!(power(&mut e, &sid, &vm), s("Halted"));
}

#[test]
fn stops_of_unknown_or_handled_domids_are_ignored() {
    let mut e = open(MemStorage::default());
    let (_sid, _vm, d) = running_vm(&mut e, "actions_after_shutdown", "destroy");
    let wal = e.storage_for_tests().durable.len();
    let before = e.generation();
    assert_eq!(e.domain_stopped(T0, 0, StopReason::Crash).unwrap(), None);
    assert_eq!(
        e.domain_stopped(T0, d + 100, StopReason::Poweroff).unwrap(),
        None
    );
    assert_eq!(e.generation(), before);
    assert_eq!(e.storage_for_tests().durable.len(), wal, "nothing logged");
    assert_eq!(e.hypervisor().domains.len(), 1, "nothing destroyed");
    guest_stops(&mut e, d);
    assert!(e
        .domain_stopped(T0, d, StopReason::Poweroff)
        .unwrap()
        .is_some());
    let after = e.generation();
    // The board may see the same stop twice (VIRQ and timer).
    assert_eq!(e.domain_stopped(T0, d, StopReason::Poweroff).unwrap(), None);
    assert_eq!(e.generation(), after);
}

#[test]
fn the_outcome_survives_a_toolstack_crash() {
    let mut e = open(MemStorage::default());
    let (sid, halted, d1) = running_vm(&mut e, "actions_after_crash", "destroy");
    let mut rec = BTreeMap::new();
    rec.insert("name_label".to_string(), s("other"));
    let restarted = ok(&mut e, "VM.create", vec![sid.clone(), Value::Map(rec)]);
    ok(
        &mut e,
        "VM.set_actions_after_reboot",
        vec![sid.clone(), restarted.clone(), s("restart")],
    );
    ok(
        &mut e,
        "VM.start",
        vec![
            sid.clone(),
            restarted.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ],
    );
    let d2 = domid(&mut e, &sid, &restarted) as u32;
    guest_stops(&mut e, d1);
    guest_stops(&mut e, d2);
    e.domain_stopped(T0, d1, StopReason::Crash).unwrap();
    let Some(AfterStop::Restarted { domid: d3 }) = e
        .domain_stopped(T0, d2, StopReason::Reboot)
        .unwrap()
        .map(|s| s.outcome)
    else {
        panic!()
    };
    // Only what was synced survives; replay without the restart resync.
    let mut e2 = open(e.storage_for_tests().crash());
    let sid = ok(
        &mut e2,
        "session.login_with_password",
        vec![s("root"), s("pw"), s("1.0"), s("test")],
    );
    assert_eq!(power(&mut e2, &sid, &halted), s("Halted"));
    assert_eq!(domid(&mut e2, &sid, &halted), -1);
    assert_eq!(power(&mut e2, &sid, &restarted), s("Running"));
    assert_eq!(domid(&mut e2, &sid, &restarted), d3 as i64);
}

#[test]
fn a_crash_loop_is_restarted_five_times_a_minute_then_left_halted() {
    let mut e = open(MemStorage::default());
    let (sid, vm, mut d) = running_vm(&mut e, "actions_after_crash", "restart");
    let mut now = T0;
    for n in 0..MAX_AUTO_RESTARTS {
        now = Instant(now.0 + 1000);
        guest_stops(&mut e, d);
        match e.domain_stopped(now, d, StopReason::Crash).unwrap() {
            Some(s) => match s.outcome {
                AfterStop::Restarted { domid } => d = domid,
                other => panic!("restart {n}: {other:?}"),
            },
            None => panic!("restart {n} ignored"),
        }
    }
    guest_stops(&mut e, d);
    let stopped = e
        .domain_stopped(Instant(now.0 + 1000), d, StopReason::Crash)
        .unwrap()
        .unwrap();
    assert_eq!(
        stopped.outcome,
        AfterStop::GaveUp {
            restarts: MAX_AUTO_RESTARTS
        }
    );
    assert!(e.hypervisor().domains.is_empty());
    assert_eq!(power(&mut e, &sid, &vm), s("Halted"));
    // Started again by hand, it gets a fresh allowance; and restarts spread
    // wider than the window never hit the cap.
    ok(
        &mut e,
        "VM.start",
        vec![
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ],
    );
    let mut d = domid(&mut e, &sid, &vm) as u32;
    for n in 0..2 * MAX_AUTO_RESTARTS {
        now = Instant(now.0 + RESTART_WINDOW_MS / 4);
        guest_stops(&mut e, d);
        match e.domain_stopped(now, d, StopReason::Crash).unwrap() {
            Some(s) => match s.outcome {
                AfterStop::Restarted { domid } => d = domid,
                other => panic!("spread restart {n}: {other:?}"),
            },
            None => panic!("spread restart {n} ignored"),
        }
    }
}

#[test]
fn a_vanished_domain_halts_its_vm_whatever_the_policy() {
    let mut e = open(MemStorage::default());
    let (sid, vm, d) = running_vm(&mut e, "actions_after_shutdown", "restart");
    e.hypervisor().domains.remove(&d);
    let stopped = e
        .domain_stopped(T0, d, StopReason::Vanished)
        .unwrap()
        .unwrap();
    assert_eq!(stopped.outcome, AfterStop::Halted);
    assert_eq!(stopped.destroy_error, None, "nothing to destroy");
    assert_eq!(power(&mut e, &sid, &vm), s("Halted"));
}

#[test]
fn a_failed_restart_leaves_the_vm_halted() {
    let mut e = open(MemStorage::default());
    let (sid, vm, d) = running_vm(&mut e, "actions_after_crash", "restart");
    guest_stops(&mut e, d);
    e.hypervisor().fail_next_build = Some("out of memory".into());
    let stopped = e.domain_stopped(T0, d, StopReason::Crash).unwrap().unwrap();
    assert!(
        matches!(&stopped.outcome, AfterStop::RestartFailed(m) if m.contains("out of memory")),
        "{:?}",
        stopped.outcome
    );
    assert!(e.hypervisor().domains.is_empty());
    assert_eq!(power(&mut e, &sid, &vm), s("Halted"));
    assert_eq!(domid(&mut e, &sid, &vm), -1);
}

#[test]
fn a_paused_vm_that_stops_is_handled_too() {
    let mut e = open(MemStorage::default());
    let (sid, vm, d) = running_vm(&mut e, "actions_after_shutdown", "destroy");
    ok(&mut e, "VM.pause", vec![sid.clone(), vm.clone()]);
    assert_eq!(e.running_domids(), [d]);
    guest_stops(&mut e, d);
    e.domain_stopped(T0, d, StopReason::Poweroff).unwrap();
    assert_eq!(power(&mut e, &sid, &vm), s("Halted"));
}

#[test]
fn a_poisoned_engine_refuses() {
    let mut e = open(MemStorage::default());
    let (_sid, _vm, d) = running_vm(&mut e, "actions_after_crash", "destroy");
    e.storage_for_tests().fail = true;
    guest_stops(&mut e, d);
    let err = e.domain_stopped(T0, d, StopReason::Crash).unwrap_err();
    assert_eq!(err.code, "INTERNAL_ERROR");
    let err = e.domain_stopped(T0, d, StopReason::Crash).unwrap_err();
    assert_eq!(err.code, "INTERNAL_ERROR");
}

#[test]
fn restored_storage_gets_the_whole_database_and_the_engine_serves_again() {
    let mut e = open(MemStorage::default());
    let (sid, vm, d) = running_vm(&mut e, "actions_after_crash", "destroy");
    e.storage_for_tests().fail = true;
    guest_stops(&mut e, d);
    assert!(e.domain_stopped(T0, d, StopReason::Crash).is_err());
    assert!(e.poisoned());
    // Still failing: stays poisoned.
    assert!(e.storage_restored().is_err());
    assert!(e.poisoned());
    // The storage domain is back (its log lost what the failed call wrote).
    let storage = e.storage_for_tests();
    storage.fail = false;
    storage.buffered.clear();
    e.storage_restored().expect("restored");
    assert!(!e.poisoned());
    assert_eq!(power(&mut e, &sid, &vm), s("Halted"));
    let name = ok(&mut e, "VM.get_name_label", vec![sid.clone(), vm.clone()]);
    // Everything in memory is durable now: a crash and a reopen keep it,
    // the failed call's change included.
    let durable = e.storage_for_tests().crash();
    let mut reopened = open(durable);
    let sid = login(&mut reopened);
    let found = ok(
        &mut reopened,
        "VM.get_by_name_label",
        vec![sid.clone(), name],
    );
    assert_eq!(found, Value::Array(vec![vm.clone()]));
    assert_eq!(power(&mut reopened, &sid, &vm), s("Halted"));
}

#[test]
fn a_pvh_vm_runs_as_pvh_and_a_pv_one_as_pv() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    for (kind, running) in [("pvh", "pvh"), ("pv", "pv"), ("unspecified", "pv")] {
        let vm = new_vm(&mut e, &sid, kind);
        // VM.create leaves domain_type unspecified; xapi's setter refuses
        // that value.
        if kind != "unspecified" {
            ok(
                &mut e,
                "VM.set_domain_type",
                vec![sid.clone(), vm.clone(), s(kind)],
            );
        }
        let start = vec![
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ];
        ok(&mut e, "VM.start", start);
        let metrics = ok(&mut e, "VM.get_metrics", vec![sid.clone(), vm.clone()]);
        let current = ok(
            &mut e,
            "VM_metrics.get_current_domain_type",
            vec![sid.clone(), metrics],
        );
        assert_eq!(current, s(running), "{kind}");
    }
}

#[test]
fn a_domain_gets_vcpus_max_vcpus_with_vcpus_at_startup_online() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    // (VCPUs_max, VCPUs_at_startup) -> (vcpus, vcpus_max) of the spec: a
    // VCPUs_max below VCPUs_at_startup still gives every vCPU asked online.
    for (max, at_startup, want) in [(2, 2, (2, 2)), (4, 1, (1, 4)), (1, 3, (3, 3))] {
        // VM.create takes both unchecked (the setters refuse
        // VCPUs_at_startup > VCPUs_max, as xapi's do).
        let mut rec = std::collections::BTreeMap::new();
        rec.insert("name_label".to_string(), s("guest"));
        rec.insert("memory_static_max".to_string(), s("268435456"));
        rec.insert("VCPUs_max".to_string(), Value::Int(max));
        rec.insert("VCPUs_at_startup".to_string(), Value::Int(at_startup));
        let vm = ok(&mut e, "VM.create", vec![sid.clone(), Value::Map(rec)]);
        let start = vec![
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ];
        ok(&mut e, "VM.start", start);
        let d = domid(&mut e, &sid, &vm) as u32;
        let spec = &e.hypervisor().specs[&d];
        assert_eq!((spec.vcpus, spec.vcpus_max), want, "{max} {at_startup}");
    }
}
