//! Guest VBDs as xapi keeps them: `VBD.create`'s checks, `VBD.destroy`
//! refused while attached, hot `VBD.plug` / `unplug` / `unplug_force`, and
//! every VBD attached when its VM starts and removed when the domain goes
//! (what the fake hypervisor saw).

use std::collections::BTreeMap;

use xenapi::engine::Handled;
use xenapi::hypervisor::FakeVbdCall;
use xenapi::lifecycle::StopReason;
use xenapi::value::{Instant, Value};
use xenapi::vbd::{VbdKind, VbdMode, VBD_DETACH_MS, XVDA};
use xenapi::wal::MemStorage;

mod common;
use common::*;

fn sr(e: &mut E, sid: &Value) -> Value {
    let Value::Array(srs) = ok(e, "SR.get_all", vec![sid.clone()]) else {
        panic!("SR.get_all")
    };
    srs[0].clone()
}

fn new_vdi(e: &mut E, sid: &Value, extra: &[(&str, Value)]) -> Value {
    let sr = sr(e, sid);
    let mut r = BTreeMap::new();
    r.insert("SR".to_string(), sr);
    r.insert("virtual_size".to_string(), Value::Int(1 << 30));
    r.insert("type".to_string(), s("user"));
    for (k, v) in extra {
        r.insert(k.to_string(), v.clone());
    }
    ok(e, "VDI.create", vec![sid.clone(), Value::Map(r)])
}

fn vbd_rec(vm: &Value, vdi: &Value, dev: &str, ty: &str, mode: &str, empty: bool) -> Value {
    let mut r = BTreeMap::new();
    r.insert("VM".to_string(), vm.clone());
    r.insert("VDI".to_string(), vdi.clone());
    r.insert("userdevice".to_string(), s(dev));
    r.insert("type".to_string(), s(ty));
    r.insert("mode".to_string(), s(mode));
    r.insert("empty".to_string(), Value::Bool(empty));
    r.insert("bootable".to_string(), Value::Bool(dev == "0"));
    Value::Map(r)
}

fn new_disk(e: &mut E, sid: &Value, vm: &Value, vdi: &Value, dev: &str) -> Value {
    ok(
        e,
        "VBD.create",
        vec![sid.clone(), vbd_rec(vm, vdi, dev, "Disk", "RW", false)],
    )
}

fn field(e: &mut E, sid: &Value, class: &str, f: &str, r: &Value) -> Value {
    ok(e, &format!("{class}.get_{f}"), vec![sid.clone(), r.clone()])
}

fn start(e: &mut E, sid: &Value, vm: &Value) -> u32 {
    let f = Value::Bool(false);
    ok(e, "VM.start", vec![sid.clone(), vm.clone(), f.clone(), f]);
    field(e, sid, "VM", "domid", vm).as_int().unwrap() as u32
}

fn attached(e: &mut E, sid: &Value, vbd: &Value) -> bool {
    field(e, sid, "VBD", "currently_attached", vbd)
        .as_bool()
        .unwrap()
}

fn setup() -> (E, Value, Value) {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "guest");
    (e, sid, vm)
}

const NULL: &str = "OpaqueRef:NULL";

