//! Engine scenarios: calls through the XenAPI dispatch with an in-memory
//! WAL and a fake hypervisor, including crash/replay and torn tails.

use std::collections::BTreeMap;

use xenapi::engine::{Engine, Handled};
use xenapi::hypervisor::FakeHypervisor;
use xenapi::rng::SeededEntropy;
use xenapi::value::{Instant, Value};
use xenapi::wal::{MemStorage, Storage};

mod common;
use common::*;

#[test]
fn login_failures_and_logout() {
    let mut e = open(MemStorage::default());
    fails(
        &mut e,
        "session.login_with_password",
        vec![s("root"), s("bad")],
        "SESSION_AUTHENTICATION_FAILED",
    );
    fails(
        &mut e,
        "session.login_with_password",
        vec![s("bob"), s("pw")],
        "SESSION_AUTHENTICATION_FAILED",
    );
    let sid = login(&mut e);
    ok(&mut e, "VM.get_all", vec![sid.clone()]);
    ok(&mut e, "session.logout", vec![sid.clone()]);
    fails(&mut e, "VM.get_all", vec![sid], "SESSION_INVALID");
    fails(
        &mut e,
        "VM.get_all",
        vec![s("OpaqueRef:nope")],
        "SESSION_INVALID",
    );
}

#[test]
fn session_expiry_uses_passed_time() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let later = Instant(T0.0 + 25 * 3600 * 1000);
    assert_eq!(
        e.call_value(later, "VM.get_all", vec![sid])
            .unwrap_err()
            .code,
        "SESSION_INVALID"
    );
}

#[test]
fn session_table_is_bounded() {
    let mut e = open(MemStorage::default());
    for _ in 0..600 {
        login(&mut e);
    }
    assert_eq!(e.session_count(), 500);
}

#[test]
fn generic_messages_and_errors() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "a");
    assert_eq!(
        ok(&mut e, "VM.get_name_label", vec![sid.clone(), vm.clone()]),
        s("a")
    );
    ok(
        &mut e,
        "VM.set_name_label",
        vec![sid.clone(), vm.clone(), s("b")],
    );
    assert_eq!(
        ok(&mut e, "VM.get_by_name_label", vec![sid.clone(), s("b")]),
        Value::Array(vec![vm.clone()])
    );
    ok(
        &mut e,
        "VM.add_to_other_config",
        vec![sid.clone(), vm.clone(), s("k"), s("v")],
    );
    let p = fails(
        &mut e,
        "VM.add_to_other_config",
        vec![sid.clone(), vm.clone(), s("k"), s("w")],
        "MAP_DUPLICATE_KEY",
    );
    assert_eq!(p, ["VM", "other_config", vm.as_str().unwrap(), "k"]);
    ok(
        &mut e,
        "VM.remove_from_other_config",
        vec![sid.clone(), vm.clone(), s("k")],
    );
    ok(&mut e, "VM.add_tags", vec![sid.clone(), vm.clone(), s("t")]);
    let rec = ok(&mut e, "VM.get_record", vec![sid.clone(), vm.clone()]);
    let Value::Map(rec) = rec else { panic!() };
    assert_eq!(rec["tags"], Value::Array(vec![s("t")]));
    // Only the seed of generated MACs VM.create adds, as xapi does.
    let Value::Map(oc) = &rec["other_config"] else {
        panic!("other_config")
    };
    assert_eq!(oc.keys().collect::<Vec<_>>(), ["mac_seed"]);
    assert_eq!(rec["memory_static_max"], Value::Int(268435456));
    assert_eq!(rec["power_state"], s("Halted"));
    let uuid = rec["uuid"].clone();
    assert_eq!(ok(&mut e, "VM.get_by_uuid", vec![sid.clone(), uuid]), vm);
    fails(
        &mut e,
        "VM.get_record",
        vec![sid.clone(), s("OpaqueRef:x")],
        "HANDLE_INVALID",
    );
    fails(
        &mut e,
        "VM.frobnicate",
        vec![sid.clone()],
        "MESSAGE_METHOD_UNKNOWN",
    );
    fails(
        &mut e,
        "VM.get_record",
        vec![sid.clone()],
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
    );
    fails(
        &mut e,
        "VM.set_VCPUs_max",
        vec![sid.clone(), vm.clone(), s("many")],
        "FIELD_TYPE_ERROR",
    );
    fails(
        &mut e,
        "VM.get_by_uuid",
        vec![sid.clone(), s("nope")],
        "UUID_INVALID",
    );
}

