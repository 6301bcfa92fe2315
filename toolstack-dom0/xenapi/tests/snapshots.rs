//! `VM.snapshot`, `VM.revert`, clones of snapshots and `VM.destroy`'s
//! rules, as xapi_vm_snapshot / xapi_vm_clone / xapi_vm_helpers do them:
//! the records, the SR's copy-on-write tree (FakeSr), events, and the WAL.

use std::collections::BTreeMap;

use xenapi::snapshots::MAX_SNAPSHOTS;
use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;

const NULL: &str = "OpaqueRef:NULL";

fn vbd(e: &mut E, sid: &Value, vm: &Value, vdi: &str, dev: &str, ty: &str, empty: bool) -> Value {
    let mode = if ty == "CD" { "RO" } else { "RW" };
    ok(
        e,
        "VBD.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("VDI", s(vdi)),
                ("userdevice", s(dev)),
                ("type", s(ty)),
                ("mode", s(mode)),
                ("empty", Value::Bool(empty)),
                ("bootable", Value::Bool(dev == "0")),
            ]),
        ],
    )
}

fn vif(e: &mut E, sid: &Value, vm: &Value, dev: &str, mac: &str) -> Value {
    let net = array(ok(e, "network.get_all", vec![sid.clone()]))[0].clone();
    ok(
        e,
        "VIF.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("network", net),
                ("device", s(dev)),
                ("MAC", s(mac)),
                ("MTU", Value::Int(1500)),
            ]),
        ],
    )
}

/// A Halted VM with a disk (userdevice 0) holding "before", a CD with an
/// ISO (3), an empty CD (4), a VIF with a generated MAC and one with a
/// chosen MAC: (vm, disk, iso).
fn furnished(e: &mut E, sid: &Value) -> (Value, Value, Value) {
    let vm = new_vm(e, sid, "web");
    let disk = new_vdi_of(e, sid, 1 << 30, "user");
    let iso = new_vdi_of(e, sid, 1 << 20, "user");
    vbd(e, sid, &vm, disk.as_str().unwrap(), "0", "Disk", false);
    vbd(e, sid, &vm, iso.as_str().unwrap(), "3", "CD", false);
    vbd(e, sid, &vm, NULL, "4", "CD", true);
    vif(e, sid, &vm, "0", "");
    vif(e, sid, &vm, "1", "02:00:00:00:00:07");
    write(e, sid, &disk, b"before");
    (vm, disk, iso)
}

fn uuid(e: &mut E, sid: &Value, vdi: &Value) -> String {
    get(e, sid, "VDI", "uuid", vdi)
        .as_str()
        .unwrap()
        .to_string()
}

/// The guest writes `bytes` at the start of `vdi` (on the fake SR).
fn write(e: &mut E, sid: &Value, vdi: &Value, bytes: &[u8]) {
    let u = uuid(e, sid, vdi);
    let sr = e.hypervisor().storage.as_mut().unwrap();
    let data = sr.data.entry(u.clone()).or_insert_with(|| vec![0; 64]);
    data[..bytes.len()].copy_from_slice(bytes);
    sr.write(&u, bytes.len() as u64);
}

/// What `vdi` holds on the fake SR (its first `n` bytes).
fn read(e: &mut E, sid: &Value, vdi: &Value, n: usize) -> Vec<u8> {
    let u = uuid(e, sid, vdi);
    e.hypervisor().storage.as_ref().unwrap().data[&u][..n].to_vec()
}

fn on_sr(e: &mut E, sid: &Value, vdi_uuid: &str) -> Option<(u64, u64, Option<String>)> {
    let _ = sid;
    e.hypervisor()
        .storage
        .as_ref()
        .unwrap()
        .vdis
        .get(vdi_uuid)
        .cloned()
}

