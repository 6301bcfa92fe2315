//! `VM.provision` over `other_config:disks`: the disks made in the SR named
//! or the default one, the VBDs, `disks` removed; a hostile spec refused
//! with nothing made (and the parser never panics).

use proptest::prelude::*;
use xenapi::templates::{disks_xml, parse_disks, DiskSpec, MAX_DISKS};
use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;

fn count(e: &mut E, sid: &Value, c: &str) -> usize {
    array(ok(e, &format!("{c}.get_all"), vec![sid.clone()])).len()
}

fn set_disks(e: &mut E, sid: &Value, vm: &Value, xml: &str) {
    let _ = e.call_value(
        T0,
        "VM.remove_from_other_config",
        vec![sid.clone(), vm.clone(), s("disks")],
    );
    ok(
        e,
        "VM.add_to_other_config",
        vec![sid.clone(), vm.clone(), s("disks"), s(xml)],
    );
}

#[test]
fn provision_makes_the_templates_disk_in_the_default_sr() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let t = template(&mut e, &sid, "Generic Linux PVH");
    let vm = ok(&mut e, "VM.clone", vec![sid.clone(), t, s("web")]);
    assert!(array(get(&mut e, &sid, "VM", "VBDs", &vm)).is_empty());
    assert_eq!(
        get(&mut e, &sid, "VM", "is_a_template", &vm),
        Value::Bool(true)
    );
    ok(&mut e, "VM.provision", vec![sid.clone(), vm.clone()]);
    // Provisioning is install time: the clone is a VM now.
    assert_eq!(
        get(&mut e, &sid, "VM", "is_a_template", &vm),
        Value::Bool(false)
    );
    let ops = array(get(&mut e, &sid, "VM", "allowed_operations", &vm));
    assert!(ops.contains(&s("start")), "{ops:?}");
    let vbds = array(get(&mut e, &sid, "VM", "VBDs", &vm));
    assert_eq!(vbds.len(), 1);
    let b = &vbds[0];
    assert_eq!(get(&mut e, &sid, "VBD", "userdevice", b), s("0"));
    assert_eq!(get(&mut e, &sid, "VBD", "bootable", b), Value::Bool(true));
    assert_eq!(get(&mut e, &sid, "VBD", "mode", b), s("RW"));
    assert_eq!(get(&mut e, &sid, "VBD", "type", b), s("Disk"));
    let vdi = get(&mut e, &sid, "VBD", "VDI", b);
    assert_eq!(
        get(&mut e, &sid, "VDI", "virtual_size", &vdi),
        Value::Int(8 << 30)
    );
    assert_eq!(get(&mut e, &sid, "VDI", "type", &vdi), s("system"));
    assert_eq!(
        get(&mut e, &sid, "VDI", "name_description", &vdi),
        s("Created by template provisioner")
    );
    assert_eq!(get(&mut e, &sid, "VDI", "name_label", &vdi), s("web 0"));
    assert_eq!(
        get(&mut e, &sid, "VBD", "unpluggable", b),
        Value::Bool(false)
    );
    assert_eq!(
        smap(get(&mut e, &sid, "VBD", "other_config", b))["owner"],
        s("")
    );
    let sr = default_sr(&mut e, &sid);
    assert_eq!(get(&mut e, &sid, "VDI", "SR", &vdi), sr);
    let oc = smap(get(&mut e, &sid, "VM", "other_config", &vm));
    assert!(!oc.contains_key("disks"), "{oc:?}");
    // Again: nothing left to do.
    ok(&mut e, "VM.provision", vec![sid.clone(), vm.clone()]);
    assert_eq!(array(get(&mut e, &sid, "VM", "VBDs", &vm)).len(), 1);
}

#[test]
fn provision_takes_the_sr_by_uuid_and_each_disks_settings() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "two disks");
    let sr = default_sr(&mut e, &sid);
    let sr_uuid = get(&mut e, &sid, "SR", "uuid", &sr);
    let spec = [
        DiskSpec {
            device: 1,
            size: 1 << 30,
            sr: sr_uuid.as_str().unwrap().to_string(),
            bootable: false,
            ty: "user".to_string(),
        },
        DiskSpec {
            device: 0,
            size: 2 << 30,
            sr: String::new(),
            bootable: true,
            ty: "system".to_string(),
        },
    ];
    set_disks(&mut e, &sid, &vm, &disks_xml(&spec));
    let task = run_async(
        &mut e,
        &sid,
        "Async.VM.provision",
        vec![sid.clone(), vm.clone()],
    );
    assert_eq!(task, Ok(String::new()));
    let mut got: Vec<(String, bool, Value, Value)> = array(get(&mut e, &sid, "VM", "VBDs", &vm))
        .into_iter()
        .map(|b| {
            let vdi = get(&mut e, &sid, "VBD", "VDI", &b);
            (
                get(&mut e, &sid, "VBD", "userdevice", &b)
                    .as_str()
                    .unwrap()
                    .to_string(),
                get(&mut e, &sid, "VBD", "bootable", &b).as_bool().unwrap(),
                get(&mut e, &sid, "VDI", "virtual_size", &vdi),
                get(&mut e, &sid, "VDI", "type", &vdi),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("0".to_string(), true, Value::Int(2 << 30), s("system")),
            ("1".to_string(), false, Value::Int(1 << 30), s("user")),
        ]
    );
}

