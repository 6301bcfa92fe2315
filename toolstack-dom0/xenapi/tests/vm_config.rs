//! The setters and queries of a New-VM flow with xapi's checks: memory
//! limits, VCPUs, domain type, allowed devices, start_on,
//! assert_can_boot_here, CD insert / eject, host time and plugins.

use xenapi::hypervisor::FakeVbdCall;
use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;

const MIB: i64 = 1 << 20;
const NULL: &str = "OpaqueRef:NULL";

fn setup() -> (E, Value, Value) {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "guest");
    (e, sid, vm)
}

fn limits(e: &mut E, sid: &Value, vm: &Value) -> [i64; 4] {
    let g = |e: &mut E, f: &str| get(e, sid, "VM", f, vm).as_int().unwrap();
    [
        g(e, "memory_static_min"),
        g(e, "memory_dynamic_min"),
        g(e, "memory_dynamic_max"),
        g(e, "memory_static_max"),
    ]
}

fn start(e: &mut E, sid: &Value, vm: &Value) {
    let f = Value::Bool(false);
    ok(e, "VM.start", vec![sid.clone(), vm.clone(), f.clone(), f]);
}

#[test]
fn memory_setters_keep_xapis_order() {
    let (mut e, sid, vm) = setup();
    let i = |n: i64| Value::Int(n * MIB);
    let call = |sm, sx, dm, dx| {
        vec![
            sid.clone(),
            vm.clone(),
            Value::Int(sm * MIB),
            Value::Int(sx * MIB),
            Value::Int(dm * MIB),
            Value::Int(dx * MIB),
        ]
    };
    ok(&mut e, "VM.set_memory_limits", call(64, 512, 128, 256));
    assert_eq!(
        limits(&mut e, &sid, &vm),
        [64 * MIB, 128 * MIB, 256 * MIB, 512 * MIB]
    );
    assert_eq!(get(&mut e, &sid, "VM", "memory_target", &vm), i(256));
    for bad in [
        (64, 512, 256, 128),
        (256, 512, 128, 256),
        (64, 128, 128, 256),
        (-1, 512, 128, 256),
    ] {
        let p = fails(
            &mut e,
            "VM.set_memory_limits",
            call(bad.0, bad.1, bad.2, bad.3),
            "MEMORY_CONSTRAINT_VIOLATION",
        );
        assert!(
            p[0].contains("static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max"),
            "{p:?}"
        );
    }
    assert_eq!(
        limits(&mut e, &sid, &vm),
        [64 * MIB, 128 * MIB, 256 * MIB, 512 * MIB]
    );
    ok(
        &mut e,
        "VM.set_memory_dynamic_range",
        vec![sid.clone(), vm.clone(), i(200), i(300)],
    );
    fails(
        &mut e,
        "VM.set_memory_dynamic_range",
        vec![sid.clone(), vm.clone(), i(200), i(600)],
        "MEMORY_CONSTRAINT_VIOLATION",
    );
    ok(
        &mut e,
        "VM.set_memory_static_range",
        vec![sid.clone(), vm.clone(), i(32), i(1024)],
    );
    fails(
        &mut e,
        "VM.set_memory_static_range",
        vec![sid.clone(), vm.clone(), i(250), i(1024)],
        "MEMORY_CONSTRAINT_VIOLATION",
    );
    assert_eq!(
        limits(&mut e, &sid, &vm),
        [32 * MIB, 200 * MIB, 300 * MIB, 1024 * MIB]
    );
    // The field setters check too.
    fails(
        &mut e,
        "VM.set_memory_static_max",
        vec![sid.clone(), vm.clone(), i(100)],
        "MEMORY_CONSTRAINT_VIOLATION",
    );
    ok(
        &mut e,
        "VM.set_memory_dynamic_max",
        vec![sid.clone(), vm.clone(), i(400)],
    );
    fails(
        &mut e,
        "VM.set_memory_dynamic_min",
        vec![sid.clone(), vm.clone(), i(500)],
        "MEMORY_CONSTRAINT_VIOLATION",
    );
    // set_memory: static_max = dynamic_min = dynamic_max, static_min kept.
    ok(
        &mut e,
        "VM.set_memory",
        vec![sid.clone(), vm.clone(), i(384)],
    );
    assert_eq!(
        limits(&mut e, &sid, &vm),
        [32 * MIB, 384 * MIB, 384 * MIB, 384 * MIB]
    );
    // Running: the limits and static range are refused, the dynamic range
    // is taken.
    start(&mut e, &sid, &vm);
    let p = fails(
        &mut e,
        "VM.set_memory_limits",
        call(64, 512, 128, 256),
        "VM_BAD_POWER_STATE",
    );
    assert_eq!(p, [vm.as_str().unwrap(), "halted", "running"]);
    fails(
        &mut e,
        "VM.set_memory_static_max",
        vec![sid.clone(), vm.clone(), i(512)],
        "VM_BAD_POWER_STATE",
    );
    ok(
        &mut e,
        "VM.set_memory_dynamic_range",
        vec![sid.clone(), vm.clone(), i(256), i(384)],
    );
    let r = e.call_value(T0, "Async.VM.set_memory_limits", call(64, 512, 128, 256));
    assert!(r.is_ok());
}

