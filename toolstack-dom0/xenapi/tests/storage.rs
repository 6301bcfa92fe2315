//! SRs and VDIs over the fake SR backend: `VDI.create`'s record,
//! `destroy` / `resize` refused while in use, snapshots and clones,
//! `SR.scan` and `SR.update`, and backend failures as xapi's errors.

use std::collections::BTreeMap;

use proptest::prelude::*;
use xenapi::storage::{FakeSr, FAKE_BLOCK};
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

mod common;
use common::*;

fn sr(e: &mut E, sid: &Value) -> Value {
    let Value::Array(srs) = ok(e, "SR.get_all", vec![sid.clone()]) else {
        panic!("SR.get_all")
    };
    srs[0].clone()
}

fn vdi_rec(sr: &Value, size: i64, extra: &[(&str, Value)]) -> Value {
    let mut r = BTreeMap::new();
    r.insert("SR".to_string(), sr.clone());
    r.insert("name_label".to_string(), s("disk"));
    r.insert("virtual_size".to_string(), Value::Int(size));
    r.insert("type".to_string(), s("user"));
    for (k, v) in extra {
        r.insert(k.to_string(), v.clone());
    }
    Value::Map(r)
}

fn new_vdi(e: &mut E, sid: &Value, size: i64) -> Value {
    let sr = sr(e, sid);
    ok(e, "VDI.create", vec![sid.clone(), vdi_rec(&sr, size, &[])])
}

fn field(e: &mut E, sid: &Value, class: &str, f: &str, r: &Value) -> Value {
    ok(e, &format!("{class}.get_{f}"), vec![sid.clone(), r.clone()])
}

fn int(e: &mut E, sid: &Value, class: &str, f: &str, r: &Value) -> i64 {
    field(e, sid, class, f, r).as_int().unwrap()
}

fn text(e: &mut E, sid: &Value, class: &str, f: &str, r: &Value) -> String {
    field(e, sid, class, f, r).as_str().unwrap().to_string()
}

fn fake(e: &mut E) -> &mut FakeSr {
    e.hypervisor().storage.as_mut().unwrap()
}

fn new_vbd(e: &mut E, sid: &Value, vm: &Value, vdi: &Value, dev: &str) -> Value {
    let mut r = BTreeMap::new();
    r.insert("VM".to_string(), vm.clone());
    r.insert("VDI".to_string(), vdi.clone());
    r.insert("userdevice".to_string(), s(dev));
    r.insert("type".to_string(), s("Disk"));
    r.insert("mode".to_string(), s("RW"));
    ok(e, "VBD.create", vec![sid.clone(), Value::Map(r)])
}

fn start(e: &mut E, sid: &Value, vm: &Value) {
    let f = Value::Bool(false);
    ok(e, "VM.start", vec![sid.clone(), vm.clone(), f.clone(), f]);
}

fn setup() -> (E, Value) {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    (e, sid)
}

const GIB: i64 = 1 << 30;

