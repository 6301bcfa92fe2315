//! End to end: Xen Orchestra's New-VM call order (xo-server's `createVm`:
//! clone the template, drop its `disks` spec and provision, the set calls,
//! its own disks through `get_allowed_VBD_devices` + VDI/VBD.create, the
//! ISO as a CD VBD, VIFs with an empty MAC, start), and `xe vm-install`'s
//! (clone, provision making the template's disk, start), checking the
//! records and the domain the hypervisor was asked for.

use xenapi::hypervisor::FakeVbdCall;
use xenapi::value::Value;
use xenapi::vif::parse_mac;
use xenapi::wal::MemStorage;

mod common;
use common::*;

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;

fn first(v: Value) -> Value {
    array(v).into_iter().next().expect("one at least")
}

#[test]
fn xen_orchestras_create_vm_sequence() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let t = template(&mut e, &sid, "Generic Linux PVH");
    let net = first(ok(&mut e, "network.get_all", vec![sid.clone()]));
    let sr = default_sr(&mut e, &sid);
    // The ISO the user picked, already on the SR.
    let iso = new_vdi_of(&mut e, &sid, 300 * MIB, "user");

    // _cloneVm
    let vm = run_async(
        &mut e,
        &sid,
        "Async.VM.clone",
        vec![sid.clone(), t.clone(), s("web-1")],
    )
    .unwrap();
    let vm = s(&vm);
    // The template's disks as xo-web read them, before XO drops the spec.
    let oc = smap(get(&mut e, &sid, "VM", "other_config", &vm));
    let disks = xenapi::templates::parse_disks(oc["disks"].as_str().unwrap()).unwrap();
    ok(
        &mut e,
        "VM.remove_from_other_config",
        vec![sid.clone(), vm.clone(), s("disks")],
    );
    assert_eq!(
        run_async(
            &mut e,
            &sid,
            "Async.VM.provision",
            vec![sid.clone(), vm.clone()]
        ),
        Ok(String::new())
    );
    assert!(array(get(&mut e, &sid, "VM", "VBDs", &vm)).is_empty());
    // XO never clears is_a_template itself: provision does.
    assert_eq!(
        get(&mut e, &sid, "VM", "is_a_template", &vm),
        Value::Bool(false)
    );
    // _editVm
    ok(
        &mut e,
        "VM.set_name_label",
        vec![sid.clone(), vm.clone(), s("web-1")],
    );
    ok(
        &mut e,
        "VM.set_name_description",
        vec![sid.clone(), vm.clone(), s("front end")],
    );
    ok(
        &mut e,
        "VM.set_memory_limits",
        vec![
            sid.clone(),
            vm.clone(),
            Value::Int(256 * MIB),
            Value::Int(GIB),
            Value::Int(GIB),
            Value::Int(GIB),
        ],
    );
    ok(
        &mut e,
        "VM.set_VCPUs_max",
        vec![sid.clone(), vm.clone(), Value::Int(2)],
    );
    ok(
        &mut e,
        "VM.set_VCPUs_at_startup",
        vec![sid.clone(), vm.clone(), Value::Int(2)],
    );
    // _insertCdIntoVm: no CD drive yet, so a CD VBD with the ISO.
    let dev = first(ok(
        &mut e,
        "VM.get_allowed_VBD_devices",
        vec![sid.clone(), vm.clone()],
    ));
    assert_eq!(dev, s("0"));
    ok(
        &mut e,
        "VBD.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("VDI", iso.clone()),
                ("userdevice", s("3")),
                ("bootable", Value::Bool(false)),
                ("mode", s("RO")),
                ("type", s("CD")),
                ("empty", Value::Bool(false)),
                ("other_config", map(&[])),
                ("qos_algorithm_type", s("")),
                ("qos_algorithm_params", map(&[])),
            ]),
        ],
    );
    // The disks: VDI.create with the template's size, then a VBD at the
    // first allowed device.
    for d in &disks {
        let vdi = ok(
            &mut e,
            "VDI.create",
            vec![
                sid.clone(),
                map(&[
                    ("name_label", s("web-1 root")),
                    ("SR", sr.clone()),
                    ("virtual_size", Value::Int(d.size as i64)),
                    ("type", s(&d.ty)),
                    ("sharable", Value::Bool(false)),
                    ("read_only", Value::Bool(false)),
                    ("other_config", map(&[])),
                ]),
            ],
        );
        let dev = first(ok(
            &mut e,
            "VM.get_allowed_VBD_devices",
            vec![sid.clone(), vm.clone()],
        ));
        ok(
            &mut e,
            "VBD.create",
            vec![
                sid.clone(),
                map(&[
                    ("VM", vm.clone()),
                    ("VDI", vdi),
                    ("userdevice", dev),
                    ("bootable", Value::Bool(d.bootable)),
                    ("mode", s("RW")),
                    ("type", s("Disk")),
                    ("empty", Value::Bool(false)),
                ]),
            ],
        );
    }
    // _createVif: the first allowed device, an empty MAC.
    let dev = first(ok(
        &mut e,
        "VM.get_allowed_VIF_devices",
        vec![sid.clone(), vm.clone()],
    ));
    let vif = ok(
        &mut e,
        "VIF.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("network", net.clone()),
                ("device", dev),
                ("MAC", s("")),
                ("MTU", Value::Int(1500)),
                ("other_config", map(&[])),
                ("qos_algorithm_type", s("")),
                ("qos_algorithm_params", map(&[])),
                ("locking_mode", s("network_default")),
            ]),
        ],
    );
    let host = first(ok(&mut e, "host.get_all", vec![sid.clone()]));
    ok(
        &mut e,
        "VM.assert_can_boot_here",
        vec![sid.clone(), vm.clone(), host],
    );
    let f = Value::Bool(false);
    assert_eq!(
        run_async(
            &mut e,
            &sid,
            "Async.VM.start",
            vec![sid.clone(), vm.clone(), f.clone(), f]
        ),
        Ok(String::new())
    );

    // What the user sees.
    let r = smap(ok(&mut e, "VM.get_record", vec![sid.clone(), vm.clone()]));
    assert_eq!(r["power_state"], s("Running"));
    assert_eq!(r["name_label"], s("web-1"));
    assert_eq!(r["name_description"], s("front end"));
    assert_eq!(r["is_a_template"], Value::Bool(false));
    assert_eq!(r["is_default_template"], Value::Bool(false));
    assert_eq!(r["memory_static_max"], Value::Int(GIB));
    assert_eq!(r["memory_dynamic_min"], Value::Int(GIB));
    assert_eq!(r["VCPUs_max"], Value::Int(2));
    assert_eq!(r["domain_type"], s("pvh"));
    assert_eq!(r["PV_bootloader"], s("pygrub"));
    let oc = smap(r["other_config"].clone());
    assert!(!oc.contains_key("default_template"));
    assert!(!oc.contains_key("disks"));
    let mac = get(&mut e, &sid, "VIF", "MAC", &vif);
    let m = parse_mac(mac.as_str().unwrap()).expect("a MAC");
    assert_eq!(m[0] & 0x03, 0x02, "locally administered unicast: {mac:?}");
    assert_eq!(
        get(&mut e, &sid, "VIF", "MAC_autogenerated", &vif),
        Value::Bool(true)
    );
    assert_eq!(
        get(&mut e, &sid, "VIF", "currently_attached", &vif),
        Value::Bool(true)
    );
    // The domain: PVH, 1 GiB, 2 VCPUs, the root disk bootable, the CD.
    let domid = r["domid"].as_int().unwrap() as u32;
    let spec = e.hypervisor().specs[&domid].clone();
    assert_eq!(spec.domain_type, "pvh");
    assert_eq!(spec.memory, GIB as u64);
    assert_eq!((spec.vcpus, spec.vcpus_max), (2, 2));
    let mut attached: Vec<(String, bool, bool)> = e
        .hypervisor()
        .vbd_calls
        .iter()
        .filter_map(|c| match c {
            FakeVbdCall::Attach(d, v) if *d == domid => Some((
                v.dev.clone(),
                v.bootable,
                v.kind == xenapi::vbd::VbdKind::Cdrom,
            )),
            _ => None,
        })
        .collect();
    attached.sort();
    assert_eq!(
        attached,
        [
            ("xvda".to_string(), true, false),
            ("xvdd".to_string(), false, true)
        ]
    );
    let root = array(r["VBDs"].clone())
        .into_iter()
        .find(|b| get(&mut e, &sid, "VBD", "userdevice", b) == s("0"))
        .unwrap();
    let root_vdi = get(&mut e, &sid, "VBD", "VDI", &root);
    assert_eq!(
        get(&mut e, &sid, "VDI", "virtual_size", &root_vdi),
        Value::Int(8 * GIB)
    );
}