#[test]
fn vcpus_domain_type_and_boot_policy() {
    let (mut e, sid, vm) = setup();
    let set = |e: &mut E, f: &str, v: Value| {
        e.call_value(T0, &format!("VM.set_{f}"), vec![sid.clone(), vm.clone(), v])
    };
    set(&mut e, "VCPUs_max", Value::Int(4)).unwrap();
    set(&mut e, "VCPUs_at_startup", Value::Int(2)).unwrap();
    let order = "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max";
    let err = set(&mut e, "VCPUs_at_startup", Value::Int(5)).unwrap_err();
    assert_eq!(
        (err.code, err.params.clone()),
        ("INVALID_VALUE", vec![order.to_string(), "5".to_string()])
    );
    let err = set(&mut e, "VCPUs_max", Value::Int(1)).unwrap_err();
    assert_eq!(
        (err.code, err.params.clone()),
        ("INVALID_VALUE", vec![order.to_string(), "1".to_string()])
    );
    let err = set(&mut e, "VCPUs_max", Value::Int(0)).unwrap_err();
    assert_eq!(err.code, "INVALID_VALUE");
    let err = set(&mut e, "VCPUs_at_startup", Value::Int(0)).unwrap_err();
    assert_eq!(err.code, "INVALID_VALUE");
    assert_eq!(get(&mut e, &sid, "VM", "VCPUs_max", &vm), Value::Int(4));
    assert_eq!(
        get(&mut e, &sid, "VM", "VCPUs_at_startup", &vm),
        Value::Int(2)
    );

    set(&mut e, "domain_type", s("hvm")).unwrap();
    assert_eq!(
        get(&mut e, &sid, "VM", "HVM_boot_policy", &vm),
        s("BIOS order")
    );
    set(&mut e, "domain_type", s("pvh")).unwrap();
    assert_eq!(get(&mut e, &sid, "VM", "HVM_boot_policy", &vm), s(""));
    let err = set(&mut e, "domain_type", s("unspecified")).unwrap_err();
    assert_eq!(err.code, "INVALID_VALUE");
    set(&mut e, "HVM_boot_policy", s("BIOS order")).unwrap();
    assert_eq!(get(&mut e, &sid, "VM", "domain_type", &vm), s("hvm"));
    set(&mut e, "HVM_boot_policy", s("")).unwrap();
    assert_eq!(get(&mut e, &sid, "VM", "domain_type", &vm), s("pv"));

    start(&mut e, &sid, &vm);
    let err = set(&mut e, "VCPUs_max", Value::Int(8)).unwrap_err();
    assert_eq!(err.code, "VM_BAD_POWER_STATE");
    // VCPUs_at_startup applies at the next start: taken while running.
    set(&mut e, "VCPUs_at_startup", Value::Int(4)).unwrap();
    assert_eq!(
        get(&mut e, &sid, "VM", "VCPUs_at_startup", &vm),
        Value::Int(4)
    );
}

#[test]
fn allowed_devices_leave_out_the_used_ones() {
    let (mut e, sid, vm) = setup();
    let vbd_devs = |e: &mut E| {
        array(ok(
            e,
            "VM.get_allowed_VBD_devices",
            vec![sid.clone(), vm.clone()],
        ))
    };
    let all = vbd_devs(&mut e);
    assert_eq!(all.len(), 255);
    assert_eq!(all[0], s("0"));
    let vdi = new_vdi_of(&mut e, &sid, 1 << 20, "user");
    ok(
        &mut e,
        "VBD.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("VDI", vdi),
                ("userdevice", s("0")),
                ("type", s("Disk")),
                ("mode", s("RW")),
                ("empty", Value::Bool(false)),
            ]),
        ],
    );
    let left = vbd_devs(&mut e);
    assert_eq!(left.len(), 254);
    assert_eq!(left[0], s("1"));
    ok(
        &mut e,
        "VM.set_domain_type",
        vec![sid.clone(), vm.clone(), s("hvm")],
    );
    // xapi gives HVM guests the PV range too.
    assert_eq!(vbd_devs(&mut e), left);

    let vif_devs = |e: &mut E| {
        array(ok(
            e,
            "VM.get_allowed_VIF_devices",
            vec![sid.clone(), vm.clone()],
        ))
    };
    assert_eq!(vif_devs(&mut e).len(), 7);
    let net = array(ok(&mut e, "network.get_all", vec![sid.clone()]))[0].clone();
    ok(
        &mut e,
        "VIF.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("network", net),
                ("device", s("2")),
                ("MAC", s("")),
            ]),
        ],
    );
    assert_eq!(
        vif_devs(&mut e),
        [s("0"), s("1"), s("3"), s("4"), s("5"), s("6")]
    );
    fails(
        &mut e,
        "VM.get_allowed_VIF_devices",
        vec![sid.clone(), s("OpaqueRef:nope")],
        "HANDLE_INVALID",
    );
}

