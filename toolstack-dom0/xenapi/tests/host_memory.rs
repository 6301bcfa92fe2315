//! The host's memory as the hypervisor counts it: host_metrics follows it,
//! a VM that does not fit is refused with `HOST_NOT_ENOUGH_FREE_MEMORY`
//! before anything is built, and VM_metrics say what a running VM has.

use xenapi::power::domain_overhead;
use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;

const MIB: u64 = 1 << 20;

fn metrics(e: &mut E, sid: &Value, field: &str) -> i64 {
    let host = match ok(e, "host.get_all", vec![sid.clone()]) {
        Value::Array(a) => a[0].clone(),
        other => panic!("{other:?}"),
    };
    let m = ok(e, "host.get_metrics", vec![sid.clone(), host]);
    ok(
        e,
        &format!("host_metrics.get_{field}"),
        vec![sid.clone(), m],
    )
    .as_int()
    .unwrap()
}

fn vm_metrics(e: &mut E, sid: &Value, vm: &Value, field: &str) -> i64 {
    let m = ok(e, "VM.get_metrics", vec![sid.clone(), vm.clone()]);
    ok(e, &format!("VM_metrics.get_{field}"), vec![sid.clone(), m])
        .as_int()
        .unwrap()
}

fn start(e: &mut E, sid: &Value, vm: &Value) -> Result<Value, xenapi::error::ApiError> {
    let f = Value::Bool(false);
    e.call_value(T0, "VM.start", vec![sid.clone(), vm.clone(), f.clone(), f])
}

#[test]
fn a_vm_that_does_not_fit_is_refused_and_memory_comes_back() {
    let mut e = open(MemStorage::default());
    e.hypervisor().memory = Some((1024 * MIB, 600 * MIB));
    let sid = login(&mut e);
    let small = new_vm(&mut e, &sid, "small"); // 256 MiB
    start(&mut e, &sid, &small).expect("fits");
    assert_eq!(metrics(&mut e, &sid, "memory_total"), (1024 * MIB) as i64);
    assert_eq!(metrics(&mut e, &sid, "memory_free"), (344 * MIB) as i64);
    assert_eq!(
        vm_metrics(&mut e, &sid, &small, "memory_actual"),
        (256 * MIB) as i64
    );
    assert_eq!(vm_metrics(&mut e, &sid, &small, "VCPUs_number"), 1);

    // 256 MiB more does not fit in what is left once its overhead counts.
    let big = new_vm(&mut e, &sid, "big");
    ok(
        &mut e,
        "VM.set_memory_static_max",
        vec![sid.clone(), big.clone(), s(&format!("{}", 344 * MIB))],
    );
    let err = start(&mut e, &sid, &big).expect_err("does not fit");
    assert_eq!(err.code, "HOST_NOT_ENOUGH_FREE_MEMORY");
    let spec_overhead = 344 * MIB + domain_overhead_for(344 * MIB, 1);
    assert_eq!(
        err.params,
        [format!("{spec_overhead}"), format!("{}", 344 * MIB)]
    );
    assert_eq!(
        ok(&mut e, "VM.get_power_state", vec![sid.clone(), big.clone()]),
        s("Halted")
    );
    assert_eq!(e.hypervisor().domains.len(), 1, "nothing was built");

    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), small.clone()]);
    assert_eq!(metrics(&mut e, &sid, "memory_free"), (600 * MIB) as i64);
    assert_eq!(vm_metrics(&mut e, &sid, &small, "memory_actual"), 0);
    start(&mut e, &sid, &big).expect("fits once the other is gone");
}

fn domain_overhead_for(memory: u64, vcpus: u32) -> u64 {
    domain_overhead(&xenapi::hypervisor::DomainSpec {
        uuid: String::new(),
        name: String::new(),
        memory,
        vcpus,
        vcpus_max: vcpus,
        bootloader: String::new(),
        kernel: String::new(),
        ramdisk: String::new(),
        cmdline: String::new(),
        domain_type: String::new(),
        weight: 256,
        cap: 0,
    })
}