/// userdevice -> (type, VDI, empty) of each VBD of `vm`.
fn vbds(e: &mut E, sid: &Value, vm: &Value) -> BTreeMap<String, (String, Value, bool)> {
    array(get(e, sid, "VM", "VBDs", vm))
        .into_iter()
        .map(|b| {
            let dev = get(e, sid, "VBD", "userdevice", &b);
            let ty = get(e, sid, "VBD", "type", &b);
            (
                dev.as_str().unwrap().to_string(),
                (
                    ty.as_str().unwrap().to_string(),
                    get(e, sid, "VBD", "VDI", &b),
                    get(e, sid, "VBD", "empty", &b).as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

/// device -> MAC of each VIF of `vm`.
fn macs(e: &mut E, sid: &Value, vm: &Value) -> BTreeMap<String, Value> {
    array(get(e, sid, "VM", "VIFs", vm))
        .into_iter()
        .map(|v| {
            let d = get(e, sid, "VIF", "device", &v);
            (
                d.as_str().unwrap().to_string(),
                get(e, sid, "VIF", "MAC", &v),
            )
        })
        .collect()
}

fn ops(e: &mut E, sid: &Value, vm: &Value) -> Vec<String> {
    let mut v: Vec<String> = array(get(e, sid, "VM", "allowed_operations", vm))
        .into_iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn snapshot(e: &mut E, sid: &Value, vm: &Value, name: &str) -> Value {
    ok(e, "VM.snapshot", vec![sid.clone(), vm.clone(), s(name)])
}

fn start(e: &mut E, sid: &Value, vm: &Value) {
    let f = Value::Bool(false);
    ok(e, "VM.start", vec![sid.clone(), vm.clone(), f.clone(), f]);
}

#[test]
fn snapshot_records_the_vm_and_snapshots_its_disks_on_the_sr() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let (vm, disk, iso) = furnished(&mut e, &sid);
    ok(
        &mut e,
        "VM.set_VCPUs_max",
        vec![sid.clone(), vm.clone(), Value::Int(2)],
    );
    let snap = snapshot(&mut e, &sid, &vm, "before upgrade");
    let g = |e: &mut E, f: &str| get(e, &sid, "VM", f, &snap);
    assert_eq!(g(&mut e, "name_label"), s("before upgrade"));
    assert_eq!(g(&mut e, "is_a_snapshot"), Value::Bool(true));
    assert_eq!(g(&mut e, "is_a_template"), Value::Bool(true));
    assert_eq!(g(&mut e, "snapshot_of"), vm);
    assert_eq!(g(&mut e, "power_state"), s("Halted"));
    assert_eq!(g(&mut e, "VCPUs_max"), Value::Int(2));
    assert!(matches!(g(&mut e, "snapshot_time"), Value::DateTime(t) if t != "19700101T00:00:00Z"));
    let info = smap(g(&mut e, "snapshot_info"));
    assert_eq!(info["power-state-at-snapshot"], s("Halted"));
    assert_eq!(info["disk-snapshot-type"], s("crash_consistent"));
    // The VM lists it, and it is the VM's parent now (xapi's tree).
    assert_eq!(
        array(get(&mut e, &sid, "VM", "snapshots", &vm)),
        vec![snap.clone()]
    );
    assert_eq!(get(&mut e, &sid, "VM", "parent", &vm), snap);
    assert_eq!(
        array(get(&mut e, &sid, "VM", "children", &snap)),
        vec![vm.clone()]
    );
    assert_eq!(
        get(&mut e, &sid, "VM", "is_a_snapshot", &vm),
        Value::Bool(false)
    );
    // The same mac_seed and MACs (xapi keeps them for snapshots).
    let seed =
        |e: &mut E, v: &Value| smap(get(e, &sid, "VM", "other_config", v))["mac_seed"].clone();
    assert_eq!(seed(&mut e, &snap), seed(&mut e, &vm));
    assert_eq!(macs(&mut e, &sid, &snap), macs(&mut e, &sid, &vm));
    assert_eq!(macs(&mut e, &sid, &snap).len(), 2);
    // The disk was snapshotted on the SR (sharing its blocks: nothing of
    // its own yet, the source's content); the CDs keep their disc.
    let before = vbds(&mut e, &sid, &vm);
    let after = vbds(&mut e, &sid, &snap);
    assert_eq!(after.len(), 3);
    let sdisk = after["0"].1.clone();
    assert_ne!(sdisk, disk);
    let (su, du) = (uuid(&mut e, &sid, &sdisk), uuid(&mut e, &sid, &disk));
    let calls = e.hypervisor().storage.as_ref().unwrap().calls.clone();
    assert!(calls.contains(&format!("snapshot {su}")), "{calls:?}");
    let (size, own, of) = on_sr(&mut e, &sid, &su).unwrap();
    assert_eq!((size, own, of), (1 << 30, 0, Some(du.clone())));
    assert_eq!(read(&mut e, &sid, &sdisk, 6), b"before");
    let vdi = |e: &mut E, f: &str| get(e, &sid, "VDI", f, &sdisk);
    assert_eq!(vdi(&mut e, "is_a_snapshot"), Value::Bool(true));
    assert_eq!(vdi(&mut e, "snapshot_of"), disk);
    assert!(
        matches!(vdi(&mut e, "snapshot_time"), Value::DateTime(t) if t != "19700101T00:00:00Z")
    );
    assert_eq!(
        array(get(&mut e, &sid, "VDI", "snapshots", &disk)),
        vec![sdisk.clone()]
    );
    assert_eq!(after["3"], before["3"]);
    assert_eq!(after["3"].1, iso);
    // The snapshot owns its disk, not its CD (xapi's CA-58405).
    for b in array(get(&mut e, &sid, "VM", "VBDs", &snap)) {
        let disk = get(&mut e, &sid, "VBD", "type", &b) == s("Disk");
        let oc = smap(get(&mut e, &sid, "VBD", "other_config", &b));
        assert_eq!(oc.get("owner") == Some(&s("")), disk, "{oc:?}");
    }
    assert_eq!(after["4"], ("CD".to_string(), s(NULL), true));
    // What each allows.
    assert_eq!(
        ops(&mut e, &sid, &snap),
        ["clone", "copy", "destroy", "revert"]
    );
    assert!(ops(&mut e, &sid, &vm).contains(&"snapshot".to_string()));
    // A snapshot does not start, nor is it snapshotted or provisioned.
    let f = Value::Bool(false);
    let p = fails(
        &mut e,
        "VM.start",
        vec![sid.clone(), snap.clone(), f.clone(), f],
        "VM_IS_SNAPSHOT",
    );
    assert_eq!(p, [snap.as_str().unwrap(), "start"]);
    fails(
        &mut e,
        "VM.snapshot",
        vec![sid.clone(), snap.clone(), s("x")],
        "VM_IS_SNAPSHOT",
    );
    fails(
        &mut e,
        "VM.provision",
        vec![sid.clone(), snap.clone()],
        "VM_IS_SNAPSHOT",
    );
    let t = template(&mut e, &sid, "Generic Linux PVH");
    fails(
        &mut e,
        "VM.snapshot",
        vec![sid.clone(), t, s("x")],
        "VM_IS_TEMPLATE",
    );
}

#[test]
fn a_running_vm_is_snapshotted_crash_consistent() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let (vm, disk, _) = furnished(&mut e, &sid);
    start(&mut e, &sid, &vm);
    let snap = snapshot(&mut e, &sid, &vm, "live");
    assert_eq!(get(&mut e, &sid, "VM", "power_state", &snap), s("Halted"));
    assert_eq!(get(&mut e, &sid, "VM", "domid", &snap), Value::Int(-1));
    let info = smap(get(&mut e, &sid, "VM", "snapshot_info", &snap));
    assert_eq!(info["power-state-at-snapshot"], s("Running"));
    assert_eq!(get(&mut e, &sid, "VM", "power_state", &vm), s("Running"));
    // The snapshot's VBDs are not attached; the VM's still are.
    for b in array(get(&mut e, &sid, "VM", "VBDs", &snap)) {
        assert_eq!(
            get(&mut e, &sid, "VBD", "currently_attached", &b),
            Value::Bool(false)
        );
    }
    let sdisk = vbds(&mut e, &sid, &snap)["0"].1.clone();
    assert_eq!(get(&mut e, &sid, "VDI", "snapshot_of", &sdisk), disk);
    // Revert needs the VM Halted.
    let p = fails(
        &mut e,
        "VM.revert",
        vec![sid.clone(), snap.clone()],
        "VM_BAD_POWER_STATE",
    );
    assert_eq!(p, [vm.as_str().unwrap(), "halted", "running"]);
    // Quiesced snapshots and checkpoints are refused, each its own way.
    fails(
        &mut e,
        "VM.snapshot_with_quiesce",
        vec![sid.clone(), vm.clone(), s("q")],
        "VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED",
    );
    fails(
        &mut e,
        "VM.checkpoint",
        vec![sid.clone(), vm.clone(), s("c")],
        "OPERATION_NOT_ALLOWED",
    );
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    let p = fails(
        &mut e,
        "VM.snapshot_with_quiesce",
        vec![sid.clone(), vm.clone(), s("q")],
        "VM_BAD_POWER_STATE",
    );
    assert_eq!(p, [vm.as_str().unwrap(), "running", "halted"]);
    assert_eq!(array(get(&mut e, &sid, "VM", "snapshots", &vm)).len(), 1);
}

#[test]
fn revert_brings_back_the_disks_and_configuration() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let (vm, disk, iso) = furnished(&mut e, &sid);
    let snap = snapshot(&mut e, &sid, &vm, "good");
    let sdisk = vbds(&mut e, &sid, &snap)["0"].1.clone();
    let snap_macs = macs(&mut e, &sid, &snap);
    let vcpus = get(&mut e, &sid, "VM", "VCPUs_max", &vm);
    // Change the disk, the configuration and the devices.
    write(&mut e, &sid, &disk, b"broken");
    assert_eq!(read(&mut e, &sid, &sdisk, 6), b"before");
    ok(
        &mut e,
        "VM.set_VCPUs_max",
        vec![sid.clone(), vm.clone(), Value::Int(4)],
    );
    ok(
        &mut e,
        "VM.set_name_description",
        vec![sid.clone(), vm.clone(), s("changed")],
    );
    let extra = new_vdi_of(&mut e, &sid, 1 << 20, "user");
    vbd(
        &mut e,
        &sid,
        &vm,
        extra.as_str().unwrap(),
        "1",
        "Disk",
        false,
    );
    vif(&mut e, &sid, &vm, "2", "");
    let du = uuid(&mut e, &sid, &disk);

    assert_ne!(get(&mut e, &sid, "VM", "VCPUs_max", &vm), vcpus);
    ok(&mut e, "VM.revert", vec![sid.clone(), snap.clone()]);
    assert_eq!(get(&mut e, &sid, "VM", "VCPUs_max", &vm), vcpus);
    assert_eq!(get(&mut e, &sid, "VM", "name_description", &vm), s(""));
    // The name is the VM's own, not the snapshot's.
    assert_eq!(get(&mut e, &sid, "VM", "name_label", &vm), s("web"));
    assert_eq!(
        get(&mut e, &sid, "VM", "is_a_template", &vm),
        Value::Bool(false)
    );
    assert_eq!(get(&mut e, &sid, "VM", "power_state", &vm), s("Halted"));
    assert_eq!(get(&mut e, &sid, "VM", "parent", &vm), snap);
    assert_eq!(
        array(get(&mut e, &sid, "VM", "snapshots", &vm)),
        vec![snap.clone()]
    );
    // The disk is a clone of the snapshot's: the change is gone.
    let now = vbds(&mut e, &sid, &vm);
    assert_eq!(
        now.keys().cloned().collect::<Vec<_>>(),
        ["0", "3", "4"],
        "the disk the snapshot lacks is detached"
    );
    let new_disk = now["0"].1.clone();
    assert_ne!(new_disk, disk);
    assert_ne!(new_disk, sdisk);
    assert_eq!(read(&mut e, &sid, &new_disk, 6), b"before");
    let nu = uuid(&mut e, &sid, &new_disk);
    let calls = e.hypervisor().storage.as_ref().unwrap().calls.clone();
    assert!(calls.contains(&format!("clone {nu}")), "{calls:?}");
    // The old disk is destroyed, on the SR too; the extra one is kept.
    fails(
        &mut e,
        "VDI.get_uuid",
        vec![sid.clone(), disk.clone()],
        "HANDLE_INVALID",
    );
    assert!(on_sr(&mut e, &sid, &du).is_none());
    assert_eq!(
        array(get(&mut e, &sid, "VDI", "VBDs", &extra)),
        Vec::<Value>::new()
    );
    // The snapshot's disk is in the same tree: a snapshot of the new one.
    assert_eq!(get(&mut e, &sid, "VDI", "snapshot_of", &sdisk), new_disk);
    assert_eq!(
        array(get(&mut e, &sid, "VDI", "snapshots", &new_disk)),
        vec![sdisk.clone()]
    );
    assert_eq!(now["3"].1, iso);
    assert!(now["4"].2);
    assert_eq!(macs(&mut e, &sid, &vm), snap_macs);
    // Writes after the revert are the VM's own; a second revert works.
    write(&mut e, &sid, &new_disk, b"again!");
    ok(&mut e, "VM.revert", vec![sid.clone(), snap.clone()]);
    let d = vbds(&mut e, &sid, &vm)["0"].1.clone();
    assert_eq!(read(&mut e, &sid, &d, 6), b"before");
    assert_eq!(read(&mut e, &sid, &sdisk, 6), b"before");
    // It boots.
    start(&mut e, &sid, &vm);
    // Only snapshots are reverted to.
    fails(
        &mut e,
        "VM.revert",
        vec![sid.clone(), vm.clone()],
        "ONLY_REVERT_SNAPSHOT",
    );
}

#[test]
fn a_clone_of_a_snapshot_shares_its_blocks_and_is_its_own_vm() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let (vm, _, _) = furnished(&mut e, &sid);
    let snap = snapshot(&mut e, &sid, &vm, "base");
    let sdisk = vbds(&mut e, &sid, &snap)["0"].1.clone();
    let c = ok(
        &mut e,
        "VM.clone",
        vec![sid.clone(), snap.clone(), s("new")],
    );
    // As in xapi (`xe snapshot-clone`): a template, not a snapshot, until
    // VM.provision makes it a VM.
    let g = |e: &mut E, f: &str| get(e, &sid, "VM", f, &c);
    assert_eq!(g(&mut e, "is_a_snapshot"), Value::Bool(false));
    assert_eq!(g(&mut e, "is_a_template"), Value::Bool(true));
    assert_eq!(g(&mut e, "snapshot_of"), s(NULL));
    assert_eq!(smap(g(&mut e, "snapshot_info")).len(), 0);
    assert_eq!(g(&mut e, "parent"), s(NULL));
    assert_eq!(
        array(get(&mut e, &sid, "VM", "snapshots", &vm)),
        vec![snap.clone()]
    );
    let cdisk = vbds(&mut e, &sid, &c)["0"].1.clone();
    let cu = uuid(&mut e, &sid, &cdisk);
    let calls = e.hypervisor().storage.as_ref().unwrap().calls.clone();
    assert!(calls.contains(&format!("clone {cu}")), "{calls:?}");
    assert_eq!(on_sr(&mut e, &sid, &cu).unwrap().1, 0, "shares its blocks");
    assert_eq!(read(&mut e, &sid, &cdisk, 6), b"before");
    assert_eq!(
        get(&mut e, &sid, "VDI", "is_a_snapshot", &cdisk),
        Value::Bool(false)
    );
    ok(&mut e, "VM.provision", vec![sid.clone(), c.clone()]);
    assert_eq!(g(&mut e, "is_a_template"), Value::Bool(false));
    start(&mut e, &sid, &c);
    // Each sees its own writes.
    write(&mut e, &sid, &cdisk, b"clone!");
    assert_eq!(read(&mut e, &sid, &sdisk, 6), b"before");
    let vdisk = vbds(&mut e, &sid, &vm)["0"].1.clone();
    assert_eq!(read(&mut e, &sid, &vdisk, 6), b"before");
    // VDI.clone / VDI.snapshot of the snapshot's disk: the same tree.
    let again = ok(
        &mut e,
        "VDI.snapshot",
        vec![sid.clone(), sdisk.clone(), Value::Map(Default::default())],
    );
    assert_eq!(get(&mut e, &sid, "VDI", "snapshot_of", &again), sdisk);
}

#[test]
fn destroy_keeps_the_disks_and_revert_makes_the_vm_again() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let (vm, disk, _) = furnished(&mut e, &sid);
    let s1 = snapshot(&mut e, &sid, &vm, "one");
    let s2 = snapshot(&mut e, &sid, &vm, "two");
    // xapi's tree: s2's parent is s1, the VM's s2.
    assert_eq!(get(&mut e, &sid, "VM", "parent", &s2), s1);
    assert_eq!(get(&mut e, &sid, "VM", "parent", &vm), s2);
    let s1disk = vbds(&mut e, &sid, &s1)["0"].1.clone();
    let s1u = uuid(&mut e, &sid, &s1disk);
    // Destroying a snapshot keeps its disk (xapi's VM.destroy keeps VDIs);
    // the VM no longer lists it and its children get its parent.
    ok(&mut e, "VM.destroy", vec![sid.clone(), s1.clone()]);
    assert_eq!(
        array(get(&mut e, &sid, "VM", "snapshots", &vm)),
        vec![s2.clone()]
    );
    assert_eq!(get(&mut e, &sid, "VM", "parent", &s2), s(NULL));
    assert_eq!(
        get(&mut e, &sid, "VDI", "is_a_snapshot", &s1disk),
        Value::Bool(true)
    );
    assert!(on_sr(&mut e, &sid, &s1u).is_some());
    // Destroying the VM keeps its disks; its snapshot still names it.
    let du = uuid(&mut e, &sid, &disk);
    ok(&mut e, "VM.destroy", vec![sid.clone(), vm.clone()]);
    assert_eq!(get(&mut e, &sid, "VDI", "uuid", &disk), s(&du));
    assert!(on_sr(&mut e, &sid, &du).is_some());
    assert_eq!(get(&mut e, &sid, "VM", "snapshot_of", &s2), vm);
    // Revert makes the VM again from the snapshot.
    ok(&mut e, "VM.revert", vec![sid.clone(), s2.clone()]);
    let again = get(&mut e, &sid, "VM", "snapshot_of", &s2);
    assert_ne!(again, vm);
    assert_eq!(
        get(&mut e, &sid, "VM", "is_a_snapshot", &again),
        Value::Bool(false)
    );
    assert_eq!(
        get(&mut e, &sid, "VM", "is_a_template", &again),
        Value::Bool(false)
    );
    assert_eq!(
        array(get(&mut e, &sid, "VM", "snapshots", &again)),
        vec![s2.clone()]
    );
    let d = vbds(&mut e, &sid, &again)["0"].1.clone();
    assert_eq!(read(&mut e, &sid, &d, 6), b"before");
    start(&mut e, &sid, &again);
}

#[test]
fn snapshots_per_vm_are_bounded_and_a_failure_leaves_nothing() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let (vm, _, _) = furnished(&mut e, &sid);
    let count = |e: &mut E, c: &str| array(ok(e, &format!("{c}.get_all"), vec![sid.clone()])).len();
    // The SR fails the disk's snapshot: no VM, VDI, VBD or VIF is left.
    let before = [
        count(&mut e, "VM"),
        count(&mut e, "VDI"),
        count(&mut e, "VBD"),
        count(&mut e, "VIF"),
    ];
    e.hypervisor().storage.as_mut().unwrap().fail_next = Some("EIO".into());
    fails(
        &mut e,
        "VM.snapshot",
        vec![sid.clone(), vm.clone(), s("x")],
        "SR_BACKEND_FAILURE",
    );
    let after = [
        count(&mut e, "VM"),
        count(&mut e, "VDI"),
        count(&mut e, "VBD"),
        count(&mut e, "VIF"),
    ];
    assert_eq!(before, after);
    assert_eq!(get(&mut e, &sid, "VM", "parent", &vm), s(NULL));
    for i in 0..MAX_SNAPSHOTS {
        snapshot(&mut e, &sid, &vm, &format!("s{i}"));
    }
    let p = fails(
        &mut e,
        "VM.snapshot",
        vec![sid.clone(), vm.clone(), s("one too many")],
        "LIMIT_REACHED",
    );
    assert_eq!(p, ["snapshots"]);
    // One goes, one more fits.
    let first = array(get(&mut e, &sid, "VM", "snapshots", &vm))[0].clone();
    ok(&mut e, "VM.destroy", vec![sid.clone(), first]);
    snapshot(&mut e, &sid, &vm, "fits");
}