#[test]
fn relations_vbd_vif_vdi() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "a");
    let srs = ok(&mut e, "SR.get_all", vec![sid.clone()]);
    let Value::Array(srs) = srs else { panic!() };
    let mut vdi = BTreeMap::new();
    vdi.insert("SR".to_string(), srs[0].clone());
    vdi.insert("virtual_size".to_string(), Value::Int(1 << 30));
    vdi.insert("type".to_string(), s("user"));
    let vdi = ok(&mut e, "VDI.create", vec![sid.clone(), Value::Map(vdi)]);
    let mut vbd = BTreeMap::new();
    vbd.insert("VM".to_string(), vm.clone());
    vbd.insert("VDI".to_string(), vdi.clone());
    vbd.insert("type".to_string(), s("Disk"));
    vbd.insert("mode".to_string(), s("RW"));
    vbd.insert("userdevice".to_string(), s("0"));
    let vbd = ok(&mut e, "VBD.create", vec![sid.clone(), Value::Map(vbd)]);
    assert_eq!(
        ok(&mut e, "VM.get_VBDs", vec![sid.clone(), vm.clone()]),
        Value::Array(vec![vbd.clone()])
    );
    assert_eq!(
        ok(&mut e, "VDI.get_VBDs", vec![sid.clone(), vdi.clone()]),
        Value::Array(vec![vbd.clone()])
    );
    let mut bad = BTreeMap::new();
    bad.insert("VM".to_string(), s("OpaqueRef:ghost"));
    fails(
        &mut e,
        "VBD.create",
        vec![sid.clone(), Value::Map(bad)],
        "HANDLE_INVALID",
    );
    ok(&mut e, "VM.destroy", vec![sid.clone(), vm.clone()]);
    fails(
        &mut e,
        "VBD.get_record",
        vec![sid.clone(), vbd],
        "HANDLE_INVALID",
    );
    assert_eq!(
        ok(&mut e, "VDI.get_VBDs", vec![sid, vdi]),
        Value::Array(vec![])
    );
}

#[test]
fn power_cycle_and_bad_states() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "a");
    let p = fails(
        &mut e,
        "VM.clean_shutdown",
        vec![sid.clone(), vm.clone()],
        "VM_BAD_POWER_STATE",
    );
    assert_eq!(p[1..], ["running", "halted"]);
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
    assert_eq!(
        ok(&mut e, "VM.get_power_state", vec![sid.clone(), vm.clone()]),
        s("Running")
    );
    assert_eq!(e.hypervisor().domains.len(), 1);
    let Value::Array(consoles) = ok(&mut e, "VM.get_consoles", vec![sid.clone(), vm.clone()])
    else {
        panic!()
    };
    assert_eq!(consoles.len(), 1);
    let proto = ok(
        &mut e,
        "console.get_protocol",
        vec![sid.clone(), consoles[0].clone()],
    );
    assert_eq!(proto, s("vt100"));
    let ops = ok(
        &mut e,
        "VM.get_allowed_operations",
        vec![sid.clone(), vm.clone()],
    );
    assert!(matches!(ops, Value::Array(ref a) if a.contains(&s("pause"))));
    fails(
        &mut e,
        "VM.start",
        vec![
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ],
        "VM_BAD_POWER_STATE",
    );
    fails(
        &mut e,
        "VM.destroy",
        vec![sid.clone(), vm.clone()],
        "VM_BAD_POWER_STATE",
    );
    ok(&mut e, "VM.pause", vec![sid.clone(), vm.clone()]);
    fails(
        &mut e,
        "VM.clean_reboot",
        vec![sid.clone(), vm.clone()],
        "VM_BAD_POWER_STATE",
    );
    ok(&mut e, "VM.unpause", vec![sid.clone(), vm.clone()]);
    ok(&mut e, "VM.clean_reboot", vec![sid.clone(), vm.clone()]);
    ok(&mut e, "VM.hard_reboot", vec![sid.clone(), vm.clone()]);
    ok(&mut e, "VM.clean_shutdown", vec![sid.clone(), vm.clone()]);
    assert!(e.hypervisor().domains.is_empty());
    let consoles = ok(&mut e, "VM.get_consoles", vec![sid.clone(), vm.clone()]);
    assert_eq!(consoles, Value::Array(vec![]));
    assert_eq!(
        ok(&mut e, "VM.get_domid", vec![sid.clone(), vm.clone()]),
        Value::Int(-1)
    );
    let Value::Array(all) = ok(&mut e, "VM.get_all", vec![sid.clone()]) else {
        panic!()
    };
    let dom0 = all
        .into_iter()
        .find(|v| {
            ok(
                &mut e,
                "VM.get_is_control_domain",
                vec![sid.clone(), v.clone()],
            ) == Value::Bool(true)
        })
        .unwrap();
    fails(
        &mut e,
        "VM.hard_shutdown",
        vec![sid.clone(), dom0.clone()],
        "OPERATION_NOT_ALLOWED",
    );
    fails(
        &mut e,
        "VM.destroy",
        vec![sid, dom0],
        "OPERATION_NOT_ALLOWED",
    );
}