#[test]
fn create_fills_the_record_as_xapi_does_and_the_sr_holds_the_vdi() {
    let (mut e, sid) = setup();
    let srr = sr(&mut e, &sid);
    let vdi = ok(
        &mut e,
        "VDI.create",
        vec![
            sid.clone(),
            vdi_rec(
                &srr,
                GIB + 1,
                &[
                    ("sharable", Value::Bool(true)),
                    ("read_only", Value::Bool(false)),
                ],
            ),
        ],
    );
    let uuid = text(&mut e, &sid, "VDI", "uuid", &vdi);
    // Named on the SR by its uuid; the SR rounded the size up.
    assert_eq!(text(&mut e, &sid, "VDI", "location", &vdi), uuid);
    let rounded = ((GIB as u64 + 1).div_ceil(FAKE_BLOCK) * FAKE_BLOCK) as i64;
    assert_eq!(int(&mut e, &sid, "VDI", "virtual_size", &vdi), rounded);
    assert_eq!(fake(&mut e).vdis[&uuid].0, rounded as u64);
    assert_eq!(int(&mut e, &sid, "VDI", "physical_utilisation", &vdi), 0);
    assert_eq!(text(&mut e, &sid, "VDI", "type", &vdi), "user");
    assert_eq!(
        field(&mut e, &sid, "VDI", "managed", &vdi),
        Value::Bool(true)
    );
    assert_eq!(
        field(&mut e, &sid, "VDI", "missing", &vdi),
        Value::Bool(false)
    );
    assert_eq!(
        field(&mut e, &sid, "VDI", "sharable", &vdi),
        Value::Bool(true)
    );
    assert_eq!(field(&mut e, &sid, "VDI", "SR", &vdi), srr);
    assert_eq!(
        field(&mut e, &sid, "VDI", "is_a_snapshot", &vdi),
        Value::Bool(false)
    );
    assert_eq!(
        ok(&mut e, "SR.get_VDIs", vec![sid.clone(), srr.clone()]),
        Value::Array(vec![vdi.clone()])
    );
    // The SR's sizes are the backend's.
    assert_eq!(int(&mut e, &sid, "SR", "virtual_allocation", &srr), rounded);
    assert_eq!(int(&mut e, &sid, "SR", "physical_size", &srr), 100 * GIB);
    let Value::Array(ops) = field(&mut e, &sid, "VDI", "allowed_operations", &vdi) else {
        panic!()
    };
    assert!(ops.contains(&s("destroy")) && ops.contains(&s("clone")));
    // A sharable VDI cannot be snapshot (xapi's VDI_IS_SHARABLE).
    assert!(!ops.contains(&s("snapshot")));
    fails(
        &mut e,
        "VDI.snapshot",
        vec![sid.clone(), vdi.clone(), Value::Map(BTreeMap::new())],
        "VDI_IS_SHARABLE",
    );
}

#[test]
fn create_refuses_what_xapi_refuses() {
    let (mut e, sid) = setup();
    let srr = sr(&mut e, &sid);
    let p = fails(
        &mut e,
        "VDI.create",
        vec![sid.clone(), vdi_rec(&srr, -1, &[])],
        "INVALID_VALUE",
    );
    assert_eq!(p, ["virtual_size", "-1"]);
    fails(
        &mut e,
        "VDI.create",
        vec![sid.clone(), vdi_rec(&s("OpaqueRef:ghost"), 1, &[])],
        "HANDLE_INVALID",
    );
    fails(
        &mut e,
        "VDI.create",
        vec![sid.clone(), vdi_rec(&srr, 1, &[("type", s("floppy"))])],
        "FIELD_TYPE_ERROR",
    );
    // A thick SR that is full.
    fake(&mut e).thick = true;
    fake(&mut e).physical_size = 4 * GIB as u64;
    new_vdi(&mut e, &sid, 3 * GIB);
    let p = fails(
        &mut e,
        "VDI.create",
        vec![sid.clone(), vdi_rec(&srr, 2 * GIB, &[])],
        "SR_FULL",
    );
    assert_eq!(p, [(2 * GIB).to_string(), GIB.to_string()]);
    // The backend failing.
    fake(&mut e).fail_next = Some("disk on fire".into());
    let p = fails(
        &mut e,
        "VDI.create",
        vec![sid.clone(), vdi_rec(&srr, 1, &[])],
        "SR_BACKEND_FAILURE",
    );
    assert_eq!(p[0], "disk on fire");
    // No backend at all: the SR has no plugged PBD.
    e.hypervisor().storage = None;
    let p = fails(
        &mut e,
        "VDI.create",
        vec![sid.clone(), vdi_rec(&srr, 1, &[])],
        "SR_HAS_NO_PBDS",
    );
    assert_eq!(p, [srr.as_str().unwrap()]);
    // Nothing was made of the refused calls.
    let Value::Array(all) = ok(&mut e, "VDI.get_all", vec![sid]) else {
        panic!()
    };
    assert_eq!(all.len(), 1, "only the 3 GiB VDI");
}