#[test]
fn ignore_vdis_async_events_and_the_wal() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let (vm, disk, _) = furnished(&mut e, &sid);
    let (token, _) = event_from(&mut e, &sid, &["vm", "vdi"], s(""));
    // ignore_vdis: the disk is left out of the snapshot.
    let bare = ok(
        &mut e,
        "VM.snapshot",
        vec![
            sid.clone(),
            vm.clone(),
            s("no disk"),
            Value::Array(vec![disk.clone()]),
        ],
    );
    assert!(!vbds(&mut e, &sid, &bare).contains_key("0"));
    // Async: the task's result is the snapshot.
    let snap = run_async(
        &mut e,
        &sid,
        "Async.VM.snapshot",
        vec![sid.clone(), vm.clone(), s("async")],
    )
    .unwrap();
    let snap = s(&snap);
    assert_eq!(get(&mut e, &sid, "VM", "snapshot_of", &snap), vm);
    let sdisk = vbds(&mut e, &sid, &snap)["0"].1.clone();
    // event.from sees the snapshot, its disk and the VM's new snapshots.
    let (_, events) = event_from(&mut e, &sid, &["vm", "vdi"], token);
    let seen = |class: &str, op: &str, r: &Value| {
        events.iter().any(|ev| {
            let ev = smap(ev.clone());
            ev["class"] == s(class) && ev["operation"] == s(op) && &ev["ref"] == r
        })
    };
    assert!(seen("vm", "add", &snap));
    assert!(seen("vdi", "add", &sdisk));
    assert!(seen("vm", "mod", &vm));
    let vm_event = events
        .iter()
        .map(|ev| smap(ev.clone()))
        .rfind(|ev| ev["ref"] == vm && ev["operation"] == s("mod"))
        .unwrap();
    let snapshots = array(smap(vm_event["snapshot"].clone())["snapshots"].clone());
    assert!(snapshots.contains(&snap), "{snapshots:?}");
    let snap_ops = ops(&mut e, &sid, &snap);
    // After a restart the snapshot and its tree are still there.
    let mut again = open(e.storage_for_tests().crash());
    let sid = login(&mut again);
    assert_eq!(
        get(&mut again, &sid, "VM", "is_a_snapshot", &snap),
        Value::Bool(true)
    );
    assert_eq!(get(&mut again, &sid, "VM", "snapshot_of", &snap), vm);
    let mut got = array(get(&mut again, &sid, "VM", "snapshots", &vm));
    got.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    let mut want = vec![bare, snap.clone()];
    want.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(got, want);
    assert_eq!(get(&mut again, &sid, "VDI", "snapshot_of", &sdisk), disk);
    assert_eq!(ops(&mut again, &sid, &snap), snap_ops);
}

