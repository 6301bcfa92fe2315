//! `VM.VCPUs_params` `weight` and `cap`: the CPU share a VM's domain gets
//! before it first runs (xapi's defaults for absent or bad values), and
//! `VM.add_to_VCPUs_params_live` on a running VM.

use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;

fn start(e: &mut E, sid: &Value, vm: &Value) {
    let f = Value::Bool(false);
    ok(e, "VM.start", vec![sid.clone(), vm.clone(), f.clone(), f]);
}

fn domid(e: &mut E, sid: &Value, vm: &Value) -> u32 {
    get(e, sid, "VM", "domid", vm).as_int().unwrap() as u32
}

fn set_params(e: &mut E, sid: &Value, vm: &Value, pairs: &[(&str, &str)]) {
    let value = map(&pairs.iter().map(|(k, v)| (*k, s(v))).collect::<Vec<_>>());
    ok(
        e,
        "VM.set_VCPUs_params",
        vec![sid.clone(), vm.clone(), value],
    );
}

#[test]
fn weight_and_cap_reach_the_domain_at_start() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "weighted");
    set_params(&mut e, &sid, &vm, &[("weight", "384"), ("cap", "50")]);
    start(&mut e, &sid, &vm);
    let d = domid(&mut e, &sid, &vm);
    assert_eq!(e.hypervisor().cpu_shares[&d], (384, 50));
    assert_eq!(e.hypervisor().specs[&d].weight, 384);
    assert_eq!(e.hypervisor().specs[&d].cap, 50);

    // A VM without them gets xapi's defaults: weight 256, no cap.
    let plain = new_vm(&mut e, &sid, "plain");
    start(&mut e, &sid, &plain);
    let d = domid(&mut e, &sid, &plain);
    assert_eq!(e.hypervisor().cpu_shares[&d], (256, 0));
}

#[test]
fn a_bad_value_falls_back_to_xapis_default_and_the_start_goes_on() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "bad");
    // One vCPU: a cap past 100 is more than Xen allows.
    set_params(&mut e, &sid, &vm, &[("weight", "lots"), ("cap", "150")]);
    start(&mut e, &sid, &vm);
    let d = domid(&mut e, &sid, &vm);
    assert_eq!(e.hypervisor().cpu_shares[&d], (256, 0));
    assert_eq!(
        get(&mut e, &sid, "VM", "power_state", &vm),
        s("Running"),
        "started"
    );
}

#[test]
fn a_refused_share_fails_the_start_and_leaves_no_domain() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "refused");
    e.hypervisor().fail_cpu_share = Some("EINVAL".into());
    let f = Value::Bool(false);
    fails(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f],
        "INTERNAL_ERROR",
    );
    assert!(e.hypervisor().domains.is_empty(), "destroyed");
    assert_eq!(get(&mut e, &sid, "VM", "power_state", &vm), s("Halted"));
}

#[test]
fn add_to_vcpus_params_live_applies_to_the_running_domain() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "live");
    let live = |e: &mut E, k: &str, v: &str| {
        e.call_value(
            T0,
            "VM.add_to_VCPUs_params_live",
            vec![sid.clone(), vm.clone(), s(k), s(v)],
        )
    };
    // Halted: nothing runs to apply it to.
    let err = live(&mut e, "weight", "512").unwrap_err();
    assert_eq!(err.code, "VM_BAD_POWER_STATE");

    start(&mut e, &sid, &vm);
    let d = domid(&mut e, &sid, &vm);
    live(&mut e, "weight", "512").expect("applied");
    assert_eq!(e.hypervisor().cpu_shares[&d], (512, 0));
    live(&mut e, "cap", "25").expect("applied");
    assert_eq!(e.hypervisor().cpu_shares[&d], (512, 25));
    let params = smap(get(&mut e, &sid, "VM", "VCPUs_params", &vm));
    assert_eq!(params["weight"], s("512"));
    assert_eq!(params["cap"], s("25"));

    // A value Xen would refuse is refused, and nothing changes.
    let err = live(&mut e, "weight", "0").unwrap_err();
    assert_eq!(err.code, "INVALID_VALUE");
    assert_eq!(err.params, vec!["weight".to_string(), "0".to_string()]);
    let err = live(&mut e, "cap", "101").unwrap_err();
    assert_eq!(err.code, "INVALID_VALUE");
    assert_eq!(e.hypervisor().cpu_shares[&d], (512, 25));

    // Other keys are stored only.
    live(&mut e, "mask", "0").expect("stored");
    assert_eq!(
        smap(get(&mut e, &sid, "VM", "VCPUs_params", &vm))["mask"],
        s("0")
    );

    // The next start applies what is stored.
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    start(&mut e, &sid, &vm);
    let d = domid(&mut e, &sid, &vm);
    assert_eq!(e.hypervisor().cpu_shares[&d], (512, 25));
}

#[test]
fn the_call_is_listed() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let methods = array(ok(&mut e, "system.listMethods", vec![sid]));
    assert!(methods.contains(&s("VM.add_to_VCPUs_params_live")));
}
