//! Measures what one VM with its devices makes dom0's database hold, against
//! the documented [`budget::VM_SET_APPROX`] and [`budget::heap_of`]: the
//! database bound ([`budget::DB_APPROX_BYTES`]) is derived from them. One
//! test per binary: the counting allocator is global.

use xenapi::budget;
use xenapi::value::Value;

mod common;
use common::*;
mod memory;
use memory::{add_vms, call, rec};

#[global_allocator]
static GLOBAL: memory::Counting = memory::Counting;

#[test]
fn a_vm_with_its_devices_fits_vm_set_bytes() {
    const N: usize = 200;
    let (mut e, sid) = memory::open_measured();
    let Value::Array(srs) = call(&mut e, "SR.get_all", vec![sid.clone()]) else {
        panic!("SR.get_all")
    };
    let net = call(
        &mut e,
        "network.create",
        vec![
            sid.clone(),
            rec(&[("name_label", s("xenbr0")), ("bridge", s("xenbr0"))]),
        ],
    );
    let net_bytes = memory::net();
    let before = e.db().approx_bytes();
    let before_wal = e.storage_for_tests().written;
    add_vms(&mut e, &sid, &srs[0], &net, 0..N);
    let heap = (memory::net() - net_bytes) as usize / N;
    let approx = (e.db().approx_bytes() - before) / N;
    let wal = (e.storage_for_tests().written - before_wal) as usize / N;
    println!("one VM with 2 VIFs, 2 VBDs, 2 VDIs: heap {heap} B, approx {approx} B, WAL {wal} B");
    assert!(
        approx <= budget::VM_SET_APPROX,
        "a VM set counts {approx} B against the quota, more than VM_SET_APPROX = {}",
        budget::VM_SET_APPROX
    );
    assert!(
        heap <= budget::heap_of(approx),
        "a VM set holds {heap} B of heap, more than heap_of({approx}) = {}",
        budget::heap_of(approx)
    );
}