#[test]
fn async_task_runs_and_cancel() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "a");
    let t = ok(
        &mut e,
        "Async.VM.start",
        vec![
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ],
    );
    assert_eq!(
        ok(&mut e, "task.get_status", vec![sid.clone(), t.clone()]),
        s("pending")
    );
    assert_eq!(e.run_jobs(T0), 1);
    assert_eq!(
        ok(&mut e, "task.get_status", vec![sid.clone(), t.clone()]),
        s("success")
    );
    assert_eq!(
        ok(&mut e, "task.get_progress", vec![sid.clone(), t.clone()]),
        Value::Float(1.0)
    );
    fails(
        &mut e,
        "task.cancel",
        vec![sid.clone(), t],
        "OPERATION_NOT_ALLOWED",
    );
    // A failing async call ends in failure with error_info.
    let t = ok(
        &mut e,
        "Async.VM.start",
        vec![
            sid.clone(),
            vm.clone(),
            Value::Bool(false),
            Value::Bool(false),
        ],
    );
    e.run_jobs(T0);
    assert_eq!(
        ok(&mut e, "task.get_status", vec![sid.clone(), t.clone()]),
        s("failure")
    );
    let Value::Array(info) = ok(&mut e, "task.get_error_info", vec![sid.clone(), t]) else {
        panic!()
    };
    assert_eq!(info[0], s("VM_BAD_POWER_STATE"));
    // Cancel before it runs.
    let t = ok(
        &mut e,
        "Async.VM.hard_shutdown",
        vec![sid.clone(), vm.clone()],
    );
    ok(&mut e, "task.cancel", vec![sid.clone(), t.clone()]);
    assert_eq!(e.run_jobs(T0), 0);
    assert_eq!(
        ok(&mut e, "task.get_status", vec![sid.clone(), t]),
        s("cancelled")
    );
    assert_eq!(
        ok(&mut e, "VM.get_power_state", vec![sid, vm]),
        s("Running")
    );
}