#[test]
fn a_revert_the_sr_refuses_changes_nothing_and_a_revert_is_seen_in_events() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let (vm, disk, _) = furnished(&mut e, &sid);
    let snap = snapshot(&mut e, &sid, &vm, "good");
    write(&mut e, &sid, &disk, b"broken");
    let before = vbds(&mut e, &sid, &vm);
    let vdis = array(ok(&mut e, "VDI.get_all", vec![sid.clone()])).len();
    // The clone of the snapshot's disk fails: the VM keeps its disks.
    e.hypervisor().storage.as_mut().unwrap().fail_next = Some("EIO".into());
    fails(
        &mut e,
        "VM.revert",
        vec![sid.clone(), snap.clone()],
        "SR_BACKEND_FAILURE",
    );
    assert_eq!(vbds(&mut e, &sid, &vm), before);
    assert_eq!(
        array(ok(&mut e, "VDI.get_all", vec![sid.clone()])).len(),
        vdis
    );
    assert_eq!(read(&mut e, &sid, &disk, 6), b"broken");
    // Async revert; event.from sees the VM's new devices and the old disk go.
    let (token, _) = event_from(&mut e, &sid, &["vm", "vbd", "vdi"], s(""));
    run_async(
        &mut e,
        &sid,
        "Async.VM.revert",
        vec![sid.clone(), snap.clone()],
    )
    .unwrap();
    let (_, events) = event_from(&mut e, &sid, &["vm", "vbd", "vdi"], token);
    let seen = |class: &str, op: &str, r: &Value| {
        events.iter().any(|ev| {
            let ev = smap(ev.clone());
            ev["class"] == s(class) && ev["operation"] == s(op) && &ev["ref"] == r
        })
    };
    let new_disk = vbds(&mut e, &sid, &vm)["0"].1.clone();
    assert!(seen("vdi", "del", &disk));
    assert!(seen("vdi", "add", &new_disk));
    assert!(seen("vm", "mod", &vm));
    assert_eq!(read(&mut e, &sid, &new_disk, 6), b"before");
}