#[test]
fn start_on_and_assert_can_boot_here() {
    let (mut e, sid, vm) = setup();
    let host = array(ok(&mut e, "host.get_all", vec![sid.clone()]))[0].clone();
    let f = Value::Bool(false);
    ok(
        &mut e,
        "VM.assert_can_boot_here",
        vec![sid.clone(), vm.clone(), host.clone()],
    );
    let p = fails(
        &mut e,
        "VM.assert_can_boot_here",
        vec![sid.clone(), vm.clone(), s("OpaqueRef:other")],
        "HANDLE_INVALID",
    );
    assert_eq!(p, ["host", "OpaqueRef:other"]);
    fails(
        &mut e,
        "VM.start_on",
        vec![
            sid.clone(),
            vm.clone(),
            s("OpaqueRef:other"),
            f.clone(),
            f.clone(),
        ],
        "HANDLE_INVALID",
    );
    // Not enough memory on the host.
    e.hypervisor().memory = Some((1 << 30, 128 << 20));
    let p = fails(
        &mut e,
        "VM.assert_can_boot_here",
        vec![sid.clone(), vm.clone(), host.clone()],
        "HOST_NOT_ENOUGH_FREE_MEMORY",
    );
    assert!(p[0].parse::<u64>().unwrap() > 256 << 20, "{p:?}");
    assert_eq!(p[1], format!("{}", 128u64 << 20));
    e.hypervisor().memory = Some((1 << 30, 1 << 30));
    ok(
        &mut e,
        "VM.start_on",
        vec![
            sid.clone(),
            vm.clone(),
            host.clone(),
            Value::Bool(true),
            f.clone(),
        ],
    );
    assert_eq!(get(&mut e, &sid, "VM", "power_state", &vm), s("Paused"));
    fails(
        &mut e,
        "VM.assert_can_boot_here",
        vec![sid.clone(), vm.clone(), host.clone()],
        "VM_BAD_POWER_STATE",
    );
    let t = template(&mut e, &sid, "Generic Linux PV");
    fails(
        &mut e,
        "VM.assert_can_boot_here",
        vec![sid.clone(), t, host.clone()],
        "VM_IS_TEMPLATE",
    );
    let v2 = new_vm(&mut e, &sid, "async");
    let r = run_async(
        &mut e,
        &sid,
        "Async.VM.start_on",
        vec![sid.clone(), v2.clone(), host, f.clone(), f],
    );
    assert_eq!(r, Ok(String::new()));
    assert_eq!(get(&mut e, &sid, "VM", "power_state", &v2), s("Running"));
}

fn cd(e: &mut E, sid: &Value, vm: &Value, vdi: &str, empty: bool) -> Value {
    ok(
        e,
        "VBD.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("VDI", s(vdi)),
                ("userdevice", s("3")),
                ("type", s("CD")),
                ("mode", s("RO")),
                ("empty", Value::Bool(empty)),
                ("bootable", Value::Bool(false)),
            ]),
        ],
    )
}