#[test]
fn create_refuses_what_xapi_refuses() {
    let (mut e, sid, vm) = setup();
    let vdi = new_vdi(&mut e, &sid, &[]);
    let cases: Vec<(Value, &str, Vec<String>)> = vec![
        (
            vbd_rec(&vm, &vdi, "0", "CD", "RW", false),
            "VBD_CDS_MUST_BE_READONLY",
            vec![],
        ),
        (
            vbd_rec(&vm, &s(NULL), "0", "Disk", "RO", true),
            "VBD_NOT_REMOVABLE_MEDIA",
            vec!["in constructor".into()],
        ),
        (
            vbd_rec(&vm, &vdi, "xvda", "Disk", "RW", false),
            "INVALID_DEVICE",
            vec!["xvda".into()],
        ),
        (
            vbd_rec(&vm, &vdi, "256", "Disk", "RW", false),
            "INVALID_DEVICE",
            vec!["256".into()],
        ),
        (
            vbd_rec(&vm, &vdi, "", "Disk", "RW", false),
            "INVALID_DEVICE",
            vec!["".into()],
        ),
        (
            vbd_rec(&vm, &s("OpaqueRef:ghost"), "0", "Disk", "RW", false),
            "HANDLE_INVALID",
            vec!["VDI".into(), "OpaqueRef:ghost".into()],
        ),
        (
            vbd_rec(&s("OpaqueRef:ghost"), &vdi, "0", "Disk", "RW", false),
            "HANDLE_INVALID",
            vec!["VM".into(), "OpaqueRef:ghost".into()],
        ),
    ];
    for (rec, code, params) in cases {
        let p = fails(&mut e, "VBD.create", vec![sid.clone(), rec], code);
        assert_eq!(p, params, "{code}");
    }
    // A VDI type a guest cannot use.
    let ha = new_vdi(&mut e, &sid, &[("type", s("ha_statefile"))]);
    let p = fails(
        &mut e,
        "VBD.create",
        vec![sid.clone(), vbd_rec(&vm, &ha, "0", "Disk", "RW", false)],
        "VDI_INCOMPATIBLE_TYPE",
    );
    assert_eq!(p, [ha.as_str().unwrap(), "ha_statefile"]);
    // RW on a read-only VDI.
    let ro = new_vdi(&mut e, &sid, &[("read_only", Value::Bool(true))]);
    let p = fails(
        &mut e,
        "VBD.create",
        vec![sid.clone(), vbd_rec(&vm, &ro, "0", "Disk", "RW", false)],
        "VDI_READONLY",
    );
    assert_eq!(p, [ro.as_str().unwrap()]);
    ok(
        &mut e,
        "VBD.create",
        vec![sid.clone(), vbd_rec(&vm, &ro, "0", "Disk", "RO", false)],
    );
    // The same device twice, also spelt differently.
    let p = fails(
        &mut e,
        "VBD.create",
        vec![sid.clone(), vbd_rec(&vm, &vdi, "00", "Disk", "RW", false)],
        "DEVICE_ALREADY_EXISTS",
    );
    assert_eq!(p, ["00"]);
    assert_eq!(
        ok(&mut e, "VM.get_VBDs", vec![sid.clone(), vm])
            .to_string_list()
            .len(),
        1
    );
}

trait Refs {
    fn to_string_list(&self) -> Vec<String>;
}

impl Refs for Value {
    fn to_string_list(&self) -> Vec<String> {
        match self {
            Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
            _ => panic!("not a set: {self:?}"),
        }
    }
}

#[test]
fn autodetect_takes_the_lowest_free_device_and_an_empty_cd_has_no_vdi() {
    let (mut e, sid, vm) = setup();
    let a = new_vdi(&mut e, &sid, &[]);
    let b = new_vdi(&mut e, &sid, &[]);
    new_disk(&mut e, &sid, &vm, &a, "0");
    new_disk(&mut e, &sid, &vm, &b, "2");
    let cd = ok(
        &mut e,
        "VBD.create",
        vec![
            sid.clone(),
            vbd_rec(&vm, &a, "autodetect", "CD", "RO", true),
        ],
    );
    assert_eq!(field(&mut e, &sid, "VBD", "userdevice", &cd), s("1"));
    assert_eq!(field(&mut e, &sid, "VBD", "VDI", &cd), s(NULL));
    assert_eq!(field(&mut e, &sid, "VBD", "empty", &cd), Value::Bool(true));
    assert!(!attached(&mut e, &sid, &cd));
    let next = ok(
        &mut e,
        "VBD.create",
        vec![
            sid.clone(),
            vbd_rec(&vm, &b, "autodetect", "Disk", "RO", false),
        ],
    );
    assert_eq!(field(&mut e, &sid, "VBD", "userdevice", &next), s("3"));
}