#[test]
fn event_from_sees_each_change_once() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let classes = Value::Array(vec![s("vm")]);
    let Value::Map(b) = ok(
        &mut e,
        "event.from",
        vec![sid.clone(), classes.clone(), s(""), Value::Float(0.0)],
    ) else {
        panic!()
    };
    let Value::Array(initial) = &b["events"] else {
        panic!()
    };
    // the control domain and the built-in templates
    assert_eq!(initial.len(), 1 + xenapi::templates::BUILTIN.len());
    let tok = b["token"].clone();
    let vm = new_vm(&mut e, &sid, "x");
    ok(
        &mut e,
        "VM.set_name_label",
        vec![sid.clone(), vm.clone(), s("y")],
    );
    let Value::Map(b) = ok(
        &mut e,
        "event.from",
        vec![sid.clone(), classes.clone(), tok, Value::Float(0.0)],
    ) else {
        panic!()
    };
    let Value::Array(evs) = &b["events"] else {
        panic!()
    };
    let ops: Vec<_> = evs
        .iter()
        .map(|e| match e {
            Value::Map(m) => m["operation"].clone(),
            _ => Value::Nil,
        })
        .collect();
    assert_eq!(ops, [s("add"), s("mod")]);
    let tok = b["token"].clone();
    let Value::Map(b) = ok(
        &mut e,
        "event.from",
        vec![sid.clone(), classes.clone(), tok.clone(), Value::Float(0.0)],
    ) else {
        panic!()
    };
    assert_eq!(b["events"], Value::Array(vec![]));
    let tok2 = ok(
        &mut e,
        "event.inject",
        vec![sid.clone(), s("VM"), vm.clone()],
    );
    assert_ne!(tok2, tok);
    fails(
        &mut e,
        "event.from",
        vec![sid.clone(), classes, s("junk"), Value::Float(0.0)],
        "EVENT_FROM_TOKEN_PARSE_FAILURE",
    );
    fails(
        &mut e,
        "event.next",
        vec![sid.clone()],
        "SESSION_NOT_REGISTERED",
    );
    ok(
        &mut e,
        "event.register",
        vec![sid.clone(), Value::Array(vec![s("*")])],
    );
    ok(&mut e, "VM.set_name_label", vec![sid.clone(), vm, s("z")]);
    let Value::Array(evs) = ok(&mut e, "event.next", vec![sid.clone()]) else {
        panic!()
    };
    assert_eq!(evs.len(), 1);
}

#[test]
fn event_from_parks_until_deadline_over_http() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let pool = first(&mut e, &sid, "pool");
    let tok = ok(&mut e, "event.inject", vec![sid.clone(), s("pool"), pool]);
    let body = format!(
        r#"{{"jsonrpc":"2.0","method":"event.from","params":["{}",["vm"],"{}",5.0],"id":1}}"#,
        sid.as_str().unwrap(),
        tok.as_str().unwrap()
    );
    let req = format!(
        "POST /jsonrpc HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    );
    let until = match e.handle(T0, None, req.as_bytes()) {
        Handled::Park { until } => until,
        other => panic!("{other:?}"),
    };
    assert_eq!(until, Instant(T0.0 + 5000));
    match e.handle(until, Some(T0), req.as_bytes()) {
        Handled::Reply { bytes, .. } => {
            assert!(String::from_utf8_lossy(&bytes.to_vec()).contains("\"events\":[]"))
        }
        other => panic!("{other:?}"),
    }
}

fn first(e: &mut E, sid: &Value, cls: &str) -> Value {
    let Value::Array(a) = ok(e, &format!("{cls}.get_all"), vec![sid.clone()]) else {
        panic!()
    };
    a[0].clone()
}

#[test]
fn acknowledged_changes_survive_crash_and_torn_tail_is_cut() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "durable");
    ok(
        &mut e,
        "VM.add_to_other_config",
        vec![sid.clone(), vm.clone(), s("k"), s("v")],
    );
    let vm_ref = vm.as_str().unwrap().to_string();
    // Crash: keep only what was synced, then tear the tail.
    let storage = snapshot_storage(&mut e);
    let mut torn = storage.clone();
    torn.durable
        .extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, b'{']);
    let mut e2 = open(torn.clone());
    let sid2 = login(&mut e2);
    assert_eq!(
        ok(&mut e2, "VM.get_name_label", vec![sid2.clone(), vm.clone()]),
        s("durable")
    );
    let Value::Map(oc) = ok(&mut e2, "VM.get_other_config", vec![sid2.clone(), vm]) else {
        panic!()
    };
    assert_eq!(oc["k"], s("v"));
    // Exactly one seeded host after reboot; sessions do not survive.
    assert_eq!(e2.db().count(xenapi::schema::class_id("host").unwrap()), 1);
    fails(&mut e2, "VM.get_all", vec![sid], "SESSION_INVALID");
    assert!(vm_ref.starts_with("OpaqueRef:"));
}

fn snapshot_storage(e: &mut E) -> MemStorage {
    // The engine owns its storage; a crash keeps only synced bytes. Reach it
    // through a call that reads the log the way a restart would.
    e.storage_for_tests().crash()
}

#[test]
fn storage_failure_is_not_acknowledged() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    e.storage_for_tests().fail = true;
    let mut rec = BTreeMap::new();
    rec.insert("name_label".to_string(), s("lost"));
    fails(
        &mut e,
        "VM.create",
        vec![sid.clone(), Value::Map(rec)],
        "INTERNAL_ERROR",
    );
    fails(&mut e, "VM.get_all", vec![sid], "INTERNAL_ERROR");
    let mut st = e.storage_for_tests().clone();
    st.fail = false;
    let _ = st.read_all();
}