#[test]
fn destroy_and_resize_refused_while_attached_to_a_running_vm() {
    let (mut e, sid) = setup();
    let vm = new_vm(&mut e, &sid, "guest");
    let vdi = new_vdi(&mut e, &sid, GIB);
    let vbd = new_vbd(&mut e, &sid, &vm, &vdi, "0");
    start(&mut e, &sid, &vm);
    let p = fails(
        &mut e,
        "VDI.destroy",
        vec![sid.clone(), vdi.clone()],
        "VDI_IN_USE",
    );
    assert_eq!(p, [vdi.as_str().unwrap(), "destroy"]);
    let p = fails(
        &mut e,
        "VDI.resize",
        vec![sid.clone(), vdi.clone(), Value::Int(2 * GIB)],
        "VDI_IN_USE",
    );
    assert_eq!(p, [vdi.as_str().unwrap(), "resize"]);
    let Value::Array(ops) = field(&mut e, &sid, "VDI", "allowed_operations", &vdi) else {
        panic!()
    };
    assert!(!ops.contains(&s("destroy")) && ops.contains(&s("resize_online")));
    // Live: resize_online, snapshot and clone.
    ok(
        &mut e,
        "VDI.resize_online",
        vec![sid.clone(), vdi.clone(), Value::Int(2 * GIB)],
    );
    assert_eq!(int(&mut e, &sid, "VDI", "virtual_size", &vdi), 2 * GIB);
    let p = fails(
        &mut e,
        "VDI.resize_online",
        vec![sid.clone(), vdi.clone(), Value::Int(GIB)],
        "VDI_TOO_SMALL",
    );
    assert_eq!(
        p,
        [vdi.as_str().unwrap().to_string(), (2 * GIB).to_string()]
    );
    let snap = ok(
        &mut e,
        "VDI.snapshot",
        vec![sid.clone(), vdi.clone(), Value::Map(BTreeMap::new())],
    );
    // Halted: destroy works, takes the VBDs with it, and the SR frees it.
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    ok(
        &mut e,
        "VDI.resize",
        vec![sid.clone(), vdi.clone(), Value::Int(3 * GIB)],
    );
    let uuid = text(&mut e, &sid, "VDI", "uuid", &vdi);
    ok(&mut e, "VDI.destroy", vec![sid.clone(), vdi.clone()]);
    assert!(!fake(&mut e).vdis.contains_key(&uuid));
    fails(
        &mut e,
        "VBD.get_record",
        vec![sid.clone(), vbd],
        "HANDLE_INVALID",
    );
    assert_eq!(
        ok(&mut e, "VM.get_VBDs", vec![sid.clone(), vm]),
        Value::Array(vec![])
    );
    // The snapshot stays, pointing at its (gone) source as in xapi.
    assert_eq!(field(&mut e, &sid, "VDI", "snapshot_of", &snap), vdi);
}

#[test]
fn snapshot_and_clone_copy_on_the_sr_and_link_their_records() {
    let (mut e, sid) = setup();
    let srr = sr(&mut e, &sid);
    let mut oc = BTreeMap::new();
    oc.insert("k".to_string(), s("v"));
    let vdi = ok(
        &mut e,
        "VDI.create",
        vec![
            sid.clone(),
            vdi_rec(&srr, GIB, &[("other_config", Value::Map(oc.clone()))]),
        ],
    );
    let uuid = text(&mut e, &sid, "VDI", "uuid", &vdi);
    fake(&mut e).write(&uuid, 1 << 20);
    let none = Value::Map(BTreeMap::new());
    let later = Instant(T0.0 + 5000);
    let snap = e
        .call_value(
            later,
            "VDI.snapshot",
            vec![sid.clone(), vdi.clone(), none.clone()],
        )
        .unwrap();
    let clone = ok(&mut e, "VDI.clone", vec![sid.clone(), vdi.clone(), none]);
    let snap_uuid = text(&mut e, &sid, "VDI", "uuid", &snap);
    let clone_uuid = text(&mut e, &sid, "VDI", "uuid", &clone);
    assert_ne!(snap_uuid, uuid);
    assert_ne!(clone_uuid, snap_uuid);
    // The SR made O(1) copies under the new uuids.
    assert_eq!(
        fake(&mut e).vdis[&snap_uuid].2.as_deref(),
        Some(uuid.as_str())
    );
    assert_eq!(fake(&mut e).vdis[&clone_uuid].2, None);
    assert_eq!(int(&mut e, &sid, "VDI", "physical_utilisation", &snap), 0);
    // Records: the snapshot is one, of the source, at the call's time.
    assert_eq!(
        field(&mut e, &sid, "VDI", "is_a_snapshot", &snap),
        Value::Bool(true)
    );
    assert_eq!(field(&mut e, &sid, "VDI", "snapshot_of", &snap), vdi);
    assert_eq!(
        field(&mut e, &sid, "VDI", "snapshot_time", &snap),
        Value::DateTime(xenapi::value::format_datetime(later))
    );
    assert_eq!(
        field(&mut e, &sid, "VDI", "snapshots", &vdi),
        Value::Array(vec![snap.clone()])
    );
    assert_eq!(
        field(&mut e, &sid, "VDI", "is_a_snapshot", &clone),
        Value::Bool(false)
    );
    for copy in [&snap, &clone] {
        assert_eq!(text(&mut e, &sid, "VDI", "name_label", copy), "disk");
        assert_eq!(int(&mut e, &sid, "VDI", "virtual_size", copy), GIB);
        assert_eq!(
            field(&mut e, &sid, "VDI", "other_config", copy),
            Value::Map(oc.clone())
        );
        let loc = text(&mut e, &sid, "VDI", "location", copy);
        assert_eq!(loc, text(&mut e, &sid, "VDI", "uuid", copy));
    }
    // Destroying the snapshot unlists it from the source.
    ok(&mut e, "VDI.destroy", vec![sid.clone(), snap]);
    assert_eq!(
        field(&mut e, &sid, "VDI", "snapshots", &vdi),
        Value::Array(vec![])
    );
}