#[test]
fn empty_cds_are_made_and_take_and_give_up_a_disc() {
    let (mut e, sid, vm) = setup();
    // An empty CD: with the null VDI, or with the VDI field left out.
    let drive = cd(&mut e, &sid, &vm, NULL, true);
    assert_eq!(get(&mut e, &sid, "VBD", "empty", &drive), Value::Bool(true));
    assert_eq!(get(&mut e, &sid, "VBD", "VDI", &drive), s(NULL));
    let other = new_vm(&mut e, &sid, "other");
    for (dev, vdi) in [("3", None), ("4", Some("")), ("5", Some("OpaqueRef:gone"))] {
        let mut fields = vec![
            ("VM", other.clone()),
            ("userdevice", s(dev)),
            ("type", s("CD")),
            ("mode", s("RO")),
            ("empty", Value::Bool(true)),
        ];
        if let Some(v) = vdi {
            fields.push(("VDI", s(v)));
        }
        let b = ok(&mut e, "VBD.create", vec![sid.clone(), map(&fields)]);
        assert_eq!(get(&mut e, &sid, "VBD", "VDI", &b), s(NULL), "{dev}");
    }
    // A VM starts with its empty drives: attached with no VDI.
    start(&mut e, &sid, &other);
    let empty_attached = e
        .hypervisor()
        .vbd_calls
        .iter()
        .filter(|c| matches!(c, FakeVbdCall::Attach(_, d) if d.vdi.is_none()))
        .count();
    assert_eq!(empty_attached, 3);
    let iso = new_vdi_of(&mut e, &sid, 1 << 20, "user");
    fails(
        &mut e,
        "VBD.eject",
        vec![sid.clone(), drive.clone()],
        "VBD_IS_EMPTY",
    );
    ok(
        &mut e,
        "VBD.insert",
        vec![sid.clone(), drive.clone(), iso.clone()],
    );
    assert_eq!(
        get(&mut e, &sid, "VBD", "empty", &drive),
        Value::Bool(false)
    );
    assert_eq!(get(&mut e, &sid, "VBD", "VDI", &drive), iso);
    let p = fails(
        &mut e,
        "VBD.insert",
        vec![sid.clone(), drive.clone(), iso.clone()],
        "VBD_NOT_EMPTY",
    );
    assert_eq!(p, [drive.as_str().unwrap()]);
    // Running: the medium changes in the guest too.
    start(&mut e, &sid, &vm);
    ok(&mut e, "VBD.eject", vec![sid.clone(), drive.clone()]);
    assert_eq!(get(&mut e, &sid, "VBD", "empty", &drive), Value::Bool(true));
    assert_eq!(get(&mut e, &sid, "VBD", "VDI", &drive), s(NULL));
    let r = run_async(
        &mut e,
        &sid,
        "Async.VBD.insert",
        vec![sid.clone(), drive.clone(), iso.clone()],
    );
    assert_eq!(r, Ok(String::new()));
    let media: Vec<Option<String>> = e
        .hypervisor()
        .vbd_calls
        .iter()
        .filter_map(|c| match c {
            FakeVbdCall::Media(_, d) => Some(d.vdi.clone()),
            _ => None,
        })
        .collect();
    let uuid = get(&mut e, &sid, "VDI", "location", &iso);
    assert_eq!(media, [None, Some(uuid.as_str().unwrap().to_string())]);
    // A disk is not removable media.
    let vdi = new_vdi_of(&mut e, &sid, 1 << 20, "user");
    let disk = ok(
        &mut e,
        "VBD.create",
        vec![
            sid.clone(),
            map(&[
                ("VM", vm.clone()),
                ("VDI", vdi.clone()),
                ("userdevice", s("1")),
                ("type", s("Disk")),
                ("mode", s("RW")),
                ("empty", Value::Bool(false)),
            ]),
        ],
    );
    fails(
        &mut e,
        "VBD.eject",
        vec![sid.clone(), disk.clone()],
        "VBD_NOT_REMOVABLE_MEDIA",
    );
    fails(
        &mut e,
        "VBD.insert",
        vec![sid.clone(), disk, vdi],
        "VBD_NOT_REMOVABLE_MEDIA",
    );
}

#[test]
fn host_time_and_missing_plugins() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let host = array(ok(&mut e, "host.get_all", vec![sid.clone()]))[0].clone();
    let t = ok(
        &mut e,
        "host.get_servertime",
        vec![sid.clone(), host.clone()],
    );
    // T0 is 2026-11-24 08:06:55 UTC.
    assert_eq!(t, Value::DateTime("20261124T08:06:55Z".into()));
    let t = ok(
        &mut e,
        "host.get_server_localtime",
        vec![sid.clone(), host.clone()],
    );
    assert_eq!(t, Value::DateTime("20261124T08:06:55Z".into()));
    let p = fails(
        &mut e,
        "host.call_plugin",
        vec![
            sid.clone(),
            host.clone(),
            s("prepare_host_upgrade.py"),
            s("testUrl"),
            map(&[]),
        ],
        "XENAPI_MISSING_PLUGIN",
    );
    assert_eq!(p, ["prepare_host_upgrade.py"]);
    fails(
        &mut e,
        "host.get_servertime",
        vec![sid.clone(), s("OpaqueRef:nope")],
        "HANDLE_INVALID",
    );
    let r = run_async(
        &mut e,
        &sid,
        "Async.host.call_plugin",
        vec![sid.clone(), host, s("x"), s("y"), map(&[])],
    );
    assert_eq!(r.unwrap_err()[0], s("XENAPI_MISSING_PLUGIN"));
}