#[test]
fn start_attaches_every_vbd_and_shutdown_removes_them() {
    let (mut e, sid, vm) = setup();
    let a = new_vdi(&mut e, &sid, &[]);
    let b = new_vdi(&mut e, &sid, &[]);
    let d0 = new_disk(&mut e, &sid, &vm, &a, "0");
    let d1 = ok(
        &mut e,
        "VBD.create",
        vec![sid.clone(), vbd_rec(&vm, &b, "1", "Disk", "RO", false)],
    );
    let cd = ok(
        &mut e,
        "VBD.create",
        vec![sid.clone(), vbd_rec(&vm, &s(NULL), "3", "CD", "RO", true)],
    );
    let a_uuid = field(&mut e, &sid, "VDI", "uuid", &a);
    let sr_uuid = {
        let r = sr(&mut e, &sid);
        field(&mut e, &sid, "SR", "uuid", &r)
    };
    let d = start(&mut e, &sid, &vm);
    let calls = e.hypervisor().vbd_calls.clone();
    assert_eq!(calls.len(), 3);
    let FakeVbdCall::Attach(dom, dev) = &calls[0] else {
        panic!("{calls:?}")
    };
    assert_eq!(*dom, d);
    assert_eq!(dev.devid, XVDA);
    assert_eq!(dev.dev, "xvda");
    assert_eq!(dev.vdi.as_deref(), a_uuid.as_str());
    assert_eq!(dev.sr.as_str(), sr_uuid.as_str().unwrap());
    assert_eq!(
        (dev.mode, dev.kind, dev.bootable),
        (VbdMode::Rw, VbdKind::Disk, true)
    );
    let FakeVbdCall::Attach(_, dev1) = &calls[1] else {
        panic!()
    };
    assert_eq!((dev1.devid, dev1.mode), (XVDA + 16, VbdMode::Ro));
    let FakeVbdCall::Attach(_, cdd) = &calls[2] else {
        panic!()
    };
    assert_eq!(
        (cdd.devid, cdd.kind, cdd.vdi.clone()),
        (XVDA + 48, VbdKind::Cdrom, None)
    );
    for v in [&d0, &d1, &cd] {
        assert!(attached(&mut e, &sid, v));
    }
    assert_eq!(field(&mut e, &sid, "VBD", "device", &d0), s("xvda"));
    assert_eq!(e.hypervisor().vbds.len(), 3);
    // The domain dies: every VBD goes with it.
    e.hypervisor().vbd_calls.clear();
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    assert!(e.hypervisor().vbds.is_empty());
    assert!(e
        .hypervisor()
        .vbd_calls
        .iter()
        .all(|c| matches!(c, FakeVbdCall::Detach(x, _, true) if *x == d)));
    for v in [&d0, &d1, &cd] {
        assert!(!attached(&mut e, &sid, v));
    }
    // A guest that stops by itself too.
    let d = start(&mut e, &sid, &vm);
    assert_eq!(e.hypervisor().vbds.len(), 3);
    e.hypervisor().domains.remove(&d);
    e.domain_stopped(T0, d, StopReason::Poweroff).unwrap();
    assert!(e.hypervisor().vbds.is_empty());
    assert!(!attached(&mut e, &sid, &d0));
}

#[test]
fn a_start_whose_vbd_cannot_attach_fails_and_leaves_nothing() {
    let (mut e, sid, vm) = setup();
    let a = new_vdi(&mut e, &sid, &[]);
    let b = new_vdi(&mut e, &sid, &[]);
    let d0 = new_disk(&mut e, &sid, &vm, &a, "0");
    new_disk(&mut e, &sid, &vm, &b, "1");
    e.hypervisor().fail_vbd_attach = Some((XVDA + 16, "no blkback".into()));
    let f = Value::Bool(false);
    let p = fails(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f.clone()],
        "INTERNAL_ERROR",
    );
    assert!(p[0].contains("VBD 1: no blkback"), "{p:?}");
    assert!(e.hypervisor().vbds.is_empty());
    assert!(e.hypervisor().domains.is_empty(), "the domain is destroyed");
    assert!(!attached(&mut e, &sid, &d0));
    assert_eq!(field(&mut e, &sid, "VM", "power_state", &vm), s("Halted"));
    // No storage backend at all: the start fails the same way.
    e.hypervisor().storage = None;
    fails(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f],
        "INTERNAL_ERROR",
    );
    assert!(e.hypervisor().domains.is_empty());
}

#[test]
fn a_vdi_is_attached_rw_once_and_a_missing_one_not_at_all() {
    let (mut e, sid, vm) = setup();
    let other = new_vm(&mut e, &sid, "other");
    let a = new_vdi(&mut e, &sid, &[]);
    new_disk(&mut e, &sid, &vm, &a, "0");
    new_disk(&mut e, &sid, &other, &a, "0");
    start(&mut e, &sid, &vm);
    let f = Value::Bool(false);
    let p = fails(
        &mut e,
        "VM.start",
        vec![sid.clone(), other.clone(), f.clone(), f.clone()],
        "VDI_IN_USE",
    );
    assert_eq!(p, [a.as_str().unwrap(), "attach"]);
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    // The SR lost the VDI: a scan marks it, a start says so.
    let uuid = field(&mut e, &sid, "VDI", "uuid", &a);
    e.hypervisor()
        .storage
        .as_mut()
        .unwrap()
        .vdis
        .remove(uuid.as_str().unwrap());
    let srr = sr(&mut e, &sid);
    ok(&mut e, "SR.scan", vec![sid.clone(), srr.clone()]);
    let p = fails(
        &mut e,
        "VM.start",
        vec![sid.clone(), other, f.clone(), f],
        "VDI_MISSING",
    );
    assert_eq!(p, [srr.as_str().unwrap(), a.as_str().unwrap()]);
}