#[test]
fn scan_adds_what_the_sr_has_and_marks_what_it_lost() {
    let (mut e, sid) = setup();
    let srr = sr(&mut e, &sid);
    let kept = new_vdi(&mut e, &sid, GIB);
    let lost = new_vdi(&mut e, &sid, GIB);
    let kept_uuid = text(&mut e, &sid, "VDI", "uuid", &kept);
    let lost_uuid = text(&mut e, &sid, "VDI", "uuid", &lost);
    // Behind the database's back: one VDI goes, two appear (one a
    // snapshot of the kept one), one has a name that is not a uuid.
    let f = fake(&mut e);
    f.vdis.remove(&lost_uuid);
    let new = "11111111-2222-3333-4444-555555555555";
    let snap = "11111111-2222-3333-4444-666666666666";
    f.vdis.insert(new.into(), (2 << 30, 4096, None));
    f.vdis
        .insert(snap.into(), (1 << 30, 0, Some(kept_uuid.clone())));
    f.vdis.insert("not-a-uuid".into(), (1, 0, None));
    f.write(&kept_uuid, 8192);
    ok(&mut e, "SR.scan", vec![sid.clone(), srr.clone()]);
    assert_eq!(
        field(&mut e, &sid, "VDI", "missing", &lost),
        Value::Bool(true)
    );
    assert_eq!(
        field(&mut e, &sid, "VDI", "missing", &kept),
        Value::Bool(false)
    );
    assert_eq!(
        int(&mut e, &sid, "VDI", "physical_utilisation", &kept),
        8192
    );
    let n = ok(&mut e, "VDI.get_by_uuid", vec![sid.clone(), s(new)]);
    assert_eq!(int(&mut e, &sid, "VDI", "virtual_size", &n), 2 << 30);
    assert_eq!(text(&mut e, &sid, "VDI", "location", &n), new);
    assert_eq!(field(&mut e, &sid, "VDI", "SR", &n), srr);
    assert_eq!(text(&mut e, &sid, "VDI", "type", &n), "user");
    let sn = ok(&mut e, "VDI.get_by_uuid", vec![sid.clone(), s(snap)]);
    assert_eq!(field(&mut e, &sid, "VDI", "snapshot_of", &sn), kept);
    assert_eq!(
        field(&mut e, &sid, "VDI", "is_a_snapshot", &sn),
        Value::Bool(true)
    );
    let Value::Array(all) = ok(&mut e, "SR.get_VDIs", vec![sid.clone(), srr.clone()]) else {
        panic!()
    };
    assert_eq!(all.len(), 4, "the malformed name is skipped");
    // SR sizes refreshed.
    assert_eq!(
        int(&mut e, &sid, "SR", "physical_utilisation", &srr),
        8192 + 4096
    );
    // A missing VDI refuses operations but can be destroyed (forgotten).
    let p = fails(
        &mut e,
        "VDI.clone",
        vec![sid.clone(), lost.clone(), Value::Map(BTreeMap::new())],
        "VDI_MISSING",
    );
    assert_eq!(p, [srr.as_str().unwrap(), lost.as_str().unwrap()]);
    ok(&mut e, "VDI.destroy", vec![sid.clone(), lost.clone()]);
    // A second scan changes nothing.
    ok(&mut e, "SR.scan", vec![sid.clone(), srr.clone()]);
    let Value::Array(again) = ok(&mut e, "SR.get_VDIs", vec![sid.clone(), srr]) else {
        panic!()
    };
    assert_eq!(again.len(), 3);
}