mod replay {
    //! WAL replay reproduces exactly the state after the last acknowledged
    //! call wholly inside the durable log, for any cut of the log.
    use super::*;
    use proptest::prelude::*;

    type Dump = BTreeMap<(usize, String), Vec<Value>>;

    fn dump(e: &E) -> Dump {
        let mut out = BTreeMap::new();
        for (c, cd) in xenapi::schema::classes().iter().enumerate() {
            if cd.name == "session" {
                continue;
            }
            for (r, rec) in &e.db().table(c).objects {
                out.insert((c, r.clone()), rec.clone());
            }
        }
        out
    }

    #[derive(Clone, Debug)]
    enum Op {
        Create(String),
        Rename(usize, String),
        AddKey(usize, u8),
        RemoveKey(usize, u8),
        Destroy(usize),
        Start(usize),
        Shutdown(usize),
        AsyncStart(usize),
        Vbd(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            "[a-z]{1,6}".prop_map(Op::Create),
            (any::<usize>(), "[ -~]{0,8}").prop_map(|(i, n)| Op::Rename(i, n)),
            (any::<usize>(), 0u8..3).prop_map(|(i, k)| Op::AddKey(i, k)),
            (any::<usize>(), 0u8..3).prop_map(|(i, k)| Op::RemoveKey(i, k)),
            any::<usize>().prop_map(Op::Destroy),
            any::<usize>().prop_map(Op::Start),
            any::<usize>().prop_map(Op::Shutdown),
            any::<usize>().prop_map(Op::AsyncStart),
            any::<usize>().prop_map(Op::Vbd),
        ]
    }

    fn vms(e: &mut E, sid: &Value) -> Vec<Value> {
        let vm = xenapi::schema::class_id("VM").unwrap();
        let ctrl = xenapi::schema::class(vm).field("is_control_domain");
        let tmpl = xenapi::schema::class(vm).field("is_default_template");
        e.db()
            .table(vm)
            .objects
            .iter()
            .filter(|(_, r)| r[ctrl] != Value::Bool(true))
            .filter(|(_, r)| r[tmpl] != Value::Bool(true))
            .map(|(k, _)| s(k))
            .collect::<Vec<_>>()
            .into_iter()
            .inspect(|_| {
                let _ = sid;
            })
            .collect()
    }