#[test]
fn bad_specs_and_states_are_refused_with_nothing_made() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "victim");
    let (vdis, vbds) = (count(&mut e, &sid, "VDI"), count(&mut e, &sid, "VBD"));
    for bad in [
        "<provision><disk device=\"0\" size=\"1\"",
        "<provision><disk device=\"0\" size=\"lots\" sr=\"\" bootable=\"true\" type=\"system\"/></provision>",
        "<!DOCTYPE provision [<!ENTITY x \"y\">]><provision/>",
        "<provision><script/></provision>",
    ] {
        set_disks(&mut e, &sid, &vm, bad);
        let p = fails(
            &mut e,
            "VM.provision",
            vec![sid.clone(), vm.clone()],
            "INVALID_VALUE",
        );
        assert_eq!(p[0], "other_config:disks", "{bad}");
    }
    // An SR that does not exist.
    let spec = DiskSpec {
        device: 0,
        size: 1 << 20,
        sr: "00000000-0000-0000-0000-000000000000".to_string(),
        bootable: true,
        ty: "system".to_string(),
    };
    set_disks(&mut e, &sid, &vm, &disks_xml(&[spec]));
    fails(
        &mut e,
        "VM.provision",
        vec![sid.clone(), vm.clone()],
        "UUID_INVALID",
    );
    // A device the VM already uses: the first disk is made, the second
    // refused, and the first removed again.
    let taken = new_vdi_of(&mut e, &sid, 1 << 20, "user");
    ok(
        &mut e,
        "VBD.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("VDI", taken),
                ("userdevice", s("2")),
                ("type", s("Disk")),
                ("mode", s("RW")),
                ("empty", Value::Bool(false)),
                ("bootable", Value::Bool(false)),
            ]),
        ],
    );
    let (vdis, vbds) = (vdis + 1, vbds + 1);
    let two: Vec<DiskSpec> = [1, 2]
        .iter()
        .map(|d| DiskSpec {
            device: *d,
            size: 1 << 20,
            sr: String::new(),
            bootable: false,
            ty: "user".to_string(),
        })
        .collect();
    set_disks(&mut e, &sid, &vm, &disks_xml(&two));
    fails(
        &mut e,
        "VM.provision",
        vec![sid.clone(), vm.clone()],
        "DEVICE_ALREADY_EXISTS",
    );
    assert_eq!(count(&mut e, &sid, "VDI"), vdis);
    assert_eq!(count(&mut e, &sid, "VBD"), vbds);
    assert!(smap(get(&mut e, &sid, "VM", "other_config", &vm)).contains_key("disks"));
    // A full SR.
    e.hypervisor().storage.as_mut().unwrap().thick = true;
    let huge = DiskSpec {
        device: 5,
        size: 1 << 40,
        sr: String::new(),
        bootable: false,
        ty: "user".to_string(),
    };
    set_disks(&mut e, &sid, &vm, &disks_xml(&[huge]));
    fails(
        &mut e,
        "VM.provision",
        vec![sid.clone(), vm.clone()],
        "SR_FULL",
    );
    // A running VM.
    set_disks(&mut e, &sid, &vm, "<provision/>");
    let f = Value::Bool(false);
    ok(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f],
    );
    fails(
        &mut e,
        "VM.provision",
        vec![sid.clone(), vm],
        "VM_BAD_POWER_STATE",
    );
}

fn disk() -> impl Strategy<Value = DiskSpec> {
    (
        0u32..=255,
        0u64..=(2u64 << 40),
        any::<bool>(),
        prop::sample::select(vec!["system", "user", "ephemeral"]),
        prop::option::of("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    )
        .prop_map(|(device, size, bootable, ty, sr)| DiskSpec {
            device,
            size,
            sr: sr.unwrap_or_default(),
            bootable,
            ty: ty.to_string(),
        })
}

proptest! {
    #[test]
    fn any_written_spec_reads_back(disks in prop::collection::vec(disk(), 0..=MAX_DISKS)) {
        let mut seen = std::collections::BTreeSet::new();
        let disks: Vec<DiskSpec> = disks.into_iter().filter(|d| seen.insert(d.device)).collect();
        prop_assert_eq!(parse_disks(&disks_xml(&disks)).unwrap(), disks);
    }

    #[test]
    fn any_text_is_parsed_or_refused_without_panic(text in ".{0,400}") {
        let _ = parse_disks(&text);
        let _ = parse_disks(&format!("<provision>{text}</provision>"));
    }

    #[test]
    fn mangled_specs_never_panic(
        disks in prop::collection::vec(disk(), 0..4),
        cut in 0usize..400,
        junk in "[<>/=\" a-z!-]{0,20}",
    ) {
        let xml = disks_xml(&disks);
        let mut cut = cut.min(xml.len());
        while !xml.is_char_boundary(cut) {
            cut -= 1;
        }
        let mangled = format!("{}{junk}{}", &xml[..cut], &xml[cut..]);
        let _ = parse_disks(&mangled);
    }
}