#[test]
fn xe_vm_install_sequence_provisions_the_templates_disk() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let t = template(&mut e, &sid, "Generic Linux PV");
    let vm = ok(&mut e, "VM.clone", vec![sid.clone(), t, s("db-1")]);
    ok(&mut e, "VM.provision", vec![sid.clone(), vm.clone()]);
    let host = first(ok(&mut e, "host.get_all", vec![sid.clone()]));
    let f = Value::Bool(false);
    ok(
        &mut e,
        "VM.start_on",
        vec![sid.clone(), vm.clone(), host, f.clone(), f],
    );
    let domid = get(&mut e, &sid, "VM", "domid", &vm).as_int().unwrap() as u32;
    let spec = e.hypervisor().specs[&domid].clone();
    assert_eq!(spec.domain_type, "pv");
    assert_eq!(spec.memory, 256 << 20);
    let disks: Vec<_> = e
        .hypervisor()
        .vbd_calls
        .iter()
        .filter_map(|c| match c {
            FakeVbdCall::Attach(d, v) if *d == domid => Some((v.dev.clone(), v.bootable)),
            _ => None,
        })
        .collect();
    assert_eq!(disks, [("xvda".to_string(), true)]);
}

#[test]
fn xo_lites_create_vm_sequence() {
    // XO Lite's order: clone, drop the disks spec, provision, VCPUs_max
    // first when growing, then name, description, set_memory,
    // VCPUs_at_startup; its own disk and a VIF; start.
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let t = template(&mut e, &sid, "Generic Linux PVH");
    let net = first(ok(&mut e, "network.get_all", vec![sid.clone()]));
    let sr = default_sr(&mut e, &sid);
    let vm = ok(&mut e, "VM.clone", vec![sid.clone(), t, s("lite")]);
    ok(
        &mut e,
        "VM.remove_from_other_config",
        vec![sid.clone(), vm.clone(), s("disks")],
    );
    ok(&mut e, "VM.provision", vec![sid.clone(), vm.clone()]);
    let call = |e: &mut E, m: &str, v: Value| {
        ok(e, &format!("VM.{m}"), vec![sid.clone(), vm.clone(), v]);
    };
    call(&mut e, "set_VCPUs_max", Value::Int(4));
    call(&mut e, "set_name_label", s("lite-1"));
    call(&mut e, "set_name_description", s("made like XO Lite"));
    call(&mut e, "set_memory", Value::Int(512 * MIB));
    call(&mut e, "set_VCPUs_at_startup", Value::Int(4));
    let vdi = ok(
        &mut e,
        "VDI.create",
        vec![
            sid.clone(),
            map(&[
                ("name_label", s("lite-1 disk")),
                ("SR", sr),
                ("virtual_size", Value::Int(GIB)),
                ("type", s("user")),
            ]),
        ],
    );
    ok(
        &mut e,
        "VBD.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("VDI", vdi),
                ("userdevice", s("0")),
                ("bootable", Value::Bool(true)),
                ("mode", s("RW")),
                ("type", s("Disk")),
                ("empty", Value::Bool(false)),
            ]),
        ],
    );
    ok(
        &mut e,
        "VIF.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("network", net),
                ("device", s("0")),
                ("MAC", s("")),
            ]),
        ],
    );
    let f = Value::Bool(false);
    ok(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f],
    );
    let r = smap(ok(&mut e, "VM.get_record", vec![sid.clone(), vm.clone()]));
    assert_eq!(r["power_state"], s("Running"));
    assert_eq!(r["name_label"], s("lite-1"));
    assert_eq!(r["memory_static_min"], Value::Int(128 * MIB));
    for f in [
        "memory_static_max",
        "memory_dynamic_max",
        "memory_dynamic_min",
    ] {
        assert_eq!(r[f], Value::Int(512 * MIB), "{f}");
    }
    let domid = r["domid"].as_int().unwrap() as u32;
    let spec = e.hypervisor().specs[&domid].clone();
    assert_eq!((spec.vcpus, spec.vcpus_max), (4, 4));
    assert_eq!(spec.memory, 512 << 20);
    assert_eq!(spec.domain_type, "pvh");
}