    fn apply(e: &mut E, sid: &Value, op: &Op) {
        let all = vms(e, sid);
        let pick = |i: usize| all.get(i % all.len().max(1)).cloned();
        let f = Value::Bool(false);
        let _ = match op {
            Op::Create(n) => {
                let mut rec = BTreeMap::new();
                rec.insert("name_label".to_string(), s(n));
                e.call_value(T0, "VM.create", vec![sid.clone(), Value::Map(rec)])
            }
            Op::Rename(i, n) => match pick(*i) {
                Some(vm) => e.call_value(T0, "VM.set_name_label", vec![sid.clone(), vm, s(n)]),
                None => return,
            },
            Op::AddKey(i, k) => match pick(*i) {
                Some(vm) => e.call_value(
                    T0,
                    "VM.add_to_other_config",
                    vec![sid.clone(), vm, s(&k.to_string()), s("v")],
                ),
                None => return,
            },
            Op::RemoveKey(i, k) => match pick(*i) {
                Some(vm) => e.call_value(
                    T0,
                    "VM.remove_from_other_config",
                    vec![sid.clone(), vm, s(&k.to_string())],
                ),
                None => return,
            },
            Op::Destroy(i) => match pick(*i) {
                Some(vm) => e.call_value(T0, "VM.destroy", vec![sid.clone(), vm]),
                None => return,
            },
            Op::Start(i) => match pick(*i) {
                Some(vm) => e.call_value(T0, "VM.start", vec![sid.clone(), vm, f.clone(), f]),
                None => return,
            },
            Op::Shutdown(i) => match pick(*i) {
                Some(vm) => e.call_value(T0, "VM.hard_shutdown", vec![sid.clone(), vm]),
                None => return,
            },
            Op::AsyncStart(i) => match pick(*i) {
                // The job runs (and commits its own frame) in the test loop.
                Some(vm) => e.call_value(T0, "Async.VM.start", vec![sid.clone(), vm, f.clone(), f]),
                None => return,
            },
            Op::Vbd(i) => match pick(*i) {
                Some(vm) => {
                    let mut rec = BTreeMap::new();
                    rec.insert("VM".to_string(), vm);
                    rec.insert("type".to_string(), s("CD"));
                    rec.insert("mode".to_string(), s("RO"));
                    rec.insert("empty".to_string(), Value::Bool(true));
                    rec.insert("userdevice".to_string(), s("autodetect"));
                    e.call_value(T0, "VBD.create", vec![sid.clone(), Value::Map(rec)])
                }
                None => return,
            },
        };
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn replay_reproduces_every_acknowledged_prefix(
            ops in proptest::collection::vec(op(), 1..16),
            cut_frac in 0.0f64..=1.0,
        ) {
            let mut e = open(MemStorage::default());
            let sid = login(&mut e);
            let mut states = vec![(e.storage_for_tests().durable.len(), dump(&e))];
            for o in &ops {
                apply(&mut e, &sid, o);
                prop_assert!(e.storage_for_tests().buffered.is_empty(), "reply before sync");
                states.push((e.storage_for_tests().durable.len(), dump(&e)));
                if e.has_jobs() {
                    e.run_jobs(T0);
                    states.push((e.storage_for_tests().durable.len(), dump(&e)));
                }
            }
            let full = e.storage_for_tests().crash();
            let last = states.last().unwrap().1.clone();
            prop_assert_eq!(dump(&open(full.clone())), last);
            let cut = (full.durable.len() as f64 * cut_frac) as usize;
            let mut torn = full.clone();
            torn.durable.truncate(cut);
            if let Some((_, expected)) = states.iter().rev().find(|(l, _)| *l <= cut) {
                prop_assert_eq!(&dump(&open(torn)), expected);
            }
        }
    }
}

#[test]
fn restart_halts_guests_and_fails_orphaned_tasks() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "a");
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
    let t = ok(
        &mut e,
        "Async.VM.hard_shutdown",
        vec![sid.clone(), vm.clone()],
    );
    let mut e2 = open(e.storage_for_tests().crash());
    assert_eq!(e2.recover_after_restart(T0).unwrap(), 1);
    let sid = login(&mut e2);
    assert_eq!(
        ok(&mut e2, "VM.get_power_state", vec![sid.clone(), vm]),
        s("Halted")
    );
    assert_eq!(ok(&mut e2, "task.get_status", vec![sid, t]), s("failure"));
}

#[test]
fn database_memory_quota() {
    let mut c = config();
    c.max_db_bytes = 1 << 20;
    let mut e = Engine::open(
        c,
        FakeHypervisor::default(),
        MemStorage::default(),
        SeededEntropy(9),
    )
    .unwrap();
    e.seed(T0, "host0", "127.0.0.1").unwrap();
    let sid = login(&mut e);
    let big = "x".repeat(200_000);
    let mut refused = false;
    for _ in 0..20 {
        let mut rec = BTreeMap::new();
        rec.insert("name_label".to_string(), s(&big));
        match e.call_value(T0, "VM.create", vec![sid.clone(), Value::Map(rec)]) {
            Ok(_) => {}
            Err(err) => {
                assert_eq!(err.code, "LIMIT_REACHED");
                refused = true;
                break;
            }
        }
    }
    assert!(refused);
    assert!(e.db().approx_bytes() <= 1 << 20);
    // Reads still work, and freeing space lets writes in again.
    let Value::Array(vms) = ok(&mut e, "VM.get_all", vec![sid.clone()]) else {
        panic!()
    };
    for vm in vms {
        let _ = e.call_value(T0, "VM.destroy", vec![sid.clone(), vm]);
    }
    new_vm(&mut e, &sid, "fits");
}