#[test]
fn plug_and_unplug_need_a_running_vm_and_destroy_an_unplugged_vbd() {
    let (mut e, sid, vm) = setup();
    let a = new_vdi(&mut e, &sid, &[]);
    let b = new_vdi(&mut e, &sid, &[]);
    let d0 = new_disk(&mut e, &sid, &vm, &a, "0");
    let p = fails(
        &mut e,
        "VBD.plug",
        vec![sid.clone(), d0.clone()],
        "VM_BAD_POWER_STATE",
    );
    assert_eq!(p, [vm.as_str().unwrap(), "running", "halted"]);
    fails(
        &mut e,
        "VBD.unplug",
        vec![sid.clone(), d0.clone()],
        "VM_BAD_POWER_STATE",
    );
    let d = start(&mut e, &sid, &vm);
    fails(
        &mut e,
        "VBD.plug",
        vec![sid.clone(), d0.clone()],
        "DEVICE_ALREADY_ATTACHED",
    );
    let p = fails(
        &mut e,
        "VBD.destroy",
        vec![sid.clone(), d0.clone()],
        "OPERATION_NOT_ALLOWED",
    );
    assert!(p[0].contains("still attached"), "{p:?}");
    // Hotplug a second disk into the running VM.
    let d1 = new_disk(&mut e, &sid, &vm, &b, "1");
    assert!(!attached(&mut e, &sid, &d1));
    let Value::Array(ops) = field(&mut e, &sid, "VBD", "allowed_operations", &d1) else {
        panic!()
    };
    assert!(ops.contains(&s("plug")));
    ok(&mut e, "VBD.plug", vec![sid.clone(), d1.clone()]);
    assert!(attached(&mut e, &sid, &d1));
    assert!(e.hypervisor().vbds.contains_key(&(d, XVDA + 16)));
    ok(&mut e, "VBD.unplug_force", vec![sid.clone(), d1.clone()]);
    assert!(!attached(&mut e, &sid, &d1));
    assert!(!e.hypervisor().vbds.contains_key(&(d, XVDA + 16)));
    fails(
        &mut e,
        "VBD.unplug",
        vec![sid.clone(), d1.clone()],
        "DEVICE_ALREADY_DETACHED",
    );
    ok(&mut e, "VBD.destroy", vec![sid.clone(), d1.clone()]);
    assert_eq!(
        ok(&mut e, "VDI.get_VBDs", vec![sid.clone(), b]),
        Value::Array(vec![])
    );
    // VM.destroy takes the rest.
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    ok(&mut e, "VM.destroy", vec![sid.clone(), vm]);
    fails(&mut e, "VBD.get_record", vec![sid, d0], "HANDLE_INVALID");
}