#[test]
fn update_refreshes_the_sr_sizes_and_async_works() {
    let (mut e, sid) = setup();
    let srr = sr(&mut e, &sid);
    fake(&mut e).physical_size = 7 * GIB as u64;
    let task = ok(&mut e, "Async.SR.update", vec![sid.clone(), srr.clone()]);
    e.run_jobs(T0);
    assert_eq!(
        ok(&mut e, "task.get_status", vec![sid.clone(), task]),
        s("success")
    );
    assert_eq!(int(&mut e, &sid, "SR", "physical_size", &srr), 7 * GIB);
    let vdi = new_vdi(&mut e, &sid, GIB);
    let task = ok(
        &mut e,
        "Async.VDI.clone",
        vec![sid.clone(), vdi, Value::Map(BTreeMap::new())],
    );
    e.run_jobs(T0);
    assert_eq!(
        ok(&mut e, "task.get_status", vec![sid.clone(), task.clone()]),
        s("success")
    );
    let made = ok(&mut e, "task.get_result", vec![sid.clone(), task]);
    assert!(made.as_str().unwrap().contains("OpaqueRef:"), "{made:?}");
}

#[test]
fn storage_records_survive_a_restart() {
    let (mut e, sid) = setup();
    let vdi = new_vdi(&mut e, &sid, GIB);
    let snap = ok(
        &mut e,
        "VDI.snapshot",
        vec![sid.clone(), vdi.clone(), Value::Map(BTreeMap::new())],
    );
    let mut again = open(e.storage_for_tests().crash());
    let sid = login(&mut again);
    assert_eq!(field(&mut again, &sid, "VDI", "snapshot_of", &snap), vdi);
    assert_eq!(
        field(&mut again, &sid, "VDI", "snapshots", &vdi),
        Value::Array(vec![snap])
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any sequence of VDI calls keeps the database and the SR agreeing:
    /// every VDI record that is not missing names a VDI on the SR of its
    /// size, every VDI on the SR has a record, and the SR's allocation is
    /// the sum of its VDIs.
    #[test]
    fn the_database_and_the_sr_agree(ops in proptest::collection::vec((0u8..5, 0usize..6, 1i64..8), 1..24)) {
        let (mut e, sid) = setup();
        let srr = sr(&mut e, &sid);
        let mut vdis: Vec<Value> = Vec::new();
        for (op, which, size) in ops {
            let pick = (!vdis.is_empty()).then(|| vdis[which % vdis.len()].clone());
            let none = Value::Map(BTreeMap::new());
            let r = match (op, pick) {
                (0, _) | (_, None) => e.call_value(T0, "VDI.create", vec![sid.clone(), vdi_rec(&srr, size * GIB, &[])]),
                (1, Some(v)) => e.call_value(T0, "VDI.destroy", vec![sid.clone(), v]),
                (2, Some(v)) => e.call_value(T0, "VDI.resize", vec![sid.clone(), v, Value::Int(size * GIB)]),
                (3, Some(v)) => e.call_value(T0, "VDI.snapshot", vec![sid.clone(), v, none]),
                (_, Some(v)) => e.call_value(T0, "VDI.clone", vec![sid.clone(), v, none]),
            };
            if let Ok(Value::String(r)) = r {
                if r.starts_with("OpaqueRef:") {
                    vdis.push(Value::String(r));
                }
            }
            let Value::Array(all) = ok(&mut e, "VDI.get_all", vec![sid.clone()]) else { panic!() };
            vdis.retain(|v| all.contains(v));
            let on_sr = fake(&mut e).vdis.clone();
            prop_assert_eq!(all.len(), on_sr.len());
            let mut total = 0;
            for v in &all {
                let u = text(&mut e, &sid, "VDI", "location", v);
                let size = int(&mut e, &sid, "VDI", "virtual_size", v);
                prop_assert_eq!(on_sr.get(&u).map(|x| x.0 as i64), Some(size));
                total += size;
            }
            prop_assert_eq!(int(&mut e, &sid, "SR", "virtual_allocation", &srr), total);
        }
    }
}