#[test]
fn wal_is_compacted_while_running_and_stays_replayable() {
    let mut c = config();
    c.compact_min_bytes = 64 << 10;
    let mut e = Engine::open(
        c,
        FakeHypervisor::default(),
        MemStorage::default(),
        SeededEntropy(9),
    )
    .unwrap();
    e.seed(T0, "host0", "127.0.0.1").unwrap();
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "v");
    for i in 0..2000 {
        ok(
            &mut e,
            "VM.set_name_description",
            vec![sid.clone(), vm.clone(), s(&format!("d{i}"))],
        );
    }
    let wal = e.storage_for_tests().durable.len();
    assert!(wal < 1 << 20, "WAL not compacted: {wal} bytes");
    let mut e2 = open(e.storage_for_tests().crash());
    let sid2 = login(&mut e2);
    assert_eq!(
        ok(&mut e2, "VM.get_name_description", vec![sid2, vm]),
        s("d1999")
    );
}

#[test]
fn wire_shapes_over_http() {
    let mut e = open(MemStorage::default());
    let reply = |e: &mut E, req: String| match e.handle(T0, None, req.as_bytes()) {
        Handled::Reply { bytes, .. } => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("{other:?}"),
    };
    // JSON-RPC 1.0: result and error both present.
    let body = r#"{"method":"session.login_with_password","params":["root","pw"],"id":"x"}"#;
    let r = reply(
        &mut e,
        format!(
            "POST /jsonrpc HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(
        r.contains("\"error\":null") && r.contains("\"id\":\"x\"") && r.contains("OpaqueRef:"),
        "{r}"
    );
    let body = r#"{"method":"session.login_with_password","params":["root","no"],"id":1}"#;
    let r = reply(
        &mut e,
        format!(
            "POST /jsonrpc HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(
        r.contains("\"result\":null") && r.contains("SESSION_AUTHENTICATION_FAILED"),
        "{r}"
    );
    // XML-RPC on /RPC2, ints as decimal strings, the pool's default SR set.
    let sid = login(&mut e);
    let call = xenapi::xmlrpc::encode_call(
        "host.get_API_version_major",
        &[sid.clone(), first(&mut e, &sid, "host")],
    );
    let r = reply(
        &mut e,
        format!(
            "POST /RPC2 HTTP/1.1\r\nContent-Length: {}\r\n\r\n{call}",
            call.len()
        ),
    );
    assert!(r.contains("<name>Value</name><value>2</value>"), "{r}");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/xml"));
    let pool = first(&mut e, &sid, "pool");
    let sr = first(&mut e, &sid, "SR");
    assert_eq!(ok(&mut e, "pool.get_default_SR", vec![sid, pool]), sr);
}

#[test]
fn session_refs_are_never_broadcast_as_events() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let all = Value::Array(vec![s("*")]);
    let Value::Map(b) = ok(
        &mut e,
        "event.from",
        vec![sid.clone(), all.clone(), s(""), Value::Float(0.0)],
    ) else {
        panic!()
    };
    let tok = b["token"].clone();
    let text = format!("{:?}", b["events"]);
    assert!(
        !text.contains(sid.as_str().unwrap()),
        "session ref leaked in the initial batch"
    );
    let other = login(&mut e);
    new_vm(&mut e, &sid, "x");
    let Value::Map(b) = ok(&mut e, "event.from", vec![sid, all, tok, Value::Float(0.0)]) else {
        panic!()
    };
    let text = format!("{:?}", b["events"]);
    assert!(
        !text.contains(other.as_str().unwrap()),
        "session ref leaked in an event"
    );
    assert!(text.contains("\"x\""));
}

#[test]
fn wrong_passwords_are_rationed() {
    let mut e = open(MemStorage::default());
    let wrong = vec![s("root"), s("nope")];
    for _ in 0..10 {
        fails(
            &mut e,
            "session.login_with_password",
            wrong.clone(),
            "SESSION_AUTHENTICATION_FAILED",
        );
    }
    // The budget is spent: even the right password (not yet cached) is
    // refused without running PBKDF2 ...
    fails(
        &mut e,
        "session.login_with_password",
        vec![s("root"), s("pw")],
        "SESSION_AUTHENTICATION_FAILED",
    );
    // ... until time passes.
    let later = Instant(T0.0 + 1000);
    let sid = e
        .call_value(
            later,
            "session.login_with_password",
            vec![s("root"), s("pw")],
        )
        .unwrap();
    // Once verified, the right password is cheap and never rationed.
    for _ in 0..20 {
        fails(
            &mut e,
            "session.login_with_password",
            wrong.clone(),
            "SESSION_AUTHENTICATION_FAILED",
        );
    }
    assert!(e
        .call_value(
            later,
            "session.login_with_password",
            vec![s("root"), s("pw")]
        )
        .is_ok());
    assert!(sid.as_str().unwrap().starts_with("OpaqueRef:"));
}

/// The body of the reply `e.handle` gives to an HTTP request.
fn http_body(e: &mut E, path: &str, ctype: &str, body: &str) -> Vec<u8> {
    let req = format!(
        "POST {path} HTTP/1.1\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let Handled::Reply { bytes, .. } = e.handle(T0, None, req.as_bytes()) else {
        panic!("no reply")
    };
    let bytes = bytes.to_vec();
    let at = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&bytes[..at]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a length")
        .parse()
        .unwrap();
    assert_eq!(len, bytes.len() - at - 4, "Content-Length");
    bytes[at + 4..].to_vec()
}

#[test]
fn reads_written_from_the_database_match_the_tree_encoding() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "a <quoted> & \"escaped\" name\n");
    ok(
        &mut e,
        "VM.add_to_other_config",
        vec![sid.clone(), vm.clone(), s("k&"), s("v<")],
    );
    let vm_text = vm.as_str().unwrap().to_owned();
    let calls: Vec<(&str, Vec<Value>)> = vec![
        ("VM.get_all_records", vec![sid.clone()]),
        ("host.get_all_records", vec![sid.clone()]),
        ("VM.get_record", vec![sid.clone(), vm.clone()]),
        ("VM.get_name_label", vec![sid.clone(), vm.clone()]),
        ("VM.get_other_config", vec![sid.clone(), vm.clone()]),
        ("VM.get_record", vec![sid.clone(), s("OpaqueRef:none")]),
        (
            "event.from",
            vec![
                sid.clone(),
                Value::Array(vec![s("vm"), s("host")]),
                s(""),
                Value::Float(0.0),
            ],
        ),
        (
            "event.from",
            vec![
                sid.clone(),
                Value::Array(vec![s(&format!("VM/{vm_text}"))]),
                s(""),
                Value::Float(0.0),
            ],
        ),
    ];
    for (method, params) in calls {
        // The same call through the wire, and the tree it stands for.
        let want = e.call_value(T0, method, params.clone());
        let xml = xenapi::xmlrpc::encode_call(method, &params);
        let got = http_body(&mut e, "/RPC2", "text/xml", &xml);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            xenapi::xmlrpc::encode_response(&want),
            "XML-RPC {method}"
        );
        let json = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{}}}"#,
            serde_json_params(&params)
        );
        let got = http_body(&mut e, "/jsonrpc", "application/json", &json);
        let want = xenapi::jsonrpc::encode_response(xenapi::jsonrpc::Version::V2, 7.into(), &want);
        assert_eq!(got, want, "JSON-RPC {method}");
    }
}

