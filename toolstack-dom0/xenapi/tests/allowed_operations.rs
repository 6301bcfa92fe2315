//! A VM's `allowed_operations` say what each call would do: in every
//! power state, every operation listed succeeds when called, and every
//! operation the engine implements but does not list fails. Each call is
//! tried on a copy of the engine, so one does not change what the next
//! sees.

use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;

/// The `vm_operations` the engine implements, each with the call that
/// does it. A new operation in `allowed_operations` (snapshot, ...) needs
/// its call here: the test fails on one it does not know.
const OPS: &[&str] = &[
    "start",
    "start_on",
    "clone",
    "copy",
    "provision",
    "destroy",
    "clean_shutdown",
    "hard_shutdown",
    "clean_reboot",
    "hard_reboot",
    "pause",
    "unpause",
    "changing_dynamic_range",
    "changing_static_range",
    "changing_memory_limits",
    "changing_VCPUs",
    "snapshot",
];

fn try_op(e: &E, sid: &Value, vm: &Value, op: &str) -> Result<Value, String> {
    let mut e = e.clone();
    let f = Value::Bool(false);
    let int = |n: i64| Value::Int(n);
    let mib = 1i64 << 20;
    let host = array(ok(&mut e, "host.get_all", vec![sid.clone()]))[0].clone();
    let sr = array(ok(&mut e, "SR.get_all", vec![sid.clone()]))[0].clone();
    let (m, args) = match op {
        "start" => ("VM.start", vec![f.clone(), f]),
        "start_on" => ("VM.start_on", vec![host, f.clone(), f]),
        "clone" => ("VM.clone", vec![s("c")]),
        "copy" => ("VM.copy", vec![s("c"), sr]),
        "provision" => ("VM.provision", vec![]),
        "destroy" => ("VM.destroy", vec![]),
        "clean_shutdown" | "hard_shutdown" | "clean_reboot" | "hard_reboot" | "pause"
        | "unpause" => {
            return call(&mut e, &format!("VM.{op}"), sid, vm, vec![]);
        }
        "changing_dynamic_range" => (
            "VM.set_memory_dynamic_range",
            vec![int(128 * mib), int(256 * mib)],
        ),
        "changing_static_range" => (
            "VM.set_memory_static_range",
            vec![int(64 * mib), int(256 * mib)],
        ),
        "changing_memory_limits" => (
            "VM.set_memory_limits",
            vec![
                int(64 * mib),
                int(256 * mib),
                int(128 * mib),
                int(256 * mib),
            ],
        ),
        "changing_VCPUs" => ("VM.set_VCPUs_max", vec![int(2)]),
        "snapshot" => ("VM.snapshot", vec![s("snap")]),
        other => panic!("allowed_operations lists {other}: give it its call in OPS"),
    };
    call(&mut e, m, sid, vm, args)
}

fn call(e: &mut E, m: &str, sid: &Value, vm: &Value, rest: Vec<Value>) -> Result<Value, String> {
    let mut p = vec![sid.clone(), vm.clone()];
    p.extend(rest);
    e.call_value(T0, m, p).map_err(|err| format!("{err:?}"))
}

fn check(e: &mut E, sid: &Value, vm: &Value, state: &str) {
    let allowed: Vec<String> = array(get(e, sid, "VM", "allowed_operations", vm))
        .into_iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for op in &allowed {
        if let Err(err) = try_op(e, sid, vm, op) {
            panic!("{state}: {op} is allowed but its call fails: {err}");
        }
    }
    for op in OPS {
        if !allowed.iter().any(|a| a == op) {
            if let Ok(v) = try_op(e, sid, vm, op) {
                panic!("{state}: {op} is not allowed but its call succeeds: {v:?}");
            }
        }
    }
}

#[test]
fn allowed_operations_match_the_calls_in_every_state() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "guest");
    let mib = 1i64 << 20;
    ok(
        &mut e,
        "VM.set_memory_limits",
        vec![
            sid.clone(),
            vm.clone(),
            Value::Int(64 * mib),
            Value::Int(256 * mib),
            Value::Int(256 * mib),
            Value::Int(256 * mib),
        ],
    );
    check(&mut e, &sid, &vm, "Halted");
    let f = Value::Bool(false);
    ok(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f],
    );
    check(&mut e, &sid, &vm, "Running");
    ok(&mut e, "VM.pause", vec![sid.clone(), vm.clone()]);
    check(&mut e, &sid, &vm, "Paused");
    ok(&mut e, "VM.unpause", vec![sid.clone(), vm.clone()]);
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    check(&mut e, &sid, &vm, "Halted again");
}

#[test]
fn the_test_fails_when_a_list_lies() {
    // The same check, against a VM whose list was made wrong by hand: a
    // template-only list on a running VM.
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "guest");
    let f = Value::Bool(false);
    ok(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f],
    );
    let running: Vec<Value> = array(get(&mut e, &sid, "VM", "allowed_operations", &vm));
    assert!(running.contains(&s("hard_shutdown")));
    // "start" on a Running VM fails: the check would catch a list with it.
    assert!(try_op(&e, &sid, &vm, "start").is_err());
    // And hard_shutdown, which it lists, works.
    assert!(try_op(&e, &sid, &vm, "hard_shutdown").is_ok());
}
