//! Measures what the performance samples make dom0 hold with every ring
//! full (the host and `MAX_VM_RINGS` running VMs with the most sources),
//! against [`xenapi::rrd::RRD_BYTES`] in the budget. One test per binary:
//! the counting allocator is global.

use xenapi::rrd::{MAX_VCPUS, MAX_VIFS, MAX_VM_RINGS, ROWS, RRD_BYTES, STEP_MS};
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

mod common;
use common::*;
mod memory;

#[global_allocator]
static GLOBAL: memory::Counting = memory::Counting;

#[test]
fn full_rings_fit_rrd_bytes() {
    let mut e = open(MemStorage::default());
    e.hypervisor().memory = Some((1 << 40, 1 << 39));
    let sid = login(&mut e);
    let f = Value::Bool(false);
    let net = array(ok(&mut e, "network.get_all", vec![sid.clone()]))[0].clone();
    let mut domids = Vec::new();
    for i in 0..MAX_VM_RINGS {
        let vm = new_vm(&mut e, &sid, &format!("vm{i}"));
        for dev in 0..MAX_VIFS {
            let r = map(&[
                ("VM", vm.clone()),
                ("network", net.clone()),
                ("device", s(&dev.to_string())),
                ("MAC", s("")),
            ]);
            ok(&mut e, "VIF.create", vec![sid.clone(), r]);
        }
        ok(
            &mut e,
            "VM.start",
            vec![sid.clone(), vm.clone(), f.clone(), f.clone()],
        );
        domids.push(get(&mut e, &sid, "VM", "domid", &vm).as_int().unwrap() as u32);
    }
    for d in &domids {
        e.hypervisor().vcpu_time_ns.insert(*d, vec![0; MAX_VCPUS]);
        let nodes = e.hypervisor().guest_nodes.entry(*d).or_default();
        nodes.insert("data/meminfo_free".into(), b"1000".to_vec());
    }
    // No data/updated: no guest metrics records (bounded on their own),
    // only the rings' sources.
    let before = memory::net();
    for i in 0..(ROWS as u64 + 5) {
        e.monitor(Instant(T0.0 + i * STEP_MS)).unwrap();
    }
    let held = (memory::net() - before) as usize;
    println!(
        "{} rings full: {held} B of heap (RRD_BYTES {RRD_BYTES})",
        e.rrd_rings()
    );
    assert_eq!(e.rrd_rings(), MAX_VM_RINGS);
    assert!(held > RRD_BYTES / 2, "the rings did fill: {held} B");
    assert!(held <= RRD_BYTES, "{held} B > RRD_BYTES");
}