fn request(method: &str, sid: &Value, arg: &Value) -> Vec<u8> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","method":"{method}","params":["{}","{}"],"id":1}}"#,
        sid.as_str().unwrap(),
        arg.as_str().unwrap()
    );
    format!(
        "POST /jsonrpc HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn again(e: &mut E, now: Instant, req: &[u8]) -> Option<String> {
    match e.handle(now, Some(T0), req) {
        Handled::Park { .. } => None,
        Handled::Reply { bytes, .. } => Some(String::from_utf8_lossy(&bytes.to_vec()).into()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unplug_waits_for_the_backend_to_close() {
    let (mut e, sid, vm) = setup();
    let a = new_vdi(&mut e, &sid, &[]);
    let vbd = new_disk(&mut e, &sid, &vm, &a, "0");
    let d = start(&mut e, &sid, &vm);
    e.hypervisor().vbd_backend_closes = false;
    e.hypervisor().vbd_calls.clear();
    let req = request("VBD.unplug", &sid, &vbd);
    let Handled::Park { until } = e.handle(T0, None, &req) else {
        panic!("the call waits for the backend");
    };
    assert_eq!(until, Instant(T0.0 + VBD_DETACH_MS));
    assert_eq!(
        e.hypervisor().vbd_calls,
        [FakeVbdCall::Detach(d, XVDA, false)]
    );
    assert!(e.hypervisor().vbds[&(d, XVDA)].1, "asked to close");
    fails(
        &mut e,
        "VBD.plug",
        vec![sid.clone(), vbd.clone()],
        "OTHER_OPERATION_IN_PROGRESS",
    );
    assert_eq!(again(&mut e, Instant(T0.0 + 100), &req), None);
    e.hypervisor().vbd_backend_closes = true;
    let reply = again(&mut e, Instant(T0.0 + 200), &req).expect("answers");
    assert!(reply.contains("\"result\":\"\""), "{reply}");
    assert!(e.hypervisor().vbds.is_empty());
    assert!(!attached(&mut e, &sid, &vbd));
    // A backend that never closes: removed anyway after VBD_DETACH_MS.
    ok(&mut e, "VBD.plug", vec![sid.clone(), vbd.clone()]);
    e.hypervisor().vbd_backend_closes = false;
    assert!(matches!(e.handle(T0, None, &req), Handled::Park { .. }));
    assert_eq!(again(&mut e, Instant(T0.0 + VBD_DETACH_MS - 1), &req), None);
    let reply = again(&mut e, Instant(T0.0 + VBD_DETACH_MS), &req).expect("answers");
    assert!(reply.contains("\"result\":\"\""), "{reply}");
    assert!(e.hypervisor().vbds.is_empty());
    assert!(!attached(&mut e, &sid, &vbd));
}

#[test]
fn async_unplug_keeps_its_task_pending_until_the_backend_closes() {
    let (mut e, sid, vm) = setup();
    let a = new_vdi(&mut e, &sid, &[]);
    let vbd = new_disk(&mut e, &sid, &vm, &a, "0");
    let d = start(&mut e, &sid, &vm);
    e.hypervisor().vbd_backend_closes = false;
    let task = ok(&mut e, "Async.VBD.unplug", vec![sid.clone(), vbd.clone()]);
    e.run_jobs(Instant(T0.0 + 1));
    let status = |e: &mut E| {
        ok(e, "task.get_status", vec![sid.clone(), task.clone()])
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status(&mut e), "pending");
    assert!(e.hypervisor().vbds[&(d, XVDA)].1, "asked to close");
    e.hypervisor().vbd_backend_closes = true;
    e.run_jobs(Instant(T0.0 + 50));
    assert_eq!(status(&mut e), "success");
    assert!(e.hypervisor().vbds.is_empty());
    assert!(!attached(&mut e, &sid, &vbd));
}

#[test]
fn reboot_and_a_guest_restart_reattach_in_the_new_domain() {
    let (mut e, sid, vm) = setup();
    let a = new_vdi(&mut e, &sid, &[]);
    let vbd = new_disk(&mut e, &sid, &vm, &a, "0");
    let d1 = start(&mut e, &sid, &vm);
    ok(&mut e, "VM.hard_reboot", vec![sid.clone(), vm.clone()]);
    let d2 = field(&mut e, &sid, "VM", "domid", &vm).as_int().unwrap() as u32;
    assert_ne!(d1, d2);
    assert!(attached(&mut e, &sid, &vbd));
    assert_eq!(
        e.hypervisor().vbds.keys().copied().collect::<Vec<_>>(),
        [(d2, XVDA)]
    );
    ok(
        &mut e,
        "VM.set_actions_after_reboot",
        vec![sid.clone(), vm.clone(), s("restart")],
    );
    e.hypervisor()
        .domains
        .insert(d2, xenapi::hypervisor::FakeState::Shutdown);
    e.domain_stopped(T0, d2, StopReason::Reboot)
        .unwrap()
        .expect("handled");
    let d3 = field(&mut e, &sid, "VM", "domid", &vm).as_int().unwrap() as u32;
    assert_ne!(d3, d2);
    assert_eq!(
        e.hypervisor().vbds.keys().copied().collect::<Vec<_>>(),
        [(d3, XVDA)]
    );
    assert!(e
        .hypervisor()
        .vbd_calls
        .contains(&FakeVbdCall::Detach(d2, XVDA, true)));
    // After a toolstack restart no domain survives: detached, Halted.
    let mut again = open(e.storage_for_tests().crash());
    again.recover_after_restart(T0).unwrap();
    let sid = login(&mut again);
    assert!(!attached(&mut again, &sid, &vbd));
}

mod model {
    //! Any sequence of VBD and power calls keeps the database and the
    //! fake backend agreeing: a VBD is `currently_attached` exactly when
    //! the backend holds its device in its VM's domain, and a VDI allows
    //! `destroy` exactly when none of its VBDs is attached.
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Create(usize, usize, u8),
        Destroy(usize),
        Plug(usize),
        Unplug(usize),
        Start(usize),
        Stop(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..2, 0usize..3, 0u8..4).prop_map(|(v, d, u)| Op::Create(v, d, u)),
            (0usize..8).prop_map(Op::Destroy),
            (0usize..8).prop_map(Op::Plug),
            (0usize..8).prop_map(Op::Unplug),
            (0usize..2).prop_map(Op::Start),
            (0usize..2).prop_map(Op::Stop),
        ]
    }

    fn set(v: Value) -> Vec<Value> {
        match v {
            Value::Array(a) => a,
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn database_and_backend_agree(ops in proptest::collection::vec(op(), 1..32)) {
            let (mut e, sid, vm0) = setup();
            let vm1 = new_vm(&mut e, &sid, "second");
            let vms = [vm0, vm1];
            let vdis: Vec<Value> = (0..3).map(|_| new_vdi(&mut e, &sid, &[])).collect();
            let f = Value::Bool(false);
            for op in ops {
                let vbds = set(ok(&mut e, "VBD.get_all", vec![sid.clone()]));
                let pick = |i: usize| vbds.get(i % vbds.len().max(1)).cloned();
                let _ = match op {
                    Op::Create(v, d, u) => e.call_value(
                        T0,
                        "VBD.create",
                        vec![sid.clone(), vbd_rec(&vms[v], &vdis[d], &u.to_string(), "Disk", "RW", false)],
                    ),
                    Op::Destroy(i) => match pick(i) {
                        Some(b) => e.call_value(T0, "VBD.destroy", vec![sid.clone(), b]),
                        None => continue,
                    },
                    Op::Plug(i) => match pick(i) {
                        Some(b) => e.call_value(T0, "VBD.plug", vec![sid.clone(), b]),
                        None => continue,
                    },
                    Op::Unplug(i) => match pick(i) {
                        Some(b) => e.call_value(T0, "VBD.unplug", vec![sid.clone(), b]),
                        None => continue,
                    },
                    Op::Start(v) => e.call_value(T0, "VM.start", vec![sid.clone(), vms[v].clone(), f.clone(), f.clone()]),
                    Op::Stop(v) => e.call_value(T0, "VM.hard_shutdown", vec![sid.clone(), vms[v].clone()]),
                };
                let mut expected = std::collections::BTreeSet::new();
                for b in set(ok(&mut e, "VBD.get_all", vec![sid.clone()])) {
                    if attached(&mut e, &sid, &b) {
                        let vm = field(&mut e, &sid, "VBD", "VM", &b);
                        let d = field(&mut e, &sid, "VM", "domid", &vm).as_int().unwrap();
                        prop_assert!(d > 0, "attached to a VM without a domain");
                        let u: u32 = field(&mut e, &sid, "VBD", "userdevice", &b)
                            .as_str().unwrap().parse().unwrap();
                        expected.insert((d as u32, XVDA + 16 * u));
                    }
                }
                let held: std::collections::BTreeSet<(u32, u32)> =
                    e.hypervisor().vbds.keys().copied().collect();
                prop_assert_eq!(&held, &expected);
                for vdi in &vdis {
                    let busy = set(ok(&mut e, "VDI.get_VBDs", vec![sid.clone(), vdi.clone()]))
                        .iter()
                        .any(|b| attached(&mut e, &sid, b));
                    let ops = set(field(&mut e, &sid, "VDI", "allowed_operations", vdi));
                    prop_assert_eq!(ops.contains(&s("destroy")), !busy);
                    // A non-sharable VDI is attached RW at most once.
                    let rw = set(ok(&mut e, "VDI.get_VBDs", vec![sid.clone(), vdi.clone()]))
                        .iter()
                        .filter(|b| attached(&mut e, &sid, b))
                        .count();
                    prop_assert!(rw <= 1, "{rw} RW attachments");
                }
            }
        }
    }
}