/// Params as a JSON array (strings, arrays of strings, floats).
fn serde_json_params(params: &[Value]) -> String {
    let mut out = String::new();
    xenapi::jsonrpc::write_value(&mut out, &Value::Array(params.to_vec()));
    out
}

#[test]
fn queued_async_calls_run_one_at_a_time_in_order() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let start = |e: &mut _, vm: &Value| {
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
    };
    let (a, b) = (new_vm(&mut e, &sid, "a"), new_vm(&mut e, &sid, "b"));
    let (ta, tb) = (start(&mut e, &a), start(&mut e, &b));
    let status = |e: &mut _, t: &Value| ok(e, "task.get_status", vec![sid.clone(), t.clone()]);
    // The board runs one between its relays' messages: the first queued.
    assert!(e.run_next_job(T0));
    assert_eq!(status(&mut e, &ta), s("success"));
    assert_eq!(status(&mut e, &tb), s("pending"));
    assert!(e.has_jobs());
    // Parked calls are checked again without running queued ones.
    assert_eq!(e.run_parked_jobs(T0), 0);
    assert_eq!(status(&mut e, &tb), s("pending"));
    assert!(e.run_next_job(T0));
    assert_eq!(status(&mut e, &tb), s("success"));
    assert!(!e.has_jobs() && !e.run_next_job(T0));
}
