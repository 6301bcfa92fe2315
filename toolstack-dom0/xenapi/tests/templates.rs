//! Built-in templates: what a fresh host holds, the fields orchestrators
//! read, made again at open when missing (xapi's find_or_create_template),
//! and what a default template refuses.

use xenapi::templates::{parse_disks, BUILTIN};
use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;

#[test]
fn a_fresh_host_has_the_builtin_templates_with_the_fields_orchestrators_read() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    assert_eq!(BUILTIN.len(), 3);
    for (name, dt, loader, policy) in [
        ("Other install media", "hvm", "", "BIOS order"),
        ("Generic Linux PVH", "pvh", "pygrub", ""),
        ("Generic Linux PV", "pv", "pygrub", ""),
    ] {
        let t = template(&mut e, &sid, name);
        let r = smap(ok(&mut e, "VM.get_record", vec![sid.clone(), t.clone()]));
        assert_eq!(r["is_a_template"], Value::Bool(true), "{name}");
        assert_eq!(r["is_default_template"], Value::Bool(true), "{name}");
        assert_eq!(r["power_state"], s("Halted"));
        assert_eq!(r["domain_type"], s(dt), "{name}");
        assert_eq!(r["PV_bootloader"], s(loader), "{name}");
        assert_eq!(r["PV_kernel"], s(""), "{name}");
        assert_eq!(r["HVM_boot_policy"], s(policy), "{name}");
        assert_eq!(r["VCPUs_max"], Value::Int(1));
        assert_eq!(r["VCPUs_at_startup"], Value::Int(1));
        assert_eq!(r["memory_static_min"], Value::Int(128 << 20));
        assert_eq!(r["memory_static_max"], Value::Int(256 << 20));
        assert_eq!(r["memory_dynamic_min"], Value::Int(256 << 20));
        assert_eq!(r["memory_dynamic_max"], Value::Int(256 << 20));
        let rec = r["recommendations"].as_str().unwrap().to_string();
        assert!(rec.starts_with("<restrictions>"), "{rec}");
        assert!(rec.contains("field=\"vcpus-max\""), "{rec}");
        let platform = smap(r["platform"].clone());
        assert_eq!(platform["acpi"], s("true"));
        let oc = smap(r["other_config"].clone());
        assert_eq!(oc["default_template"], s("true"));
        assert!(oc.contains_key("install-methods"));
        assert!(oc.contains_key("mac_seed"));
        if dt == "hvm" {
            assert!(!oc.contains_key("disks"));
        } else {
            assert_eq!(oc["linux_template"], s("true"));
            let disks = parse_disks(oc["disks"].as_str().unwrap()).unwrap();
            assert_eq!(disks.len(), 1);
            assert_eq!(disks[0].device, 0);
            assert!(disks[0].bootable);
            assert_eq!(disks[0].sr, "");
            assert_eq!(disks[0].ty, "system");
            assert_eq!(disks[0].size, 8 << 30);
        }
        let ops = array(r["allowed_operations"].clone());
        for op in ["clone", "copy", "provision"] {
            assert!(ops.contains(&s(op)), "{name} {op} {ops:?}");
        }
        for op in ["start", "destroy"] {
            assert!(!ops.contains(&s(op)), "{name} {op} {ops:?}");
        }
    }
}

#[test]
fn default_templates_cannot_be_started_or_destroyed() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let t = template(&mut e, &sid, "Generic Linux PVH");
    let f = Value::Bool(false);
    let p = fails(
        &mut e,
        "VM.start",
        vec![sid.clone(), t.clone(), f.clone(), f.clone()],
        "VM_IS_TEMPLATE",
    );
    assert_eq!(p, [t.as_str().unwrap(), "start"]);
    let hosts = array(ok(&mut e, "host.get_all", vec![sid.clone()]));
    fails(
        &mut e,
        "VM.start_on",
        vec![
            sid.clone(),
            t.clone(),
            hosts[0].clone(),
            f.clone(),
            f.clone(),
        ],
        "VM_IS_TEMPLATE",
    );
    fails(
        &mut e,
        "VM.destroy",
        vec![sid.clone(), t.clone()],
        "VM_CANNOT_DELETE_DEFAULT_TEMPLATE",
    );
    let err = run_async(
        &mut e,
        &sid,
        "Async.VM.destroy",
        vec![sid.clone(), t.clone()],
    );
    assert_eq!(err.unwrap_err()[0], s("VM_CANNOT_DELETE_DEFAULT_TEMPLATE"));
    let p = fails(
        &mut e,
        "VM.destroy",
        vec![sid.clone(), t.clone()],
        "VM_CANNOT_DELETE_DEFAULT_TEMPLATE",
    );
    assert!(p.is_empty(), "{p:?}");
    // xapi lets a default template be made a VM; it still cannot be
    // destroyed (its other_config:default_template says so).
    ok(
        &mut e,
        "VM.set_is_a_template",
        vec![sid.clone(), t.clone(), f],
    );
    fails(
        &mut e,
        "VM.destroy",
        vec![sid.clone(), t.clone()],
        "VM_CANNOT_DELETE_DEFAULT_TEMPLATE",
    );
    let ops = array(get(&mut e, &sid, "VM", "allowed_operations", &t));
    assert!(
        ops.contains(&s("start")) && !ops.contains(&s("destroy")),
        "{ops:?}"
    );
    // A user's own template can be destroyed.
    let mine = new_vm(&mut e, &sid, "mine");
    ok(
        &mut e,
        "VM.set_is_a_template",
        vec![sid.clone(), mine.clone(), Value::Bool(true)],
    );
    ok(&mut e, "VM.destroy", vec![sid.clone(), mine]);
}

fn default_templates(e: &mut E, sid: &Value) -> usize {
    array(ok(e, "VM.get_all", vec![sid.clone()]))
        .into_iter()
        .filter(|v| get(e, sid, "VM", "is_default_template", v) == Value::Bool(true))
        .count()
}

#[test]
fn reopening_keeps_the_templates_and_makes_a_missing_one_again() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    assert_eq!(default_templates(&mut e, &sid), 3);
    // Renamed: xapi looks its templates up by name, so the next start
    // makes "Generic Linux PV" again (and keeps the renamed one).
    let t = template(&mut e, &sid, "Generic Linux PV");
    ok(
        &mut e,
        "VM.set_name_label",
        vec![sid.clone(), t.clone(), s("my PV")],
    );
    let storage = e.storage_for_tests().clone();
    let mut e = open(storage);
    let sid = login(&mut e);
    assert_eq!(default_templates(&mut e, &sid), 4);
    let again = template(&mut e, &sid, "Generic Linux PV");
    assert_ne!(again, t);
    // And a plain reopen makes nothing more.
    let storage = e.storage_for_tests().clone();
    let mut e = open(storage);
    let sid = login(&mut e);
    assert_eq!(default_templates(&mut e, &sid), 4);
    assert_eq!(
        array(ok(
            &mut e,
            "VM.get_by_name_label",
            vec![sid.clone(), s("Generic Linux PVH")]
        ))
        .len(),
        1
    );
}
